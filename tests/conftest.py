"""Shared fixtures. Integration tests (markers ``docker`` and ``ssh``) use the real engine,
the private sshd and the example root brought up by ``scripts/testbed.sh``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import pytest
from hypothesis import HealthCheck, settings

import forkserver
import testroot

if TYPE_CHECKING:
    from sink import Sink
from testroot import compose_image, ns

# A shell starts a background job (scripts/test.sh runs two pytest processes at once) with
# SIGINT ignored, and ignored signals stay ignored in every program it starts: the opskit
# commands that the tests interrupt with Ctrl-C would not even notice it. A handler of our
# own is reset to the default in each child instead.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

ENVS = [
    (project, env)
    for project in ("mdf", "seriousletter", "shop", "webstack")
    for env in ("dev", "prod")
]
DECOY = ns("dev-mdf2-db")

# Property tests: developers get each test's own number of examples (and Hypothesis's
# example database); scripts/test.sh selects the CI profile with OPSKIT_TEST_HYPOTHESIS=ci,
# where they share two cores with three other runners: fewer examples, no deadline, no
# database on a fresh machine, and the blob that reproduces a failure printed.
HYPOTHESIS_PROFILE = os.environ.get("OPSKIT_TEST_HYPOTHESIS", "default")
settings.register_profile(
    "ci",
    max_examples=50,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(HYPOTHESIS_PROFILE)


def _cpu_seconds() -> float:
    """CPU time of this pytest process, of every child it has waited for, and of the
    commands its fork server ran."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    spent = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
    return spent + forkserver.spent_cpu


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    item.stash[CPU_AT_START] = _cpu_seconds()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Each test's CPU seconds (its own, its commands', setup to teardown) as the JUnit
    property ``cpu_seconds``: scripts/test_times.py lists the hungriest beside the slowest.
    The engine's and the containers' share is not in it."""
    if call.when == "teardown" and CPU_AT_START in item.stash:
        spent = _cpu_seconds() - item.stash[CPU_AT_START]
        item.user_properties.append(("cpu_seconds", f"{spent:.2f}"))
    yield


CPU_AT_START = pytest.StashKey[float]()


# The stacks a session starts once for many test files. Each keeps the engine busy while it
# idles (a healthcheck is a `docker exec`: dockerd, containerd and runc spend about 0.05 s of
# CPU on each, and a stack has a dozen of them every one or two seconds), so the modules that
# need one run together, and each stack goes down after the last test that needs it.
SHARED_STACKS = ("examples_up", "wp_root")
LAST_USERS = pytest.StashKey[dict[str, pytest.Item]]()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Order the modules by the shared stacks they need: none, the example copy alone, both,
    then the ``wp`` project alone (a stable sort: each module's tests keep their order)."""
    needs: dict[object, set[str]] = {}
    for item in items:
        needs.setdefault(item.getparent(pytest.Module), set()).update(
            name for name in SHARED_STACKS if name in getattr(item, "fixturenames", ())
        )
    rank = {(): 0, ("examples_up",): 1, ("examples_up", "wp_root"): 2, ("wp_root",): 3}
    items.sort(key=lambda item: rank[tuple(sorted(needs[item.getparent(pytest.Module)]))])


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Once the last test that needs a shared stack (in the run's final list of tests, after
    ``-k`` and ``-m``) is done, tear the stack down instead of keeping it until the end."""
    result = yield
    session = item.session
    if LAST_USERS not in session.stash:
        session.stash[LAST_USERS] = {
            name: user
            for user in session.items
            for name in SHARED_STACKS
            if name in getattr(user, "fixturenames", ())
        }
    for name, user in session.stash[LAST_USERS].items():
        if user is item:
            fixturedef = item._fixtureinfo.name2fixturedefs[name][-1]  # type: ignore[attr-defined]
            fixturedef.finish(item._request)  # type: ignore[attr-defined]
    return result


# The archive stores (#22). A test that takes the ``store`` fixture runs once with each:
# restic (the default of a new root) and folder. A module narrows them with ``STORES``, a
# test with ``@pytest.mark.stores("folder")``; OPSKIT_TEST_STORES=folder (a comma-separated
# list) runs only those sides of the tests that run with several stores, e.g. for a quick
# run while working on one of them. A test that is about one store alone (the folder
# store's altered archive) runs whatever the variable says.
ALL_STORES = ("restic", "folder")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "store" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("stores")
    kinds = marker.args if marker else getattr(metafunc.module, "STORES", ALL_STORES)
    chosen = os.environ.get("OPSKIT_TEST_STORES")
    if chosen and len(kinds) > 1:
        kinds = [k for k in kinds if k in chosen.split(",")]
    metafunc.parametrize("store", kinds, indirect=True)


@pytest.fixture
def store(request: pytest.FixtureRequest) -> Iterator[str]:
    """The archive store this run of the test uses (``restic`` or ``folder``): the test
    names it in a root's descriptors with ``testroot.use_store(root, store)``; they are
    put back as they were afterwards."""
    yield request.param
    testroot.put_back_descriptors()


def archives_of(root: str | Path, project: str, env: str) -> list[dict[str, object]]:
    """``opskit backups PROJECT ENV --json``: the env's archives, newest first, in either
    store (``path`` is a folder archive's folder or a store archive's state folder)."""
    run = opskit("backups", project, env, "--json", "--root", str(root))
    assert run.returncode == 0, run.stderr
    return list(run.json()["archives"])  # type: ignore[index]


def archive_name(printed: str) -> str:
    """The archive's name in what ``opskit backup`` printed: a folder archive's folder, or
    a store archive's ``REPOSITORY:NAME``."""
    return os.path.basename(printed.strip()).rsplit(":", 1)[-1]


