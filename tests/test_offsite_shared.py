"""One offsite repository for many envs (#18): the server-wide ``offsite.target`` of
``opskit.yaml`` holds every project and env, as on most servers. Each command must see
only its own env's snapshots (project AND env AND archive), and a prune may only ever
forget snapshots whose tags name the env it prunes. Real restic, against a folder and the
SFTP-only account of the test bed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import ALL_STORES, Run, assert_one_error_line, opskit
from opskit.offsite import OffsiteError, builtin_repository, owned
from opskit.settings import Settings
from test_offsite import COMPOSE, SFTP, SFTP_CHROOT
from testroot import NS

# Two projects, one with three envs, whose archive names sort across each other
# (webstack-dev-… > mdf-prod-… > mdf-int-… > mdf-dev-…), and a project without backups.
ENVS = [("mdf", "dev"), ("mdf", "int"), ("mdf", "prod"), ("webstack", "dev"), ("webstack", "prod")]
PROJECT = """\
name: {name}
environments: [{envs}]
compose: {{dir: "{{env}}", project_name: "{ns}-shared-{name}-{{env}}"}}
backup: {{store: {store}, dir: {backups}, paths: ["{{env}}/data"]}}
"""
NO_BACKUPS = """\
name: shop
environments: [dev, prod]
compose: {dir: "{env}", project_name: "%s-shared-shop-{env}"}
"""

# Which snapshots a command sees is up to the selection, whatever the target: each test
# runs against a folder; those of the selection itself against the SFTP account too. Each
# runs with both archive stores (#22): the module fixture is one per target and store (a
# module fixture cannot take the function-scoped ``store`` fixture), and follows
# OPSKIT_TEST_STORES as that fixture does.
STORES = [s for s in ALL_STORES if s in os.environ.get("OPSKIT_TEST_STORES", ",".join(ALL_STORES))]


def _with_stores(*targets: str) -> pytest.MarkDecorator:
    pairs = [(t, s) for t in targets for s in STORES]
    return pytest.mark.parametrize("shared", pairs, indirect=True, ids=["-".join(p) for p in pairs])


BOTH = _with_stores("file", "sftp")
FILE = _with_stores("file")


class Shared:
    """The root, its repository and what the repository held when the fixture was done."""

    def __init__(self, root: Path, target: str) -> None:
        self.root = root
        self.target = target

    def run(self, *args: str, timeout: float = 600) -> Run:
        return opskit(*args, "--root", str(self.root), timeout=timeout)

    def snapshots(self) -> dict[str, list[str]]:
        """Every snapshot in the repository, read by restic itself: ID -> tags."""
        repository = builtin_repository(self.target, Settings())
        assert repository is not None
        password = self.root.parent / "state" / "restic-password"
        found = subprocess.run(
            ["restic", "--repo", repository.url, "--password-file", str(password), "--no-lock",
             "snapshots", "--json"],
            capture_output=True, check=True, timeout=300,
        )  # fmt: skip
        return {s["id"]: sorted(s["tags"]) for s in json.loads(found.stdout or b"[]")}

    def archives_offsite(self, project: str, env: str) -> set[str]:
        """The archives of one env that have snapshots, by restic's own tags."""
        tags = {f"project={project}", f"env={env}"}
        return {
            tag.removeprefix("archive=")
            for found in self.snapshots().values()
            if tags <= set(found)
            for tag in found
            if tag.startswith("archive=")
        }

    def local(self, project: str, env: str) -> list[dict[str, object]]:
        done = opskit("backups", project, env, "--json", "--root", str(self.root))
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)["archives"]  # type: ignore[no-any-return]

    def lose(self, project: str, env: str, name: object) -> None:
        """The local copy of archive *name* is lost: removed from its archive store."""
        from opskit import Ops

        with Ops(root=str(self.root)) as ops:
            store = ops.backup_engine().store(ops.project(project), env)
            store.remove(a for a in store.archives() if a.name == name)


