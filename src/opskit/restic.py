"""restic, the engine of offsite copies and of the local archive store.

One :class:`Restic` runs restic against one repository on a host; the password reaches
restic as ``--password-file`` (a path, never the password, in argv). Each component of an
archive is one snapshot of its raw stream, tagged ``opskit``, ``project=``, ``env=``,
``archive=`` and ``component=`` (the manifest is the component ``manifest``), and tagged
``complete`` once restic read every byte: a stream cut off when opskit was killed is a
snapshot restic took for a whole one, and never counts.
"""

from __future__ import annotations

import json
import posixpath
import re
import secrets
import threading
import weakref
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import IO, TYPE_CHECKING, Any

import attrs

from opskit.contracts import Repository
from opskit.errors import OpskitError
from opskit.processes import reaped_on_error

if TYPE_CHECKING:
    from opskit.host import Host, Process

RESTIC_FLOOR = (0, 14, 0)
CHUNK = 1 << 20
COMPLETE = "complete"  # the tag of a snapshot that holds its whole component
EXCLUSIVE = frozenset({"forget", "prune", "init", "tag"})  # commands that change what is kept
# Commands that only read. restic 0.14 writes a lock file for each and then sleeps 200 ms
# before it looks for other locks (internal/restic/lock.go, waitBeforeLockCheck): a fifth
# of a second of every listing, `cat` and `dump`. Where opskit guards the repository itself
# (the local store: a shared flock around these, an exclusive one around forget and prune)
# they run with --no-lock; offsite repositories, which other hosts may prune, keep restic's.
READ_ONLY = frozenset({"snapshots", "cat", "dump", "ls", "find", "stats"})
# restic's Go runtime collects garbage when its heap has grown by GOGC % since the last
# collection (100 by default), so a backup's peak is about twice what it really holds: the
# tree backup of the peer bench's uploads took restic to 99 MB (scale 0.3) and the process
# tree to 259.5 MB (scale 1.0) against issue #22's goal of < 150 MB. At 20 % the same tree
# backup peaked at 68 MB with no time lost (4.25 s against 6.36 s on a loaded machine; an
# unchanged night 1.21 s against 1.24 s). A GOGC in the repository's environment wins.
GOGC = "20"


class ResticError(OpskitError):
    """restic failed, or a repository's snapshots are not what was asked for."""


class ShortRead(ResticError):
    """restic read less (or more) of a stream than its source gave."""


class IncompleteTree(ResticError):
    """restic wrote the snapshot of a folder without some of its files (it could not
    read them); *snapshot* is that snapshot's ID, to be forgotten."""

    def __init__(self, message: str, snapshot: str) -> None:
        super().__init__(message)
        self.snapshot = snapshot


