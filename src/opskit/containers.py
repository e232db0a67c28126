"""Container resolution: which container belongs to which project, environment and service.

One function, :func:`resolve`, decides it for every command, in this order:

1. the labels ``ops.project``, ``ops.environment`` and ``ops.service``, unless compose
   started the container from a folder that is none of that env's stacks (another
   deployment of a project of the same name: another checkout, an old copy);
2. the expanded ``container_prefix``, matched on whole words (``dev-mdf`` matches
   ``dev-mdf-db`` and ``dev-mdf_db_1``, never ``dev-mdf2-db``); the longest prefix wins;
3. the ``com.docker.compose.*`` labels of one of the env's compose stacks: its compose
   project name (as :func:`opskit.compose.identify_stack` decides it) together with its
   working directory; the working directory alone when only one stack has it; the project
   name alone when an old compose left no working directory.

A container placed under a service name that compose does not accept (an ``ops.service``
label such as ``-x``, ``a b`` or ``../x``) is :attr:`Placement.ignored`: ``status`` shows
it and ``doctor`` reports it, but commands that change an env (and the health of the env
they wait for) leave it alone, so it never blocks the env.

The whole picture costs one Docker API call (:func:`list_containers`), however many
projects and containers there are.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

# compose's labels and naming live in compose.py; the old import paths still work.
from opskit.compose import COMPOSE_CONFIG_FILES as COMPOSE_CONFIG_FILES
from opskit.compose import COMPOSE_PROJECT as COMPOSE_PROJECT
from opskit.compose import COMPOSE_SERVICE as COMPOSE_SERVICE
from opskit.compose import COMPOSE_WORKING_DIR as COMPOSE_WORKING_DIR
from opskit.compose import StackIdentity, identities
from opskit.compose import default_compose_project_name as default_compose_project_name

if TYPE_CHECKING:
    from opskit.descriptor import Project
    from opskit.host import Host

LABEL_PROJECT = "ops.project"
LABEL_ENV = "ops.environment"
LABEL_SERVICE = "ops.service"

_HEALTH_RE = re.compile(r"\((healthy|unhealthy|health: starting)\)")


@attrs.frozen
class Container:
    """One container as the Docker engine lists it."""

    id: str
    name: str
    image: str
    state: str
    status: str
    health: str
    labels: Mapping[str, str]

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Container:
        names = data.get("Names") or ["/" + str(data.get("Id", ""))[:12]]
        status = str(data.get("Status") or "")
        health = "none"
        if isinstance(data.get("Health"), Mapping) and data["Health"].get("Status"):
            health = str(data["Health"]["Status"])
        else:
            match = _HEALTH_RE.search(status)
            if match:
                health = "starting" if match.group(1) == "health: starting" else match.group(1)
        return cls(
            id=str(data.get("Id", ""))[:12],
            name=str(names[0]).lstrip("/"),
            image=str(data.get("Image") or ""),
            state=str(data.get("State") or "unknown"),
            status=status,
            health=health,
            labels=dict(data.get("Labels") or {}),
        )


@attrs.frozen
class Placement:
    """A container's place, or a declared service with no container (``container=None``)."""

    project: str
    environment: str
    service: str
    matched_by: str | None
    container: Container | None

    @property
    def state(self) -> str:
        return self.container.state if self.container else "missing"

    @property
    def health(self) -> str:
        return self.container.health if self.container else "none"

    @property
    def ignored(self) -> str | None:
        """Why commands that change the env leave this container alone, or None: its
        service is no name compose accepts, so no compose command could address it."""
        from opskit.descriptor import SERVICE_RE

        if self.container is None or SERVICE_RE.match(self.service):
            return None
        labelled = self.container.labels.get(LABEL_SERVICE) == self.service
        source = f"its {LABEL_SERVICE} label" if labelled else "its name"
        return (
            f"container {self.container.name}: {self.service!r} (from {source}) is not a "
            "service name; opskit shows the container but never changes it"
        )

    def as_dict(self) -> dict[str, Any]:
        c = self.container
        return {
            "project": self.project,
            "environment": self.environment,
            "service": self.service,
            "name": c.name if c else None,
            "id": c.id if c else None,
            "image": c.image if c else None,
            "state": self.state,
            "health": self.health,
            "status": c.status if c else "",
            "matched_by": self.matched_by,
            "ignored": self.ignored,
        }


def list_containers(host: Host) -> list[Container]:
    """Every container on the host, running or not: one Docker API call."""
    return [Container.from_api(item) for item in host.docker().containers(all=True)]


def _prefix_rest(name: str, prefix: str) -> str | None:
    """The part of *name* after *prefix* when the prefix matches on a whole word."""
    if name == prefix:
        return ""
    if name.startswith(prefix) and name[len(prefix)] in "-_":
        return name[len(prefix) + 1 :]
    return None


def _service_from_name(rest: str) -> str:
    # compose v1 names containers {project}_{service}_{index}, v2 {project}-{service}-{index}
    return re.sub(r"[-_]\d+\Z", "", rest) or rest


