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

    paths = [f"{root.rstrip('/')}/{name}/project.yaml" for name in host.listdir(root)]
    return [
        DescriptorSource(path=path, text=text) for path, text in host.read_existing(paths).items()
    ]
