"""The ``opskit`` command line: a thin click layer over :class:`opskit.Ops`.

:func:`create_cli` builds a fresh click group over a plugin manager; the built-in
commands are registered through the ``opskit_register_commands`` hook like plugin ones.
"""

from __future__ import annotations

import functools
import io
import os
import sys
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import click

from opskit import __version__
from opskit.errors import Cancelled, DelegateFailed, NeedsConfirmation, OpskitError

if TYPE_CHECKING:
    from opskit.api import Ops
    from opskit.host import Host
    from opskit.output import Output
    from opskit.plugins import Plugins
    from opskit.runs import CommandRun

F = TypeVar("F", bound=Callable[..., Any])


class CliState:
    """Options shared by every command, and the :class:`Ops` built from them."""

    def __init__(self, plugins: Plugins, record: Sequence[str] | None = None) -> None:
        self.plugins = plugins
        self.record = record  # the command line, to record its jobs as a run (None: not)
        self.run: CommandRun | None = None
        self.root: str | None = None
        self.host: str | None = None
        self.json = False
        self.events = False
        self.scheduled = False
        self.hosts: str | None = None  # --hosts: the inventory's hosts to run on
        self.parallel = 10  # --parallel: at most this many hosts at a time
        self.host_object: Host | None = None  # a host opened already (a fleet's)
        self.capture: Output | None = None  # where the results go instead (a fleet's)
        self.on_ops: Callable[[Ops], None] | None = None  # set up the Ops once made (a fleet's)
        self.opskit_program: str | None = None  # the opskit the host's timers run (a fleet's)
        self._ops: Ops | None = None

    @property
    def ops(self) -> Ops:
        if self._ops is None:
            from opskit.api import Ops

            self._ops = Ops(
                root=self.root, host=self.host_object or self.host, plugins=self.plugins
            )
            self._ops.runtime.scheduled = self.scheduled
            if self.on_ops is not None:
                self.on_ops(self._ops)
            self._record(self._ops)
            if self.events:
                from opskit.output import json_lines

                self._ops.runtime.events.subscribe(json_lines())
        return self._ops

    def _record(self, ops: Ops) -> None:
        """Record the command's jobs in the state folder's runs (a root on this machine)."""
        from opskit.host import LOCAL

        if self.record is None or ops.host.name != LOCAL:
            return
        import getpass
        import posixpath

        from opskit.errors import OpskitError
        from opskit.runs import FILENAME, CommandRun

        try:
            state_dir = ops.runtime.settings().state_dir
        except OpskitError:  # a broken opskit.yaml: the command says so itself
            return
        path = posixpath.join(state_dir, FILENAME)
        self.run = CommandRun(path, self.record, ops.runtime.root, getpass.getuser())
        ops.runtime.events.subscribe(self.run)

    @property
    def out(self) -> Output:
        """Where results go: stdout, or nowhere with ``--events`` (stdout holds the events)."""
        from opskit.output import Output

        if self.capture is not None:
            return self.capture
        if self.events:
            return Output(json_mode=True, stream=io.StringIO())
        return Output(json_mode=self.json)

    def close(self) -> None:
        if self._ops is not None:
            self._ops.close()


pass_state = click.make_pass_decorator(CliState)


