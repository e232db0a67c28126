"""The dashboard over a fleet (#25): a serve root whose opskit.yaml has a ``hosts:``
inventory of two sshd "servers" (tests/fleetbed.py), each with its own root and compose
namespace. The host picker, each host's overview live, a backup and the terminal on a
server of the fleet, and a server gone down said on its own page only.

Screenshots go to build/screenshots/fleet-*.png."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from board import (  # noqa: F401 (the browser fixture)
    Dashboard,
    browser,
    ended_ok,
    finished,
    log_in,
    new_run,
    run_ids,
    shot,
    shown_ids,
    stored_ids,
    terminal_screen,
)
from conftest import opskit, wait_until
from fleetbed import Server, kill_server, make_root, ssh_servers
from testroot import ns

pytestmark = [pytest.mark.docker, pytest.mark.ssh, pytest.mark.browser]

HOSTS = ["local", "web1", "web2"]  # the dashboard's own root first, then the inventory's


def web_container(name: str) -> str:
    return f"{ns('board-' + name)}-site-prod-web-1"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Dashboard, list[Server]]]:
    """A running ``opskit serve`` whose root has the inventory (web1, web2) and one project
    of its own; every stack up."""
    from opskit.web.auth import new_token

    base = tmp_path_factory.mktemp("board-fleet")
    servers = ssh_servers(base, ["web1", "web2"], stack="board-")
    own = base / "own"
    make_root(own, "own", "board-own")
    state = base / "state"
    state.mkdir()
    tokens, lines = {}, []
    for name, role in (("olivia", "operator"), ("victor", "viewer")):
        token, digest = new_token()
        tokens[name] = token
        lines.append(f"    - {{name: {name}, role: {role}, sha256: {digest}}}")
    inventory = [f'  {s.name}: {{url: "{s.url}", root: {s.root}}}' for s in servers]
    (own / "opskit.yaml").write_text(
        f"state_dir: {state}\ntimers: {{unit_dir: {state / 'units'}}}\nserve:\n  tokens:\n"
        + "\n".join(lines)
        + "\nhosts:\n  timeout: 4\n"
        + "\n".join(inventory)
        + "\n"
    )
    roots = [own, *(s.root for s in servers)]
    for root in roots:
        assert opskit("--root", str(root), "start", "site", "prod").returncode == 0
    board = Dashboard(own, state, tokens)
    board.start()
    yield board, servers
    board.stop()
    for root in roots:
        opskit("--root", str(root), "destroy", "site", "prod", "--yes")
    for server in servers:
        if server.process is not None:
            server.process.kill()
            server.process.wait()
    shutil.rmtree(base, ignore_errors=True)


def states(browser: Any) -> dict[str, str]:
    """The overview's containers as the page shows them: name -> state."""
    return browser.execute_script(  # type: ignore[no-any-return]
        "const found = {}; for (const row of document.querySelectorAll('#overview tr[data-state]'))"
        " found[row.querySelector('td.name').textContent] = row.dataset.state; return found;"
    )


def test_the_host_picker_lists_every_host_and_the_pages_keep_the_one_picked(
    fleet: tuple[Dashboard, list[Server]], browser: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    board, _servers = fleet
    cookie = board.cookie("olivia")
    assert board.api("/api/me", cookie)[1]["hosts"] == HOSTS
    for path in ("/api/overview", "/api/backups", "/api/projects", "/api/schedules"):
        status, answer = board.api(f"{path}?host=nowhere", cookie)
        assert status == 404, (path, answer)
        assert answer["detail"] == "no host 'nowhere' (hosts: local, web1, web2)"

    log_in(browser, board, "olivia")
    picker = Select(browser.find_element(By.ID, "host-picker"))
    assert [o.text for o in picker.options] == HOSTS
    assert picker.first_selected_option.text == "local"
    wait_until(lambda: web_container("own") in states(browser), 60, 0.1, "the own root's card")
    picker.select_by_visible_text("web2")
    wait_until(lambda: browser.current_url == board.url + "/?host=web2", 20, 0.1, "web2's page")
    links = [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "nav a")]
    assert links and all(link.endswith("?host=web2") for link in links), links
    browser.find_element(By.CSS_SELECTOR, "nav a[href^='/backups']").click()
    wait_until(lambda: browser.current_url == board.url + "/backups?host=web2", 20, 0.1, "backups")
    assert Select(browser.find_element(By.ID, "host-picker")).first_selected_option.text == "web2"


def test_the_overview_of_a_host_shows_its_containers_live(
    fleet: tuple[Dashboard, list[Server]], browser: Any
) -> None:
    board, servers = fleet
    web2 = web_container("web2")
    log_in(browser, board, "olivia")
    browser.get(board.url + "/?host=web2")
    wait_until(lambda: states(browser) == {web2: "running"}, 60, 0.1, "web2's container")
    shot(browser, "fleet-overview-web2")
    browser.execute_script("window.notReloaded = true")
    try:
        subprocess.run(["docker", "stop", "-t", "1", web2], check=True, capture_output=True)
        wait_until(lambda: states(browser) == {web2: "exited"}, 30, 0.1, "the stop, live")
        assert browser.execute_script("return window.notReloaded") is True
        shot(browser, "fleet-overview-web2-stopped")
    finally:
        assert opskit("--root", str(servers[1].root), "start", "site", "prod").returncode == 0
    wait_until(lambda: states(browser) == {web2: "running"}, 30, 0.1, "the start, live")
    _status, web1 = board.api("/api/overview?host=web1", board.cookie("victor"))
    assert web1["host"] == "web1" and web1["unreachable"] is None
    assert [c["name"] for e in web1["envs"] for c in e["containers"]] == [web_container("web1")]


