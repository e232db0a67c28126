"""The dashboard's live views (#24) in Chromium: an env's logs merged in time order with a
filter, a start time and follow; a long dry run that shows its lines while it runs."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from board import (  # noqa: F401 (the fixtures: each module starts its own)
    Dashboard,
    browser,
    dashboard,
    ended_ok,
    finished,
    log_in,
    new_run,
    run_ids,
    shot,
)
from conftest import opskit, wait_until

pytestmark = [pytest.mark.docker, pytest.mark.browser]

LINES = "return [...document.querySelectorAll('#env-log .line')].map((d) => [d.dataset.service, d.dataset.time, d.textContent, d.className, d.classList.contains('hidden')])"


def shown(browser: Any) -> list[tuple[str, str, str, str, bool]]:
    """The log's lines as the page has them, read in one script (lines come and go)."""
    return [tuple(row) for row in browser.execute_script(LINES)]


def test_an_env_log_merges_its_services_in_time_order_with_filter_since_and_follow(
    dashboard: Dashboard, browser: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    log_in(browser, dashboard, "victor")  # viewers read logs
    link = "article.env-card[data-project='webstack'][data-env='dev'] a.logs-link"
    wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, link), 30, 0.1, "the env's card")
    browser.find_element(By.CSS_SELECTOR, link).click()  # from its card on the overview
    wait_until(lambda: "/logs?" in browser.current_url, 20, 0.1, "the logs page")

    def services() -> set[str]:
        return {service for service, *_ in shown(browser)}

    # web logs each healthcheck (every second); cache said "cache ready" when it started
    # (the test changes no container: the stack is shared with the modules after it)
    wait_until(lambda: {"web", "cache"} <= services(), 30, 0.2, "both services' lines")
    newest = max(time_ for _, time_, *_ in shown(browser))
    wait_until(
        lambda: max(time_ for _, time_, *_ in shown(browser)) > newest,
        30,
        0.2,
        "a new line, followed",
    )
    lines = shown(browser)
    times = [time_ for _, time_, *_ in lines]
    assert times == sorted(times), "the services' lines are merged in time order"
    assert {s for s, *_ in lines} >= {"web", "cache"}
    colour = {service: classes for service, _, _, classes, _ in lines}
    assert colour["web"] != colour["cache"], "each service has its colour"
    shot(browser, "logs-env")

    browser.find_element(By.ID, "log-filter").send_keys("cache ready")
    visible = [(s, text) for s, _, text, _, hidden in shown(browser) if not hidden]
    assert visible and all(s == "cache" and "cache ready" in text for s, text in visible)
    assert f"{len(visible)} of" in browser.find_element(By.ID, "log-count").text
    shot(browser, "logs-env-filtered")
    filter_box = browser.find_element(By.ID, "log-filter")
    filter_box.send_keys(Keys.CONTROL, "a")
    filter_box.send_keys(Keys.DELETE)

    # since: from now on; web's healthchecks go on, cache's start is before it
    after = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    time.sleep(1.1)
    since = browser.find_element(By.ID, "log-since")
    since.send_keys(after, Keys.ENTER)
    browser.execute_script(
        "document.querySelector('#log-since').dispatchEvent(new Event('change'))"
    )
    wait_until(lambda: "web" in services(), 30, 0.2, "the lines since then")
    assert "cache" not in services()
    assert all(time_ >= after.rstrip("Z") for _, time_, *_ in shown(browser))

    # a time docker cannot read is said on the page, not an empty log
    since.send_keys(Keys.CONTROL, "a")
    since.send_keys("yesterday", Keys.ENTER)
    browser.execute_script(
        "document.querySelector('#log-since').dispatchEvent(new Event('change'))"
    )
    wait_until(
        lambda: "--since" in browser.find_element(By.ID, "log-message").text, 30, 0.2, "the refusal"
    )

    # one service, in the old link's form (the overview links to it)
    browser.get(dashboard.url + "/logs?service=webstack/dev/cache")
    wait_until(lambda: any("cache ready" in t for _, _, t, *_ in shown(browser)), 30, 0.2, "cache")
    assert services() == {"cache"}


