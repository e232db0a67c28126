"""Helpers for the tests of opskit plugins (and of opskit itself).

::

    from opskit.testing import EventRecorder, plugin_manager

    def test_my_plugin_sees_backups(tmp_path):
        recorder = EventRecorder()
        plugins = plugin_manager(my_plugin, recorder)
        with opskit.Ops(root=str(tmp_path), plugins=plugins) as ops:
            ops.backup("shop", "prod")
        assert recorder.results() == ["ok"]

Each call makes a fresh plugin manager, so tests never share plugin state.

:class:`FakeHost` is a host without Docker: it records every command an engine runs and
answers the test's rules, so what an engine decides (what it runs, in which order, what
it does when a command fails) is tested in milliseconds. A plugin whose component dumps
a Redis cache with ``redis-cli``::

    APP = '''
    name: app
    environments: [prod]
    compose: {dir: "{env}", project_name: "app-{env}"}
    services: {cache: {}}
    backup: {dir: BACKUPS}
    '''

    def test_a_failed_dump_leaves_no_archive(tmp_path):
        fake = FakeHost(tmp_path)                  # files live in tmp_path, for real
        fake.write(fake.path("root/app/project.yaml"),
                   APP.replace("BACKUPS", fake.path("backups")))
        fake.write(fake.path("root/app/prod/compose.yaml"), "services: {cache: {}}\n")
        fake.container(project="app", env="prod", service="cache")   # app-prod-cache-1
        fake.on(["docker", "exec", "app-prod-cache-1"], returncode=1, stderr="NOAUTH\n")
        plugins = plugin_manager(my_redis_plugin)
        with opskit.Ops(root=fake.path("root"), host=fake, plugins=plugins) as ops:
            with pytest.raises(opskit.OpskitError, match="NOAUTH"):
                ops.backup("app", "prod")
        assert fake.ran(["docker", "exec", "app-prod-cache-1", "redis-cli"])
        assert fake.listdir(fake.path("backups/app/prod")) == [".lock"]
"""

from __future__ import annotations

import io
import json
import os
import posixpath
import re
import shlex
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import IO, Any

import attrs

from opskit.errors import DockerUnavailable
from opskit.events import Event, JobFinished, JobStarted
from opskit.host import LocalHost, Process, Result
from opskit.plugins import Plugins, create_plugins, hookimpl

__all__ = [
    "REAL_PROGRAMS",
    "Call",
    "EventRecorder",
    "FakeContainer",
    "FakeDocker",
    "FakeHost",
    "FakeProcess",
    "Reply",
    "Rule",
    "UnexpectedCommand",
    "matches",
    "plugin_manager",
    "register",
]


def plugin_manager(
    *plugins: object, installed: bool = False, environ: Mapping[str, str] | None = None
) -> Plugins:
    """A fresh plugin manager: the core's own plugins, *plugins* (modules, classes or
    instances implementing ``opskit_…`` hooks), and with *installed* the plugins installed
    through the ``opskit`` entry points (``OPSKIT_PLUGINS`` in *environ* chooses)."""
    manager = create_plugins(environ or {}, entry_points=installed)
    for plugin in plugins:
        register(manager, plugin)
    return manager


def register(manager: Plugins, plugin: object, name: str | None = None) -> None:
    """Register one inline plugin; raise when pluggy or opskit rejects its hooks."""
    name = name or getattr(plugin, "__name__", None) or f"{type(plugin).__name__}-{id(plugin)}"
    if not manager.register(plugin, name=name, source="test"):
        raise ValueError(f"plugin {name!r} was rejected (see the warning above)")


