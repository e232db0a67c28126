"""Offsite copies in restic repositories, proven by reading them back.

restic is the engine: it deduplicates, encrypts, resumes and checks. opskit streams each
component's *uncompressed* bytes into ``restic backup --stdin`` (decompressed from the
archive on the fly, never to a temporary file), so unchanged files and unchanged parts of
dumps deduplicate from night to night; the manifest goes up as a snapshot of its own. Each
snapshot carries the tags ``opskit``, ``project=``, ``env=``, ``archive=`` and
``component=``. An archive counts as offsite only when every component and its manifest
have a snapshot, and as verified offsite only when each was streamed back (``restic dump``)
and its sha256 equals the manifest's checksum of the raw bytes.

The repository password lives in ``STATE_DIR/restic-password`` on the server (mode 0600),
created by ``opskit offsite init``, and reaches restic as ``--password-file``: a path, never
the password, in argv.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import posixpath
from collections.abc import Callable, Iterator, Mapping
from contextlib import nullcontext
from typing import IO, TYPE_CHECKING, Any

import attrs

from opskit.archive import (
    MANIFEST,
    OFFSITE,
    TREE,
    Archive,
    chunk_stream,
    component_stream,
    dumped,
    is_tree,
    manifest_bytes,
    now,
    tree_copy_fault,
    tree_stream,
    write_json,
)

# Defined in opskit.contracts (the types plugins and engines share); re-exported here.
from opskit.contracts import Repository as Repository
from opskit.output import warning
from opskit.restic import (
    COMPLETE,
    ResticError,
    ShortRead,
    by_component,
    create_password_file,
    filename,
    incomplete,
    tags,
)
from opskit.restic import Restic as Restic
from opskit.restic import check_restic as check_restic
from opskit.restic import owned as owned

if TYPE_CHECKING:
    from opskit.contracts import Component
    from opskit.descriptor import Project
    from opskit.jobs import Job
    from opskit.retention import Decision
    from opskit.runtime import Runtime
    from opskit.settings import Settings
    from opskit.store import ResticStore

PASSWORD_FILE = "restic-password"
CHUNK = 1 << 20


# An offsite copy could not be made, read or proven: restic's own error.
OffsiteError = ResticError


def builtin_repository(target: str, settings: Settings) -> Repository | None:
    """The repository of a ``file://``, ``sftp://``, ``s3://`` or ``s3+http://`` target.

    S3 credentials come from opskit's environment (``AWS_ACCESS_KEY_ID``,
    ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_DEFAULT_REGION``), else from
    ``offsite.s3`` in ``opskit.yaml``; restic reads them from its environment."""
    if target.startswith("file://"):
        return Repository(target.removeprefix("file://"))
    if target.startswith("sftp://"):
        return Repository(target)  # restic's own form; ssh honours ~/.ssh/config
    for scheme, protocol in (("s3://", "https"), ("s3+http://", "http")):
        if target.startswith(scheme):
            env = {key: value for key in S3_ENV if (value := os.environ.get(key))}
            if "AWS_ACCESS_KEY_ID" not in env and settings.offsite.s3:
                env.update(settings.offsite.s3)
            return Repository(f"s3:{protocol}://{target.removeprefix(scheme)}", env)
    return None


S3_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION")


def resolve(runtime: Runtime, target: str) -> Repository:
    """The repository of *target*, from the first plugin that knows its scheme."""
    found = runtime.plugins.offsite_target(target, runtime.settings())
    if found is None:
        scheme = target.partition("://")[0] if "://" in target else target
        raise OffsiteError(f"offsite target {target}: no plugin knows the scheme {scheme!r}")
    return found


def password_file(state_dir: str) -> str:
    return posixpath.join(state_dir, PASSWORD_FILE)


def init(runtime: Runtime, target: str, store: ResticStore | None = None) -> tuple[str, bool]:
    """Create the password file (once) and the repository (if missing); return the
    password file's path and whether the repository was created now.

    With the local archive *store* (``backup.store: restic``), the two share their
    chunker parameters, so that ``restic copy`` keeps the deduplication: a new target
    gets the store's (the store is created first when it does not exist yet), and a
    store not there yet gets an existing target's. An existing target and store that
    differ are left as they are, with a warning (copies work, deduplicating less)."""
    host = runtime.host
    check_restic(host)
    state_dir = runtime.settings().state_dir
    path = password_file(state_dir)
    create_password_file(host, path)
    restic = Restic(host, target, path, resolve(runtime, target))
    if restic.exists():
        if store is not None:
            if store.open():
                warn_if_apart(store.restic, restic)
            else:
                store.open(create=True, like=restic)
        return path, False
    if store is not None:
        store.open(create=True)
    restic.init(like=store.restic if store is not None else None)
    return path, True


def stores_of(runtime: Runtime, pairs: list[tuple[Project, str]]) -> dict[str, ResticStore]:
    """The local archive store (``backup.store: restic``) whose chunker parameters each
    target shares: that of the first project (of *pairs*) with a store that copies to
    it. Projects of other roots copying to the same target deduplicate less (the
    upload warns)."""
    from opskit.backups import Engine
    from opskit.store import ResticStore, kind_of

    engine = Engine(runtime)
    found: dict[str, ResticStore] = {}
    for project, env in pairs:
        if project.backup is None or kind_of(runtime, project) != "restic":
            continue
        store = engine.store(project, env)
        if isinstance(store, ResticStore):
            found.setdefault(target_of(runtime, project), store)
    return found


def connect(runtime: Runtime, target: str) -> Restic:
    """restic against *target*'s repository, with the password file ``init`` wrote."""
    check_restic(runtime.host)
    path = password_file(runtime.settings().state_dir)
    if not runtime.host.exists(path):
        raise OffsiteError(
            f"{target}: no repository password at {path}; run 'opskit offsite init' first"
        )
    return Restic(runtime.host, target, path, resolve(runtime, target))


