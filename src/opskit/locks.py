"""One backup or restore per project and environment at a time.

The lock is ``flock`` on ``{env dir}/.lock``, held by a ``flock … cat`` process on the
host for as long as opskit lives: when opskit ends, even by SIGKILL, the pipe to ``cat``
closes and the kernel frees the lock. It works the same over SSH.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import posixpath
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from opskit.errors import OpskitError

if TYPE_CHECKING:
    from opskit.host import Host

BUSY = 75  # flock's exit code when the wait timed out


class LockBusy(OpskitError):
    """Another opskit holds the lock."""


@contextlib.contextmanager
def env_lock(
    host: Host,
    directory: str,
    purpose: str,
    timeout: float,
    *,
    shared: bool = False,
    name: str = ".lock",
) -> Iterator[None]:
    """Hold the env's lock; wait at most *timeout* seconds, then raise :class:`LockBusy`.
    With *shared*, others may hold it shared at the same time (not exclusively); *name*
    is the lock file's (a restic store's lock is ``.restic.lock`` in the backup root)."""
    path = posixpath.join(directory, name)
    info = posixpath.join(directory, f"{name}.holder")
    # The lock file is the owner's only (0600) whatever the umask, also one made before.
    script = (
        'umask 077; [ -e "$1" ] && chmod 600 -- "$1"; '
        'exec flock $4 --wait "$2" --conflict-exit-code "$3" "$1" '
        'sh -c "echo locked; exec cat >/dev/null"'
    )
    mode = "--shared" if shared else "--exclusive"
    argv = ["sh", "-c", script, "opskit", path, str(timeout), str(BUSY), mode]
    process = host.popen(argv, stdin=True, merge_stderr=False)
    if process.stdout.readline() != b"locked\n":
        code = process.wait()
        if code == BUSY:
            holder = host.read_existing([info]).get(info, "another opskit").strip()
            raise LockBusy(f"{directory} is locked by {holder} (waited {timeout:g} s)")
        raise OpskitError(f"cannot lock {path}: {process.errors().strip() or f'exit {code}'}")
    holder = f"{purpose} by {getpass.getuser()} (pid {os.getpid()} on {socket.gethostname()}) since {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC"
    write = 'umask 077; rm -f -- "$2"; printf "%s\\n" "$1" > "$2"'
    if not shared:  # who holds it exclusively is said when someone waits in vain
        host.run(["sh", "-c", write, "opskit", holder, info], check=False)
    try:
        yield
    finally:
        if not shared:
            host.run(["rm", "-f", "--", info], check=False)
        assert process.stdin is not None
        with contextlib.suppress(OSError):
            process.stdin.close()
        process.wait()
