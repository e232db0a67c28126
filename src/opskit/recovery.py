"""The server is gone: the root's configuration back from offsite (``rebuild --all --offsite``).

What :mod:`opskit.rootconfig` sent is read back and laid out under the new root: every
file at its path, with the old root's path replaced by the new one and any ``--rewrite
OLD=NEW`` applied, to the paths and to the text of each file (another folder, another
namespace, other ports on the new machine). A file already there with other content is
never overwritten. Which envs come back first is ``rebuild.order`` of ``opskit.yaml``.

Progress is a record in the state folder (:data:`PROGRESS`): the snapshot laid out and
each env brought back, so that a rebuild interrupted goes on where it stopped.
"""

from __future__ import annotations

import hashlib
import io
import json
import posixpath
import tarfile
from typing import TYPE_CHECKING, Any

import attrs

from opskit.errors import OpskitError
from opskit.restic import COMPLETE

if TYPE_CHECKING:
    from opskit.descriptor import Project
    from opskit.host import Host
    from opskit.restic import Restic
    from opskit.runtime import Runtime
    from opskit.settings import Settings

PROGRESS = "rebuild-all.json"
ROOT_TAG = "root="


class RecoveryError(OpskitError):
    """The configuration cannot be read back or laid out."""


@attrs.frozen
class ConfigFile:
    path: str  # where it goes on this machine
    mode: int
    data: bytes


@attrs.frozen
class Configuration:
    """One configuration backup, as it is laid out on this machine."""

    target: str
    snapshot: str
    time: str
    old_root: str
    files: tuple[ConfigFile, ...]
    rewrites: tuple[tuple[str, str], ...]

    def file(self, path: str) -> ConfigFile | None:
        return next((f for f in self.files if f.path == path), None)


def open_target(runtime: Runtime, target: str, password_file: str) -> Restic:
    """restic against *target* with the password in *password_file* (on the host)."""
    from opskit.offsite import resolve
    from opskit.restic import Restic, check_restic

    check_restic(runtime.host)
    if not runtime.host.exists(password_file):
        raise RecoveryError(
            f"no password file at {password_file}: the offsite repository's password, kept "
            "outside the old server (--password-file PATH)"
        )
    return Restic(runtime.host, target, password_file, resolve(runtime, target))


def newest(restic: Restic, from_root: str | None) -> dict[str, Any]:
    """The newest complete configuration backup in the repository (of *from_root* when
    given; several roots there and none chosen is refused, naming them)."""
    from opskit.rootconfig import TAG

    found = [s for s in restic.snapshots("opskit", TAG) if COMPLETE in (s.get("tags") or [])]
    roots = sorted({old_root(s) for s in found})
    if from_root is not None:
        found = [s for s in found if old_root(s) == from_root]
    elif len(roots) > 1:
        raise RecoveryError(
            f"{restic.target} holds the configuration of several roots ({', '.join(roots)}): "
            "choose one with --from-root"
        )
    if not found:
        which = f" of root {from_root}" if from_root else ""
        raise RecoveryError(
            f"{restic.target}: no configuration backup{which} ('opskit offsite config' "
            "makes one; the nightly opskit-config timer sends it)"
        )
    return max(found, key=lambda s: str(s.get("time")))


def old_root(snapshot: dict[str, Any]) -> str:
    tags = snapshot.get("tags") or []
    return next((t.removeprefix(ROOT_TAG) for t in tags if t.startswith(ROOT_TAG)), "")


def read(
    restic: Restic,
    snapshot: dict[str, Any],
    new_root: str,
    rewrites: tuple[tuple[str, str], ...] = (),
) -> Configuration:
    """The files of configuration backup *snapshot*, mapped onto this machine: the old
    root's path becomes *new_root*, then each (OLD, NEW) of *rewrites* is replaced, in
    paths and in the text of every file that is text (a SQLite database stays as it was)."""
    from opskit.rootconfig import FILENAME, SQLITE

    source = old_root(snapshot)
    pairs = tuple(rewrites) + (((source, new_root),) if source and source != new_root else ())
    process = restic.dump(str(snapshot["id"]), f"/{FILENAME}")
    data = process.stdout.read()  # configuration: small files (rootconfig.LIMIT each)
    if process.wait() != 0:
        raise RecoveryError(
            f"{restic.target}: the configuration backup {str(snapshot['id'])[:8]} cannot be "
            f"read back: {process.errors()}"
        )
    files = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        for member in tar:
            name = "/" + member.name
            if not member.isfile() or ".." in name.split("/"):
                raise RecoveryError(
                    f"{restic.target}: the configuration backup holds {member.name!r}, "
                    "not a plain file of the root: refused"
                )
            extracted = tar.extractfile(member)
            content = extracted.read() if extracted is not None else b""
            if posixpath.basename(name) == PROGRESS:
                continue  # the old server's own rebuild, not this one's
            if not name.endswith(SQLITE):
                content = _rewritten(content, pairs)
            files.append(ConfigFile(rewritten(name, pairs), member.mode & 0o777, content))
    return Configuration(
        restic.target,
        str(snapshot["id"]),
        str(snapshot.get("time", "")),
        source,
        tuple(files),
        pairs,
    )


