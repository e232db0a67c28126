"""The contracts: the types that plugins and the core's engines share.

Hooks (:mod:`opskit.hookspecs`) take and return these; engines work on them. They depend on
nothing of the engines, so a plugin (or an engine) that needs a type imports it from here:

- projects: :class:`Project` and its sections (:class:`Compose`, :class:`Backup`, …), as
  :mod:`opskit.descriptor` reads them, and :class:`DescriptorSource`;
- health: :class:`HealthContext` in, :class:`CheckResult` out;
- backups: :class:`BackupContext`, :class:`Component` (and its :class:`StreamLedger`),
  :class:`ComponentRecord` (a component's entry in an archive's manifest), and for drills
  :class:`DrillContext` and :class:`NotDrilled`;
- sync: :class:`SyncContext`, :class:`Transform`;
- promote: :class:`PromoteContext`, :class:`Promoter` (and its :class:`Preview`);
- offsite: :class:`Repository`;
- init: what runs (:class:`SeenContainer`, :class:`SeenStack`), grouped into a
  :class:`Candidate` project, and the :class:`Proposal` a plugin makes of it;
- watching: :class:`Event` (the kinds are in :mod:`opskit.events`), :data:`Meter`.
"""

from __future__ import annotations

import abc
import posixpath
from collections.abc import Callable, Iterator, Mapping
from typing import IO, TYPE_CHECKING, Any, ClassVar, Protocol

import attrs

from opskit.errors import NotFoundError, OpskitError
from opskit.events import Event as Event  # re-exported: the event kinds live in opskit.events

if TYPE_CHECKING:
    from opskit.containers import Container, Placement
    from opskit.host import Host, Process

# -------------------------------------------------------------------------
# Projects
# -------------------------------------------------------------------------

DEFAULT_HEALTH_TIMEOUT = 120
DELEGATE_COMMANDS = ("backup", "restore", "sync", "promote")
DEFAULT_BACKUP_DIR = "/opt/data/backups"
PING_KINDS = ("backup", "watch", "drill")


def expand(template: str, env: str, project: str = "") -> str:
    """Replace ``{env}`` and ``{project}`` in a descriptor string; the one expansion rule."""
    result = template.replace("{env}", env)
    if project:
        result = result.replace("{project}", project)
    return result


@attrs.frozen
class DescriptorSource:
    """A descriptor's location and text, as discovery plugins return it."""

    path: str
    text: str


@attrs.frozen
class Stack:
    """One compose stack: a folder, its compose files and its compose project name
    (templates; ``project_name`` None lets :mod:`opskit.compose` decide)."""

    dir: str = "."
    files: tuple[str, ...] = ()
    project_name: str | None = None


@attrs.frozen
class Compose:
    dir: str = "."
    files: tuple[str, ...] = ()
    env_file: str | None = None
    profile: str | None = None
    project_name: str | None = None
    extra: tuple[Stack, ...] = ()


@attrs.frozen
class Service:
    name: str
    environments: tuple[str, ...] | None = None

    def in_env(self, env: str) -> bool:
        return self.environments is None or env in self.environments


@attrs.frozen
class HttpProbe:
    http: str
    service: str | None = None
    expect: int = 200
    timeout: float = 5.0
    environments: tuple[str, ...] | None = None

    def in_env(self, env: str) -> bool:
        return self.environments is None or env in self.environments


@attrs.frozen
class Retention:
    keep_daily: int = 7
    keep_weekly: int = 4
    keep_monthly: int = 6
    keep_last: int = 1
    keep_undo_days: int = 7  # archives that recent changes can be undone with are kept


@attrs.frozen
class Database:
    service: str
    type: str
    name: str
    user: str | None = None
    password_env: str | None = None


STORES = ("folder", "restic")  # the values of backup.store


@attrs.frozen
class Backup:
    dir: str = DEFAULT_BACKUP_DIR
    # where archives live: "folder" (plain files) or "restic"; None (not set): restic,
    # unless the root already holds folder archives (opskit.store.store_kind)
    store: str | None = None
    schedule: str | None = None  # HH:MM or a systemd calendar (``OnCalendar=``)
    retention: Retention = Retention()
    databases: tuple[Database, ...] = ()
    paths: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()
    stop: tuple[str, ...] = ()
    # volumes and paths knowingly not backed up (a cache): doctor and the watch accept them
    expendable: tuple[str, ...] = ()
    schedule_line: int | None = attrs.field(default=None, eq=False, repr=False)


