"""What a backup is made of: components that stream their data out and back in.

A plugin contributes components through ``opskit_backup_components``; the core owns
everything around them (archive, compression, checksums, locking, retention, restore
orchestration, drills). A component only knows how to produce its raw byte stream
(``dump``), how to consume the same stream again (``restore``) and, optionally, how to
prove in a throw-away place that an archived stream restores (``drill``). The engines
never ask which class a component is.
"""

from __future__ import annotations

import contextlib
import io
import posixpath
import re
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any, ClassVar

import attrs

from opskit import databases

# Defined in opskit.contracts (the types plugins and engines share); re-exported here.
from opskit.contracts import BackupContext as BackupContext
from opskit.contracts import Component as Component
from opskit.contracts import DrillContext as DrillContext
from opskit.contracts import NotDrilled as NotDrilled
from opskit.contracts import StreamLedger as StreamLedger
from opskit.dumps import DumpLedger, TarLedger
from opskit.errors import NotFoundError, OpskitError
from opskit.execstream import exec_input, exec_output
from opskit.processes import reaped_on_error

if TYPE_CHECKING:
    from opskit.archive import ComponentRecord
    from opskit.descriptor import Database, Project
    from opskit.host import Host, Process


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.") or "root"


CHUNK = 1 << 20
# Chunks in flight between the thread that reads and the one that writes: bounded memory.
DEPTH = 4


def _pump(
    source: IO[bytes],
    process: Process,
    *,
    ledger: StreamLedger | None = None,
    abort: Callable[[], None] | None = None,
) -> None:
    """Copy *source* into the process's stdin, then close it.

    A separate thread writes, so reading (and whatever *source* computes, such as the
    sync transform) overlaps with the process consuming its input. A *ledger* sees every
    chunk on the way and may change it. On an interruption or error *abort* runs first
    (stopping the consumer where it runs), then the process is killed.
    """
    import queue
    import threading

    assert process.stdin is not None
    stdin = process.stdin
    chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=DEPTH)

    def write() -> None:
        broken = False
        while (chunk := chunks.get()) is not None:
            if broken:
                continue  # keep taking chunks so the reader never blocks
            try:
                stdin.write(chunk)
            except (BrokenPipeError, OSError):
                broken = True  # the process ended early; its exit status tells why
        with contextlib.suppress(BrokenPipeError, OSError):
            stdin.close()

    writer = threading.Thread(target=write, name="opskit-pump", daemon=True)
    writer.start()
    try:
        while chunk := source.read(CHUNK):
            if ledger is not None:
                chunk = ledger.feed(chunk)
            if chunk:
                chunks.put(chunk)
        if ledger is not None and (rest := ledger.finish()):
            chunks.put(rest)
    except BaseException:
        # Interrupted or failed half way: the process must not take a cut-off stream
        # for a complete one (an end of input would make a loader commit what it has).
        try:
            if abort is not None:
                abort()
        finally:
            process.kill()
        raise
    finally:
        chunks.put(None)
        writer.join()


class Prefetched(io.RawIOBase):
    """*raw* read ahead by a thread, a few chunks at most, so its producer never waits."""

    def __init__(self, raw: IO[bytes]) -> None:
        import queue
        import threading

        super().__init__()
        self._chunks: queue.Queue[bytes | BaseException] = queue.Queue(maxsize=DEPTH)
        self._buffer = b""
        self._done = False
        self._thread = threading.Thread(target=self._fetch, args=(raw,), daemon=True)
        self._thread.start()

    def _fetch(self, raw: IO[bytes]) -> None:
        try:
            while chunk := raw.read(CHUNK):
                self._chunks.put(chunk)
            self._chunks.put(b"")
        except BaseException as exc:  # handed to the reading thread
            self._chunks.put(exc)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if not self._buffer and not self._done and size >= CHUNK:
            item = self._chunks.get()  # a whole chunk, handed on without a copy
            if isinstance(item, BaseException):
                raise item
            self._done = not item
            return item
        while not self._done and (size < 0 or len(self._buffer) < size):
            item = self._chunks.get()
            if isinstance(item, BaseException):
                raise item
            if not item:
                self._done = True
            self._buffer += item
        if size < 0:
            size = len(self._buffer)
        out, self._buffer = self._buffer[:size], self._buffer[size:]
        return out


