"""The backups page (#24) in Debian's headless Chromium, against the tests' running copy of
the example root with its offsite target: an offsite-only archive restored from the page
gives the data back as it was, a drill started there shows as drilled, the plots draw one
point per backup, and a viewer gets neither buttons nor runs.

Screenshots: build/screenshots/backups-offsite.png, backups-plots.png."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from board import (  # noqa: F401 (the fixtures: each module starts its own)
    Dashboard,
    browser,
    dashboard,
    finished,
    log_in,
    new_run,
    run_ids,
    shot,
)
from conftest import archive_name, opskit, wait_until
from testroot import OFFSITE, ns, use_store

pytestmark = [pytest.mark.docker, pytest.mark.browser]


@pytest.fixture(scope="module")
def board(dashboard: Dashboard) -> Iterator[Dashboard]:
    """The module's dashboard on a root whose ``opskit.yaml`` names the copy's offsite
    repository (as the example's does), initialised."""
    settings = dashboard.root / "opskit.yaml"
    text = settings.read_text()
    settings.write_text(text + f"offsite:\n  target: file://{OFFSITE}\n  keep: 14\n")
    done = opskit("offsite", "init", "--root", str(dashboard.root))
    assert done.returncode == 0, done.stderr
    yield dashboard
    settings.write_text(text)


def root_of(board: Dashboard) -> str:
    return str(board.root)


def backup(board: Dashboard, project: str, env: str) -> str:
    done = opskit("backup", project, env, "--root", root_of(board), timeout=300)
    assert done.returncode == 0, done.stderr
    return archive_name(done.stdout.strip().splitlines()[-1])


def database(env: str) -> list[str]:
    """The rows of seriousletter's database in *env*, as INSERT lines, sorted."""
    dump = subprocess.run(
        ["docker", "exec", ns(f"seriousletter-{env}-db"), "pg_dump", "-U", "postgres",
         "--data-only", "--column-inserts", "seriousletter"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return sorted(line for line in dump.stdout.splitlines() if line.startswith("INSERT"))


def psql(env: str, sql: str) -> None:
    subprocess.run(
        ["docker", "exec", ns(f"seriousletter-{env}-db"), "psql", "-U", "postgres", "-d",
         "seriousletter", "-v", "ON_ERROR_STOP=1", "-c", sql],
        check=True, capture_output=True,
    )  # fmt: skip


def files(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def lose_local(board: Dashboard, project: str, env: str, name: str) -> None:
    """The local copy of archive *name* is gone, as a prune removes it (its store's own
    removal), while its offsite copy stays."""
    from opskit import Ops

    with Ops(root=root_of(board)) as ops:
        store = ops.backup_engine().store(ops.project(project), env)
        store.remove([a for a in store.archives() if a.name == name])


def open_env(browser: Any, board: Dashboard, project: str, env: str) -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"{board.url}/backups?project={project}&env={env}")
    wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, "#offsite-note p"), 30, 0.1,
               "the archives and their offsite state")  # fmt: skip


def row(browser: Any, name: str, local: str | None = None) -> Any:
    """The archive's row (None while the page does not show it; *local*: "yes"/"no")."""
    from selenium.webdriver.common.by import By

    selector = f"#archives tr[data-archive='{name}']"
    if local is not None:
        selector += f"[data-local='{local}']"
    found = browser.find_elements(By.CSS_SELECTOR, selector)
    return found[0] if found else None


def ended(browser: Any, board: Dashboard, run: str, what: str) -> None:
    """Wait for *run* to end (each of its jobs ends before it: a restore from offsite is a
    download, then the restore); it ended ok, and the page showed so."""
    from selenium.webdriver.common.by import By

    cookie = board.cookie("olivia")
    wait_until(lambda: finished(board, cookie, run), 600, 0.3, what)
    assert board.api(f"/api/runs/{run}", cookie)[1]["run"]["exit_code"] == 0
    selector = f".log[data-run='{run}'] [data-event='run.finished'].finished-ok"
    wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, selector), 30, 0.2, what + " shown")


