"""Where an env's archives live: the archive folder (``backup.store: folder``, plain files,
see docs/archive-format.md) or one restic repository per backup root
(``backup.store: restic``, ``{backup.dir}/.restic``), deduplicated from night to night.

A store lists the env's complete archives, opens one by name, writes a new one component
by component and commits it with its manifest, and removes archives. Reading a
component back goes through :func:`opskit.archive.component_stream` for both.

In the restic store each component is one snapshot of its raw stream and the manifest
is a snapshot of its own, written last: an archive is listed only when its manifest's
snapshot is complete, so an interrupted backup lists nothing, and the next backup (or
prune) of the env forgets what it left. What opskit records about an archive
(verified.json, drill.json, offsite.json, a copy of the manifest) lives in a small state
folder, ``{backup.dir}/{project}/{env}/.state/{archive}/``. The repository's password is
``STATE_DIR/restic-store-password`` (mode 0600), created with the repository.
"""

from __future__ import annotations

import contextlib
import io
import json
import posixpath
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from typing import IO, TYPE_CHECKING, Any

import attrs

from opskit import restic_key
from opskit.archive import (
    DRILLED,
    MANIFEST,
    NAME_RE,
    OFFSITE,
    TREE,
    VERIFIED,
    Archive,
    ArchiveError,
    ComponentRecord,
    Feeding,
    TreePut,
    Written,
    component_stream,
    folder_put,
    is_tree,
    list_archives,
    manifest_bytes,
    now,
    write_json,
)
from opskit.contracts import Repository
from opskit.errors import OpskitError
from opskit.locks import env_lock
from opskit.output import warning
from opskit.restic import (
    IncompleteTree,
    Restic,
    ResticError,
    check_restic,
    create_password_file,
    filename,
    owned,
    tags,
)

if TYPE_CHECKING:
    from opskit.components import BackupContext, Component
    from opskit.descriptor import Project
    from opskit.host import Host
    from opskit.runtime import Runtime

REPOSITORY = ".restic"  # in backup.dir: one repository for the projects of the root
PASSWORD_FILE = "restic-store-password"  # in the state folder
STATE = ".state"  # in the env's folder: one state folder per archive of the store
LOCKED_WAIT = 300.0  # seconds a forget or prune waits for other restic processes
ROOT_LOCK = ".restic.lock"  # in backup.dir: held around each restic command of the store


class FolderStore:
    """Archives as folders in ``{backup.dir}/{project}/{env}`` (the format of
    docs/archive-format.md)."""

    def __init__(self, host: Host, directory: str) -> None:
        self.host = host
        self.directory = directory

    def archives(self) -> list[Archive]:
        """The complete archives, newest first."""
        return list_archives(self.host, self.directory)

    def taken(self, name: str) -> bool:
        return self.host.exists(posixpath.join(self.directory, name))

    def absent(self, name: str) -> str:
        """What to tell a user who asked for the archive *name*, which is not listed."""
        return f"no archive {name} in {self.directory}"

    def clean(self) -> None:
        """Remove what an interrupted backup or prune left."""
        stale = [
            n
            for n in self.host.listdir(self.directory)
            if n.startswith(".") and n.endswith((".partial", ".removing"))
        ]
        if stale:
            paths = (posixpath.join(self.directory, n) for n in stale)
            self.host.run(["rm", "-rf", "--", *paths])

    def begin(self, name: str) -> FolderWriter:
        return FolderWriter(self.host, self.directory, name)

    def remove(self, archives: Iterable[Archive]) -> None:
        for archive in archives:
            # Renamed first, so a half-removed archive is never listed.
            doomed = posixpath.join(self.directory, f".{archive.name}.removing")
            self.host.run(["mv", "-T", "--", archive.path, doomed])
            self.host.run(["rm", "-rf", "--", doomed])


