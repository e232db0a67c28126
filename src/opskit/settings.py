"""Server-wide settings: ``opskit.yaml`` at the root, beside the project folders.

What belongs to the server rather than to one project: where alerts go, the dead-man ping
URLs of scheduled jobs, the state folder, how often a failing state is reminded of, disk
and freshness limits, the timers' random delay. Validated like descriptors: every error
names the file, the line and the field. A project's ``notify:`` adds its own alert URLs
and overrides the rest (:meth:`Settings.notify_for`).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import urlsplit

import attrs

from opskit.descriptor import Notify, Offsite, read_calendar, read_notify, read_offsite_target
from opskit.errors import HostError
from opskit.yamlreader import Reader, read_yaml

if TYPE_CHECKING:
    from yaml import Node

    from opskit.descriptor import Project
    from opskit.host import Host

FILENAME = "opskit.yaml"
DEFAULT_STATE_DIR = "/var/lib/opskit"
KEYS = (
    "state_dir", "notify", "remind_hours", "freshness_grace_minutes", "disk_max_used_percent",
    "coverage_hours", "timers", "offsite", "serve", "rebuild", "hosts",
)  # fmt: skip
HOST_KEYS = {"url", "root", "tags", "opskit"}
HOSTS_TIMEOUT = 20.0  # seconds a host of the inventory gets before it counts as unreachable
HOST_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")
ROLES = ("viewer", "operator")
SHA256_RE = r"[0-9a-f]{64}\Z"


@attrs.frozen
class Token:
    """A dashboard login: the sha256 of the token (never the token itself) and a role."""

    name: str
    role: str  # viewer: pages, logs, history; operator: also jobs and the terminal
    sha256: str = attrs.field(repr=False)


@attrs.frozen
class Serve:
    """``serve:`` of ``opskit.yaml``: who may log in to ``opskit serve``, how long runs stay."""

    tokens: tuple[Token, ...] = ()
    keep_runs_days: float = 30.0
    session_hours: float = 12.0
    bind: str | None = None  # set: 'opskit timers' adds a service that runs opskit serve
    behind_proxy: bool = False


S3_KEYS = {
    "access_key_id": "AWS_ACCESS_KEY_ID",
    "secret_access_key": "AWS_SECRET_ACCESS_KEY",
    "session_token": "AWS_SESSION_TOKEN",
    "region": "AWS_DEFAULT_REGION",
}


@attrs.frozen
class ServerOffsite:
    """``offsite:`` of ``opskit.yaml``: the default target of projects without their own,
    and S3 credentials (as restic's environment variables)."""

    target: str | None = None
    keep: int | None = None
    s3: Mapping[str, str] = attrs.field(factory=dict, repr=False)


@attrs.frozen
class OrderEntry:
    """One entry of ``rebuild.order``: a project's envs (*env* None) or one env."""

    project: str
    env: str | None
    line: int = attrs.field(eq=False)


@attrs.frozen
class FleetHost:
    """A server of the inventory (``hosts:`` of ``opskit.yaml``): its name, its URL
    (``ssh://user@server[:port]`` or ``local``), its root there, its tags."""

    name: str
    url: str
    root: str | None = None  # None: the default root there
    tags: tuple[str, ...] = ()
    line: int | None = attrs.field(default=None, eq=False, repr=False)
    opskit: str | None = None  # the opskit program there (None: the one on its PATH)


@attrs.frozen
class Inventory:
    """``hosts:`` of ``opskit.yaml``: the servers a ``--hosts`` command runs on, and how
    long each may take before it counts as unreachable (``hosts.timeout``)."""

    hosts: tuple[FleetHost, ...] = ()
    timeout: float = HOSTS_TIMEOUT

    def select(self, spec: str) -> tuple[FleetHost, ...]:
        """The hosts ``--hosts`` names: ``all``, ``NAME,NAME`` or ``tag:TAG`` (and lists of
        them), in the inventory's order; :class:`OpskitError` naming what is unknown."""
        from opskit.errors import OpskitError

        if not self.hosts:
            raise OpskitError("--hosts: opskit.yaml has no hosts: inventory")
        chosen: set[str] = set()
        for word in (w.strip() for w in spec.split(",")):
            if word == "all":
                chosen.update(h.name for h in self.hosts)
            elif word.startswith("tag:"):
                tagged = {h.name for h in self.hosts if word[4:] in h.tags}
                if not tagged:
                    known = sorted({tag for h in self.hosts for tag in h.tags})
                    raise OpskitError(
                        f"--hosts: no host has the tag {word[4:]!r} (tags: {', '.join(known) or 'none'})"
                    )
                chosen.update(tagged)
            elif any(h.name == word for h in self.hosts):
                chosen.add(word)
            else:
                names = ", ".join(h.name for h in self.hosts)
                raise OpskitError(f"--hosts: no host {word!r} in the inventory (hosts: {names})")
        return tuple(h for h in self.hosts if h.name in chosen)


@attrs.frozen
class Settings:
    path: str | None = None  # None: no opskit.yaml, defaults only
    state_dir: str = DEFAULT_STATE_DIR
    notify: Notify = attrs.field(factory=Notify)
    remind_hours: float = 6.0  # a state that stays failing is reminded of this often
    freshness_grace_minutes: int = 90  # how late a scheduled backup may be
    disk_max_used_percent: int = 90
    coverage_hours: float = 24.0  # how often the watch checks what no backup covers
    randomized_delay_seconds: int = 600  # timers' RandomizedDelaySec
    drill_calendar: str = "weekly"  # timers' OnCalendar of the restore drills
    drill_calendar_line: int | None = attrs.field(default=None, eq=False, repr=False)
    unit_dir: str = "/etc/systemd/system"  # where 'opskit timers --install' writes units
    offsite: ServerOffsite = attrs.field(factory=ServerOffsite)
    serve: Serve = attrs.field(factory=Serve)
    # rebuild.order: the envs a whole-server rebuild brings back first ("PROJECT" or
    # "PROJECT ENV"), the rest after them in the root's order
    rebuild_order: tuple[OrderEntry, ...] = ()
    inventory: Inventory = attrs.field(factory=Inventory)

    def offsite_for(self, project: Project) -> Offsite | None:
        """The project's ``offsite`` section, else the server-wide target (and keep)."""
        if project.offsite is not None:
            return project.offsite
        if self.offsite.target is None:
            return None
        return Offsite(self.offsite.target, self.offsite.keep)

    def notify_for(self, project: Project | None) -> Notify:
        """The server's notify settings with the project's own added (urls) or put first."""
        own = project.notify if project is not None else None
        if own is None:
            return self.notify
        return Notify(
            urls=tuple(dict.fromkeys((*self.notify.urls, *own.urls))),
            successes=own.successes if own.successes is not None else self.notify.successes,
            pings=tuple({**dict(self.notify.pings), **dict(own.pings)}.items()),
        )


def parse_settings(path: str, text: str) -> Settings:
    """Parse and validate an ``opskit.yaml``; :class:`DescriptorError` on any fault."""
    root, loader = read_yaml(path, text)
    r = Reader(path, loader)
    m = r.mapping(root, "", KEYS)
    values: dict[str, object] = {"path": path}
    if "state_dir" in m:
        state_dir = r.string(m["state_dir"], "state_dir")
        if not state_dir.startswith("/"):
            raise r.error(m["state_dir"], "state_dir", "must be an absolute path")
        values["state_dir"] = state_dir
    if "notify" in m:
        values["notify"] = read_notify(r, m["notify"], "notify")
    if "remind_hours" in m:
        values["remind_hours"] = r.number(m["remind_hours"], "remind_hours")
    if "freshness_grace_minutes" in m:
        values["freshness_grace_minutes"] = r.integer(
            m["freshness_grace_minutes"], "freshness_grace_minutes"
        )
    if "disk_max_used_percent" in m:
        percent = r.integer(m["disk_max_used_percent"], "disk_max_used_percent", minimum=1)
        if percent > 100:
            raise r.error(m["disk_max_used_percent"], "disk_max_used_percent", "at most 100")
        values["disk_max_used_percent"] = percent
    if "coverage_hours" in m:
        values["coverage_hours"] = r.number(m["coverage_hours"], "coverage_hours")
    if "timers" in m:
        t = r.mapping(
            m["timers"], "timers", {"randomized_delay_seconds", "drill_calendar", "unit_dir"}
        )
        if "unit_dir" in t:
            unit_dir = r.string(t["unit_dir"], "timers.unit_dir")
            if not unit_dir.startswith("/"):
                raise r.error(t["unit_dir"], "timers.unit_dir", "must be an absolute path")
            values["unit_dir"] = unit_dir
        if "randomized_delay_seconds" in t:
            values["randomized_delay_seconds"] = r.integer(
                t["randomized_delay_seconds"], "timers.randomized_delay_seconds"
            )
        if "drill_calendar" in t:
            node = t["drill_calendar"]
            values["drill_calendar"] = read_calendar(r, node, "timers.drill_calendar")
            values["drill_calendar_line"] = node.start_mark.line + 1
    if "offsite" in m:
        values["offsite"] = _read_offsite(r, m["offsite"])
    if "serve" in m:
        values["serve"] = _read_serve(r, m["serve"])
    if "rebuild" in m:
        values["rebuild_order"] = _read_rebuild(r, m["rebuild"])
    if "hosts" in m:
        values["inventory"] = _read_hosts(r, m["hosts"])
    return Settings(**values)  # type: ignore[arg-type]


def _read_serve(r: Reader, node: Node) -> Serve:
    import re

    m = r.mapping(
        node, "serve", {"tokens", "keep_runs_days", "session_hours", "bind", "behind_proxy"}
    )

    def token(item: Node, field: str) -> Token:
        t = r.mapping(item, field, {"name", "role", "sha256"}, required={"name", "role", "sha256"})
        role = r.string(t["role"], f"{field}.role")
        if role not in ROLES:
            raise r.error(t["role"], f"{field}.role", f"expected one of {', '.join(ROLES)}")
        digest = r.string(t["sha256"], f"{field}.sha256").lower()
        if not re.match(SHA256_RE, digest):
            raise r.error(
                t["sha256"], f"{field}.sha256", "expected 64 hex digits (opskit serve --new-token)"
            )
        return Token(r.string(t["name"], f"{field}.name"), role, digest)

    values: dict[str, object] = {}
    if "tokens" in m:
        values["tokens"] = r.each(m["tokens"], "serve.tokens", token)
    for key in ("keep_runs_days", "session_hours"):
        if key in m:
            values[key] = r.number(m[key], f"serve.{key}")
    if "bind" in m:
        values["bind"] = r.string(m["bind"], "serve.bind")
    if "behind_proxy" in m:
        values["behind_proxy"] = r.scalar(m["behind_proxy"], "serve.behind_proxy") is True
    return Serve(**values)  # type: ignore[arg-type]


def _read_offsite(r: Reader, node: Node) -> ServerOffsite:
    m = r.mapping(node, "offsite", {"target", "keep", "s3"})
    s3 = {}
    if "s3" in m:
        given = r.mapping(m["s3"], "offsite.s3", set(S3_KEYS))
        s3 = {S3_KEYS[key]: r.string(value, f"offsite.s3.{key}") for key, value in given.items()}
    return ServerOffsite(
        target=read_offsite_target(r, m["target"], "offsite.target") if "target" in m else None,
        keep=r.integer(m["keep"], "offsite.keep", minimum=1) if "keep" in m else None,
        s3=s3,
    )


def _read_rebuild(r: Reader, node: Node) -> tuple[OrderEntry, ...]:
    m = r.mapping(node, "rebuild", {"order"})
    if "order" not in m:
        return ()

    def entry(item: Node, field: str) -> OrderEntry:
        words = r.string(item, field).split()
        if len(words) not in (1, 2):
            raise r.error(item, field, "write 'PROJECT' or 'PROJECT ENV'")
        line = item.start_mark.line + 1
        return OrderEntry(words[0], words[1] if len(words) == 2 else None, line)

    return r.each(m["order"], "rebuild.order", entry)


def _read_hosts(r: Reader, node: Node) -> Inventory:
    """``hosts: {timeout: 20, NAME: {url: ssh://…, root: /opt/data, tags: [...]}}``;
    ``timeout`` is the one key that is not a host."""
    m = r.free_mapping(node, "hosts")
    timeout = r.number(m.pop("timeout"), "hosts.timeout") if "timeout" in m else HOSTS_TIMEOUT
    hosts = []
    for name, value in m.items():
        field = f"hosts.{name}"
        if not HOST_NAME_RE.match(name):
            raise r.error(value, field, "a host's name is letters, digits, '.', '_' and '-'")
        h = r.mapping(value, field, HOST_KEYS, required={"url"})
        url = r.string(h["url"], f"{field}.url")
        if url != "local":  # this machine (opskit.host.LOCAL)
            try:
                ssh_url(url)
            except HostError as exc:
                raise r.error(h["url"], f"{field}.url", f"{exc} (or 'local')") from None
        root = None
        if "root" in h:
            root = r.string(h["root"], f"{field}.root")
            if not root.startswith("/"):
                raise r.error(h["root"], f"{field}.root", "must be an absolute path")
        tags = r.strings(h["tags"], f"{field}.tags") if "tags" in h else ()
        program = None
        if "opskit" in h:
            program = r.string(h["opskit"], f"{field}.opskit")
            if not program.startswith("/"):
                raise r.error(h["opskit"], f"{field}.opskit", "must be an absolute path")
        hosts.append(FleetHost(name, url, root, tags, value.start_mark.line + 1, program))
    return Inventory(tuple(hosts), timeout)


def load_settings(host: Host, root: str) -> Settings:
    """The root's ``opskit.yaml``, or the defaults when there is none."""
    path = posixpath.join(root, FILENAME)
    text = host.read_existing([path]).get(path)
    return parse_settings(path, text) if text is not None else Settings()


class SSHURL(NamedTuple):
    hostname: str
    port: int | None
    username: str | None


def ssh_url(url: str) -> SSHURL:
    """The parts of ``ssh://user@server[:port]``, checked without connecting;
    :class:`HostError` saying what is wrong."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # e.g. an unclosed [IPv6 address
        raise HostError(f"bad host {url!r}: {exc}") from None
    if parts.scheme != "ssh" or not parts.hostname:
        raise HostError(f"bad host {url!r}: expected ssh://user@server[:port]")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise HostError(f"bad host {url!r}: expected ssh://user@server[:port], nothing after it")
    try:
        port = parts.port
    except ValueError:
        raise HostError(f"bad host {url!r}: the port is not a number") from None
    return SSHURL(parts.hostname, port, parts.username)