@attrs.frozen
class Offsite:
    target: str
    keep: int | None = None


@attrs.frozen
class Sync:
    pairs: tuple[tuple[str, str], ...] = ()
    replace: tuple[tuple[str, tuple[str, ...]], ...] = ()  # env -> strings, aligned
    whole_hosts: bool = False  # replace a URL only where its host name ends

    def replacement(self, env: str) -> str | None:
        """The env's first (main) string, e.g. its site URL."""
        found = self.strings(env)
        return found[0] if found else None

    def strings(self, env: str) -> tuple[str, ...]:
        """All of the env's strings, in the order they are replaced."""
        return dict(self.replace).get(env, ())


@attrs.frozen
class Promote:
    type: str
    dir: str | None = None
    branches: tuple[tuple[str, str], ...] = ()
    script: str | None = None
    rebuild: str = "auto"
    health_timeout: int | None = None  # None: health.timeout applies
    exclude: tuple[str, ...] = ()

    def branch(self, env: str) -> str | None:
        return dict(self.branches).get(env)


@attrs.frozen
class Delegate:
    cli: str
    commands: tuple[str, ...] = DELEGATE_COMMANDS


@attrs.frozen
class Notify:
    """Where alerts go (apprise URLs) and the dead-man ping URL of each scheduled job kind
    (``{project}`` and ``{env}`` expanded; healthchecks.io style: ``/start``, ``/fail``)."""

    urls: tuple[str, ...] = ()
    successes: bool | None = None  # also notify after a successful scheduled job
    pings: tuple[tuple[str, str], ...] = ()  # (kind, URL template)

    def ping(self, kind: str) -> str | None:
        return dict(self.pings).get(kind)


@attrs.frozen
class Project:
    """A validated project descriptor."""

    name: str
    path: str  # the descriptor file
    environments: tuple[str, ...]
    plugin: str = "generic"
    description: str = ""
    container_prefix: str = "{env}-{project}"
    compose: Compose = Compose()
    services: tuple[Service, ...] = ()
    health: tuple[HttpProbe, ...] = ()
    health_timeout: int = DEFAULT_HEALTH_TIMEOUT  # seconds the health gate waits
    backup: Backup | None = None
    offsite: Offsite | None = None
    sync: Sync | None = None
    promote: Promote | None = None
    delegate: Delegate | None = None
    notify: Notify | None = None  # adds to (urls) or overrides (the rest) opskit.yaml's
    handler: str = ""  # set by the core from opskit_project_handler

    @property
    def folder(self) -> str:
        return posixpath.dirname(self.path)

    def check_env(self, env: str) -> str:
        """Return *env* if the project has it, else raise :class:`NotFoundError`."""
        if env not in self.environments:
            known = ", ".join(self.environments)
            raise NotFoundError(f"project {self.name} has no environment {env!r} (it has {known})")
        return env

    def expand(self, template: str, env: str) -> str:
        return expand(template, env, self.name)

    def resolve_path(self, template: str, env: str) -> str:
        """An expanded descriptor path, absolute (relative ones are under the folder)."""
        return posixpath.normpath(posixpath.join(self.folder, self.expand(template, env)))

    def prefix(self, env: str) -> str:
        return self.expand(self.container_prefix, env)

    def services_in(self, env: str) -> tuple[Service, ...]:
        return tuple(service for service in self.services if service.in_env(env))

    def stacks(self, env: str) -> tuple[Stack, ...]:
        """The env's compose stacks: the main one first, then ``compose.extra``."""
        main = Stack(self.compose.dir, self.compose.files, self.compose.project_name)
        return (main, *self.compose.extra)

    def gate_timeout(self, command: str) -> int:
        """Seconds the health gate waits after *command* changed the env:
        ``health.timeout``; for ``promote``, ``promote.health_timeout`` where set."""
        if command == "promote" and self.promote and self.promote.health_timeout is not None:
            return self.promote.health_timeout
        return self.health_timeout

    def gate_setting(self, command: str) -> str:
        """The descriptor key that :meth:`gate_timeout` read, for messages."""
        if command == "promote" and self.promote and self.promote.health_timeout is not None:
            return "promote.health_timeout"
        return "health.timeout"


