"""Logins for ``opskit serve``: tokens from ``opskit.yaml`` (stored as sha256), sessions
in ``runs.sqlite`` (so that they outlive a restart of the server), and the Origin rule."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta

import attrs

from opskit.runs import RunStore
from opskit.settings import Token

COOKIE = "opskit_session"
SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    sha256 TEXT PRIMARY KEY,   -- of the cookie's value: a stolen database holds no session
    user TEXT NOT NULL,
    role TEXT NOT NULL,
    expires TEXT NOT NULL
);
"""


@attrs.frozen
class User:
    name: str
    role: str

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
            found = User(token.name, token.role)
    return found


class Sessions:
    def __init__(self, store: RunStore, hours: float) -> None:
        self.store = store
        self.hours = hours
        with store.lock:
            store.db.executescript(SCHEMA)

    def open(self, user: User) -> str:
        value = secrets.token_urlsafe(32)
        expires = (datetime.now(UTC) + timedelta(hours=self.hours)).isoformat()
        self.store.query(
            "INSERT INTO sessions (sha256, user, role, expires) VALUES (?, ?, ?, ?)",
            (digest(value), user.name, user.role, expires),
        )
        return value

    def user(self, value: str | None, tokens: tuple[Token, ...]) -> User | None:
        """The session's user, while the session lasts and the user's token still exists
        with the same role in ``opskit.yaml``."""
        if not value:
            return None
        rows = self.store.query(
            "SELECT user, role, expires FROM sessions WHERE sha256 = ?", (digest(value),)
        )
        row = rows[0] if rows else None
        if row is None or row[2] < datetime.now(UTC).isoformat():
            return None
        if not any(t.name == row[0] and t.role == row[1] for t in tokens):
            return None  # the token was removed or its role changed
        return User(row[0], row[1])

    def close(self, value: str | None) -> None:
        if value:
            self.store.query("DELETE FROM sessions WHERE sha256 = ?", (digest(value),))
        self.store.query("DELETE FROM sessions WHERE expires < ?", (datetime.now(UTC).isoformat(),))


def new_token() -> tuple[str, str]:
    """A fresh token and its sha256, for ``opskit serve --new-token``."""
    token = secrets.token_urlsafe(24)
    return token, digest(token)
