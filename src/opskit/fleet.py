"""A command over several servers of the inventory at once: ``--hosts all|NAME,NAME|tag:TAG``.

Each host of ``hosts:`` in ``opskit.yaml`` (:class:`~opskit.settings.Inventory`) gets its own
:class:`~opskit.Ops` over one SSH connection (fabric, opened once and kept for the whole
command), and the command runs on each in a thread, at most ``--parallel`` at a time. What
a host's command prints is recorded (:class:`Recorder`), then merged: every table once,
with a HOST column; JSON as ``{"hosts": [...], "results": ...}`` with a ``host`` key in every
row. A host that does not answer within ``hosts.timeout`` (or refuses, or fails) is one row
``unreachable: …``; the others' results are complete; the exit code is 1 and a summary line
names the failed hosts.

Why threads over :class:`~opskit.Ops` and not fabric's ``ThreadingGroup``: a group runs one
shell command on every host, and opskit's commands are many calls (docker, the store,
restic) with Python between them; the same fabric connection carries them all.
"""

from __future__ import annotations

import posixpath
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from opskit.errors import DelegateFailed, DockerUnavailable, HostError, OpskitError
from opskit.output import Cell, Output

if TYPE_CHECKING:
    from opskit.api import Ops
    from opskit.cli import CliState
    from opskit.settings import FleetHost, Settings

# the commands that run over --hosts: the read commands, and the changing ones that each
# host's own locks guard (a host whose lock is taken refuses, and that is its error row)
FLEET_COMMANDS = frozenset(
    {"projects", "status", "health", "disk", "doctor", "backups", "backups list", "watch", "history",
     "backup", "verify", "drill", "offsite upload", "offsite verify", "timers"}
)  # fmt: skip
DEFAULT_PARALLEL = 10


class Recorder(Output):
    """An :class:`Output` that keeps what a command prints, to be merged with the other
    hosts' (see :func:`merge_tables`)."""

    def __init__(self, json_mode: bool) -> None:
        super().__init__(json_mode=json_mode)
        self.is_terminal = False
        self.calls: list[tuple[Any, ...]] = []

    def json(self, data: Any) -> None:
        self.calls.append(("json", data))

    def line(self, text: str = "") -> None:
        self.calls.append(("line", text))

    def table(
        self, columns: Sequence[str], rows: Sequence[Sequence[Cell]], title: str | None = None
    ) -> None:
        self.calls.append(("table", tuple(columns), [list(row) for row in rows], title))


@attrs.frozen
class Outcome:
    """How the command went on one host."""

    host: FleetHost
    code: int  # the command's exit code there
    error: str | None  # why it failed there (None: it ran; *code* says how)
    calls: tuple[tuple[Any, ...], ...]
    seconds: float

    @property
    def failed(self) -> bool:
        return self.error is not None

    def as_dict(self) -> dict[str, Any]:
        return {
            "host": self.host.name,
            "url": self.host.url,
            "ok": self.error is None and self.code == 0,
            "exit_code": self.code,
            "error": self.error,
            "seconds": round(self.seconds, 3),
        }


def reason(error: str) -> str:
    """A failure in a few words, for the summary line."""
    lowered = error.lower()
    for needle, said in (
        ("no answer within", "timeout"),
        ("timed out", "timeout"),
        ("connection refused", "connection refused"),
        ("unable to connect", "connection refused"),
        ("no authentication methods", "permission denied"),
        ("authentication failed", "permission denied"),
        ("permission denied", "permission denied"),
        ("no such file", "no such file"),
        ("name or service not known", "unknown server"),
    ):
        if needle in lowered:
            return said
    return error if len(error) <= 60 else error[:57] + "..."


