"""Helpers about the processes of this machine."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from typing import Any


def pid_alive(pid: int) -> bool:
    """Whether a process of this machine still runs (owned by someone else counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM for the block, and deliver them afterwards: while the
    previous state is put back (a second signal must not leave the env half restored), and
    while a container or volume is created (the engine would make it after the clean-up had
    looked for it)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {
        number: signal.signal(number, lambda n, _frame: caught.append(n))
        for number in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        if caught:
            signal.raise_signal(caught[0])


@contextlib.contextmanager
def reaped_on_error(process: Any) -> Iterator[None]:
    """Kill and reap *process* (a :class:`opskit.host.Process`) when the block fails or is
    interrupted, so that it never goes on with half a stream."""
    try:
        yield
    except BaseException:
        process.kill()
        with contextlib.suppress(Exception):
            process.wait()
        raise