# -------------------------------------------------------------------------
# Health
# -------------------------------------------------------------------------


@attrs.frozen
class CheckResult:
    """The outcome of one check. ``environment`` is empty for project-wide checks."""

    project: str
    environment: str
    check: str
    ok: bool
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen
class HealthContext:
    """What a health-check plugin gets: one project and the envs being checked."""

    project: Project
    environments: tuple[str, ...]
    placements: tuple[Placement, ...]
    host: Host
    disk_max_used: float = 0.90  # a fuller filesystem fails (opskit.yaml: disk_max_used_percent)

    def running_container(self, env: str, service: str) -> Container | None:
        """The first running container of *service* in *env*, if any."""
        for placement in self.placements:
            if (
                placement.environment == env
                and placement.service == service
                and placement.state == "running"
            ):
                return placement.container
        return None


# -------------------------------------------------------------------------
# Backup and restore
# -------------------------------------------------------------------------


@attrs.frozen
class BackupContext:
    """The env a component works on: its host, descriptor and containers."""

    host: Host
    project: Project
    env: str
    placements: tuple[Placement, ...]

    def running_container(self, service: str) -> Container:
        found = [p for p in self.placements if p.service == service]
        for placement in found:
            if placement.state == "running" and placement.container:
                return placement.container
        seen = (
            ", ".join(f"{p.container.name} is {p.state}" for p in found if p.container)
            or "no container found"
        )
        raise NotFoundError(
            f"{self.project.name} {self.env}: the {service} container is not running ({seen})"
        )


@attrs.frozen
class DrillContext:
    """Where a component is drilled: a throw-away place beside the env, never the env.

    Whatever the drill starts must carry *label* (containers and volumes: ``--label``) and
    be named with :meth:`name`; the drill engine removes it all when the drill ends, also
    when it fails or is interrupted, and a later drill removes what a killed one left.
    """

    live: BackupContext  # the env the archive is of: read its containers, never change them
    scratch: str  # a private folder on the host for files, removed when the drill ends
    label: str  # ``key=value``, to put on every container and volume the drill starts
    prefix: str  # the start of the name of every container and volume the drill starts
    warn: Callable[[str], None]  # a warning for the drill's job (or the terminal)

    def name(self, key: str) -> str:
        """A name for a container (or volume) this drill starts for component *key*."""
        return f"{self.prefix}-{key}"[:120]


class NotDrilled(Exception):
    """Raised by :meth:`Component.drill` when it cannot drill: the component is reported
    as not drilled (its checksums were verified), which is not a fault of the archive."""


class Component(abc.ABC):
    """One part of a backup. ``key`` is unique within an archive and names its file."""

    kind: ClassVar[str]
    extension: ClassVar[str]

    @property
    @abc.abstractmethod
    def key(self) -> str: ...

    @abc.abstractmethod
    def describe(self) -> dict[str, Any]:
        """What the manifest records about this component (JSON-compatible)."""

    @abc.abstractmethod
    def dump(self, context: BackupContext) -> Process:
        """Start producing the raw stream on the process's stdout (stderr kept apart)."""

    @abc.abstractmethod
    def restore(
        self, context: BackupContext, source: IO[bytes], record: ComponentRecord | None = None
    ) -> None:
        """Consume a raw stream produced by :meth:`dump`, replacing the live data.

        *record* is the component's entry in the archive's manifest (its ``details`` hold
        what :meth:`describe` and the ledger recorded), or None when the stream does not
        come from an archive (a sync streams one env's dump into another)."""

    def drill(self, context: DrillContext, source: IO[bytes], record: ComponentRecord) -> None:
        """Prove that *source*, this component's stream from an archive, restores: restore
        it into a throw-away place of *context* and check it against *record*; raise
        :class:`~opskit.errors.OpskitError` saying what is wrong. A component without a
        drill of its own is reported as not drilled (:class:`NotDrilled`)."""
        raise NotDrilled(f"a {self.kind} is verified, not drilled")

    @property
    def filename(self) -> str:
        return f"{self.key}.{self.extension}.zst"

    @property
    def sync_key(self) -> str:
        """What pairs this component with its counterpart in another env (``sync``)."""
        return self.key

    @property
    def restores_through(self) -> str | None:
        """The service whose running container loads this component back (a database's
        server), or None. A restore keeps it running while it stops the others."""
        return None

    def ledger(self) -> StreamLedger | None:
        """A fresh observer of one raw stream of this component, or None.

        A backup feeds it every chunk of the dump; what its ``record()`` returns then is
        kept in the manifest with the component (a database's row counts).
        """
        return None

    def tree_member(self, inside: str) -> str | None:
        """The name that the file or folder *inside* (a normalised relative path in this
        component's tree; "" for the whole tree) has in the tar stream of :meth:`dump`, for
        ``opskit extract``; None when that stream is no tar of a file tree."""
        return None

    def location(self, context: BackupContext, create: bool = False) -> str | None:
        """The folder on the host that holds this component's files, if it has one.

        ``sync`` copies such components with rsync; the others stream ``dump`` into
        ``restore``. With *create*, a missing location is created (the sync target).
        """
        return None