@attrs.frozen
class DatabaseDump(Component):
    """A MariaDB/MySQL or PostgreSQL database, dumped with the container's own client."""

    database: Database  # its service expanded for the env
    template: str = ""  # the service as the descriptor wrote it (``db-{env}``): equal across envs
    kind: ClassVar[str] = "database"
    extension: ClassVar[str] = "sql"

    @property
    def key(self) -> str:
        service = self.template or self.database.service
        return f"db-{_slug(service)}-{_slug(self.database.name)}"

    def describe(self) -> dict[str, Any]:
        db = self.database
        return {
            "service": db.service,
            "type": db.type,
            "name": db.name,
            "user": databases.default_user(db),
        }

    def dump(self, context: BackupContext) -> Process:
        container = context.running_container(self.database.service).name
        command = databases.client_command(databases.dump_script(self.database), self.database)
        return exec_output(context.host, container, command)

    def ledger(self) -> DumpLedger:
        return DumpLedger(self.database.type)

    @property
    def restores_through(self) -> str:
        return self.database.service

    def restore(
        self, context: BackupContext, source: IO[bytes], record: ComponentRecord | None = None
    ) -> None:
        """Load the dump, then prove the load complete: the client's own exit status, and
        every table of the dump with as many rows as the dump holds (and, given the
        manifest's *record*, as many as the backup counted).

        MariaDB/MySQL loads run in strict mode: a value that does not fit its column fails
        the load, naming table, column and row, instead of being cut. An interruption stops
        the client inside the container before the stream ends, so that it never commits
        a partial load."""
        database = self.database
        container = context.running_container(database.service).name
        command = databases.client_command(databases.restore_script(database), database)
        ledger = DumpLedger(database.type, strict=True)
        process = exec_input(context.host, container, command)
        report = _LoadReport(process.stdout)

        def stop_inside() -> None:
            if report.pids:
                context.host.run(
                    ["docker", "exec", container, "sh", "-c", databases.KILL_SCRIPT,
                     "opskit", *report.pids],
                    check=False, timeout=30,
                )  # fmt: skip

        _pump(source, process, ledger=ledger, abort=stop_inside)
        try:
            code = process.wait()
        except BaseException:  # interrupted while the client takes the last of the stream
            stop_inside()
            process.kill()
            raise
        report.thread.join()
        if code != 0 or report.status != 0:
            if report.status not in (None, 0):
                code = report.status
            elif code == 0:
                raise OpskitError(
                    f"{database.type} {database.name} in {container}: the database client "
                    "ended without reporting its exit status; the load is incomplete"
                )
            raise databases.client_error(
                database, container, code, process.errors(), explain=ledger.explain
            )
        recorded = record.details.get("rows") if record is not None else None
        self._check_rows(context, container, ledger.rows, recorded)

    def drill(self, context: DrillContext, source: IO[bytes], record: ComponentRecord) -> None:
        """Load the dump into a throw-away copy of the env's database server (same image,
        command, variables and read-only mounts; a fresh volume where it writes; no
        network) by the code of a real restore, which checks the client's exit status and
        every table with the row count the backup recorded."""
        from opskit.containers import Placement

        live, service = context.live, self.database.service
        host = live.host
        found = [p.container for p in live.placements if p.service == service and p.container]
        if not found:
            raise NotFoundError(
                f"{live.project.name} {live.env}: no container for service {service!r}"
            )
        server = databases.start_copy(
            host, found[0], self.database, context.name(self.key), context.label
        )
        databases.wait_ready(host, server, self.database)
        throwaway = Placement(live.project.name, live.env, service, "drill", server)
        self.restore(BackupContext(host, live.project, live.env, (throwaway,)), source, record)
        if record.details.get("rows") is None:
            context.warn(f"{self.key}: the archive records no row counts (made by an older opskit)")

    def _check_rows(
        self,
        context: BackupContext,
        container: str,
        streamed: dict[str, int],
        recorded: dict[str, int] | None,
    ) -> None:
        loaded = databases.table_rows(context.host, container, self.database)
        wrong = []
        for table, rows in sorted((recorded or streamed).items()):
            if table not in loaded:
                wrong.append(f"table {table} is missing")
            elif loaded[table] != rows:
                source = "the backup recorded" if recorded else "the dump holds"
                wrong.append(f"table {table} has {loaded[table]} rows, {source} {rows}")
        if recorded:
            wrong += [
                f"table {table} is not in the backup's record"
                for table in streamed
                if table not in recorded
            ]
        if wrong:
            shown = "; ".join(wrong[:3]) + (
                f" (and {len(wrong) - 3} more)" if len(wrong) > 3 else ""
            )
            raise OpskitError(
                f"{self.database.type} {self.database.name} in {container}: the load is "
                f"incomplete: {shown}"
            )