@pytest.fixture(scope="module")
def shared(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Shared]:
    """mdf dev, int and prod with two archives each, webstack dev and prod with one, all
    copied into one repository (``keep: 1`` server-wide); shop has no backup section.
    The repository is a folder, or one on the SFTP account; the archives are in the
    archive store named (``request.param``: target and store)."""
    kind, store = request.param
    base = tmp_path_factory.mktemp(f"shared-{kind}-{store}")
    root = base / "root"
    for name, envs in (("mdf", ["dev", "int", "prod"]), ("webstack", ["dev", "prod"])):
        (root / name).mkdir(parents=True)
        (root / name / "project.yaml").write_text(
            PROJECT.format(
                name=name, envs=", ".join(envs), ns=NS, backups=base / "backups", store=store
            )
        )
        for env in envs:
            (root / name / env / "data").mkdir(parents=True)
            (root / name / env / "data" / "index.html").write_text(f"{name} {env}\n")
            (root / name / env / "docker-compose.yml").write_text(COMPOSE)
    (root / "shop" / "dev").mkdir(parents=True)
    (root / "shop" / "project.yaml").write_text(NO_BACKUPS % NS)
    local: Path | None = None
    if kind == "file":
        target = f"file://{base / 'repo'}"
    else:
        name = f"{NS}-{base.name}"
        target, local = f"{SFTP}/{name}", SFTP_CHROOT / "repos" / name
    (root / "opskit.yaml").write_text(
        f"state_dir: {base / 'state'}\noffsite: {{target: '{target}', keep: 1}}\n"
    )
    found = Shared(root, target)
    assert found.run("offsite", "init").returncode == 0
    for rounds in (ENVS, [(p, e) for p, e in ENVS if p == "mdf"]):
        for project, env in rounds:
            done = found.run("backup", project, env)
            assert done.returncode == 0, done.stderr
            done = found.run("offsite", "upload", project, env)
            assert done.returncode == 0, done.stderr
    yield found
    if local is not None:
        shutil.rmtree(local, ignore_errors=True)


@pytest.mark.docker
@BOTH
def test_list_shows_only_the_env_own_archives(shared: Shared) -> None:
    for project, env in ENVS:
        done = shared.run("offsite", "list", project, env, "--json")
        assert done.returncode == 0, done.stderr
        rows = json.loads(done.stdout)["archives"]
        names = [row["archive"] for row in rows]
        assert names and all(n.startswith(f"{project}-{env}-") for n in names), names
        assert set(names) == shared.archives_offsite(project, env)
        assert {(row["project"], row["env"]) for row in rows} == {(project, env)}
        assert all(row["offsite"] == "yes" for row in rows if row["local"]), rows


@pytest.mark.docker
@BOTH
def test_a_prune_forgets_only_its_env_and_leaves_every_other_snapshot(shared: Shared) -> None:
    ours = sorted(shared.archives_offsite("mdf", "prod"), reverse=True)
    assert len(ours) == 2
    before = shared.snapshots()
    dry = shared.run("offsite", "prune", "mdf", "prod", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout) == {
        "dry_run": True,
        "envs": [{"project": "mdf", "env": "prod", "keep": ours[:1], "remove": ours[1:]}],
    }
    other = shared.run("offsite", "prune", "webstack", "dev", "--dry-run")
    assert other.returncode == 0, other.stderr
    named = [line.split()[1] for line in other.stdout.splitlines() if line.strip()]
    assert named and all(n.startswith("webstack-dev-") for n in named), other.stdout
    assert shared.snapshots() == before  # a dry run changes nothing

    done = shared.run("offsite", "prune", "mdf", "prod")
    assert done.returncode == 0, done.stderr
    after = shared.snapshots()
    gone = {i: tags for i, tags in before.items() if i not in after}
    assert gone and all(f"archive={ours[1]}" in tags for tags in gone.values()), gone
    assert after == {i: tags for i, tags in before.items() if i not in gone}  # the rest as it was
    assert shared.archives_offsite("mdf", "prod") == {ours[0]}


@pytest.mark.docker
@BOTH
def test_a_prune_refuses_a_snapshot_that_names_another_env_and_forgets_nothing(
    shared: Shared,
) -> None:
    """restic returns a webstack prod snapshot for 'webstack dev' when it also carries the
    tag env=dev (a tag added by hand, or a restic that selects loosely): refused."""
    repository = builtin_repository(shared.target, Settings())
    assert repository is not None
    restic = ["restic", "--repo", repository.url, "--password-file",
              str(shared.root.parent / "state" / "restic-password")]  # fmt: skip
    (stray, *_) = [
        i for i, t in shared.snapshots().items() if "env=prod" in t and "project=webstack" in t
    ]
    subprocess.run([*restic, "tag", "--add", "env=dev", stray], check=True, capture_output=True)
    try:
        before = shared.snapshots()
        refused = shared.run("offsite", "prune", "webstack", "dev")
        assert_one_error_line(refused, "webstack dev", "env=dev", "env=prod", "nothing was changed")
        assert shared.snapshots() == before
        every = shared.run("offsite", "prune", "--dry-run")  # one env refused: all refused
        assert_one_error_line(every, "webstack dev")
    finally:
        (tagged,) = [i for i, t in shared.snapshots().items() if "env=dev" in t and "env=prod" in t]
        subprocess.run(
            [*restic, "tag", "--remove", "env=dev", tagged], check=True, capture_output=True
        )


