"""Archives as an attacker or a broken disk leaves them: their database dump changed, and
the checksums in the manifest recomputed, so that ``opskit verify`` passes."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import zstandard


def altered_copy(archive: Path, name: str, change: Callable[[bytes], bytes]) -> Path:
    """A copy of *archive* named *name* beside it, whose database dump is ``change(dump)``."""
    copy = archive.parent / name
    shutil.copytree(archive, copy)
    for result in ("verified.json", "drill.json", "offsite.json"):
        (copy / result).unlink(missing_ok=True)
    manifest = json.loads((copy / "manifest.json").read_text())
    (record,) = [c for c in manifest["components"] if c["kind"] == "database"]
    dump = (
        zstandard.ZstdDecompressor()
        .decompressobj()
        .decompress((copy / record["file"]).read_bytes())
    )
    changed = change(dump)
    stored = zstandard.ZstdCompressor(level=3).compress(changed)
    (copy / record["file"]).write_bytes(stored)
    record.update(
        raw_bytes=len(changed), raw_sha256=hashlib.sha256(changed).hexdigest(),
        stored_bytes=len(stored), sha256=hashlib.sha256(stored).hexdigest(),
    )  # fmt: skip
    (copy / "manifest.json").write_text(json.dumps(manifest))
    return copy


def linked_copy(archive: Path, name: str, other: Path) -> Path:
    """A copy of *archive* named *name* beside it, whose database dump is a link to the
    dump of the *other* archive (another env's), its record (checksums, row counts) taken
    from there: everything matches but where the file leads."""
    copy = archive.parent / name
    shutil.copytree(archive, copy)
    for result in ("verified.json", "drill.json", "offsite.json"):
        (copy / result).unlink(missing_ok=True)
    manifest = json.loads((copy / "manifest.json").read_text())
    theirs = json.loads((other / "manifest.json").read_text())
    (record,) = [c for c in manifest["components"] if c["kind"] == "database"]
    (source,) = [c for c in theirs["components"] if c["key"] == record["key"]]
    record.update(source)
    (copy / record["file"]).unlink()
    (copy / record["file"]).symlink_to(other / source["file"])
    (copy / "manifest.json").write_text(json.dumps(manifest))
    return copy


def into_store(copy: Path, state_dir: str) -> str:
    """The folder archive *copy* (``{backup.dir}/{project}/{env}/{name}``) moved into the
    root's restic store, as ``opskit backups migrate`` moves one: copied and checked
    against its manifest, then its folder removed. Returns its state folder; give it to
    :func:`out_of_store` afterwards."""
    from opskit.host import LocalHost
    from opskit.store import ResticStore

    backups, project, env = copy.parent.parent.parent, copy.parent.parent.name, copy.parent.name
    store = ResticStore(LocalHost(), str(backups), state_dir, project, env)
    store.open(create=True)
    (archive,) = [a for a in store.folders.archives() if a.name == copy.name]
    stored = store.copy_in(archive)
    shutil.rmtree(copy)
    return stored.path


def out_of_store(state: str, state_dir: str) -> None:
    """Remove the store archive whose state folder is *state* (:func:`into_store`'s)."""
    from opskit.host import LocalHost
    from opskit.store import ResticStore

    folder = Path(state)
    backups, project, env = folder.parents[3], folder.parents[2].name, folder.parents[1].name
    store = ResticStore(LocalHost(), str(backups), state_dir, project, env)
    store.remove([a for a in store.stored() if a.name == folder.name])