def _tags(archive: Archive, key: str) -> list[str]:
    manifest = archive.manifest
    return tags(str(manifest.get("project")), str(manifest.get("environment")), archive.name, key)


def _filename(archive: Archive, key: str) -> str:
    manifest = archive.manifest
    return filename(
        str(manifest.get("project")), str(manifest.get("environment")), archive.name, key
    )


def _send(
    restic: Restic, source: IO[bytes], archive: Archive, key: str, size: int, job: Job | None
) -> int:
    """One component into one snapshot, marked complete once restic read all its bytes."""
    advance = job.meter(size) if job is not None else None
    try:
        summary = restic.send(
            source, _filename(archive, key), _tags(archive, key), lambda: size, advance
        )
    except ShortRead as exc:
        raise OffsiteError(f"{archive.name}: {key}: {exc}") from None
    if advance is not None:
        advance(0)
    return int(summary.get("data_added") or 0)


@attrs.frozen
class Upload:
    archive: str
    target: str
    # bytes restic added to the repository (after deduplication and compression); None
    # for a copy out of the local store: ``restic copy`` does not count them
    sent: int | None
    uploaded: tuple[str, ...]  # components sent now
    present: tuple[str, ...]  # components the repository already had


@contextlib.contextmanager
def about(archive: str) -> Iterator[None]:
    """Errors name the archive as well as the target."""
    try:
        yield
    except OffsiteError as exc:
        message = str(exc)
        if archive not in message:
            raise OffsiteError(f"archive {archive} on {message}") from None
        raise


def upload(restic: Restic, archive: Archive, job: Job | None = None) -> Upload:
    """Send every component (uncompressed) and the manifest that the repository lacks."""
    with about(archive.name):
        return _upload(restic, archive, job)