def test_a_backup_started_on_a_host_from_the_page_runs_there_and_streams(
    fleet: tuple[Dashboard, list[Server]], browser: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    board, servers = fleet
    web1, web2 = servers
    log_in(browser, board, "olivia")
    browser.get(board.url + "/operations?host=web2")
    wait_until(lambda: browser.find_elements(By.ID, "op"), 20, 0.1, "the operations form")
    Select(browser.find_element(By.ID, "op")).select_by_value("backup")
    Select(browser.find_element(By.ID, "project")).select_by_value("site")
    Select(browser.find_element(By.ID, "env")).select_by_value("prod")
    before = run_ids(board)
    browser.find_element(By.ID, "start").click()
    host = ["--host", web2.url, "--root", str(web2.root)]
    run = new_run(board, before, *host, "backup", "site", "prod")
    cookie = board.cookie("olivia")
    wait_until(lambda: finished(board, cookie, run), 120, 0.2, "the backup")
    wait_until(lambda: ended_ok(browser, run), 30, 0.1, "its end, streamed")
    stored = stored_ids(board, cookie, run)
    wait_until(lambda: shown_ids(browser, run) == stored, 30, 0.1, "every line, once")
    title = browser.find_element(By.CSS_SELECTOR, f"section[data-run='{run}'] h2").text
    assert title == "backup site prod"  # as on its host; the page says which host
    shot(browser, "fleet-backup-web2")

    def archives(server: Server) -> list[dict[str, Any]]:
        listed = opskit("--root", str(server.root), "--json", "backups", "site", "prod")
        assert listed.returncode == 0, listed.stderr
        return json.loads(listed.stdout)["archives"]  # type: ignore[no-any-return]

    (archive,) = archives(web2)
    assert archive["path"].startswith(str(web2.root / "backups"))
    assert archives(web1) == [], "on web2 only"
    runs = board.api("/api/runs", cookie)[1]["runs"]
    shown = next(r for r in runs if r["id"] == run)
    assert shown["host"] == "web2"
    assert shown["command"] == "backup site prod", "as on its host; the host is its column"
    query = "/api/backups/history?project=site&env=prod"
    assert [b["run"] for b in board.api(f"{query}&host=web2", cookie)[1]["backups"]] == [run]
    assert board.api(query, cookie)[1]["backups"] == [], "the own root's site prod: none"

    browser.get(board.url + "/runs")
    row = f"#runs-table tr[data-host='web2'] a[data-run='{run}']"
    wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, row), 20, 0.1, "the run's row")
    shot(browser, "fleet-runs")


def test_the_terminal_opens_on_a_host_of_the_fleet(
    fleet: tuple[Dashboard, list[Server]], browser: Any
) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    board, _servers = fleet
    log_in(browser, board, "olivia")
    browser.get(board.url + "/?host=web2")
    card = "#overview article[data-project='site'][data-env='prod']"
    button = f"{card} tr[data-service='web'] button"
    wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, button), 60, 0.1, "the button")
    browser.find_element(By.CSS_SELECTOR, f"{card} details.containers summary").click()
    browser.find_element(By.CSS_SELECTOR, button).click()
    wait_until(lambda: browser.execute_script("return !!window.opskitTerminal"), 10, 0.1, "xterm")

    wait_until(
        lambda: terminal_screen(browser).rstrip().endswith(("#", "$")), 60, 0.1, "the prompt"
    )
    time.sleep(0.5)  # a person types after the screen settles (see test_dashboard)
    browser.find_element(By.CSS_SELECTOR, "#terminal textarea").click()
    ActionChains(browser).send_keys("echo on-$(cat /etc/hostname)-$((6*7))\n").perform()
    wait_until(
        lambda: "-42" in terminal_screen(browser).partition("$((6*7))")[2], 30, 0.1, "the echo"
    )
    # the shell runs in web2's container: its hostname is that container's id
    shown = terminal_screen(browser).partition("$((6*7))")[2]
    container = subprocess.run(
        ["docker", "inspect", "--format", "{{.Config.Hostname}}", web_container("web2")],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    assert f"on-{container}-42" in shown, shown
    shot(browser, "fleet-terminal-web2")


def test_a_host_gone_down_is_said_on_its_page_and_the_others_work(
    fleet: tuple[Dashboard, list[Server]], browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    board, servers = fleet
    web2 = servers[1]
    assert web2.process is not None
    log_in(browser, board, "olivia")
    browser.get(board.url + "/?host=web2")
    wait_until(lambda: web_container("web2") in states(browser), 60, 0.1, "web2's card")
    kill_server(web2.process)  # its sshd and the sessions the dashboard keeps open
    said = "#overview .host-unreachable .card-error"
    wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, said), 60, 0.2, "unreachable, live")
    assert browser.find_element(By.CSS_SELECTOR, said).text.startswith("unreachable: ")
    shot(browser, "fleet-unreachable-web2")

    cookie = board.cookie("victor")
    status, data = board.api("/api/overview?host=web2", cookie)
    assert status == 200 and data["unreachable"].startswith("unreachable: cannot connect")
    assert data["envs"] == []
    status, data = board.api("/api/overview?host=web1", cookie)
    assert status == 200 and data["unreachable"] is None
    assert [c["name"] for e in data["envs"] for c in e["containers"]] == [web_container("web1")]
    browser.get(board.url + "/?host=web1")
    wait_until(
        lambda: states(browser) == {web_container("web1"): "running"}, 60, 0.1, "web1's card"
    )
    assert not browser.find_elements(By.CSS_SELECTOR, ".host-unreachable")
