"""``opskit promote`` with real git repositories (a bare origin and a working tree per env),
real image builds and real health checks; rsync and script promotion too."""

from __future__ import annotations

import os
import stat
import urllib.request
from pathlib import Path

import pytest

import wpstack
from conftest import SSH_URL, Run, assert_one_error_line, opskit, wait_until
from testroot import NS, free_ports
from wpstack import git

pytestmark = pytest.mark.docker


def wp(root: Path, *args: str, **kwargs: object) -> Run:
    return opskit("--root", str(root), *args, **kwargs)  # type: ignore[arg-type]


def code(root: Path, env: str) -> Path:
    return root / "wp" / env / "code"


def head(root: Path, env: str) -> str:
    return git("rev-parse", "HEAD", cwd=code(root, env))


def page(port: int, name: str = "index.html") -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/{name}", timeout=5) as response:
        return response.read().decode()  # type: ignore[no-any-return]


def commit_in_dev(root: Path, files: dict[str, str], message: str) -> str:
    """Commit *files* in dev's tree and push develop to origin; return the commit."""
    tree = code(root, "dev")
    for name, text in files.items():
        (tree / name).write_text(text)
    git("add", "-A", cwd=tree)
    git("commit", "--quiet", "-m", message, cwd=tree)
    git("push", "--quiet", "origin", "develop", cwd=tree)
    return head(root, "dev")


def errors(run: Run) -> list[str]:
    assert "Traceback" not in run.stderr
    return [line for line in run.stderr.splitlines() if line.startswith("[error]")]


def test_more_than_one_step_is_refused(wp_root: Path) -> None:
    before = head(wp_root, "prod")
    run = wp(wp_root, "promote", "wp", "--from", "dev", "--to", "prod", "--yes")
    assert_one_error_line(run, "promote goes one step up the environments (dev->int, int->prod)")
    run = wp(wp_root, "promote", "wp", "--from", "prod", "--to", "int", "--yes")
    assert_one_error_line(run, "not prod->int")
    assert head(wp_root, "prod") == before


def test_dry_run_shows_commits_diffstat_and_diff(wp_root: Path) -> None:
    before = head(wp_root, "int")
    old_page = (code(wp_root, "int") / "web" / "index.html").read_text()
    new = commit_in_dev(wp_root, {"web/index.html": "<h1>version 2</h1>\n"}, "Say version 2")
    run = wp(wp_root, "promote", "wp", "--from", "dev", "--to", "int", "--dry-run", "--diff")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert (
        lines[0] == f"promote wp dev (commit {new[:12]}) → int (git, now at commit {before[:12]})"
    )
    assert f"  {new[:7]} Say version 2" in lines
    assert "web/index.html | 2 +-" in run.stdout
    assert "rebuild: yes (web/index.html is in a build context)" in lines
    # The content diff, unified, after the preview.
    at = lines.index("diff --git a/web/index.html b/web/index.html")
    assert lines[at + 2 : at + 4] == ["--- a/web/index.html", "+++ b/web/index.html"]
    assert f"-{old_page.rstrip()}" in lines[at:] and "+<h1>version 2</h1>" in lines[at:]
    run = wp(wp_root, "promote", "wp", "--from", "dev", "--to", "int", "--dry-run", "--diff",
             "--json")  # fmt: skip
    assert run.returncode == 0, run.stderr
    report = run.json()
    assert isinstance(report, dict) and "+<h1>version 2</h1>\n" in report["diff"]
    assert head(wp_root, "int") == before


def test_a_dirty_working_tree_is_refused(wp_root: Path) -> None:
    before = head(wp_root, "int")
    index = code(wp_root, "int") / "web" / "index.html"
    original = index.read_text()
    index.write_text("edited on the server\n")
    try:
        run = wp(wp_root, "promote", "wp", "--from", "dev", "--to", "int", "--yes")
        assert_one_error_line(run, "has local changes (1 file); commit or discard them first")
        assert head(wp_root, "int") == before
        assert index.read_text() == "edited on the server\n"
    finally:
        index.write_text(original)


def test_a_missing_branch_is_refused(wp_root: Path) -> None:
    before = head(wp_root, "int")
    git("push", "--quiet", "origin", "--delete", "develop", cwd=code(wp_root, "dev"))
    try:
        run = wp(wp_root, "promote", "wp", "--from", "dev", "--to", "int", "--yes")
        assert_one_error_line(run, "branch develop (dev) does not exist on origin")
    finally:
        git("push", "--quiet", "origin", "develop", cwd=code(wp_root, "dev"))
    assert head(wp_root, "int") == before


