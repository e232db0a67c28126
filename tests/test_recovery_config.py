"""The parts of a whole-server rebuild that need no engine: the configuration read back
and mapped onto the new machine, laid out, and the order the envs come back in."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Any

import pytest

from fakeroot import make_world
from opskit.descriptor import Project
from opskit.errors import OpskitError
from opskit.recovery import ConfigFile, Configuration, RecoveryError, lay_out, order, read
from opskit.settings import parse_settings


def tar(files: dict[str, tuple[bytes, int]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as out:
        for name, (data, mode) in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            out.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class Dumped:
    def __init__(self, data: bytes) -> None:
        self.stdout = io.BytesIO(data)

    def wait(self) -> int:
        return 0


class Repository:
    """What :func:`opskit.recovery.read` asks of restic: one dump."""

    target = "sftp://box//opskit"

    def __init__(self, data: bytes) -> None:
        self.data = data

    def dump(self, snapshot: str, filename: str) -> Dumped:
        assert filename == "/opskit-config.tar"
        return Dumped(self.data)


SNAPSHOT: dict[str, Any] = {
    "id": "ab" * 32,
    "time": "2026-12-03T03:30:00Z",
    "tags": ["opskit", "config", "root=/opt/data", "complete"],
}


def test_the_configuration_is_mapped_onto_the_new_root_and_rewritten() -> None:
    data = tar({
        "opt/data/opskit.yaml": (b"state_dir: /var/lib/opskit\n", 0o644),
        "opt/data/shop/project.yaml": (b"name: shop\nbackup: {dir: /opt/data/backups}\n", 0o644),
        "opt/data/shop/prod/.env": (b"PORT=18090\nNAME=old-shop\n", 0o600),
        "var/lib/opskit/runs.sqlite": (b"SQLite format 3\x00/opt/data\xff", 0o600),
        "var/lib/opskit/rebuild-all.json": (b"{}", 0o600),
    })  # fmt: skip
    config = read(Repository(data), SNAPSHOT, "/srv/new", (("old-shop", "new-shop"),))  # type: ignore[arg-type]
    by_path = {f.path: f for f in config.files}
    assert sorted(by_path) == [
        "/srv/new/opskit.yaml",
        "/srv/new/shop/prod/.env",
        "/srv/new/shop/project.yaml",
        "/var/lib/opskit/runs.sqlite",  # the old server's own rebuild record is not laid out
    ]
    assert (
        by_path["/srv/new/shop/project.yaml"].data
        == b"name: shop\nbackup: {dir: /srv/new/backups}\n"
    )
    assert by_path["/srv/new/shop/prod/.env"].data == b"PORT=18090\nNAME=new-shop\n"
    assert by_path["/srv/new/shop/prod/.env"].mode == 0o600
    assert by_path["/var/lib/opskit/runs.sqlite"].data.endswith(
        b"/opt/data\xff"
    )  # binary: as it was
    assert config.old_root == "/opt/data" and config.rewrites[-1] == ("/opt/data", "/srv/new")


@pytest.mark.parametrize("name", ["../etc/passwd", "opt/data/../../etc/cron.d/x"])
def test_a_configuration_with_a_name_leading_out_is_refused(name: str) -> None:
    with pytest.raises(RecoveryError, match="not a plain file of the root"):
        read(Repository(tar({name: (b"x", 0o644)})), SNAPSHOT, "/srv/new")  # type: ignore[arg-type]


def test_lay_out_writes_what_is_missing_and_never_overwrites_other_content(tmp_path: Path) -> None:
    from opskit.host import LocalHost

    host = LocalHost()
    target = tmp_path / "root" / "shop" / "project.yaml"
    config = Configuration("t", "s", "", "/opt/data", (
        ConfigFile(str(target), 0o640, b"name: shop\n"),
        ConfigFile(str(tmp_path / "root" / "shop" / "prod" / ".env"), 0o600, b"A=1\n"),
    ), ())  # fmt: skip
    assert lay_out(host, config) == 2
    assert target.read_bytes() == b"name: shop\n" and target.stat().st_mode & 0o777 == 0o640
    assert lay_out(host, config) == 0  # run again: the same files are left alone
    target.write_bytes(b"name: shop\n# edited\n")
    (tmp_path / "root" / "shop" / "prod" / ".env").unlink()
    with pytest.raises(RecoveryError, match="exist here with other content"):
        lay_out(host, config)
    assert not (tmp_path / "root" / "shop" / "prod" / ".env").exists()  # refused before any


def _project(name: str) -> Project:
    return Project(name=name, path=f"/r/{name}/project.yaml", environments=("dev", "prod"))


def test_rebuild_order_comes_first_then_the_roots_order() -> None:
    projects = [_project(n) for n in ("app", "db", "mail")]
    everything = [(p, e) for p in projects for e in p.environments]
    settings = parse_settings("/r/opskit.yaml", 'rebuild:\n  order: ["db prod", mail]\n')
    got = [f"{p.name} {e}" for p, e in order(settings, everything)]
    assert got == ["db prod", "mail dev", "mail prod", "app dev", "app prod", "db dev"]
    for text, problem in (
        ('rebuild:\n  order: ["nope"]\n', "/r/opskit.yaml:2: rebuild.order: no project 'nope'"),
        ('rebuild:\n  order: ["db int"]\n', "/r/opskit.yaml:2: rebuild.order: db has no env 'int'"),
    ):
        with pytest.raises(OpskitError, match=problem):
            order(parse_settings("/r/opskit.yaml", text), everything)


def test_the_externals_of_an_env_skip_an_extra_stack_it_does_not_have(tmp_path: Path) -> None:
    """mdf's mail stack is prod's alone: 'rebuild mdf dev' asked compose for the config of
    dev/mail/compose.yaml, which does not exist, and failed."""
    world = make_world(tmp_path)
    descriptor = Path(world.root) / "shop" / "project.yaml"
    descriptor.write_text(
        descriptor.read_text().replace(
            '  project_name: "shop-{env}"\n',
            '  project_name: "shop-{env}"\n'
            '  extra: [{dir: "{env}/mail", files: [compose.yaml], project_name: "shop-{env}-mail"}]\n',
        )
    )
    world.fake.write(f"{world.root}/shop/prod/mail/compose.yaml", "services:\n  mail: {image: m}\n")
    ops = world.ops()
    project = ops.runtime.project("shop")
    assert ops.runtime.stacks.missing_externals(project, "dev") == []
    asked = [c.cwd for c in world.fake.matching(["docker", "compose", "config"]) if c.cwd]
    assert asked and not any("mail" in str(where) for where in asked)


def test_a_descriptor_in_a_namespace() -> None:
    import yaml

    from opskit.namespaced import descriptor

    text = """\
