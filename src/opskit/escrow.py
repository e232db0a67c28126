"""A copy of each restic password off the server: shown once, its keeping recorded.

The archive store (``STATE_DIR/restic-store-password``) and the offsite copies
(``STATE_DIR/restic-password``) each open their repository with a password that lives on
the server only; lose the server and the repository is noise. ``opskit password KIND
--show`` prints one for the user to keep (a password manager, a printout in a safe), and
``--confirm-escrowed`` records in the state folder that it was kept: the time and a
fingerprint (a prefix of the password's sha256, never the password), so a password file
that changed afterwards makes the record stale. ``doctor`` warns about a password in use
that has no current record.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from typing import TYPE_CHECKING, Any

import attrs

from opskit.errors import NotFoundError, OpskitError

if TYPE_CHECKING:
    from opskit.host import Host
    from opskit.runtime import Runtime

STORE, OFFSITE = "store", "offsite"
KINDS = (STORE, OFFSITE)
RECORD_SUFFIX = ".escrowed"  # beside the password file: the record of its kept copy
CURRENT, STALE, NONE, NO_FILE, UNREADABLE = "current", "stale", "none", "no file", "unreadable"


@attrs.frozen
class Password:
    """One password of the root: which (*kind*), its file, what it opens and who uses it."""

    kind: str
    path: str
    opens: str  # e.g. "the archive store /srv/backups/.restic"
    used_by: tuple[str, ...]  # the projects that need it (none: not in use)

    @property
    def record(self) -> str:
        return self.path + RECORD_SUFFIX


@attrs.frozen
class Escrow:
    """What is known of *password*'s kept copy: its :attr:`state` is ``current`` (recorded,
    and the file has not changed since), ``stale`` (the file changed), ``none`` (never
    recorded), ``no file`` (no password file) or ``unreadable`` (*problem* says why)."""

    password: Password
    state: str
    recorded_at: str | None = None
    fingerprint: str | None = None  # of the file as it is now
    problem: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.password.kind,
            "path": self.password.path,
            "opens": self.password.opens,
            "used_by": list(self.password.used_by),
            "escrow": self.state,
            "recorded_at": self.recorded_at,
            "fingerprint": self.fingerprint,
        }


def fingerprint(password: str) -> str:
    """A short sha256 of *password* as restic reads it (surrounding whitespace dropped):
    enough to tell a changed password, nothing to recover it from."""
    return "sha256:" + hashlib.sha256(password.strip().encode()).hexdigest()[:16]


def passwords(runtime: Runtime) -> list[Password]:
    """The store's and the offsite copies' passwords of the root, with the projects that
    use each (``backup.store: restic``; an offsite target)."""
    from opskit.offsite import password_file
    from opskit.store import PASSWORD_FILE, REPOSITORY, kind_of

    settings = runtime.settings()
    projects = [p for p in runtime.projects() if p.backup is not None]
    stored = [p for p in projects if kind_of(runtime, p) == "restic"]
    repositories = sorted({posixpath.join(p.backup.dir, REPOSITORY) for p in stored if p.backup})
    copied = [p for p in projects if settings.offsite_for(p) is not None]
    targets = sorted({o.target for p in copied if (o := settings.offsite_for(p)) is not None})
    return [
        Password(
            STORE,
            posixpath.join(settings.state_dir, PASSWORD_FILE),
            "the archive store " + (", ".join(repositories) or "({backup.dir}/.restic)"),
            tuple(p.name for p in stored),
        ),
        Password(
            OFFSITE,
            password_file(settings.state_dir),
            "the offsite repositories " + (", ".join(targets) or "(offsite.target)"),
            tuple(p.name for p in copied),
        ),
    ]


def find(runtime: Runtime, kind: str) -> Password:
    found = {p.kind: p for p in passwords(runtime)}
    if kind not in found:
        raise NotFoundError(f"no password {kind!r}: choose one of {', '.join(KINDS)}")
    return found[kind]


def read(host: Host, password: Password) -> str:
    """The password itself; :class:`~opskit.errors.NotFoundError` when there is no file."""
    if not host.exists(password.path):
        raise NotFoundError(
            f"no {password.kind} password at {password.path} (it is created with "
            f"{'the first backup into the store' if password.kind == STORE else 'opskit offsite init'})"
        )
    try:
        text = host.read_text(password.path).strip()
    except (OSError, OpskitError) as exc:
        raise OpskitError(f"cannot read {password.path}: {exc}") from None
    if not text:
        raise OpskitError(f"{password.path} is empty: restic cannot open anything with it")
    return text


def status(host: Host, password: Password) -> Escrow:
    """Whether a copy of *password* is recorded as kept, and still the password in use."""
    try:
        now_print = fingerprint(read(host, password))
    except NotFoundError:
        return Escrow(password, NO_FILE)
    except OpskitError as exc:
        return Escrow(password, UNREADABLE, problem=str(exc))
    try:
        texts = host.read_existing([password.record])
        record = json.loads(texts[password.record]) if texts else None
    except (OSError, OpskitError, ValueError) as exc:
        return Escrow(
            password, UNREADABLE, fingerprint=now_print, problem=f"{password.record}: {exc}"
        )
    if not isinstance(record, dict):
        return Escrow(password, NONE, fingerprint=now_print)
    kept = record.get("fingerprint") == now_print
    return Escrow(password, CURRENT if kept else STALE, str(record.get("time") or ""), now_print)


def confirm(host: Host, password: Password) -> Escrow:
    """Record that a copy of *password*, as its file holds it now, is kept off the server:
    the time and its fingerprint, mode 0600, written whole or not at all."""
    from opskit.archive import now, write_json

    printed = fingerprint(read(host, password))
    moment = now().isoformat(timespec="seconds")
    partial = password.record + ".new"
    record = {"fingerprint": printed, "time": moment, "file": password.path}
    write_json(host, partial, record)
    host.run(["mv", "-f", "--", partial, password.record])
    return Escrow(password, CURRENT, moment, printed)
