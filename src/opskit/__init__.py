"""opskit: run Docker Compose projects in dev/int/prod environments.

Scripts use :class:`opskit.Ops`::

    import opskit

    with opskit.Ops(root="/opt/data", host="ssh://root@server") as ops:
        for row in ops.status():
            print(row.project, row.environment, row.service, row.state)

Plugins implement hooks with :data:`opskit.hookimpl`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from opskit.api import Ops
    from opskit.errors import OpskitError
    from opskit.plugins import hookimpl

__all__ = ["Ops", "OpskitError", "__version__", "hookimpl"]

_LAZY = {"Ops": "opskit.api", "OpskitError": "opskit.errors", "hookimpl": "opskit.plugins"}


def __dir__() -> list[str]:
    # The lazy names too, so that dir(opskit) and completion in a REPL show Ops.
    return sorted({*globals(), *_LAZY})


def __getattr__(name: str) -> Any:
    # Lazy, so that `opskit --help` and plugin imports stay fast.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'opskit' has no attribute {name!r}")
