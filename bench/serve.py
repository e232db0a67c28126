"""Measure the dashboard's streams and its overview.

Run by bench/serve. A fresh root and state folder, one ``opskit serve`` on a free loopback
port, Debian's headless Chromium logged in. In one run (``--part streams``):

  latency:  events appended to runs.sqlite at 20 per second, as a run's process stores
            them, each carrying the time it was stored; the page's EventSource notes when
            each arrives: p50 and p95 from stored to seen in the browser (goal: p95 under
            250 ms). Baseline in the same run: the same page's fetch() of /api/me, p50 and
            p95, so the ratio says how much the stream adds to a plain request.
  streams:  20 more streams held open by clients (as 20 tabs would), then --idle seconds
            without events: the server's resident memory (goal: under 150 MB) against its
            own before the streams, and its CPU share while idle (keepalives only).

And (``--part overview``) with a root of its own, one project of two busybox containers
(compose project ``opskit-bench-serve-dev``), the overview page open:

  card:     --rounds times ``docker stop`` then ``docker start`` of one container: from the
            command returning to the card's row showing the new state in the page (a
            MutationObserver notes it with Date.now()), p50 and p95 (goal: p95 under
            2 s). Baseline in the same run: the same page's fetch() of /api/overview.
  pages:    --streams more pages (what a tab opens: /api/overview and its changes stream,
            read again on each change) while the container is stopped and started 5
            times: the server's resident memory, its process tree's (goal: under 150 MB),
            and how often the server computed the overview per change (goal: once).

Nothing is left behind; ``bench/serve --cleanup`` removes what a killed run left.
"""

from __future__ import annotations

import argparse
import http.client
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchlib import wait_listening

from opskit.runs import RunStore
from opskit.web.auth import new_token


def chromium(work: Path) -> Any:
    """Debian's headless Chromium through its ChromeDriver, its profile under *work*."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["HOME"] = str(work / "home")
    chrome = webdriver.ChromeOptions()
    chrome.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        chrome.add_argument(arg)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=chrome)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def resident_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--idle", type=float, default=30.0)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--part", choices=["streams", "overview", "all"], default="all")
    parser.add_argument("--cleanup", action="store_true", help="remove what a run left; no run")
    options = parser.parse_args()
    if options.cleanup:
        remove_bench_containers()
        return
    if options.part in ("streams", "all"):
        streams_bench(options)
    if options.part in ("overview", "all"):
        overview_bench(options)


def streams_bench(options: argparse.Namespace) -> None:

    work = Path(tempfile.mkdtemp(prefix="opskit-bench-serve-"))
    (work / "root" / "site").mkdir(parents=True)
    (work / "root" / "site" / "project.yaml").write_text("name: site\nenvironments: [dev]\n")
    token, digest = new_token()
    (work / "root" / "opskit.yaml").write_text(
        f"state_dir: {work / 'state'}\nserve:\n  tokens:\n"
        f"    - {{name: bench, role: operator, sha256: {digest}}}\n"
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "opskit", "--root", str(work / "root"), "serve", "--bind",
         f"127.0.0.1:{port}"],
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_listening(port)
        run(options, work, url, token, server.pid)
    finally:
        server.terminate()
        server.wait()


def run(options: argparse.Namespace, work: Path, url: str, token: str, pid: int) -> None:
    from selenium.webdriver.common.by import By

    browser = chromium(work)
    try:
        browser.get(url + "/login")
        browser.find_element(By.NAME, "token").send_keys(token)
        browser.find_element(By.CSS_SELECTOR, "#login button").click()
        time.sleep(1)
        baseline = browser.execute_script(
            "const times = [];"
            "for (let i = 0; i < 100; i++) { const t = performance.now();"
            " await fetch('/api/me'); times.push(performance.now() - t); }"
            "return times;"
        )
        before_streams = resident_mib(pid)
        store = RunStore(str(work / "state" / "runs.sqlite"))
        browser.execute_script(
            "window.latencies = []; const s = new EventSource('/api/stream?after="
            f"{store.last_id()}');"
            "s.onmessage = (m) => { const d = JSON.parse(m.data);"
            " if (d.sent) window.latencies.push(Date.now() - d.sent); };"
        )
        time.sleep(1)
        for number in range(options.events):
            store.append("bench", {"event": "log", "line": f"line {number}",
                                   "sent": time.time() * 1000})  # fmt: skip
            time.sleep(0.05)
        time.sleep(1)
        latencies = browser.execute_script("return window.latencies")
    finally:
        browser.quit()

    cookie = login_cookie(url, token)
    clients = [open_stream(url, cookie) for _ in range(options.streams)]
    time.sleep(2)
    cpu_before, started = cpu_seconds(pid), time.monotonic()
    time.sleep(options.idle)
    cpu_share = (cpu_seconds(pid) - cpu_before) / (time.monotonic() - started)
    with_streams = resident_mib(pid)
    for client in clients:
        client.close()

    print(f"events: {len(latencies)} of {options.events} seen in the browser")
    print(f"stored -> browser: p50 {statistics.median(latencies):.0f} ms, "
          f"p95 {percentile(latencies, 0.95):.0f} ms (goal: p95 under 250 ms)")  # fmt: skip
    print(f"baseline fetch /api/me: p50 {statistics.median(baseline):.1f} ms, "
          f"p95 {percentile(baseline, 0.95):.1f} ms; ratio of p95s "
          f"{percentile(latencies, 0.95) / percentile(baseline, 0.95):.1f}")  # fmt: skip
    print(f"server memory: {before_streams:.0f} MiB before, {with_streams:.0f} MiB with "
          f"{options.streams} streams (goal: under 150 MB); ratio "
          f"{with_streams / before_streams:.2f}")  # fmt: skip
    print(f"server CPU while idle with {options.streams} streams: {cpu_share * 100:.2f} %")


def login_cookie(url: str, token: str) -> str:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port))
    connection.request("POST", "/login", body=f"token={token}",
                       headers={"Origin": url, "Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    response = connection.getresponse()
    return str(response.getheader("set-cookie", "")).split(";")[0]


def open_stream(url: str, cookie: str) -> http.client.HTTPConnection:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port))
    connection.request("GET", "/api/stream", headers={"Cookie": cookie})
    response = connection.getresponse()
    assert response.status == 200, response.status

    def drain() -> None:
        try:
            while response.read1(65536):
                pass
        except (OSError, ValueError, AttributeError):  # closed under it
            pass

    threading.Thread(target=drain, daemon=True).start()
    return connection


# -- the overview ------------------------------------------------------------------------

BENCH_PROJECT = "opskit-bench-serve"
COMPOSE = """services:
  web:
    image: opskit-test/web:1
    init: true
    command: ["sh", "-c", "echo ok > /tmp/index.html; exec httpd -f -p 8080 -h /tmp"]
    ports: ["127.0.0.1:{port}:8080"]
    healthcheck: {{test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"],
                  interval: 2s, timeout: 2s, retries: 1}}
  cache:
    image: opskit-test/web:1
    init: true
    command: ["sh", "-c", "exec sleep 2147483647"]
