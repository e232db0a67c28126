"""The opskit hook specifications: the public API for plugins.

Every hook is named ``opskit_…``. Plugins implement them with :data:`opskit.hookimpl`
and are found through the ``opskit`` entry-point group. The core's own behaviour is
shipped as plugins (``opskit.defaults.*``) that use exactly these hooks.

Hooks that several plugins add to return lists; the core flattens them. Hooks marked
*firstresult* stop at the first non-None result. The types they take and return are in
:mod:`opskit.contracts`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import click

    from opskit.contracts import (
        BackupContext,
        Candidate,
        CheckResult,
        Component,
        DescriptorSource,
        Event,
        HealthContext,
        Project,
        Promoter,
        Proposal,
        Repository,
        SyncContext,
        Transform,
    )
    from opskit.host import Host
    from opskit.settings import Settings

hookspec = pluggy.HookspecMarker("opskit")

# -------------------------------------------------------------------------
# Projects
# -------------------------------------------------------------------------


@hookspec
def opskit_discover_projects(root: str, host: Host) -> list[DescriptorSource] | None:
    """Find project descriptors.

    Called by the core once per command (and per :class:`opskit.Ops`), before any project
    is used. The built-in discovery plugin returns every ``{root}/*/project.yaml``.

    :param root: the projects root (``--root``, ``OPSKIT_ROOT`` or ``/opt/data``).
    :param host: the host the descriptors live on; read files through it.
    :return: a list of :class:`opskit.contracts.DescriptorSource` (path and text), or None.
        The core parses and validates them and rejects duplicate project names.
    """


@hookspec(firstresult=True)
def opskit_project_handler(project: Project) -> str | None:
    """Claim a project: name the plugin that handles its project-specific work.

    Called by the core once for every project it loads. Stops at first non-None result.
    A plugin usually answers when ``project.plugin`` equals its own name. The generic
    plugin answers last (``trylast``) for every project, so each project has a handler.

    :param project: the validated descriptor.
    :return: the handler's name (e.g. ``"mdf"``), or None to leave it to others.
    """


@hookspec(firstresult=True)
def opskit_discover(candidate: Candidate) -> Proposal | None:
    """Propose the ``project.yaml`` of a stack found running: recognise your own stack.

    Called by ``opskit init`` (and :meth:`opskit.Ops.init`) once for each project it
    grouped from the running compose projects (their labels, ``docker top`` and
    ``docker inspect``). Stops at first non-None result. The built-in init plugin answers
    last (``trylast``) with the core's generic proposal,
    :func:`opskit.discover.propose` (envs, compose names, services, databases, backup
    paths and volumes, probes, a nightly schedule); a project plugin answers first for
    the stacks it recognises, usually by amending that proposal (``opskit_mdf`` sets
    ``plugin: mdf`` for WordPress + MariaDB).

    :param candidate: the would-be project: its name, folder and each env's
        :class:`opskit.contracts.SeenStack`. Secrets are not in it: environment variables
        come as names only.
    :return: a :class:`opskit.contracts.Proposal` (the descriptor as data, with a comment
        on every guess and a ``fill in`` for what it could not tell), or None to leave it
        to others. Never put a secret's value in it: name the env variable that holds it.
    """


# -------------------------------------------------------------------------
# Health
# -------------------------------------------------------------------------


@hookspec
def opskit_health_checks(context: HealthContext) -> list[CheckResult] | None:
    """Contribute health checks for one environment of one project.

    Called by ``opskit health`` (and :meth:`opskit.Ops.health`) once per project and
    environment. The built-in health plugin checks container state and Docker
    healthchecks, the descriptor's HTTP probes and free disk space.

    :param context: the project, environment, host and the env's resolved containers.
    :return: a list of :class:`opskit.contracts.CheckResult`; any result with ``ok=False``
        makes the command exit 1.
    """


# -------------------------------------------------------------------------
# Command line
# -------------------------------------------------------------------------


@hookspec
def opskit_register_commands(cli: click.Group) -> None:
    """Add commands to the ``opskit`` command line.

    Called once by :func:`opskit.cli.create_cli` while it builds the click group. The
    built-in commands are registered through this hook too. Import heavy modules inside
    your commands, not at module level, so ``opskit --help`` stays fast.

    :param cli: the root click group; call ``cli.add_command(...)``.
    """


# -------------------------------------------------------------------------
# Backup and restore
# -------------------------------------------------------------------------


@hookspec
def opskit_backup_components(
    project: Project, env: str, context: BackupContext
) -> list[Component] | None:
    """Contribute the components of one env's backup.

    Called by the core at the start of every ``backup``, ``restore``, ``sync`` and ``drill``
    of *env*. The built-in backup plugin returns what the descriptor's ``backup:`` section
    names (databases, paths, volumes), for every project; project plugins add their own.
    Components with the same ``key`` are taken once (the first registered wins). The core
    writes, checksums, verifies and restores them; a component only streams its data out
    and back in (``dump``, ``restore``), and may prove in a throw-away place that an
    archived stream restores (``drill``; a component without one is reported not drilled).

    :param project: the validated descriptor (``project.handler`` says who handles it).
    :param env: the environment being backed up or restored.
    :param context: the env's host and resolved containers, for components that depend on
        what runs (e.g. a service's mounts); see :func:`opskit.components.service_data`.
    :return: a list of :class:`opskit.contracts.Component`, or None.
    """


# -------------------------------------------------------------------------
# Sync and promote
# -------------------------------------------------------------------------


@hookspec(firstresult=True)
def opskit_sync_transform(context: SyncContext, component: Component) -> Transform | None:
    """Choose how one database's dump is rewritten on its way from one env to another.

    Called by ``opskit sync`` (and :meth:`opskit.Ops.sync`) once per database component
    it copies, when ``sync.replace`` names both envs. Stops at first non-None result. The
    built-in sync plugin answers last (``trylast``) with the core's
    :class:`opskit.transform.Replacer` over ``context.replacements``; a project plugin
    answers first to tune it (``opskit_mdf`` leaves WordPress ``guid`` columns alone).

    :param context: the project, the source and target envs and the replacements.
    :param component: the database component (``component.kind == "database"``).
    :return: an object with ``feed(bytes) -> bytes``, ``finish() -> bytes`` and a
        ``counts`` mapping (table -> replacements), such as
        ``Replacer(context.replacements, dialect=...)``; or None to leave it to others.
    """


@hookspec(firstresult=True)
def opskit_promoter(project: Project) -> Promoter | None:
    """Provide the code mover for ``opskit promote`` of one project.

    Called by the core once per ``promote`` (not for ``type: script``, which runs the
    descriptor's script). Stops at first non-None result. The built-in promote plugin
    answers last (``trylast``) with the core's git or rsync mover, by ``promote.type``.
    The core does everything around the mover: the one-step rule, confirmation,
    locking, rebuild, the health gate, rollback and the audit log.

    :param project: the validated descriptor (``project.promote`` is set).
    :return: an :class:`opskit.contracts.Promoter` (``preview``, ``apply``, ``rollback``),
        or None to leave it to others.
    """


# -------------------------------------------------------------------------
# Offsite copies
# -------------------------------------------------------------------------


@hookspec(firstresult=True)
def opskit_offsite_target(target: str, settings: Settings) -> Repository | None:
    """Map an ``offsite.target`` URL to the restic repository that holds its copies.

    Called by the ``offsite`` commands, ``backup --offsite`` and ``restore --offsite``
    each time they open a target. Stops at first non-None result. The built-in offsite
    plugin answers last (``trylast``) for ``file://``, ``sftp://``, ``s3://`` and
    ``s3+http://``; a plugin answers first for a scheme of its own (an rclone remote, a
    rest-server).

    :param target: the URL as the descriptor or ``opskit.yaml`` wrote it.
    :param settings: the server's ``opskit.yaml`` settings (``settings.offsite``).
    :return: an :class:`opskit.contracts.Repository`: restic's ``--repo`` value and the
        environment restic needs (credentials go there, never into the URL), or None to
        leave it to others.
    """


# -------------------------------------------------------------------------
# Watching operations
# -------------------------------------------------------------------------


@hookspec
def opskit_event(event: Event) -> None:
    """Watch every job as it runs.

    Called by the core for every event of every job (backup, restore, verify, prune,
    sync, promote, rebuild), in order, from the process that runs the job: a
    :class:`opskit.events.JobStarted`, then phases, progress, log lines and warnings,
    and a :class:`opskit.events.JobFinished` with the result (``ok``, ``failed``,
    ``rolled back``, ``cancelled``), also when the job fails. Notifications, dashboards
    and metrics are such listeners. An implementation that raises is reported as a
    warning; the job goes on.

    :param event: one :class:`opskit.contracts.Event`; ``event.as_dict()`` is its JSON form.
    :return: nothing.
    """
