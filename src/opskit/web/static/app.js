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

// The host of the fleet a page is about (?host=NAME; none: the dashboard's own root): the
// page's API calls, streams and links keep it.
const host = new URLSearchParams(location.search).get("host");
function onHost(path) {
  if (!host) return path;
  const url = new URL(path, location.origin);
  if (!url.searchParams.has("host")) url.searchParams.set("host", host);
  return url.pathname + url.search;
}
document.addEventListener("click", (event) => {
  const link = event.target.closest && event.target.closest("a[href^='/']");
  if (link) link.setAttribute("href", onHost(link.getAttribute("href")));
}, true);
document.addEventListener("DOMContentLoaded", () => {
  for (const link of document.querySelectorAll("nav a")) link.setAttribute("href", onHost(link.getAttribute("href")));
  const picker = document.querySelector("#host-picker");
  if (!picker) return;
  picker.value = host || picker.options[0].value;
  picker.addEventListener("change", () => {
    // another host's projects differ: the page of that host, without the old one's query
    location.assign(picker.selectedIndex === 0 ? location.pathname : `${location.pathname}?host=${encodeURIComponent(picker.value)}`);
  });
  // the runs page lists every host's runs (a column says whose)
  if (page !== "runs") document.querySelector("h1").append(el("span", { class: "host-name" }, ` · ${picker.value}`));
});

async function api(path, options = {}) {
  const response = await fetch(onHost(path), {
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
    case "output": {
      // a command's narration goes to stderr: only its warnings and errors stand out
      const said = /^\[(warning|error)\]/.exec(event.line);
      return [event.line, said ? (said[1] === "error" ? "finished-bad" : "warning") : event.stream];
    }
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
  // a page that shows what a run changes (the backups page) reads it again when it ends
  if (event.event === "run.finished") document.dispatchEvent(new CustomEvent("run-finished", { detail: event }));
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
  const fleet = Boolean(document.querySelector("#host-picker")); // a host column then
  table.replaceChildren(el("tr", {}, el("th", {}, "run"), ...(fleet ? [el("th", {}, "host")] : []),
    el("th", {}, "command"), el("th", {}, "by"), el("th", {}, "state"), el("th", {}, "exit")));
  for (const run of data.runs) {
    const open = el("a", { href: "#", "data-run": run.id }, run.id);
    open.addEventListener("click", (e) => { e.preventDefault(); attach(run, runsArea); });
    table.append(el("tr", { "data-host": run.host }, el("td", {}, open),
      ...(fleet ? [el("td", { class: "run-host" }, run.host)] : []), el("td", {}, run.command),
      el("td", {}, run.user), el("td", { class: run.state }, run.state), el("td", {}, run.exit_code ?? "")));
  }
  return data;
}

// -- pages ---------------------------------------------------------------------------------

async function startRun(request, area) {
  const run = await api("/api/runs", { method: "POST", body: JSON.stringify(request) });
  await attach(run, area);
  return run;
}

// Each page's script (static/pages/NAME.js, loaded after this one) adds its function here;
// it runs once the document is parsed, when every script has.
const pages = {};
document.addEventListener("DOMContentLoaded", () => {
  if (pages[page]) pages[page]().catch((error) => main.append(el("p", { class: "bad" }, error.message)));
});