def _upload(restic: Restic, archive: Archive, job: Job | None) -> Upload:
    host = restic.host
    restic.unlock()  # an upload killed with opskit leaves its lock behind
    snapshots = _of_archive(restic, archive)
    if partial := incomplete(snapshots):
        try:
            restic.run("forget", *partial, timeout=300)
        except OffsiteError as exc:  # they never count; the next upload tries again
            warning(f"{archive.name}: partial snapshots stay in the repository for now: {exc}")
    have = by_component(snapshots)
    if archive.restic is not None:  # in the local store: its snapshots are copied
        keys = [*(r.key for r in archive.components), "manifest"]
        missing = [key for key in keys if key not in have]
        if missing:
            _copy(restic, archive, missing, job)
        there = tuple(key for key in keys if key in have)
        return Upload(archive.name, restic.target, None, tuple(missing), there)
    sent, uploaded, present = 0, [], []
    manifest = manifest_bytes(host, archive)
    sizes = {r.key: r.raw_bytes for r in archive.components}
    sizes["manifest"] = len(manifest)
    for key, size in sizes.items():
        if key in have:
            present.append(key)
            continue
        with job.phase(f"uploading {key}") if job else nullcontext():
            if key == "manifest":
                sent += _send(restic, io.BytesIO(manifest), archive, key, size, job)
            else:
                (record,) = [r for r in archive.components if r.key == key]
                with component_stream(host, archive, record) as source:
                    sent += _send(restic, source, archive, key, size, job)
        uploaded.append(key)
    return Upload(archive.name, restic.target, sent, tuple(uploaded), tuple(present))


def _copy(restic: Restic, archive: Archive, keys: list[str], job: Job | None) -> None:
    """Copy the snapshots of *keys* from the local store into *restic*'s repository
    (``restic copy``: only the blobs the target lacks travel), then tag each copy
    ``complete``: the store lists an archive only when all its snapshots are whole."""
    source = archive.restic
    assert source is not None
    warn_if_apart(source, restic)
    wanted = {}
    for key in keys:
        if key not in archive.snapshots:
            raise OffsiteError(f"{archive.name}: {key} has no snapshot in {source.target}")
        wanted[archive.snapshots[key]] = key
    with job.phase(f"copying {', '.join(keys)}") if job else nullcontext():
        restic.copy(source, list(wanted))
    copies, found = [], set()
    for snapshot in _of_archive(restic, archive):
        original = str(snapshot.get("original") or "")
        for snapshot_id, key in wanted.items():
            if original and original.startswith(snapshot_id) and key not in found:
                copies.append(str(snapshot["id"]))
                found.add(key)
    if lost := [key for key in keys if key not in found]:
        raise OffsiteError(f"{archive.name}: restic copy made no copy of {', '.join(lost)}")
    restic.run("tag", "--add", COMPLETE, *copies, timeout=300)


def warn_if_apart(store: Restic, target: Restic) -> bool:
    """Warn (once per store and target in a process) when the two repositories do not
    share their chunker parameters: ``restic copy`` still works, but the target cannot
    deduplicate the copies against what it got otherwise (older uploads). Return
    whether they differ."""
    pair = (store.repository.url, target.repository.url)
    if pair in _APART:
        return _APART[pair]
    _APART[pair] = apart = store.chunker() != target.chunker()
    if apart:
        warning(
            f"{target.target} does not share the chunker parameters of the archive store "
            f"{store.target}: copies work, but do not deduplicate against the target's older "
            "uploads (a target made by 'opskit offsite init' with the store present shares them)"
        )
    return apart


_APART: dict[tuple[str, str], bool] = {}  # what warn_if_apart found, by store and target


@attrs.frozen
class Verification:
    archive: str
    target: str
    ok: bool
    time: str
    faults: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


def verify(
    restic: Restic, archive: Archive, read_data: str = "5%", job: Job | None = None
) -> Verification:
    """Check the repository (reading back *read_data* of it), then stream each component
    of *archive* back and compare its sha256 with the manifest's; record the result in
    the archive's ``offsite.json``."""
    with about(archive.name):
        return _verify(restic, archive, read_data, job)