class StreamLedger(Protocol):
    """What :meth:`Component.ledger` returns (:class:`opskit.dumps.DumpLedger` for databases)."""

    def feed(self, chunk: bytes) -> bytes: ...

    def finish(self) -> bytes: ...

    def record(self) -> dict[str, Any]: ...


@attrs.frozen
class ComponentRecord:
    """One component's entry in an archive's manifest: its file, sizes and checksums, and
    in ``details`` what :meth:`Component.describe` and its ledger recorded."""

    key: str
    kind: str
    file: str
    raw_bytes: int
    raw_sha256: str
    stored_bytes: int
    sha256: str
    details: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


# -------------------------------------------------------------------------
# Sync
# -------------------------------------------------------------------------


@attrs.frozen
class SyncContext:
    """One sync: its project, direction and the strings to rewrite (source -> target)."""

    host: Host
    project: Project
    source: str
    target: str
    replacements: tuple[tuple[str, str], ...]
    whole_hosts: bool = False  # sync.whole_hosts: leave https://shop.chocolate.com alone


class Transform(Protocol):
    """A stateful rewriter of one dump stream (what ``opskit_sync_transform`` returns)."""

    @property
    def counts(self) -> Mapping[str, int]: ...

    def feed(self, chunk: bytes) -> bytes: ...

    def finish(self) -> bytes: ...


# -------------------------------------------------------------------------
# Promote
# -------------------------------------------------------------------------


@attrs.frozen
class PromoteContext:
    """One promotion: the project, the two envs and their code folders on the host."""

    host: Host
    project: Project
    source: str
    target: str
    source_dir: str
    target_dir: str


@attrs.frozen
class Preview:
    """What a promotion would change in the target env."""

    old: str  # the target's code now (a commit, or "working tree")
    new: str  # what arrives (a commit, or the source folder)
    changes: tuple[str, ...]  # git: "abc1234 subject" per commit, oldest last
    files: tuple[str, ...]  # paths relative to the target's tree that change
    diffstat: str

    @property
    def empty(self) -> bool:
        """Nothing would change: no file, and the same commit (a working tree, which an
        rsync promotion moves, has no commit: no file to move is nothing to promote)."""
        return not self.files and (self.old == self.new or self.old == "working tree")


class Promoter(abc.ABC):
    """Moves code between the working trees of two envs."""

    name: ClassVar[str]

    @abc.abstractmethod
    def preview(self, context: PromoteContext) -> Preview:
        """What would arrive; changes nothing in the target (a git fetch is fine)."""

    def check(self, context: PromoteContext, preview: Preview) -> None:  # noqa: B027
        """Raise :class:`OpskitError` if the target cannot take the change (local edits)."""

    @abc.abstractmethod
    def apply(self, context: PromoteContext, preview: Preview) -> None:
        """Move the code of *preview* into the target's tree."""

    @abc.abstractmethod
    def rollback(self, context: PromoteContext, preview: Preview) -> None:
        """Put the target's tree back as it was before :meth:`apply`."""

    def finish(self, context: PromoteContext, preview: Preview) -> str | None:
        """After a healthy promotion: publish or clean up; return a note for the user."""
        return None

    def diff(self, context: PromoteContext, preview: Preview) -> Iterator[str]:
        """The unified diff of the content *preview* would change, line by line, as it
        comes; changes nothing."""
        raise OpskitError(f"promote type {self.name} cannot show a content diff")


