"""The server's clock in tests: its local time zone."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator


@contextlib.contextmanager
def local_time_zone(name: str) -> Iterator[None]:
    """While the block runs, the local time zone is *name* (``TZ``, which the programs
    opskit starts, such as systemd-analyze, read too); then the previous one again."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = name
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = before
        time.tzset()
