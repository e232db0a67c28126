"""The tests' own copy of the example root, apart from everything else on the engine.

A Docker engine is shared by everything on the machine: the demo (which runs the example
root of this or another checkout), the tests of another checkout, stacks nobody pinned.
Container names, compose project names, volume names and published ports are global, so
the tests never bring up ``examples/root`` itself: they bring up a copy in which each of
those carries this checkout's namespace (:data:`NS`) and every published port is a free
one. The project names, descriptors and ``ops.*`` labels stay as they are.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import shutil
import socket
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples" / "root"
# One namespace per checkout, so two checkouts' test runs never share a container.
NS = os.environ.get("OPSKIT_TEST_NS") or "t" + hashlib.sha1(str(REPO).encode()).hexdigest()[:6]
EXAMPLE_PORTS = range(18081, 18091)
# The copy's own folders in place of /var/lib/opskit-examples: the same for every run of
# one checkout. Its archives; its state (the restic password of 'offsite init' among it);
# the file:// repository of the server-wide offsite target of its opskit.yaml.
HOME = Path(f"/var/lib/opskit-tests/{NS}")
BACKUPS = HOME / "backups"
STATE = HOME / "state"
OFFSITE = HOME / "offsite"


def ns(name: str) -> str:
    """A container, compose project or volume name of the tests' copy of the examples."""
    return f"{NS}-{name}"


@cache
def compose() -> tuple[str, ...]:
    """The compose program opskit uses on this machine: ``docker compose`` (v2) when the
    run's ``DOCKER_CONFIG`` has the plugin (the test bed's does), else ``docker-compose``."""
    from opskit.compose import compose_program
    from opskit.host import LocalHost

    return tuple(compose_program(LocalHost()))


def _separator() -> str:
    return "-" if compose() == ("docker", "compose") else "_"


def compose_container(project: str, service: str) -> str:
    """The name compose gives the first container of *service* in the tests' compose project
    *project* (namespaced here): ``PROJECT-SERVICE-1`` with v2, ``PROJECT_SERVICE_1`` with v1."""
    return _separator().join((ns(project), service, "1"))


def compose_image(project: str, service: str) -> str:
    """The name compose gives the image it builds for *service* of *project* (namespaced):
    ``PROJECT-SERVICE`` with v2, ``PROJECT_SERVICE`` with v1."""
    return f"{ns(project)}{_separator()}{service}"


_HANDED_OUT: set[int] = set()


def free_ports(count: int) -> list[int]:
    """*count* different TCP ports that nothing listens on now, and that no earlier call of
    this run handed out (modules take theirs at collection and bind them much later: two
    modules drew the same port, and the second stack to start found it taken).

    Chosen below the kernel's ephemeral range: a port the kernel handed out (``bind`` to 0)
    is the kind Docker hands out too when a test publishes ``127.0.0.1::80``, so such a port,
    free at collection, was taken by another stack by the time its test started.
    """
    first, last = 20000, _ephemeral_low() - 1
    if window := os.environ.get("OPSKIT_TEST_PORTS"):  # e.g. "20000-25999": one per runner
        first, last = (int(part) for part in window.split("-"))
    candidates = random.sample(range(first, last + 1), min(400, last + 1 - first))
    ports: list[int] = []
    for port in candidates:
        if port in _HANDED_OUT:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        ports.append(port)
        if len(ports) == count:
            _HANDED_OUT.update(ports)
            return ports
    raise RuntimeError(f"no {count} free ports between {first} and {last}")


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def rewrite(text: str, ports: dict[int, int], namespace: str = NS, home: Path = HOME) -> str:
    """*text* of an example file as the copy has it: namespaced names, the copy's ports and
    folders, healthchecks that get seconds."""

    def ns(name: str) -> str:
        return f"{namespace}-{name}"

    for old, new in ports.items():
        text = text.replace(str(old), str(new))
    text = text.replace("/var/lib/opskit-examples", str(home))
    text = re.sub(r"(container_name: )(\S+)", lambda m: m.group(1) + ns(m.group(2)), text)
    text = re.sub(
        r'(container_prefix: ")([^"]+)"', lambda m: f'{m.group(1)}{ns(m.group(2))}"', text
    )
    text = re.sub(r'(project_name: ")([^"]+)"', lambda m: f'{m.group(1)}{ns(m.group(2))}"', text)
    text = re.sub(r'(volumes: \[")(mdf-)', lambda m: m.group(1) + ns(m.group(2)), text)
    # A real server's checks get seconds under load, not the examples' 2 s: on the CI's two
    # cores shared by four runners a check took longer now and then, and a restore's gate
    # rolled back (as tests/wpstack.py's stacks did before they had 10 s)
    text = re.sub(r"(healthcheck: \{.*\btimeout: )2s\b", r"\g<1>10s", text)
    return text


def build(dest: Path, namespace: str = NS, home: Path = HOME) -> tuple[Path, dict[int, int]]:
    """Copy the example root to *dest*/root, namespaced; return it and the port map
    (example port -> the copy's port). Archives go to :data:`BACKUPS`, offsite copies to
    :data:`OFFSITE`, the state to :data:`STATE` (or the same folders under *home*)."""
    root = dest / "root"
    for folder in ("backups", "state", "offsite"):  # a run starts with nothing of earlier ones
        shutil.rmtree(home / folder, ignore_errors=True)
    if root.exists():
        shutil.rmtree(root)
    shutil.copytree(EXAMPLES, root, symlinks=True)
    ports = dict(zip(EXAMPLE_PORTS, free_ports(len(EXAMPLE_PORTS)), strict=True))
    for path in root.rglob("*"):
        if path.is_file() and (path.suffix in (".yaml", ".yml") or path.name.startswith(".env")):
            path.write_text(rewrite(path.read_text(), ports, namespace, home))
    # webstack is deliberately unpinned in the examples; beside the demo's webstack, the
    # copy would be the compose projects "dev" and "prod" too, so the copy is pinned.
    webstack = root / "webstack" / "project.yaml"
    webstack.write_text(
        webstack.read_text().replace(
            'compose:\n  dir: "{env}"\n',
            f'compose:\n  dir: "{{env}}"\n  project_name: "{namespace}-webstack-{{env}}"\n',
        )
    )
    return root, ports


_ORIGINALS: dict[Path, str] = {}  # descriptors use_store changed, as they were


def use_store(root: Path, kind: str) -> Path:
    """Name *kind* as ``backup.store`` in every descriptor of *root* with a backup section
    (``put_back_descriptors`` undoes it; the ``store`` fixture calls it); return *root*."""
    for path in sorted(root.glob("*/project.yaml")):
        text = path.read_text()
        _ORIGINALS.setdefault(path, text)
        text = re.sub(r"(?m)^  store: (folder|restic)\b.*\n", "", text)
        text = re.sub(
            r"(?m)^backup:[ \t]*(#.*)?\n", lambda m: m.group(0) + f"  store: {kind}\n", text
        )
        text = re.sub(
            r"(?m)^backup: \{(.*)$",
            lambda m: (
                f"backup: {{store: {kind}, "
                + re.sub(r"\bstore: (folder|restic)(, )?", "", m.group(1))
            ),
            text,
        )
        path.write_text(text)
    return root


def put_back_descriptors() -> None:
    """Write back the descriptors :func:`use_store` changed."""
    for path, text in _ORIGINALS.items():
        if path.exists():
            path.write_text(text)
    _ORIGINALS.clear()