class FolderWriter:
    """A new archive folder, written as ``.{name}.partial`` and renamed when complete."""

    tree: TreePut | None = None  # every component is a file of its stream

    def __init__(self, host: Host, directory: str, name: str) -> None:
        self.host = host
        self.directory = directory
        self.name = name
        self.partial = posixpath.join(directory, f".{name}.partial")
        host.run(["mkdir", "-m", "700", "--", self.partial])
        self.put = folder_put(host, self.partial)

    def commit(self, manifest: dict[str, Any]) -> Archive:
        write_json(self.host, posixpath.join(self.partial, MANIFEST), manifest)
        files = [posixpath.join(self.partial, c["file"]) for c in manifest["components"]]
        files.append(posixpath.join(self.partial, MANIFEST))
        self.host.run(["chmod", "600", "--", *files])  # whatever the umask
        self.host.run(["sync", "--", *files, self.partial])
        final = posixpath.join(self.directory, self.name)
        self.host.run(["mv", "-T", "--", self.partial, final])
        self.host.run(["sync", "--", self.directory])
        return Archive(final, manifest)

    def abort(self) -> None:
        self.host.run(["rm", "-rf", "--", self.partial], check=False)


class ResticStore:
    """The env's archives in the root's restic repository; folder archives of the env
    (written before the switch, or downloaded from offsite) are listed beside them."""

    def __init__(
        self,
        host: Host,
        root: str,
        state_dir: str,
        project: str,
        env: str,
        lock_timeout: float = LOCKED_WAIT,
    ) -> None:
        self.host = host
        self.root = root
        self.lock_timeout = lock_timeout
        self.project = project
        self.env = env
        self.directory = posixpath.join(root, project, env)
        self.folders = FolderStore(host, self.directory)
        self.repository = posixpath.join(root, REPOSITORY)
        # What this store read of the repository, until it changes it: one command (a
        # scheduled backup: clean, name, parents, verify, prune) asked restic for the
        # same listing six times, 0.3-0.6 s each.
        self._opened = False
        self._listing: dict[str, list[dict[str, Any]]] | None = None
        self.restic = Restic(
            host,
            self.repository,
            posixpath.join(state_dir, PASSWORD_FILE),
            Repository(self.repository),
            # The repository is on this disk: a cache would only copy its index.
            ("--no-cache",),
            self._guard,
        )

    def _guard(self, exclusive: bool) -> AbstractContextManager[None]:
        """The root's lock around a restic command: the projects of a root share the
        repository, and restic (0.14) does not wait for a lock, it fails. Removing data
        (forget, prune) holds it alone; reading and adding hold it together."""
        what = "removing from" if exclusive else "using"
        return env_lock(
            self.host,
            self.root,
            f"{what} the archive store {self.repository}",
            self.lock_timeout,
            shared=not exclusive,
            name=ROOT_LOCK,
        )

    def state(self, name: str) -> str:
        return posixpath.join(self.directory, STATE, name)

    # -- the repository ------------------------------------------------------------------

    def _exists(self) -> bool:
        return self.host.exists(posixpath.join(self.repository, "config"))

    def _password(self) -> None:
        if not self.host.exists(self.restic.password_file):
            raise ArchiveError(
                f"the archive store {self.repository} has no password file at "
                f"{self.restic.password_file}: put back the copy you kept (docs/project-yaml.md)"
            )

    def open(self, create: bool = False, like: Restic | None = None) -> bool:
        """Check restic and the password; with *create*, make the repository (and its
        password) when there is none, with *like*'s chunker parameters when given (an
        offsite repository that ``restic copy`` will fill). Return whether the
        repository exists."""
        if self._opened:
            return True
        if not self._exists():
            if not create:
                return False
            check_restic(self.host)
            create_password_file(self.host, self.restic.password_file)  # unless it exists
            self.host.run(["mkdir", "-p", "-m", "700", "--", posixpath.dirname(self.repository)])
            try:
                self.restic.init(like)
            except ResticError:
                if not self._exists():  # else another env of the root made it just now
                    raise
            else:
                self._fast_key()
            self._opened = True
            return True
        check_restic(self.host)
        self._password()
        self._opened = True
        return True

    def _fast_key(self) -> None:
        """Wrap the new repository's key for a cheap key derivation (see
        :mod:`opskit.restic_key`): anyone who can read the repository on this disk can read
        its password file beside it, and the password is 256 random bits. When that cannot
        be done, the repository keeps restic's own key, and every command pays its 0.5 s."""
        try:
            restic_key.rewrap(
                self.host, self.repository, self.restic.password_file, self.restic.exists
            )
        except (restic_key.KeyFileError, OpskitError, ValueError, OSError) as exc:
            warning(f"the archive store {self.repository} keeps restic's slower key: {exc}")

    def changed(self) -> None:
        """Forget what was read of the repository: this store just changed it."""
        self._listing = None

    def _locked(self, *args: str) -> str:
        """Run restic (a command that changes the repository: forget, prune), waiting
        while another restic process holds the repository's lock (a backup of another env
        of the root)."""
        self.changed()
        deadline = time.monotonic() + self.lock_timeout
        while True:
            try:
                return self.restic.run(*args, timeout=None)
            except ResticError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
            self.restic.unlock()  # a lock left by a restic that no longer runs
            time.sleep(2)

    def _groups(self) -> dict[str, list[dict[str, Any]]]:
        """The env's snapshots by archive (checked to be the env's own), read once until
        this store changes the repository."""
        if self._listing is None:
            try:
                found = self.restic.snapshots(
                    "opskit", f"project={self.project}", f"env={self.env}"
                )
            except ResticError as exc:
                raise ArchiveError(f"{self.project} {self.env}: {exc}") from None
            self._listing = owned(found, self.project, self.env)
        return {name: list(group) for name, group in self._listing.items()}

    # -- listing -------------------------------------------------------------------------

    def archives(self) -> list[Archive]:
        """The complete archives of the env (in the repository and folders), newest first."""
        folders = self.folders.archives()
        if not self.open():
            return folders
        found = [archive for archive, _ in self._stored()]
        twice = {a.name for a in folders} & {a.name for a in found}
        if twice:
            raise ArchiveError(
                f"archive {min(twice)} is both a folder in {self.directory} and in "
                f"{self.repository} (a migration cut short): run opskit backups migrate "
                f"{self.project} {self.env} to finish it; nothing was changed"
            )
        return sorted([*folders, *found], key=lambda a: a.name, reverse=True)

    def stored(self) -> list[Archive]:
        """The env's archives in the repository alone (its folders left out), newest first."""
        if not self.open():
            return []
        return sorted((a for a, _ in self._stored()), key=lambda a: a.name, reverse=True)

    def _stored(
        self, groups: dict[str, list[dict[str, Any]]] | None = None
    ) -> list[tuple[Archive, list[dict[str, Any]]]]:
        """The env's archives in the repository (among *groups*, the env's snapshots by
        archive), each with all snapshots of its name. An archive counts when its
        manifest's snapshot holds the whole manifest (as many bytes as its ``bytes=`` tag
        says); the manifest names its components' snapshots."""
        groups = self._groups() if groups is None else groups
        manifests = manifest_snapshots(groups)
        files = (VERIFIED, DRILLED, OFFSITE)
        paths = [posixpath.join(self.state(name), f) for name in manifests for f in files]
        paths += [self._cached(name, str(m["id"])) for name, m in manifests.items()]
        texts = self.host.read_existing(paths)
        found = []
        whose = {"project": self.project, "environment": self.env}
        for name, snapshot in manifests.items():
            cached = self._cached(name, str(snapshot["id"]))
            text = texts.get(cached)
            if text is None:
                bare = Archive(
                    self.state(name),
                    whose,
                    restic=self.restic,
                    snapshots={"manifest": str(snapshot["id"])},
                )
                raw = manifest_bytes(self.host, bare)
                if f"bytes={len(raw)}" not in snapshot.get("tags", []):
                    continue  # cut off while it was written: a leftover, never listed
                text = raw.decode("utf-8", "replace")
                self._remember(name, cached, text)
            try:
                manifest = json.loads(text)
                state = [texts.get(posixpath.join(self.state(name), f)) for f in files]
                verified, drilled, offsite = (json.loads(t) if t else None for t in state)
                snapshots = {str(k): str(v) for k, v in manifest["store"]["snapshots"].items()}
            except (ValueError, KeyError, TypeError, AttributeError):
                raise ArchiveError(
                    f"archive {name}: its manifest or state in {self.repository} is damaged"
                ) from None
            if {k: manifest.get(k) for k in whose} != whose:
                raise ArchiveError(f"archive {name} is not one of {self.project} {self.env}")
            snapshots["manifest"] = str(snapshot["id"])
            # a component whose snapshot is gone (forgotten by hand) reads as missing
            full = {key: _full_id(groups[name], i) for key, i in snapshots.items()}
            snapshots = {key: i for key, i in full.items() if i is not None}
            archive = Archive(
                self.state(name),
                manifest,
                verified,
                drilled,
                offsite,
                restic=self.restic,
                snapshots=snapshots,
            )
            found.append((archive, groups[name]))
        return found

    def _cached(self, name: str, snapshot: str) -> str:
        # by the short ID: restic's backup summary gives that one, its listing the full one
        return posixpath.join(self.state(name), f"manifest-{snapshot[:8]}.json")

    def _remember(self, name: str, path: str, text: str) -> None:
        """Keep a copy of the manifest in the archive's state folder (listing reads it
        there instead of asking restic each time)."""
        try:
            manifest = json.loads(text)
        except ValueError:
            return  # listing says so
        self.make_state(name)
        write_json(self.host, path, manifest)

    def make_state(self, name: str) -> str:
        """The archive's state folder, created readable by the owner only (as ``.state``)."""
        path = self.state(name)
        self.host.run(["sh", "-c", 'umask 077 && mkdir -p -- "$1"', "opskit", path])
        return path

    def taken(self, name: str) -> bool:
        return self.folders.taken(name) or (self.open() and name in self._groups())

    def absent(self, name: str) -> str:
        """What to tell a user who asked for the archive *name*, which is not listed: what
        an interrupted backup left is named as such."""
        if self.open() and name in self._groups():
            return (
                f"archive {name} in {self.repository} is incomplete: its manifest was never "
                f"written whole (a backup cut off); the next backup of {self.project} "
                f"{self.env} forgets it"
            )
        return f"no archive {name} in {self.directory} or {self.repository}"

    # -- writing -------------------------------------------------------------------------

    def clean(self) -> None:
        """Forget the snapshots no listed archive names (what an interrupted backup
        wrote), and remove the state folders of archives that are gone."""
        self.folders.clean()
        if not self.open():
            return
        if self.host.listdir(posixpath.join(self.repository, "locks")):
            self.restic.unlock()  # only restic can tell a stale lock from a live one
        groups = self._groups()
        stored = self._stored(groups)
        named = {i for archive, _ in stored for i in archive.snapshots.values()}
        leftovers = [
            str(s["id"]) for group in groups.values() for s in group if s["id"] not in named
        ]
        if leftovers:
            try:
                self._locked("forget", *leftovers)
            except ResticError as exc:  # they never count; the next backup tries again
                warning(f"{self.project} {self.env}: leftovers stay in the store for now: {exc}")
        states = posixpath.join(self.directory, STATE)
        listed = {archive.name for archive, _ in stored}
        gone = [n for n in self.host.listdir(states) if n not in listed]
        if gone:
            self.host.run(["rm", "-rf", "--", *(posixpath.join(states, n) for n in gone)])

    def begin(self, name: str) -> ResticWriter:
        self.open(create=True)
        return ResticWriter(self, name)

    def copy_in(self, archive: Archive, advance: Callable[[int], None] | None = None) -> Archive:
        """Copy the folder archive *archive* into the repository as a backup writes one:
        each component's raw stream (decompressed on the fly, never to a file), checked
        against the manifest's checksums, then the manifest, keeping the archive's name;
        its verified, drill and offsite state goes to its state folder. A component
        that does not match is an :class:`ArchiveError`, and nothing of the copy stays."""
        import zstandard

        writer = self.begin(archive.name)
        try:
            records = []
            for record in archive.components:
                try:
                    with component_stream(self.host, archive, record) as source:
                        raw = Feeding(source, advance=advance)
                        writer._send(record.key, raw)
                except (OSError, zstandard.ZstdError) as exc:
                    raise ArchiveError(
                        f"archive {archive.name}: {record.key}: cannot read {record.file}: {exc}"
                    ) from None
                digest = raw.hash.hexdigest()
                if raw.size != record.raw_bytes or digest != record.raw_sha256:
                    raise ArchiveError(
                        f"archive {archive.name}: {record.key}: {record.file} does not match "
                        "its manifest (content checksum mismatch)"
                    )
                file = filename(self.project, self.env, archive.name, record.key)
                records.append(
                    {**record.as_dict(), "file": file, "stored_bytes": raw.size, "sha256": digest}
                )
            manifest = {
                **archive.manifest,
                "components": records,
                "migrated": {"from": archive.path, "time": now().isoformat()},
            }
            copied = writer.commit(manifest)
        except BaseException:
            writer.abort()
            raise
        return self.carry_state(archive, copied)

    def carry_state(self, folder: Archive, stored: Archive) -> Archive:
        """*stored* with the verified, drill and offsite state of its *folder* copy, which
        are written to its state folder."""
        state = {VERIFIED: folder.verified, DRILLED: folder.drilled, OFFSITE: folder.offsite}
        for name, data in state.items():
            if data is not None:
                write_json(self.host, posixpath.join(stored.path, name), data)
        return attrs.evolve(
            stored, verified=folder.verified, drilled=folder.drilled, offsite=folder.offsite
        )

    def remove(self, archives: Iterable[Archive]) -> None:
        """Forget the archives' snapshots, then ``restic prune`` once; remove their state."""
        doomed = list(archives)
        self.folders.remove(a for a in doomed if a.restic is None)
        stored = [a for a in doomed if a.restic is not None]
        if not stored:
            return
        groups = self._groups()
        ids = [str(s["id"]) for a in stored for s in groups.get(a.name, [])]
        if ids:
            self._locked("forget", *ids)
        self.host.run(["rm", "-rf", "--", *(a.path for a in stored)])
        self._locked("prune")


