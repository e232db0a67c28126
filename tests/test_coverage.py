"""Coverage that stays true (#21), on the real engine: the watch computes doctor's coverage
once a day and alerts once when a volume is added to a running stack; ``doctor
--root-only`` leaves out the stacks beside ours. One small stack without a healthcheck."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from conftest import opskit
from sink import Sink
from test_unattended import settings
from testroot import NS, compose, ns

pytestmark = pytest.mark.docker

COV = """\
name: cov
environments: [dev]
compose: {{dir: "{{env}}", project_name: "{ns}-cov-{{env}}"}}
backup: {{dir: {backups}, paths: ["{{env}}/data"]{volumes}}}
"""

COV_COMPOSE = """\
services:
  web:
    init: true
    image: opskit-test/web:1
    command: ["sleep", "2147483647"]
    volumes: ["./data:/srv/data"{cache}]
"""


def describe(root: Path, volumes: str = "", cache: bool = False) -> None:
    """cov's descriptor (backup.volumes: *volumes*) and compose file (with *cache*, a named
    volume at /srv/cache)."""
    backups = root.parent / "backups"
    (root / "cov" / "project.yaml").write_text(COV.format(ns=NS, backups=backups, volumes=volumes))
    text = COV_COMPOSE.format(cache=', "cache:/srv/cache"' if cache else "")
    (root / "cov" / "dev" / "compose.yaml").write_text(
        text + ("volumes:\n  cache: {}\n" if cache else "")
    )


@pytest.fixture
def cov(tmp_path: Path) -> Iterator[Path]:
    """The root of a running one-service project whose bind mount is backed up."""
    root = tmp_path / "root"
    (root / "cov" / "dev" / "data").mkdir(parents=True)
    describe(root)
    started = opskit("start", "cov", "dev", "--root", str(root))
    assert started.returncode == 0, started.stderr
    try:
        yield root
    finally:
        opskit("destroy", "cov", "dev", "--volumes", "--yes", "--root", str(root))


def test_a_volume_added_to_a_running_stack_alerts_once_then_recovers(cov: Path, sink: Sink):
    from opskit import Ops

    settings(cov, sink, cov.parent / "state")
    start = datetime.now(UTC)

    def watch(hours: float) -> list[dict[str, object]]:
        sink.clear()
        Ops(root=str(cov)).watch(now=start + timedelta(hours=hours))
        return sink.messages()

    assert watch(0) == []  # coverage computed: the bind mount is backed up
    describe(cov, cache=True)  # a volume added to the running stack: compose up -d again
    started = opskit("start", "cov", "dev", "--root", str(cov))
    assert started.returncode == 0, started.stderr
    assert watch(1) == []  # coverage is computed once a day
    (alert,) = watch(24)
    volume = f"{ns('cov-dev')}_cache"
    assert str(alert["title"]).startswith("opskit: 1 check failing on ")
    assert alert["message"] == (
        f"cov dev not backed up: volume {volume}: volume {volume} (web:/srv/cache) is in no "
        f"backup component: add it to backup.volumes in {cov}/cov/project.yaml, or to "
        "backup.expendable if it holds nothing to keep"
    )
    assert watch(24.1) == [] and watch(48) == []  # not again: computed again, unchanged
    sink.clear()
    done = opskit("watch", "--coverage", "--json", "--root", str(cov))  # computed now
    assert done.returncode == 1 and sink.messages() == []
    failing = [c["key"] for c in json.loads(done.stdout)["checks"] if not c["ok"]]
    assert failing == [f"cov dev not backed up: volume {volume}"]

    describe(cov, volumes=f', volumes: ["{NS}-cov-{{env}}_cache"]', cache=True)
    (recovered,) = watch(72)
    assert str(recovered["title"]).startswith("opskit: 1 check recovered on ")
    assert (
        recovered["message"]
        == f"cov dev not backed up: volume {volume}: covered now, or no longer there"
    )
    assert watch(96) == []


def test_doctor_root_only_hides_a_stack_beside_ours(cov: Path, tmp_path: Path) -> None:
    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "compose.yaml").write_text(COV_COMPOSE.format(cache=""))
    (stray / "data").mkdir()
    name = ns("cov-stray")
    program = [*compose(), "--project-name", name]
    subprocess.run([*program, "up", "-d"], cwd=stray, check=True, capture_output=True)
    try:
        everything = opskit("doctor", "--json", "--root", str(cov))
        mine = opskit("doctor", "--json", "--root-only", "--root", str(cov))
        plain = opskit("doctor", "--root-only", "--root", str(cov))
    finally:
        subprocess.run([*program, "down", "--volumes"], cwd=stray, capture_output=True)
    assert everything.returncode == mine.returncode == plain.returncode == 0, mine.stderr
    findings = everything.json()["findings"]  # type: ignore[index]
    assert [f for f in findings if f["kind"] == "unclaimed" and name in f["message"]]
    kept = mine.json()["findings"]  # type: ignore[index]
    assert kept == [f for f in findings if f["kind"] != "unclaimed"]
    assert name not in plain.stdout and "belongs to no project" not in plain.stdout