class EventRecorder:
    """A plugin that keeps every event it is given, in order."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    @hookimpl
    def opskit_event(self, event: Event) -> None:
        self.events.append(event)

    def of(self, event_type: type[Event]) -> list[Any]:
        """The events of one type (e.g. ``recorder.of(JobFinished)``)."""
        return [event for event in self.events if isinstance(event, event_type)]

    def jobs(self) -> list[tuple[str, str, tuple[str, ...]]]:
        """``(kind, project, envs)`` of each job started."""
        return [(e.kind, e.project, e.envs) for e in self.of(JobStarted)]

    def results(self) -> list[str]:
        """The result of each job that finished, in order."""
        return [event.result for event in self.of(JobFinished)]

    def clear(self) -> None:
        self.events.clear()


# ---------------------------------------------------------------------------
# FakeHost
# ---------------------------------------------------------------------------

# The host's own plumbing, which runs for real (inside the sandbox): the engines' file
# work (archives, locks, swaps, tar streams) is then the real thing, not a model of it.
REAL_PROGRAMS = frozenset(
    {"sh", "mkdir", "rm", "mv", "chmod", "sync", "tar", "cat", "test", "ls", "hostname",
     "stat", "du", "find", "flock", "dd", "readlink", "true", "mktemp"}
)  # fmt: skip

# A pattern word: the exact word, or a regular expression searched in it.
Word = str | re.Pattern[str]
Output = bytes | str | Iterable[bytes | BaseException]


class UnexpectedCommand(AssertionError):
    """A :class:`FakeHost` was asked to touch a path outside its sandbox, or (strict) to
    run a command no rule answers: the test fails, whatever the engine catches."""


@attrs.define(eq=False)
class Call:
    """One command the host was asked to run (``kind``: run, popen, call, terminal, http).

    ``env`` holds what the caller passed in the environment; its values (secrets travel
    there) never appear in the repr, nor does ``stdin``, the bytes written to the command.
    """

    kind: str
    argv: tuple[str, ...]
    cwd: str | None = None
    env: dict[str, str] = attrs.field(factory=dict, repr=lambda env: repr(sorted(env)))
    input: bytearray = attrs.field(factory=bytearray, repr=False)
    returncode: int | None = None
    killed: bool = False

    @property
    def stdin(self) -> bytes:
        """What was written to the command's stdin (``run(input=…)`` or a popen's stream)."""
        return bytes(self.input)

    def __str__(self) -> str:
        return shlex.join(self.argv)


@attrs.frozen
class Reply:
    """How a fake command ends: *stdout* (bytes, text, or chunks of a stream, where an
    exception is raised to the reader at that point), *stderr*, *returncode*; with
    *raises*, running the command raises it instead (``HostError``: not installed)."""

    returncode: int = 0
    stdout: Output = b""
    stderr: bytes | str = b""
    raises: BaseException | None = None


@attrs.define(eq=False)
class Rule:
    """Answers the commands that match *pattern*: its words appear in the command in this
    order, the first being the program (``["docker", "compose", "up"]`` matches
    ``docker compose --project-name x -f f up -d``). ``used`` counts the matches."""

    pattern: tuple[Word, ...]
    answer: Callable[[Call], Reply | None]
    effect: Callable[[Call], None] | None = None
    times: int | None = None
    observe: bool = False  # only its effect: the command is answered as without it
    used: int = 0

    def matches(self, argv: Sequence[str]) -> bool:
        return (self.times is None or self.used < self.times) and matches(self.pattern, argv)


def matches(pattern: Sequence[Word], argv: Sequence[str]) -> bool:
    """Whether *pattern*'s words appear in *argv* in order, the first one at its start."""
    if not pattern or not argv or not _word(pattern[0], argv[0]):
        return False
    rest = iter(argv[1:])
    return all(any(_word(word, arg) for arg in rest) for word in pattern[1:])


def _word(word: Word, arg: str) -> bool:
    return word == arg if isinstance(word, str) else word.search(arg) is not None


def _bytes(data: bytes | str) -> bytes:
    return data.encode() if isinstance(data, str) else data


def _chunks(output: Output) -> Iterator[bytes | BaseException]:
    if isinstance(output, bytes | str):
        yield _bytes(output)
    else:
        yield from output


class _Stream(io.RawIOBase):
    """A readable stream of chunks; an exception among them is raised when reached."""

    def __init__(self, chunks: Iterator[bytes | BaseException]) -> None:
        super().__init__()
        self._chunks = chunks
        self._left = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._left:
            item = next(self._chunks, None)
            if item is None:
                return 0
            if isinstance(item, BaseException):
                raise item
            self._left = item
        size = min(len(buffer), len(self._left))
        buffer[:size] = self._left[:size]
        self._left = self._left[size:]
        return size


class _Stdin(io.RawIOBase):
    """A command's stdin: what is written is kept in its :class:`Call`."""

    def __init__(self, call: Call) -> None:
        super().__init__()
        self._call = call

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        if self.closed:
            raise BrokenPipeError("the fake command's stdin is closed")
        self._call.input += bytes(data)
        return len(data)