# -------------------------------------------------------------------------
# Offsite copies
# -------------------------------------------------------------------------


@attrs.frozen
class Repository:
    """Where restic keeps one target's copies: what ``opskit_offsite_target`` returns."""

    url: str  # restic's --repo, e.g. "sftp://user@host:22/srv/restic" or "rclone:remote:path"
    # Added to restic's environment (credentials travel here, never in argv or logs).
    env: Mapping[str, str] = attrs.field(factory=dict, repr=False)


# -------------------------------------------------------------------------
# init: descriptors proposed from what runs
# -------------------------------------------------------------------------


@attrs.frozen
class SeenPort:
    """A published port, and what an HTTP GET of it answered when init looked (None:
    no HTTP answer)."""

    host_ip: str
    host_port: int
    container_port: int
    status: int | None = None
    path: str = "/"  # the path asked: the one the container's healthcheck asks on that port


@attrs.frozen
class SeenContainer:
    """One running container of a compose stack, as ``opskit init`` reads it. Secrets
    never get here: of the container's environment only the variable *names* are kept,
    and the values of the few that name a database or its user (:attr:`settings`)."""

    name: str
    service: str
    image: str
    processes: tuple[str, ...] = ()  # the command names ``docker top`` lists
    env_names: tuple[str, ...] = ()
    settings: Mapping[str, str] = attrs.field(factory=dict)  # MYSQL_DATABASE, POSTGRES_USER, ...
    mounts: tuple[
        Mapping[str, Any], ...
    ] = ()  # Docker's Mounts: Type, Name, Source, Destination, RW
    ports: tuple[SeenPort, ...] = ()
    healthcheck_seconds: float | None = None  # the healthcheck's interval; None: no healthcheck


@attrs.frozen
class SeenStack:
    """One compose project as its containers' labels tell it."""

    compose_project: str
    working_dir: str  # "" when compose left no working-dir label (old compose)
    config_files: tuple[str, ...]  # absolute, as compose recorded them
    env_file: str | None = None  # the env file compose v2 recorded, absolute
    containers: tuple[SeenContainer, ...] = ()
    files_exist: bool = True  # every compose file is still on the disk
    # each service of the compose files -> its compose profiles (from compose config)
    profiles: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)
    profiles_error: str = ""  # why compose could not tell the profiles


@attrs.frozen
class Candidate:
    """What runs, grouped into one would-be project: its envs' stacks, in order."""

    name: str  # the proposed project name
    folder: str  # the project folder (where project.yaml goes), under the root
    envs: Mapping[str, SeenStack]
    index: int = 0  # the candidate's position (spreads the nightly backups)
    notes: Mapping[str, str] = attrs.field(factory=dict)  # field -> how it was guessed
    backup_dir: str = DEFAULT_BACKUP_DIR
    by_profile: bool = False  # the envs share one compose project, each env a profile


@attrs.define
class Proposal:
    """A proposed ``project.yaml``: the descriptor as plain data, a comment per guessed
    field (dotted path -> text; ``""`` is the head of the file), and *blockers*: what must
    be filled in before the file can be written."""

    name: str
    folder: str
    data: dict[str, Any]
    comments: dict[str, str] = attrs.field(factory=dict)
    blockers: list[str] = attrs.field(factory=list)

    def guess(self, field: str, text: str) -> None:
        """Note how *field* was guessed (appended to what is already said of it)."""
        old = self.comments.get(field)
        self.comments[field] = f"{old}; {text}" if old else text

    def fill_in(self, field: str, text: str, blocking: bool = False) -> None:
        """Say what the user must fill in at *field*; *blocking*: the file is not
        written until they did."""
        self.guess(field, f"fill in: {text}")
        if blocking:
            self.blockers.append(text)


# -------------------------------------------------------------------------
# Watching operations
# -------------------------------------------------------------------------


# A progress meter: given a label, returns the callback that counts bytes done.
Meter = Callable[[str], Callable[[int], None]]
