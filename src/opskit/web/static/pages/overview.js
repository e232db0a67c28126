// opskit dashboard: the overview page (app.js holds what the pages share).
"use strict";

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

pages.overview = overviewPage;