@attrs.frozen
class Restic:
    """restic against one repository, run on *host*."""

    host: Host
    target: str  # the URL or path users know; errors name it
    password_file: str
    repository: Repository
    options: tuple[str, ...] = ()  # e.g. ``--no-cache`` for a repository on this disk
    # Held around each restic command: exclusive (True) for those that remove data, else
    # shared (the local store's lock on its backup root); None: restic's own locks only.
    guard: Callable[[bool], AbstractContextManager[None]] | None = attrs.field(
        default=None, eq=False, repr=False
    )

    def locked(self, exclusive: bool = False) -> AbstractContextManager[None]:
        return self.guard(exclusive) if self.guard is not None else nullcontext()

    @property
    def env(self) -> dict[str, str]:
        """restic's environment: the repository's (credentials) and the Go runtime's."""
        return {"GOGC": GOGC, **self.repository.env}

    @property
    def base(self) -> list[str]:
        return [
            "restic",
            "--repo",
            self.repository.url,
            "--password-file",
            self.password_file,
            *self.options,
        ]

    def command(self, *args: str) -> list[str]:
        """restic's argv for *args* against this repository."""
        unlocked = self.guard is not None and bool(args) and args[0] in READ_ONLY
        return [*self.base, *(["--no-lock"] if unlocked else []), *args]

    def run(self, *args: str, timeout: float | None = None) -> str:
        with self.locked(bool(args) and args[0] in EXCLUSIVE):
            result = self.host.run(self.command(*args), check=False, timeout=timeout, env=self.env)
        if result.returncode != 0:
            raise ResticError(
                f"{self.target}: {last_line(result.stderr.decode('utf-8', 'replace'))}"
            )
        return result.text

    def unlock(self) -> None:
        """Remove the locks of restic processes that no longer run (restic removes only those)."""
        self.host.run([*self.base, "unlock"], check=False, timeout=300, env=self.env)

    def exists(self) -> bool:
        result = self.host.run(
            self.command("cat", "config"), check=False, timeout=120, env=self.env
        )
        return result.returncode == 0

    def snapshots(self, *tags: str) -> list[dict[str, Any]]:
        """The snapshots that carry *every* one of *tags*: one ``--tag a,b`` (restic ORs
        repeated ``--tag`` options, so ``--tag a --tag b`` would select either)."""
        argv = ["snapshots", "--json", *([f"--tag={','.join(tags)}"] if tags else [])]
        return list(json.loads(self.run(*argv, timeout=300) or "[]"))

    def backup(
        self,
        source: IO[bytes],
        filename: str,
        tags: list[str],
        advance: Callable[[int], None] | None = None,
    ) -> dict[str, Any]:
        """Stream *source* into one new snapshot; return restic's summary. *advance* gets
        the bytes restic reports done, from its JSON status lines."""
        with self.locked():
            return self._backup(source, filename, tags, advance)

    def _backup(
        self,
        source: IO[bytes],
        filename: str,
        tags: list[str],
        advance: Callable[[int], None] | None,
    ) -> dict[str, Any]:
        argv = [*self.base, "backup", "--json", "--stdin", "--stdin-filename", filename]
        argv += [f"--tag={','.join(tags)}", "--host", "opskit"]
        process = self.host.popen(argv, stdin=True, merge_stderr=False, env=self.env)
        assert process.stdin is not None
        summary, reader = _summaries(process, advance)
        with reaped_on_error(process):  # no snapshot is written for a stream that did not end
            while chunk := source.read(CHUNK):
                process.stdin.write(chunk)
            process.stdin.close()
        code = process.wait()
        reader.join()
        if code != 0:
            raise ResticError(f"{self.target}: {last_line(process.errors())}")
        if not summary:
            raise ResticError(f"{self.target}: restic reported no summary for {filename}")
        return summary[-1]

    def backup_tree(
        self,
        folder: str,
        tags: list[str],
        parent: str | None = None,
        advance: Callable[[int], None] | None = None,
    ) -> dict[str, Any]:
        """Back up the file or folder *folder* as a tree: restic runs in its parent
        folder with its name as the target, so the snapshot's root holds that name with
        its own mode and owner, and ``restic dump SNAPSHOT /`` is the tar of
        ``tar --create --directory PARENT NAME``. *parent* (a snapshot of the same
        folder) is what restic's change detection compares with: unchanged files are
        not read again. Return restic's summary. A folder restic could not read whole
        (exit 3: the snapshot misses files) raises :class:`IncompleteTree` naming it."""
        with self.locked():
            argv, cwd = tree_backup_argv(self.base, folder, tags, parent)
            process = self.host.popen(argv, cwd=cwd, merge_stderr=False, env=self.env)
            summary, reader = _summaries(process, advance)
            with reaped_on_error(process):
                code = process.wait()
                reader.join()
        if code == 3 and summary:
            raise IncompleteTree(
                f"{self.target}: restic could not read all of {folder}: "
                f"{last_line(process.errors())}",
                str(summary[-1].get("snapshot_id") or ""),
            )
        if code != 0:
            raise ResticError(f"{self.target}: {last_line(process.errors())}")
        if not summary:
            raise ResticError(f"{self.target}: restic reported no summary for {folder}")
        return summary[-1]

    def tree(self, snapshot: str) -> str:
        """The ID of *snapshot*'s root tree: the SHA-256 of its listing, which names the
        hashes of everything below it (restic checks each as it loads it)."""
        try:
            return str(json.loads(self.run("cat", "snapshot", snapshot, timeout=300))["tree"])
        except (ValueError, KeyError, TypeError):
            raise ResticError(f"{self.target}: snapshot {snapshot[:8]} names no tree") from None

    def send(
        self,
        source: IO[bytes],
        filename: str,
        tags: list[str],
        size: Callable[[], int],
        advance: Callable[[int], None] | None = None,
    ) -> dict[str, Any]:
        """One stream into one snapshot, tagged ``complete`` once restic read all of it:
        *size* (asked when the stream has ended) is what the source gave. Return
        restic's summary."""
        summary = self.backup(source, filename, tags, advance)
        read = int(summary.get("total_bytes_processed") or 0)
        snapshot = str(summary.get("snapshot_id"))
        if read != size():
            self.run("forget", snapshot, timeout=300)
            raise ShortRead(f"restic read {read} of {size()} bytes")
        self.run("tag", "--add", COMPLETE, snapshot, timeout=300)
        return summary

    def from_args(self) -> list[str]:
        """The options naming this repository as the *source* of another's ``copy`` or
        ``init --copy-chunker-params``: a path to its password, never the password."""
        return ["--from-repo", self.repository.url, "--from-password-file", self.password_file]

    def copy_argv(self, source: Restic, snapshots: list[str]) -> list[str]:
        """``restic copy`` of *snapshots* from *source* into this repository."""
        return [*self.base, "copy", *source.from_args(), *snapshots]

    def init_argv(self, like: Restic | None = None) -> list[str]:
        """``restic init``, sharing *like*'s chunker parameters when given (so that
        ``restic copy`` between the two keeps the deduplication)."""
        shared = ["--copy-chunker-params", *like.from_args()] if like is not None else []
        return [*self.base, "init", *shared]

    def between(self, other: Restic, argv: list[str], timeout: float | None) -> str:
        """Run *argv*, a command that reads *other* too, holding both repositories' guards
        (this one's as the command needs, *other*'s shared: it is only read)."""
        exclusive = argv[len(self.base)] in EXCLUSIVE
        with other.locked(), self.locked(exclusive):
            env = {**other.env, **self.env}
            result = self.host.run(argv, check=False, timeout=timeout, env=env or None)
        if result.returncode != 0:
            raise ResticError(
                f"{self.target}: {last_line(result.stderr.decode('utf-8', 'replace'))}"
            )
        return result.text

    def copy(self, source: Restic, snapshots: list[str]) -> str:
        """Copy *snapshots* (IDs in *source*) into this repository with ``restic copy``:
        only the blobs this repository lacks travel, and nothing is re-read from the
        data's origin. The copies keep their tags; restic names the source ID as each
        copy's ``original``."""
        return self.between(source, self.copy_argv(source, snapshots), timeout=None)

    def init(self, like: Restic | None = None) -> None:
        """Create this repository, with *like*'s chunker parameters when given."""
        if like is None:
            self.run("init", timeout=300)
        else:
            self.between(like, self.init_argv(like), timeout=300)

    def chunker(self) -> str:
        """The repository's chunker polynomial (from its config): two repositories
        deduplicate against each other through ``restic copy`` only when they share it."""
        try:
            return str(json.loads(self.run("cat", "config", timeout=120))["chunker_polynomial"])
        except (ValueError, KeyError, TypeError):
            raise ResticError(f"{self.target}: its config names no chunker") from None

    def dump(self, snapshot: str, filename: str) -> Process:
        """``restic dump`` of one file; hold :meth:`locked` while it streams."""
        return self.host.popen(
            self.command("dump", snapshot, filename), merge_stderr=False, env=self.env
        )


