"""Errors a user can cause. The CLI prints them as one ``[error] …`` line and exits 1."""

from __future__ import annotations


class OpskitError(Exception):
    """Base class of every error opskit reports to the user without a traceback."""

    exit_code = 1


class DescriptorError(OpskitError):
    """A ``project.yaml`` is malformed; the message names the file, line and field."""

    def __init__(self, path: str, line: int | None, field: str, problem: str) -> None:
        self.path = path
        self.line = line
        self.field = field
        self.problem = problem
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {field}: {problem}" if field else f"{where}: {problem}")


class NotFoundError(OpskitError):
    """An unknown project, environment, service or container."""


class DockerUnavailable(OpskitError):
    """The Docker engine of a host cannot be reached."""


class HostError(OpskitError):
    """A host cannot be reached or a command on it failed."""


class CommandFailed(HostError):
    """An external command exited non-zero."""

    def __init__(self, argv: list[str], returncode: int, stderr: str, host: str) -> None:
        self.argv = argv
        self.returncode = returncode
        self.stderr = stderr
        last = next((ln for ln in reversed(stderr.strip().splitlines()) if ln.strip()), "")
        detail = f": {last.strip()}" if last else ""
        where = "" if host == "local" else f" on {host}"
        # the program and its first two words: for compose, the project name too
        program = 2 if argv[:2] == ["docker", "compose"] else 1
        shown = " ".join(argv[: program + 2])
        super().__init__(f"{shown} failed with exit {returncode}{where}{detail}")


class NeedsConfirmation(OpskitError):
    """A confirmation is needed but stdin is not a terminal."""


class Cancelled(OpskitError):
    """The user declined a confirmation or interrupted a command."""

    exit_code = 2


class DelegateFailed(OpskitError):
    """A project's own CLI (``delegate:``) exited non-zero. It has said why itself, so the
    command line prints nothing more and exits with the CLI's code."""

    def __init__(self, project: str, command: str, code: int) -> None:
        self.exit_code = code
        self.archives: list[object] = []  # backup --all: what opskit wrote all the same
        super().__init__(f"{project}: its own CLI failed at {command} (exit {code})")


class Terminated(KeyboardInterrupt):
    """SIGTERM (``systemctl stop``, a shutdown): handled like Ctrl-C, so that a change in
    progress ends like a failure, with the previous state back, and opskit exits 2."""


class RolledBack(OpskitError):
    """A change failed and was undone: the env runs what it ran before. Its job ends
    ``rolled back`` (:class:`opskit.jobs.Outcome`), not ``failed``."""
