// opskit dashboard: plain JavaScript, no build step. One EventSource per tab carries the
// events of every run; each event has an id, and the browser's reconnect sends the last
// one (Last-Event-ID), so a log continues without a gap or a repeated line.
"use strict";

const body = document.body;
const page = body.dataset.page;
const role = body.dataset.role;
const main = document.querySelector("main");

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("data-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

async function api(path, options = {}) {
  const response = await fetch(path, {
    credentials: "same-origin",
    headers: { "Content-Type": "application/json" },
    ...options,
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.detail || data.error || response.statusText);
  return data;
}

function age(iso) {
  if (!iso) return "-";
  const minutes = Math.round((Date.now() - new Date(iso).getTime()) / 60000);
  if (minutes < 60) return `${minutes} min`;
  if (minutes < 48 * 60) return `${Math.round(minutes / 60)} h`;
  return `${Math.round(minutes / 1440)} d`;
}

// 512 B, 3.4 KiB, 12.0 MiB, 1.2 GiB: small archives are not "0.0 MiB"
function bytes(n) {
  if (n === null || n === undefined) return "-";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = n, unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

// The browser's local time (the ISO time, UTC, in the title)
function localTime(iso) {
  if (!iso) return el("span", {}, "-");
  const moment = new Date(iso);
  const text = moment.toLocaleString(undefined, { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" });
  return el("time", { dateTime: iso, title: iso }, text);
}

// An archive's components, folded: each with its size and its rows or files
function partsOf(archive) {
  const parts = archive.parts || [];
  const items = parts.map((p) => {
    const many = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
    const counted = p.rows !== null ? `${many(p.rows, "row")} in ${many(p.tables, "table")}`
      : p.files !== null ? many(p.files, "file") : "";
    const sizes = `${bytes(p.bytes)} (stored ${bytes(p.stored_bytes)})`;
    return el("li", { "data-part": p.key }, `${p.key}: ${sizes}${counted ? `, ${counted}` : ""}`);
  });
  return el("details", { class: "parts" }, el("summary", {}, `${parts.length} components`), el("ul", {}, ...items));
}

function seconds(s) {
  if (!isFinite(s)) return "?";
  if (s < 90) return `${Math.round(s)} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

// A phase's bytes: a bar where the total is known, with the rate and what is left
const rates = new Map(); // run id + phase -> [first time, first bytes]
function progressOf(event, box) {
  const key = `${event.run} ${event.phase}`;
  const now = performance.now();
  if (!rates.has(key)) rates.set(key, [now, event.done]);
  const [since, from] = rates.get(key);
  const rate = (event.done - from) / Math.max((now - since) / 1000, 0.001);
  const parts = [`${event.phase}: ${bytes(event.done)}${event.total ? ` of ${bytes(event.total)}` : ""}`];
  if (now - since > 1000 && rate > 0) {
    parts.push(`${bytes(Math.round(rate))}/s`);
    if (event.total) parts.push(`${seconds((event.total - event.done) / rate)} left`);
  }
  let bar = box.querySelector("progress"), label = box.querySelector(".progress-text");
  if (!label) { label = el("span", { class: "progress-text" }); box.append(label); }
  if (event.total) {
    if (!bar) { bar = el("progress", {}); box.prepend(bar); }
    bar.max = event.total;
    bar.value = Math.min(event.done, event.total);
  } else if (bar) bar.remove();
  label.textContent = parts.join(", ");
}

// -- logs of runs --------------------------------------------------------------------------

const lastSeen = new Map(); // run id -> the last event id shown
const logs = new Map(); // run id -> its log element

function lineOf(event) {
  switch (event.event) {
    case "job.started": return [`▶ ${event.kind} ${event.project} ${event.envs.join(" ")}`, ""];
    case "phase.started": return [`— ${event.phase}`, ""];
    case "phase.finished": return [`  ${event.phase}: ${event.ok ? "done" : "failed"} (${event.seconds} s)`, ""];
    case "log": return [event.line, ""];
    case "warning": return [`[warning] ${event.message}`, "warning"];
    case "output": return [event.line, event.stream];
    case "job.finished":
      return [`■ ${event.kind}: ${event.result}${event.error ? " — " + event.error : ""}`,
              event.result === "ok" ? "finished-ok" : "finished-bad"];
    case "run.finished": return [`exit ${event.exit_code}`, event.exit_code === 0 ? "finished-ok" : "finished-bad"];
    default: return [null, ""];
  }
}

const waiting = new Map(); // run id -> live events that came while its stored ones load

function show(event) {
  const log = logs.get(event.run);
  if (!log) {
    if (waiting.has(event.run)) waiting.get(event.run).push(event);
    return;
  }
  if (event.id <= (lastSeen.get(event.run) || 0)) return; // delivered already
  lastSeen.set(event.run, event.id);
  if (event.event === "progress") {
    const box = log.parentNode.querySelector(".progress");
    if (box) progressOf(event, box);
    return;
  }
  const [text, kind] = lineOf(event);
  if (text === null) return;
  log.append(el("div", { class: kind, "data-id": event.id, "data-event": event.event }, text));
  log.scrollTop = log.scrollHeight;
  if ((event.event === "output" && event.stream === "stdout") || ["job.started", "run.finished"].includes(event.event)) refreshRuns();
}

// A run's log: its stored events first, then the live ones that came meanwhile, in id order
// (show() skips what it has shown), so nothing is missed and nothing shown twice.
async function attach(run, container) {
  if (logs.has(run.id) || waiting.has(run.id)) return;
  waiting.set(run.id, []);
  const box = el("section", { class: "run", "data-run": run.id },
    el("h2", {}, `${run.command}`), el("div", { class: "progress" }),
    el("div", { class: "log", "data-run": run.id }));
  container.prepend(box);
  const stored = await api(`/api/runs/${encodeURIComponent(run.id)}`);
  logs.set(run.id, box.querySelector(".log"));
  const live = waiting.get(run.id);
  waiting.delete(run.id);
  for (const event of [...stored.events, ...live].sort((a, b) => a.id - b.id)) show(event);
}

let stream = null;
function openStream(after) {
  if (stream) return;
  stream = new EventSource(`/api/stream?after=${after}`);
  stream.onmessage = (message) => {
    const event = JSON.parse(message.data);
    event.id = Number(message.lastEventId);
    if (!logs.has(event.run) && !waiting.has(event.run)) autoAttach(event.run);
    show(event);
  };
}

// Attach every run that starts from now on (this tab's or anyone's) and follow them.
async function followRuns() {
  const data = await api("/api/runs");
  openStream(data.last_event);
  return data;
}

let runsArea = null;
async function autoAttach(runId) {
  if (!runsArea) return;
  const data = await api(`/api/runs/${encodeURIComponent(runId)}`);
  await attach(data.run, runsArea);
}

let refreshing = null;
function refreshRuns() {
  if (page !== "runs" || refreshing) return;
  refreshing = setTimeout(async () => { refreshing = null; await listRuns(); }, 500);
}

async function listRuns() {
  const table = document.querySelector("#runs-table");
  if (!table) return;
  const data = await api("/api/runs");
  table.replaceChildren(el("tr", {}, el("th", {}, "run"), el("th", {}, "command"),
    el("th", {}, "by"), el("th", {}, "state"), el("th", {}, "exit")));
  for (const run of data.runs) {
    const open = el("a", { href: "#", "data-run": run.id }, run.id);
    open.addEventListener("click", (e) => { e.preventDefault(); attach(run, runsArea); });
    table.append(el("tr", {}, el("td", {}, open), el("td", {}, run.command), el("td", {}, run.user),
      el("td", { class: run.state }, run.state), el("td", {}, run.exit_code ?? "")));
  }
  return data;
}

// -- pages ---------------------------------------------------------------------------------

function overviewTable(data) {
  const table = el("table", { id: "overview" }, el("tr", {},
    ...["project", "env", "service", "container", "state", "health", "newest backup", "age", "verified", "drilled", "offsite", ""]
      .map((h) => el("th", {}, h))));
  for (const env of data.envs) {
    const archive = env.newest_backup;
    const rows = env.containers.length ? env.containers : [{ service: "-", state: "-", health: "-" }];
    rows.forEach((c, i) => {
      const cells = [env.project, env.env, c.service, c.name || "-"].map((v) => el("td", {}, v));
      cells.push(el("td", { class: c.state }, c.state), el("td", { class: c.health, "data-health": c.health }, c.health));
      if (i === 0) {
        cells.push(el("td", {}, archive ? archive.name : "none"), el("td", {}, archive ? age(archive.created) : "-"),
          el("td", {}, archive ? archive.verified : "-"), el("td", {}, archive ? archive.drilled : "-"),
          el("td", {}, archive ? archive.offsite : "-"));
      } else cells.push(...[1, 2, 3, 4, 5].map(() => el("td", {})));
      const action = el("td", {});
      if (role === "operator" && body.dataset.terminal === "1" && c.state === "running") {
        const button = el("button", { class: "open-terminal" }, "terminal");
        button.addEventListener("click", () => openTerminal(env.project, env.env, c.service));
        action.append(button);
      }
      cells.push(action);
      table.append(el("tr", { "data-project": env.project, "data-env": env.env, "data-service": c.service }, ...cells));
    });
  }
  return table;
}

// The overview follows the server: a container's change on the engine or a job's end is a
// "changed" event, and the table is read again (once for a burst of them).
async function overviewPage() {
  let table = overviewTable(await api("/api/overview"));
  main.append(table, el("section", { id: "terminal-area" }));
  let pending = null, reading = false, again = false;
  async function reread() {
    if (reading) { again = true; return; }
    reading = true;
    try {
      const fresh = overviewTable(await api("/api/overview"));
      table.replaceWith(fresh);
      table = fresh;
      table.dataset.updated = String(Date.now());
    } catch (error) { /* the next change tries again */ }
    reading = false;
    if (again) { again = false; reread(); }
  }
  const changes = new EventSource("/api/overview/changes");
  changes.onmessage = () => {
    if (pending) return;
    pending = setTimeout(() => { pending = null; reread(); }, 150);
  };
  window.addEventListener("pagehide", () => changes.close());
}

// One terminal at a time: opening another ends the session of the one before.
let openedTerminal = null;
window.addEventListener("resize", () => openedTerminal && openedTerminal.fit.fit());

function openTerminal(project, env, service) {
  if (openedTerminal) {
    openedTerminal.socket.close();
    openedTerminal.term.dispose();
  }
  const area = document.querySelector("#terminal-area");
  area.replaceChildren(el("h2", {}, `${project} ${env} ${service}`), el("div", { id: "terminal" }));
  const term = new Terminal({ convertEol: false, fontSize: 13 });
  const fit = new FitAddon.FitAddon();
  term.loadAddon(fit);
  term.open(document.querySelector("#terminal"));
  fit.fit();
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const query = new URLSearchParams({ project, env, service });
  const socket = new WebSocket(`${scheme}://${location.host}/api/terminal?${query}`);
  socket.binaryType = "arraybuffer";
  socket.onopen = () => socket.send(JSON.stringify({ resize: [term.cols, term.rows] }));
  socket.onmessage = (m) => term.write(new Uint8Array(m.data));
  socket.onclose = (e) => {
    if (openedTerminal && openedTerminal.socket === socket) term.write(`\r\n[closed${e.reason ? ": " + e.reason : ""}]\r\n`);
  };
  term.onData((data) => socket.readyState === 1 && socket.send(data));
  term.onResize(({ cols, rows }) => socket.readyState === 1 && socket.send(JSON.stringify({ resize: [cols, rows] })));
  openedTerminal = { term, fit, socket };
  window.opskitTerminal = term; // for tests: its buffer holds what the container printed
}

async function operationsPage() {
  const { projects } = await api("/api/projects");
  if (role !== "operator") {
    main.append(el("p", { id: "viewer-note" }, "Viewers see runs; operators start them."));
  } else {
    const form = el("form", { class: "operation", id: "operation" });
    const field = (label, input) => { form.append(el("label", { for: input.id }, label), input); return input; };
    const operation = field("Operation", el("select", { id: "op" },
      ...["backup", "verify", "restore", "sync", "promote", "rebuild", "start", "stop", "restart"].map((o) => el("option", { value: o }, o))));
    const project = field("Project", el("select", { id: "project" }, ...projects.map((p) => el("option", { value: p.name }, p.name))));
    const env = field("Env", el("select", { id: "env" }));
    const direction = field("Direction", el("select", { id: "direction" }));
    const archive = field("Archive", el("select", { id: "archive" }));
    const service = field("Service", el("select", { id: "service" }));
    const { envs: running } = await api("/api/overview");
    const lifecycle = ["start", "stop", "restart"];
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
      for (const node of rowOf(archive)) node.classList.toggle("hidden", op !== "restore");
      for (const node of rowOf(service)) node.classList.toggle("hidden", !lifecycle.includes(op));
      updateServices();
      for (const node of rowOf(dry)) node.classList.toggle("hidden", !["sync", "promote", "rebuild"].includes(op));
      await updateArchives();
      updateConfirm();
    }
    async function updateArchives() {
      if (operation.value !== "restore") return;
      const data = await api(`/api/backups?project=${encodeURIComponent(project.value)}&env=${encodeURIComponent(env.value)}`);
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
      if (op === "restore") request.archive = archive.value;
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

async function runsPage() {
  main.append(el("table", { id: "runs-table" }));
  runsArea = el("section", { id: "runs-area" });
  main.append(runsArea);
  const data = await listRuns();
  for (const run of data.runs.filter((r) => r.state !== "finished").reverse()) await attach(run, runsArea);
  openStream(data.last_event);
}

async function startRun(request, area) {
  const run = await api("/api/runs", { method: "POST", body: JSON.stringify(request) });
  await attach(run, area);
  return run;
}

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

const pages = {
  overview: overviewPage, operations: operationsPage, runs: runsPage,
  backups: backupsPage, logs: logsPage, history: historyPage, schedules: schedulesPage,
};
if (pages[page]) {
  pages[page]().catch((error) => main.append(el("p", { class: "bad" }, error.message)));
}
