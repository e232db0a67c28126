"""Backup archives: a folder per backup, a manifest and one zstd file per component.

Layout (documented for restoring by hand in docs/archive-format.md)::

    {backup.dir}/{project}/{env}/{project}-{env}-{YYYYMMDDTHHMMSSZ}/
        manifest.json
        db-db-wordpress.sql.zst
        path-prod-wp-content-uploads.tar.zst
        volume-mdf-prod_db_data.tar.zst
        verified.json          (written by verify)

An archive is written as ``.{name}.partial`` and renamed to its name only when every
file is complete and flushed to disk, so a folder without the dot is always complete.
With ``backup.store: restic`` the same archive is a set of snapshots instead
(:mod:`opskit.store`); an :class:`Archive` then carries its repository and snapshots, and
reading it back (:func:`component_stream`, :func:`verify`) is ``restic dump``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import posixpath
import re
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any

import attrs

# Defined in opskit.contracts (what a component's restore is given); re-exported here.
from opskit.contracts import ComponentRecord as ComponentRecord
from opskit.errors import OpskitError
from opskit.processes import reaped_on_error

if TYPE_CHECKING:
    from opskit.components import BackupContext, Component
    from opskit.host import Host
    from opskit.restic import Restic

FORMAT = "opskit-archive/1"
MANIFEST = "manifest.json"
VERIFIED = "verified.json"
DRILLED = "drill.json"
OFFSITE = "offsite.json"  # the last verification of the archive's offsite copy
TREE = "tree"  # a record's details["stored_as"] for a component kept as a restic tree
STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
NAME_RE = re.compile(
    r"(?P<project>[a-z0-9][a-z0-9-]*)-(?P<env>[a-z0-9][a-z0-9-]*)-(?P<stamp>\d{8}T\d{6}Z)\Z"
)
CHUNK = 1 << 20
ZSTD_LEVEL = 3


class ArchiveError(OpskitError):
    """An archive is missing, damaged or not what was asked for."""


def stamp(moment: datetime) -> str:
    """The UTC timestamp in archive names; the one date format of archives."""
    return moment.astimezone(UTC).strftime(STAMP_FORMAT)


def parse_stamp(text: str) -> datetime:
    return datetime.strptime(text, STAMP_FORMAT).replace(tzinfo=UTC)


def check_name(name: str) -> str:
    """Reject names that are paths or not archive names."""
    if (
        "/" in name
        or "\\" in name
        or name in (".", "..")
        or ".." in name
        or not NAME_RE.match(name)
    ):
        raise ArchiveError(
            f"{name!r} is not an archive name (expected PROJECT-ENV-YYYYMMDDTHHMMSSZ)"
        )
    return name


@attrs.frozen
class Archive:
    """A complete archive folder and its manifest."""

    path: str
    manifest: dict[str, Any]
    verified: dict[str, Any] | None = None
    drilled: dict[str, Any] | None = None  # the last restore drill's result
    offsite: dict[str, Any] | None = None  # the last verification of its offsite copy
    staged_as: str | None = None  # the name of an archive still in its staging folder
    # In a restic store (``backup.store: restic``): the repository, and the snapshot of
    # each component (and of the manifest) by key; *path* is then the archive's state
    # folder (verified.json, drill.json, offsite.json), its data is in the snapshots.
    restic: Restic | None = attrs.field(default=None, kw_only=True, eq=False, repr=False)
    snapshots: Mapping[str, str] = attrs.field(factory=dict, kw_only=True, eq=False)

    @property
    def name(self) -> str:
        return self.staged_as or posixpath.basename(self.path)

    @property
    def store(self) -> str:
        """Where its data lives: ``folder`` or ``restic``."""
        return "folder" if self.restic is None else "restic"

    @property
    def location(self) -> str:
        """Where a user finds it: its folder, or the restic repository and its name."""
        return self.path if self.restic is None else f"{self.restic.target}:{self.name}"

    @property
    def created(self) -> datetime:
        return parse_stamp(NAME_RE.match(self.name).group("stamp"))  # type: ignore[union-attr]

    @property
    def size(self) -> int:
        return sum(int(c["stored_bytes"]) for c in self.manifest.get("components", []))

    @property
    def components(self) -> list[ComponentRecord]:
        return [ComponentRecord(**c) for c in self.manifest.get("components", [])]

    @property
    def only(self) -> tuple[str, ...]:
        """The component keys of a partial archive (the safety backup of ``restore
        --only``); empty for an archive of the whole env."""
        return tuple(str(key) for key in self.manifest.get("only") or ())

    def member(self, record: ComponentRecord) -> str:
        """The path of *record*'s file, which must be a plain name inside this archive's
        folder: a manifest never points elsewhere (``../../prod/…``)."""
        name = record.file
        if not name or "/" in name or name in (".", "..") or "\0" in name:
            raise ArchiveError(
                f"archive {self.name}: component {record.key} names {name!r}, "
                "which is not a file inside the archive"
            )
        return posixpath.join(self.path, name)

    @property
    def verified_state(self) -> str:
        if self.verified is None:
            return "never"
        return "ok" if self.verified.get("ok") else "FAILED"

    @property
    def offsite_state(self) -> str:
        if self.offsite is None:
            return "never"
        return "ok" if self.offsite.get("ok") else "FAILED"

    @property
    def drill_state(self) -> str:
        if self.drilled is None:
            return "never"
        return "ok" if self.drilled.get("ok") else "FAILED"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": self.path,
            "store": self.store,
            "location": self.location,
            "project": self.manifest.get("project"),
            "environment": self.manifest.get("environment"),
            "created": self.created.isoformat(),
            "size": self.size,
            "components": [c.key for c in self.components],
            "parts": [part_of(c) for c in self.components],
            "only": list(self.only),
            "verified": self.verified_state,
            "verified_at": (self.verified or {}).get("time"),
            "drilled": self.drill_state,
            "drilled_at": (self.drilled or {}).get("time"),
            "drill_faults": list((self.drilled or {}).get("faults") or []),
            "offsite": self.offsite_state,
            "offsite_target": (self.offsite or {}).get("target"),
            "offsite_verified_at": (self.offsite or {}).get("time"),
        }


def part_of(record: ComponentRecord) -> dict[str, Any]:
    """One component as the backups page shows it: its kind, bytes (as backed up and as
    stored), and the rows of a database or the files of a path or volume."""
    rows = record.details.get("rows")
    files = record.details.get("files")
    return {
        "key": record.key,
        "kind": record.kind,
        "bytes": record.raw_bytes,
        "stored_bytes": record.stored_bytes,
        "rows": sum(int(n) for n in rows.values()) if isinstance(rows, dict) else None,
        "tables": len(rows) if isinstance(rows, dict) else None,
        "files": files if isinstance(files, int) else None,
    }


def check_name_of(project: str, env: str, name: str) -> str:
    """*name* if it is an archive name of *project* *env*, else :class:`ArchiveError`."""
    check_name(name)
    if not name.startswith(f"{project}-{env}-"):
        raise ArchiveError(f"archive {name} is not one of {project} {env}")
    return name


def env_dir(base: str, project: str, env: str) -> str:
    return posixpath.join(base, project, env)


class _Hashing:
    """Counts and hashes what passes to the file."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        self.out.write(data)
        return len(data)


