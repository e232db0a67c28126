// opskit dashboard: the operations page (app.js holds what the pages share).
"use strict";

async function operationsPage() {
  const { projects } = await api("/api/projects");
  if (role !== "operator") {
    main.append(el("p", { id: "viewer-note" }, "Viewers see runs; operators start them."));
  } else {
    const form = el("form", { class: "operation", id: "operation" });
    const field = (label, input) => { form.append(el("label", { for: input.id }, label), input); return input; };
    const operation = field("Operation", el("select", { id: "op" },
      ...["backup", "verify", "restore", "sync", "promote", "rebuild", "start", "stop", "restart", "drill",
        "offsite-upload", "offsite-verify", "offsite-download"].map((o) => el("option", { value: o }, o))));
    const project = field("Project", el("select", { id: "project" }, ...projects.map((p) => el("option", { value: p.name }, p.name))));
    const env = field("Env", el("select", { id: "env" }));
    const direction = field("Direction", el("select", { id: "direction" }));
    const archive = field("Archive", el("select", { id: "archive" }));
    const service = field("Service", el("select", { id: "service" }));
    const { envs: running } = await api("/api/overview?checks=false")  // the containers only;
    const lifecycle = ["start", "stop", "restart"];
    const withArchive = ["restore", "drill", "offsite-upload", "offsite-verify", "offsite-download"];
    const dry = field("Dry run", el("input", { type: "checkbox", id: "dry-run" }));
    const confirm = field("Type the project name", el("input", { id: "confirm", autocomplete: "off" }));
    const submit = el("button", { class: "wide", id: "start" }, "Start");
    form.append(submit);
    main.append(form, el("div", { id: "preview" }));
    const current = () => projects.find((p) => p.name === project.value);
    const rowOf = (input) => [input.previousSibling, input];
    async function update() {
      const p = current(), op = operation.value;
      env.replaceChildren(...p.envs.map((e) => el("option", { value: e }, e)));
      const pairs = op === "sync" ? p.sync_pairs : p.envs.slice(0, -1).map((e, i) => [e, p.envs[i + 1]]);
      direction.replaceChildren(...pairs.map(([a, b]) => el("option", { value: `${a}:${b}` }, `${a} → ${b}`)));
      for (const node of rowOf(direction)) node.classList.toggle("hidden", !["sync", "promote"].includes(op));
      for (const node of rowOf(env)) node.classList.toggle("hidden", ["sync", "promote"].includes(op));
      for (const node of rowOf(archive)) node.classList.toggle("hidden", !withArchive.includes(op));
      for (const node of rowOf(service)) node.classList.toggle("hidden", !lifecycle.includes(op));
      updateServices();
      for (const node of rowOf(dry)) node.classList.toggle("hidden", !["sync", "promote", "rebuild"].includes(op));
      await updateArchives();
      updateConfirm();
    }
    // Each change of the form asks for the archives again; only the newest answer is
    // shown (an older one, for the project or env chosen before, can come after it: CI 36).
    let archivesAsked = 0;
    async function updateArchives() {
      if (!withArchive.includes(operation.value)) return;
      const asked = ++archivesAsked;
      const query = `project=${encodeURIComponent(project.value)}&env=${encodeURIComponent(env.value)}`;
      if (operation.value === "offsite-download") {  // those whose local copy is gone
        const data = await api(`/api/offsite?${query}`);
        if (asked !== archivesAsked) return;
        archive.replaceChildren(...data.archives.filter((a) => !a.local && a.copied)
          .map((a) => el("option", { value: a.archive }, `${a.archive} (offsite only)`)));
        return;
      }
      const data = await api(`/api/backups?${query}`);
      if (asked !== archivesAsked) return;
      archive.replaceChildren(...data.archives.map((a) => el("option", { value: a.name }, `${a.name} (${a.verified})`)));
    }
    function updateServices() {
      const found = running.find((e) => e.project === project.value && e.env === env.value);
      const names = [...new Set((found ? found.containers : []).map((c) => c.service))];
      service.replaceChildren(el("option", { value: "" }, "(the whole env)"),
        ...names.map((n) => el("option", { value: n }, n)));
    }
    function target() {
      const op = operation.value;
      return ["sync", "promote"].includes(op) ? direction.value.split(":")[1] : env.value;
    }
    function updateConfirm() {
      const p = current();
      const changes = ["restore", "sync", "promote", "rebuild", "stop", "restart"].includes(operation.value) && !dry.checked;
      const last = target() === p.envs[p.envs.length - 1];
      for (const node of rowOf(confirm)) node.classList.toggle("hidden", !(changes && last));
    }
    const unpreview = () => { delete form.dataset.previewed; };
    for (const input of [operation, project, direction, dry]) input.addEventListener("change", unpreview);
    operation.addEventListener("change", update);
    project.addEventListener("change", update);
    env.addEventListener("change", () => { updateArchives(); updateServices(); updateConfirm(); });
    direction.addEventListener("change", updateConfirm);
    dry.addEventListener("change", updateConfirm);
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const op = operation.value;
      const request = { operation: op, project: project.value, dry_run: dry.checked, confirm: confirm.value };
      if (["sync", "promote"].includes(op)) [request.from, request.to] = direction.value.split(":");
      else request.env = env.value;
      if (withArchive.includes(op)) request.archive = archive.value;
      if (lifecycle.includes(op) && service.value) request.service = service.value;
      const preview = document.querySelector("#preview");
      try {
        if (op === "promote" && !dry.checked && !form.dataset.previewed) {
          // A promotion shows its preview (a dry run) first; the second click starts it.
          const run = await api("/api/runs", { method: "POST", body: JSON.stringify({ ...request, dry_run: true }) });
          preview.replaceChildren(el("p", { class: "preview" }, "Preview below; press Start again to promote."));
          form.dataset.previewed = "1";
          await attach(run, runsArea);
          return;
        }
        const run = await api("/api/runs", { method: "POST", body: JSON.stringify(request) });
        delete form.dataset.previewed;  // only once it started: a refusal keeps the preview
        preview.replaceChildren();
        await attach(run, runsArea);
      } catch (error) {
        preview.replaceChildren(el("p", { class: "bad", id: "operation-error" }, error.message));
      }
    });
    await update();
  }
  runsArea = el("section", { id: "runs-area" });
  main.append(runsArea);
  const data = await api("/api/runs");
  for (const run of data.runs.filter((r) => r.state !== "finished").reverse()) await attach(run, runsArea);
  openStream(data.last_event);
}

pages.operations = operationsPage;
