"""A laid-out root moved into a namespace of its own on the same engine (``drill --all``).

Every name the engine knows is prefixed with the namespace: compose project names (a
descriptor's ``project_name``, else the stack's own through a top-level ``name:``),
``container_name``, named networks and volumes (external ones too: the rebuild creates
them), ``container_prefix`` and ``backup.volumes``. Each stack's compose files become the
one file of its resolved ``compose config`` (its env files interpolated), without
published ports, its networks internal (no way out), everything labelled with the drill.
HTTP probes of the descriptors go (they name the live server's ports); Docker's
healthchecks remain. A stack that would touch the live server anyway (host networking,
a writable bind mount outside the namespace's root) is refused, named.
"""

from __future__ import annotations

import copy
import posixpath
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import yaml

from opskit.compose import stack_config
from opskit.errors import OpskitError

if TYPE_CHECKING:
    from opskit.runtime import Runtime

COMPOSE_PROJECT_NAME = re.compile(r"(?m)^\s*(export\s+)?COMPOSE_PROJECT_NAME=.*\n?")


class NamespaceError(OpskitError):
    """A stack cannot be moved into the namespace without touching the live server."""


def descriptor(text: str, namespace: str) -> str:
    """A descriptor's text with its engine names in *namespace* and its HTTP probes gone."""
    data = yaml.safe_load(text) or {}
    data["container_prefix"] = f"{namespace}-{data.get('container_prefix') or '{env}-{project}'}"
    compose = data.get("compose") or {}
    for stack in [compose, *(compose.get("extra") or [])]:
        if stack.get("project_name"):
            stack["project_name"] = f"{namespace}-{stack['project_name']}"
        if stack.get("files"):
            stack["files"] = list(stack["files"])[:1]  # the one resolved file (below)
    backup = data.get("backup") or {}
    if backup.get("volumes"):
        backup["volumes"] = [f"{namespace}-{volume}" for volume in backup["volumes"]]
    health = data.get("health")
    if isinstance(health, list):
        data["health"] = [p for p in health if not (isinstance(p, dict) and "http" in p)]
    elif isinstance(health, dict) and health.get("probes"):
        health["probes"] = [p for p in health["probes"] if "http" not in p]
    return yaml.safe_dump(data, sort_keys=False)


def compose_document(
    config: Mapping[str, Any], namespace: str, labels: Mapping[str, str], root: str
) -> dict[str, Any]:
    """A stack's ``compose config`` moved into *namespace*; :class:`NamespaceError` for a
    stack that would reach the live server."""
    document = copy.deepcopy(dict(config))
    if document.get("name"):
        document["name"] = _in(namespace, document["name"])
    for name, service in (document.get("services") or {}).items():
        service.pop("ports", None)
        mode = str(service.get("network_mode") or "")
        if mode == "host" or mode.startswith("container:"):
            raise NamespaceError(f"service {name} uses network_mode {mode}")
        if service.get("container_name"):
            service["container_name"] = _in(namespace, service["container_name"])
        service["labels"] = {**_labels(service.get("labels")), **labels}
        for volume in service.get("volumes") or []:
            if not isinstance(volume, Mapping) or volume.get("type") != "bind":
                continue
            source = posixpath.normpath(str(volume.get("source") or ""))
            inside = source == root or source.startswith(root.rstrip("/") + "/")
            if not inside and not volume.get("read_only"):
                raise NamespaceError(
                    f"service {name} mounts {source} writable, outside the root: a drill "
                    "would write to the live server"
                )
    for kind in ("networks", "volumes"):
        for key, spec in list((document.get(kind) or {}).items()):
            spec = dict(spec or {})
            external = spec.get("external")
            legacy = external.get("name") if isinstance(external, Mapping) else None
            if external:
                spec["name"] = _in(namespace, str(spec.get("name") or legacy or key))
                spec["external"] = True
            else:
                if spec.get("name"):
                    spec["name"] = _in(namespace, str(spec["name"]))
                spec["labels"] = {**_labels(spec.get("labels")), **labels}
                if kind == "networks":
                    spec["internal"] = True
            document[kind][key] = spec
    return document


def _in(namespace: str, name: str) -> str:
    """*name* in *namespace* (once: compose's own names already hold the project's)."""
    return name if name.startswith(f"{namespace}-") else f"{namespace}-{name}"


def _labels(given: Any) -> dict[str, str]:
    if isinstance(given, Mapping):
        return {str(k): str(v) for k, v in given.items()}
    found = {}
    for item in given or []:
        key, _, value = str(item).partition("=")
        found[key] = value
    return found


def _replace(runtime: Runtime, path: str, text: str) -> None:
    partial = f"{path}.namespaced"
    runtime.host.run(["rm", "-f", "--", partial])
    with runtime.host.open_write(partial) as out:
        out.write(text.encode())
    runtime.host.run(["chmod", f"--reference={path}", "--", partial])
    runtime.host.run(["mv", "-T", "--", partial, path])


def move(runtime: Runtime, namespace: str, labels: Mapping[str, str]) -> dict[str, str]:
    """Move the root of *runtime* (laid out, nothing running) into *namespace*: its
    descriptors, then each stack's compose file. Returns the stacks refused, by
    "PROJECT ENV", with why; the root is read again."""
    host, root = runtime.host, runtime.root
    for project in runtime.projects():
        _replace(runtime, project.path, descriptor(host.read_text(project.path), namespace))
    runtime.reload()
    refused: dict[str, str] = {}
    state = runtime.stacks.compose_state()
    by_name = {p.name: p for p in runtime.projects()}
    written: set[str] = set()
    for identity in state.stacks:
        key = f"{identity.project} {identity.env}"
        project = by_name[identity.project]
        if not identity.present or not identity.files:
            continue
        if identity.shared:
            refused[key] = "its compose file is shared with other envs by profile"
            continue
        if identity.files[0] in written:
            refused[key] = f"its compose file {identity.files[0]} is another env's too"
            continue
        try:
            config = {**stack_config(host, project, identity), "name": identity.name}
            document = compose_document(config, namespace, labels, root)
        except OpskitError as exc:
            refused[key] = str(exc)
            continue
        for env_file in [identity.env_file, posixpath.join(identity.dir, ".env")]:
            if env_file and host.exists(env_file):  # the name is the compose file's now
                text = host.read_text(env_file)
                if COMPOSE_PROJECT_NAME.search(text):
                    _replace(runtime, env_file, COMPOSE_PROJECT_NAME.sub("", text))
        _replace(runtime, identity.files[0], yaml.safe_dump(document, sort_keys=False))
        written.add(identity.files[0])
    runtime.reload()
    return refused
