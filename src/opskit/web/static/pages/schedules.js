// opskit dashboard: the schedules page (app.js holds what the pages share).
"use strict";

async function schedulesPage() {
  const data = await api("/api/schedules");
  const table = el("table", { id: "schedules" }, el("tr", {},
    ...["project", "backup schedule", "next run", ""].map((h) => el("th", {}, h))));
  runsArea = el("section", { id: "runs-area" });
  const message = el("div", { id: "schedule-message" });
  for (const row of data.schedules) {
    const cell = el("td", {});
    if (row.backup && role === "operator") {
      const input = el("input", { value: row.schedule || "", class: "schedule", "data-project": row.project, size: 24 });
      const save = el("button", { class: "save-schedule" }, "save");
      save.addEventListener("click", async () => {
        try {
          const run = await api(`/api/schedules/${encodeURIComponent(row.project)}`,
            { method: "PUT", body: JSON.stringify({ schedule: input.value }) });
          message.replaceChildren(el("p", { class: "ok" }, `${row.project}: saved; the timers are being regenerated`));
          await attach(run, runsArea);
        } catch (error) {
          message.replaceChildren(el("p", { class: "bad", id: "schedule-error" }, error.message));
        }
      });
      cell.append(input, " ", save);
    } else cell.append(row.backup ? row.schedule || "by hand only" : "no backup section");
    table.append(el("tr", { "data-project": row.project }, el("td", {}, row.project), cell,
      el("td", {}, row.next || "-"), el("td", {}, row.descriptor)));
  }
  main.append(el("p", {}, `Timers are written to ${data.unit_dir}.`), message, table, runsArea);
  await followRuns();
}

pages.schedules = schedulesPage;