def _verify(restic: Restic, archive: Archive, read_data: str, job: Job | None) -> Verification:
    faults: list[str] = []
    with job.phase("checking the repository") if job else nullcontext():
        try:
            restic.run("check", f"--read-data-subset={read_data}", timeout=None)
        except OffsiteError as exc:
            faults.append(f"repository check: {exc}")
    have = by_component(_of_archive(restic, archive))
    for record in archive.components:
        snapshot = have.get(record.key)
        if snapshot is None:
            faults.append(f"{record.key}: not in the repository")
            continue
        with job.phase(f"reading back {record.key}") if job else nullcontext():
            advance = job.meter(record.raw_bytes) if job is not None else None
            tree = record if is_tree(record) else _copied_tree(archive, record, snapshot)
            if tree is not None:  # a tree: its tree ID, files and bytes (#22)
                fault = tree_copy_fault(restic, str(snapshot["id"]), tree, advance)
                if fault:
                    faults.append(f"{record.key}: {fault}")
                continue
            digest = _dumped_sha256(restic, snapshot, _filename(archive, record.key), advance)
        if digest is None:
            faults.append(f"{record.key}: cannot be read back")
        elif digest != record.raw_sha256:
            faults.append(f"{record.key}: the copy differs from the archive (sha256)")
    if "manifest" not in have:
        faults.append("manifest: not in the repository")
    result = Verification(archive.name, restic.target, not faults, now().isoformat(), tuple(faults))
    path = posixpath.join(archive.path, OFFSITE)
    restic.host.run(["rm", "-f", "--", path])
    write_json(restic.host, path, result.as_dict())
    return result


def _copied_tree(archive: Archive, record: Any, snapshot: dict[str, Any]) -> Any:
    """The tree component that *record* was, when *snapshot* holds it as that tree: an
    archive downloaded from a store archive's copy (its trees became streams, see
    :func:`_stream_entry`) is proven against the copy it came from. None otherwise."""
    details = record.details
    stream = _filename(archive, record.key)
    if not details.get("tree") or stream in (snapshot.get("paths") or []):
        return None
    was = {
        "stored_as": TREE,
        "root": details.get("tree_root"),
        "member": details.get("tree_member"),
    }
    return attrs.evolve(record, raw_sha256=details["tree"], details={**details, **was})


def _dumped_sha256(
    restic: Restic,
    snapshot: dict[str, Any],
    filename: str,
    advance: Callable[[int], None] | None = None,
) -> str | None:
    process = restic.dump(str(snapshot.get("short_id") or snapshot.get("id")), filename)
    digest = hashlib.sha256()
    while chunk := process.stdout.read(CHUNK):
        digest.update(chunk)
        if advance is not None:
            advance(len(chunk))
    if advance is not None:
        advance(0)
    return digest.hexdigest() if process.wait() == 0 else None


def _download_tree(
    restic: Restic, snapshot: str, staged: Archive, record: Any, job: Job | None
) -> Any:
    """A tree component of the store (#22) into the downloaded folder archive, as the tar
    stream its component reads: the copy is proven first by its tree ID, files and bytes
    (:func:`opskit.archive.tree_copy_fault`), then streamed again into its file."""
    from opskit.archive import compress_into

    with job.phase(f"downloading {record.key}") if job else nullcontext():
        if fault := tree_copy_fault(restic, snapshot, record):
            raise OffsiteError(f"archive {staged.name} on {restic.target}: {record.key}: {fault}")
        advance = job.meter(record.raw_bytes) if job is not None else None
        chunks = tree_stream(dumped(restic, snapshot, "/", record.key), record)
        with contextlib.closing(chunk_stream(chunks)) as source:
            return compress_into(restic.host, source, staged.member(record), advance=advance)


def _stream_entry(entry: dict[str, Any], written: Any) -> dict[str, Any]:
    """The manifest entry of a tree component downloaded as a stream: the stream's sizes
    and checksums, its details without what only a tree has."""
    tree_only = ("stored_as", "root", "member", "parent", "files_unmodified", "added_bytes")
    details = {k: v for k, v in entry["details"].items() if k not in tree_only}
    return {
        "raw_bytes": written.raw_bytes,
        "raw_sha256": written.raw_sha256,
        "stored_bytes": written.stored_bytes,
        "sha256": written.sha256,
        "details": {
            **details,
            "tree": entry["raw_sha256"],  # how its copy was kept: see _copied_tree
            "tree_root": entry["details"].get("root"),
            "tree_member": entry["details"].get("member"),
        },
    }


