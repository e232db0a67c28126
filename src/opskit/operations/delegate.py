"""Delegation: a project that hands a command to its own CLI (``delegate:``) runs it as
docs/cli-contract.md says, instead of opskit's own work."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs

from opskit.errors import DelegateFailed

if TYPE_CHECKING:
    from opskit.descriptor import Project
    from opskit.operations import Context


@attrs.frozen
class Request:
    """Run *command* of *project*'s own CLI for *env* with *flags*; *cli_env* is
    ``{env}`` in ``delegate.cli`` for a command without ENV (sync and promote: ``--to``)."""

    project: Project
    command: str
    env: str | None
    flags: Sequence[str]
    cli_env: str | None = None


def run(ctx: Context, request: Request) -> int:
    """Run the project's own CLI as docs/cli-contract.md says; return its exit code."""
    project = request.project
    assert project.delegate is not None
    env = request.env
    cli = project.resolve_path(project.delegate.cli, env or request.cli_env or "")
    variables = [
        f"OPSKIT_PROJECT={project.name}",
        f"OPSKIT_ENV={env or ''}",
        f"OPSKIT_ROOT={ctx.runtime.root}",
    ]
    argv = [
        "env",
        *variables,
        cli,
        request.command,
        project.name,
        *([env] if env else []),
        *request.flags,
    ]
    return ctx.runtime.host.call(argv, cwd=project.folder)


def delegated(ctx: Context, request: Request) -> bool:
    """Run the project's own CLI when it takes the command (``delegate:``): True when it
    did and succeeded; raises :class:`DelegateFailed` with its exit code otherwise.

    A CLI per env (``{env}`` in ``delegate.cli``) backs up each env itself when no ENV is
    given. Run from a timer (``--scheduled``), each call is a job, so that its dead-man
    ping and a failure's alert go out as for opskit's own jobs."""
    runtime, found = ctx.runtime, request.project
    if not runtime.delegates(found, request.command):
        return False
    assert found.delegate is not None
    calls: list[str | None] = [request.env]
    if request.command == "backup" and request.env is None and "{env}" in found.delegate.cli:
        calls = list(found.environments)
    failed: DelegateFailed | None = None
    for each in calls:
        try:
            if runtime.scheduled:
                envs = [each] if each else list(found.environments)
                with ctx.quiet().job(request.command, found.name, envs):
                    _delegate(ctx, attrs.evolve(request, env=each))
            else:
                _delegate(ctx, attrs.evolve(request, env=each))
        except DelegateFailed as exc:  # the other envs still run
            failed = worst(failed, exc)
    if failed is not None:
        raise failed
    return True


def worst(failed: DelegateFailed | None, exc: DelegateFailed) -> DelegateFailed:
    """Of two delegation failures, the one with the higher exit code."""
    return exc if failed is None or exc.exit_code > failed.exit_code else failed


def _delegate(ctx: Context, request: Request) -> None:
    code = run(ctx, request)
    if code != 0:
        raise DelegateFailed(request.project.name, request.command, code)