def test_an_offsite_only_archive_restored_from_the_page_gives_the_data_back(
    board: Dashboard, browser: Any, store: str
) -> None:
    from selenium.webdriver.common.by import By

    use_store(board.root, store)
    uploads = board.root / "seriousletter" / "uploads" / "dev"
    uploads.mkdir(parents=True, exist_ok=True)
    (uploads / "kept.txt").write_text("as it was at the backup\n")
    rows, kept = database("dev"), files(uploads)
    name = backup(board, "seriousletter", "dev")
    done = opskit("offsite", "upload", "seriousletter", "dev", "--name", name,
                  "--root", root_of(board), timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    # what happened after the backup: a row more, a file changed, a file added
    psql("dev", "CREATE TABLE after_backup (n int)")
    psql("dev", "INSERT INTO letters (subject, body) VALUES ('after', 'the backup')")
    (uploads / "kept.txt").write_text("changed after the backup\n")
    (uploads / "new.txt").write_text("added after the backup\n")
    assert database("dev") != rows and files(uploads) != kept
    lose_local(board, "seriousletter", "dev", name)

    log_in(browser, board, "olivia")
    open_env(browser, board, "seriousletter", "dev")
    wait_until(lambda: row(browser, name, "no"), 30, 0.2, "the archive as offsite only")
    only = row(browser, name, "no")
    assert "offsite only" in only.text
    offsite = only.find_element(By.CSS_SELECTOR, "td[data-state-of='offsite']")
    # complete offsite; the record of its read-back went with the local copy
    assert offsite.get_attribute("data-state") == "unverified", offsite.text
    assert offsite.text == "✓ complete copy"
    assert not only.find_elements(By.CSS_SELECTOR, "button.restore, button.drill, a.download")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", only)
    shot(browser, "backups-offsite")

    before = run_ids(board)
    only.find_element(By.CSS_SELECTOR, "button.restore-offsite").click()
    browser.switch_to.alert.accept()  # dev is not the last env: a plain confirmation
    run = new_run(board, before, "restore", "seriousletter", "dev", "--name", name, "--offsite")
    ended(browser, board, run, "the restore from offsite")
    assert database("dev") == rows
    assert files(uploads) == kept
    # the page read its list again when its run ended: the archive is here again
    wait_until(lambda: row(browser, name, "yes"), 30, 0.2, "the archive back locally")
    back = row(browser, name, "yes")
    assert (
        back.find_element(By.CSS_SELECTOR, "td[data-state-of='verified']").get_attribute(
            "data-state"
        )
        == "ok"
    )


def test_a_drill_started_from_the_page_ends_ok_and_the_archive_shows_drilled(
    board: Dashboard, browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    name = backup(board, "seriousletter", "dev")
    log_in(browser, board, "olivia")
    open_env(browser, board, "seriousletter", "dev")
    wait_until(lambda: row(browser, name, "yes"), 30, 0.2, "the new archive")
    drilled = row(browser, name).find_element(By.CSS_SELECTOR, "td[data-state-of='drilled']")
    assert (drilled.get_attribute("data-state"), drilled.text) == ("never", "never drilled")
    offsite = row(browser, name).find_element(By.CSS_SELECTOR, "td[data-state-of='offsite']")
    assert offsite.text == "no copy"
    assert row(browser, name).find_elements(By.CSS_SELECTOR, "button.offsite-upload")

    before = run_ids(board)
    row(browser, name).find_element(By.CSS_SELECTOR, "button.drill").click()
    run = new_run(board, before, "drill", "seriousletter", "dev", "--name", name)
    ended(browser, board, run, "the drill")

    def drilled() -> tuple[str | None, str]:
        # read in one script: the list is drawn anew when the run ends, and an element
        # found first can be gone when it is read (a stale element, CI 34)
        return tuple(
            browser.execute_script(  # type: ignore[return-value]
                "const c = document.querySelector(arguments[0]);"
                " return c ? [c.dataset.state, c.textContent] : [null, '']",
                f"#archives tr[data-archive='{name}'] td[data-state-of='drilled']",
            )
        )

    wait_until(lambda: drilled()[0] == "ok", 30, 0.2, "the archive shown as drilled")
    text = drilled()[1]
    assert text.startswith("✓ drilled") and text.endswith(("ago", "just now")), text

    # the operations form offers the same, with the env's archives to choose from
    from selenium.webdriver.support.ui import Select

    browser.get(board.url + "/operations")
    wait_until(lambda: browser.find_elements(By.ID, "op"), 20, 0.1, "the operations form")
    Select(browser.find_element(By.ID, "op")).select_by_value("drill")
    Select(browser.find_element(By.ID, "project")).select_by_value("seriousletter")
    Select(browser.find_element(By.ID, "env")).select_by_value("dev")

    def choices() -> list[str]:  # in one script: the options are replaced as answers come
        script = "return [...document.querySelectorAll('#archive option')].map((o) => o.value)"
        return list(browser.execute_script(script))

    wait_until(lambda: name in choices(), 20, 0.1, "the archives to drill")
    assert browser.find_element(By.ID, "archive").is_displayed()


def test_the_plot_of_an_env_with_ten_backups_shows_ten_points(
    board: Dashboard, browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    for _ in range(10):  # prod: only read, the env the other tests leave alone
        backup(board, "seriousletter", "prod")
    log_in(browser, board, "victor")
    open_env(browser, board, "seriousletter", "prod")
    points = "figure[data-plot='size'] circle.point[data-series='size']"
    wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, points), 30, 0.1, "the plot")
    assert len(browser.find_elements(By.CSS_SELECTOR, points)) == 10
    for plot, series in (("duration", "seconds"), ("disk", "backup_disk_used"),
                         ("size", "data_bytes")):  # fmt: skip
        selector = f"figure[data-plot='{plot}'] circle.point[data-series='{series}']"
        assert len(browser.find_elements(By.CSS_SELECTOR, selector)) == 10, plot
    titles = browser.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map((c) => c.textContent)", points
    )
    assert all(t.split(": ")[-1].split()[-1] in ("B", "KiB", "MiB", "GiB") for t in titles), titles
    ticks = browser.find_element(By.CSS_SELECTOR, "figure[data-plot='size'] svg").text
    assert "KiB" in ticks or "MiB" in ticks, ticks
    browser.execute_script("document.querySelector('#backup-plots').scrollIntoView()")
    shot(browser, "backups-plots")