class FakeProcess:
    """A fake command started with ``popen``: its stdout streams the reply, its stdin is
    recorded, and it ends (the rule's effect runs) at :meth:`wait`."""

    def __init__(
        self, call: Call, reply: Reply, finish: Callable[[], None], *, stdin: bool, merge: bool
    ) -> None:
        self.call = call
        self.reply = reply
        self._finish = finish
        stream = _chunks(reply.stdout)
        if merge:
            stream = _then(stream, _bytes(reply.stderr))
        self.stdout: IO[bytes] = io.BufferedReader(_Stream(stream))
        self.stdin: IO[bytes] | None = io.BufferedWriter(_Stdin(call)) if stdin else None

    def wait(self) -> int:
        if self.call.returncode is None:
            if self.stdin is not None and not self.stdin.closed:
                self.stdin.flush()
            self._finish()
            self.call.returncode = self.reply.returncode
        return self.call.returncode

    def kill(self) -> None:
        self.call.killed = True

    def errors(self) -> str:
        return _bytes(self.reply.stderr).decode("utf-8", "replace")


def _then(chunks: Iterator[bytes | BaseException], last: bytes) -> Iterator[bytes | BaseException]:
    yield from chunks
    yield last


class _RecordedProcess:
    """A real process whose exit code is kept in its :class:`Call`."""

    def __init__(self, call: Call, process: Process, finish: Callable[[], None]) -> None:
        self.call = call
        self.process = process
        self._finish = finish
        self.stdout = process.stdout
        self.stdin = process.stdin

    def wait(self) -> int:
        if self.call.returncode is None:
            self.call.returncode = self.process.wait()
            self._finish()
        return self.call.returncode

    def kill(self) -> None:
        self.call.killed = True
        self.process.kill()

    def errors(self) -> str:
        return self.process.errors()


class _FakeTerminal:
    """A fake command on a terminal: the reply's stdout, then EOF; keystrokes recorded."""

    def __init__(self, call: Call, reply: Reply) -> None:
        self.call = call
        self.chunks = _chunks(reply.stdout)

    def read(self) -> bytes:
        for item in self.chunks:
            if isinstance(item, BaseException):
                raise item
            if item:
                return item
        return b""

    def write(self, data: bytes) -> None:
        self.call.input += data

    def resize(self, cols: int, rows: int) -> None:
        pass

    def close(self) -> None:
        self.chunks = iter(())


# The docker CLI commands the fake engine answers itself (``docker exec`` is the rules').
_DOCKER_CLI = {"inspect", "run", "ps", "rm", "volume", "logs"}
_COMPOSE_OPTIONS = {"--project-name", "-p", "-f", "--file", "--env-file", "--profile"}