"""
DESCRIPTOR = """name: benchsite
environments: [dev]
compose: {{dir: "{{env}}", project_name: "{project}-{{env}}"}}
health:
  - {{service: web, http: "http://127.0.0.1:{port}/"}}
backup:
  dir: {backups}
  schedule: "03:30"
  paths: ["{{env}}"]
"""
ROW = "#overview article[data-project='benchsite'][data-env='dev'] tr[data-service='cache']"
WATCH_ROW = """
window.seen = []; let last = null;
const note = () => { const row = document.querySelector(arguments[0]);
  const state = row ? row.dataset.state : null;
  if (state !== last) { last = state; window.seen.push([state, Date.now()]); } };
new MutationObserver(note).observe(document.querySelector('#overview'),
  { childList: true, subtree: true, attributes: true });
note();
"""


def remove_bench_containers() -> None:
    """Every container of the bench's compose project (a run killed halfway leaves some)."""
    found = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={BENCH_PROJECT}-dev"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    if found:
        subprocess.run(["docker", "rm", "-f", *found], capture_output=True, check=True)
    print(f"removed {len(found)} container(s) of {BENCH_PROJECT}-dev")


def overview_bench(options: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="opskit-bench-overview-"))
    root = work / "root"
    (root / "benchsite" / "dev").mkdir(parents=True)
    web_port = free_port()
    (root / "benchsite" / "dev" / "compose.yaml").write_text(COMPOSE.format(port=web_port))
    (root / "benchsite" / "project.yaml").write_text(
        DESCRIPTOR.format(project=BENCH_PROJECT, port=web_port, backups=work / "backups")
    )
    token, digest = new_token()
    (root / "opskit.yaml").write_text(
        f"state_dir: {work / 'state'}\nserve:\n  tokens:\n"
        f"    - {{name: bench, role: operator, sha256: {digest}}}\n"
    )
    opskit = [sys.executable, "-m", "opskit", "--root", str(root)]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = None
    try:
        subprocess.run([*opskit, "start", "benchsite", "dev"], check=True, capture_output=True)
        server = subprocess.Popen(
            [*opskit, "serve", "--bind", f"127.0.0.1:{port}"], stderr=subprocess.DEVNULL
        )
        wait_listening(port)
        measure_overview(options, work, url, token, server.pid)
    finally:
        if server is not None:
            server.terminate()
            server.wait()
        subprocess.run([*opskit, "destroy", "benchsite", "dev", "--yes"], capture_output=True)
        remove_bench_containers()