def manifest_of(path: str | Path) -> dict[str, object]:
    """The manifest of the archive at *path* (``archives_of``'s ``path``): a folder
    archive's manifest.json, or the copy a store archive's state folder keeps."""
    folder = Path(path)
    if (folder / "manifest.json").exists():
        return dict(json.loads((folder / "manifest.json").read_text()))
    (found,) = folder.glob("manifest-*.json")
    return dict(json.loads(found.read_text()))


def examples(count: int) -> int:
    """How many examples a property test tries: its own *count* for developers, at most the
    CI profile's ``max_examples`` under it."""
    return min(count, settings.default.max_examples) if HYPOTHESIS_PROFILE == "ci" else count


SSH_URL = os.environ.get("OPSKIT_TEST_SSH", "ssh://opskit-root@127.0.0.1:2222")
SSH_KEY = os.environ.get("OPSKIT_TEST_SSH_KEY", "/var/lib/opskit-testbed/ssh/id_ed25519")


@attrs.frozen
class Run:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> object:
        return json.loads(self.stdout)


def _environ(env: dict[str, str] | None = None) -> dict[str, str]:
    environ = {**os.environ, "OPSKIT_SSH_KEY": SSH_KEY}
    environ.pop("OPSKIT_HOST", None)
    environ.pop("OPSKIT_ROOT", None)
    environ.update(env or {})
    return environ


def opskit(
    *args: str, env: dict[str, str] | None = None, input: str | None = None, timeout: float = 180
) -> Run:
    """Run the real ``opskit`` command line in a subprocess."""
    environ = _environ(env)
    if forkserver.wanted(environ):
        code, stdout, stderr = forkserver.server().run(args, environ, input or "", timeout)
        return Run(code, stdout, stderr)
    done = subprocess.run(
        [sys.executable, "-m", "opskit", *args],
        capture_output=True,
        text=True,
        env=environ,
        input=input if input is not None else "",
        timeout=timeout,
    )
    return Run(done.returncode, done.stdout, done.stderr)


def started(*args: str) -> subprocess.Popen[str]:
    """``opskit ARGS`` as a process of its own, for a test that signals it half way; a
    SIGABRT makes it print every thread's stack (see :func:`finished`)."""
    environ = _environ({"PYTHONFAULTHANDLER": "1"})
    return subprocess.Popen(
        [sys.executable, "-m", "opskit", *args],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=environ,
    )  # fmt: skip