# Writes one component's raw stream (with its ledger and progress) where an archive keeps
# it; returns the record's ``file`` and what was written (a store's ``put``).
Put = Callable[["Component", IO[bytes], Any, Callable[[int], None] | None], tuple[str, "Written"]]


def folder_put(host: Host, directory: str) -> Put:
    """The *put* of an archive folder: each component zstd-compressed into a file."""

    def put(
        component: Component, source: IO[bytes], ledger: Any, advance: Callable[[int], None] | None
    ) -> tuple[str, Written]:
        path = posixpath.join(directory, component.filename)
        return component.filename, compress_into(host, source, path, ledger, advance)

    return put


def write_component(
    host: Host,
    component: Component,
    context: BackupContext,
    directory: str,
    advance: Callable[[int], None] | None = None,
) -> ComponentRecord:
    """Stream a component's dump through zstd into ``directory``; nothing is held in memory."""
    return store_component(component, context, folder_put(host, directory), advance)


# Keeps a path or volume component as a tree where the store can (restic reads the
# folder itself); returns its record, or None: the component goes as a stream.
TreePut = Callable[
    ["Component", "BackupContext", Callable[[int], None] | None], ComponentRecord | None
]


def store_component(
    component: Component,
    context: BackupContext,
    put: Put,
    advance: Callable[[int], None] | None = None,
    tree: TreePut | None = None,
) -> ComponentRecord:
    """Stream a component's dump into its archive with *put*, or with *tree* keep it as
    a tree where that store can; nothing is held in memory."""
    if tree is not None and (record := tree(component, context, advance)) is not None:
        return record
    process = component.dump(context)
    ledger = component.ledger()
    with reaped_on_error(process):
        file, written = put(component, process.stdout, ledger, advance)
    code = process.wait()
    if code != 0:
        detail = process.errors().strip().splitlines()
        raise OpskitError(
            f"{component.kind} {component.key} failed: {detail[-1] if detail else f'exit {code}'}"
        )
    return ComponentRecord(
        key=component.key,
        kind=component.kind,
        file=file,
        raw_bytes=written.raw_bytes,
        raw_sha256=written.raw_sha256,
        stored_bytes=written.stored_bytes,
        sha256=written.sha256,
        details={**component.describe(), **(ledger.record() if ledger is not None else {})},
    )


