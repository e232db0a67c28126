// opskit dashboard: the overview page, one card per env (app.js holds what the pages share).
"use strict";

const STATUS_ORDER = { error: 0, failing: 1, checking: 2, ok: 3 };
// the folds a user opened stay open when the cards are drawn again
const openFolds = new Set();

function fold(key, cls, summary, ...content) {
  const details = el("details", { class: cls }, el("summary", {}, summary), ...content);
  details.open = openFolds.has(key);
  details.addEventListener("toggle", () => (details.open ? openFolds.add(key) : openFolds.delete(key)));
  return details;
}

function checkItem(check) {
  const name = check.env ? check.name : `${check.name} (project)`;
  return el("li", { class: `check ${check.ok ? "ok" : "bad"}`, "data-check": check.name, "data-ok": String(check.ok) },
    el("b", {}, name), check.ok ? el("span", { class: "detail" }, ` ${check.detail}`) : el("div", { class: "detail" }, check.detail));
}

function checksOf(env, key) {
  if (env.checks === null || env.checks === undefined) return el("p", { class: "checking" }, "checks being taken…");
  const failing = env.checks.filter((c) => !c.ok), passing = env.checks.filter((c) => c.ok);
  const parts = [];
  if (failing.length) parts.push(el("ul", { class: "checks failing" }, ...failing.map(checkItem)));
  if (passing.length) {
    const label = `${passing.length} check${passing.length === 1 ? "" : "s"} ok`;
    parts.push(fold(`${key} checks`, "ok-checks", label, el("ul", { class: "checks" }, ...passing.map(checkItem))));
  }
  if (!env.checks.length) parts.push(el("p", { class: "muted" }, "no checks"));
  return el("div", { class: "card-checks" }, ...parts);
}

function fact(name, ...value) {
  return [el("dt", {}, name), el("dd", { "data-fact": name }, ...value)];
}

function stateOf(value) {
  return el("span", { class: value === "ok" ? "ok" : value === "never" ? "muted" : "bad" }, value);
}

function factsOf(env) {
  const rows = [];
  if (env.checks === null || env.checks === undefined) return el("dl", { class: "facts" });
  const archive = env.newest_backup, fresh = env.freshness;
  if (archive) {
    const made = el("span", { title: `${archive.name}\n${archive.created}` }, `${age(archive.created)} ago`);
    const late = fresh ? el("span", { class: fresh.ok ? "ok" : "bad", title: fresh.detail }, fresh.ok ? " on time" : " late") : "";
    rows.push(...fact("backup", made, late, ` · ${bytes(archive.size)}`));
    rows.push(...fact("offsite", stateOf(archive.offsite), " · drill ", stateOf(archive.drilled)));
  } else if (env.archive_error) {
    rows.push(...fact("backup", el("span", { class: "bad" }, env.archive_error)));
  } else if (env.backed_up) {
    const said = env.archives ? `no verified archive (${env.archives} not verified)` : "no archive yet";
    // late against a schedule is bad; without one, it is only said
    rows.push(...fact("backup", el("span", { class: env.schedule ? "bad" : "muted", title: fresh ? fresh.detail : "" }, said)));
  } else {
    rows.push(...fact("backup", el("span", { class: "muted" }, "not backed up by opskit")));
  }
  if (env.schedule) rows.push(...fact("next run", el("span", { title: env.schedule }, env.next_run || env.schedule)));
  const last = env.last_run;
  if (last) {
    const link = el("a", { href: `/runs?run=${encodeURIComponent(last.run)}`, "data-run": last.run }, `${last.kind} ${last.result}`);
    link.className = last.result === "ok" ? "ok" : "bad";
    rows.push(...fact("last run", link, ` · ${age(last.finished)} ago`, last.error ? el("div", { class: "detail bad" }, last.error) : ""));
  } else if (env.schedule) {
    rows.push(...fact("last run", el("span", { class: "muted" }, "none recorded")));
  }
  const disk = env.disk;
  if (disk && disk.used_percent !== null) {
    const data = disk.data_bytes !== null ? `data ${bytes(disk.data_bytes)} at the last backup · ` : "";
    rows.push(...fact("disk", el("span", { title: disk.path }, `${data}${disk.used_percent}% used, ${bytes(disk.free_bytes)} free`)));
  }
  return el("dl", { class: "facts" }, ...rows);
}

