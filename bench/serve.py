"""Measure the dashboard's streams.

Run by bench/serve. A fresh root and state folder, one ``opskit serve`` on a free loopback
port, Debian's headless Chromium logged in. In one run:

  latency:  events appended to runs.sqlite at 20 per second, as a run's process stores
            them, each carrying the time it was stored; the page's EventSource notes when
            each arrives: p50 and p95 from stored to seen in the browser (goal: p95 under
            250 ms). Baseline in the same run: the same page's fetch() of /api/me, p50 and
            p95, so the ratio says how much the stream adds to a plain request.
  streams:  20 more streams held open by clients (as 20 tabs would), then --idle seconds
            without events: the server's resident memory (goal: under 150 MB) against its
            own before the streams, and its CPU share while idle (keepalives only).
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

from opskit.runs import RunStore
from opskit.web.auth import new_token


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
    options = parser.parse_args()

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
        for _ in range(100):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        run(options, work, url, token, server.pid)
    finally:
        server.terminate()
        server.wait()


def run(options: argparse.Namespace, work: Path, url: str, token: str, pid: int) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    os.environ["HOME"] = str(work / "home")
    chrome = webdriver.ChromeOptions()
    chrome.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        chrome.add_argument(arg)
    browser = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=chrome)
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


if __name__ == "__main__":
    main()
