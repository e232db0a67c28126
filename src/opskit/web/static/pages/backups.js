// opskit dashboard: the backups page (app.js holds what the pages share).
"use strict";

async function backupsPage() {
  // project -> env -> its plots and archives (local and offsite only), with their actions
  const { projects } = await api("/api/projects");
  const nav = el("div", { id: "backup-nav" });
  const plots = el("section", { id: "backup-plots" });
  const offsiteNote = el("div", { id: "offsite-note" });
  const table = el("table", { id: "archives" });
  runsArea = el("section", { id: "runs-area" });
  const message = el("div", { id: "backup-message" });
  main.append(nav, message, plots, offsiteNote, table, runsArea);
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
  const query = `project=${encodeURIComponent(project)}&env=${encodeURIComponent(env)}`;
  const mine = new Set(); // the runs this page started: their end re-reads the list

  // An operation on one archive as a run; a change to the env asks first (the typed
  // project name for its last env, as the server requires).
  async function run(request, question) {
    if (question) {
      if (p.envs[p.envs.length - 1] === env) {
        const typed = window.prompt(`${question}\nThis changes ${env}: type the project name (${project}) to go on.`);
        if (typed === null) return;
        request.confirm = typed;
      } else if (!window.confirm(question)) return;
    }
    try {
      const started = await startRun({ project, env, ...request }, runsArea);
      mine.add(started.id);
      message.replaceChildren();
    } catch (error) { message.replaceChildren(el("p", { class: "bad" }, error.message)); }
  }
  const button = (cls, text, title, onClick) => {
    const node = el("button", { class: cls, title }, text);
    node.addEventListener("click", onClick);
    return node;
  };

  function actionsOf(a, copy) {
    const cell = el("td", { class: "actions" });
    if (role !== "operator") return cell; // an archive holds all of the env's data: operators only
    const name = a.name;
    if (a.local) {
      cell.append(el("a", { href: `/api/archives/${project}/${env}/${name}.tar`, class: "download" }, "download"), " ",
        button("verify", "verify", "read the archive back against its checksums", () => run({ operation: "verify", archive: name })), " ",
        button("drill", "drill", "restore it into throw-away containers and check it; the env is not touched",
          () => run({ operation: "drill", archive: name })), " ",
        button("restore", "restore", `replace the data of ${env} with this archive`,
          () => run({ operation: "restore", archive: name }, `Replace the data of ${project} ${env} with ${name}?`)));
      if (copy && copy.copied) {
        cell.append(" ", button("offsite-verify", "verify offsite", "read the offsite copy back against the checksums",
          () => run({ operation: "offsite-verify", archive: name })));
      } else if (copy) {
        cell.append(" ", button("offsite-upload", "upload offsite", "copy it to the offsite repository, then read the copy back",
          () => run({ operation: "offsite-upload", archive: name })));
      }
    } else {
      cell.append(button("offsite-download", "bring back", "download the offsite copy into the local archives, verified",
        () => run({ operation: "offsite-download", archive: name })), " ",
        button("restore-offsite", "restore from offsite", `download the offsite copy, verify it, restore it into ${env}`,
          () => run({ operation: "restore", archive: name, offsite: true },
            `Replace the data of ${project} ${env} with ${name}, downloaded from its offsite copy?`)));
    }
    return cell;
  }

  async function load() {
    const [data, offsite] = await Promise.all([api(`/api/backups?${query}`),
      api(`/api/offsite?${query}`).catch((error) => ({ target: null, archives: [], error: error.message }))]);
    const copies = new Map(offsite.archives.map((c) => [c.archive, c]));
    offsiteNote.replaceChildren(offsite.error ? el("p", { class: "bad" }, `offsite ${offsite.target}: ${offsite.error}`)
      : offsite.target ? el("p", {}, `offsite copies in ${offsite.target}`) : el("p", {}, "no offsite target"));
    const rows = data.archives.map((a) => ({ ...a, local: true }));
    for (const c of offsite.archives) {
      if (!c.local) rows.push({ name: c.archive, created: createdOf(c.archive), local: false });
    }
    rows.sort((a, b) => (a.name < b.name ? 1 : -1));
    table.replaceChildren(el("tr", {}, ...["archive", "created", "size", "components", "verified", "drilled", "offsite", ""]
      .map((h) => el("th", {}, h))));
    for (const a of rows) {
      const copy = offsite.target && !offsite.error ? (copies.get(a.name) || { copied: false, offsite: "no" }) : null;
      const [offText, offClass] = offsiteWords(copy, offsite, a.local);
      const cells = a.local
        ? [el("td", {}, a.name), el("td", {}, localTime(a.created)), el("td", { "data-bytes": a.size }, bytes(a.size)),
          el("td", {}, partsOf(a)), stateCell("verified", ...checkWords(a.verified, a.verified_at, "verified", "verify"), a.verified),
          stateCell("drilled", ...checkWords(a.drilled, a.drilled_at, "drilled", "drill"), a.drilled)]
        : [el("td", {}, a.name, " ", el("span", { class: "tag offsite-only" }, "offsite only")), el("td", {}, localTime(a.created)),
          el("td", {}, "-"), el("td", {}, "-"), stateCell("verified", "no local copy", "never", "none"), stateCell("drilled", "-", "never", "none")];
      table.append(el("tr", { "data-archive": a.name, "data-local": a.local ? "yes" : "no", class: a.local ? "" : "offsite-only" },
        ...cells, stateCell("offsite", offText, offClass, copy ? copy.offsite : "none"), actionsOf(a, copy)));
    }
    if (!rows.length) table.append(el("tr", {}, el("td", { colSpan: 8 }, "no archives")));
  }

  async function loadPlots() {
    const history = await api(`/api/backups/history?${query}`);
    drawPlots(plots, history.backups);
  }

  document.addEventListener("run-finished", (e) => {
    if (!mine.has(e.detail.run)) return;
    mine.delete(e.detail.run);
    load().catch((error) => message.replaceChildren(el("p", { class: "bad" }, error.message)));
    loadPlots().catch(() => {});
  });
  await Promise.all([load(), loadPlots()]);
}