class ResticWriter:
    """A new archive in the store: a snapshot per component, the manifest's last."""

    def __init__(self, store: ResticStore, name: str) -> None:
        self.store = store
        self.name = name
        self.written: dict[str, str] = {}  # snapshot by component key
        self._parents: dict[str, str] | None = None

    def _send(self, key: str, source: Feeding, *extra: str) -> str:
        """One stream into one snapshot; restic must have read every byte of it."""
        store = self.store
        name = filename(store.project, store.env, self.name, key)
        try:
            summary = store.restic.backup(
                source,  # type: ignore[arg-type]
                name,
                [*tags(store.project, store.env, self.name, key), *extra],
            )
        except ResticError as exc:
            raise ArchiveError(f"archive {self.name}: {key}: {exc}") from None
        snapshot = str(summary.get("snapshot_id"))
        self.written[key] = snapshot
        self.store.changed()
        read = int(summary.get("total_bytes_processed") or 0)
        if read != source.size:
            raise ArchiveError(
                f"archive {self.name}: {key}: restic read {read} of {source.size} bytes"
            )
        return snapshot

    def put(
        self, component: Component, source: IO[bytes], ledger: Any, advance: Any
    ) -> tuple[str, Written]:
        raw = Feeding(source, ledger, advance)
        self._send(component.key, raw)
        raw.finish()
        digest = raw.hash.hexdigest()
        # The store keeps the raw stream: stored bytes and checksum are the raw ones.
        file = filename(self.store.project, self.store.env, self.name, component.key)
        return file, Written(raw.size, digest, raw.size, digest)

    def tree(
        self, component: Component, context: BackupContext, advance: Callable[[int], None] | None
    ) -> ComponentRecord | None:
        """Keep a path or volume as a tree: ``restic backup`` of the folder, where it is,
        against the snapshot of the same component in the env's newest archive that kept
        it as a tree (restic then reads only the files that changed). None for other
        components, and for a volume restic cannot read here (said in one warning line):
        those go as streams."""
        from opskit.components import NotTree, TarTree

        if not isinstance(component, TarTree):
            return None
        try:
            folder = component.tree_folder(context)
        except NotTree as exc:
            warning(f"{component.key}: {exc}: kept as a tar stream, read in full every night")
            return None
        if folder is None:
            return None
        store, key = self.store, component.key
        parent = self.parents().get(key)
        labels = tags(store.project, store.env, self.name, key)
        try:
            try:
                summary = store.restic.backup_tree(folder, labels, parent, advance)
            except ResticError as exc:
                if not parent or parent not in str(exc) or isinstance(exc, IncompleteTree):
                    raise
                # The parent is gone (forgotten by hand, a damaged index): the first
                # night again, every file read.
                warning(f"{key}: its previous snapshot {parent[:8]} is gone: read in full")
                parent = None
                summary = store.restic.backup_tree(folder, labels, parent, advance)
            snapshot = str(summary.get("snapshot_id"))
            self.written[key] = snapshot
            self.store.changed()
            root = store.restic.tree(snapshot)
        except IncompleteTree as exc:
            if exc.snapshot:
                self.written[key] = exc.snapshot  # forgotten by abort
                self.store.changed()
            raise ArchiveError(f"archive {self.name}: {key}: {exc}") from None
        except ResticError as exc:
            raise ArchiveError(f"archive {self.name}: {key}: {exc}") from None
        return tree_record(component, self.file(key), folder, root, summary, parent)

    def parents(self) -> dict[str, str]:
        """The snapshot of each tree component in the env's newest archive that has it."""
        if self._parents is None:
            self._parents = {}
            for archive in self.store.stored():  # newest first
                for record in archive.components:
                    if is_tree(record) and record.key in archive.snapshots:
                        self._parents.setdefault(record.key, archive.snapshots[record.key])
        return self._parents

    def file(self, key: str) -> str:
        return filename(self.store.project, self.store.env, self.name, key)

    def commit(self, manifest: dict[str, Any]) -> Archive:
        """Write the manifest, naming each component's snapshot, as the last snapshot."""
        store = self.store
        manifest = {**manifest, "store": {"type": "restic", "snapshots": dict(self.written)}}
        text = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
        size = f"bytes={len(text)}"
        snapshot = self._send("manifest", Feeding(io.BytesIO(text)), size)
        store.changed()
        state = store.make_state(self.name)
        write_json(store.host, store._cached(self.name, snapshot), manifest)
        return Archive(state, manifest, restic=store.restic, snapshots=dict(self.written))

    def abort(self) -> None:
        self.store.changed()
        if self.written:  # never listed: else the next backup of the env forgets them
            with contextlib.suppress(ResticError, OSError):
                self.store._locked("forget", *self.written.values())
        self.store.host.run(["rm", "-rf", "--", self.store.state(self.name)], check=False)


