"""Requests to start an operation, checked once: the fields of a JSON body (the dashboard's
``POST /api/runs``) become an :class:`OperationRequest`, whose :meth:`~OperationRequest.argv`
is the ``opskit`` command line the run executes.

The rules are the core's own, the ones the command line applies: a project and env must
exist (:meth:`Project.check_env`), a sync direction must be in ``sync.pairs``
(:func:`opskit.sync.check_direction`), an archive name must be one of the env's
(:func:`check_archive_of`), and a change to a project's last env needs its typed name
(:func:`is_last_env`). What only a JSON body can get wrong (a number where a name belongs,
a value that starts with ``-`` and would become an option) is checked here as well.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs

from opskit.descriptor import Project
from opskit.errors import OpskitError

LIFECYCLE = ("start", "stop", "restart")
# An archive's offsite copy: ``offsite-upload`` (a local archive without a copy),
# ``offsite-verify`` (read the copy back), ``offsite-download`` (an offsite-only archive
# back into the env's archives); ``restore`` with ``offsite`` restores from the copy.
OFFSITE = ("offsite-upload", "offsite-verify", "offsite-download")
OPERATIONS = ("backup", "verify", "restore", "rebuild", "sync", "promote", "drill",
              *OFFSITE, *LIFECYCLE)  # fmt: skip
TAKES_ENV = ("backup", "verify", "restore", "rebuild", "drill", *OFFSITE, *LIFECYCLE)
TAKES_ARCHIVE = ("verify", "restore", "drill", *OFFSITE)  # the others' archive is refused
NEEDS_ARCHIVE = ("restore", *OFFSITE)


class RequestError(OpskitError):
    """A request that cannot be carried out as asked (422 on the web, exit 1 on the CLI)."""


def is_last_env(project: Project, env: str) -> bool:
    """Whether *env* is the project's last env (prod): changing it needs the typed name."""
    return env == project.environments[-1]


def check_archive_of(project: Project, env: str, name: str) -> str:
    """*name* if it is an archive name of *project* *env*, else :class:`ArchiveError`."""
    from opskit.archive import check_name_of

    return check_name_of(project.name, env, name)


def project_named(projects: Iterable[Project], name: str) -> Project:
    """The project called *name* among *projects*, else :class:`RequestError`."""
    found = next((p for p in projects if p.name == name), None)
    if found is None:
        raise RequestError(f"no project {name!r}")
    return found


@attrs.frozen
class OperationRequest:
    """An operation to run, every field checked against the project's descriptor."""

    operation: str
    project: Project
    env: str | None = None  # backup, verify, restore, rebuild, start, stop, restart
    service: str | None = None  # start, stop, restart: one service (None: the whole env)
    source: str | None = None  # sync, promote
    target: str | None = None
    archive: str | None = None  # verify, restore, drill, offsite-*: a name of the env's archives
    offsite: bool = False  # restore: from the archive's offsite copy (``restore --offsite``)
    dry_run: bool = False
    confirm: str = ""  # the typed project name, for a change to its last env

    def argv(self) -> list[str]:
        """The ``opskit`` command line of this request."""
        name = self.project.name
        named = ["--name", self.archive] if self.archive else []
        if self.operation == "backup":
            return ["backup", name, str(self.env)]
        if self.operation == "verify":
            return ["verify", name, str(self.env), *named]
        if self.operation == "restore":
            offsite = ["--offsite"] if self.offsite else []
            return ["restore", name, str(self.env), *named, *offsite,
                    *self._confirmed(str(self.env))]  # fmt: skip
        if self.operation == "drill":
            return ["drill", name, str(self.env), *named]
        if self.operation in OFFSITE:  # offsite-upload -> offsite upload
            return ["offsite", self.operation.removeprefix("offsite-"), name, str(self.env),
                    *named]  # fmt: skip
        if self.operation == "rebuild":
            return ["rebuild", name, str(self.env), *self._confirmed(str(self.env))]
        if self.operation in LIFECYCLE:
            service = [self.service] if self.service else []
            if self.operation != "start":  # stopping the last env needs its typed name
                self._named(str(self.env))
            return [self.operation, name, str(self.env), *service]
        return [self.operation, name, "--from", str(self.source), "--to", str(self.target),
                *self._confirmed(str(self.target))]  # fmt: skip

    def _confirmed(self, env: str) -> list[str]:
        """``--dry-run`` when asked for (a restore has none), else ``--yes``: the page has
        confirmed, and for the last env the project's name was typed."""
        if self.dry_run and self.operation != "restore":
            return ["--dry-run"]
        self._named(env)
        return ["--yes"]

    def _named(self, env: str) -> None:
        if is_last_env(self.project, env) and self.confirm != self.project.name:
            raise RequestError(
                f"this changes {env}: type the project name ({self.project.name}) to go on"
            )


def parse_operation(projects: Iterable[Project], body: Any) -> OperationRequest:
    """The request a JSON body asks for (``{"operation": "backup", "project": "mdf", "env":
    "dev"}``), or :class:`RequestError` naming the first field that is wrong."""
    try:
        request = _parse(list(projects), body)
        request.argv()  # the confirmation rule
    except RequestError:
        raise
    except OpskitError as exc:  # an unknown env, a direction not in sync.pairs, ...
        raise RequestError(str(exc)) from None
    return request


def _parse(projects: list[Project], body: Any) -> OperationRequest:
    if not isinstance(body, dict):
        raise RequestError("expected a JSON object")
    operation = body.get("operation")

    def text(key: str, required: bool = True) -> str | None:
        value = body.get(key)
        if value is None or value == "":
            if required:
                raise RequestError(f"{operation}: {key} is required")
            return None
        if not isinstance(value, str) or value.startswith("-") or not value.isprintable():
            raise RequestError(f"{operation}: {key} is not a valid value")
        return value

    dry_run = body.get("dry_run") or False
    if not isinstance(dry_run, bool):
        raise RequestError(f"{operation}: dry_run is true or false")
    confirm = body.get("confirm", "")
    if not isinstance(confirm, str):
        raise RequestError(f"{operation}: confirm is the project's name")
    offsite = body.get("offsite") or False
    if not isinstance(offsite, bool):
        raise RequestError(f"{operation}: offsite is true or false")
    if offsite and operation != "restore":
        raise RequestError(f"{operation}: offsite is for restore (the others name it)")
    if operation not in OPERATIONS:
        raise RequestError(f"unknown operation {operation!r}")
    project = project_named(projects, str(text("project")))
    common = {"operation": operation, "project": project, "dry_run": dry_run, "confirm": confirm}
    if operation in TAKES_ENV:
        env = project.check_env(str(text("env")))
        archive = None
        if operation in TAKES_ARCHIVE:
            archive = text("archive", required=operation in NEEDS_ARCHIVE)
            if archive is not None:  # one of the env's names, local or offsite
                check_archive_of(project, env, archive)
        elif body.get("archive") not in (None, ""):
            raise RequestError(f"{operation}: takes no archive")
        service = None
        if operation in LIFECYCLE:
            from opskit.descriptor import SERVICE_RE

            service = text("service", required=False)
            if service is not None and not SERVICE_RE.match(service):
                raise RequestError(f"{operation}: service is not a valid name")
        return OperationRequest(
            env=env, archive=archive, service=service, offsite=offsite, **common
        )
    source, target = str(text("from")), str(text("to"))
    if operation == "sync":
        from opskit.sync import check_direction

        check_direction(project, source, target)
    else:
        project.check_env(source)
        project.check_env(target)
    return OperationRequest(source=source, target=target, **common)
