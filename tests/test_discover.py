"""``opskit init``'s proposals, on a fake host: envs from folder names, compose-name
suffixes and sibling folders; databases, volumes, bind mounts and probes; secrets named,
never shown; and what bad input gets (a ``fill in``, never a silent guess)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

import opskit
import opskit_mdf
from opskit.cli import create_cli
from opskit.descriptor import DescriptorSource, parse_descriptor
from opskit.testing import FakeContainer, FakeHost, plugin_manager
from test_profiles import V1_CONFIG

SECRET = "s3cret-do-not-print"


def run_by_hand(
    fake: FakeHost,
    compose_project: str,
    folder: str,
    service: str,
    *,
    files: tuple[str, ...] = ("compose.yaml",),
    write_files: bool = True,
    **fields: Any,
) -> FakeContainer:
    """A container that ``docker compose -p PROJECT`` started from *folder*: compose's
    labels only (no ops.* labels), as on a server nobody prepared for opskit."""
    if write_files:
        for name in files:
            if not Path(folder, name).exists():
                fake.write(f"{folder}/{name}", "services: {}\n")
    container = fake.container(
        project="", env="", service=service, name=f"{compose_project}-{service}-1", **fields
    )
    container.labels = {
        "com.docker.compose.project": compose_project,
        "com.docker.compose.service": service,
        "com.docker.compose.project.working_dir": folder,
        "com.docker.compose.project.config_files": ",".join(f"{folder}/{f}" for f in files),
    }
    return container


def volume(name: str, destination: str, rw: bool = True) -> dict[str, Any]:
    return {
        "Type": "volume",
        "Name": name,
        "Source": f"/v/{name}",
        "Destination": destination,
        "RW": rw,
    }


def bind(source: str, destination: str, rw: bool = True) -> dict[str, Any]:
    return {"Type": "bind", "Source": source, "Destination": destination, "RW": rw}


def wordpress_env(fake: FakeHost, root: str, env: str, port: int) -> None:
    folder = f"{root}/blog/{env}"
    run_by_hand(
        fake,
        f"blog-{env}",
        folder,
        "web",
        image="wordpress:6",
        environment={"WORDPRESS_DB_HOST": "db", "WORDPRESS_DB_PASSWORD": SECRET},
        mounts=[
            bind(f"{folder}/wp-content", "/var/www/html/wp-content"),
            bind(f"{root}/_conf", "/conf", rw=False),
        ],
        ports={
            "80/tcp": [
                {"HostIp": "0.0.0.0", "HostPort": str(port)},
                {"HostIp": "::", "HostPort": str(port)},
            ]
        },
        health_test=["CMD-SHELL", "curl -fsS http://localhost/wp-login.php || exit 1"],
    )
    run_by_hand(
        fake,
        f"blog-{env}",
        folder,
        "db",
        image="registry.example/custom-db:1",
        processes=["tini", "mariadbd"],
        environment={"MYSQL_ROOT_PASSWORD": SECRET, "MYSQL_DATABASE": "wordpress"},
        mounts=[
            volume(f"blog-{env}_db_data", "/var/lib/mysql"),
            volume(f"blog-{env}_media", "/media"),
        ],
        ports={"3306/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port + 100)}]},
    )
    fake.http(f"http://127.0.0.1:{port}/wp-login.php", 200)


def init(fake: FakeHost, root: str, *plugins: object, write: bool = False) -> Any:
    with opskit.Ops(root=root, host=fake, plugins=plugin_manager(*plugins)) as ops:
        return ops.init(write=write, backup_dir=fake.path("backups"))


def descriptor(written: Any) -> Any:
    return parse_descriptor(DescriptorSource(written.path, written.text))


def test_envs_from_folder_names_with_database_volumes_mounts_and_probes(tmp_path: Path) -> None:
    fake = FakeHost(tmp_path)
    root = fake.path("root")
    wordpress_env(fake, root, "dev", 28001)
    wordpress_env(fake, root, "prod", 28002)
    report = init(fake, root, opskit_mdf)
    [blog] = report.proposals
    assert blog.path == f"{root}/blog/project.yaml"
    project = descriptor(blog)
    assert project.plugin == "mdf"  # the mdf plugin recognised WordPress + MariaDB
    assert project.environments == ("dev", "prod")
    assert project.compose.dir == "{env}"
    assert project.compose.files == ("compose.yaml",)
    assert project.compose.project_name == "blog-{env}"
    assert [s.name for s in project.services] == ["db", "web"]
    [database] = project.backup.databases
    assert (database.service, database.type, database.name, database.user, database.password_env) == (
        "db", "mariadb", "wordpress", "root", "MYSQL_ROOT_PASSWORD",
    )  # fmt: skip
    # the database's data dir is dumped, not copied; the read-only mount is configuration
    assert project.backup.volumes == ("blog-{env}_media",)
    assert project.backup.paths == ("{env}/wp-content",)
    assert [(p.service, p.http, p.expect, p.environments) for p in project.health] == [
        ("web", "http://127.0.0.1:28001/wp-login.php", 200, ("dev",)),
        ("web", "http://127.0.0.1:28002/wp-login.php", 200, ("prod",)),
    ]
    assert not fake.ran(["curl"])  # the MariaDB port was never asked for HTTP
    assert project.backup.schedule and project.backup.retention.keep_daily == 7
    # every guess is commented
    text = blog.text
    assert "environments: [dev, prod]  # guessed: dev from the folder name" in text
    assert "project_name: blog-{env}  # pinned to what runs" in text
    assert "a mariadb server runs in db (from its server process)" in text
    assert "it answered 200 when init looked (at the path its healthcheck asks)" in text
    assert "plugin: mdf  # WordPress (web) with MariaDB" in text
    assert SECRET not in text and SECRET not in repr(report.as_dict())


def test_envs_from_compose_name_suffixes_in_one_folder(tmp_path: Path) -> None:
    fake = FakeHost(tmp_path)
    root = fake.path("root")
    folder = f"{root}/letters"
    for env in ("prod", "dev"):
        run_by_hand(
            fake,
            f"letters-{env}",
            folder,
            "db",
            files=(f"docker-compose.{env}.yml",),
            image="postgres:15",
            environment={"POSTGRES_PASSWORD": SECRET, "POSTGRES_DB": "letters", "PGDATA": "/pg"},
            mounts=[
                volume(f"letters-{env}_pg", "/pg"),
                bind(f"{folder}/uploads/{env}", "/uploads"),
            ],
        )
    [letters] = init(fake, root).proposals
    project = descriptor(letters)
    assert project.environments == ("dev", "prod")  # promotion order, whatever ran first
    assert project.compose.dir == "."
    assert project.compose.files == ("docker-compose.{env}.yml",)
    assert project.compose.project_name == "letters-{env}"
    [database] = project.backup.databases
    assert (database.type, database.name, database.user, database.password_env) == (
        "postgres", "letters", "postgres", "POSTGRES_PASSWORD",
    )  # fmt: skip
    assert project.backup.volumes == ()  # PGDATA is dumped
    assert project.backup.paths == ("uploads/{env}",)
    assert "dev from the compose name" in letters.text
    assert "a postgres server runs in db (from its image)" in letters.text


def test_sibling_folders_outside_the_root_and_a_single_env(tmp_path: Path) -> None:
    fake = FakeHost(tmp_path)
    root = fake.path("root")
    for env in ("dev", "prod"):
        run_by_hand(fake, f"app{env}", fake.path(f"srv/app-{env}"), "web")
    run_by_hand(fake, "wiki", fake.path("srv/wiki"), "web")
    app, wiki = init(fake, root).proposals
    project = descriptor(app)
    assert app.path == f"{root}/app/project.yaml"
    assert project.environments == ("dev", "prod")
    assert project.compose.dir == fake.path("srv/app-{env}")
    assert project.compose.project_name == "app{env}"
    assert "dev from the folder name's suffix" in app.text
    one = descriptor(wiki)
    assert one.environments == ("prod",) and one.compose.project_name == "wiki"
    assert "guessed: prod as the only env" in wiki.text


def rings_env(fake: FakeHost, root: str, env: str, db: str = "db-{env}") -> None:
    """One env of the "ringsaday" layout started by hand: ``docker compose -p rings
    --profile ENV up -d`` in one folder, services ``web-ENV`` and ``db-ENV``."""
    run_by_hand(
        fake,
        "rings",
        f"{root}/rings",
        f"web-{env}",
        image="nginx:1",
        mounts=[volume(f"rings_{env}_media", "/srv/media"), bind(f"{root}/rings/{env}", "/up")],
    )
    run_by_hand(
        fake,
        "rings",
        f"{root}/rings",
        db.format(env=env),
        image="mariadb:11",
        environment={"MARIADB_ROOT_PASSWORD": SECRET, "MARIADB_DATABASE": "rings"},
        mounts=[volume(f"rings_{env}_db", "/var/lib/mysql")],
    )


def test_envs_chosen_by_profile_are_one_descriptor_with_env_templated_services(
    tmp_path: Path,
) -> None:
    fake = FakeHost(tmp_path)
    root = fake.path("root")
    fake.on(["docker", "compose", "config"], stdout=V1_CONFIG)  # every service, its profiles
    rings_env(fake, root, "prod")
    rings_env(fake, root, "dev")
    [rings] = init(fake, root).proposals
    assert rings.reason == ""
    project = descriptor(rings)
    assert project.environments == ("dev", "prod")
    assert (project.compose.profile, project.compose.project_name) == ("{env}", "rings")
    assert {s.name: s.environments for s in project.services} == {
        "db-dev": ("dev",), "db-prod": ("prod",), "web-dev": ("dev",), "web-prod": ("prod",),
    }  # fmt: skip
    [database] = project.backup.databases
    assert (database.service, database.type, database.name, database.password_env) == (
        "db-{env}", "mariadb", "rings", "MARIADB_ROOT_PASSWORD",
    )  # fmt: skip
    assert project.backup.volumes == ("rings_{env}_media",)
    assert project.backup.paths == ("{env}",)
    assert "guessed: the compose profiles of the services that run in rings" in rings.text
    assert "each env is the compose profile of its name" in rings.text
    assert "the envs' services differ by the env only" in rings.text
    assert fake.ran(["docker", "compose", "--project-name", "rings"])
    assert SECRET not in rings.text


def test_envs_chosen_by_profile_whose_databases_do_not_pair_up_get_a_fill_in(
    tmp_path: Path,
) -> None:
    fake = FakeHost(tmp_path)
    root = fake.path("root")
    config = V1_CONFIG.replace("db-prod", "database")
    fake.on(["docker", "compose", "config"], stdout=config)
    rings_env(fake, root, "dev")
    rings_env(fake, root, "prod", db="database")
    [rings] = init(fake, root, write=True).proposals
    assert rings.outcome == "refused"
    assert "fill in: the database service db-{env} runs in dev only" in rings.text
    assert "fill in: the database service database runs in prod only" in rings.text
    assert "databases" not in yaml.safe_load(rings.text)["backup"]  # no wrong guess
    assert not Path(root, "rings", "project.yaml").exists()


def test_a_compose_config_that_fails_is_said_and_no_profile_is_guessed(tmp_path: Path) -> None:
    fake = FakeHost(tmp_path)
    root = fake.path("root")
    fake.on(["docker", "compose", "config"], returncode=1, stderr="yaml: line 3: bad")
    rings_env(fake, root, "dev")
    [rings] = init(fake, root).proposals
    assert "compose profiles not read (compose config failed: yaml: line 3: bad)" in rings.text
    assert "profile" not in yaml.safe_load(rings.text)["compose"]


def test_bad_input_gets_a_fill_in_never_a_silent_guess(tmp_path: Path) -> None:
    fake = FakeHost(tmp_path)
    root = fake.path("root")
    fake.container(project="", env="", service="", name="by-docker-run")
    fake.engine.containers_[-1].labels = {}
    run_by_hand(
        fake,
        "cache",
        f"{root}/cache",
        "store",
        image="mongo:7",
        mounts=[volume("cache_store", "/data/db")],
    )
    run_by_hand(fake, "gone", f"{root}/gone", "web", write_files=False)
    run_by_hand(fake, "Odd Name", f"{root}/odd", "web")
    run_by_hand(
        fake,
        "maria",
        f"{root}/maria",
        "db",
        image="mariadb:11",
        environment={"MARIADB_USER": "app", "MARIADB_PASSWORD_FILE": "/run/secrets/pw"},
    )
    report = init(fake, root)
    by_name = {w.proposal.name: w for w in report.proposals}
    assert report.unplaced == (
        "container by-docker-run runs without compose labels (docker run?): write its "
        "descriptor by hand",
    )
    # an unknown database: its data copied with the service stopped, and said so
    cache = descriptor(by_name["cache"])
    assert cache.backup.stop == ("store",) and cache.backup.volumes == ("cache_store",)
    assert "fill in: store looks like mongo, which opskit cannot dump" in by_name["cache"].text
    assert by_name["cache"].reason == ""
    # compose files that are gone, a name compose would not take, a database without a name
    assert "fill in first: no compose file in" in by_name["gone"].reason
    assert "'Odd Name' (prod) is not a valid compose name" in by_name["odd"].reason
    maria = by_name["maria"]
    assert "fill in first: the database's name" in maria.reason
    assert "fill in: the database's password (MARIADB_PASSWORD_FILE is a file" in maria.text
    assert "user: app" in maria.text
    for written in report.proposals:  # every proposal is valid YAML, also the blocked ones
        yaml.safe_load(written.text)


def test_write_never_replaces_a_file_and_writes_the_others(tmp_path: Path) -> None:
    fake = FakeHost(tmp_path)
    root = fake.path("root")
    run_by_hand(fake, "shop-dev", f"{root}/shop/dev", "web")
    run_by_hand(fake, "shop-prod", f"{root}/shop/prod", "web")
    run_by_hand(fake, "wiki", f"{root}/wiki", "web")
    run_by_hand(fake, "gone", f"{root}/gone", "web", write_files=False)
    Path(root, "wiki", "project.yaml").write_text("# mine\n")
    with pytest.raises(opskit.OpskitError):  # an invalid descriptor under the root...
        init(fake, root, write=True)
    Path(root, "wiki", "project.yaml").write_text("name: wiki\nenvironments: [prod]\n")
    report = init(fake, root, write=True)  # ... a valid one: its stack is not proposed again
    outcomes = {w.proposal.name: (w.outcome, w.reason.split(":")[0]) for w in report.proposals}
    assert outcomes == {"gone": ("refused", "fill in first"), "shop": ("written", "")}
    assert Path(root, "wiki", "project.yaml").read_text() == "name: wiki\nenvironments: [prod]\n"
    assert not Path(root, "gone", "project.yaml").exists()
    assert descriptor(report.proposals[1]).compose.project_name == "shop-{env}"
    assert report.doctor is not None and not report.ok  # refused: exit 1
    again = init(fake, root, write=True)  # shop is described now: nothing new to write
    assert [w.proposal.name for w in again.proposals] == ["gone"]


def test_write_on_a_server_whose_root_does_not_exist_yet(tmp_path: Path) -> None:
    fake = FakeHost(tmp_path)
    run_by_hand(fake, "wiki", fake.path("srv/wiki"), "web")
    root = fake.path("opt/data")
    report = init(fake, root, write=True)
    assert [w.outcome for w in report.proposals] == ["written"]
    project = descriptor(report.proposals[0])
    assert project.compose.dir == fake.path("srv/wiki")
    assert Path(root, "wiki", "project.yaml").read_text() == report.proposals[0].text
    assert report.doctor is not None


def init_command(fake: FakeHost, root: str, *args: str) -> Any:
    """``opskit init ARGS`` in this process, on the fake host."""
    cli = create_cli(plugin_manager())
    state = cli.context_settings["obj"]
    state.root, state.host = root, fake
    args = ("init", "--backup-dir", fake.path("backups"), *args)
    return CliRunner().invoke(cli, args, standalone_mode=False)  # return_value: the exit code


def test_the_command_prints_yaml_and_refuses_with_one_error_line_each(tmp_path: Path) -> None:
    fake = FakeHost(tmp_path)
    root = fake.path("root")
    fake.container(project="", env="", service="", name="by-docker-run").labels = {}
    run_by_hand(fake, "wiki", f"{root}/wiki", "web", environment={"API_TOKEN": SECRET})
    run_by_hand(fake, "gone", f"{root}/gone", "web", write_files=False)
    shown = init_command(fake, root)
    assert shown.exit_code == 0 and shown.return_value == 0, shown.output
    assert shown.stdout.startswith("# fill in: container by-docker-run runs without compose")
    documents = list(yaml.safe_load_all(shown.stdout))
    assert [d["name"] for d in documents] == ["gone", "wiki"]  # valid YAML, one per project
    assert SECRET not in shown.output
    written = init_command(fake, root, "--write")
    assert written.return_value == 1
    errors = [line for line in written.stderr.splitlines() if line.startswith("[error]")]
    assert errors == [
        f"[error] init: gone: not written: fill in first: no compose file in {root}/gone for "
        f"prod ({root}/gone/compose.yaml): the stack was started from files that are gone"
    ]
    assert f"wrote {root}/wiki/project.yaml" in written.stderr
    assert "Traceback" not in written.output
    assert Path(root, "wiki", "project.yaml").exists()
    with opskit.Ops(root=root, host=fake, plugins=plugin_manager()) as ops:
        elsewhere = ops.init(under=fake.path("srv"))  # nothing runs there
    assert elsewhere.proposals == () and elsewhere.unplaced == ()