def _summaries(
    process: Process, advance: Callable[[int], None] | None
) -> tuple[list[dict[str, Any]], threading.Thread]:
    """Read restic's JSON lines of a backup in a thread (a long backup would otherwise
    fill the pipe and stop restic): the summaries go into the list; *advance* gets the
    bytes restic reports done, up to the summary's ``total_bytes_processed`` (restic
    reports its status now and then: a small backup ends before a report counts its
    bytes)."""
    summary: list[dict[str, Any]] = []

    def read_status() -> None:
        done = 0
        for raw in iter(process.stdout.readline, b""):
            if not raw.startswith(b"{"):
                continue
            try:
                message = json.loads(raw)
            except ValueError:
                continue
            kind = message.get("message_type")
            if kind == "summary":
                summary.append(message)
            if kind in ("status", "summary") and advance is not None:
                field = "bytes_done" if kind == "status" else "total_bytes_processed"
                now_done = int(message.get(field) or 0)
                if now_done > done:
                    advance(now_done - done)
                    done = now_done

    reader = threading.Thread(target=read_status, daemon=True)
    reader.start()
    return summary, reader


def tree_backup_argv(
    base: list[str], folder: str, tags: list[str], parent: str | None
) -> tuple[list[str], str]:
    """The argv and working folder of :meth:`Restic.backup_tree` (*base* is restic with
    its repository options)."""
    location, name = posixpath.split(folder.rstrip("/"))
    if not name or name in (".", ".."):
        raise ResticError(f"{folder!r} names no file or folder to back up as a tree")
    argv = [*base, "backup", "--json", f"--tag={','.join(tags)}", "--host", "opskit"]
    argv += [f"--parent={parent}"] if parent else []
    return [*argv, "--", name], location or "/"


# The lines of a Go stack trace: a goroutine header, a frame's function (with its call's
# arguments in a panic's trace, without in an error's stack), its file:line.
_TRACE = re.compile(
    r"^goroutine \d+ |^created by |^[\w./*()-]+\(|^([\w.-]+/)*[\w-]+\.[\w.*()-]+$"
    r"|\.(go|s):\d+( \+0x[0-9a-f]+)?$"
)


