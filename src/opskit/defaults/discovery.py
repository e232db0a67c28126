"""Built-in plugin: find ``{root}/*/project.yaml`` on the host."""

from __future__ import annotations

from typing import TYPE_CHECKING

from opskit.plugins import hookimpl

if TYPE_CHECKING:
    from opskit.descriptor import DescriptorSource
    from opskit.host import Host


@hookimpl
def opskit_discover_projects(root: str, host: Host) -> list[DescriptorSource]:
    from opskit.descriptor import DescriptorSource

    sources = []
    for name in host.listdir(root):
        path = f"{root.rstrip('/')}/{name}/project.yaml"
        if host.exists(path):
            sources.append(DescriptorSource(path=path, text=host.read_text(path)))
    return sources
