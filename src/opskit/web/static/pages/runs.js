// opskit dashboard: the runs page (app.js holds what the pages share).
"use strict";

async function runsPage() {
  main.append(el("table", { id: "runs-table" }));
  runsArea = el("section", { id: "runs-area" });
  main.append(runsArea);
  const data = await listRuns();
  for (const run of data.runs.filter((r) => r.state !== "finished").reverse()) await attach(run, runsArea);
  // /runs?run=ID (the overview's link to an env's last scheduled run): that run's log, open
  const wanted = new URLSearchParams(location.search).get("run");
  if (wanted) {
    try { await attach((await api(`/api/runs/${encodeURIComponent(wanted)}`)).run, runsArea); }
    catch (error) { runsArea.prepend(el("p", { class: "bad" }, `run ${wanted}: ${error.message}`)); }
  }
  openStream(data.last_event);
}

pages.runs = runsPage;