def test_promote_dev_to_int(wp_root: Path) -> None:
    new = commit_in_dev(wp_root, {"web/index.html": "<h1>version 3</h1>\n"}, "Say version 3")
    run = wp(wp_root, "promote", "wp", "--from", "dev", "--to", "int", "--yes", timeout=300)
    assert run.returncode == 0, run.stderr
    assert f"promoted wp dev (commit {new[:12]}) → int; healthy" in run.stdout
    assert head(wp_root, "int") == new
    assert page(wpstack.PORTS["int"]) == "<h1>version 3</h1>\n"  # the image was rebuilt
    assert wp(wp_root, "health", "wp", "int").returncode == 0
    origin = wp_root / "wp" / "origin.git"
    assert git("rev-parse", "refs/heads/staging", cwd=origin) == new
    entry = wp(wp_root, "history", "wp", "--json").json()[-1]  # type: ignore[index]
    assert entry["command"] == "promote" and entry["result"] == "ok"
    assert entry["to_code"] == new and entry["envs"] == ["dev", "int"]
    last = wp(wp_root, "history", "wp").stdout.splitlines()[-1]
    assert f"dev (commit {new[:12]}) → int" in last


def test_unhealthy_code_is_rolled_back(wp_root: Path) -> None:
    before = head(wp_root, "int")
    text_before = page(wpstack.PORTS["int"])
    broken = "FROM opskit-test/web:1\nCOPY index.html /srv/\n"  # no health.txt: unhealthy
    commit_in_dev(wp_root, {"web/Dockerfile": broken}, "Forget health.txt")
    run = wp(wp_root, "promote", "wp", "--from", "dev", "--to", "int", "--yes", timeout=400)
    assert run.returncode == 1, run.stderr
    (error,) = errors(run)
    # the new container starts up failing; Docker calls it unhealthy after 3 checks
    assert error.startswith("[error] promotion of wp int failed (web: healthcheck failed since")
    assert error.endswith(f"rolled back to {before[:12]}, which is healthy")
    assert head(wp_root, "int") == before
    assert wp(wp_root, "health", "wp", "int").returncode == 0
    assert page(wpstack.PORTS["int"]) == text_before
    entry = wp(wp_root, "history", "wp", "--json").json()[-1]  # type: ignore[index]
    assert entry["result"] == "rolled back" and "healthcheck failed" in entry["error"]
    # Put dev right again for whatever runs next.
    commit_in_dev(wp_root, {"web/Dockerfile": wpstack.DOCKERFILE}, "Bring health.txt back")


def test_promotion_to_prod_needs_the_project_name_typed(wp_root: Path) -> None:
    from test_cli import run_on_terminal

    tree = code(wp_root, "int")
    (tree / "NOTES.txt").write_text("a change for prod\n")
    git("add", "NOTES.txt", cwd=tree)
    git("commit", "--quiet", "-m", "Notes", cwd=tree)
    git("push", "--quiet", "origin", "staging", cwd=tree)
    before = head(wp_root, "prod")
    entries = len(wp(wp_root, "history", "wp", "--json").json())  # type: ignore[arg-type]
    code_, output = run_on_terminal(
        ["--root", str(wp_root), "promote", "wp", "--from", "int", "--to", "prod"],
        b"wp-typo\n",
        prompt=b"to go on",
    )
    assert code_ == 2, output
    assert "Notes" in output  # the preview came first
    assert "[error] cancelled: the project name did not match" in output
    assert "Traceback" not in output
    assert head(wp_root, "prod") == before
    assert len(wp(wp_root, "history", "wp", "--json").json()) == entries  # type: ignore[arg-type]


# -- rsync and script --------------------------------------------------------------------

SITE = """\
name: site
environments: [dev, int]
compose: {{dir: "{{env}}", project_name: "{ns}-site-{{env}}"}}
health:
  - {{http: "http://127.0.0.1:{port}/health.txt", expect: 200, timeout: 3, environments: [int]}}
promote:
  type: rsync
  dir: "{{env}}/code"
  exclude: [config.local]
  health_timeout: 8
"""

SITE_PORTS = dict(zip(("dev", "int"), free_ports(2), strict=True))

SITE_COMPOSE = """\
services:
  web:
    init: true
    image: opskit-test/web:1
    command: ["httpd", "-f", "-p", "8080", "-h", "/srv"]
    ports: ["127.0.0.1:{port}:8080"]
    labels: {{ops.project: site, ops.environment: {env}, ops.service: web}}
    volumes: ["./code:/srv:ro"]
"""