def download(
    runtime: Runtime, project: Project, env: str, name: str, job: Job | None = None
) -> Archive:
    """Rebuild archive *name* in the env's backup folder from the repository (each
    component recompressed), verify it with the local ``verify``, and only then give it
    its name, so that ``backups`` lists it. The raw checksums must equal the manifest's;
    that proves the copy, so the archive comes back with its ``offsite.json`` (verified)."""
    from opskit.archive import ArchiveError, check_name_of, compress_into
    from opskit.backups import Engine, backup_dir, private_dir
    from opskit.locks import env_lock

    host = runtime.host
    check_name_of(project.name, env, name)
    target = target_of(runtime, project)
    restic = connect(runtime, target)
    have = by_component(_by_archive(restic, project.name, env, name).get(name, []))
    if "manifest" not in have:
        raise OffsiteError(f"archive {name} has no complete copy on {target}")
    reader = restic.dump(str(have["manifest"]["id"]), f"/{project.name}/{env}/{name}/manifest")
    text = reader.stdout.read()
    if reader.wait() != 0:
        raise OffsiteError(f"archive {name} on {target}: the manifest cannot be read back")
    manifest = json.loads(text)
    if manifest.get("project") != project.name or manifest.get("environment") != env:
        raise ArchiveError(f"archive {name} on {target} is not one of {project.name} {env}")
    directory = backup_dir(project, env)
    private_dir(host, directory)
    engine = Engine(runtime)
    if manifest.pop("store", None) is not None:
        folder_names(manifest, engine.components(project, env))
    with env_lock(host, directory, f"download of {name}", engine.lock_timeout):
        final = posixpath.join(directory, name)
        if host.exists(final):
            raise OffsiteError(f"archive {name} is already in {directory}")
        if engine.store(project, env).taken(name):  # beside it, both would be unusable
            raise OffsiteError(
                f"archive {name} is already in the archive store of {project.name} {env}"
            )
        partial = posixpath.join(directory, f".{name}.partial")
        host.run(["rm", "-rf", "--", partial])
        host.run(["mkdir", "-m", "700", "--", partial])
        try:
            staged = Archive(partial, manifest, staged_as=name)
            for record in staged.components:
                snapshot = have.get(record.key)
                if snapshot is None:
                    raise OffsiteError(
                        f"archive {name} on {target}: {record.key} has no complete copy"
                    )
                if is_tree(record):
                    written = _download_tree(restic, str(snapshot["id"]), staged, record, job)
                    for entry in manifest["components"]:
                        if entry["key"] == record.key:  # a stream from now on (#22)
                            entry.update(_stream_entry(entry, written))
                    continue
                process = restic.dump(
                    str(snapshot["id"]), f"/{project.name}/{env}/{name}/{record.key}"
                )
                try:
                    with job.phase(f"downloading {record.key}") if job else nullcontext():
                        advance = job.meter(record.raw_bytes) if job is not None else None
                        written = compress_into(
                            host, process.stdout, staged.member(record), advance=advance
                        )
                except BaseException:
                    process.kill()
                    process.wait()
                    raise
                if process.wait() != 0 or written.raw_sha256 != record.raw_sha256:
                    raise OffsiteError(
                        f"archive {name} on {target}: {record.key} does not come back as it was"
                    )
                for entry in manifest["components"]:
                    if entry["key"] == record.key:  # recompressed: new file checksums
                        entry.update(stored_bytes=written.stored_bytes, sha256=written.sha256)
            manifest["downloaded"] = {"from": target, "time": now().isoformat()}
            write_json(host, posixpath.join(partial, MANIFEST), manifest)
            staged = Archive(partial, manifest, staged_as=name)
            with job.phase("verifying") if job else nullcontext():
                faults = engine.verify(staged)
            if faults:
                listed = "; ".join(f"{f.component}: {f.problem}" for f in faults)
                raise OffsiteError(f"archive {name} from {target} does not verify: {listed}")
            # Each component came back from the copy and matched the manifest: the copy
            # is proven, as ``verify`` would record it.
            proven = Verification(name, target, True, now().isoformat(), ())
            write_json(host, posixpath.join(partial, OFFSITE), proven.as_dict())
            files = [staged.member(r) for r in staged.components]
            host.run(["chmod", "600", "--", *files])
            host.run(["mv", "-T", "--", partial, final])
        except BaseException:
            host.run(["rm", "-rf", "--", partial], check=False)
            raise
    return Archive(final, manifest)