def run_on_hosts(
    state: CliState,
    command: str,
    function: Callable[..., Any],
    kwargs: dict[str, Any],
) -> int:
    """Run *function* (a command's body, taking a :class:`CliState` first) on every host
    ``--hosts`` chose; print the merged result; return the exit code."""
    from opskit.api import DEFAULT_ROOT, Ops
    from opskit.host import open_host
    from opskit.output import error, speaker

    if command not in FLEET_COMMANDS:
        raise OpskitError(f"--hosts: '{command}' runs on one host at a time (use --host)")
    if state.host:
        raise OpskitError("--hosts and --host: give one of them")
    controller = Ops(root=state.root, host="local", plugins=state.plugins).runtime.settings()
    hosts = controller.inventory.select(str(state.hosts))  # every error before any connection
    timeout = controller.inventory.timeout
    results: queue.Queue[Outcome] = queue.Queue()
    slots = threading.BoundedSemaphore(max(1, state.parallel))
    started: dict[str, float] = {}
    opened: dict[str, Any] = {}  # host name -> its Host, to close on a timeout
    freed: set[str] = set()  # hosts whose slot is free again (their end, or their timeout)
    answered: set[str] = set()  # hosts that answered a first command within the timeout
    lock = threading.Lock()

    def free(name: str) -> None:
        with lock:
            if name in freed:
                return
            freed.add(name)
        slots.release()

    def work(entry: FleetHost) -> None:
        slots.acquire()
        speaker.set(f"{entry.name}: ")
        with lock:
            started[entry.name] = time.monotonic()
        here = type(state)(state.plugins)  # a CliState of its own (opskit.cli calls this module)
        here.json = state.json
        here.root = entry.root or DEFAULT_ROOT
        here.capture = Recorder(state.json)

        def as_fleet_host(ops: Ops) -> None:  # the watch's alerts name it; its states apart
            ops.runtime.label = entry.name
            ops.runtime.watch_state_dir = posixpath.join(controller.state_dir, "hosts", entry.name)

        here.on_ops = as_fleet_host
        here.opskit_program = entry.opskit
        code, failure = 1, None
        try:
            # SSH's own limits only as a backstop: the watchdog below gives up first and
            # says why in one way ("no answer within …"), whatever paramiko was waiting for
            host = open_host(entry.url, timeout=2 * timeout)
            with lock:
                opened[entry.name] = host
            host.run(["true"])  # connected, logged in, answering: from here on it may take long
            with lock:
                answered.add(entry.name)
            here.host_object = host
            result = function(here, **kwargs)
            code = result if isinstance(result, int) else 0
        except DelegateFailed as exc:
            code, failure = exc.exit_code, "the project's own CLI failed (its output above)"
        except (HostError, DockerUnavailable) as exc:
            code, failure = exc.exit_code or 1, f"unreachable: {exc}"
        except OpskitError as exc:
            code, failure = exc.exit_code or 1, str(exc)
        except Exception as exc:  # one host's surprise is that host's row, never the fleet's
            failure = f"{type(exc).__name__}: {exc}"
        finally:
            here.close()
            free(entry.name)
        results.put(
            Outcome(
                entry, code, failure, tuple(here.capture.calls),
                time.monotonic() - started[entry.name],
            )
        )  # fmt: skip

    if any(h.url.startswith("ssh://") for h in hosts):
        import fabric  # noqa: F401 (imported once here: imports racing in threads fail)

    for entry in hosts:
        threading.Thread(target=work, args=(entry,), daemon=True, name=entry.name).start()
    outcomes: dict[str, Outcome] = {}
    while len(outcomes) < len(hosts):
        try:
            outcome = results.get(timeout=0.1)
            outcomes.setdefault(outcome.host.name, outcome)
        except queue.Empty:
            pass
        now = time.monotonic()
        with lock:
            late = [
                h for h in hosts
                if h.name not in outcomes and h.name not in answered
                and h.name in started and now - started[h.name] > timeout
            ]  # fmt: skip
        for entry in late:  # given up on: its slot goes to the next host
            outcomes[entry.name] = Outcome(
                entry, 1, f"unreachable: no answer within {timeout:g} s", (), now - started[entry.name]
            )  # fmt: skip
            free(entry.name)
            if (host := opened.get(entry.name)) is not None:  # unblocks its thread, in time
                threading.Thread(target=host.close, daemon=True).start()
    ordered = [outcomes[h.name] for h in hosts]
    if command == "watch":
        watch_hosts(controller, ordered)
    out = Output(json_mode=state.json)
    if state.json:
        out.json(
            {
                "hosts": [o.as_dict() for o in ordered],
                "results": merge_json([(o.host.name, o.calls) for o in ordered if not o.failed]),
            }
        )
    else:
        print_merged(out, ordered)
    failed = [o for o in ordered if o.failed]
    if failed:
        named = ", ".join(f"{o.host.name} ({reason(o.error or '')})" for o in failed)
        error(f"{len(failed)} of {len(ordered)} hosts failed: {named}")
        return 1
    return max((o.code for o in ordered), default=0)