class FakeHost(LocalHost):
    """A host for unit tests: no Docker, every command recorded, answers from rules.

    Files are real, in the *sandbox* folder (a test's ``tmp_path``): the host's own
    plumbing (``mkdir``, ``mv``, ``rm``, ``tar``, ``flock``, the engines' ``sh -c``
    scripts: :data:`REAL_PROGRAMS`) runs for real there, so archives, locks and swaps are
    what a server would hold. Any path outside the sandbox fails the test. Pass *real* to
    run more programs for real (``REAL_PROGRAMS | {"rsync", "git"}`` where installed).

    Everything else (``docker``, compose, database clients, ``restic``, ``rsync``, a
    project's own CLI, HTTP probes) is answered by the rules a test gives with
    :meth:`on` and :meth:`http`, newest rule first, else by built-in answers: compose is
    v2 and acts on the fake engine's containers (``stop`` stops them, ``up`` starts them);
    anything else succeeds with no output (with *strict*, fails the test). The Docker
    engine is :class:`FakeDocker` (:meth:`container`, :meth:`volume`).

    A rule's words match a command when they appear in it in order, the first being the
    program; a word may be a compiled regular expression::

        fake.on(["docker", "compose", "up"], returncode=1, stderr="port is in use")
        fake.on(["docker", "exec", "-i", "shop-prod-db-1"], times=1, returncode=1)
        fake.on(["restic", "snapshots"], stdout='[{"id": "abc"}]')
        fake.on(["sh", "-c", re.compile("flock")], returncode=75)      # the lock is busy
        fake.on(["docker", "exec"], stdout=[b"-- part of a dump\\n", OSError("reset")])

    Then assert on :attr:`calls`, :meth:`ran`, :meth:`matching` and :meth:`order`.
    """

    name = "local"

    def __init__(
        self,
        sandbox: str | os.PathLike[str],
        *,
        real: Iterable[str] = REAL_PROGRAMS,
        strict: bool = False,
    ) -> None:
        super().__init__()
        self.sandbox = os.path.abspath(sandbox)
        self._inside = {self.sandbox, os.path.realpath(self.sandbox)}
        self.real = frozenset(real)
        self.strict = strict
        self.calls: list[Call] = []
        self.rules: list[Rule] = []
        self.urls: dict[str, int | BaseException] = {}
        self.engine = FakeDocker(posixpath.join(self.sandbox, "docker-volumes"))
        self.docker_error: str | None = None  # set: the engine cannot be reached

    # -- rules and what was run -------------------------------------------------

    def on(
        self,
        pattern: Sequence[Word],
        *,
        returncode: int = 0,
        stdout: Output = b"",
        stderr: bytes | str = b"",
        raises: BaseException | None = None,
        answer: Callable[[Call], Reply | None] | None = None,
        effect: Callable[[Call], None] | None = None,
        times: int | None = None,
    ) -> Rule:
        """Answer the commands matching *pattern* (see :class:`Rule`), the next *times*
        of them (default: all). *answer* computes the :class:`Reply` from the
        :class:`Call` (None: leave it to older rules); *effect* runs when the command
        ends (for a popen, at ``wait()``, with its whole stdin recorded). A rule with an
        *effect* and no reply of its own only observes: the command is answered as it
        would be without it (compose still starts the containers)."""
        observe = (
            answer is None
            and effect is not None
            and (Reply(returncode, stdout, stderr, raises) == Reply())
        )
        if answer is None:
            fixed = Reply(returncode, stdout, stderr, raises)

            def answer(call: Call) -> Reply | None:
                return fixed

        rule = Rule(tuple(pattern), answer, effect, times, observe=observe)
        self.rules.insert(0, rule)
        return rule

    def http(self, url: str, status: int | BaseException) -> None:
        """What a GET of *url* answers: a status code, or an exception (no answer).
        A URL without an answer is refused, as a port nobody listens on."""
        self.urls[url] = status

    def matching(self, pattern: Sequence[Word], kind: str | None = None) -> list[Call]:
        """The calls that match *pattern* (of one *kind*: run, popen, call, …), in order."""
        return [
            c for c in self.calls if matches(pattern, c.argv) and (kind is None or c.kind == kind)
        ]

    def ran(self, pattern: Sequence[Word]) -> bool:
        """Whether a command matching *pattern* was run."""
        return bool(self.matching(pattern))

    def order(self, *patterns: Sequence[Word]) -> list[int]:
        """The positions in :attr:`calls` of a command matching each pattern, each one
        after the one before; fails the test, listing what ran, when there is none."""
        positions = []
        start = 0
        for pattern in patterns:
            found = next(
                (i for i in range(start, len(self.calls)) if matches(pattern, self.calls[i].argv)),
                None,
            )
            if found is None:
                where = f" after position {start - 1}" if start else ""
                raise AssertionError(
                    f"no command matching {list(pattern)}{where}; ran:\n" + self.transcript()
                )
            positions.append(found)
            start = found + 1
        return positions

    def transcript(self) -> str:
        """What ran, one command a line, with its position and exit code."""
        return "\n".join(
            f"{i:3} {c.kind:6} {shlex.join(c.argv)[:160]}  -> {c.returncode}"
            for i, c in enumerate(self.calls)
        )

    # -- files ------------------------------------------------------------------

    def path(self, *parts: str) -> str:
        """A path inside the sandbox."""
        return posixpath.join(self.sandbox, *parts)

    def write(self, path: str, data: bytes | str, mode: int | None = None) -> str:
        """Create (or replace) the file *path* in the sandbox, and its folders."""
        self._check_path(path)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as out:
            out.write(_bytes(data))
        if mode is not None:
            os.chmod(path, mode)
        return path

    def read(self, path: str) -> bytes:
        self._check_path(path)
        with open(path, "rb") as source:
            return source.read()

    def open_write(self, path: str) -> IO[bytes]:
        self._check_path(path)
        return super().open_write(path)

    def open_read(self, path: str) -> IO[bytes]:
        self._check_path(path)
        return super().open_read(path)

    def open_regular(self, path: str) -> IO[bytes]:
        self._check_path(path)
        return super().open_regular(path)

    def exists(self, path: str) -> bool:
        self._check_path(path)
        return super().exists(path)

    def read_text(self, path: str) -> str:
        self._check_path(path)
        return super().read_text(path)

    def listdir(self, path: str) -> list[str]:
        self._check_path(path)
        return super().listdir(path)

    def _check_path(self, path: str) -> None:
        if path == "/dev/null":
            return
        full = posixpath.normpath(
            path if path.startswith("/") else posixpath.join(os.getcwd(), path)
        )
        if not any(full == top or full.startswith(top + "/") for top in self._inside):
            raise UnexpectedCommand(f"{path} is outside the fake host's sandbox {self.sandbox}")

    def _check_argv(self, argv: Sequence[str], cwd: str | None) -> None:
        if cwd is not None:
            self._check_path(cwd)
        script = argv[2] if argv[:2] in (["sh", "-c"], ("sh", "-c")) else None
        for arg in argv[1:]:
            value = arg.partition("=")[2] if arg.startswith("--") else arg
            if arg is not script and value.startswith("/"):
                self._check_path(value)

    # -- commands ---------------------------------------------------------------

    def _answer(self, call: Call) -> tuple[Reply | None, Callable[[], None]]:
        """The reply to *call* and what to do when it ends; (None, …): run it for real."""
        self.calls.append(call)
        effects: list[Callable[[Call], None]] = []

        def finish() -> None:
            for effect in effects:
                effect(call)

        answered: Reply | None = None
        for rule in list(self.rules):
            if (answered is not None and not rule.observe) or not rule.matches(call.argv):
                continue
            reply = rule.answer(call)
            if reply is None:
                continue
            rule.used += 1
            if rule.effect is not None:
                effects.append(rule.effect)
            if not rule.observe:
                answered = reply
        if answered is not None:
            return answered, finish
        argv = call.argv
        if argv[:2] == ("docker", "compose") or argv[:1] == ("docker-compose",):
            return self._compose(argv[2:] if argv[0] == "docker" else argv[1:]), finish
        if argv[:1] == ("docker",) and len(argv) > 1 and argv[1] in _DOCKER_CLI:
            return self.engine.cli(argv[1:]), finish
        if argv and argv[0] in self.real and call.kind in ("run", "popen"):
            self._check_argv(argv, call.cwd)
            return None, finish
        if self.strict:
            raise UnexpectedCommand(f"no rule answers {shlex.join(argv)}")
        return Reply(), finish

    def _compose(self, args: Sequence[str]) -> Reply:
        """Compose v2 on the fake engine: ``up``/``start``/``restart`` start the project's
        (or the named services') containers, ``stop`` stops them, ``down`` and ``rm``
        remove them."""
        project = None
        rest = list(args)
        while rest and rest[0].startswith("-"):
            option = rest.pop(0)
            value = rest.pop(0) if option in _COMPOSE_OPTIONS and rest else None
            if option in ("--project-name", "-p"):
                project = value
        if not rest:
            return Reply()
        command, words = rest[0], [w for w in rest[1:] if not w.startswith("-")]
        if command == "version":
            return Reply(stdout="Docker Compose version v2.40.3 (fake)\n")
        found = [
            c
            for c in self.engine.containers_
            if c.compose_project == project and (not words or c.service in words)
        ]
        if command == "config":
            names = sorted(
                {c.service for c in self.engine.containers_ if c.compose_project == project}
            )
            if "--services" in rest:
                return Reply(stdout="".join(f"{n}\n" for n in names))
            # the whole config: JSON is YAML too
            return Reply(stdout=json.dumps({"services": {n: {} for n in names}}) + "\n")
        for container in found:
            if command in ("up", "start", "restart"):
                container.start(self.engine.now())
            elif command == "stop":
                container.state = "exited"
            elif command in ("down", "rm"):
                self.engine.containers_.remove(container)
        return Reply()

    def _run(
        self,
        argv: list[str],
        *,
        cwd: str | None,
        env: dict[str, str],
        input: bytes | None,
        timeout: float | None,
    ) -> Result:
        call = Call("run", tuple(argv), cwd, dict(env), bytearray(input or b""))
        reply, finish = self._answer(call)
        if reply is None:
            result = super()._run(argv, cwd=cwd, env=env, input=input, timeout=timeout)
            call.returncode = result.returncode
            finish()
            return result
        if reply.raises is not None:
            raise reply.raises
        stdout = b"".join(
            _bytes(c) if not isinstance(c, BaseException) else _raise(c)
            for c in _chunks(reply.stdout)
        )
        finish()
        call.returncode = reply.returncode
        return Result(reply.returncode, stdout, _bytes(reply.stderr))

    def popen(
        self,
        argv: Sequence[str],
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        stdin: bool = False,
        merge_stderr: bool = True,
    ) -> Process:
        call = Call("popen", tuple(argv), cwd, dict(env or {}))
        reply, finish = self._answer(call)
        if reply is None:
            process = super().popen(argv, cwd=cwd, env=env, stdin=stdin, merge_stderr=merge_stderr)
            return _RecordedProcess(call, process, finish)
        if reply.raises is not None:
            raise reply.raises
        return FakeProcess(call, reply, finish, stdin=stdin, merge=merge_stderr)

    def call(self, argv: Sequence[str], *, cwd: str | None = None, tty: bool = False) -> int:
        call = Call("call", tuple(argv), cwd)
        reply, finish = self._answer(call)
        if reply is None:  # interactive: never run for real
            reply = Reply()
        if reply.raises is not None:
            raise reply.raises
        finish()
        call.returncode = reply.returncode
        return reply.returncode

    def terminal(self, argv: Sequence[str], cols: int = 80, rows: int = 24) -> Any:
        call = Call("terminal", tuple(argv))
        reply, _finish = self._answer(call)
        if reply is None:
            reply = Reply()
        if reply.raises is not None:
            raise reply.raises
        return _FakeTerminal(call, reply)

    def http_status(self, url: str, timeout: float) -> int:
        self.calls.append(Call("http", ("GET", url)))
        answer = self.urls.get(url)
        if answer is None:
            raise ConnectionRefusedError(f"connection refused: nothing answers {url}")
        if isinstance(answer, BaseException):
            raise answer
        return answer

    # -- Docker -----------------------------------------------------------------

    def docker(self) -> FakeDocker:
        if self.docker_error is not None:
            raise DockerUnavailable(
                f"cannot reach the Docker engine ({self.name}): {self.docker_error}"
            )
        return self.engine

    def container(self, **fields: Any) -> FakeContainer:
        """A container on the fake engine; see :meth:`FakeDocker.add`."""
        return self.engine.add(**fields)

    def volume(self, name: str) -> str:
        """A named volume on the fake engine (its mount point is in the sandbox)."""
        return str(self.engine.create_volume(name)["Mountpoint"])

    def close(self) -> None:
        pass  # the engine and the rules live as long as the test