def folder_names(manifest: dict[str, Any], components: list[Component]) -> None:
    """Give the components of a store archive's *manifest* (which name their snapshots'
    files, ``/project/env/archive/key``) the file names of an archive folder, as the
    env's components name them (``{key}.zst`` for a key the env no longer has)."""
    names = {c.key: c.filename for c in components}
    for entry in manifest.get("components", []):
        key = str(entry.get("key"))
        entry["file"] = names.get(key, f"{key}.zst")


def newest_copied(runtime: Runtime, project: Project, env: str) -> str:
    """The newest archive of the env with a complete offsite copy not known to be bad."""
    rows = [r for r in listing(runtime, project, env) if r.copied and r.offsite != "FAILED"]
    if not rows:
        from opskit.errors import NotFoundError

        raise NotFoundError(
            f"{project.name} {env}: no complete copy on {target_of(runtime, project)}"
        )
    return rows[0].archive


@attrs.frozen
class Pruning:
    """What an offsite prune of one env would forget: its decision, and the snapshots of
    the archives it removes, each checked (:func:`owned`) to be one of the env's own."""

    project: str
    env: str
    target: str
    decision: Decision
    doomed: tuple[str, ...]  # snapshot IDs


def plan_prune(runtime: Runtime, project: Project, env: str) -> Pruning:
    """Which of the env's offsite archives ``offsite.keep`` (the newest N) or else the
    backup's retention rules do not keep. The newest archive whose copy was verified (or,
    none known, the newest complete one) is always kept. Reads, changes nothing."""
    from opskit.archive import NAME_RE, parse_stamp
    from opskit.retention import decide

    target = target_of(runtime, project)
    restic = connect(runtime, target)
    by_archive = {
        name: found
        for name, found in _by_archive(restic, project.name, env).items()
        if NAME_RE.match(name)
    }
    times = {
        name: parse_stamp(NAME_RE.match(name)["stamp"])  # type: ignore[index]
        for name in by_archive
    }
    rows = {row.archive: row for row in _rows(runtime, project, env, target, by_archive)}
    verified = [n for n in sorted(times, reverse=True) if rows.get(n) and rows[n].offsite == "yes"]
    complete = [n for n in sorted(times, reverse=True) if rows.get(n) and rows[n].copied]
    keeper = next(iter(verified or complete), None)
    settings = runtime.settings().offsite_for(project)
    keep = settings.keep if settings else None
    retention = project.backup.retention if project.backup else None
    if keep is not None or retention is None:
        last, daily, weekly, monthly = keep or 1, 0, 0, 0
    else:
        last, daily = retention.keep_last, retention.keep_daily
        weekly, monthly = retention.keep_weekly, retention.keep_monthly
    decision = decide(
        list(times.items()),
        keep_last=last,
        keep_daily=daily,
        keep_weekly=weekly,
        keep_monthly=monthly,
        newest_verified=keeper,
    )
    doomed = tuple(str(s["id"]) for name in decision.remove for s in by_archive[name])
    return Pruning(project.name, env, target, decision, doomed)


def forget(runtime: Runtime, pruning: Pruning, *, then_prune: bool = True) -> None:
    """Forget the snapshots *pruning* names; with *then_prune*, ``restic prune`` frees
    their data (once per repository is enough when several envs share it)."""
    restic = connect(runtime, pruning.target)
    if pruning.doomed:
        restic.run("forget", *pruning.doomed, timeout=None)
    if then_prune:
        restic.run("prune", timeout=None)


def copy(
    runtime: Runtime, project: Project, archive: Archive, job: Job | None = None
) -> Verification:
    """Upload *archive* to the project's target and verify the copy (``backup --offsite``);
    raise :class:`OffsiteError` naming archive and target when the copy is not proven."""
    target = target_of(runtime, project)
    with about(archive.name):
        restic = connect(runtime, target)
    done = upload(restic, archive, job)
    if job is not None:
        job.details.update(offsite_target=target, offsite_sent=done.sent)
    checked = verify(restic, archive, job=job)
    if not checked.ok:
        raise OffsiteError(f"archive {archive.name} on {target}: " + "; ".join(checked.faults))
    return checked