class _LoadReport:
    """Reads the lines a load script prints (see :data:`opskit.databases.PID_LINE`)."""

    def __init__(self, stdout: IO[bytes]) -> None:
        import threading

        self.pids: list[str] = []
        self.status: int | None = None
        self.thread = threading.Thread(target=self._read, args=(stdout,), daemon=True)
        self.thread.start()

    def _read(self, stdout: IO[bytes]) -> None:
        for raw in iter(stdout.readline, b""):
            word, _, value = raw.decode("ascii", "replace").strip().partition(" ")
            if word == databases.PID_LINE and value.isdigit():
                self.pids.insert(0, value)  # the client first, then its shell
            elif word == databases.STATUS_LINE and value.isdigit():
                self.status = int(value)


def _tar_create(host: Host, directory: str, member: str) -> Process:
    argv = [
        "tar",
        "--create",
        "--file=-",
        "--numeric-owner",
        "--directory",
        directory,
        "--",
        member,
    ]
    return host.popen(argv, merge_stderr=False)


def _untar(host: Host, source: IO[bytes], directory: str, members: list[str]) -> tuple[int, str]:
    """Stream a tar into the existing *directory* (with *members*, those alone, matched
    literally, folders with their contents); the exit status and what tar said."""
    argv = [
        "tar",
        "--extract",
        "--file=-",
        "--numeric-owner",
        "--same-permissions",
        "--directory",
        directory,
    ]
    if members:
        argv += ["--no-wildcards", "--", *members]
    process = host.popen(argv, stdin=True, merge_stderr=False)
    # Interrupted even once tar has its whole input, it must not go on writing into a
    # staging folder that putting back is about to use.
    with reaped_on_error(process):
        _pump(source, process)
        process.stdout.read()
        code = process.wait()
    return code, process.errors().strip()


def _extract(host: Host, source: IO[bytes], staging: str, what: str) -> None:
    """Extract a tar stream into a fresh *staging* folder; on failure remove it and raise."""
    host.run(["rm", "-rf", "--", staging])
    host.run(["mkdir", "-p", "--", staging])
    code, errors = _untar(host, source, staging, [])
    if code != 0:
        host.run(["rm", "-rf", "--", staging], check=False)
        raise OpskitError(f"restoring {what} failed: {errors}")