@pytest.fixture
def site(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A static site promoted with rsync: int serves its folder on a free port."""
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "project.yaml").write_text(SITE.format(port=SITE_PORTS["int"], ns=NS))
    for env, port in SITE_PORTS.items():
        folder = tmp_path / "site" / env / "code"
        folder.mkdir(parents=True)
        (folder.parent / "docker-compose.yml").write_text(SITE_COMPOSE.format(port=port, env=env))
        (folder / "health.txt").write_text("ok\n")
        (folder / "index.html").write_text(f"{env} version\n")
    (tmp_path / "site" / "int" / "code" / "stale.html").write_text("removed by the promotion\n")
    (tmp_path / "site" / "int" / "code" / "config.local").write_text("int's own settings\n")
    (tmp_path / "site" / "dev" / "code" / "tool.sh").write_text("#!/bin/sh\n")
    os.chmod(tmp_path / "site" / "dev" / "code" / "tool.sh", 0o750)
    run = opskit("--root", str(tmp_path), "start", "site", "int")
    assert run.returncode == 0, run.stderr
    wait_until(lambda: opskit("--root", str(tmp_path), "health", "site", "int").returncode == 0)
    yield tmp_path
    opskit("--root", str(tmp_path), "destroy", "site", "int", "--yes")


def test_rsync_promotion_and_rollback(site: Path) -> None:
    dev, target = site / "site" / "dev" / "code", site / "site" / "int" / "code"
    run = opskit(
        "--root", str(site), "promote", "site", "--from", "dev", "--to", "int", "--dry-run",
        "--diff",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == "promote site dev (working tree) → int (rsync)"
    for line in ("  changed index.html", "  changed tool.sh", "  deleted stale.html"):
        assert line in lines
    assert "config.local" not in run.stdout
    # The content diff of each file, as diff -u writes it.
    at = lines.index("--- a/index.html")
    assert lines[at + 1 : at + 5] == [
        "+++ b/index.html",
        "@@ -1 +1 @@",
        "-int version",
        "+dev version",
    ]
    at = lines.index("--- a/stale.html")
    assert lines[at + 1 : at + 4] == [
        "+++ b/stale.html",
        "@@ -1 +0,0 @@",
        "-removed by the promotion",
    ]
    assert (target / "stale.html").exists()

    run = opskit("--root", str(site), "promote", "site", "--from", "dev", "--to", "int", "--yes")
    assert run.returncode == 0, run.stderr
    assert "promoted site dev (working tree) → int; healthy" in run.stdout
    last = opskit("--root", str(site), "history", "site").stdout.splitlines()[-1]
    assert "dev (working tree) → int" in last and "/code" not in last
    assert page(SITE_PORTS["int"]) == "dev version\n"
    assert not (target / "stale.html").exists()
    assert (target / "config.local").read_text() == "int's own settings\n"
    assert stat.S_IMODE((target / "tool.sh").stat().st_mode) == 0o750

    (dev / "health.txt").unlink()
    (dev / "index.html").write_text("broken version\n")
    run = opskit("--root", str(site), "promote", "site", "--from", "dev", "--to", "int", "--yes")
    assert run.returncode == 1
    (error,) = errors(run)
    assert "rolled back to working tree, which is healthy" in error
    assert page(SITE_PORTS["int"]) == "dev version\n"
    assert (target / "health.txt").exists()
    assert not list(target.parent.glob(".opskit-promote-snapshot-*"))


def test_script_promotion_passes_exit_codes(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "project.yaml").write_text(
        "name: app\nenvironments: [dev, int, prod]\npromote: {type: script, script: ./promote.sh}\n"
    )
    script = tmp_path / "app" / "promote.sh"
    script.write_text('#!/bin/sh\necho "$@" >> calls.txt\nexit "$(cat exitcode)"\n')
    script.chmod(0o755)
    (tmp_path / "app" / "exitcode").write_text("0\n")
    run = opskit(
        "--root", str(tmp_path), "promote", "app", "--from", "int", "--to", "prod", "--yes"
    )
    assert run.returncode == 0, run.stderr
    run = opskit(
        "--root", str(tmp_path), "promote", "app", "--from", "dev", "--to", "int", "--dry-run"
    )
    assert run.returncode == 0, run.stderr
    (tmp_path / "app" / "exitcode").write_text("3\n")
    run = opskit("--root", str(tmp_path), "promote", "app", "--from", "dev", "--to", "int", "--yes")
    assert run.returncode == 3
    calls = (tmp_path / "app" / "calls.txt").read_text().splitlines()
    assert calls == ["--from int --to prod", "--from dev --to int --dry-run", "--from dev --to int"]
    run = opskit(
        "--root", str(tmp_path), "promote", "app", "--from", "dev", "--to", "prod", "--yes"
    )
    assert_one_error_line(run, "not dev->prod")
    run = opskit(
        "--root", str(tmp_path), "promote", "app", "--from", "dev", "--to", "int", "--dry-run",
        "--diff",
    )  # fmt: skip
    assert_one_error_line(
        run, "--diff shows what a git or rsync promotion changes; app promotes with a script"
    )
    history = opskit("--root", str(tmp_path), "history", "--json").json()
    assert [e["result"] for e in history] == ["ok", "failed (exit 3)"]  # type: ignore[union-attr]


@pytest.mark.ssh
def test_promote_preview_over_ssh(wp_root: Path) -> None:
    run = wp(wp_root, "--host", SSH_URL, "promote", "wp", "--from", "int", "--to", "prod",
             "--dry-run", "--json")  # fmt: skip
    assert run.returncode == 0, run.stderr
    report = run.json()
    assert isinstance(report, dict)
    assert report["preview"]["old"] == head(wp_root, "prod")
    assert report["preview"]["new"] == head(wp_root, "int")
    assert report["dry_run"] is True
