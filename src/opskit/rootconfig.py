"""opskit's own backup: the root's configuration, offsite beside the archives.

What a fresh server needs, besides the archives, to come back: ``opskit.yaml``, every
``project.yaml``, each env's compose files and env files (``--env-file`` and the compose
folder's ``.env``), and the state folder's small files (runs, watch state, escrow records).
The offsite password is left out, and so is the archive store's: a repository never holds
the password that opens it, and the store is gone with the server anyway.

One tar, made of small files (a larger one is not configuration: left out, named), goes as
one snapshot (tags ``opskit``, ``config``, ``root=ROOT``; file ``opskit-config.tar``) into
every offsite repository the root's projects copy to. A SQLite database of the state folder
goes in as a consistent copy (SQLite's own backup) where opskit runs on the server itself.
"""

from __future__ import annotations

import io
import posixpath
import tarfile
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from opskit.compose import stack_config
from opskit.errors import OpskitError

if TYPE_CHECKING:
    from opskit.descriptor import Project
    from opskit.host import Host
    from opskit.runtime import Runtime

FILENAME = "opskit-config.tar"
TAG = "config"
LIMIT = 16 << 20  # bytes: a larger file is data, not configuration
EXTRA_LIMIT = 64 << 20  # bytes of what the stacks mount or build from, all together
SQLITE = (".sqlite", ".sqlite3", ".db")


@attrs.frozen
class Sent:
    """One configuration backup in one offsite repository."""

    target: str
    snapshot: str
    files: tuple[str, ...]
    bytes: int
    left_out: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


def passwords(state_dir: str) -> set[str]:
    """The password files of the state folder, which never go into a backup of it."""
    from opskit.offsite import password_file
    from opskit.store import PASSWORD_FILE

    return {password_file(state_dir), posixpath.join(state_dir, PASSWORD_FILE)}


def config_files(runtime: Runtime) -> tuple[list[str], list[str]]:
    """The root's configuration files (absolute paths, each once, in a stable order), and
    what was left out with why."""
    host, root = runtime.host, runtime.root
    settings = runtime.settings()
    wanted: list[str] = []
    if host.exists(posixpath.join(root, "opskit.yaml")):
        wanted.append(posixpath.join(root, "opskit.yaml"))
    state = runtime.stacks.compose_state()
    state_dir = settings.state_dir
    secret = passwords(state_dir)
    left_out = [f"{path}: a password, never in a backup it opens" for path in sorted(secret)]
    needed: dict[str, list[str]] = {}  # what the stacks mount or build from -> data beneath
    for project in runtime.projects():
        wanted.append(project.path)
        for identity in state.stacks:
            if identity.project != project.name or not identity.present:
                continue
            wanted += identity.files
            if identity.env_file:
                wanted.append(identity.env_file)
            dotenv = posixpath.join(identity.dir, ".env")
            if host.exists(dotenv):
                wanted.append(dotenv)
            data = data_of(project, identity.env, state_dir)
            try:
                config = stack_config(host, project, identity)
            except OpskitError as exc:  # its compose and env files are in all the same
                left_out.append(f"what {project.name} {identity.env} mounts: {exc}")
                continue
            for source in needs(config):
                if _within(source, root) and not any(_within(source, d) for d in data):
                    needed.setdefault(source, []).extend(data)
    extra, skipped = _files_beneath(host, needed)
    wanted += extra
    left_out += skipped
    if host.exists(state_dir):
        for name in sorted(host.listdir(state_dir)):
            path = posixpath.join(state_dir, name)
            if path in secret or name.endswith(("-wal", "-shm", "-journal")):
                continue
            wanted.append(path)
    files = []
    for path in dict.fromkeys(wanted):
        if not host.exists(path):
            left_out.append(f"{path}: not there")
            continue
        files.append(path)
    return files, left_out


def needs(config: Mapping[str, Any]) -> list[str]:
    """What a stack's compose ``config`` reads from the host besides its compose files:
    bind-mounted files and folders, build contexts, services' env files (absolute)."""
    found: list[str] = []
    for service in (config.get("services") or {}).values():
        service = service if isinstance(service, Mapping) else {}
        for volume in service.get("volumes") or []:
            if isinstance(volume, Mapping):
                if volume.get("type") == "bind" and volume.get("source"):
                    found.append(str(volume["source"]))
            elif isinstance(volume, str) and volume.startswith(("/", ".")):
                found.append(volume.split(":")[0])  # compose v1: SOURCE:TARGET[:MODE]
        build = service.get("build")
        context = build.get("context") if isinstance(build, Mapping) else build
        if isinstance(context, str) and context.startswith("/"):
            found.append(context)
        env_files = service.get("env_file") or []
        for entry in [env_files] if isinstance(env_files, str) else env_files:
            path = entry.get("path") if isinstance(entry, Mapping) else entry
            if isinstance(path, str) and path.startswith("/"):
                found.append(path)
    return sorted({posixpath.normpath(p) for p in found if p.startswith("/")})