name: mdf
environments: [dev, prod]
compose:
  dir: "{env}"
  files: [docker-compose.yml, docker-compose.override.yml]
  project_name: "mdf-{env}"
  extra:
    - {dir: "{env}/mail", files: [docker-compose.yml], project_name: "mdf-{env}-mail"}
health:
  - {service: web, http: "http://127.0.0.1:18082/"}
backup:
  dir: /var/lib/opskit/backups
  volumes: ["mdf-{env}_media"]
"""
    moved = yaml.safe_load(descriptor(text, "opskit-drill-7-ab"))
    assert moved["container_prefix"] == "opskit-drill-7-ab-{env}-{project}"  # the default's
    assert moved["compose"]["project_name"] == "opskit-drill-7-ab-mdf-{env}"
    assert moved["compose"]["files"] == ["docker-compose.yml"]  # the one resolved file
    assert moved["compose"]["extra"][0]["project_name"] == "opskit-drill-7-ab-mdf-{env}-mail"
    assert moved["backup"]["volumes"] == ["opskit-drill-7-ab-mdf-{env}_media"]
    assert moved["health"] == []  # the live server's ports are not the drill's
    assert moved["backup"]["dir"] == "/var/lib/opskit/backups"  # moved by the layout's rewrite


def test_a_compose_config_in_a_namespace() -> None:
    from opskit.namespaced import NamespaceError, compose_document

    config = {
        "name": "shop-prod",
        "services": {
            "web": {
                "container_name": "shop-web",
                "ports": [{"target": 80, "published": "8080"}],
                "labels": ["ops.project=shop"],
                "volumes": [
                    {"type": "bind", "source": "/opt/data/shop/prod/uploads", "target": "/u"},
                    {"type": "bind", "source": "/etc/localtime", "target": "/l", "read_only": True},
                ],
                "networks": {"default": None, "proxy": None},
            }
        },
        "networks": {
            "default": {"name": "shop-prod_default"},
            "proxy": {"external": True, "name": "proxy"},
        },
        "volumes": {"media": {"name": "shop-prod_media"}},
    }
    moved = compose_document(config, "opskit-drill-7-ab", {"opskit.drill": "x"}, "/opt/data")
    web = moved["services"]["web"]
    assert moved["name"] == "opskit-drill-7-ab-shop-prod"
    assert "ports" not in web and web["container_name"] == "opskit-drill-7-ab-shop-web"
    assert web["labels"] == {"ops.project": "shop", "opskit.drill": "x"}
    assert moved["networks"]["default"] == {
        "name": "opskit-drill-7-ab-shop-prod_default", "labels": {"opskit.drill": "x"}, "internal": True,
    }  # fmt: skip
    assert moved["networks"]["proxy"] == {"external": True, "name": "opskit-drill-7-ab-proxy"}
    assert moved["volumes"]["media"]["name"] == "opskit-drill-7-ab-shop-prod_media"

    writable = {"type": "bind", "source": "/srv/shared", "target": "/s"}
    config["services"]["web"]["volumes"].append(writable)  # type: ignore[index]
    with pytest.raises(NamespaceError, match="mounts /srv/shared writable, outside the root"):
        compose_document(config, "opskit-drill-7-ab", {}, "/opt/data")
    host = {"name": "x", "services": {"web": {"network_mode": "host"}}}
    with pytest.raises(NamespaceError, match="network_mode host"):
        compose_document(host, "opskit-drill-7-ab", {}, "/opt/data")
