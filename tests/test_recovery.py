"""The server is gone: ``rebuild --all --offsite`` brings a whole root back from offsite alone.

The example root runs in a namespace of its own (A) with its offsite repository on the
test bed's SFTP account. Its archives and its configuration go offsite; then a second,
empty root folder with a fresh state folder, in namespace B, is rebuilt from the
repository and the password file alone, while A still runs beside it, so that every
table and every file can be compared with the original.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import (
    _environ,
    assert_one_error_line,
    containers_under,
    opskit,
    remove_namespaced,
    side_by_side,
    wait_healthy,
)
from testroot import NS, build, free_ports

pytestmark = [pytest.mark.docker, pytest.mark.ssh]

SFTP = os.environ.get("OPSKIT_TEST_SFTP", "sftp://opskit-testbed-sftp//repos")
SFTP_CHROOT = Path("/var/lib/opskit-testbed/sftp-chroot")
NS_A, NS_B = f"{NS}-dra", f"{NS}-drb"
HOME_A, HOME_B = Path(f"/var/lib/opskit-tests/{NS_A}"), Path(f"/var/lib/opskit-tests/{NS_B}")
ENVS = [(p, e) for p in ("mdf", "seriousletter", "shop", "webstack") for e in ("dev", "prod")]
ORDER = ["mdf prod", "seriousletter"]  # rebuild.order: then the rest in the root's order
MOUNT = '    volumes: ["../../_stacks/index.html:/srv/index.html:ro"]\n'


def container(namespace: str, stack: str, service: str) -> str:
    """The running container of *service* in the compose project *stack* of *namespace*."""
    found = subprocess.run(
        ["docker", "ps", "-q", "--filter", f"label=com.docker.compose.project={namespace}-{stack}",
         "--filter", f"label=com.docker.compose.service={service}"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert len(found) == 1, (stack, service, found)
    return found[0]


def tables(namespace: str) -> dict[str, str]:
    """Every table of every database of the root, by a checksum of its rows."""
    found = {}
    for env in ("dev", "prod"):
        db = container(namespace, f"mdf-{env}", "db")
        names = _exec(db, "mariadb", "-N", "--batch", "wordpress", "-e", "SHOW TABLES").split()
        listed = ", ".join(names)
        for line in _exec(db, "mariadb", "-N", "--batch", "wordpress", "-e",
                          f"CHECKSUM TABLE {listed} EXTENDED").splitlines():  # fmt: skip
            table, checksum = line.split("\t")
            found[f"mdf {env} {table}"] = checksum
        db = container(namespace, f"seriousletter-{env}", "db")
        psql = ["psql", "-U", "postgres", "-d", "seriousletter", "-At", "-c"]
        names = _exec(db, *psql, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        for table in names.split():
            sql = f"SELECT count(*) || ' ' || md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM public.{table} t"
            found[f"seriousletter {env} {table}"] = _exec(db, *psql, sql).strip()
    assert len(found) >= 8, found
    return found


def _exec(name: str, *argv: str) -> str:
    done = subprocess.run(["docker", "exec", name, *argv], capture_output=True, text=True)
    assert done.returncode == 0, f"{name}: {done.stderr}"
    return done.stdout


def files(root: Path, namespace: str) -> dict[str, str]:
    """Every file of every backed-up path and volume, by its sha256."""
    trees = {}
    for env in ("dev", "prod"):
        trees[f"mdf {env} uploads"] = root / "mdf" / env / "wp-content" / "uploads"
        trees[f"seriousletter {env} uploads"] = root / "seriousletter" / "uploads" / env
        volume = f"{namespace}-mdf-{env}_media"
        trees[f"mdf {env} media"] = Path(f"/var/lib/docker/volumes/{volume}/_data")
    found = {}
    for name, top in trees.items():
        for path in sorted(top.rglob("*")):
            if path.is_file():
                found[f"{name}/{path.relative_to(top)}"] = hashlib.sha256(
                    path.read_bytes()
                ).hexdigest()
    return found


@pytest.fixture(scope="module")
def server_a(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Path, str, dict[int, int]]]:
    """Root A running, backed up offsite (archives and configuration) over SFTP."""
    root, ports = build(tmp_path_factory.mktemp("dr-a"), NS_A, HOME_A)
    repository = f"dr-{NS}"
    shutil.rmtree(SFTP_CHROOT / "repos" / repository, ignore_errors=True)
    target = f"{SFTP}/{repository}"
    settings = root / "opskit.yaml"
    text = re.sub(r"(?m)^  target: .*$", f"  target: {target}", settings.read_text())
    settings.write_text(
        text + "\nrebuild:\n  order: [" + ", ".join(f'"{o}"' for o in ORDER) + "]\n"
    )
    compose_file = root / "webstack" / "prod" / "compose.yaml"  # behind the reverse proxy
    text = compose_file.read_text()
    assert MOUNT in text
    compose_file.write_text(
        text.replace(MOUNT, MOUNT + "    networks: [default, proxy]\n")
        + f'networks:\n  proxy: {{external: true, name: "{NS_A}-proxy"}}\n'
    )
    subprocess.run(["docker", "network", "create", f"{NS_A}-proxy"], capture_output=True)
    try:
        for run in side_by_side(*(("--root", str(root), "start", p, e) for p, e in ENVS)):
            assert run.returncode == 0, run.stderr
        wait_healthy(root, what="root A healthy")
        (root / "mdf" / "prod" / "wp-content" / "uploads" / "2026").mkdir(exist_ok=True)
        (root / "mdf" / "prod" / "wp-content" / "uploads" / "2026" / "poster.bin").write_bytes(
            os.urandom(300_000)
        )
        for args in (("offsite", "init"), ("backup", "--all", "--offsite"), ("offsite", "config")):
            run = opskit("--root", str(root), *args, timeout=900)
            assert run.returncode == 0, f"{args}: {run.stderr}"
        yield root, target, ports
    finally:
        if not os.environ.get("OPSKIT_TEST_KEEP"):
            remove_namespaced(containers_under(root))
            subprocess.run(["docker", "network", "rm", f"{NS_A}-proxy"], capture_output=True)
            shutil.rmtree(HOME_A, ignore_errors=True)
            shutil.rmtree(SFTP_CHROOT / "repos" / repository, ignore_errors=True)


def rewrites(ports: dict[int, int], theirs: dict[int, int]) -> list[str]:
    """--rewrite options: B's namespace (names and folders), B's ports."""
    found = ["--rewrite", f"{NS_A}={NS_B}"]
    for example, port in ports.items():
        found += ["--rewrite", f"{port}={theirs[example]}"]
    return found


def test_the_whole_server_comes_back_from_offsite_alone(
    server_a: tuple[Path, str, dict[int, int]], tmp_path: Path
) -> None:
    root_a, target, ports_a = server_a
    ports_b = dict(zip(ports_a, free_ports(len(ports_a)), strict=True))
    password = tmp_path / "kept-elsewhere" / "restic-password"  # the escrowed copy
    password.parent.mkdir()
    shutil.copy(HOME_A / "state" / "restic-password", password)
    root_b = tmp_path / "new-server" / "root"
    shutil.rmtree(HOME_B, ignore_errors=True)
    expected = (tables(NS_A), files(root_a, NS_A))
    args = ("--root", str(root_b), "rebuild", "--all", "--offsite", "--from", target,
            "--password-file", str(password), *rewrites(ports_a, ports_b))  # fmt: skip
    try:
        plan = opskit(*args, "--dry-run")
        assert plan.returncode == 0, plan.stderr
        order = re.findall(r"^  \d+\. (\S+ \S+): would ", plan.stdout, re.M)
        assert order[:3] == ["mdf prod", "seriousletter dev", "seriousletter prod"], plan.stdout
        assert sorted(order) == sorted(f"{p} {e}" for p, e in ENVS)
        assert "would start empty" in plan.stdout and "would restore mdf-prod-" in plan.stdout
        assert not root_b.exists(), "a dry run lays nothing out"

        # killed in the second env's restore
        process = subprocess.Popen(  # a group of its own: killed with restic and all
            [sys.executable, "-m", "opskit", *args, "--yes"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True, env=_environ(), start_new_session=True,
        )  # fmt: skip
        seen: list[str] = []
        second = False
        assert process.stderr is not None
        for line in process.stderr:
            seen.append(line)
            second = second or line.startswith("[2/8] seriousletter dev")
            if second and "restoring" in line:
                os.killpg(process.pid, signal.SIGKILL)
                break
        process.wait(timeout=60)
        assert second, "".join(seen)
        assert "[1/8] mdf prod: restored" in "".join(seen)

        run = opskit(*args, "--yes", timeout=1500)
        assert run.returncode == 0, run.stdout + run.stderr
        assert "[1/8] mdf prod: already back" in run.stderr
        for p, e in ENVS:
            assert re.search(
                rf"^{p} {e} +(restored|already back|started empty)", run.stdout, re.M
            ), run.stdout
        rebuilt = [
            h
            for h in opskit("--root", str(root_b), "history", "mdf", "--json").json()  # type: ignore[union-attr]
            if h["command"] == "rebuild" and h["envs"] == ["prod"]
        ]
        assert len(rebuilt) == 1, rebuilt  # the first env was not restored twice

        assert opskit("--root", str(root_b), "health").returncode == 0
        doctor = opskit("--root", str(root_b), "doctor", "--root-only")
        assert doctor.returncode == 0, doctor.stdout
        assert "kept off this server" not in doctor.stdout  # it came from there
        inspected = subprocess.run(
            ["docker", "network", "inspect", f"{NS_B}-proxy", "--format", "{{json .Labels}}"],
            capture_output=True, text=True,
        )  # fmt: skip
        assert '"opskit.created":"external"' in inspected.stdout
        assert (tables(NS_B), files(root_b, NS_B)) == expected
    finally:
        if not os.environ.get("OPSKIT_TEST_KEEP"):
            remove_namespaced(containers_under(root_b))
            subprocess.run(["docker", "network", "rm", f"{NS_B}-proxy"], capture_output=True)
            shutil.rmtree(HOME_B, ignore_errors=True)


def test_a_wrong_password_or_an_unreachable_target_is_one_error_line(
    server_a: tuple[Path, str, dict[int, int]], tmp_path: Path
) -> None:
    _, target, _ = server_a
    wrong = tmp_path / "wrong-password"
    wrong.write_text("not the password\n")
    root = tmp_path / "root"
    run = opskit("--root", str(root), "rebuild", "--all", "--offsite", "--from", target,
                 "--password-file", str(wrong), "--yes")  # fmt: skip
    assert_one_error_line(run, "cannot read the offsite repository", target)
    run = opskit("--root", str(root), "rebuild", "--all", "--offsite", "--from",
                 "sftp://opskit-nowhere//repos/x", "--password-file", str(wrong), "--yes")  # fmt: skip
    assert_one_error_line(run, "sftp://opskit-nowhere//repos/x")
    assert not root.exists()


def _engine_names(namespace: str) -> list[str]:
    """Containers, volumes and networks on the engine whose names are in *namespace*."""
    found = []
    for listing in (["ps", "-a"], ["volume", "ls"], ["network", "ls"]):
        found += subprocess.run(
            ["docker", *listing, "-q", "--filter", f"name=^{namespace}-"],
            capture_output=True, text=True,
        ).stdout.split()  # fmt: skip
    return found


def _drill_until(root: Path, marker: str) -> tuple[subprocess.Popen[str], str, list[str]]:
    """A whole-root drill of *root* as a process group of its own, read until a line with
    *marker*; the process, its namespace, the lines so far."""
    process = subprocess.Popen(
        [sys.executable, "-m", "opskit", "--root", str(root), "drill", "--all", "--offsite"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True, env=_environ(), start_new_session=True,
    )  # fmt: skip
    assert process.stderr is not None
    seen: list[str] = []
    namespace = ""
    for line in process.stderr:
        seen.append(line)
        if found := re.search(r" as (opskit-drill-\S+)$", line.strip()):
            namespace = found.group(1)
        if marker in line:
            return process, namespace, seen
    raise AssertionError("".join(seen))


def test_a_drill_of_the_whole_root_from_offsite_proves_it_and_leaves_nothing(
    server_a: tuple[Path, str, dict[int, int]],
) -> None:
    root_a, _target, _ = server_a
    before = tables(NS_A)

    # kill -9 while its stacks start: what it started stays behind ...
    killed, first, _ = _drill_until(root_a, "phase 3/4")
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait(timeout=60)
    assert first and _engine_names(first)

    # ... until the next drill, which removes it; that one is stopped (SIGTERM to opskit
    # alone, as 'systemctl stop' of a unit with KillMode=mixed) and removes its own
    stopped, second, _ = _drill_until(root_a, "phase 3/4")
    assert second != first and not _engine_names(first)
    stopped.send_signal(signal.SIGTERM)
    _out, err = stopped.communicate(timeout=300)
    assert stopped.returncode != 0
    assert not _engine_names(second), err

    run = opskit("--root", str(root_a), "drill", "--all", "--offsite", "--json", timeout=1500)
    assert run.returncode == 0, run.stdout + run.stderr
    envs = {f"{e['project']} {e['env']}": e for e in run.json()["envs"]}  # type: ignore[index]
    assert sorted(envs) == sorted(f"{p} {e}" for p, e in ENVS)
    for key, back in envs.items():
        assert back["state"] in ("restored", "started empty") and back["healthy"], (key, back)
    assert envs["mdf prod"]["rows"] and envs["mdf prod"]["files"]
    namespace = re.search(r" as (opskit-drill-\S+)$", run.stderr, re.M)
    assert namespace is not None and not _engine_names(namespace.group(1))
    assert not list((HOME_A / "state" / "drills").iterdir())
    assert tables(NS_A) == before  # the live root untouched
    assert opskit("--root", str(root_a), "health").returncode == 0
