// opskit dashboard: the history page (app.js holds what the pages share).
"use strict";

async function historyPage() {
  const { entries } = await api("/api/history");
  const table = el("table", { id: "history" }, el("tr", {},
    ...["time", "command", "project", "envs", "result", "user", "archive"].map((h) => el("th", {}, h))));
  for (const e of entries.slice().reverse()) {
    table.append(el("tr", {}, el("td", {}, e.time || ""), el("td", {}, e.command || ""),
      el("td", {}, e.project || ""), el("td", {}, (e.envs || [e.env]).filter(Boolean).join(" ")),
      el("td", { class: e.result }, e.result || ""), el("td", {}, e.user || ""),
      el("td", {}, e.archive || e.safety_backup || "")));
  }
  main.append(table);
}

pages.history = historyPage;