@attrs.frozen
class Written:
    raw_bytes: int
    raw_sha256: str
    stored_bytes: int
    sha256: str


class Feeding:
    """Reads a component's raw stream, hashing and counting it; its *ledger* sees each
    chunk, *advance* gets each chunk's size."""

    def __init__(
        self, source: IO[bytes], ledger: Any = None, advance: Callable[[int], None] | None = None
    ) -> None:
        self.source = source
        self.ledger = ledger
        self.advance = advance
        self.hash = hashlib.sha256()
        self.size = 0

    def read(self, size: int = CHUNK) -> bytes:
        chunk = self.source.read(size)
        self.hash.update(chunk)
        self.size += len(chunk)
        if self.ledger is not None:
            self.ledger.feed(chunk)
        if self.advance is not None and chunk:
            self.advance(len(chunk))
        return chunk

    def finish(self) -> None:
        """The stream ended: the ledger checks what it saw."""
        if self.ledger is not None:
            self.ledger.finish()


def compress_into(
    host: Host,
    source: IO[bytes],
    path: str,
    ledger: Any = None,
    advance: Callable[[int], None] | None = None,
) -> Written:
    """Stream *source* through zstd into a new file at *path*, hashing both sides; a
    *ledger* sees each raw chunk. Nothing is held in memory."""
    import zstandard

    raw = Feeding(source, ledger, advance)
    with host.open_write(path) as out:
        stored = _Hashing(out)
        compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compressobj()
        while chunk := raw.read(CHUNK):
            stored.write(compressor.compress(chunk))
        stored.write(compressor.flush())
        raw.finish()
    return Written(raw.size, raw.hash.hexdigest(), stored.size, stored.hash.hexdigest())


def write_json(host: Host, path: str, data: dict[str, Any]) -> None:
    """Write *data* as a JSON file readable by the owner only."""
    with host.open_write(path) as out:
        out.write((json.dumps(data, indent=2, sort_keys=True) + "\n").encode())
    host.run(["chmod", "600", "--", path])