# -- what the commands work on -----------------------------------------------------------


def target_of(runtime: Runtime, project: Project) -> str:
    found = runtime.settings().offsite_for(project)
    if found is None:
        raise OffsiteError(
            f"{project.name}: no offsite target (offsite.target in its descriptor or in opskit.yaml)"
        )
    return found.target


def _by_archive(
    restic: Restic, project: str, env: str, archive: str | None = None
) -> dict[str, list[dict[str, Any]]]:
    """The env's snapshots (only *archive*'s, when given) by the archive they belong to:
    selected by project AND env (AND archive), and checked again by :func:`owned`."""
    tags = ["opskit", f"project={project}", f"env={env}"]
    if archive is not None:
        tags.append(f"archive={archive}")
    try:
        return owned(restic.snapshots(*tags), project, env, archive)
    except OffsiteError as exc:
        raise OffsiteError(f"{restic.target}: {exc}") from None


def complete_copies(restic: Restic, project: str, env: str) -> list[str]:
    """The archives of the env with a complete copy (manifest and every component the
    manifest names are there, see :func:`by_component`), newest first, from the repository
    alone."""
    from opskit.archive import NAME_RE

    found = _by_archive(restic, project, env)
    return sorted(
        (n for n, s in found.items() if NAME_RE.match(n) and "manifest" in by_component(s)),
        reverse=True,
    )


def _of_archive(restic: Restic, archive: Archive) -> list[dict[str, Any]]:
    """The snapshots of *archive* (of its manifest's project and env)."""
    project, env = archive.manifest.get("project"), archive.manifest.get("environment")
    return _by_archive(restic, str(project), str(env), archive.name).get(archive.name, [])


def archives_in(runtime: Runtime, project: Project, env: str, name: str | None) -> list[Archive]:
    """The named archive, or the newest of the env."""
    from opskit.backups import Engine

    return [Engine(runtime).find(project, env, name)]


@attrs.frozen
class Listed:
    archive: str
    project: str
    env: str
    local: bool
    copied: bool  # every component and the manifest have a complete snapshot
    offsite: str  # "yes" (copied, and read back and matched), "unverified", "FAILED" or "no"
    verified_at: str | None  # the offsite copy's last verification
    size: int | None  # the local copy's bytes (None: not here)
    local_verified: str | None  # the local copy's verify state and time, e.g. "ok 2026-…"


def listing(runtime: Runtime, project: Project, env: str) -> list[Listed]:
    """Each archive of the env, local or offsite or both, newest first."""
    target = target_of(runtime, project)
    by_archive = _by_archive(connect(runtime, target), project.name, env)
    return _rows(runtime, project, env, target, by_archive)


def _rows(
    runtime: Runtime,
    project: Project,
    env: str,
    target: str,
    by_archive: Mapping[str, list[dict[str, Any]]],
) -> list[Listed]:
    from opskit.backups import Engine

    local = {a.name: a for a in Engine(runtime).archives(project, env)}
    rows = []
    for name in sorted(set(local) | set(by_archive), reverse=True):
        have = by_component(by_archive.get(name, []))
        archive = local.get(name)
        if archive is not None:
            needed = {r.key for r in archive.components} | {"manifest"}
            complete = bool(have) and needed <= set(have)
        else:
            complete = "manifest" in have  # what it needs is in the manifest offsite
        record = None
        if archive is not None:
            text = runtime.host.read_existing([posixpath.join(archive.path, OFFSITE)])
            record = json.loads(next(iter(text.values()))) if text else None
            if record is not None and record.get("target") != target:
                record = None
        if not complete:
            state = "no"
        elif record is None:
            state = "unverified"
        else:
            state = "yes" if record.get("ok") else "FAILED"
        verified_at = str(record.get("time")) if record else None
        local_verified = None
        if archive is not None and archive.verified is not None:
            local_verified = f"{archive.verified_state} {archive.verified.get('time', '')}".strip()
        rows.append(
            Listed(
                name,
                project.name,
                env,
                archive is not None,
                complete,
                state,
                verified_at,
                archive.size if archive is not None else None,
                local_verified,
            )
        )
    return rows
