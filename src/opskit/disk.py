"""Disk usage of folders and of the Docker engine, measured on the host."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from opskit.host import Host


@attrs.frozen
class FolderUsage:
    path: str
    bytes: int | None
    filesystem_size: int
    filesystem_free: int

    @property
    def used_fraction(self) -> float:
        if not self.filesystem_size:
            return 0.0
        return 1 - self.filesystem_free / self.filesystem_size

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


def filesystems(host: Host, paths: Sequence[str]) -> dict[str, tuple[int, int]]:
    """Size and free bytes of the filesystem holding each existing path (one ``df`` call)."""
    if not paths:
        return {}
    result = host.run(["df", "-Pk", *paths], check=False)
    lines = result.text.splitlines()[1:]
    usage = {}
    for path, line in zip(paths, lines, strict=False):
        fields = line.split()
        if len(fields) >= 6 and fields[1].isdigit() and fields[3].isdigit():
            usage[path] = (int(fields[1]) * 1024, int(fields[3]) * 1024)
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