def tree_record(
    component: Component,
    file: str,
    folder: str,
    tree: str,
    summary: dict[str, Any],
    parent: str | None,
) -> ComponentRecord:
    """The manifest record of a component kept as a tree: restic's root *tree* ID where
    a stream's records keep the raw stream's SHA-256, the files' bytes as its sizes, and
    in *details* what verify and drills compare (files, bytes) and how the tree's root
    (*folder*'s name) reads as the component's stream (``member``); see
    docs/archive-format.md."""
    size = int(summary.get("total_bytes_processed") or 0)
    return ComponentRecord(
        key=component.key,
        kind=component.kind,
        file=file,
        raw_bytes=size,
        raw_sha256=tree,
        stored_bytes=size,
        sha256=tree,
        details={
            **component.describe(),
            "stored_as": TREE,
            "root": posixpath.basename(folder.rstrip("/")),
            "member": component.tree_member(""),
            "files": int(summary.get("total_files_processed") or 0),
            "bytes": size,
            "files_unmodified": int(summary.get("files_unmodified") or 0),
            "added_bytes": int(summary.get("data_added") or 0),
            "parent": parent,
        },
    )


def _full_id(group: list[dict[str, Any]], snapshot: str) -> str | None:
    """The full ID of *snapshot* (restic's backup summary gives the short one), None when
    *group* (the archive's snapshots) does not hold it."""
    found = [str(s["id"]) for s in group if str(s["id"]).startswith(snapshot)]
    return found[0] if len(found) == 1 else (snapshot if found else None)