def _raise(exc: BaseException) -> bytes:
    raise exc


# ---------------------------------------------------------------------------
# The fake Docker engine
# ---------------------------------------------------------------------------


@attrs.define(eq=False)
class FakeContainer:
    """A container on :class:`FakeDocker`; change its fields to change what Docker says.

    *health* is its healthcheck's state: ``healthy`` and ``unhealthy`` show a run that
    just passed or failed (fresh evidence for the health gate, with *health_output*),
    ``starting`` no run yet, ``None`` no healthcheck at all.
    """

    id: str
    name: str
    project: str
    env: str
    service: str
    compose_project: str | None
    image: str = "opskit-test:fake"
    state: str = "running"
    health: str | None = "healthy"
    health_output: str = ""
    interval: float = 1.0
    labels: dict[str, str] = attrs.field(factory=dict)
    environment: dict[str, str] = attrs.field(factory=dict, repr=False)
    mounts: list[dict[str, Any]] = attrs.field(factory=list)
    ports: dict[str, Any] = attrs.field(
        factory=dict
    )  # NetworkSettings.Ports: "8080/tcp" -> bindings
    processes: list[str] = attrs.field(factory=list)  # the command names docker top lists
    health_test: list[str] = attrs.field(factory=lambda: ["CMD", "true"])
    started_at: datetime = attrs.field(factory=lambda: datetime.now(UTC) - timedelta(hours=1))
    restart_count: int = 0

    def start(self, moment: datetime) -> None:
        if self.state != "running":
            self.state = "running"
            self.started_at = moment

    def listing(self) -> dict[str, Any]:
        """The container as ``GET /containers/json`` lists it."""
        if self.state == "running":
            shown = {
                "healthy": " (healthy)",
                "unhealthy": " (unhealthy)",
                "starting": " (health: starting)",
            }
            status = "Up 1 hour" + shown.get(self.health or "", "")
        else:
            status = "Exited (0) 1 minute ago"
        return {
            "Id": self.id,
            "Names": [f"/{self.name}"],
            "Image": self.image,
            "State": self.state,
            "Status": status,
            "Labels": dict(self.labels),
        }

    def inspect(self, moment: datetime) -> dict[str, Any]:
        """The container as ``docker inspect`` shows it; a healthcheck ran at *moment*."""
        state: dict[str, Any] = {
            "Status": self.state,
            "Running": self.state == "running",
            "StartedAt": self.started_at.isoformat().replace("+00:00", "Z"),
            "RestartCount": self.restart_count,
        }
        config: dict[str, Any] = {
            "Image": self.image,
            "Labels": dict(self.labels),
            "Env": [f"{k}={v}" for k, v in self.environment.items()],
        }
        if self.health is not None:
            log = []
            if self.health in ("healthy", "unhealthy") and self.state == "running":
                stamp = moment.isoformat().replace("+00:00", "Z")
                code = 0 if self.health == "healthy" else 1
                log.append(
                    {"Start": stamp, "End": stamp, "ExitCode": code, "Output": self.health_output}
                )
            state["Health"] = {"Status": self.health, "Log": log}
            config["Healthcheck"] = {
                "Test": list(self.health_test),
                "Interval": int(self.interval * 1e9),
            }
        return {
            "Id": self.id,
            "Name": f"/{self.name}",
            "State": state,
            "Config": config,
            "Mounts": [dict(m) for m in self.mounts],
            "NetworkSettings": {"Ports": dict(self.ports)},
        }