// PROJECT-ENV-20261205T031500Z -> its ISO time (an offsite-only archive has only its name)
function createdOf(name) {
  const m = /(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(name);
  return m ? `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}+00:00` : null;
}

function stateCell(kind, text, cls, state) {
  return el("td", { class: `state ${cls}`, "data-state-of": kind, "data-state": state ?? cls }, text);
}

// "3 h ago", "just now"
function ago(iso) {
  const text = age(iso);
  return text === "0 min" ? "just now" : `${text} ago`;
}

// "ok"/"FAILED"/"never" and its time, in words: "verified 3 h ago", "drill FAILED", "never drilled"
function checkWords(state, at, done, doing) {
  if (state === "ok") return [`✓ ${done} ${at ? ago(at) : ""}`.trim(), "ok"];
  if (state === "FAILED") return [`✗ ${doing} FAILED${at ? ", " + ago(at) : ""}`, "bad"];
  return [`never ${done}`, "never"];
}

// An offsite-only archive's copy is read back when it comes back (download, restore)
function offsiteWords(copy, offsite, local) {
  if (offsite.error) return ["cannot be read", "warning"];
  if (!copy) return ["no offsite target", "never"];
  switch (copy.offsite) {
    case "yes": return [`✓ copy verified${copy.verified_at ? " " + ago(copy.verified_at) : ""}`, "ok"];
    case "unverified": return local ? ["copy, not read back yet", "warning"] : ["✓ complete copy", "ok"];
    case "FAILED": return ["✗ copy FAILED", "bad"];
    default: return ["no copy", "never"];
  }
}

// -- plots: inline SVG, one point per backup ------------------------------------------------

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

// A scale for values up to *max*: the unit to label in and about four round steps
function scaleOf(max, kind) {
  let unit = 1, name = kind === "bytes" ? "B" : "s";
  if (kind === "bytes") {
    const names = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (max / unit >= 1024 && i < names.length - 1) { unit *= 1024; i += 1; }
    name = names[i];
  } else if (max >= 7200) { unit = 3600; name = "h"; } else if (max >= 120) { unit = 60; name = "min"; }
  const top = Math.max(max / unit, 1e-9);
  const raw = top / 4, power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((f) => f * power).find((s) => s >= raw);
  const ticks = [];
  for (let v = 0; v <= top + step * 0.001; v += step) ticks.push(v);
  if (ticks[ticks.length - 1] < top) ticks.push(ticks[ticks.length - 1] + step);
  const label = (v) => `${Number(v.toFixed(2))} ${name}`;
  return { max: ticks[ticks.length - 1] * unit, ticks: ticks.map((v) => [v * unit, label(v)]), unit, name };
}

function valueText(v, kind) {
  return kind === "bytes" ? bytes(v) : seconds(v);
}

function dateText(iso) {
  return new Date(iso).toLocaleString(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
}

// An axis label, as precise as the plot's span needs: the day, or the time within a day
function tickText(iso, span) {
  const options = span > 2 * 86400000 ? { month: "short", day: "numeric" }
    : span > 3600000 ? { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" }
    : { hour: "2-digit", minute: "2-digit", second: "2-digit" };
  return new Date(iso).toLocaleString(undefined, options);
}

// One plot: *points* in time order, each series a line through its points; x is the
// backup's place in the row (evenly spaced: a day's extra backups stay apart), labelled
// with dates. *ceiling* (the disk's size) is drawn as a dashed line and sets the top.
function plot({ id, title, kind, points, series, ceiling, latest }) {
  const W = 400, H = 180, left = 60, right = 12, top = 26, bottom = 26;
  const box = el("figure", { class: "plot", "data-plot": id });
  box.append(el("figcaption", {}, title, points.length ? el("span", { class: "latest" }, latest(points[points.length - 1])) : ""));
  const values = points.flatMap((pt) => series.map((s) => pt[s.key]).filter((v) => v !== null && v !== undefined));
  if (!values.length) {
    box.append(el("p", { class: "plot-empty" }, "no backups recorded in the last 60 nights"));
    return box;
  }
  const scale = scaleOf(Math.max(...values, ceiling || 0, kind === "bytes" ? 1 : 0.001), kind);
  const x = (i) => (points.length === 1 ? left + (W - left - right) / 2 : left + (i * (W - left - right)) / (points.length - 1));
  const y = (v) => top + (H - top - bottom) * (1 - v / scale.max);
  const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-label": title });
  for (const [v, label] of scale.ticks) {
    chart.append(svg("line", { x1: left, x2: W - right, y1: y(v), y2: y(v), class: "grid" }),
      svg("text", { x: left - 6, y: y(v) + 4, class: "tick", "text-anchor": "end" }, label));
  }
  const marks = points.length === 1 ? [0] : [...new Set([0, Math.floor((points.length - 1) / 2), points.length - 1])];
  const span = new Date(points[points.length - 1].time) - new Date(points[0].time);
  for (const i of marks) {
    const anchor = points.length === 1 ? "middle" : i === 0 ? "start" : i === points.length - 1 ? "end" : "middle";
    chart.append(svg("text", { x: x(i), y: H - bottom + 16, class: "tick", "text-anchor": anchor }, tickText(points[i].time, span)));
  }
  chart.append(svg("line", { x1: left, x2: left, y1: top, y2: H - bottom, class: "axis" }),
    svg("line", { x1: left, x2: W - right, y1: H - bottom, y2: H - bottom, class: "axis" }));
  if (ceiling) {
    chart.append(svg("line", { x1: left, x2: W - right, y1: y(ceiling), y2: y(ceiling), class: "ceiling" }),
      svg("text", { x: W - right, y: y(ceiling) - 4, class: "tick", "text-anchor": "end" }, `disk size ${bytes(ceiling)}`));
  }
  series.forEach((s, n) => {
    const at = points.map((pt, i) => [i, pt]).filter(([, pt]) => pt[s.key] !== null && pt[s.key] !== undefined);
    if (at.length > 1) {
      chart.append(svg("polyline", { class: `line ${s.cls}`, points: at.map(([i, pt]) => `${x(i)},${y(pt[s.key])}`).join(" ") }));
    }
    for (const [i, pt] of at) {
      const bad = pt.result && pt.result !== "ok";
      chart.append(svg("circle", { cx: x(i), cy: y(pt[s.key]), r: points.length > 40 ? 2.5 : 3.5,
        class: `point ${s.cls}${bad ? " failed" : ""}`, "data-series": s.key },
      svg("title", {}, `${dateText(pt.time)}: ${s.label} ${valueText(pt[s.key], kind)}${bad ? ` (${pt.result})` : ""}`)));
    }
    const lx = left + n * 150;  // the legend, above the plot
    chart.append(svg("circle", { cx: lx + 4, cy: 10, r: 4, class: `swatch ${s.cls}` }),
      svg("text", { x: lx + 12, y: 14, class: "legend" }, s.label));
  });
  box.append(chart);
  return box;
}

function drawPlots(area, backups) {
  const ok = backups.filter((b) => b.result === "ok");
  const disk = ok.filter((b) => b.backup_disk_used !== null && b.backup_disk_used !== undefined);
  const ceiling = disk.length ? Math.max(...disk.map((b) => b.backup_disk_size || 0)) : 0;
  const count = `${ok.length} backup${ok.length === 1 ? "" : "s"}${backups.length > ok.length ? `, ${backups.length - ok.length} failed` : ""}`;
  const share = (b) => (b.backup_disk_size ? ` (${Math.round((100 * b.backup_disk_used) / b.backup_disk_size)}%)` : "");
  area.replaceChildren(el("h2", {}, `The last 60 nights: ${count}, one point each`), el("div", { class: "plots" },
    plot({ id: "size", title: "Archive size", kind: "bytes", points: ok, latest: (b) => `last: ${bytes(b.size)}`,
      series: [{ key: "data_bytes", label: "data backed up", cls: "s2" }, { key: "size", label: "archive (stored)", cls: "s1" }] }),
    plot({ id: "duration", title: "Backup duration", kind: "seconds", points: backups, latest: (b) => `last: ${seconds(b.seconds)}`,
      series: [{ key: "seconds", label: "the backup job", cls: "s1" }] }),
    plot({ id: "disk", title: "Backup disk use", kind: "bytes", points: disk, ceiling,
      latest: (b) => `now: ${bytes(b.backup_disk_used)} of ${bytes(b.backup_disk_size)}${share(b)}`,
      series: [{ key: "backup_disk_used", label: "used on the backup disk", cls: "s3" }] })));
}

pages.backups = backupsPage;