def measure_overview(
    options: argparse.Namespace, work: Path, url: str, token: str, pid: int
) -> None:
    from benchlib import tree_rss
    from selenium.webdriver.common.by import By

    names = subprocess.run(["docker", "ps", "-a", "--format", "{{.Names}}"],
                           capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    # PROJECT-cache-1 (compose v2) or PROJECT_cache_1 (v1)
    cache = next(n for n in names if n.startswith(f"{BENCH_PROJECT}-dev") and "cache" in n)
    browser = chromium(work)
    latencies: list[float] = []
    try:
        browser.get(url + "/login")
        browser.find_element(By.NAME, "token").send_keys(token)
        browser.find_element(By.CSS_SELECTOR, "#login button").click()
        for _ in range(300):
            if browser.execute_script("return !!document.querySelector(arguments[0])", ROW):
                break
            time.sleep(0.1)
        baseline = browser.execute_script(
            "const times = [];"
            "for (let i = 0; i < 50; i++) { const t = performance.now();"
            " await fetch('/api/overview'); times.push(performance.now() - t); }"
            "return times;"
        )
        browser.execute_script(WATCH_ROW, ROW)
        for _ in range(options.rounds):
            for command, state in (("stop", "exited"), ("start", "running")):
                argv = ["docker", command, *(["-t", "1"] if command == "stop" else []), cache]
                subprocess.run(argv, check=True, capture_output=True)
                returned = time.time() * 1000
                seen = None
                for _ in range(300):  # at most 30 s
                    seen = browser.execute_script(
                        "const s = window.seen.filter((x) => x[0] === arguments[0]);"
                        "return s.length ? s[s.length - 1][1] : null;",
                        state,
                    )
                    if seen is not None and seen >= returned - 5000:
                        break
                    time.sleep(0.02)
                else:
                    raise SystemExit(f"the card never showed {state} after docker {command}")
                latencies.append(max(0.0, seen - returned))
                browser.execute_script("window.seen = window.seen.slice(-1)")
                time.sleep(0.3)
    finally:
        browser.quit()

    before = tree_rss(pid) / 2**20
    cookie = login_cookie(url, token)
    pages = [Page(url, cookie) for _ in range(options.streams)]
    time.sleep(2)
    computed_before = overview_json(url, cookie)["computed"]
    changes = 5
    for _ in range(changes):
        for command in ("stop", "start"):
            subprocess.run(["docker", command, *(["-t", "1"] if command == "stop" else []),
                            cache], check=True, capture_output=True)  # fmt: skip
            time.sleep(1.5)
    time.sleep(3)
    with_pages = tree_rss(pid) / 2**20
    computed_after = overview_json(url, cookie)["computed"]
    reads = sum(page.reads for page in pages)
    for page in pages:
        page.close()

    base_p50, base_p95 = statistics.median(baseline), percentile(baseline, 0.95)
    p50, p95 = statistics.median(latencies), percentile(latencies, 0.95)
    print(f"overview: {len(latencies)} changes ({options.rounds} docker stop and start)")
    print(f"docker stop/start -> card changed: p50 {p50:.0f} ms, p95 {p95:.0f} ms "
          f"(goal: p95 under 2000 ms)")  # fmt: skip
    print(f"baseline fetch /api/overview: p50 {base_p50:.1f} ms, p95 {base_p95:.1f} ms; "
          f"ratio of p95s {p95 / base_p95:.1f}")  # fmt: skip
    containers = computed_after["containers"] - computed_before["containers"]
    checks = computed_after["checks"] - computed_before["checks"]
    print(f"{options.streams} pages, {changes * 2} changes: the pages read the overview "
          f"{reads} times; the server computed the containers {containers} times and the "
          f"checks {checks} times (goal: about once per change, not per page)")  # fmt: skip
    print(f"server memory (process tree): {before:.0f} MiB before, {with_pages:.0f} MiB with "
          f"{options.streams} pages (goal: under 150 MB); ratio {with_pages / before:.2f}")  # fmt: skip


def overview_json(url: str, cookie: str) -> dict:  # type: ignore[type-arg]
    import json

    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port))
    connection.request("GET", "/api/overview", headers={"Cookie": cookie})
    data = json.loads(connection.getresponse().read())
    connection.close()
    return data  # type: ignore[no-any-return]


class Page:
    """What an overview tab does: read /api/overview, hold its changes stream open, and
    read the overview again on each message."""

    def __init__(self, url: str, cookie: str) -> None:
        self.url, self.cookie, self.reads = url, cookie, 0
        overview_json(url, cookie)
        host, port = url.removeprefix("http://").split(":")
        self.connection = http.client.HTTPConnection(host, int(port))
        self.connection.request("GET", "/api/overview/changes", headers={"Cookie": cookie})
        self.response = self.connection.getresponse()
        assert self.response.status == 200, self.response.status
        threading.Thread(target=self._follow, daemon=True).start()

    def _follow(self) -> None:
        try:
            for line in iter(self.response.readline, b""):
                if line.startswith(b"data:"):
                    overview_json(self.url, self.cookie)
                    self.reads += 1
        except (OSError, ValueError, AttributeError):  # closed under it
            pass

    def close(self) -> None:
        self.connection.close()


if __name__ == "__main__":
    main()