def merge_json(results: list[tuple[str, tuple[tuple[Any, ...], ...]]]) -> Any:
    """Each host's JSON result merged: lists concatenated, a ``host`` key in every row;
    an object's lists likewise, its other values per host (``{"web1": …}``)."""
    datas: list[tuple[str, Any]] = [
        (host, next((c[1] for c in calls if c[0] == "json"), None)) for host, calls in results
    ]

    def rows(host: str, items: list[Any]) -> list[Any]:
        return [
            {"host": host, **i} if isinstance(i, dict) else {"host": host, "value": i}
            for i in items
        ]

    if all(isinstance(d, list) for _, d in datas):
        return [row for host, d in datas for row in rows(host, d)]
    if all(isinstance(d, dict) for _, d in datas):
        keys = list(dict.fromkeys(k for _, d in datas for k in d))
        merged: dict[str, Any] = {}
        for key in keys:
            values = [(host, d.get(key)) for host, d in datas]
            if all(isinstance(v, list) for _, v in values):
                merged[key] = [row for host, v in values for row in rows(host, v)]
            else:
                merged[key] = {host: v for host, v in values}
        return merged
    return {host: d for host, d in datas}


def print_merged(out: Output, outcomes: list[Outcome]) -> None:
    """Each table once with a HOST column first, the hosts in the inventory's order; a
    failed host is one row of the first table; lines each host printed, named."""
    tables: dict[tuple[int, tuple[str, ...], str | None], list[list[Cell]]] = {}
    lines: list[str] = []
    for outcome in outcomes:
        index = 0
        for call in outcome.calls:
            if call[0] == "table":
                _kind, columns, table_rows, title = call
                key = (index, columns, title)
                tables.setdefault(key, []).extend([outcome.host.name, *row] for row in table_rows)
                index += 1
            elif call[0] == "line" and call[1]:
                lines.append(f"{outcome.host.name}: {call[1]}")
    failed = [o for o in outcomes if o.failed]
    if not tables:
        out.table(
            ["host", "result"],
            [
                [o.host.name, (o.error or "", "red") if o.failed else ("ok", "green")]
                for o in outcomes
            ],
        )
    for number, ((_index, columns, title), table_rows) in enumerate(tables.items()):
        if number == 0:  # the error in the last column: the others keep their widths
            blank = ["-"] * (len(columns) - 1)
            table_rows = table_rows + [
                [o.host.name, *blank, (o.error or "", "red")] for o in failed
            ]
            table_rows.sort(key=lambda row: [o.host.name for o in outcomes].index(str(row[0])))
        else:
            out.line()
        out.table(["host", *columns], table_rows, title)
    for line in lines:
        out.line(line)


HOSTS_STATE_FILE = "watch-hosts.sqlite"


def watch_hosts(settings: Settings, outcomes: list[Outcome]) -> list[tuple[str, str]]:
    """The fleet's own checks, one per host (``host NAME``): whether its watch pass ran.
    Kept in this machine's state folder like the watch's own states, so an unreachable
    host is alerted once (and reminded of), and said once when it answers again; what
    its checks were is kept on its side until then."""
    import socket
    from datetime import UTC, datetime, timedelta

    from opskit.watch import Check, decide, open_states, send_alerts, state_error

    now = datetime.now(UTC)
    taken = [
        Check("", "", f"host {o.host.name}", o.error is None, o.error or "answers")
        for o in outcomes
    ]
    database = open_states(settings.state_dir, settings.path, HOSTS_STATE_FILE)
    try:
        stored = {
            row[0]: (bool(row[1]), row[2], row[3], row[4] or "")
            for row in database.execute("SELECT key, ok, since, sent, detail FROM states")
        }
        alerts = decide(database, taken, stored, now, timedelta(hours=settings.remind_hours))
        database.commit()
    except sqlite3.Error as exc:
        raise state_error(settings.state_dir, settings.path, exc) from None
    finally:
        database.close()
    return send_alerts(alerts, settings, {}, socket.gethostname())
