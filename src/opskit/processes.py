"""Helpers about the processes of this machine."""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """Whether a process of this machine still runs (owned by someone else counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