def extract_member(
    host: Host, source: IO[bytes], member: str, directory: str, name: str, overwrite: bool
) -> str:
    """Extract *member* (a file or folder) of the tar stream *source* into *directory*
    (created if missing) as *name*; return its path. Nothing is written outside
    *directory*: tar keeps every name inside a private staging folder there, and a
    member that is a link, or holds one leading out of it, is refused. An existing
    *name* is replaced only with *overwrite*. A member the stream lacks: NotFoundError."""
    target = posixpath.join(directory, name)
    host.run(["mkdir", "-p", "--", directory])
    _refuse_existing(host, target, overwrite)
    staging = host.run(["mktemp", "-d", "-p", directory, ".opskit-extract-XXXXXX"]).text.strip()
    if posixpath.dirname(staging) != posixpath.normpath(directory):
        raise OpskitError(f"cannot make a staging folder in {directory} ({staging!r})")
    try:
        code, errors = _untar(host, source, staging, [member])
        extracted = posixpath.normpath(posixpath.join(staging, member))
        if not _present(host, extracted):
            raise NotFoundError(f"the archive holds no {member}")
        if code != 0:
            raise OpskitError(f"tar failed: {errors}")
        if found := link_out(host, extracted):
            path, link = found
            raise OpskitError(
                f"refused: {refusal(path, link)}"
                if path
                else f"refused: {member} is a link (to {link})"
            )
        _refuse_existing(host, target, overwrite)
        script = (
            'new=$1; target=$2; old=$3\n'
            'if [ -e "$target" ] || [ -L "$target" ]; then mv -T -- "$target" "$old" || exit 1; fi\n'
            'if ! mv -T -- "$new" "$target"; then\n'
            '  if [ -e "$old" ] || [ -L "$old" ]; then mv -T -- "$old" "$target"; fi; exit 1\n'
            'fi\n'
        )  # fmt: skip
        old = f"{staging}.old"  # beside the staging folder: a whole tree is the folder itself
        moved = host.run(["sh", "-c", script, "opskit", extracted, target, old], check=False)
        if moved.returncode != 0:
            detail = moved.stderr.decode("utf-8", "replace").strip()
            raise OpskitError(f"cannot put {target} in place: {detail}")
    finally:
        host.run(["rm", "-rf", "--", staging, f"{staging}.old"], check=False)
    return target


def _present(host: Host, path: str) -> bool:
    """Whether *path* exists, a dangling link included."""
    script = '[ -e "$1" ] || [ -L "$1" ]'
    return host.run(["sh", "-c", script, "opskit", path], check=False).returncode == 0


def _refuse_existing(host: Host, target: str, overwrite: bool) -> None:
    if not overwrite and _present(host, target):
        raise OpskitError(f"{target} exists; give --overwrite to replace it")


def swap_in(host: Host, source: IO[bytes], target: str, what: str) -> None:
    """Extract a tar stream beside *target*, then swap it in; a failure leaves *target* as it was."""
    parent, name = posixpath.split(target.rstrip("/"))
    staging = posixpath.join(parent, f".opskit-restore-{name}")
    old = posixpath.join(parent, f".opskit-old-{name}")
    host.run(["rm", "-rf", "--", old])
    _extract(host, source, staging, what)
    try:
        _refuse_links_out(host, posixpath.join(staging, name), what)
    except OpskitError:
        host.run(["rm", "-rf", "--", staging], check=False)
        raise
    # The live folder is moved aside only once the new one is ready, and moved back
    # if the new one cannot take its place.
    script = (
        'staging=$1; target=$2; old=$3; name=$4; moved=0\n'
        'if [ ! -e "$staging/$name" ]; then rm -rf -- "$staging"; echo "the archive holds no $name" >&2; exit 1; fi\n'
        'if [ -e "$target" ] || [ -L "$target" ]; then\n'
        '  if ! mv -- "$target" "$old"; then\n'
        '    rm -rf -- "$staging"; echo "$target was left as it was" >&2; exit 1\n'
        '  fi\n'
        '  moved=1\n'
        'fi\n'
        'if ! mv -- "$staging/$name" "$target"; then\n'
        '  if [ $moved = 1 ]; then mv -- "$old" "$target"; fi\n'
        '  rm -rf -- "$staging"; echo "$target was left as it was" >&2; exit 1\n'
        'fi\n'
        'rm -rf -- "$old" "$staging"\n'
    )  # fmt: skip
    result = host.run(["sh", "-c", script, "opskit", staging, target, old, name], check=False)
    if result.returncode != 0:
        lines = result.stderr.decode("utf-8", "replace").strip().splitlines()
        raise OpskitError(f"restoring {what} failed: {'; '.join(lines)}")


def leads_out(path: str, target: str) -> bool:
    """Whether a restore refuses a link at *path* (relative to the restored tree; "" is the
    tree itself) that leads to *target*: a restored tree must not be a link, nor hold one
    that leads out of it (a later sync or restore would write through it elsewhere)."""
    if path in ("", "."):
        return True
    landing = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
    return target.startswith("/") or landing == ".." or landing.startswith("../")


def refusal(path: str, target: str) -> str:
    """Why a restore refuses the link of :func:`leads_out`."""
    if path in ("", "."):
        return "the archive's top-level folder is a link"
    return f"the link {path} leads out of it (to {target})"