def finished(process: subprocess.Popen[str], timeout: float) -> tuple[str, str]:
    """The output of *process* once it ended. One still running after *timeout* seconds
    fails the test with what it was doing: its processes, then its threads' stacks."""
    try:
        return process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        listing = subprocess.run(
            ["ps", "-e", "-o", "pid=,ppid=,etimes=,stat=,args="], capture_output=True, text=True
        ).stdout.splitlines()
        family, rows = {process.pid}, []
        for _ in range(5):  # children listed before their parent are found on a later pass
            for line in listing:
                pid, ppid, *_rest = line.split(None, 2)
                if (int(ppid) in family and int(pid) not in family) or int(pid) == process.pid:
                    family.add(int(pid))
        rows = [line for line in listing if int(line.split(None, 1)[0]) in family]
        process.send_signal(signal.SIGABRT)
        _out, err = process.communicate(timeout=60)
        raise AssertionError(
            f"still running after {timeout:g} s; its processes:\n" + "\n".join(rows) + f"\n{err}"
        ) from None


def assert_one_error_line(run: Run, *fragments: str, code: int = 1) -> None:
    """The contract for a user's mistake: exit code, one [error] line, no traceback."""
    assert run.returncode == code, (run.returncode, run.stdout, run.stderr)
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("[error] "), run.stderr
    assert "Traceback" not in run.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def docker_ready() -> bool:
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


