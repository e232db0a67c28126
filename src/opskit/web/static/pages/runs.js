// opskit dashboard: the runs page (app.js holds what the pages share).
"use strict";

async function runsPage() {
  main.append(el("table", { id: "runs-table" }));
  runsArea = el("section", { id: "runs-area" });
  main.append(runsArea);
  const data = await listRuns();
  for (const run of data.runs.filter((r) => r.state !== "finished").reverse()) await attach(run, runsArea);
  openStream(data.last_event);
}

pages.runs = runsPage;