def link_out(host: Host, tree: str) -> tuple[str, str] | None:
    """The first link in *tree* (a file or folder, itself included) that a restore refuses,
    as (path in the tree, target), or None."""
    script = (
        '[ -L "$1" ] && printf "\\t%s\\n" "$(readlink -- "$1")"; '
        'find "$1" -type l -printf "%P\\t%l\\n"; true'
    )
    listing = host.run(["sh", "-c", script, "opskit", tree], check=False).text
    for line in listing.splitlines():
        path, _, target = line.partition("\t")
        if leads_out(path, target):
            return path, target
    return None


def _refuse_links_out(host: Host, tree: str, what: str) -> None:
    """Refuse a restored tree that is a link, or holds one that leads out of it."""
    if found := link_out(host, tree):
        raise OpskitError(f"restoring {what} refused: {refusal(*found)}")


class NotTree(OpskitError):
    """A tree component that cannot be read as a folder here (its stream still can)."""


class TarTree(Component):
    """Files carried as a tar stream, counted by their ledger (:class:`TarLedger`)."""

    extension: ClassVar[str] = "tar"

    def ledger(self) -> TarLedger:
        return TarLedger()

    def tree_folder(self, context: BackupContext) -> str | None:
        """The file or folder a store that keeps trees reads itself (instead of the
        stream of :meth:`dump`); None when there is none (the stream is kept), and
        :class:`NotTree` when there is one that cannot be read as a tree here."""
        return None

    def drill(self, context: DrillContext, source: IO[bytes], record: ComponentRecord) -> None:
        """Extract the stream into a scratch folder and count its regular files and their
        bytes (a file with several links once) against what the backup recorded."""
        host = context.live.host
        host.run(["mkdir", "-p", "-m", "700", "--", context.scratch])
        target = posixpath.join(context.scratch, self.key)
        _extract(host, source, target, f"{self.key} into a scratch folder")
        listing = host.run(
            ["find", target, "-type", "f", "-printf", "%i %s\\n"], check=False, timeout=600
        ).text
        inodes = {line.split()[0]: int(line.split()[1]) for line in listing.splitlines() if line}
        files, size = len(inodes), sum(inodes.values())
        expected_files, expected_bytes = record.details.get("files"), record.details.get("bytes")
        if expected_files is None:
            context.warn(
                f"{self.key}: the archive records no file counts (made by an older opskit)"
            )
            return
        if (files, size) != (expected_files, expected_bytes):
            raise OpskitError(
                f"extracted {files} files of {size} bytes, the backup recorded "
                f"{expected_files} files of {expected_bytes} bytes"
            )


@attrs.frozen
class PathTree(TarTree):
    """A file or folder on the host, as a tar stream (modes and numeric owners kept)."""

    path: str  # absolute
    label: str  # as the descriptor wrote it, expanded for the env
    template: str = ""  # the same before expansion: equal across envs
    kind: ClassVar[str] = "path"

    @property
    def key(self) -> str:
        return f"path-{_slug(self.label)}"

    @property
    def sync_key(self) -> str:
        return f"path-{_slug(self.template or self.label)}"

    def location(self, context: BackupContext, create: bool = False) -> str | None:
        if create:
            context.host.run(["mkdir", "-p", "--", self.path])
        return self.path

    def describe(self) -> dict[str, Any]:
        return {"path": self.path}

    def tree_member(self, inside: str) -> str:
        name = posixpath.basename(self.path.rstrip("/"))
        return posixpath.join(name, inside) if inside else name

    def dump(self, context: BackupContext) -> Process:
        """The tar stream of the path; refused when a restore of it would be refused (the
        path is a link, or holds one that leads out of it): no archive is written that
        cannot be restored."""
        parent, name = posixpath.split(self.tree_folder(context))
        return _tar_create(context.host, parent or "/", name)

    def tree_folder(self, context: BackupContext) -> str:
        """The path, to be read as a tree (``restic backup``) where the store keeps trees;
        refused as :meth:`dump` refuses it."""
        where = f"{context.project.name} {context.env}: backup path {self.path}"
        if not context.host.exists(self.path):
            raise NotFoundError(f"{where} does not exist")
        if found := link_out(context.host, self.path.rstrip("/")):
            path, target = found
            if path:
                raise OpskitError(
                    f"{where} holds the link {path}, which leads out of it (to {target}); "
                    "a restore would refuse it"
                )
            raise OpskitError(
                f"{where} is a link (to {target}); a restore would refuse it: "
                "name the folder it leads to in backup.paths"
            )
        return self.path.rstrip("/") or "/"

    def restore(
        self, context: BackupContext, source: IO[bytes], record: ComponentRecord | None = None
    ) -> None:
        swap_in(context.host, source, self.path.rstrip("/"), self.path)


