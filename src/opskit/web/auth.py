"""Logins for ``opskit serve``: tokens from ``opskit.yaml`` (stored as sha256, read again
when the file changes), sessions in ``runs.sqlite`` (so that they outlive a restart of the
server), and a limit on failed logins per client address."""

from __future__ import annotations

import hashlib
import hmac
import posixpath
import secrets
import sys
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import attrs

from opskit.host import Host, LocalHost
from opskit.runs import RunStore
from opskit.settings import FILENAME, Token, parse_settings

COOKIE = "opskit_session"
SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    sha256 TEXT PRIMARY KEY,   -- of the cookie's value: a stolen database holds no session
    user TEXT NOT NULL,
    role TEXT NOT NULL,
    expires TEXT NOT NULL,
    token TEXT NOT NULL DEFAULT ''  -- the sha256 of the token it was opened with
);
"""
FAILURES = 10  # failed logins from one address within WINDOW_SECONDS, then 429
WINDOW_SECONDS = 300.0


@attrs.frozen
class User:
    name: str
    role: str
    token: str = attrs.field(default="", repr=False)  # the sha256 it logged in with

    @property
    def operator(self) -> bool:
        return self.role == "operator"


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def check_token(tokens: tuple[Token, ...], given: str) -> User | None:
    """The user whose token this is (compared in constant time), or None."""
    found = None
    wanted = digest(given.strip())
    for token in tokens:
        if hmac.compare_digest(token.sha256, wanted):
            found = User(token.name, token.role, token.sha256)
    return found


class Sessions:
    def __init__(self, store: RunStore, hours: float) -> None:
        self.store = store
        self.hours = hours
        with store.lock:
            store.db.executescript(SCHEMA)
            columns = [row[1] for row in store.db.execute("PRAGMA table_info(sessions)")]
            if "token" not in columns:  # sessions of an older opskit: they end
                store.db.execute("ALTER TABLE sessions ADD COLUMN token TEXT NOT NULL DEFAULT ''")

    def open(self, user: User) -> str:
        value = secrets.token_urlsafe(32)
        expires = (datetime.now(UTC) + timedelta(hours=self.hours)).isoformat()
        self.store.query(
            "INSERT INTO sessions (sha256, user, role, expires, token) VALUES (?, ?, ?, ?, ?)",
            (digest(value), user.name, user.role, expires, user.token),
        )
        return value

    def user(self, value: str | None, tokens: tuple[Token, ...]) -> User | None:
        """The session's user, while the session lasts and the token it was opened with is
        still in ``opskit.yaml``, for the same name and role."""
        if not value:
            return None
        rows = self.store.query(
            "SELECT user, role, expires, token FROM sessions WHERE sha256 = ?", (digest(value),)
        )
        row = rows[0] if rows else None
        if row is None or row[2] < datetime.now(UTC).isoformat():
            return None
        if not any((t.name, t.role, t.sha256) == (row[0], row[1], row[3]) for t in tokens):
            return None  # the token was removed, replaced, or its role changed
        return User(row[0], row[1], row[3])

    def close(self, value: str | None) -> None:
        if value:
            self.store.query("DELETE FROM sessions WHERE sha256 = ?", (digest(value),))
        self.store.query("DELETE FROM sessions WHERE expires < ?", (datetime.now(UTC).isoformat(),))


class TokenFile:
    """The tokens of ``opskit.yaml`` as the file is now: a long-running server reads it
    again when it changed (its text is compared at each request: a removed or demoted
    token loses its sessions at the next request). An unreadable or invalid file lets
    nobody in and says why."""

    def __init__(self, host: Host, root: str) -> None:
        self.host = host
        self.path = posixpath.join(root, FILENAME)
        self.text: str | None = None
        self.tokens: tuple[Token, ...] = ()
        self.problem: str | None = None

    def current(self) -> tuple[Token, ...]:
        """The tokens; raises :class:`OpskitError` when the file cannot be read or parsed."""
        from opskit.errors import OpskitError

        text = self._read()
        if text != self.text:
            self.text = text
            try:
                self.tokens = parse_settings(self.path, text).serve.tokens if text else ()
                self.problem = None
            except OpskitError as exc:
                self.tokens, self.problem = (), str(exc)
                log(f"[error] {self.problem}: nobody can log in until it is fixed")
        if self.problem:
            raise OpskitError(f"{self.problem}: nobody can log in until it is fixed")
        return self.tokens

    def _read(self) -> str:
        """The file's text ('' when there is none), read each time: as cheap as a stat
        on this machine, and one command over SSH."""
        from opskit.errors import HostError

        if isinstance(self.host, LocalHost):
            try:
                with open(self.path, encoding="utf-8") as handle:
                    return handle.read()
            except FileNotFoundError:
                return ""
            except (OSError, UnicodeDecodeError) as exc:
                raise HostError(f"cannot read {self.path}: {exc}") from None
        result = self.host.run(["sh", "-c", 'test ! -e "$1" || cat -- "$1"', "sh", self.path],
                               check=False)  # fmt: skip
        if result.returncode != 0:
            raise HostError(f"cannot read {self.path} on {self.host.name}")
        return result.stdout.decode("utf-8", "replace")


class LoginLimit:
    """At most *failures* failed logins per client address within *window* seconds; then
    every login from that address is refused (even a right token) until the oldest of
    them is older than the window. Each failure is logged with the address."""

    def __init__(
        self,
        failures: int = FAILURES,
        window: float = WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failures, self.window, self.clock = failures, window, clock
        self.seen: dict[str, deque[float]] = {}

    def wait(self, address: str) -> float:
        """Seconds until *address* may try again (0: now)."""
        recent = self._recent(address)
        if len(recent) < self.failures:
            return 0.0
        return max(0.0, recent[0] + self.window - self.clock())

    def failed(self, address: str) -> None:
        self.seen[address] = recent = self._recent(address)
        recent.append(self.clock())
        count = len(recent)
        log(
            f"[warning] login failed from {printable(address)} "
            f"({count} of {self.failures} allowed in {self.window:g} s)"
        )

    def succeeded(self, address: str) -> None:
        self.seen.pop(address, None)

    def _recent(self, address: str) -> deque[float]:
        now = self.clock()
        for known in [a for a, times in self.seen.items() if times[-1] <= now - self.window]:
            del self.seen[known]  # nothing recent: forget the address
        recent = self.seen.get(address, deque())
        while recent and recent[0] <= now - self.window:
            recent.popleft()
        return recent


def log(line: str) -> None:
    """One line on the server's stderr (the journal, under systemd)."""
    print(f"opskit serve: {line}", file=sys.stderr, flush=True)


def printable(text: str) -> str:
    """*text* without control characters (an address from a proxy's header)."""
    return "".join(c if c.isprintable() else "?" for c in text)[:100]


def new_token() -> tuple[str, str]:
    """A fresh token and its sha256, for ``opskit serve --new-token``."""
    token = secrets.token_urlsafe(24)
    return token, digest(token)
