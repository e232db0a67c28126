"""The dashboard's test bed, shared by the test_dashboard* modules: a running ``opskit serve``
on the tests' copy of the example root (module-scoped), headless Chromium, logging in,
screenshots (kept under build/screenshots), and reading runs back.

Import the fixtures into a test module to use them (each module starts its own server)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import SSH_KEY, wait_until
from testroot import REPO, STATE, free_ports

SHOTS = REPO / "build" / "screenshots"
SHOWN = {"job.started", "phase.started", "phase.finished", "log", "warning", "output",
         "job.finished", "run.finished"}  # fmt: skip


class Dashboard:
    def __init__(
        self,
        root: Path,
        state: Path,
        tokens: dict[str, str],
        extra: tuple[str, ...] = (),
        serve: tuple[str, ...] = (),
        launcher: tuple[str, ...] = (),
    ) -> None:
        self.root = root
        self.state = state
        self.tokens = tokens
        self.extra = extra  # before "serve"
        self.serve = serve  # after it
        self.launcher = launcher  # before it all (nohup)
        (self.port,) = free_ports(1)
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [*self.launcher, sys.executable, "-m", "opskit", "--root", str(self.root),
             *self.extra, "serve", "--bind", f"127.0.0.1:{self.port}", *self.serve],
            stdout=subprocess.DEVNULL, stderr=open(self.state / "serve.log", "ab"),  # noqa: SIM115
            env={**os.environ, "OPSKIT_SSH_KEY": SSH_KEY},
        )  # fmt: skip

        def listening() -> bool:
            with socket.socket() as probe:
                return probe.connect_ex(("127.0.0.1", self.port)) == 0

        wait_until(listening, 30, 0.1, "opskit serve listening")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)

    def cookie(self, name: str) -> str:
        """A session cookie for *name*, logged in through the form's POST."""
        status, header = self.log_in(self.tokens[name])
        assert status == 303, status
        return header.split(";")[0]

    def log_in(self, token: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
        """The form's POST of *token*: the status and the Set-Cookie header."""
        request = urllib.request.Request(
            self.url + "/login",
            data=f"token={token}".encode(),
            headers={"Origin": self.url, "Content-Type": "application/x-www-form-urlencoded",
                     **(headers or {})},
        )  # fmt: skip
        opener = urllib.request.build_opener(NoRedirect)
        try:
            opener.open(request)
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers.get("set-cookie", "")
        raise AssertionError("the login neither redirected nor failed")

    def api(
        self, path: str, cookie: str | None = None, body: Any = None, origin: str | None = None
    ) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json", "Origin": origin or self.url}
        if cookie:
            headers["Cookie"] = cookie
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


@pytest.fixture(scope="module")
def dashboard(examples_up: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    from opskit.web.auth import new_token

    state = tmp_path_factory.mktemp("dashboard-state")
    tokens, lines = {}, []
    for name, role in (("olivia", "operator"), ("victor", "viewer")):
        token, digest = new_token()
        tokens[name] = token
        lines.append(f"    - {{name: {name}, role: {role}, sha256: {digest}}}")
    settings = examples_up / "opskit.yaml"
    original = settings.read_text()  # the copy's own (tests/testroot.py) comes back after
    settings.write_text(
        f"state_dir: {state}\ntimers: {{unit_dir: {state / 'units'}}}\nserve:\n  tokens:\n"
        + "\n".join(lines)
        + "\n"
    )
    # The copy's restic passwords go with it: its archive store (and offsite repository),
    # shared by the modules of this runner, open only with them (#22: the drills after
    # this module found a store whose password was left in this module's state folder).
    passwords = ("restic-store-password", "restic-password")
    for name in passwords:
        if (STATE / name).exists():
            shutil.copy2(STATE / name, state / name)
    board = Dashboard(examples_up, state, tokens)
    board.start()
    yield board
    board.stop()
    settings.write_text(original)
    for name in passwords:
        if (state / name).exists() and not (STATE / name).exists():
            STATE.mkdir(mode=0o700, parents=True, exist_ok=True)
            shutil.copy2(state / name, STATE / name)


def chromium(home: Path) -> Any:
    """Debian's headless Chromium through its ChromeDriver (no network calls)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["HOME"] = str(home)
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--window-size=1280,900"):  # fmt: skip
        options.add_argument(arg)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    driver = chromium(tmp_path_factory.mktemp("chromium-home"))
    yield driver
    driver.quit()


def log_in(browser: Any, board: Dashboard, name: str) -> None:
    from selenium.webdriver.common.by import By

    browser.delete_all_cookies()
    browser.get(board.url + "/login")
    browser.find_element(By.NAME, "token").send_keys(board.tokens[name])
    browser.find_element(By.CSS_SELECTOR, "#login button").click()
    wait_until(lambda: browser.current_url == board.url + "/", 20, 0.1, "the overview")


def shot(browser: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SHOTS / f"{name}.png"))


def shown_ids(browser: Any, run: str) -> list[int]:
    """The event ids of the lines the page shows for *run*, in order."""
    return browser.execute_script(  # type: ignore[no-any-return]
        "return [...document.querySelectorAll(`.log[data-run='${arguments[0]}'] div`)]"
        ".map((d) => Number(d.dataset.id))",
        run,
    )


def stored_ids(board: Dashboard, cookie: str, run: str) -> list[int]:
    _status, data = board.api(f"/api/runs/{run}", cookie)
    return [e["id"] for e in data["events"] if e["event"] in SHOWN]


def new_run(board: Dashboard, before: set[str], *argv: str) -> str:
    """The id of the run that a click started: not in *before*, its command line begins
    with *argv* (other runs may be going on, as on a real server)."""
    cookie = board.cookie("olivia")

    def found() -> str | None:
        for run in board.api("/api/runs", cookie)[1]["runs"]:
            if run["id"] not in before and run["argv"][: len(argv)] == list(argv):
                return str(run["id"])
        return None

    return str(wait_until(found, 60, 0.1, f"a run of {' '.join(argv)}"))


class Shell:
    """Plays the terminal's part over the dashboard's WebSocket, as xterm.js does in the
    page: answers the shell's cursor-position queries and types when the screen is quiet."""

    def __init__(self, socket: Any) -> None:
        self.socket, self.seen, self.answered, self.typed_at = socket, b"", 0, 0

    def more(self, timeout: float) -> bool:
        try:
            self.seen += self.socket.recv(timeout=timeout)
        except TimeoutError:
            return False
        # busybox's shell asks where the cursor is (ESC[6n) after each prompt and takes the
        # answer from among the keys; a terminal answers at once
        while (query := self.seen.find(b"\x1b[6n", self.answered)) >= 0:
            self.socket.send("\x1b[1;5R")
            self.answered = query + 4
        return True

    def wait(self, done: Callable[[bytes], bool], deadline: float) -> None:
        while not done(self.seen[self.typed_at :]):
            if not self.more(max(0.1, deadline - time.monotonic())):
                raise AssertionError(f"timed out; the terminal showed {self.seen!r}")

    def run(self, command: str, expected: bytes) -> bytes:
        """Wait for the prompt, type *command*, read until *expected* follows it; return
        what came after the command."""
        deadline = time.monotonic() + 60
        self.type(command, deadline)
        self.wait(lambda text: expected in text.partition(command.encode())[2], deadline)
        return self.seen[self.typed_at :]

    def type(self, command: str, deadline: float) -> None:
        """Wait for the prompt and for the screen to settle, then type *command*."""
        import re

        def prompted(text: bytes) -> bool:  # without the terminal's control sequences
            return re.sub(rb"\x1b\[[0-9;?]*[A-Za-z]", b"", text).rstrip().endswith((b"#", b"$"))

        self.wait(prompted, deadline)
        while self.more(0.5):  # a person types after the screen settles
            pass
        self.typed_at = len(self.seen)
        self.socket.send(command + "\n")


def run_ids(board: Dashboard) -> set[str]:
    return {r["id"] for r in board.api("/api/runs", board.cookie("olivia"))[1]["runs"]}


def ended_ok(browser: Any, run: str) -> bool:
    from selenium.webdriver.common.by import By

    selector = f".log[data-run='{run}'] .finished-ok"
    return bool(browser.find_elements(By.CSS_SELECTOR, selector))


def finished(board: Dashboard, cookie: str, run: str) -> bool:
    return bool(board.api(f"/api/runs/{run}", cookie)[1]["run"]["state"] == "finished")


def terminal_screen(browser: Any) -> str:
    """What the page's terminal (xterm.js) shows, line by line."""
    return browser.execute_script(  # type: ignore[no-any-return]
        "const b = window.opskitTerminal.buffer.active; const lines = [];"
        "for (let i = 0; i < b.length; i++) lines.push(b.getLine(i).translateToString(true));"
        "return lines.join('\\n');"
    )