def list_archives(host: Host, directory: str) -> list[Archive]:
    """The complete archives in an env's folder, newest first (partial ones are ignored)."""
    names = [n for n in host.listdir(directory) if NAME_RE.match(n)]
    files = (MANIFEST, VERIFIED, DRILLED, OFFSITE)
    paths = [posixpath.join(directory, n, f) for n in names for f in files]
    texts = host.read_existing(paths)
    archives = []
    for name in names:
        path = posixpath.join(directory, name)
        manifest_text = texts.get(posixpath.join(path, MANIFEST))
        if manifest_text is None:
            continue
        try:
            manifest = json.loads(manifest_text)
            verified_text = texts.get(posixpath.join(path, VERIFIED))
            verified = json.loads(verified_text) if verified_text else None
            drilled_text = texts.get(posixpath.join(path, DRILLED))
            drilled = json.loads(drilled_text) if drilled_text else None
            offsite_text = texts.get(posixpath.join(path, OFFSITE))
            offsite = json.loads(offsite_text) if offsite_text else None
        except ValueError:
            continue
        archives.append(Archive(path, manifest, verified, drilled, offsite))
    return sorted(archives, key=lambda a: a.name, reverse=True)


@attrs.frozen
class Fault:
    component: str
    problem: str


class _HashingReader:
    """Counts and hashes what is read from a file."""

    def __init__(self, source: IO[bytes]) -> None:
        self.source = source
        self.hash = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        data = self.source.read(size)
        self.hash.update(data)
        self.size += len(data)
        return data


def _decompressed(source: Any) -> Iterator[bytes]:
    """Decompressed chunks of at most CHUNK bytes, however well the data compressed."""
    import zstandard

    reader = zstandard.ZstdDecompressor().stream_reader(
        source, read_size=CHUNK, read_across_frames=True
    )
    while chunk := reader.read(CHUNK):
        yield chunk


def verify(host: Host, archive: Archive) -> list[Fault]:
    """Check what a restore checks before it changes anything: the manifest is this
    archive's, and every component file is a regular file inside the archive (never a
    link) whose checksums match and that decompresses fully; a path's tar holds the tree
    it names and no link that a restore refuses. Return the faults."""
    if archive.manifest.get("format") != FORMAT:
        return [Fault("manifest", f"unknown format {archive.manifest.get('format')!r}")]
    project, env = archive.manifest.get("project"), archive.manifest.get("environment")
    if not archive.name.startswith(f"{project}-{env}-"):
        return [Fault("manifest", f"it names {project} {env}, not the archive {archive.name}")]
    records = archive.components
    if len(records) < 2 or host.streams < 2:
        found = [_fault(host, archive, record) for record in records]
    else:  # two at once: a dump's check waits on restic and hashing, a tree's on the disk
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="opskit-verify") as pool:
            found = list(pool.map(lambda record: _fault(host, archive, record), records))
    return [fault for fault in found if fault is not None]


def _fault(host: Host, archive: Archive, record: ComponentRecord) -> Fault | None:
    """What is wrong with one component of *archive*, or None."""
    import zstandard

    if is_tree(record):
        tree_fault = _tree_fault(host, archive, record)
        return Fault(record.key, tree_fault) if tree_fault else None
    problem = None
    try:
        with _opened(host, archive, record) as (stored, raw):
            if record.kind == "path":
                problem = _path_tree_problem(raw, str(record.details.get("path") or ""))
            while raw.read(CHUNK):
                pass
            if stored is not None:
                stored.read()  # anything after the last frame still counts
    except (OSError, OpskitError) as exc:
        return Fault(record.key, f"cannot read {record.file}: {exc}")
    except zstandard.ZstdError as exc:
        return Fault(record.key, f"{record.file} does not decompress: {exc}")
    if stored is not None and (
        stored.size != record.stored_bytes or stored.hash.hexdigest() != record.sha256
    ):
        return Fault(record.key, f"{record.file}: checksum mismatch")
    if raw.size != record.raw_bytes or raw.hash.hexdigest() != record.raw_sha256:
        return Fault(record.key, f"{record.file}: content checksum mismatch")
    if problem:
        return Fault(record.key, f"{record.file}: a restore would refuse it: {problem}")
    return None


