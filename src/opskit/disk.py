"""Disk usage of folders and of the Docker engine, measured on the host."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from opskit.host import Host


@attrs.frozen
class FolderUsage:
    """A folder's own size and the usage of its filesystem, as ``df`` reports it: *used*
    is what is taken (blocks - bfree), *free* what an unprivileged user can still write
    (bavail). The blocks reserved for root count as neither."""

    path: str
    bytes: int | None
    filesystem_size: int
    filesystem_free: int
    filesystem_used: int

    @property
    def used_fraction(self) -> float:
        """used / (used + free), as ``df`` computes its Use%."""
        usable = self.filesystem_used + self.filesystem_free
        return self.filesystem_used / usable if usable > 0 else 0.0

    @property
    def used_percent(self) -> int:
        """``df``'s Use%: the fraction in percent, rounded up."""
        usable = self.filesystem_used + self.filesystem_free
        if usable <= 0:
            return 0
        return -(-self.filesystem_used * 100 // usable)

    def as_dict(self) -> dict[str, Any]:
        return {**attrs.asdict(self), "used_percent": self.used_percent}


def statvfs_usage(
    fragment_size: int, blocks: int, free: int, available: int
) -> tuple[int, int, int]:
    """Size, free and used bytes of a filesystem from its ``statvfs`` fields (``f_frsize``,
    ``f_blocks``, ``f_bfree``, ``f_bavail``): free is ``f_bavail``, used is
    ``f_blocks - f_bfree``, as ``df`` has them."""
    return blocks * fragment_size, available * fragment_size, (blocks - free) * fragment_size


def filesystems(host: Host, paths: Sequence[str]) -> dict[str, tuple[int, int, int]]:
    """Size, free and used bytes of the filesystem holding each existing path: the
    ``statvfs`` fields through ``stat -f`` on the host, one line per path, one call."""
    if not paths:
        return {}
    script = 'for p; do stat -f -L -c "%S %b %f %a" -- "$p" 2>/dev/null || echo -; done'
    result = host.run(["sh", "-c", script, "opskit", *paths], check=False)
    usage = {}
    for path, line in zip(paths, result.text.splitlines(), strict=False):
        fields = line.split()
        if len(fields) == 4 and all(f.isdigit() for f in fields):
            usage[path] = statvfs_usage(*(int(f) for f in fields))
    return usage


def folder_usage(host: Host, paths: Sequence[str], sizes: bool = True) -> list[FolderUsage]:
    """Usage of each existing folder in *paths*: its own size (``du``) and its filesystem's."""
    existing = [path for path in dict.fromkeys(paths) if host.exists(path)]
    fs = filesystems(host, existing)
    own: dict[str, int] = {}
    if sizes and existing:
        # One du per folder: a single du skips folders nested in one it already counted.
        script = 'for p; do du -sk "$p"; done'
        result = host.run(["sh", "-c", script, "opskit", *existing], check=False)
        for line in result.text.splitlines():
            size, _, path = line.partition("\t")
            if size.isdigit():
                own[path] = int(size) * 1024
    return [
        FolderUsage(path, own.get(path) if sizes else None, *fs[path])
        for path in existing
        if path in fs
    ]


def docker_usage(host: Host) -> dict[str, int]:
    """Bytes used by the engine's images, volumes and containers (``docker system df``)."""
    data = host.docker().df()
    return {
        "images_bytes": int(data.get("LayersSize") or 0),
        "volumes_bytes": sum(
            int((v.get("UsageData") or {}).get("Size") or 0) for v in data.get("Volumes") or []
        ),
        "containers_bytes": sum(int(c.get("SizeRw") or 0) for c in data.get("Containers") or []),
    }


@attrs.frozen
class DiskReport:
    """``opskit disk``: the folders' usage and Docker's own."""

    folders: tuple[FolderUsage, ...]
    docker: Mapping[str, int]

    def as_dict(self) -> dict[str, Any]:
        return {"folders": [f.as_dict() for f in self.folders], "docker": dict(self.docker)}
