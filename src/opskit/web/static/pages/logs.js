// opskit dashboard: the logs page (app.js holds what the pages share).
// One env's containers merged in time order (or one service), each service in its colour;
// a text filter, a start time (since) and follow. The server sends each line with its own
// time; lines are put in order here, so the services' logs interleave as they happened.
"use strict";

const MAX_LOG_LINES = 5000;

async function logsPage() {
  const { envs } = await api("/api/overview?checks=false")  // the containers only;
  const params = new URLSearchParams(location.search);
  const old = (params.get("service") || "").split("/"); // the old form: ?service=project/env/service
  if (old.length === 3 && !params.get("project")) {
    params.set("project", old[0]); params.set("env", old[1]); params.set("service", old[2]);
  }
  const envPicker = el("select", { id: "log-env" },
    ...envs.map((e) => el("option", { value: `${e.project}/${e.env}` }, `${e.project} ${e.env}`)));
  const servicePicker = el("select", { id: "log-service" });
  const filter = el("input", { id: "log-filter", type: "search", placeholder: "filter", size: 24 });
  const since = el("input", { id: "log-since", placeholder: "since: 10m, 2h, 2026-12-04T03:30", size: 32 });
  const follow = el("input", { id: "log-follow", type: "checkbox", checked: true });
  const count = el("span", { id: "log-count", class: "muted" });
  const message = el("span", { id: "log-message", class: "bad" });
  const out = el("div", { class: "log env-log", id: "env-log" });
  main.append(el("div", { class: "log-controls" }, envPicker, servicePicker, filter, since,
    el("label", {}, follow, " follow"), count, message), out);

  const colours = new Map(); // service -> its colour class
  const lastTime = new Map(); // service -> the time of its last line shown (a reconnect skips up to it)
  let source = null, reopen = null;

  function envOf() { return envs.find((e) => `${e.project}/${e.env}` === envPicker.value); }
  function fillServices() {
    const found = envOf();
    const names = [...new Set((found ? found.containers : []).map((c) => c.service))];
    servicePicker.replaceChildren(el("option", { value: "" }, "(all services)"),
      ...names.map((n) => el("option", { value: n }, n)));
  }
  const matches = (node) => !filter.value || node.textContent.toLowerCase().includes(filter.value.toLowerCase());
  function counted() {
    const shown = out.querySelectorAll(".line:not(.hidden)").length;
    count.textContent = filter.value ? `${shown} of ${out.childNodes.length} lines` : `${out.childNodes.length} lines`;
  }
  function colourOf(service) {
    if (!colours.has(service)) colours.set(service, `svc-${colours.size % 8}`);
    return colours.get(service);
  }
  // In time order: almost always at the end, so look from the end.
  function insert(node, time) {
    let after = out.lastChild;
    while (after && after.dataset.time > time) after = after.previousSibling;
    if (after) after.after(node); else out.prepend(node);
  }
  function add(data) {
    if (data.time <= (lastTime.get(data.service) || "")) return; // shown before a reconnect
    lastTime.set(data.service, data.time);
    const when = new Date(data.time);
    const clock = isNaN(when) ? "" : when.toLocaleTimeString(undefined, { hour12: false });
    const node = el("div", { class: `line ${colourOf(data.service)}`, "data-time": data.time, "data-service": data.service },
      el("span", { class: "when", title: data.time }, clock), " ",
      el("span", { class: "who" }, data.service), " ", data.line);
    if (!matches(node)) node.classList.add("hidden");
    const atEnd = out.scrollTop + out.clientHeight >= out.scrollHeight - 20;
    insert(node, data.time);
    while (out.childNodes.length > MAX_LOG_LINES) out.firstChild.remove();
    if (atEnd) out.scrollTop = out.scrollHeight;
  }
  function open(fresh) {
    if (source) source.close();
    clearTimeout(reopen);
    if (fresh) { out.replaceChildren(); lastTime.clear(); colours.clear(); }
    message.textContent = "";
    const [project, env] = envPicker.value.split("/");
    const query = { project, env, follow: follow.checked ? "true" : "false", tail: "500" };
    if (servicePicker.value) query.service = servicePicker.value;
    // after a reconnect: from the newest line shown on (the ones at that time are skipped)
    const newest = [...lastTime.values()].sort().pop();
    if (!fresh && newest) query.since = newest;
    else if (since.value.trim()) query.since = since.value.trim();
    const url = `/api/logs?${new URLSearchParams(query)}`;
    history.replaceState(null, "", `/logs?${new URLSearchParams({ project, env, service: servicePicker.value, since: since.value, q: filter.value })}`);
    source = new EventSource(onHost(url));
    source.onmessage = (m) => {
      const data = JSON.parse(m.data);
      if (data.end) {
        source.close();
        // the containers stopped: their logs go on when they run again
        if (follow.checked) reopen = setTimeout(() => open(false), 3000);
      } else add(data);
      counted();
    };
    // A refusal (a bad "since", a container gone) is said; a lost connection is tried again.
    source.onerror = async () => {
      source.close();
      const probe = new URLSearchParams({ ...query, tail: "0", follow: "false" });
      try {
        await api(`/api/logs?${probe}`);
        reopen = setTimeout(() => open(false), 3000);
      } catch (error) {
        if (error instanceof TypeError) reopen = setTimeout(() => open(false), 3000);
        else message.textContent = error.message;
      }
    };
  }
  envPicker.addEventListener("change", () => { fillServices(); open(true); });
  servicePicker.addEventListener("change", () => open(true));
  follow.addEventListener("change", () => open(true));
  since.addEventListener("change", () => open(true));
  filter.addEventListener("input", () => {
    for (const node of out.childNodes) node.classList.toggle("hidden", !matches(node));
    counted();
  });
  if (params.get("project")) envPicker.value = `${params.get("project")}/${params.get("env")}`;
  fillServices();
  if (params.get("service")) servicePicker.value = params.get("service");
  since.value = params.get("since") || "";
  filter.value = params.get("q") || "";
  if (envPicker.value) open(true);
}

pages.logs = logsPage;