def test_a_viewer_sees_no_offsite_or_drill_buttons_and_cannot_start_them(
    board: Dashboard, browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    log_in(browser, board, "victor")
    open_env(browser, board, "seriousletter", "dev")
    wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, "#archives tr[data-archive]"),
               30, 0.1, "the archives")  # fmt: skip
    assert not browser.find_elements(By.CSS_SELECTOR, "#archives button, #archives a.download")
    name = browser.find_element(By.CSS_SELECTOR, "#archives tr[data-archive]").get_attribute(
        "data-archive"
    )
    archive = {"project": "seriousletter", "env": "dev", "archive": name}
    requests = [
        {"operation": "drill", **archive},
        {"operation": "offsite-upload", **archive},
        {"operation": "offsite-verify", **archive},
        {"operation": "offsite-download", **archive},
        {"operation": "restore", "offsite": True, **archive},
    ]
    open_env(browser, board, "mdf", "prod")  # no backup recorded: words, not an empty frame
    empty = "figure[data-plot='size'] .plot-empty"
    wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, empty), 30, 0.1, "the empty plot")
    assert "no backups recorded" in browser.find_element(By.CSS_SELECTOR, empty).text
    viewer, operator = board.cookie("victor"), board.cookie("olivia")
    before = run_ids(board)
    for body in requests:
        assert board.api("/api/runs", viewer, body)[0] == 403, body
        # an operator's request from another page: the Origin check
        assert board.api("/api/runs", operator, body, origin="http://evil.example")[0] == 403
    assert run_ids(board) == before
