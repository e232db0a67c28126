"""Trust on servers opskit did not set up, against the real engine: compose project
identity (same-named folders, stacks started by hand, collisions), the fresh health gate
and ``opskit doctor``. Written to pass beside other compose projects on the engine."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

import wpstack
from conftest import Run, assert_one_error_line, opskit, wait_until
from gatestack import GATE, build_gate
from testroot import NS, compose, free_ports, ns
from wpstack import git

pytestmark = pytest.mark.docker

STACKS = Path(__file__).resolve().parent.parent / "examples" / "root" / "_stacks"


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout


def compose_containers(name: str) -> dict[str, str]:
    """Container id -> state of every container of compose project *name*."""
    out = docker(
        "ps", "-a", "--filter", f"label=com.docker.compose.project={name}",
        "--format", "{{.ID}} {{.State}}",
    )  # fmt: skip
    return dict(line.split() for line in out.splitlines())


def labels_of(container: str) -> dict[str, str]:
    return json.loads(docker("inspect", "-f", "{{json .Config.Labels}}", container))  # type: ignore[no-any-return]


# -- same-named folders ------------------------------------------------------------------


def test_same_named_folders_of_two_projects_stay_apart(examples_up: Path) -> None:
    """webstack and shop both keep their envs in folders named dev and prod, with a
    service named web: changing one leaves the other's containers as they were."""
    root = str(examples_up)
    webstack = compose_containers(ns("webstack-prod"))
    assert len(webstack) == 2 and set(webstack.values()) == {"running"}
    try:
        for action in (["stop"], ["start"], ["restart"], ["destroy", "--yes"], ["start"]):
            run = opskit(action[0], "shop", "prod", *action[1:], "--root", root)
            assert run.returncode == 0, run.stderr
            assert compose_containers(ns("webstack-prod")) == webstack, action
        shop = compose_containers(ns("shop-prod"))
        assert len(shop) == 1 and set(shop.values()) == {"running"}
    finally:
        # shop's healthcheck runs every 30 s, as on real servers
        wait_until(
            lambda: opskit("health", "shop", "prod", "--root", root).returncode == 0,
            timeout=120,
            what="shop prod healthy again",
        )


def test_doctor_passes_the_example_root(examples_up: Path) -> None:
    run: Run = opskit("doctor", "--json", "--root", str(examples_up))
    problems = [f for f in run.json()["findings"] if f["severity"] == "problem"]  # type: ignore[index]
    assert run.returncode == 0 and problems == [], problems
    kinds = {(f["project"], f["kind"]) for f in run.json()["findings"]}  # type: ignore[index]
    assert ("mdf", "backup") in kinds  # wp-content is backed up only in part: a warning


# -- collisions ----------------------------------------------------------------------------

CLASH = """\
name: {name}
environments: [dev, prod]
compose: {{dir: "{folder}-{{env}}"}}
backup: {{dir: {backups}, paths: ["{{env}}/data"]}}
sync: {{pairs: [[prod, dev]]}}
promote: {{type: rsync, dir: "{folder}-{{env}}"}}
"""


@pytest.fixture
def clashing_root(tmp_path: Path) -> tuple[Path, str]:
    """Two projects whose env folders have the same names: each env of one would be the
    same compose project as that env of the other."""
    folder = f"site-{NS}"  # unique to this checkout, so only these two clash
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "project.yaml").write_text(
            CLASH.format(name=name, folder=folder, backups=tmp_path / "backups")
        )
        for env in ("dev", "prod"):
            (tmp_path / name / f"{folder}-{env}").mkdir(parents=True)
            (tmp_path / name / env / "data").mkdir(parents=True)
            (tmp_path / name / f"{folder}-{env}" / "compose.yaml").write_text(
                "services:\n  web:\n    image: opskit-test/web:1\n"
                '    command: ["sleep", "2147483647"]\n'
            )
    return tmp_path, folder


