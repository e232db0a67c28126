// opskit dashboard: the backups page (app.js holds what the pages share).
"use strict";

async function backupsPage() {
  // project -> env -> archive, with verify, restore and download
  const { projects } = await api("/api/projects");
  const nav = el("div", { id: "backup-nav" });
  const table = el("table", { id: "archives" });
  runsArea = el("section", { id: "runs-area" });
  const message = el("div", { id: "backup-message" });
  main.append(nav, message, table, runsArea);
  await followRuns();
  const params = new URLSearchParams(location.search);
  for (const p of projects) {
    const envs = p.envs.map((e) => {
      const link = el("a", { href: `/backups?project=${p.name}&env=${e}`, "data-env": `${p.name}/${e}` }, e);
      return [" ", link];
    }).flat();
    nav.append(el("div", {}, el("strong", {}, p.name), ...envs));
  }
  const project = params.get("project"), env = params.get("env");
  if (!project || !env) return;
  const p = projects.find((x) => x.name === project);
  const data = await api(`/api/backups?project=${encodeURIComponent(project)}&env=${encodeURIComponent(env)}`);
  table.append(el("tr", {}, ...["archive", "created", "size", "components", "verified", "drilled", "offsite", ""].map((h) => el("th", {}, h))));
  for (const a of data.archives) {
    const actions = el("td", {});
    if (role === "operator") {  // an archive holds all of the env's data: operators only
      const download = el("a", { href: `/api/archives/${project}/${env}/${a.name}.tar`, class: "download" }, "download");
      actions.append(download, " ");
      const verify = el("button", { class: "verify" }, "verify");
      verify.addEventListener("click", () => startRun({ operation: "verify", project, env, archive: a.name }, runsArea));
      const restore = el("button", { class: "restore" }, "restore");
      restore.addEventListener("click", async () => {
        const last = p.envs[p.envs.length - 1] === env;
        const request = { operation: "restore", project, env, archive: a.name };
        if (last) {
          const typed = window.prompt(`This replaces the data of ${env}. Type the project name (${project}) to go on.`);
          if (typed === null) return;
          request.confirm = typed;
        } else if (!window.confirm(`Replace the data of ${project} ${env} with ${a.name}?`)) return;
        try { await startRun(request, runsArea); message.replaceChildren(); }
        catch (error) { message.replaceChildren(el("p", { class: "bad" }, error.message)); }
      });
      actions.append(verify, " ", restore);
    }
    table.append(el("tr", { "data-archive": a.name }, el("td", {}, a.name), el("td", {}, localTime(a.created)),
      el("td", { "data-bytes": a.size }, bytes(a.size)), el("td", {}, partsOf(a)), el("td", { class: a.verified }, a.verified),
      el("td", {}, a.drilled), el("td", {}, a.offsite), actions));
  }
}

pages.backups = backupsPage;