def rewritten(text: str, pairs: tuple[tuple[str, str], ...]) -> str:
    """*text* with each (OLD, NEW) of *pairs* replaced, in order."""
    for old, new in pairs:
        text = text.replace(old, new)
    return text


def _rewritten(content: bytes, pairs: tuple[tuple[str, str], ...]) -> bytes:
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        return content
    return rewritten(text, pairs).encode("utf-8")


def present(host: Host, config: Configuration) -> dict[str, str]:
    """The files of *config* that exist here, with the sha256 of their content (one
    ``sha256sum`` for all: a missing file is only a line on its stderr)."""
    if not config.files:
        return {}
    listed = host.run(["sha256sum", "--", *(f.path for f in config.files)], check=False).text
    return {line[66:]: line[:64] for line in listed.splitlines() if len(line) > 66}


def lay_out(host: Host, config: Configuration) -> int:
    """Write every file of *config* not already here as it is; return how many were
    written. Refuses (before writing any) a file that exists with other content."""
    there = present(host, config)
    clashing = sorted(
        f.path
        for f in config.files
        if f.path in there and there[f.path] != hashlib.sha256(f.data).hexdigest()
    )
    if clashing:
        raise RecoveryError(
            f"{len(clashing)} files of the configuration exist here with other content "
            f"({', '.join(clashing[:3])}{', …' if len(clashing) > 3 else ''}): lay out "
            "into an empty root, or move them away"
        )
    written = 0
    for item in config.files:
        if item.path in there:
            continue
        folder = posixpath.dirname(item.path)
        host.run(["mkdir", "-p", "--", folder])
        with host.open_write(item.path) as stream:
            stream.write(item.data)
        host.run(["chmod", format(item.mode or 0o600, "o"), "--", item.path])
        written += 1
    return written


# -- progress -------------------------------------------------------------------------------


def load_progress(host: Host, state_dir: str) -> dict[str, Any]:
    path = posixpath.join(state_dir, PROGRESS)
    text = host.read_existing([path]).get(path)
    try:
        return dict(json.loads(text)) if text else {}
    except ValueError:  # cut short by a kill: what it said is done again
        return {}


def save_progress(host: Host, state_dir: str, progress: dict[str, Any]) -> None:
    from opskit.archive import write_json

    host.run(["mkdir", "-p", "-m", "700", "--", state_dir])
    path = posixpath.join(state_dir, PROGRESS)
    partial = f"{path}.partial"
    host.run(["rm", "-f", "--", partial])
    write_json(host, partial, progress)
    host.run(["mv", "-T", "--", partial, path])  # whole or not at all, even when killed


# -- order ----------------------------------------------------------------------------------


def order(settings: Settings, everything: list[tuple[Project, str]]) -> list[tuple[Project, str]]:
    """*everything* (the root's envs), those of ``rebuild.order`` first (in its order),
    the rest in the root's order. An entry naming no project or env of the root is refused."""
    first: list[tuple[Project, str]] = []
    for entry in settings.rebuild_order:
        known = [(p, e) for p, e in everything if p.name == entry.project]
        if not known:
            raise RecoveryError(
                f"{settings.path}:{entry.line}: rebuild.order: no project {entry.project!r} "
                "in the root"
            )
        if entry.env is not None:
            known = [(p, e) for p, e in known if e == entry.env]
            if not known:
                raise RecoveryError(
                    f"{settings.path}:{entry.line}: rebuild.order: {entry.project} has no "
                    f"env {entry.env!r}"
                )
        first += [pair for pair in known if pair not in first]
    return first + [pair for pair in everything if pair not in first]


def projects_of(config: Configuration, new_root: str) -> tuple[Settings, list[Project]]:
    """The settings and projects of *config* as laid out under *new_root*, read from the
    backup alone (``opskit.yaml`` and ``*/project.yaml``, as the root's discovery finds them)."""
    from opskit.contracts import DescriptorSource
    from opskit.descriptor import load_projects
    from opskit.settings import FILENAME, Settings, parse_settings

    path = posixpath.join(new_root, FILENAME)
    found = config.file(path)
    settings = parse_settings(path, found.data.decode("utf-8")) if found else Settings()
    sources = [
        DescriptorSource(f.path, f.data.decode("utf-8"))
        for f in config.files
        if posixpath.basename(f.path) == "project.yaml"
        and posixpath.dirname(posixpath.dirname(f.path)) == new_root.rstrip("/")
    ]
    return settings, load_projects(sources)