def test_the_logs_api_refuses_what_it_cannot_read(dashboard: Dashboard) -> None:
    cookie = dashboard.cookie("victor")
    assert dashboard.api("/api/logs?project=webstack&env=dev&since=yesterday", cookie)[0] == 422
    assert dashboard.api("/api/logs?project=webstack&env=nope", cookie)[0] in (404, 422)
    assert dashboard.api("/api/logs?project=webstack&env=dev&service=nope", cookie)[0] == 404


def _mariadb(root: str, env: str, statement: str) -> list[str]:
    script = 'MYSQL_PWD="$MYSQL_ROOT_PASSWORD" mariadb -uroot -N -B wordpress -e "$1"'
    run = opskit(
        "exec", "mdf", env, "db", "--root", root, "--", "sh", "-c", script, "sh", statement
    )
    assert run.returncode == 0, run.stderr
    return run.stdout.split()


def test_a_long_dry_run_shows_its_lines_while_it_runs(dashboard: Dashboard, browser: Any) -> None:
    """A sync's dry run waits on prod's database (a table locked by another session, as a
    busy server's would be): its lines are on the page while it runs, the table at its end."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    root = str(dashboard.root)
    table = _mariadb(root, "prod", "SHOW TABLES")[0]
    sleeper = f"SELECT SLEEP(300) AS held_{uuid.uuid4().hex[:6]}"
    script = 'MYSQL_PWD="$MYSQL_ROOT_PASSWORD" mariadb -uroot wordpress -e "$1"'
    lock = subprocess.Popen(
        [sys.executable, "-m", "opskit", "--root", root, "exec", "mdf", "prod", "db", "--",
         "sh", "-c", script, "sh", f"LOCK TABLES `{table}` WRITE; {sleeper}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    held = f"SELECT id FROM information_schema.processlist WHERE info LIKE '{sleeper}%'"

    def release() -> None:
        for session in _mariadb(root, "prod", held):
            _mariadb(root, "prod", f"KILL {session}")
        lock.kill()
        lock.wait()

    try:
        wait_until(lambda: _mariadb(root, "prod", held), 60, 0.2, "the lock held")
        log_in(browser, dashboard, "olivia")
        browser.get(dashboard.url + "/operations")
        wait_until(lambda: browser.find_elements(By.ID, "op"), 20, 0.1, "the operations form")
        Select(browser.find_element(By.ID, "op")).select_by_value("sync")
        Select(browser.find_element(By.ID, "project")).select_by_value("mdf")
        browser.find_element(By.ID, "dry-run").click()
        before = run_ids(dashboard)
        browser.find_element(By.ID, "start").click()
        run = new_run(dashboard, before, "sync", "mdf", "--from", "prod", "--to", "dev")
        log = f".log[data-run='{run}']"
        wait_until(
            lambda: "counting the rows" in browser.execute_script(
                "const l = document.querySelector(arguments[0]); return l ? l.textContent : ''", log
            ),
            60, 0.2, "the dry run's line on the page",
        )  # fmt: skip
        cookie = dashboard.cookie("olivia")
        assert not finished(dashboard, cookie, run), "the line came while the run runs"
        shot(browser, "operations-dry-run-waiting")
    finally:
        release()
    wait_until(lambda: finished(dashboard, cookie, run), 120, 0.2, "the dry run's end")
    wait_until(lambda: ended_ok(browser, run), 30, 0.1, "its end on the page")
    text = browser.execute_script("return document.querySelector(arguments[0]).textContent", log)
    assert table in text, "the dry run's table of rows, when ready"
    shot(browser, "operations-dry-run-done")

    browser.get(f"{dashboard.url}/runs?run={run}")  # a link to it opens its log
    wait_until(lambda: ended_ok(browser, run), 30, 0.1, "the run's log on the runs page")
