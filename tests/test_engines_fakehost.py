"""opskit.testing.FakeHost itself: rules, recording, the sandbox, the fake engine, and a
third-party plugin tested with it as its docstring shows."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import IO, Any, ClassVar

import attrs
import pytest

import opskit
from opskit.components import BackupContext, Component
from opskit.containers import Container
from opskit.errors import CommandFailed, DockerUnavailable, HostError
from opskit.gate import judge
from opskit.host import Process
from opskit.plugins import hookimpl
from opskit.testing import FakeHost, Reply, UnexpectedCommand, plugin_manager


def test_words_match_in_order_from_the_program_and_the_newest_rule_wins(tmp_path):
    fake = FakeHost(tmp_path)
    fake.on(["docker", "compose", "up"], stdout="old")
    fake.on(["docker", "compose", re.compile(r"^--project-name$"), "up"], stdout="new")
    argv = ["docker", "compose", "--project-name", "x", "-f", "c.yml", "up", "-d"]
    assert fake.run(argv).text == "new"
    assert fake.run(["docker", "compose", "up", "--project-name"]).text == "old"
    # The first word is the program; the others only in this order.
    assert fake.run(["sudo", "docker", "compose", "up"]).text == ""
    assert fake.run(["docker", "up", "compose"]).text == ""


def test_a_rule_for_a_number_of_times_then_the_older_rules(tmp_path):
    fake = FakeHost(tmp_path)
    fake.on(["restic", "check"], stdout="ok")
    once = fake.on(["restic", "check"], returncode=1, stderr="pack damaged", times=1)
    with pytest.raises(CommandFailed, match="restic check failed with exit 1: pack damaged"):
        fake.run(["restic", "check"])
    assert fake.run(["restic", "check"]).text == "ok"
    assert once.used == 1
    assert [c.returncode for c in fake.matching(["restic"])] == [1, 0]


def test_an_answer_computed_from_the_call_or_left_to_older_rules(tmp_path):
    fake = FakeHost(tmp_path)
    fake.on(["git"], stdout="fallback")
    fake.on(["git"], answer=lambda call: Reply(stdout=call.argv[1]) if len(call.argv) > 1 else None)
    assert fake.run(["git", "rev-parse"]).text == "rev-parse"
    assert fake.run(["git"]).text == "fallback"


def test_a_stream_breaks_where_the_rule_says_and_stdin_is_recorded(tmp_path):
    fake = FakeHost(tmp_path)
    fake.on(["pg_dump"], stdout=[b"COPY t", b" FROM stdin;\n", OSError("reset by peer")])
    process = fake.popen(["pg_dump", "db"], merge_stderr=False)
    assert process.stdout.read(10) == b"COPY t FRO"
    with pytest.raises(OSError, match="reset by peer"):
        process.stdout.read()
    process.kill()
    assert fake.calls[-1].killed

    fake.on(["psql"], returncode=3, stderr="ERROR: syntax\n")
    load = fake.popen(["psql"], stdin=True, merge_stderr=False)
    assert load.stdin is not None
    load.stdin.write(b"INSERT 1;\n")
    load.stdin.close()
    assert (load.wait(), load.errors()) == (3, "ERROR: syntax\n")
    assert fake.calls[-1].stdin == b"INSERT 1;\n"
    merged = fake.popen(["psql"])
    assert merged.stdout.read() == b"ERROR: syntax\n"


def test_an_effect_runs_when_the_command_ends_and_an_observer_changes_no_answer(tmp_path):
    fake = FakeHost(tmp_path)
    seen: list[bytes] = []
    fake.on(["docker", "exec"], effect=lambda call: seen.append(call.stdin))
    fake.on(["docker", "exec", "db"], stdout="answered")
    process = fake.popen(["docker", "exec", "-i", "db", "sh"], stdin=True)
    assert process.stdin is not None
    process.stdin.write(b"all of it")
    assert seen == []
    process.stdin.close()
    assert process.stdout.read() == b"answered"
    process.wait()
    assert seen == [b"all of it"]


def test_the_plumbing_runs_for_real_in_the_sandbox_and_nowhere_else(tmp_path):
    fake = FakeHost(tmp_path)
    folder = fake.path("a", "b")
    fake.run(["mkdir", "-p", "--", folder])
    fake.write(f"{folder}/f.txt", "text")
    assert fake.run(["cat", "--", f"{folder}/f.txt"]).text == "text"
    assert fake.listdir(fake.path("a")) == ["b"]
    with pytest.raises(CommandFailed):
        fake.run(["test", "-e", fake.path("missing")])
    for argv in (["rm", "-rf", "--", "/etc"], ["sh", "-c", "true", "x", "/root/.ssh"]):
        with pytest.raises(UnexpectedCommand, match="outside the fake host's sandbox"):
            fake.run(argv)
    with pytest.raises(UnexpectedCommand):
        fake.open_write("/tmp/elsewhere")
    with pytest.raises(UnexpectedCommand):
        fake.run(["tar", "--create", "--directory=/var/lib", "."])


def test_a_strict_host_fails_the_test_on_a_command_no_rule_answers(tmp_path):
    fake = FakeHost(tmp_path, strict=True)
    fake.on(["rsync"])
    fake.run(["rsync", "-a", "x", "y"])
    with pytest.raises(UnexpectedCommand, match="no rule answers curl http://x"):
        fake.run(["curl", "http://x"])
    lenient = FakeHost(tmp_path)
    assert lenient.run(["curl", "http://x"]).returncode == 0


def test_a_rule_can_say_the_program_is_not_installed(tmp_path):
    fake = FakeHost(tmp_path)
    fake.on(["restic"], raises=HostError("restic: command not found"))
    with pytest.raises(HostError, match="not found"):
        fake.popen(["restic", "version"])


def test_secrets_in_env_and_stdin_stay_out_of_the_record_repr(tmp_path):
    fake = FakeHost(tmp_path)
    fake.run(["restic", "init"], env={"RESTIC_PASSWORD": "hunter2"}, input=b"hunter2\n")
    call = fake.calls[-1]
    assert call.env == {"RESTIC_PASSWORD": "hunter2"}
    assert call.stdin == b"hunter2\n"
    assert "hunter2" not in repr(call)
    assert "RESTIC_PASSWORD" in repr(call)
    assert "hunter2" not in fake.transcript()


def test_the_fake_engine_speaks_the_docker_api_that_opskit_reads(tmp_path):
    fake = FakeHost(tmp_path)
    web = fake.container(project="shop", env="prod", service="web")
    job = fake.container(project="shop", env="prod", service="job", state="exited", health=None)
    listed = [Container.from_api(item) for item in fake.docker().containers(all=True)]
    assert [(c.name, c.state, c.health) for c in listed] == [
        ("shop-prod-web-1", "running", "healthy"),
        ("shop-prod-job-1", "exited", "none"),
    ]
    assert listed[0].labels["com.docker.compose.project"] == "shop-prod"
    assert [c["Names"] for c in fake.docker().containers()] == [["/shop-prod-web-1"]]

    before = datetime.now(UTC) - timedelta(seconds=1)
    assert judge("web", fake.docker().inspect_container(web.id[:12]), before, 0).ok
    web.health, web.health_output = "unhealthy", "500 from /health"
    verdict = judge("web", fake.docker().inspect_container(web.name), before, 0)
    assert verdict.failed and "500 from /health" in verdict.detail
    web.health = "starting"
    assert not judge("web", fake.docker().inspect_container(web.id), before, 0).ok
    assert "Healthcheck" not in fake.docker().inspect_container(job.id)["Config"]

    import docker

    with pytest.raises(docker.errors.NotFound):
        fake.docker().inspect_container("nope")
    with pytest.raises(docker.errors.NotFound):
        fake.docker().inspect_volume("nope")
    assert fake.volume("media").startswith(str(tmp_path))
    fake.docker_error = "connection refused (is dockerd running?)"
    with pytest.raises(DockerUnavailable, match="cannot reach the Docker engine"):
        fake.docker()


def test_compose_v2_acts_on_the_fake_containers(tmp_path):
    fake = FakeHost(tmp_path)
    web = fake.container(project="shop", env="prod", service="web")
    db = fake.container(project="shop", env="prod", service="db")
    other = fake.container(project="blog", env="prod", service="web")
    assert fake.run(["docker", "compose", "version"]).returncode == 0
    compose = ["docker", "compose", "--project-name", "shop-prod", "-f", "/x/compose.yaml"]
    fake.run([*compose, "stop", "web"])
    assert (web.state, db.state, other.state) == ("exited", "running", "running")
    fake.run([*compose, "stop"])
    assert db.state == "exited"
    fake.run([*compose, "up", "-d"])
    assert (web.state, db.state) == ("running", "running")
    assert web.started_at > datetime.now(UTC) - timedelta(seconds=5)
    assert fake.run([*compose, "config", "--services"]).text.split() == ["db", "web"]
    fake.run([*compose, "down"])
    assert [c.name for c in fake.engine.containers_] == ["blog-prod-web-1"]


def test_http_probes_are_refused_unless_answered(tmp_path):
    fake = FakeHost(tmp_path)
    with pytest.raises(ConnectionRefusedError):
        fake.http_status("http://127.0.0.1:8080/", 5)
    fake.http("http://127.0.0.1:8080/", 503)
    assert fake.http_status("http://127.0.0.1:8080/", 5) == 503
    assert fake.order(["GET", "http://127.0.0.1:8080/"]) == [0]


def test_order_fails_listing_what_ran(tmp_path):
    fake = FakeHost(tmp_path)
    fake.run(["b"])
    fake.run(["a"])
    assert fake.order(["b"], ["a"]) == [0, 1]
    with pytest.raises(AssertionError, match=r"no command matching \['b'\] after position 1"):
        fake.order(["a"], ["b"])


# A third-party plugin, tested as opskit.testing's docstring shows.


@attrs.frozen
class RedisDump(Component):
    """A plugin's component: the dump file of a Redis container, through redis-cli."""

    service: str
    kind: ClassVar[str] = "redis"
    extension: ClassVar[str] = "rdb"

    @property
    def key(self) -> str:
        return f"redis-{self.service}"

    def describe(self) -> dict[str, Any]:
        return {"service": self.service}

    def dump(self, context: BackupContext) -> Process:
        container = context.running_container(self.service).name
        return context.host.popen(
            ["docker", "exec", container, "redis-cli", "--rdb", "-"], merge_stderr=False
        )

    def restore(self, context: BackupContext, source: IO[bytes]) -> None:
        raise NotImplementedError


