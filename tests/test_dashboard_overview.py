"""The overview by env (#24) in Debian's headless Chromium, against the tests' running copy
of the example root: one card per env with what the watch knows, failing ones first; live
within the wait after ``docker stop`` and ``docker start`` without a reload; a failing
check red with its message; a broken descriptor and a stopped engine shown on the cards.

Screenshots go to build/screenshots/ (overview-cards.png, overview-card-failing.png, ...)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from board import Dashboard, browser, dashboard, log_in, new_run, run_ids, shot  # noqa: F401
from conftest import opskit, wait_until
from testroot import compose_container

pytestmark = [pytest.mark.docker, pytest.mark.browser]

# Each card and its container rows, read in one script: the cards are drawn again on each
# change, so an element found first can be gone when it is asked for (CI 33).
READ_CARDS = """
return [...document.querySelectorAll('#overview article.env-card')].map((card) => ({
  project: card.dataset.project, env: card.dataset.env, status: card.dataset.status,
  error: (card.querySelector('.card-error') || {}).textContent || null,
  checks: [...card.querySelectorAll('li.check')].map((li) => [li.dataset.check, li.dataset.ok === 'true',
                                                             li.textContent]),
  facts: Object.fromEntries([...card.querySelectorAll('dd[data-fact]')].map((d) => [d.dataset.fact, d.textContent])),
  lastRun: (card.querySelector('dd[data-fact="last run"] a') || { dataset: {} }).dataset.run || null,
  containers: [...card.querySelectorAll('tr[data-service]')].map((tr) => ({
    service: tr.dataset.service, state: tr.dataset.state,
    name: tr.querySelector('td.name').textContent,
    health: tr.querySelector('td.health').dataset.health,
    terminal: !!tr.querySelector('button.open-terminal')})),
}));
"""
STATUS_ORDER = ["error", "failing", "checking", "ok"]


def cards(browser: Any) -> list[dict[str, Any]]:
    return browser.execute_script(READ_CARDS)  # type: ignore[no-any-return]


def card(browser: Any, project: str, env: str) -> dict[str, Any] | None:
    return next((c for c in cards(browser) if (c["project"], c["env"]) == (project, env)), None)


def open_fold(browser: Any, project: str, env: str) -> None:
    """Open a card's containers (the fold stays open when the cards are drawn again)."""
    browser.execute_script(
        "document.querySelector(`#overview article[data-project='${arguments[0]}']"
        "[data-env='${arguments[1]}'] details.containers summary`).click()",
        project,
        env,
    )


def test_the_overview_shows_a_card_per_env_with_its_containers_and_checks(
    dashboard: Dashboard, browser: Any
) -> None:
    log_in(browser, dashboard, "olivia")
    status = json.loads(opskit("status", "--json", "--root", str(dashboard.root)).stdout)
    expected = {c["name"]: c["health"] for c in status["containers"] if c.get("name")}
    envs = {(c["project"], c["environment"]) for c in status["containers"]}
    wait_until(
        lambda: {(c["project"], c["env"]) for c in cards(browser)} >= envs
        and all(c["checks"] or c["status"] != "checking" for c in cards(browser)),
        30, 0.2, "a card per env, with its checks",
    )  # fmt: skip
    shown = cards(browser)
    assert len(shown) == len({(c["project"], c["env"]) for c in shown})  # one card per env
    rows = {r["name"]: r["health"] for c in shown for r in c["containers"] if r["name"] != "-"}
    assert rows == expected
    # failing cards first, and in each card its failing checks before the others
    order = [STATUS_ORDER.index(c["status"]) for c in shown]
    assert order == sorted(order)
    for one in shown:
        oks = [ok for _name, ok, _text in one["checks"]]
        assert oks == sorted(oks), one
    mdf = card(browser, "mdf", "dev")
    assert mdf is not None and {"backup", "next run", "last run", "disk"} <= set(mdf["facts"])
    assert any(r["terminal"] for c in shown for r in c["containers"])
    open_fold(browser, "webstack", "dev")
    shot(browser, "overview-cards")


def test_a_stopped_container_shows_on_its_card_without_a_reload_and_its_recovery(
    dashboard: Dashboard, browser: Any
) -> None:
    """``docker stop`` shows on the open page, and ``docker start`` likewise (#24); how fast
    is bench/serve's to measure."""
    log_in(browser, dashboard, "olivia")
    wait_until(lambda: card(browser, "webstack", "dev"), 30, 0.1, "the webstack dev card")
    browser.execute_script("window.notReloaded = true")

    def state() -> str | None:
        found = card(browser, "webstack", "dev") or {"containers": []}
        return next((r["state"] for r in found["containers"] if r["service"] == "cache"), None)

    cache = compose_container("webstack-dev", "cache")
    try:
        subprocess.run(["docker", "stop", "-t", "1", cache], check=True, capture_output=True)
        wait_until(lambda: state() == "exited", 30, 0.05, "the stopped container on its card")
        wait_until(
            lambda: (card(browser, "webstack", "dev") or {}).get("status") == "failing",
            30, 0.1, "the card failing",
        )  # fmt: skip
        shot(browser, "overview-live-stopped")
    finally:
        subprocess.run(["docker", "start", cache], check=True, capture_output=True)
    wait_until(lambda: state() == "running", 30, 0.05, "its recovery on the card")
    assert browser.execute_script("return window.notReloaded === true")