def last_line(text: str) -> str:
    """What restic said went wrong, in one line: its ``Fatal:`` line, else the panic that
    a stack trace follows, else its last line that is not part of a stack trace."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return "restic failed"
    fatal = [line for line in lines if line.startswith("Fatal:")]
    if fatal:
        return fatal[-1]
    panics = [line for line in lines if line.startswith(("panic:", "fatal error:"))]
    if panics:
        return panics[0]
    said = [line for line in lines if not _TRACE.search(line)]
    return said[-1] if said else lines[-1]


_CHECKED: weakref.WeakSet[Host] = weakref.WeakSet()  # hosts whose restic passed


def check_restic(host: Host) -> None:
    """Refuse a missing restic, or one older than :data:`RESTIC_FLOOR` (asked once per
    host object: a command opens the store many times)."""
    if host in _CHECKED:
        return
    _check_restic(host)
    _CHECKED.add(host)


def _check_restic(host: Host) -> None:
    result = host.run(["restic", "version"], check=False)
    found = re.search(r"restic (\d+)\.(\d+)\.(\d+)", result.text)
    floor = ".".join(map(str, RESTIC_FLOOR))
    if result.returncode != 0 or not found:
        raise ResticError(
            f"restic is not installed on {host.name} (restic {floor} or later: apt install restic)"
        )
    version = tuple(int(part) for part in found.groups())
    if version < RESTIC_FLOOR:
        raise ResticError(f"restic {'.'.join(found.groups())} on {host.name} is older than {floor}")


def create_password_file(host: Host, path: str) -> None:
    """Write a fresh random password to *path* (mode 0600, its folder 0700) unless it
    exists; the shell writes it from stdin, never from argv."""
    host.run(["mkdir", "-p", "-m", "700", "--", dirname(path)])
    if host.exists(path):
        return
    script = 'umask 077; cat > "$1.new" && mv -- "$1.new" "$1"'
    process = host.popen(["sh", "-c", script, "opskit", path], stdin=True)
    assert process.stdin is not None
    process.stdin.write((secrets.token_urlsafe(32) + "\n").encode())
    process.stdin.close()
    if process.wait() != 0:
        raise ResticError(f"cannot write {path}")


def dirname(path: str) -> str:
    return path.rsplit("/", 1)[0] or "/"


def tags(project: str, env: str, archive: str, key: str) -> list[str]:
    """The tags of one component's snapshot (``manifest`` for the manifest)."""
    return ["opskit", f"project={project}", f"env={env}", f"archive={archive}", f"component={key}"]


def filename(project: str, env: str, archive: str, key: str) -> str:
    """The name of one component's stream inside its snapshot."""
    return f"/{project}/{env}/{archive}/{key}"


def by_component(snapshots: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The newest complete snapshot of each component."""
    found = {}
    for snapshot in sorted(snapshots, key=lambda s: str(s.get("time"))):
        tags = snapshot.get("tags") or []
        if COMPLETE not in tags:
            continue
        for tag in tags:
            if tag.startswith("component="):
                found[tag.removeprefix("component=")] = snapshot
    return found


def incomplete(snapshots: list[dict[str, Any]]) -> list[str]:
    """Snapshots never marked complete: a stream cut off when opskit was killed, which
    restic took for a whole one."""
    return [str(s.get("id")) for s in snapshots if COMPLETE not in (s.get("tags") or [])]


def owned(
    snapshots: list[dict[str, Any]], project: str, env: str, archive: str | None = None
) -> dict[str, list[dict[str, Any]]]:
    """*snapshots*, what restic returned for a selection, by the archive they belong to.
    Each must name exactly *project* and *env* (and *archive*, when given) in its tags,
    with an archive of that env: one that does not raises :class:`ResticError`, before
    anything (a prune's ``forget``) can act on the selection."""
    found: dict[str, list[dict[str, Any]]] = {}
    for snapshot in snapshots:
        tags = [str(tag) for tag in snapshot.get("tags") or []]
        named = {
            key: [tag.partition("=")[2] for tag in tags if tag.startswith(f"{key}=")]
            for key in ("project", "env", "archive")
        }
        name = named["archive"][0] if len(named["archive"]) == 1 else ""
        if (
            named["project"] != [project]
            or named["env"] != [env]
            or not name.startswith(f"{project}-{env}-")
            or archive not in (None, name)
        ):
            snapshot_id = snapshot.get("short_id") or str(snapshot.get("id"))[:8]
            raise ResticError(
                f"restic returned snapshot {snapshot_id} ({', '.join(tags) or 'no tags'}) "
                f"for {project} {env}{f' {archive}' if archive else ''}, and it is not one of "
                "them: nothing was changed"
            )
        found.setdefault(name, []).append(snapshot)
    return found
