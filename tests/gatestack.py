"""The ``gate`` test project: code bind-mounted into a container that a promotion never
recreates, checked by Docker every 5 s. Used by tests/test_trust.py and bench/gate.py.

``gate`` has dev and int, each a git working tree (``{env}/code``, cloned from a bare
``origin.git``, branches develop and staging) holding the compose file and ``site/``.
"""

from __future__ import annotations

from pathlib import Path

from testroot import NS
from wpstack import git

GATE = """\
name: gate
environments: [dev, int]
compose: {{dir: "{{env}}/code", project_name: "{ns}-gate-{{env}}"}}
promote:
  type: git
  dir: "{{env}}/code"
  branches: {{dev: develop, int: staging}}
  health_timeout: 40
"""

# Code bind-mounted into a container that is never recreated by a promotion; Docker
# checks it every 5 s, and only a failing third check in a row would make it unhealthy.
GATE_COMPOSE = """\
services:
  web:
    init: true
    image: opskit-test/web:1
    command: ["httpd", "-f", "-p", "8080", "-h", "/srv"]
    volumes: ["./site:/srv:ro"]
    healthcheck: {test: ["CMD", "cat", "/srv/health.txt"], interval: 5s, timeout: 10s, retries: 3}
"""


def build_gate(root: Path, interval: str = "5s") -> Path:
    """The project in *root*; *interval* is Docker's between two healthcheck runs."""
    project = root / "gate"
    project.mkdir()
    (project / "project.yaml").write_text(GATE.format(ns=NS))
    origin = project / "origin.git"
    git("init", "--quiet", "--bare", "--initial-branch=develop", str(origin), cwd=project)
    seed = project / "seed"
    git("clone", "--quiet", str(origin), str(seed), cwd=project)
    (seed / "site").mkdir()
    (seed / "docker-compose.yml").write_text(
        GATE_COMPOSE.replace("interval: 5s", f"interval: {interval}")
    )
    (seed / "site" / "health.txt").write_text("ok\n")
    (seed / "site" / "index.html").write_text("version 1\n")
    git("add", "-A", cwd=seed)
    git("commit", "--quiet", "-m", "version 1", cwd=seed)
    for branch in ("develop", "staging"):
        git("push", "--quiet", "origin", f"HEAD:refs/heads/{branch}", cwd=seed)
    for env, branch in (("dev", "develop"), ("int", "staging")):
        git(
            "clone",
            "--quiet",
            "--branch",
            branch,
            str(origin),
            str(project / env / "code"),
            cwd=project,
        )
    return project