def data_of(project: Project, env: str, state_dir: str) -> list[str]:
    """What a restore brings back or opskit keeps apart: the env's backup paths and
    folder, the state folder. Never part of the configuration."""
    found = [state_dir]
    if project.backup is not None:
        found += [project.resolve_path(p, env) for p in project.backup.paths]
        found.append(project.resolve_path(project.backup.dir, env))
    return found


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _files_beneath(host: Host, needed: dict[str, list[str]]) -> tuple[list[str], list[str]]:
    """The regular files in the folders (or the files) of *needed*, without those under
    its data, ``.git`` folders or files over :data:`LIMIT`; at most :data:`EXTRA_LIMIT`
    bytes in all (a larger source is left out whole, named)."""
    if not needed:
        return [], []
    sources = sorted(needed)
    listed = host.run(
        ["find", *sources, "-xdev", "-name", ".git", "-prune", "-o", "-type", "f",
         "-printf", "%s\t%p\n"],
        check=False,
    ).text  # fmt: skip
    by_source: dict[str, list[tuple[int, str]]] = {}
    for line in listed.splitlines():
        bytes_text, _, path = line.partition("\t")
        source = next((s for s in sources if _within(path, s)), None)
        if source is None or not bytes_text.isdigit():
            continue
        if any(_within(path, d) for d in needed[source]):
            continue
        by_source.setdefault(source, []).append((int(bytes_text), path))
    files, left_out, total = [], [], 0
    for source in sources:
        found = by_source.get(source, [])
        big = [path for size, path in found if size > LIMIT]
        left_out += [f"{path}: over {LIMIT >> 20} MiB, not configuration" for path in big]
        size = sum(n for n, path in found if n <= LIMIT)
        if total + size > EXTRA_LIMIT:
            left_out.append(
                f"{source}: {size >> 20} MiB that the stacks mount or build from, over the "
                f"{EXTRA_LIMIT >> 20} MiB a configuration backup takes (keep it in git or "
                "in backup.paths)"
            )
            continue
        total += size
        files += sorted(path for n, path in found if n <= LIMIT)
    return files, left_out


def _content(runtime: Runtime, path: str) -> bytes | None:
    """The bytes of *path* on the host (None: not a regular file or larger than
    :data:`LIMIT`); a local SQLite database through SQLite's backup, consistent."""
    host = runtime.host
    if path.endswith(SQLITE) and host.name == "local":
        import sqlite3

        try:
            source = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
            try:
                copy = source.serialize()
            finally:
                source.close()
        except sqlite3.Error:
            copy = None
        if copy is not None:
            return copy if len(copy) <= LIMIT else None
    try:
        with host.open_regular(path) as stream:
            data = stream.read(LIMIT + 1)
    except (OSError, OpskitError):
        return None
    return data if len(data) <= LIMIT else None


def tar_of(runtime: Runtime, files: list[str]) -> tuple[bytes, list[str], list[str]]:
    """The tar of *files* (names without the leading ``/``), the files in it, and those
    left out with why."""
    buffer = io.BytesIO()
    kept, left_out = [], []
    moment = int(time.time())
    modes = _modes(runtime, files)
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in files:
            data = _content(runtime, path)
            if data is None:
                left_out.append(f"{path}: unreadable, not a file, or over {LIMIT >> 20} MiB")
                continue
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size, info.mode, info.mtime = len(data), modes.get(path, 0o600), moment
            tar.addfile(info, io.BytesIO(data))
            kept.append(path)
    return buffer.getvalue(), kept, left_out


def _modes(runtime: Runtime, files: list[str]) -> dict[str, int]:
    """Each file's permission bits, as a rebuild lays it out again (0600 when unknown)."""
    if not files:
        return {}
    listed = runtime.host.run(["stat", "-c", "%a %n", "--", *files], check=False).text
    modes = {}
    for line in listed.splitlines():
        mode, _, path = line.partition(" ")
        if mode.isdigit():
            modes[path] = int(mode, 8) & 0o777
    return modes


def targets(runtime: Runtime) -> list[str]:
    """Every offsite target the root's projects copy to, each once."""
    settings = runtime.settings()
    found = [
        offsite.target
        for project in runtime.projects()
        if (offsite := settings.offsite_for(project)) is not None
    ]
    if not found and settings.offsite.target:
        found.append(settings.offsite.target)
    return list(dict.fromkeys(found))


def send(runtime: Runtime) -> list[Sent]:
    """Back the root's configuration up into every offsite repository it uses."""
    from opskit.offsite import OffsiteError, connect

    where = targets(runtime)
    if not where:
        raise OffsiteError(
            "no offsite target: the configuration goes where the archives go "
            "(offsite.target in opskit.yaml or a descriptor)"
        )
    files, left_out = config_files(runtime)
    data, kept, unread = tar_of(runtime, files)
    sent = []
    for target in where:
        restic = connect(runtime, target)
        summary = restic.send(io.BytesIO(data), FILENAME, tags(runtime), lambda: len(data))
        written = str(summary.get("snapshot_id") or "")
        # restic's tag (complete) rewrote the snapshot, and the new one names it as its
        # original; restic 0.14's summary gives the short ID
        snapshot = next(
            (
                str(s.get("id"))
                for s in restic.snapshots(*tags(runtime))
                if written
                and any(str(s.get(key) or "").startswith(written) for key in ("original", "id"))
            ),
            written,
        )
        sent.append(Sent(target, snapshot, tuple(kept), len(data), tuple(left_out + unread)))
    return sent


def tags(runtime: Runtime) -> list[str]:
    return ["opskit", TAG, f"root={runtime.root}"]


def listing(runtime: Runtime, target: str) -> list[dict[str, Any]]:
    """The configuration backups of this root in *target*, newest first."""
    from opskit.offsite import connect
    from opskit.restic import COMPLETE

    snapshots = connect(runtime, target).snapshots(*tags(runtime))
    whole = [s for s in snapshots if COMPLETE in (s.get("tags") or [])]
    return sorted(whole, key=lambda s: str(s.get("time")), reverse=True)