def wait_until(predicate, timeout: float = 120, interval: float = 1.0, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


@pytest.fixture(scope="session", autouse=True)
def remove_leftovers(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Remove what an earlier, killed run of this checkout left: its containers (compose
    started them from another session's temporary folder, gone or not, under the compose
    names this run uses), then its volumes and networks that nothing uses any more (a
    leftover database volume would come back with the old run's data). Two runs of one
    checkout at once are not supported: they share names. Other checkouts have their own."""
    here = str(tmp_path_factory.getbasetemp())
    found = subprocess.run(
        ["docker", "ps", "-a", "--filter", f"name=^{testroot.NS}-", "--format",
         '{{.ID}} {{.Label "com.docker.compose.project.working_dir"}}'],
        capture_output=True, text=True,
    ).stdout.splitlines()  # fmt: skip
    gone = [
        line.split()[0]
        for line in found
        if len(line.split()) == 2 and not line.split()[1].startswith(here + "/")
    ]
    if gone:
        remove_namespaced(gone)


def remove_namespaced(containers: list[str]) -> None:
    """Remove *containers* at once (``docker rm -f``: a test's teardown need not wait for
    each service's stop timeout), then this run's volumes and networks that nothing uses
    any more."""
    if containers:
        subprocess.run(["docker", "rm", "-f", "-v", *containers], capture_output=True)
    for kind in ("volume", "network"):
        names = subprocess.run(
            ["docker", kind, "ls", "-q", "--filter", f"name=^{testroot.NS}-"],
            capture_output=True, text=True,
        ).stdout.split()  # fmt: skip
        for name in names:  # one at a time: those still in use are refused and stay
            subprocess.run(["docker", kind, "rm", name], capture_output=True)


def containers_under(folder: Path) -> list[str]:
    """The IDs of every container, running or not, that compose started from *folder* or a
    folder below it (a test root's stacks, whatever their compose names)."""
    found = subprocess.run(
        ["docker", "ps", "-a", "--filter", "label=com.docker.compose.project.working_dir",
         "--format", '{{.ID}} {{.Label "com.docker.compose.project.working_dir"}}'],
        capture_output=True, text=True,
    ).stdout.splitlines()  # fmt: skip
    pairs = [line.split(" ", 1) for line in found if " " in line]
    return [container for container, where in pairs if Path(where).is_relative_to(folder)]


def wait_healthy(root: Path, *scope: str, timeout: float = 180, what: str = "") -> None:
    """Wait until ``opskit health`` passes for *scope* in *root*. While Docker still calls
    a container of the root's stacks ``starting``, it is asked alone (one ``docker ps`` a
    second, not one opskit process); the answer is opskit's, as before. On a timeout the
    error shows what the last health check said."""
    deadline = time.monotonic() + timeout

    def starting() -> bool:
        found = subprocess.run(
            ["docker", "ps", "--filter", "health=starting", "--format",
             '{{.Label "com.docker.compose.project.working_dir"}}'],
            capture_output=True, text=True,
        ).stdout.splitlines()  # fmt: skip
        return any(where and Path(where).is_relative_to(root) for where in found)

    while starting() and time.monotonic() < deadline:
        time.sleep(1)
    health: list[Run] = []
    try:
        wait_until(
            lambda: (
                health.append(opskit("--root", str(root), "health", *scope))
                or health[-1].returncode == 0
            ),
            timeout=max(deadline - time.monotonic(), 0),
            what=what or f"healthy {' '.join(scope) or 'envs'}",
        )
    except AssertionError as exc:  # say which were not
        raise AssertionError(f"{exc}; the last health check said:\n{health[-1].stdout}") from None


def side_by_side(*commands: tuple[str, ...], timeout: float = 300) -> list[Run]:
    """Run several ``opskit`` command lines at once (stacks start in parallel, as a
    server's boot starts them); their results in order."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=len(commands) or 1) as pool:
        return list(pool.map(lambda args: opskit(*args, timeout=timeout), commands))


@pytest.fixture(scope="session")
def example_copy(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[int, int]]:
    """The tests' namespaced copy of the example root (tests/testroot.py) and its ports."""
    return testroot.build(tmp_path_factory.mktemp("examples"))


@pytest.fixture(scope="session")
def examples_up(example_copy: tuple[Path, dict[int, int]]) -> Iterator[Path]:
    """The tests' copy of the example root with every env running and healthy, plus a
    decoy container."""
    if not docker_ready():
        pytest.fail("no Docker engine: run scripts/testbed.sh (or deselect with -m 'not docker')")
    root = str(example_copy[0])
    subprocess.run(["docker", "rm", "-f", DECOY], capture_output=True)
    subprocess.run(
        ["docker", "run", "-d", "--name", DECOY, "opskit-test/web:1", "sleep", "86400"],
        check=True,
        capture_output=True,
    )
    for run in side_by_side(*(("--root", root, "start", project, env) for project, env in ENVS)):
        assert run.returncode == 0, run.stderr
    wait_healthy(example_copy[0], what="healthy examples")
    yield example_copy[0]
    if os.environ.get("OPSKIT_TEST_KEEP"):
        return
    remove_namespaced([*containers_under(example_copy[0]), DECOY])


@pytest.fixture
def root_with(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Write descriptors into a fresh root: ``root_with({"name": "yaml text"})``."""

    def make(projects: dict[str, str]) -> Path:
        for folder, text in projects.items():
            (tmp_path / folder).mkdir(parents=True, exist_ok=True)
            (tmp_path / folder / "project.yaml").write_text(text)
        return tmp_path

    return make


@pytest.fixture(scope="session")
def wp_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The ``wp`` test project (tests/wpstack.py) with dev, int and prod running and healthy."""
    import wpstack

    if not docker_ready():
        pytest.fail("no Docker engine: run scripts/testbed.sh (or deselect with -m 'not docker')")
    root = tmp_path_factory.mktemp("wp-root")
    wpstack.build(root)
    for run in side_by_side(*(("--root", str(root), "start", "wp", env) for env in wpstack.ENVS)):
        assert run.returncode == 0, run.stderr
    wait_healthy(root, "wp", what="healthy wp envs")
    yield root
    if os.environ.get("OPSKIT_TEST_KEEP"):
        return
    remove_namespaced(containers_under(root))
    subprocess.run(
        ["docker", "rmi", "-f", *(compose_image(f"wp-{env}", "web") for env in wpstack.ENVS)],
        capture_output=True,
    )


@pytest.fixture
def sink() -> Iterator[Sink]:
    """A local HTTP server that stands in for ntfy and a healthchecks.io endpoint."""
    from sink import Sink

    server = Sink()
    yield server
    server.server.shutdown()