def test_a_failing_check_turns_its_card_red_with_the_message_first(
    dashboard: Dashboard, browser: Any
) -> None:
    """webstack dev's web made unhealthy for real (its healthcheck fails on /tmp/sick)."""
    log_in(browser, dashboard, "olivia")
    wait_until(lambda: card(browser, "webstack", "dev"), 30, 0.1, "the webstack dev card")
    web = compose_container("webstack-dev", "web")

    def failing() -> list[Any]:
        found = card(browser, "webstack", "dev")
        return [] if found is None or found["status"] != "failing" else found["checks"]

    try:
        subprocess.run(["docker", "exec", web, "touch", "/tmp/sick"], check=True)
        checks = wait_until(
            lambda: (c := failing()) and c[0][0] == "container web" and c, 30, 0.1,
            "the failing check first on a red card",
        )  # fmt: skip
        _name, ok, text = checks[0]
        assert not ok and "unhealthy" in text
        assert any(ok for _name, ok, _text in checks)  # the checks that pass follow
        assert (card(browser, "webstack", "dev") or {})["status"] == "failing"
        assert cards(browser)[0]["status"] in ("failing", "error")  # failing cards first
        browser.execute_script(
            "document.querySelector(`#overview article[data-project='webstack']"
            "[data-env='dev']`).scrollIntoView()"
        )
        shot(browser, "overview-card-failing")
    finally:
        subprocess.run(["docker", "exec", web, "rm", "-f", "/tmp/sick"], check=True)
    wait_until(
        lambda: (card(browser, "webstack", "dev") or {}).get("status") == "ok"
        or not any(n == "container web" and not ok for n, ok, _t in failing()),
        60, 0.2, "the check passing again",
    )  # fmt: skip


def test_a_scheduled_job_that_failed_is_its_cards_last_run_linked_to_runs(
    dashboard: Dashboard, browser: Any
) -> None:
    """A timer's job (``--scheduled``) recorded by the CLI as a run: the card shows it as
    its last scheduled run with its result and links to it, without a reload."""
    log_in(browser, dashboard, "olivia")
    wait_until(lambda: card(browser, "mdf", "dev"), 30, 0.1, "the mdf dev card")
    browser.execute_script("window.notReloaded = true")
    before = run_ids(dashboard)
    done = opskit("--root", str(dashboard.root), "drill", "mdf", "dev", "--scheduled",
                  "--name", "mdf-dev-20000101T000000Z")  # fmt: skip
    assert done.returncode == 1, done.stderr  # no such archive: the job failed
    run = new_run(dashboard, before, "drill", "mdf", "dev", "--scheduled")

    def last_run() -> dict[str, Any] | None:
        found = card(browser, "mdf", "dev")
        return found if found and found["lastRun"] == run else None

    shown = wait_until(last_run, 60, 0.1, "the failed drill as the card's last run")
    assert shown["facts"]["last run"].startswith("drill failed")
    assert (
        browser.execute_script(
            "return document.querySelector(`a[data-run='${arguments[0]}']`).getAttribute('href')",
            run,
        )
        == f"/runs?run={run}"
    )
    assert browser.execute_script("return window.notReloaded === true")


def test_a_broken_descriptor_is_a_card_in_error_with_its_error_line(
    dashboard: Dashboard, browser: Any
) -> None:
    descriptor = Path(dashboard.root) / "shop" / "project.yaml"
    original = descriptor.read_text()
    try:
        descriptor.write_text(original + "\nno_such_field: 1\n")
        log_in(browser, dashboard, "olivia")
        broken = wait_until(lambda: card(browser, "shop", ""), 30, 0.1, "the card in error")
        assert broken["status"] == "error"
        assert broken["error"].startswith(f"[error] {descriptor}:")
        assert "no_such_field" in broken["error"]
        others = [c for c in cards(browser) if c["project"] == "webstack"]
        assert others and all(c["containers"] for c in others)  # the rest as before
        assert cards(browser)[0]["project"] == "shop"  # cards in error first
        shot(browser, "overview-card-descriptor-error")
    finally:
        descriptor.write_text(original)
    browser.refresh()
    wait_until(lambda: card(browser, "shop", "dev"), 30, 0.1, "shop's cards again")


def test_a_viewer_sees_the_cards_but_no_terminal_button(dashboard: Dashboard, browser: Any) -> None:
    log_in(browser, dashboard, "victor")
    wait_until(lambda: card(browser, "webstack", "dev"), 30, 0.1, "the cards")
    shown = cards(browser)
    assert any(c["containers"] for c in shown)
    assert not any(r["terminal"] for c in shown for r in c["containers"])
    assert not browser.execute_script(
        "return document.querySelectorAll('button.open-terminal').length"
    )
    status, fast = dashboard.api("/api/overview?checks=false", dashboard.cookie("victor"))
    assert status == 200 and fast["envs"] and all(e["checks"] is None for e in fast["envs"])
    assert any(e["containers"] for e in fast["envs"])


def test_a_stopped_engine_is_said_on_every_card(
    dashboard: Dashboard, browser: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server whose engine cannot be reached (DOCKER_HOST names no socket): every card
    says so, none is blank, the API answers 200."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    down = Dashboard(dashboard.root, dashboard.state, dashboard.tokens)
    down.start()
    monkeypatch.undo()
    try:
        status, data = down.api("/api/overview", down.cookie("olivia"))
        assert status == 200 and "cannot reach the Docker engine" in data["engine"]
        log_in(browser, down, "olivia")
        shown = wait_until(lambda: cards(browser), 30, 0.1, "the cards")
        assert {(c["project"], c["env"]) for c in shown} >= {("webstack", "dev"), ("mdf", "prod")}
        for one in shown:
            assert one["status"] == "error"
            assert "cannot reach the Docker engine" in (one["error"] or ""), one
        shot(browser, "overview-engine-down")
    finally:
        down.stop()
