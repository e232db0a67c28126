"""Ctrl-C and SIGTERM in the middle of a restore end like a failure (#10, part 2): the
previous state back, the services running, the lock free, the audit entry written, exit 2.
Here for path components; the database loads of #10 are not covered yet."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import finished, opskit, started, wait_until
from test_events import EV_COMPOSE
from testroot import NS

pytestmark = pytest.mark.docker

CUT = """\
name: cut
environments: [dev]
compose: {{dir: "{{env}}", project_name: "{ns}-cut-{{env}}"}}
backup: {{dir: {backups}, paths: ["{{env}}/data"]}}
health: {{timeout: 30}}
"""


def write_cut(root: Path, store: str = "folder") -> Path:
    """The ``cut`` project in *root*, its archives in *store* (``backup.store``), its
    state folder inside *root*; return its data folder."""
    data = root / "cut" / "dev" / "data"
    data.mkdir(parents=True)
    descriptor = CUT.format(ns=NS, backups=root / "backups")
    descriptor = descriptor.replace("backup: {", f"backup: {{store: {store}, ")
    (root / "cut" / "project.yaml").write_text(descriptor)
    (root / "cut" / "dev" / "compose.yaml").write_text(EV_COMPOSE)
    (root / "opskit.yaml").write_text(f"state_dir: {root / 'state'}\n")
    (data / "index.html").write_text("version 1\n")
    return data


def tree(path: Path) -> dict[str, str]:
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize(
    ("number", "point"),
    [
        (signal.SIGTERM, "extracting"),
        (signal.SIGINT, "extracting"),
        (signal.SIGINT, "starting"),
    ],
    ids=["SIGTERM", "Ctrl-C", "Ctrl-C-starting"],
)
def test_an_interrupted_restore_puts_the_env_back(
    tmp_path: Path, number: int, point: str, store: str
) -> None:
    """At "starting" the restored folder is in place and compose is starting web: the
    engine finishes that start after opskit was interrupted, so putting back must stop
    web even though it did not look running (it kept the replaced folder mounted)."""
    data = write_cut(tmp_path, store)
    for i in range(150):  # incompressible: extracting it takes a while
        (data / f"blob-{i:03}.bin").write_bytes(os.urandom(1 << 20))
    root = str(tmp_path)
    assert opskit("start", "cut", "dev", "--root", root).returncode == 0
    try:
        wait_until(lambda: opskit("health", "cut", "dev", "--root", root).returncode == 0, 60)
        assert opskit("backup", "cut", "dev", "--root", root).returncode == 0
        (data / "index.html").write_text("version 2, written after the backup\n")
        (data / "after.txt").write_text("new\n")
        before = tree(data)

        process = started("restore", "cut", "dev", "--latest", "--yes", "--root", root)
        staging = data.parent / ".opskit-restore-data"  # extraction began
        while process.poll() is None and not staging.exists():
            time.sleep(0.005)
        if point == "starting":  # the restored folder swapped in: compose starts web next
            while process.poll() is None and staging.exists():
                time.sleep(0.005)
        assert process.poll() is None, "the restore ended before the named point"
        time.sleep(0.2)
        process.send_signal(number)
        _out, err = finished(process, 180)
        lines = err.splitlines()
        assert process.returncode == 2, err
        errors = [line for line in lines if line.startswith("[error]")]
        assert len(errors) == 1 and "interrupted" in errors[0], err
        assert "was put back from cut-dev-" in errors[0]

        assert tree(data) == before
        assert opskit("health", "cut", "dev", "--root", root).returncode == 0
        free = opskit("backup", "cut", "dev", "--root", root, env={"OPSKIT_LOCK_TIMEOUT": "5"})
        assert free.returncode == 0, free.stderr  # the lock was released
        entry = json.loads(opskit("history", "cut", "--json", "--root", root).stdout)[-1]
        assert (entry["command"], entry["result"]) == ("restore", "interrupted")
        assert entry["safety_backup"].startswith("cut-dev-")
    finally:
        opskit("destroy", "cut", "dev", "--yes", "--root", root)


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_an_interrupted_backup_starts_the_stopped_services_again(
    examples_up: Path, number: int, store: str
) -> None:
    """mdf prod stops its mail service for the backup (backup.stop)."""
    from conftest import archives_of
    from testroot import BACKUPS, compose_container, ns, use_store

    root = str(use_store(examples_up, store))
    mail = compose_container("mdf-prod-mail", "mail")

    def state() -> str:
        return subprocess.run(
            ["docker", "inspect", "-f", "{{.State.Status}}", mail],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip

    media = subprocess.run(
        ["docker", "volume", "inspect", "-f", "{{.Mountpoint}}", f"{ns('mdf-prod')}_media"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    big = Path(media) / "big.bin"
    with big.open("wb") as handle:
        for _ in range(120):
            handle.write(os.urandom(1 << 20))  # incompressible: the backup takes a while
    directory = BACKUPS / "mdf" / "prod"
    before = sorted(p.name for p in directory.iterdir()) if directory.exists() else []
    archives = archives_of(root, "mdf", "prod")
    try:
        assert state() == "running"
        process = started("backup", "mdf", "prod", "--root", root)
        while process.poll() is None and state() == "running":  # the named point: mail stopped
            time.sleep(0.1)  # each look is a `docker inspect`: leave the CPU to the backup
        assert process.poll() is None, "the backup ended before it stopped mail"
        time.sleep(0.3)
        process.send_signal(number)
        _out, err = finished(process, 180)
        assert process.returncode == 2, err
        assert state() == "running"
        after = sorted(p.name for p in directory.iterdir() if not p.name.startswith(".lock"))
        assert after == [n for n in before if not n.startswith(".lock")]  # nothing partial
        assert archives_of(root, "mdf", "prod") == archives  # in either store
        free = opskit("backup", "mdf", "prod", "--root", root, env={"OPSKIT_LOCK_TIMEOUT": "5"})
        assert free.returncode == 0, free.stderr
    finally:
        big.unlink()
        opskit("start", "mdf", "prod", "--root", root)