@attrs.frozen
class VolumeTree(TarTree):
    """A named Docker volume's files, read from its mount point on the host."""

    volume: str
    template: str = ""  # the descriptor's name before expansion, or service:mount path
    kind: ClassVar[str] = "volume"

    @property
    def key(self) -> str:
        return f"volume-{_slug(self.volume)}"

    @property
    def sync_key(self) -> str:
        return f"volume-{_slug(self.template or self.volume)}"

    def location(self, context: BackupContext, create: bool = False) -> str | None:
        return self.mountpoint(context, create=create)

    def describe(self) -> dict[str, Any]:
        return {"volume": self.volume}

    def tree_member(self, inside: str) -> str:
        return f"./{inside}" if inside else "."

    def mountpoint(self, context: BackupContext, create: bool = False) -> str:
        from opskit.host import docker_sdk

        docker = docker_sdk()
        client = context.host.docker()
        try:
            return str(client.inspect_volume(self.volume)["Mountpoint"])
        except docker.errors.NotFound:
            if not create:
                raise NotFoundError(
                    f"{context.project.name} {context.env}: volume {self.volume} does not exist"
                ) from None
        client.create_volume(self.volume)
        return str(client.inspect_volume(self.volume)["Mountpoint"])

    def dump(self, context: BackupContext) -> Process:
        return _tar_create(context.host, self.mountpoint(context), ".")

    def tree_folder(self, context: BackupContext) -> str:
        """The volume's mount point, to be read as a tree (``restic backup`` of it from
        its parent, so the tree's root keeps the mount point's mode and owner); a
        volume whose driver is not ``local``, or whose mount point this user cannot
        read, raises :class:`NotTree` (the store then keeps its stream)."""
        mountpoint = self.mountpoint(context)  # NotFoundError when the volume is gone
        driver = context.host.docker().inspect_volume(self.volume).get("Driver")
        if driver != "local" or not mountpoint.startswith("/"):
            raise NotTree(f"volume {self.volume} has the driver {driver!r}, not 'local'")
        readable = ["sh", "-c", '[ -d "$1" ] && [ -r "$1" ] && [ -x "$1" ]', "opskit", mountpoint]
        if context.host.run(readable, check=False).returncode != 0:
            raise NotTree(f"the mount point {mountpoint} of volume {self.volume} is not readable")
        return mountpoint.rstrip("/")

    def restore(
        self, context: BackupContext, source: IO[bytes], record: ComponentRecord | None = None
    ) -> None:
        mountpoint = self.mountpoint(context, create=True).rstrip("/")
        # The mount point itself stays (Docker owns it): its contents are swapped.
        parent = posixpath.dirname(mountpoint)
        staging = posixpath.join(parent, ".opskit-restore")
        host = context.host
        _extract(host, source, staging, f"volume {self.volume}")
        script = (
            'set -e; staging=$1; target=$2\n'
            'find "$target" -mindepth 1 -maxdepth 1 -exec rm -rf -- {} +\n'
            'find "$staging" -mindepth 1 -maxdepth 1 -exec mv -- {} "$target"/ \\;\n'
            'chmod --reference="$staging" "$target"; chown --reference="$staging" "$target"\n'
            'rmdir -- "$staging"\n'
        )  # fmt: skip
        host.run(["sh", "-c", script, "opskit", staging, mountpoint])