def _remember(attribute: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        if value is not None and value is not False:
            setattr(ctx.ensure_object(CliState), attribute, value)

    return callback


def common_options(function: F) -> F:
    """``--root``, ``--host`` and ``--json``, accepted before or after the command name."""
    options = [
        click.option("--json", "json_mode", is_flag=True, default=None, expose_value=False,
                     callback=_remember("json"), help="Machine-readable JSON on stdout."),
        click.option("--host", metavar="URL", expose_value=False, callback=_remember("host"),
                     help="ssh://user@server[:port] or local [env: OPSKIT_HOST]."),
        click.option("--root", metavar="DIR", expose_value=False, callback=_remember("root"),
                     help="Folder holding */project.yaml [env: OPSKIT_ROOT; default /opt/data]."),
        click.option("--hosts", metavar="SPEC", expose_value=False, callback=_remember("hosts"),
                     help="Run on hosts of opskit.yaml's inventory: all, NAME,NAME or tag:TAG."),
        click.option("--parallel", metavar="N", type=click.IntRange(min=1), expose_value=False,
                     callback=_remember("parallel"),
                     help="With --hosts: at most N hosts at a time [default 10]."),
    ]  # fmt: skip
    for option in options:
        function = option(function)
    return function


def confirm(question: str, yes: bool, command: str) -> None:
    """Ask before a destructive step; never waits when stdin is not a terminal."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise NeedsConfirmation(f"{command} needs --yes when stdin is not a terminal")
    if not click.confirm(question, default=False, err=True):
        raise Cancelled("cancelled")


def switches(**on: bool) -> list[str]:
    """``--name`` for each switch that is on, e.g. to pass a command's flags to a delegate."""
    return [f"--{name.replace('_', '-')}" for name, value in on.items() if value]


def confirm_target(
    project: str, env: str, last: bool, yes: bool, command: str, question: str
) -> None:
    """Ask before overwriting *env*; for the last env (prod) the user types the project name."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise NeedsConfirmation(f"{command} needs --yes when stdin is not a terminal")
    if not last:
        confirm(question, yes, command)
        return
    click.echo(question, err=True)
    typed = click.prompt(
        f"This changes {env}. Type the project name ({project}) to go on",
        default="",
        show_default=False,
        err=True,
    )
    if typed.strip() != project:
        raise Cancelled("cancelled: the project name did not match")


def _terminal_width() -> int:
    # What click would ask shutil for; importing shutil costs more than this (start-up time).
    stdout = sys.__stdout__
    try:
        columns = int(os.environ.get("COLUMNS", 0))
        return columns or (os.get_terminal_size(stdout.fileno()).columns if stdout else 80)
    except (OSError, ValueError):
        return 80


def _without_root(args: list[str]) -> list[str]:
    """The command line as a run shows it: its root is the run's own field."""
    kept: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg == "--root":
            skip = True
        elif not arg.startswith("--root="):
            kept.append(arg)
    return kept


def create_cli(plugins: Plugins, record: Sequence[str] | None = None) -> click.Group:
    """A fresh ``opskit`` click group over *plugins*; with *record* (the command line),
    its jobs are recorded as a run."""

    @click.group(
        context_settings={
            "help_option_names": ["-h", "--help"],
            "terminal_width": _terminal_width(),
        }
    )
    @click.version_option(__version__, "--version", prog_name="opskit")
    @common_options
    @click.pass_context
    def cli(ctx: click.Context) -> None:
        """Run Docker Compose projects in dev/int/prod environments."""
        ctx.ensure_object(CliState)
        ctx.call_on_close(ctx.obj.close)

    cli.context_settings["obj"] = CliState(plugins, record)
    plugins.register_commands(cli)
    return cli


def run(argv: Sequence[str] | None = None, plugins: Plugins | None = None) -> int:
    """Run the command line; return the exit code (errors printed as ``[error] …``).

    Without *plugins* (the command line itself, a timer) the command's jobs are recorded
    as a run in the state folder (:class:`opskit.runs.CommandRun`); a run of the
    dashboard, which passes its own, records itself."""
    args = list(argv) if argv is not None else sys.argv[1:]
    holder: list[CliState] = []
    code = _run(args, plugins, holder)
    if holder and holder[0].run is not None:
        holder[0].run.finish(code)
    return code


def _run(args: list[str], plugins: Plugins | None, holder: list[CliState]) -> int:
    import signal

    from opskit.errors import Terminated
    from opskit.output import error

    def terminated(number: int, frame: object) -> None:
        raise Terminated("terminated")

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, terminated)
    try:
        record = _without_root(args) if plugins is None else None
        if plugins is None:
            from opskit.plugins import create_plugins

            plugins = create_plugins(os.environ)
        cli = create_cli(plugins, record)
        holder.append(cli.context_settings["obj"])
        # click's own main() turns Ctrl-C and SIGTERM into a bare "Abort" after printing an
        # empty line; opskit reports them itself (below), so it runs the command directly.
        with cli.make_context("opskit", args) as context:
            result = cli.invoke(context)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.NoArgsIsHelpError as exc:  # a bare "opskit": its help, not an error
        click.echo(exc.format_message(), file=sys.stderr)
        return 2
    except DelegateFailed as exc:
        return exc.exit_code  # the project's own CLI has reported it
    except OpskitError as exc:
        error(str(exc))
        return exc.exit_code
    except click.exceptions.Abort:
        error("cancelled")
        return 2
    except Terminated:
        error("terminated (SIGTERM)")
        return 2
    except KeyboardInterrupt:
        error("interrupted")
        return 2
    except click.UsageError as exc:
        hint = (
            f" (see 'opskit {exc.ctx.command_path.partition(' ')[2]} --help')".replace(
                "opskit  ", "opskit "
            )
            if exc.ctx
            else ""
        )
        error(f"{exc.format_message()}{hint}")
        return 1
    except click.ClickException as exc:
        error(exc.format_message())
        return 1
    except BrokenPipeError:
        return 0
    return result if isinstance(result, int) else 0


def main() -> None:
    """Console entry point."""
    sys.exit(run())


def command_options(function: F) -> F:
    """Decorate a command with :func:`common_options` and pass it the :class:`CliState`;
    with ``--hosts``, the command runs on each host chosen (:mod:`opskit.fleet`)."""

    @functools.wraps(function)
    def dispatch(state: CliState, *args: Any, **kwargs: Any) -> Any:
        if state.hosts is None:
            return function(state, *args, **kwargs)
        from opskit.fleet import run_on_hosts

        command = click.get_current_context().command_path.partition(" ")[2]
        return run_on_hosts(state, command, function, kwargs)

    return common_options(pass_state(dispatch))  # type: ignore[return-value]


def scheduled_option(function: F) -> F:
    """``--scheduled``: the command runs from a timer (dead-man pings, notifications)."""
    option = click.option(
        "--scheduled",
        is_flag=True,
        default=None,
        expose_value=False,
        callback=_remember("scheduled"),
        help="Run as a timer does: dead-man pings, and alerts as opskit.yaml says.",
    )
    return option(function)


def job_options(function: F) -> F:
    """:func:`command_options` and ``--events``, for commands that run jobs."""
    option = click.option(
        "--events",
        is_flag=True,
        default=None,
        expose_value=False,
        callback=_remember("events"),
        help="The job's events as JSON lines on stdout, as they happen.",
    )
    return option(command_options(function))