class FakeDocker:
    """The fake engine's API, the part of ``docker.APIClient`` opskit uses."""

    def __init__(self, volumes_dir: str) -> None:
        self.containers_: list[FakeContainer] = []
        self.volumes: dict[str, str] = {}
        self.volume_labels: dict[str, dict[str, str]] = {}
        self._serial = 0
        self.volumes_dir = volumes_dir
        self._clock = datetime.now(UTC)

    def now(self) -> datetime:
        """The engine's clock: always later than the last time it told."""
        self._clock = max(datetime.now(UTC), self._clock + timedelta(microseconds=1))
        return self._clock

    def add(
        self,
        *,
        project: str,
        env: str,
        service: str,
        name: str | None = None,
        compose_project: str | None = "{project}-{env}",
        labels: Mapping[str, str] | None = None,
        **fields: Any,
    ) -> FakeContainer:
        """A container of *service* in *project* *env*, labelled ``ops.*`` and, unless
        *compose_project* is None, ``com.docker.compose.*`` (the compose project name,
        ``{project}-{env}`` by default, as a descriptor's ``project_name`` should say).
        Other *fields* are :class:`FakeContainer`'s (``state``, ``health``, ``mounts`` …)."""
        compose = compose_project.format(project=project, env=env) if compose_project else None
        all_labels = {"ops.project": project, "ops.environment": env, "ops.service": service}
        if compose:
            all_labels.update(
                {"com.docker.compose.project": compose, "com.docker.compose.service": service}
            )
        all_labels.update(labels or {})
        return self._append(
            name or f"{compose or f'{project}-{env}'}-{service}-1",
            project,
            env,
            service,
            compose,
            all_labels,
            **fields,
        )

    def _append(
        self,
        name: str,
        project: str,
        env: str,
        service: str,
        compose: str | None,
        labels: dict[str, str],
        **fields: Any,
    ) -> FakeContainer:
        self._serial += 1  # ids stay unique when containers are removed
        identity = f"{self._serial:012x}" + "0" * 52
        container = FakeContainer(
            identity, name, project, env, service, compose, labels=labels, **fields
        )
        self.containers_.append(container)
        return container

    def cli(self, args: Sequence[str]) -> Reply:
        """The ``docker`` CLI on this engine: ``inspect``, ``run --detach``, ``ps``,
        ``rm``, ``volume create|ls|rm`` and ``logs`` (no output), with ``--filter
        label=…`` and ``--format '{{.Label "…"}}'``."""
        words = list(args)
        if words[0] == "volume":
            return self._volume_cli(words[1], words[2:])
        options, rest = _options(words[1:])
        if words[0] == "inspect":
            found = [c for c in self.containers_ if rest and rest[0] in (c.name, c.id, c.id[:12])]
            if not found:
                return Reply(1, b"[]\n", f"Error: No such object: {rest[0] if rest else ''}\n")
            if options.get("-f") == "{{.State.Status}}":
                return Reply(stdout=f"{found[0].state}\n")
            return Reply(stdout=json.dumps([found[0].inspect(self.now())]))
        if words[0] == "run":
            labels = dict(label.partition("=")[::2] for label in options.get("--label", []))
            name = options.get("--name") or f"fake-{len(self.containers_) + 1}"
            image = rest[rest.index("--") + 1] if "--" in rest else (rest or ["image"])[0]
            container = self._append(name, "", "", "", None, labels, image=image, health=None)
            return Reply(stdout=f"{container.id}\n")
        if words[0] == "ps":
            listed = [c for c in self.containers_ if _labelled(c.labels, options)]
            return Reply(stdout=_listing(listed, options, lambda c: c.id[:12]))
        if words[0] == "rm":
            self.containers_ = [
                c for c in self.containers_ if c.id[:12] not in rest and c.name not in rest
            ]
            return Reply(stdout="".join(f"{ref}\n" for ref in rest))
        return Reply()  # logs

    def _volume_cli(self, command: str, args: Sequence[str]) -> Reply:
        options, rest = _options(args)
        if command == "create":
            self.create_volume(rest[0])
            labels = dict(label.partition("=")[::2] for label in options.get("--label", []))
            self.volume_labels[rest[0]] = labels
            return Reply(stdout=f"{rest[0]}\n")
        if command == "ls":
            names = [n for n in self.volumes if _labelled(self.volume_labels.get(n, {}), options)]
            return Reply(stdout=_listing(names, options, str, self.volume_labels))
        if command == "rm":
            for name in rest:
                self.volumes.pop(name, None)
                self.volume_labels.pop(name, None)
            return Reply(stdout="".join(f"{name}\n" for name in rest))
        return Reply(1, stderr=f"docker volume {command}: not faked\n")

    def find(self, ref: str) -> FakeContainer:
        for container in self.containers_:
            if ref in (container.name, container.id) or (
                len(ref) >= 12 and container.id.startswith(ref)
            ):
                return container
        import docker

        raise docker.errors.NotFound(f"No such container: {ref}")

    def containers(self, all: bool = False, **_filters: Any) -> list[dict[str, Any]]:
        return [c.listing() for c in self.containers_ if all or c.state == "running"]

    def inspect_container(self, ref: str) -> dict[str, Any]:
        return self.find(ref).inspect(self.now())

    def info(self) -> dict[str, Any]:
        return {
            "SystemTime": self.now().isoformat().replace("+00:00", "Z"),
            "ServerVersion": "fake",
        }

    def inspect_volume(self, name: str) -> dict[str, Any]:
        if name not in self.volumes:
            import docker

            raise docker.errors.NotFound(f"get {name}: no such volume")
        return {"Name": name, "Mountpoint": self.volumes[name]}

    def create_volume(self, name: str) -> dict[str, Any]:
        mountpoint = posixpath.join(self.volumes_dir, name, "_data")
        os.makedirs(mountpoint, exist_ok=True)
        self.volumes[name] = mountpoint
        return {"Name": name, "Mountpoint": mountpoint}

    def df(self) -> dict[str, Any]:
        return {"LayersSize": 0, "Images": [], "Containers": [], "Volumes": [], "BuildCache": []}

    def top(self, ref: str, ps_args: str | None = None) -> dict[str, Any]:
        processes = self.find(ref).processes
        return {
            "Titles": ["PID", "COMMAND"],
            "Processes": [[str(i + 1), p] for i, p in enumerate(processes)],
        }

    def ping(self) -> bool:
        return True

    def close(self) -> None:
        pass