@pytest.mark.docker
@FILE
def test_download_latest_takes_the_env_own_newest_copy(shared: Shared) -> None:
    newest = shared.local("mdf", "int")[0]
    shared.lose("mdf", "int", newest["name"])
    done = shared.run("offsite", "download", "mdf", "int", "--latest")
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).name == newest["name"]  # a folder archive, either store
    back = shared.local("mdf", "int")[0]
    assert (back["name"], back["verified"], back["offsite"]) == (newest["name"], "ok", "ok")


@pytest.mark.docker
@FILE
def test_an_archive_downloaded_by_name_shows_its_offsite_copy(shared: Shared) -> None:
    (archive,) = shared.local("webstack", "prod")
    shared.lose("webstack", "prod", archive["name"])
    done = shared.run("offsite", "download", "webstack", "prod", "--name", str(archive["name"]))
    assert done.returncode == 0, done.stderr
    (back,) = shared.local("webstack", "prod")
    assert (back["offsite"], back["offsite_target"]) == ("ok", shared.target)  # not "never"
    listed = shared.run("offsite", "list", "webstack", "prod", "--json")
    (row,) = json.loads(listed.stdout)["archives"]
    assert (row["local"], row["offsite"]) == (True, "yes")


@pytest.mark.docker
@FILE
def test_restore_offsite_latest_of_an_env_whose_local_copy_is_gone(shared: Shared) -> None:
    newest = shared.local("mdf", "dev")[0]
    shared.lose("mdf", "dev", newest["name"])
    data = shared.root / "mdf" / "dev" / "data" / "index.html"
    data.write_text("changed after the backup\n")
    try:
        done = shared.run(
            "restore", "mdf", "dev", "--offsite", "--latest", "--yes", "--no-safety-backup"
        )
        assert done.returncode == 0, done.stderr
        assert "restored " in done.stdout and str(newest["name"]) in done.stdout, done.stdout
        assert data.read_text() == "mdf dev\n"
    finally:
        shared.run("destroy", "mdf", "dev", "--yes")


@pytest.mark.docker
@FILE
def test_upload_of_everything_passes_over_a_project_without_backups(shared: Shared) -> None:
    done = shared.run("offsite", "upload")
    assert done.returncode == 0, done.stderr
    assert "[error]" not in done.stderr
    uploaded = sorted(line.split(":")[0].rsplit("-", 1)[0] for line in done.stdout.splitlines())
    assert uploaded == sorted(f"{p}-{e}" for p, e in ENVS)  # each env's newest, no shop


def test_the_selection_refuses_a_snapshot_of_another_env() -> None:
    """What restic returns is checked again: a snapshot whose tags do not name exactly
    the env (and project, and archive) is refused, never taken for one of its own."""
    stamp = "20261203T010203Z"

    def snapshot(*tags: str) -> dict[str, object]:
        return {"id": "0123456789abcdef", "short_id": "01234567", "tags": ["opskit", *tags]}

    mine = snapshot("project=mdf", "env=dev", f"archive=mdf-dev-{stamp}", "component=manifest")
    assert owned([mine], "mdf", "dev") == {f"mdf-dev-{stamp}": [mine]}
    assert owned([mine], "mdf", "dev", f"mdf-dev-{stamp}") == {f"mdf-dev-{stamp}": [mine]}
    foreign = [
        snapshot("project=mdf", "env=prod", f"archive=mdf-prod-{stamp}"),  # restic ORed the tags
        snapshot("project=webstack", "env=dev", f"archive=webstack-dev-{stamp}"),
        snapshot("project=mdf", "env=dev", "env=prod", f"archive=mdf-prod-{stamp}"),
        snapshot("project=mdf", "env=dev", f"archive=mdf-prod-{stamp}"),  # a mislabelled archive
        snapshot("project=mdf", "env=dev"),  # no archive
        snapshot("project=mdf-dev", "env=dev", f"archive=mdf-dev-{stamp}"),
    ]
    for stray in foreign:
        with pytest.raises(OffsiteError, match=r"01234567.*not one of them: nothing was changed"):
            owned([mine, stray], "mdf", "dev")
    with pytest.raises(OffsiteError, match="01234567"):
        owned([mine], "mdf", "dev", "mdf-dev-20261204T010203Z")  # another archive of the env