@contextlib.contextmanager
def _opened(
    host: Host, archive: Archive, record: ComponentRecord
) -> Iterator[tuple[_HashingReader | None, _HashingReader]]:
    """A component's stored bytes (None in a restic store, which stores the raw stream)
    and its raw bytes, both hashed and counted as they are read."""
    if archive.restic is not None:
        yield None, _HashingReader(chunk_stream(read_component(host, archive, record)))
        return
    with host.open_regular(archive.member(record)) as source:
        stored = _HashingReader(source)
        yield stored, _HashingReader(chunk_stream(_decompressed(stored)))


def _path_tree_problem(raw: Any, path: str) -> str | None:
    """Why a restore refuses the tar of a path component (read from *raw* as a stream, by
    the rules of :func:`opskit.components.leads_out`), or None."""
    return _scan_tree(raw, posixpath.basename(path.rstrip("/")), links=True)[0]


def _scan_tree(raw: Any, name: str, links: bool) -> tuple[str | None, int, int]:
    """Read the tar stream *raw* to its end: why a restore refuses the tree *name* in it
    (with *links*, a link leading out of it; a stream that is no complete tar, or holds
    no *name*), or None; and the regular files of that tree and their bytes."""
    import tarfile

    from opskit.components import leads_out, refusal

    found, files, size, problem = False, 0, 0, None
    try:
        with tarfile.open(fileobj=raw, mode="r|", bufsize=CHUNK) as tar:
            for member in tar:
                inside = member.name.rstrip("/")
                if inside == name:
                    found, inside = True, ""
                elif inside.startswith(name + "/"):
                    inside = inside[len(name) + 1 :]
                else:
                    continue  # a restore takes only the tree it names
                if member.isreg():
                    files, size = files + 1, size + member.size
                refused = links and member.issym() and leads_out(inside, member.linkname)
                if refused and problem is None:
                    problem = refusal(inside, member.linkname)
    except tarfile.TarError as exc:
        return f"it is not a complete tar stream ({exc})", files, size
    return problem or (None if found else f"the archive holds no {name}"), files, size


def is_tree(record: ComponentRecord) -> bool:
    """Whether the store keeps *record*'s component as a tree (a restic snapshot of the
    folder) rather than as its raw stream."""
    return record.details.get("stored_as") == TREE


def _tree_fault(host: Host, archive: Archive, record: ComponentRecord) -> str | None:
    """What is wrong with a tree component of *archive*: its snapshot's root tree must be
    the manifest's (``raw_sha256``: restic's SHA-256 of the tree, which names the hashes
    of all below it), and its ``restic dump``, read to the end (restic checks every blob's
    hash as it loads it), must hold the manifest's regular files and bytes and nothing a
    restore refuses. None when it is sound."""
    assert archive.restic is not None
    snapshot = archive.snapshots.get(record.key)
    if snapshot is None:
        return f"not in {archive.restic.target}: its snapshot is gone"
    return tree_copy_fault(archive.restic, snapshot, record)


def tree_copy_fault(
    restic: Restic,
    snapshot: str,
    record: ComponentRecord,
    advance: Callable[[int], None] | None = None,
) -> str | None:
    """What is wrong with *snapshot* in *restic*'s repository as the tree component
    *record* (the store's, or its ``restic copy`` offsite, which keeps the tree ID):
    see :func:`_tree_fault`. *advance* gets the bytes read back."""
    try:
        tree = restic.tree(snapshot)
    except OpskitError as exc:
        return f"its snapshot cannot be read: {exc}"
    if tree != record.raw_sha256:
        expected = record.raw_sha256[:12]
        return f"its snapshot holds the tree {tree[:12]}, the manifest names {expected}"
    chunks = tree_stream(dumped(restic, snapshot, "/", record.key), record)
    if advance is not None:
        chunks = _counted(chunks, advance)
    return tree_content_fault(chunk_stream(chunks), record)


def _counted(chunks: Iterator[bytes], advance: Callable[[int], None]) -> Iterator[bytes]:
    for chunk in chunks:
        advance(len(chunk))
        yield chunk