@pytest.mark.parametrize(
    "command",
    [
        ["start", "one", "dev"],
        ["stop", "one", "dev"],
        ["restart", "one", "dev", "web"],
        ["build", "one", "dev"],
        ["destroy", "one", "dev", "--yes"],
        ["restore", "one", "dev", "--latest", "--yes"],
        ["sync", "one", "--from", "prod", "--to", "dev", "--yes"],
        ["promote", "one", "--from", "dev", "--to", "prod", "--yes"],
        ["rebuild", "one", "dev", "--yes"],
    ],
)
def test_every_changing_command_refuses_a_collision(
    clashing_root: tuple[Path, str], command: list[str]
) -> None:
    root, folder = clashing_root
    env = "prod" if command[0] == "promote" else "dev"
    run = opskit(*command, "--root", str(root))
    assert_one_error_line(
        run,
        f"compose project name '{folder}-{env}' is used by both one {env} ({root}/one/",
        f"and two {env} ({root}/two/{folder}-{env})",
        "set compose.project_name",
    )
    assert compose_containers(f"{folder}-{env}") == {}
    assert not (root / "backups").exists()


def test_status_and_health_show_a_collision(clashing_root: tuple[Path, str]) -> None:
    root, folder = clashing_root
    run = opskit("status", "one", "--root", str(root))
    assert run.returncode == 0, run.stderr
    warnings = [line for line in run.stderr.splitlines() if line.startswith("[warning]")]
    assert len(warnings) == 2 and f"compose project name '{folder}-prod'" in warnings[1]
    run = opskit("health", "one", "dev", "--json", "--root", str(root))
    assert run.returncode == 1
    (check,) = [c for c in run.json()["checks"] if c["check"] == "compose project name"]  # type: ignore[index]
    assert not check["ok"] and "two dev" in check["detail"]


def test_a_pinned_name_ends_the_collision(clashing_root: tuple[Path, str]) -> None:
    root, folder = clashing_root
    descriptor = root / "two" / "project.yaml"
    descriptor.write_text(
        descriptor.read_text().replace(
            f'dir: "{folder}-{{env}}"}}',
            f'dir: "{folder}-{{env}}", project_name: "{ns("two-{env}")}"}}',
            1,
        )
    )
    run = opskit("start", "one", "dev", "--dry-run", "--json", "--root", str(root))
    assert run.returncode == 0, run.stderr
    argv = run.json()["commands"][0]  # type: ignore[index]  # compose v2 or v1, then the name
    assert argv[argv.index("--project-name") + 1] == f"{folder}-dev"


# -- a stack started by hand -------------------------------------------------------------