function containersOf(env, key) {
  const containers = env.containers;
  const counts = {};
  for (const c of containers) counts[c.state] = (counts[c.state] || 0) + 1;
  const said = Object.entries(counts).map(([state, n]) => `${n} ${state}`).join(", ");
  const summary = `${containers.length} container${containers.length === 1 ? "" : "s"}${said ? ": " + said : ""}`;
  const table = el("table", { class: "containers" });
  for (const c of containers) {
    const action = el("td", {});
    if (role === "operator" && body.dataset.terminal === "1" && c.state === "running") {
      const button = el("button", { class: "open-terminal" }, "terminal");
      button.addEventListener("click", () => openTerminal(env.project, env.env, c.service));
      action.append(button);
    }
    table.append(el("tr", { "data-project": env.project, "data-env": env.env, "data-service": c.service, "data-state": c.state },
      el("td", {}, c.service), el("td", { class: "name" }, c.name || "-"),
      el("td", { class: `state ${c.state}`, "data-state": c.state }, c.state),
      el("td", { class: `health ${c.health}`, "data-health": c.health }, c.health), action));
  }
  const fold_ = fold(`${key} containers`, "containers", summary, table);
  fold_.dataset.count = String(containers.length);
  return fold_;
}

function card(env, engine) {
  const key = `${env.project} ${env.env}`;
  const where = new URLSearchParams({ project: env.project, env: env.env });
  const links = env.env && !env.error ? el("span", { class: "card-links" },
    el("a", { href: `/logs?${where}`, class: "logs-link" }, "logs"), " ",
    el("a", { href: `/backups?${where}`, class: "backups-link" }, "backups")) : "";
  const head = el("header", {}, el("h2", {}, env.project, " ", el("span", { class: "env" }, env.env || "descriptor")),
    links, el("span", { class: `status status-${env.status}` }, env.status));
  const node = el("article", { class: `env-card is-${env.status}`, "data-project": env.project, "data-env": env.env, "data-status": env.status }, head);
  if (env.error) {
    node.append(el("p", { class: "card-error" }, env.error));
    return node;
  }
  if (engine) node.append(el("p", { class: "card-error engine" }, engine));
  // the engine's own check says what the line above says already
  const shown = engine && env.checks ? { ...env, checks: env.checks.filter((c) => c.name !== "docker engine") } : env;
  node.append(checksOf(shown, key), factsOf(env), engine ? el("p", { class: "muted" }, "containers: unknown") : containersOf(env, key));
  return node;
}

function drawOverview(section, data) {
  if (data.unreachable) { // a server of the fleet that cannot be reached: one card says so
    section.replaceChildren(el("article", { class: "env-card is-error host-unreachable", "data-status": "unreachable" },
      el("header", {}, el("h2", {}, data.host), el("span", { class: "status status-error" }, "unreachable")),
      el("p", { class: "card-error" }, data.unreachable)));
    section.dataset.generation = String(data.generation);
    return;
  }
  const envs = [...data.envs].sort((a, b) => STATUS_ORDER[a.status] - STATUS_ORDER[b.status]
    || a.project.localeCompare(b.project) || a.env.localeCompare(b.env));
  const counts = {};
  for (const env of envs) counts[env.status] = (counts[env.status] || 0) + 1;
  const said = Object.keys(STATUS_ORDER).filter((s) => counts[s]).map((s) => `${counts[s]} ${s}`).join(", ");
  const checked = data.checked_at ? el("span", { class: "muted" }, " · checked ", localTime(data.checked_at)) : "";
  section.replaceChildren(
    el("p", { class: "overview-summary" }, `${envs.length} env${envs.length === 1 ? "" : "s"}: ${said}`, checked),
    el("div", { class: "cards" }, ...envs.map((env) => card(env, data.engine))));
  section.dataset.generation = String(data.generation);
  section.dataset.updated = String(Date.now());
}

// The overview follows the server: a container's change on the engine or a job's end is a
// "changed" event (the containers read again), newer checks a "checked" one; the cards are
// read again (once for a burst of them).
async function overviewPage() {
  const section = el("section", { id: "overview" });
  main.append(section, el("section", { id: "terminal-area" }));
  let pending = null, reading = false, again = false;
  async function reread() {
    if (reading) { again = true; return; }
    reading = true;
    try {
      drawOverview(section, await api("/api/overview"));
      section.classList.remove("unreachable");
    } catch (error) {
      section.classList.add("unreachable");
      section.replaceChildren(el("p", { class: "card-error" }, `the overview cannot be read: ${error.message}`));
    }
    reading = false;
    if (again) { again = false; reread(); }
  }
  await reread();
  const changes = new EventSource(onHost("/api/overview/changes"));
  changes.onmessage = () => {
    if (pending) return;
    pending = setTimeout(() => { pending = null; reread(); }, 50);
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
  const socket = new WebSocket(`${scheme}://${location.host}${onHost(`/api/terminal?${query}`)}`);
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

pages.overview = overviewPage;