def tree_content_fault(source: IO[bytes], record: ComponentRecord) -> str | None:
    """What is wrong with *source*, the stream of a tree component *record* (read to its
    end): files or bytes other than the manifest's, a link a restore refuses."""
    member = str(record.details.get("member") or ".")
    try:
        with source:
            problem, files, size = _scan_tree(source, member, links=record.kind == "path")
            while source.read(CHUNK):
                pass  # restic's exit status too
    except (OSError, OpskitError) as exc:
        return f"cannot be read back: {exc}"
    expected = (record.details.get("files"), record.details.get("bytes"))
    if problem:
        return f"a restore would refuse it: {problem}"
    if (files, size) != expected:
        return (
            f"it holds {files} files of {size} bytes, the manifest records "
            f"{expected[0]} files of {expected[1]} bytes"
        )
    return None


def read_component(host: Host, archive: Archive, record: ComponentRecord) -> Iterator[bytes]:
    """The raw (decompressed) stream of one component, chunk by chunk; its file must be a
    regular file inside the archive, never a link. In a restic store: ``restic dump`` of
    its snapshot."""
    if archive.restic is not None and is_tree(record):
        yield from tree_stream(_dumped(archive, record.key, "/"), record)
        return
    if archive.restic is not None:
        yield from _dumped(archive, record.key)
        return
    with host.open_regular(archive.member(record)) as source:
        yield from _decompressed(source)


def tree_stream(dumped: Iterator[bytes], record: ComponentRecord) -> Iterator[bytes]:
    """The raw stream of a tree component from *dumped*, the tar of ``restic dump
    SNAPSHOT /``: its root (``root``, the folder's name when it was read) named as the
    component's own stream names it (``member``: a path's name; ``.`` for a volume).
    Where the two are equal (paths) the dump is the stream as it is."""
    root, member = str(record.details.get("root") or ""), str(record.details.get("member") or "")
    if not root or not member or root == member:
        return dumped

    def renamed(name: str) -> str:
        if name == root or name.startswith(root + "/"):
            return member + name[len(root) :]
        return name

    return retar(dumped, renamed)


def retar(
    chunks: Iterator[bytes], rename: Callable[[str], str], end: bool = True
) -> Iterator[bytes]:
    """The tar stream *chunks* again, each member (and each hard link's target) renamed
    by *rename*, everything else kept (mode, owner, times, extended headers); a file's
    data passes through chunk by chunk, never whole in memory. Without *end*, the
    members alone (to go on in a tar of more)."""
    import copy
    import tarfile

    raw = chunk_stream(chunks)
    try:
        with tarfile.open(fileobj=raw, mode="r|", bufsize=CHUNK) as tar:
            for member in tar:
                info = copy.copy(member)
                info.name = rename(member.name)
                if member.islnk():
                    info.linkname = rename(member.linkname)
                info.pax_headers = {
                    k: v for k, v in member.pax_headers.items() if k not in ("path", "linkpath")
                }
                yield info.tobuf(format=tarfile.PAX_FORMAT)
                if member.isreg():
                    data = tar.extractfile(member)
                    assert data is not None
                    while chunk := data.read(CHUNK):
                        yield chunk
                    yield b"\0" * (-member.size % tarfile.BLOCKSIZE)
        while raw.read(CHUNK):
            pass  # to the source's end: a restic dump's exit status is checked there
    except tarfile.TarError as exc:
        raise ArchiveError(f"not a complete tar stream ({exc})") from None
    finally:
        raw.close()
    if end:
        yield b"\0" * (2 * tarfile.BLOCKSIZE)


def _dumped(archive: Archive, key: str, inside: str | None = None) -> Iterator[bytes]:
    """One snapshot of *archive* streamed back by ``restic dump`` (of the component's
    stream; of *inside*, a path in the snapshot, when given: a tree's ``/`` is a tar)."""
    from opskit.restic import filename

    assert archive.restic is not None
    snapshot = archive.snapshots.get(key)
    if snapshot is None:
        raise ArchiveError(
            f"archive {archive.name}: {key} is not in {archive.restic.target}: its snapshot is gone"
        )
    project, env = archive.manifest.get("project"), archive.manifest.get("environment")
    path = inside or filename(str(project), str(env), archive.name, key)
    yield from dumped(archive.restic, snapshot, path, f"archive {archive.name}: {key}")