def _options(words: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    """A docker CLI command's options (``--label``/``--filter``/``--env`` repeat) and
    the words after them (all of them after ``--``)."""
    options: dict[str, Any] = {}
    rest: list[str] = []
    words = list(words)
    while words:
        word = words.pop(0)
        if word == "--":
            rest += ["--", *words]
            break
        if word.startswith("-") and word not in (
            "-a",
            "-q",
            "-aq",
            "--detach",
            "--force",
            "--volumes",
        ):
            value = words.pop(0) if words else ""
            if word in ("--label", "--filter", "--env", "--mount"):
                options.setdefault(word, []).append(value)
            else:
                options[word] = value
        elif word.startswith("-"):
            options[word] = True
        else:
            rest.append(word)
    return options, rest


def _labelled(labels: Mapping[str, str], options: Mapping[str, Any]) -> bool:
    """Whether *labels* pass every ``--filter label=K`` / ``label=K=V`` of *options*."""
    for selector in options.get("--filter", []):
        kind, _, wanted = selector.partition("=")
        key, has_value, value = wanted.partition("=")
        if kind == "label" and (key not in labels or (has_value and labels[key] != value)):
            return False
    return True


def _listing(
    items: Sequence[Any],
    options: Mapping[str, Any],
    show: Callable[[Any], str],
    labels_of: Mapping[str, Mapping[str, str]] | None = None,
) -> str:
    """Lines of ``ps``/``volume ls``: ``--format '{{.Label "K"}}'`` shows a label."""
    wanted = re.fullmatch(r'\{\{\.Label "([^"]+)"\}\}', str(options.get("--format", "")))
    lines = []
    for item in items:
        if wanted is None:
            lines.append(show(item))
        else:
            labels = labels_of.get(item, {}) if labels_of is not None else item.labels
            lines.append(labels.get(wanted.group(1), ""))
    return "".join(f"{line}\n" for line in lines)