@pytest.fixture(scope="module")
def by_hand(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The wp project, every env brought up by hand with ``docker compose -p`` (or v1's
    ``docker-compose -p``, whichever the machine has): its
    folders are all called "code", and nothing in them names the compose project."""
    root = tmp_path_factory.mktemp("by-hand")
    ports = dict(zip(wpstack.ENVS, free_ports(len(wpstack.ENVS)), strict=True))
    wpstack.build(root, ports=ports, name=ns("byhand"), name_in_env_file=False)
    for env in wpstack.ENVS:
        code = root / "wp" / env / "code"
        subprocess.run(
            [*compose(), "-p", ns(f"byhand-{env}"), "--env-file", f".env.{env}", "up", "-d", "--build"],
            cwd=code, check=True, capture_output=True,
        )  # fmt: skip
    wait_until(
        lambda: opskit("--root", str(root), "health", "wp").returncode == 0,
        timeout=180,
        what="the by-hand wp envs healthy",
    )
    yield root
    for env in wpstack.ENVS:
        subprocess.run(
            [*compose(), "-p", ns(f"byhand-{env}"), "--env-file", f".env.{env}", "down", "-v", "--rmi", "local"],
            cwd=root / "wp" / env / "code", capture_output=True,
        )  # fmt: skip


def assert_names_kept(root: Path) -> None:
    for env in wpstack.ENVS:
        found = compose_containers(ns(f"byhand-{env}"))
        assert len(found) == 2 and set(found.values()) == {"running"}, (env, found)
    assert compose_containers("code") == {}


def test_a_stack_started_by_hand_is_adopted(by_hand: Path) -> None:
    root = str(by_hand)
    doctor = opskit("doctor", "--json", "--root", root).json()
    adopted = {
        f["environment"]: f["message"]
        for f in doctor["findings"]  # type: ignore[index]
        if f["kind"] == "compose name" and f["project"] == "wp"
    }
    assert set(adopted) == set(wpstack.ENVS)
    assert f"pin it with compose.project_name: {ns('byhand-dev')}" in adopted["dev"]

    run = opskit("backup", "wp", "dev", "--root", root)
    assert run.returncode == 0, run.stderr
    assert_names_kept(by_hand)
    run = opskit("restore", "wp", "dev", "--latest", "--yes", "--root", root, timeout=300)
    assert run.returncode == 0, run.stderr
    assert_names_kept(by_hand)
    run = opskit(
        "sync", "wp", "--from", "prod", "--to", "dev", "--yes", "--root", root, timeout=300
    )
    assert run.returncode == 0, run.stderr
    assert_names_kept(by_hand)

    tree = by_hand / "wp" / "dev" / "code"
    (tree / "web" / "index.html").write_text("<h1>by hand, version 2</h1>\n")
    git("commit", "--quiet", "-am", "version 2", cwd=tree)
    git("push", "--quiet", "origin", "develop", cwd=tree)
    run = opskit(
        "promote", "wp", "--from", "dev", "--to", "int", "--yes", "--root", root, timeout=300
    )
    assert run.returncode == 0, run.stderr
    assert_names_kept(by_hand)
    web = docker("ps", "-q", "--filter", f"label=com.docker.compose.project={ns('byhand-int')}",
                 "--filter", "label=com.docker.compose.service=web").split()  # fmt: skip
    assert len(web) == 1
    assert labels_of(web[0])["com.docker.compose.project.working_dir"] == str(
        by_hand / "wp" / "int" / "code"
    )


# -- the fresh health gate -------------------------------------------------------------------


def test_the_gate_needs_evidence_newer_than_the_promotion(tmp_path: Path) -> None:
    project = build_gate(tmp_path)
    root = str(tmp_path)
    run = opskit("start", "gate", "int", "--root", root)
    assert run.returncode == 0, run.stderr
    try:
        wait_until(
            lambda: opskit("health", "gate", "int", "--root", root).returncode == 0, timeout=60
        )
        (container,) = compose_containers(ns("gate-int"))
        int_tree, dev_tree = project / "int" / "code", project / "dev" / "code"
        old = git("rev-parse", "HEAD", cwd=int_tree)

        git("rm", "--quiet", "site/health.txt", cwd=dev_tree)
        git("commit", "--quiet", "-m", "break the healthcheck", cwd=dev_tree)
        git("push", "--quiet", "origin", "develop", cwd=dev_tree)
        run = opskit("promote", "gate", "--from", "dev", "--to", "int", "--yes", "--root", root)
        assert run.returncode == 1
        (error,) = [line for line in run.stderr.splitlines() if line.startswith("[error]")]
        assert "web: healthcheck failed since the change (exit 1: cat: can't open" in error
        assert error.endswith(f"rolled back to {old[:12]}, which is healthy")
        assert git("rev-parse", "HEAD", cwd=int_tree) == old
        assert (int_tree / "site" / "health.txt").exists()
        assert list(compose_containers(ns("gate-int"))) == [container]  # never recreated
        assert opskit("health", "gate", "int", "--root", root).returncode == 0

        (dev_tree / "site" / "health.txt").write_text("ok\n")
        (dev_tree / "site" / "index.html").write_text("version 2\n")
        git("add", "-A", cwd=dev_tree)
        git("commit", "--quiet", "-m", "version 2", cwd=dev_tree)
        git("push", "--quiet", "origin", "develop", cwd=dev_tree)
        run = opskit("promote", "gate", "--from", "dev", "--to", "int", "--yes", "--root", root)
        assert run.returncode == 0, run.stderr
        assert git("rev-parse", "HEAD", cwd=int_tree) == git("rev-parse", "HEAD", cwd=dev_tree)
    finally:
        opskit("destroy", "gate", "int", "--yes", "--root", root)


def test_the_gate_runs_the_healthcheck_itself_instead_of_waiting_for_the_engine(
    tmp_path: Path,
) -> None:
    """With a healthcheck every 2 minutes, a promotion's gate does not wait for the
    engine's next run: it runs the healthcheck command itself, after the change; and
    ``health`` takes such a run while the engine still says "starting"."""
    project = build_gate(tmp_path, interval="120s")
    (project / "project.yaml").write_text(
        GATE.format(ns=NS).replace("health_timeout: 40", "health_timeout: 150")
    )
    root = str(tmp_path)
    assert opskit("start", "gate", "int", "--root", root).returncode == 0
    try:
        (container,) = compose_containers(ns("gate-int"))
        health = opskit("health", "gate", "int", "--json", "--root", root)
        assert health.returncode == 0, health.stdout
        (check,) = [c for c in health.json()["checks"] if c["check"] == "container web"]
        assert check["detail"].endswith("starting; its healthcheck passed when opskit ran it")

        dev_tree = project / "dev" / "code"
        (dev_tree / "site" / "index.html").write_text("version 2\n")
        git("commit", "--quiet", "-am", "version 2", cwd=dev_tree)
        git("push", "--quiet", "origin", "develop", cwd=dev_tree)
        run = opskit("promote", "gate", "--from", "dev", "--to", "int", "--yes", "--root", root)
        assert run.returncode == 0, run.stderr
        state = json.loads(
            subprocess.run(
                ["docker", "inspect", "-f", "{{json .State.Health}}", container],
                capture_output=True, text=True, check=True,
            ).stdout
        )  # fmt: skip
        assert state["Status"] == "starting" and not state["Log"], state  # no run of its own
    finally:
        opskit("destroy", "gate", "int", "--yes", "--root", root)


def test_a_healthcheck_slower_than_the_timeout_is_named(tmp_path: Path) -> None:
    project = build_gate(tmp_path)
    (project / "project.yaml").write_text(
        GATE.format(ns=NS).replace("health_timeout: 40", "health_timeout: 3")
    )
    root = str(tmp_path)
    assert opskit("start", "gate", "int", "--root", root).returncode == 0
    try:
        dev_tree = project / "dev" / "code"
        (dev_tree / "site" / "index.html").write_text("version 2\n")
        git("commit", "--quiet", "-am", "version 2", cwd=dev_tree)
        git("push", "--quiet", "origin", "develop", cwd=dev_tree)
        before = git("rev-parse", "HEAD", cwd=project / "int" / "code")
        run = opskit("promote", "gate", "--from", "dev", "--to", "int", "--yes", "--root", root)
        assert_one_error_line(
            run, "runs every 5 s, longer than the gate's 3 s", "raise promote.health_timeout"
        )
        assert git("rev-parse", "HEAD", cwd=project / "int" / "code") == before  # refused first
    finally:
        opskit("destroy", "gate", "int", "--yes", "--root", root)


# -- doctor --------------------------------------------------------------------------------

LAX = """\
name: lax
environments: [dev]
compose: {{dir: "{{env}}", project_name: "{ns}-lax-{{env}}"}}
backup: {{dir: {backups}, paths: ["{{env}}/exports"]}}
"""

LAX_COMPOSE = """\
services:
  web:
    init: true
    image: opskit-test/web:1
    command: ["sleep", "2147483647"]
    volumes: ["./files:/srv/files", "cache:/srv/cache", "./exports:/srv/exports"]
  db:
    init: true
    image: opskit-test/db:1
    command: ["/stacks/mariadb.sh"]
    environment: {{MYSQL_ROOT_PASSWORD: lax-pw, MYSQL_DATABASE: shop}}
    volumes: ["data:/var/lib/mysql", "{stacks}:/stacks:ro"]
    healthcheck: {{test: ["CMD", "mariadb-admin", "ping", "--silent"], interval: 1s, retries: 60}}
volumes:
  cache: {{}}
  data: {{}}
"""


def test_doctor_finds_what_nobody_looks_after(
    tmp_path: Path, clashing_root: tuple[Path, str]
) -> None:
    root, folder = clashing_root
    lax = root / "lax"
    for sub in ("dev/files", "dev/exports"):
        (lax / sub).mkdir(parents=True)
    (lax / "project.yaml").write_text(LAX.format(ns=NS, backups=tmp_path / "lax-backups"))
    (lax / "dev" / "compose.yaml").write_text(LAX_COMPOSE.format(stacks=STACKS))
    assert opskit("start", "lax", "dev", "--root", str(root)).returncode == 0
    try:
        wait_until(
            lambda: opskit("health", "lax", "dev", "--root", str(root)).returncode == 0, timeout=90
        )
        run = opskit("doctor", "--json", "--root", str(root))
        assert run.returncode == 1, run.stderr
        problems = [
            (f["kind"], f["project"], f["message"])
            for f in run.json()["findings"]  # type: ignore[index]
            if f["severity"] == "problem"
        ]
        assert (
            "backup",
            "lax",
            f"volume {ns('lax-dev')}_cache (web:/srv/cache) is in no backup component",
        ) in problems
        assert (
            "backup",
            "lax",
            f"bind mount {lax}/dev/files (web:/srv/files) is in no backup component",
        ) in problems
        assert (
            "database",
            "lax",
            "db runs a mariadb server, but no database of it is in backup.databases",
        ) in problems
        assert (
            "backup",
            "lax",
            f"volume {ns('lax-dev')}_data (db:/var/lib/mysql) is in no backup component",
        ) in problems
        assert [p for p in problems if p[0] == "compose name" and f"'{folder}-dev'" in p[2]]
        assert not [p for p in problems if "exports" in p[2]]  # covered by backup.paths
        plain = opskit("doctor", "--root", str(root))
        assert plain.returncode == 1 and "problem" in plain.stdout
    finally:
        opskit("destroy", "lax", "dev", "--volumes", "--yes", "--root", str(root))


# -- containers placed under no valid service name ------------------------------------------

# ops.service labels no compose command could address, and whether the container runs.
STRAYS = {"-x": True, "a b": True, "\x1b[31mred": True, "../x": False}


def states(names: Iterable[str]) -> dict[str, tuple[str, str]]:
    """Container name -> (state, start time): a restart or a stop changes it."""
    out = docker("inspect", "-f", "{{.Name}} {{.State.Status}} {{.State.StartedAt}}", *names)
    return {
        n.lstrip("/"): (state, started) for n, state, started in map(str.split, out.splitlines())
    }


@pytest.fixture
def strays(wp_root: Path) -> Iterator[dict[str, str]]:
    """Containers labelled for wp dev with the STRAYS service names: name -> label."""
    found = {ns(f"stray-label-{i}"): service for i, service in enumerate(STRAYS)}
    subprocess.run(["docker", "rm", "-f", *found], capture_output=True)
    for name, service in found.items():
        command = ["sleep", "86400"] if STRAYS[service] else ["sh", "-c", "exit 3"]
        docker("run", "-d", "--name", name, "--label", "ops.project=wp",
               "--label", "ops.environment=dev", "--label", f"ops.service={service}",
               "opskit-test/web:1", *command)  # fmt: skip
    wanted = {name: "running" if STRAYS[service] else "exited" for name, service in found.items()}
    wait_until(lambda: {n: s[0] for n, s in states(found).items()} == wanted, timeout=30)
    yield found
    subprocess.run(["docker", "rm", "-f", *found], capture_output=True)


def test_a_container_under_no_service_name_is_shown_reported_and_left_alone(
    wp_root: Path, strays: dict[str, str]
) -> None:
    """Labelled for wp dev with an ops.service no compose command could take: status
    shows it (escaped), doctor reports it, and sync and restore of wp dev work around
    it (one of them has exited: the health they wait for does not count it)."""
    root = str(wp_root)
    before = states(strays)
    status = opskit("status", "wp", "dev", "--json", "--root", root).json()
    shown = {c["name"]: c for c in status["containers"]}  # type: ignore[index]
    for name, service in strays.items():
        assert shown[name]["service"] == service and shown[name]["ignored"], shown[name]
    plain = opskit("status", "wp", "dev", "--root", root)
    assert "\\x1b[31mred" in plain.stdout and "\x1b" not in plain.stdout + plain.stderr
    assert plain.stderr.count("[warning] wp dev: container ") == len(strays), plain.stderr
    health = opskit("health", "wp", "dev", "--root", root)
    assert health.returncode == 0, health.stdout

    doctor = opskit("doctor", "--json", "--root", root)
    assert doctor.returncode == 1
    found = {
        f["message"].split(":")[0].removeprefix("container "): f
        for f in doctor.json()["findings"]  # type: ignore[index]
        if f["kind"] == "service name"
    }
    assert set(found) == set(strays), doctor.stdout
    for name, service in strays.items():
        finding = found[name]
        assert (finding["severity"], finding["project"], finding["environment"]) == (
            "problem", "wp", "dev",
        )  # fmt: skip
        assert (
            f"{service!r} (from its ops.service label) is not a service name" in finding["message"]
        )

    sync = opskit("sync", "wp", "--from", "prod", "--to", "dev", "--yes", "--root", root,
                  timeout=300)  # fmt: skip
    assert sync.returncode == 0, sync.stderr
    warnings = [line for line in sync.stderr.splitlines() if line.startswith("[warning]")]
    assert {name for name in strays if any(name in w for w in warnings)} == set(strays)
    assert "\x1b" not in sync.stderr
    restore = opskit("restore", "wp", "dev", "--latest", "--yes", "--root", root, timeout=300)
    assert restore.returncode == 0, restore.stderr
    assert states(strays) == before  # never stopped, started or restarted