def dumped(restic: Restic, snapshot: str, path: str, what: str) -> Iterator[bytes]:
    """``restic dump`` of *path* in *snapshot*, chunk by chunk, holding the
    repository's guard; an :class:`ArchiveError` naming *what* when restic fails."""
    with restic.locked():
        process = restic.dump(snapshot, path)
        with reaped_on_error(process):  # also when the reader stops early (GeneratorExit)
            while chunk := process.stdout.read(CHUNK):
                yield chunk
        code = process.wait()
    if code != 0:
        detail = process.errors().strip().splitlines()
        raise ArchiveError(
            f"{what} cannot be read from {restic.target}{f': {detail[-1]}' if detail else ''}"
        )


def manifest_bytes(host: Host, archive: Archive) -> bytes:
    """The archive's manifest as it was written."""
    if archive.restic is None:
        return host.read_text(posixpath.join(archive.path, MANIFEST)).encode()
    return b"".join(_dumped(archive, "manifest"))


class _ChunkReader(io.RawIOBase):
    """A raw stream over an iterator of byte chunks."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks
        self.pending = b""

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        """Stop the source too (a ``restic dump`` and the store's lock end with it)."""
        close = getattr(self.chunks, "close", None)
        if close is not None:
            close()
        super().close()

    def readinto(self, buffer: Any) -> int:
        while not self.pending:
            chunk = next(self.chunks, None)
            if chunk is None:
                return 0
            self.pending = chunk
        size = min(len(buffer), len(self.pending))
        buffer[:size] = self.pending[:size]
        self.pending = self.pending[size:]
        return size


def chunk_stream(chunks: Iterator[bytes]) -> IO[bytes]:
    """A file object over *chunks* (closing it stops their source)."""
    return io.BufferedReader(_ChunkReader(chunks), buffer_size=CHUNK)


def component_stream(host: Host, archive: Archive, record: ComponentRecord) -> IO[bytes]:
    """The raw (decompressed) stream of one component, as a file object."""
    return chunk_stream(read_component(host, archive, record))


def now() -> datetime:
    return datetime.now(UTC)


def raw_tar(host: Host, archive: Archive) -> Iterator[bytes]:
    """An archive as a tar stream of its manifest and each component's raw stream, named
    ``{archive}/manifest.json`` and ``{archive}/{key}`` (a store archive's download;
    ``verify`` does not read it back, ``sha256sum`` against the manifest does). A
    component kept as a tree comes as its files, under ``{archive}/{key}/``."""
    import tarfile

    def member(name: str, size: int) -> bytes:
        info = tarfile.TarInfo(f"{archive.name}/{name}")
        info.size, info.mode, info.mtime = size, 0o600, int(archive.created.timestamp())
        return info.tobuf(format=tarfile.PAX_FORMAT)

    def padding(size: int) -> bytes:
        return b"\0" * (-size % tarfile.BLOCKSIZE)

    manifest = manifest_bytes(host, archive)
    yield member(MANIFEST, len(manifest)) + manifest + padding(len(manifest))
    for record in archive.components:
        if is_tree(record):  # its files under {archive}/{key}/, as the tree holds them
            prefix = f"{archive.name}/{record.key}/"
            yield from retar(
                read_component(host, archive, record),
                lambda name, prefix=prefix: posixpath.normpath(prefix + name),  # type: ignore[misc]
                end=False,
            )
            continue
        yield member(record.key, record.raw_bytes)
        sent = 0
        for chunk in read_component(host, archive, record):
            sent += len(chunk)
            if sent > record.raw_bytes:
                raise ArchiveError(f"archive {archive.name}: {record.key} is longer than recorded")
            yield chunk
        if sent != record.raw_bytes:
            raise ArchiveError(f"archive {archive.name}: {record.key} is shorter than recorded")
        yield padding(sent)
    yield b"\0" * (2 * tarfile.BLOCKSIZE)