def resolve(
    projects: Sequence[Project],
    containers: Iterable[Container],
    stacks: Sequence[StackIdentity] | None = None,
) -> list[Placement]:
    """Place every container that belongs to one of *projects*; others are left out.

    *stacks* are the stack identities of :func:`opskit.compose.identities`; without
    them, each stack's name is its descriptor's ``project_name`` or its folder's name.
    """
    containers = list(containers)
    if stacks is None:
        stacks = identities(None, projects, ())
    by_name = {project.name: project for project in projects}
    prefixes = sorted(
        (
            (project.prefix(env), project, env)
            for project in projects
            for env in project.environments
        ),
        key=lambda item: len(item[0]),
        reverse=True,
    )
    by_dir_and_name: dict[tuple[str, str], tuple[Project, str]] = {}
    by_dir: dict[str, list[tuple[Project, str]]] = {}
    compose_names: dict[str, tuple[Project, str]] = {}
    folders: dict[tuple[str, str], set[str]] = {}
    # stacks that envs share by profile: the compose service decides the env
    by_service: dict[tuple[str, str], dict[str, tuple[Project, str]]] = {}
    for stack in stacks:
        folders.setdefault((stack.project, stack.env), set()).add(stack.dir)
        place = (by_name[stack.project], stack.env)
        if stack.shared:
            services = by_service.setdefault((stack.dir, stack.name), {})
            services.update({service: place for service in stack.services or ()})
        by_dir_and_name.setdefault((stack.dir, stack.name), place)
        if place not in by_dir.setdefault(stack.dir, []):
            by_dir[stack.dir].append(place)
        compose_names.setdefault(stack.name, place)

    placements = []
    for container in containers:
        labels = container.labels
        compose_service = labels.get(COMPOSE_SERVICE)
        placement = None
        owner = by_name.get(labels.get(LABEL_PROJECT, ""))
        started_in = labels.get(COMPOSE_WORKING_DIR)
        if (
            owner is not None
            and labels.get(LABEL_ENV) in owner.environments
            and not _started_elsewhere(started_in, folders, owner, labels[LABEL_ENV])
        ):
            service = labels.get(LABEL_SERVICE) or compose_service or container.name
            placement = Placement(owner.name, labels[LABEL_ENV], service, "label", container)
        if placement is None:
            for prefix, project, env in prefixes:
                rest = _prefix_rest(container.name, prefix)
                if rest is not None and not _started_elsewhere(started_in, folders, project, env):
                    service = (
                        labels.get(LABEL_SERVICE)
                        or compose_service
                        or _service_from_name(rest)
                        or container.name
                    )
                    placement = Placement(project.name, env, service, "prefix", container)
                    break
        if placement is None and compose_service:
            working_dir = labels.get(COMPOSE_WORKING_DIR)
            name = labels.get(COMPOSE_PROJECT, "")
            if working_dir:
                folder = posixpath.normpath(working_dir)
                found = by_dir_and_name.get((folder, name))
                owners = by_dir.get(folder, [])
                if (folder, name) in by_service:
                    found = by_service[(folder, name)].get(compose_service)
                elif found is None and len(owners) == 1:
                    found = owners[0]
            else:
                found = compose_names.get(name)
            if found is not None:
                project, env = found
                placement = Placement(project.name, env, compose_service, "compose", container)
        if placement is not None:
            placements.append(placement)
    return placements


def _started_elsewhere(
    started_in: str | None,
    folders: dict[tuple[str, str], set[str]],
    project: Project,
    env: str,
) -> bool:
    """Whether compose started the container from a folder that is none of the env's
    stacks: a stack of another root whose names look like this env's is not this env's."""
    return bool(started_in) and posixpath.normpath(str(started_in)) not in folders.get(
        (project.name, env), set()
    )


def managed(placements: Iterable[Placement]) -> list[Placement]:
    """*placements* without the :attr:`~Placement.ignored` ones: what commands that change
    an env, and the health they wait for, work on."""
    return [p for p in placements if p.ignored is None]


def status(
    projects: Sequence[Project],
    scope: Iterable[tuple[Project, str]],
    containers: Iterable[Container],
    stacks: Sequence[StackIdentity] | None = None,
) -> list[Placement]:
    """The placements of the envs in *scope*, plus declared services that have no container."""
    scope = list(scope)
    wanted = {(project.name, env) for project, env in scope}
    found = [
        p for p in resolve(projects, containers, stacks) if (p.project, p.environment) in wanted
    ]
    present = {(p.project, p.environment, p.service) for p in found}
    for project, env in scope:
        for service in project.services_in(env):
            if (project.name, env, service.name) not in present:
                found.append(Placement(project.name, env, service.name, None, None))
    order = {key: i for i, key in enumerate((p.name, env) for p, env in scope)}
    return sorted(
        found,
        key=lambda p: (
            order[(p.project, p.environment)],
            p.service,
            p.container.name if p.container else "",
        ),
    )