def manifest_snapshots(groups: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """The manifest snapshot of each archive among *groups* (snapshots by archive name)
    that has one; an archive with two (a name written twice) is refused."""
    found = {}
    for name, group in groups.items():
        if not NAME_RE.match(name):
            continue
        manifests = [s for s in group if "component=manifest" in (s.get("tags") or [])]
        if len(manifests) > 1:
            ids = ", ".join(str(s["id"])[:8] for s in manifests)
            raise ArchiveError(
                f"archive {name} has {len(manifests)} manifests in the store (snapshots "
                f"{ids}): an archive name written twice; nothing was changed (keep one: "
                "restic forget the other)"
            )
        if manifests:
            found[name] = manifests[0]
    return found


def store_kind(host: Host, backup_root: str, store: str | None) -> str:
    """The store a project's archives live in: *store* (``backup.store``) when set; else
    ``restic``, unless the root *backup_root* already holds folder archives and no
    store, so that a root written before the store existed stays as it is (doctor names
    ``opskit backups migrate``)."""
    if store is not None:
        return store
    if host.exists(posixpath.join(backup_root, REPOSITORY, "config")):
        return "restic"
    return "folder" if folder_archives(host, backup_root) else "restic"


def kind_of(runtime: Runtime, project: Project) -> str:
    """Where *project*'s archives live, ``folder`` or ``restic``: its ``backup.store``, else
    the root's default (:func:`store_kind`, looked up once per backup root in a runtime)."""
    backup = project.backup
    if backup is None:
        raise OpskitError(f"project {project.name} has no backup section in {project.path}")
    if backup.store is not None:
        return backup.store
    return runtime.memo(
        ("default store", backup.dir), lambda: store_kind(runtime.host, backup.dir, None)
    )


def folder_archives(host: Host, backup_root: str) -> list[str]:
    """The folder archives under *backup_root* (``{project}/{env}/{name}`` of those that
    are complete), found with one ``find``."""
    if not host.exists(backup_root):
        return []
    found = host.run(
        ["find", backup_root, "-mindepth", "4", "-maxdepth", "4", "-name", MANIFEST],
        check=False,
    ).text.splitlines()
    prefix = backup_root.rstrip("/") + "/"
    archives = []
    for path in found:
        relative = posixpath.dirname(path[len(prefix) :]) if path.startswith(prefix) else ""
        parts = relative.split("/")
        if len(parts) == 3 and NAME_RE.match(parts[2]) and not parts[0].startswith("."):
            archives.append(relative)
    return sorted(archives)


def store_of(
    host: Host,
    backup_root: str,
    store: str,
    state_dir: str,
    project: str,
    env: str,
    lock_timeout: float = LOCKED_WAIT,
) -> FolderStore | ResticStore:
    """The store of an env's archives, as ``backup.store`` names it."""
    if store == "restic":
        return ResticStore(host, backup_root, state_dir, project, env, lock_timeout)
    if store == "folder":
        return FolderStore(host, posixpath.join(backup_root, project, env))
    raise OpskitError(f"unknown archive store {store!r}")
