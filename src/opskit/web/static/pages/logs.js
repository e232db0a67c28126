// opskit dashboard: the logs page (app.js holds what the pages share).
"use strict";

async function logsPage() {
  const { envs } = await api("/api/overview");
  const picker = el("select", { id: "log-service" });
  for (const env of envs) {
    for (const c of env.containers) {
      picker.append(el("option", { value: `${env.project}/${env.env}/${c.service}` }, `${env.project} ${env.env} ${c.service}`));
    }
  }
  const out = el("div", { class: "log", id: "service-log" });
  main.append(picker, out);
  let source = null;
  function follow() {
    if (source) source.close();
    out.replaceChildren();
    const [project, env, service] = picker.value.split("/");
    source = new EventSource(`/api/logs?${new URLSearchParams({ project, env, service })}`);
    source.onmessage = (m) => {
      out.append(el("div", {}, JSON.parse(m.data).line));
      while (out.childNodes.length > 2000) out.firstChild.remove();
      out.scrollTop = out.scrollHeight;
    };
  }
  picker.addEventListener("change", follow);
  const wanted = new URLSearchParams(location.search).get("service");
  if (wanted) picker.value = wanted;
  if (picker.value) follow();
}

pages.logs = logsPage;