def from_record(record: ComponentRecord) -> Component | None:
    """The built-in tree (a path or a volume) that a manifest *record* describes, as the
    archive wrote it: what ``extract`` reads an archive with when the env is down or its
    folders are gone. None for other kinds: the plugins know them."""
    details = record.details
    if record.kind == PathTree.kind and details.get("path"):
        return PathTree(str(details["path"]), "")
    if record.kind == VolumeTree.kind and details.get("volume"):
        return VolumeTree(str(details["volume"]))
    return None


def service_data(context: BackupContext, service: str) -> list[Component]:
    """The data of a service: the writable named volumes and bind-mounted folders of its
    containers (read-only mounts, files and sockets are configuration, not data)."""
    found: list[Component] = []
    client = context.host.docker()
    for placement in context.placements:
        if placement.service != service or placement.container is None:
            continue
        for mount in client.inspect_container(placement.container.id).get("Mounts") or []:
            if not mount.get("RW", True):
                continue
            origin = f"{service}:{mount.get('Destination', '')}"
            if mount.get("Type") == "volume" and mount.get("Name"):
                found.append(VolumeTree(mount["Name"], origin))
            elif mount.get("Type") == "bind":
                source = str(mount.get("Source", ""))
                if context.host.run(["test", "-d", source], check=False).returncode == 0:
                    label = (
                        posixpath.relpath(source, context.project.folder)
                        if source.startswith(context.project.folder + "/")
                        else source
                    )
                    found.append(PathTree(source, label, origin))
    return found


def container_database(context: BackupContext, service: str, kind: str) -> DatabaseDump | None:
    """The database a service's container was created for, read from its environment
    (``POSTGRES_DB``/``POSTGRES_USER`` or ``MYSQL_DATABASE``/``MARIADB_DATABASE``). Only
    variable names are kept: the password stays in the container."""
    from opskit.descriptor import Database

    for placement in context.placements:
        if placement.service != service or placement.container is None:
            continue
        config = context.host.docker().inspect_container(placement.container.id).get("Config") or {}
        env = dict(item.split("=", 1) for item in config.get("Env") or [] if "=" in item)
        if kind == "postgres":
            name = env.get("POSTGRES_DB") or env.get("POSTGRES_USER") or "postgres"
            user = env.get("POSTGRES_USER") or "postgres"
            password = "POSTGRES_PASSWORD" if "POSTGRES_PASSWORD" in env else None
        else:
            name = env.get("MARIADB_DATABASE") or env.get("MYSQL_DATABASE") or ""
            user = "root"
            password = next(
                (v for v in ("MARIADB_ROOT_PASSWORD", "MYSQL_ROOT_PASSWORD") if v in env), None
            )
            if not name:
                return None
        return DatabaseDump(
            Database(service=service, type=kind, name=name, user=user, password_env=password)
        )
    return None


def undeclared_database(context: BackupContext, service: str, kind: str) -> DatabaseDump | None:
    """:func:`container_database`, unless the descriptor's ``backup.databases`` already
    names a database of that kind on that service (then the generic plugin covers it)."""
    types = ("postgres",) if kind == "postgres" else databases.MARIADB_TYPES
    backup = context.project.backup
    project, env = context.project, context.env
    if backup and any(
        project.expand(db.service, env) == service and db.type in types for db in backup.databases
    ):
        return None
    return container_database(context, service, kind)


def existing_path(context: BackupContext, template: str) -> PathTree | None:
    """A descriptor-relative folder as a component, if it exists for this env."""
    project, env = context.project, context.env
    path = project.resolve_path(template, env)
    if context.host.run(["test", "-d", path], check=False).returncode != 0:
        return None
    return PathTree(path, project.expand(template, env), template)


def descriptor_components(project: Project, env: str) -> list[Component]:
    """The components a descriptor's ``backup:`` section names for one env."""
    backup = project.backup
    if backup is None:
        return []
    found: list[Component] = [
        DatabaseDump(attrs.evolve(db, service=project.expand(db.service, env)), db.service)
        for db in backup.databases
    ]
    found += [
        PathTree(project.resolve_path(path, env), project.expand(path, env), path)
        for path in backup.paths
    ]
    found += [VolumeTree(project.expand(volume, env), volume) for volume in backup.volumes]
    return found