class RedisPlugin:
    @hookimpl
    def opskit_backup_components(self, context: BackupContext) -> list[Component]:
        return [RedisDump("cache")] if context.project.name == "app" else []


APP = """\
name: app
environments: [prod]
compose: {{dir: "{{env}}", project_name: "app-{{env}}"}}
services: {{cache: {{}}}}
backup: {{dir: {backups}, store: folder}}
"""


def test_a_plugin_author_tests_a_component_on_a_fake_host(tmp_path):
    fake = FakeHost(tmp_path)
    fake.write(fake.path("root/app/project.yaml"), APP.format(backups=fake.path("backups")))
    fake.write(fake.path("root/app/prod/compose.yaml"), "services: {cache: {}}\n")
    fake.container(project="app", env="prod", service="cache")
    fake.on(["docker", "exec", "app-prod-cache-1", "redis-cli"], stdout=b"REDIS0011\xfe\x00")
    plugins = plugin_manager(RedisPlugin())
    with opskit.Ops(root=fake.path("root"), host=fake, plugins=plugins) as ops:
        [archive] = ops.backup("app", "prod")
        assert ops.verify("app", "prod", archive.name)[0][1] == []
    assert [(c.key, c.raw_bytes) for c in archive.components] == [("redis-cache", 11)]

    fake.on(["docker", "exec", "app-prod-cache-1"], returncode=1, stderr="NOAUTH required\n")
    failing = pytest.raises(opskit.OpskitError, match="redis redis-cache failed: NOAUTH")
    with opskit.Ops(root=fake.path("root"), host=fake, plugins=plugins) as ops, failing:
        ops.backup("app", "prod")
    # The first archive, and neither a second nor a partial one.
    assert fake.listdir(fake.path("backups/app/prod")) == [".lock", archive.name]
