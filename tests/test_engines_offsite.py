"""The offsite engine's decisions on a fake host (``backup --offsite`` and ``restore
--offsite`` of the shop in fakeroot): what it asks restic, in which order, and what it
refuses or reports when restic is missing, refuses, answers with the wrong snapshots or
is cut off. restic is a small model of a repository kept by the test."""

from __future__ import annotations

import json
import re
import secrets
import threading
from collections.abc import Iterator
from typing import Any

import attrs
import pytest
from click.testing import CliRunner

from fakeroot import World, make_world
from opskit.cli import create_cli
from opskit.errors import OpskitError
from opskit.events import JobFinished
from opskit.testing import Call, Reply, plugin_manager

TARGET = "sftp://backup@offsite.example.test:22/srv/restic"
RESTIC = ["restic", "--repo", TARGET, "--password-file"]
UPLOAD = [*RESTIC, re.compile("restic-password$"), "backup"]
COMPONENTS = ["db-db-shop", "path-prod-uploads", "volume-shop-prod_media", "manifest"]


def restic(*words: str | re.Pattern[str]) -> list[str | re.Pattern[str]]:
    return [*RESTIC, re.compile("restic-password$"), *words]


@attrs.define
class Repository:
    """A restic repository as the fake host's ``restic`` sees it: snapshots with tags and
    the bytes each was given on stdin. ``restic backup`` answers its summary only once
    its stdin has ended, as restic does."""

    snapshots: list[dict[str, Any]] = attrs.field(factory=list)
    data: dict[str, bytes] = attrs.field(factory=dict)
    ended: dict[Call, threading.Event] = attrs.field(factory=dict)
    ids: dict[Call, str] = attrs.field(factory=dict)  # each backup's snapshot

    def install(self, world: World) -> None:
        fake = world.fake
        fake.on(["restic", "version"], stdout="restic 0.17.3 compiled with go1.22.5 on linux\n")
        fake.on(restic("snapshots"), answer=self.list_snapshots)
        fake.on(restic("backup"), answer=self.start_backup, effect=self.end_backup)
        fake.on(restic("tag", "--add"), answer=self.tag)
        fake.on(restic("forget"), answer=self.forget)
        fake.on(restic("dump"), answer=self.dump)

    def list_snapshots(self, call: Call) -> Reply:
        [selection] = [a for a in call.argv if a.startswith("--tag=")] or ["--tag="]
        wanted = {t for t in selection.removeprefix("--tag=").split(",") if t}
        found = [s for s in self.snapshots if wanted <= set(s["tags"])]
        return Reply(stdout=json.dumps(found))

    def start_backup(self, call: Call) -> Reply:
        ended = self.ended.setdefault(call, threading.Event())

        def status() -> Iterator[bytes]:
            yield b'{"message_type":"status","percent_done":0}\n'
            ended.wait(10)
            read = len(call.stdin)
            summary = {"message_type": "summary", "snapshot_id": self.snapshot_id(call),
                       "total_bytes_processed": read, "data_added": read}  # fmt: skip
            yield json.dumps(summary).encode() + b"\n"

        return Reply(stdout=status())

    def end_backup(self, call: Call) -> None:
        if call.killed:
            self.ended[call].set()
            return
        argv = call.argv
        tags = argv[argv.index("--host") - 1].removeprefix("--tag=").split(",")
        filename = argv[argv.index("--stdin-filename") + 1]
        snapshot_id = self.snapshot_id(call)
        self.snapshots.append(
            {"id": snapshot_id * 4, "short_id": snapshot_id, "tags": tags,
             "paths": [filename], "time": f"2026-12-03T01:00:{len(self.snapshots):02}Z"}
        )  # fmt: skip
        self.data[snapshot_id] = call.stdin
        self.ended[call].set()

    def snapshot_id(self, call: Call) -> str:
        return self.ids.setdefault(call, secrets.token_hex(4))

    def tag(self, call: Call) -> Reply:
        for snapshot in self.snapshots:
            if snapshot["short_id"] == call.argv[-1]:
                snapshot["tags"].append(call.argv[-2])
        return Reply()

    def forget(self, call: Call) -> Reply:
        ids = set(call.argv[call.argv.index("forget") + 1 :])
        self.snapshots = [s for s in self.snapshots if not {s["id"], s["short_id"]} & ids]
        return Reply()

    def dump(self, call: Call) -> Reply:
        snapshot = call.argv[call.argv.index("dump") + 1]
        return Reply(stdout=self.data.get(snapshot[:8], b""))


def offsite_world(tmp_path, keep: int | None = None) -> tuple[World, Repository]:
    """shop with an offsite target (keeping *keep* archives), its repository password
    written by ``offsite init`` and a repository that answers like restic."""
    world = make_world(tmp_path)
    world.database()
    fake = world.fake
    with open(f"{world.root}/shop/project.yaml", "a") as descriptor:
        descriptor.write(f"offsite:\n  target: {TARGET}\n")
        descriptor.write(f"  keep: {keep}\n" if keep else "")
    fake.write(f"{world.root}/opskit.yaml", f"state_dir: {fake.path('state')}\n")
    fake.write(fake.path("state/restic-password"), "correct horse battery staple\n", mode=0o600)
    repository = Repository()
    repository.install(world)
    return world, repository


def test_an_offsite_copy_uploads_each_component_then_reads_each_back(tmp_path):
    world, _repository = offsite_world(tmp_path)
    with world.ops() as ops:
        [archive] = ops.backup("shop", "prod", offsite=True)
    fake = world.fake
    uploads = fake.matching(UPLOAD)
    assert [c.argv[c.argv.index("--stdin-filename") + 1] for c in uploads] == [
        f"/shop/prod/{archive.name}/{key}" for key in COMPONENTS
    ]
    fake.order(
        ["mv", "-T", "--", re.compile(r"\.partial$"), archive.path],  # the local archive first
        ["restic", "version"],
        restic("unlock"),
        restic("snapshots", "--json", f"--tag=opskit,project=shop,env=prod,archive={archive.name}"),
        *[step for _ in COMPONENTS for step in (UPLOAD, restic("tag", "--add", "complete"))],
        restic("check", "--read-data-subset=5%"),
        *[restic("dump") for _ in COMPONENTS[:-1]],
    )
    for upload, record in zip(uploads, archive.components, strict=False):
        assert len(upload.stdin) == record.raw_bytes  # uncompressed, whole
    verified = json.loads(fake.read(f"{archive.path}/offsite.json"))
    assert (verified["ok"], verified["faults"]) == (True, [])
    # The password reaches restic as a file, never in argv or restic's environment.
    assert not [c for c in fake.calls if "correct horse" in " ".join(c.argv) + str(c.env)]
    assert world.recorder.results() == ["ok"]


def test_restic_missing_fails_the_job_and_keeps_the_local_archive(tmp_path):
    world, _repository = offsite_world(tmp_path)
    world.fake.on(["restic", "version"], returncode=127, stderr="sh: restic: not found\n")
    with world.ops() as ops, pytest.raises(OpskitError) as raised:
        ops.backup("shop", "prod", offsite=True)
    assert "restic is not installed on local (restic 0.14.0 or later" in str(raised.value)
    assert not world.fake.ran(restic())
    assert len(world.archive_names()) == 1  # the backup itself stands
    [finished] = world.recorder.of(JobFinished)
    assert (finished.result, finished.error) == ("failed", str(raised.value))


def test_restic_older_than_the_floor_is_refused(tmp_path):
    world, _repository = offsite_world(tmp_path)
    world.fake.on(["restic", "version"], stdout="restic 0.12.1 compiled with go1.16 on linux\n")
    with world.ops() as ops, pytest.raises(OpskitError, match=r"restic 0\.12\.1 .* older than"):
        ops.backup("shop", "prod", offsite=True)
    assert not world.fake.ran(UPLOAD)


@pytest.mark.parametrize(
    "stderr",
    [
        "Fatal: wrong password or no key found\n",
        "subprocess ssh: ssh: connect to host offsite.example.test port 22: No route to host\n"
        "Fatal: unable to open repository at sftp:backup@offsite.example.test:22/srv/restic: "
        "unable to start the sftp session, error: EOF\n",
    ],
    ids=["wrong password", "unreachable target"],
)
def test_a_repository_that_refuses_fails_naming_archive_and_target_and_sends_nothing(
    tmp_path, stderr
):
    world, _repository = offsite_world(tmp_path)
    world.fake.on(restic("snapshots"), returncode=1, stderr=stderr)
    with world.ops() as ops, pytest.raises(OpskitError) as raised:
        [_archive] = ops.backup("shop", "prod", offsite=True)
    [name] = world.archive_names()
    last_line = stderr.strip().splitlines()[-1]
    assert str(raised.value).startswith(f"archive {name} on {TARGET}: ")
    assert str(raised.value).endswith(f": {last_line}")
    assert not world.fake.ran(UPLOAD)
    assert not world.fake.ran(restic("forget"))
    assert world.recorder.results() == ["failed"]


def test_a_snapshot_of_another_env_in_the_answer_is_refused_and_nothing_is_forgotten(tmp_path):
    world, repository = offsite_world(tmp_path)
    foreign = {"id": "bbbb" * 16, "short_id": "bbbbbbbb", "time": "2026-12-03T00:00:01Z",
               "tags": ["opskit", "project=shop", "env=dev", "archive=shop-dev-20261202T010000Z",
                        "component=db-db-shop", "complete"]}  # fmt: skip

    def or_ing(call: Call) -> Reply:
        """A restic that ORs the tags: the selection's snapshots, a partial one of the
        archive (which an upload would forget) and one of shop dev."""
        [selection] = [a for a in call.argv if a.startswith("--tag=")]
        archive = selection.rpartition("archive=")[2]
        partial = {"id": "aaaa" * 16, "short_id": "aaaaaaaa", "time": "2026-12-03T00:00:00Z",
                   "tags": ["opskit", "project=shop", "env=prod", f"archive={archive}",
                            "component=db-db-shop"]}  # fmt: skip
        found = json.loads(repository.list_snapshots(call).stdout)
        return Reply(stdout=json.dumps([*found, partial, foreign]))

    world.fake.on(restic("snapshots"), answer=or_ing)
    with world.ops() as ops, pytest.raises(OpskitError) as raised:
        ops.backup("shop", "prod", offsite=True)
    message = str(raised.value)
    assert "restic returned snapshot bbbbbbbb (opskit, project=shop, env=dev," in message
    assert message.endswith("and it is not one of them: nothing was changed")
    assert not world.fake.ran(restic("forget"))  # not even the partial snapshot
    assert not world.fake.ran(UPLOAD)
    assert world.recorder.results() == ["failed"]


def test_an_upload_killed_part_way_marks_nothing_complete_and_verifies_nothing(tmp_path):
    world, repository = offsite_world(tmp_path)
    # restic is killed while it reads the uploads folder: no summary, exit by signal.
    world.fake.on([*UPLOAD, re.compile("component=path-prod-uploads")], times=1,
                  returncode=137, stderr="signal: killed\n")  # fmt: skip
    with world.ops() as ops, pytest.raises(OpskitError) as raised:
        ops.backup("shop", "prod", offsite=True)
    [name] = world.archive_names()
    assert str(raised.value) == f"archive {name} on {TARGET}: signal: killed"
    assert [s["tags"][-2:] for s in repository.snapshots] == [["component=db-db-shop", "complete"]]
    assert len(world.fake.matching(UPLOAD)) == 2  # nothing after the killed one
    assert not world.fake.ran(restic("check"))  # no copy to verify
    assert not world.fake.exists(f"{world.env_dir()}/{name}/offsite.json")
    assert world.recorder.results() == ["failed"]


def test_a_stream_restic_read_only_part_of_is_forgotten_not_marked_complete(tmp_path):
    world, _repository = offsite_world(tmp_path)
    short = {"message_type": "summary", "snapshot_id": "dddddddd", "total_bytes_processed": 5,
             "data_added": 5}  # fmt: skip
    world.fake.on([*UPLOAD, re.compile("component=path-prod-uploads")],
                  stdout=json.dumps(short) + "\n")  # fmt: skip
    with world.ops() as ops, pytest.raises(OpskitError) as raised:
        ops.backup("shop", "prod", offsite=True)
    [name] = world.archive_names()
    [archive] = [a for a in ops.backups("shop", "prod") if a.name == name]
    size = {r.key: r.raw_bytes for r in archive.components}["path-prod-uploads"]
    assert str(raised.value) == f"{name}: path-prod-uploads: restic read 5 of {size} bytes"
    world.fake.order(UPLOAD, UPLOAD, restic("forget", "dddddddd"))
    assert not world.fake.ran(restic("tag", "--add", "complete", "dddddddd"))
    assert not world.fake.ran(restic("check"))


def test_a_copy_that_does_not_read_back_the_same_fails_and_is_recorded(tmp_path):
    world, _repository = offsite_world(tmp_path)
    world.fake.on(restic("dump", re.compile("."), re.compile("/db-db-shop$")),
                  stdout=b"-- MariaDB dump, but not the one that was sent\n")  # fmt: skip
    with world.ops() as ops, pytest.raises(OpskitError) as raised:
        ops.backup("shop", "prod", offsite=True)
    [name] = world.archive_names()
    assert str(raised.value) == (
        f"archive {name} on {TARGET}: db-db-shop: the copy differs from the archive (sha256)"
    )
    recorded = json.loads(world.fake.read(f"{world.env_dir()}/{name}/offsite.json"))
    assert recorded["ok"] is False
    assert recorded["faults"] == ["db-db-shop: the copy differs from the archive (sha256)"]


def test_a_restore_from_offsite_refuses_a_snapshot_of_another_env_before_any_change(tmp_path):
    world, repository = offsite_world(tmp_path)
    with world.ops() as ops:
        [archive] = ops.backup("shop", "prod", offsite=True)
    for snapshot in repository.snapshots:
        snapshot["tags"] = [t.replace("env=prod", "env=dev") for t in snapshot["tags"]]
    world.fake.on(restic("snapshots"), stdout=json.dumps(repository.snapshots))
    world.fake.run(["rm", "-rf", "--", archive.path])  # not here: only offsite
    world.fake.calls.clear()
    with world.ops() as ops, pytest.raises(OpskitError, match="nothing was changed"):
        ops.restore("shop", "prod", archive.name, offsite=True)
    assert not world.fake.ran(restic("dump"))
    assert not world.fake.ran(["docker", "compose"])
    assert not world.fake.ran(["docker", "exec"])


def two_copies(tmp_path) -> tuple[World, Repository, str, str]:
    """Two archives of shop prod copied offsite, an hour apart, with offsite.keep 1."""
    world, repository = offsite_world(tmp_path, keep=1)
    with world.ops() as ops:
        [first] = ops.backup("shop", "prod", offsite=True)
    older = world.backdate(first.name)
    for snapshot in repository.snapshots:
        snapshot["tags"] = [t.replace(first.name, older) for t in snapshot["tags"]]
    with world.ops() as ops:
        [newest] = ops.backup("shop", "prod", offsite=True)
    world.fake.calls.clear()
    return world, repository, older, newest.name


def offsite_command(world: World, *args: str):  # type: ignore[no-untyped-def]
    """``opskit offsite ARGS`` in this process, on the fake host."""
    cli = create_cli(plugin_manager(world.recorder))
    state = cli.context_settings["obj"]
    state.root, state.host = world.root, world.fake
    return CliRunner().invoke(cli, ["offsite", *args])


def test_an_offsite_prune_forgets_the_archives_beyond_keep_then_prunes_once(tmp_path):
    world, repository, older, newest = two_copies(tmp_path)
    doomed = [s["id"] for s in repository.snapshots if f"archive={older}" in s["tags"]]
    result = offsite_command(world, "prune", "shop", "prod")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == f"forgot  {older}"
    [forget] = world.fake.matching(restic("forget"))
    assert sorted(forget.argv[forget.argv.index("forget") + 1 :]) == sorted(doomed)
    assert len(doomed) == 4  # three components and the manifest
    world.fake.order(restic("snapshots"), restic("forget"), restic("prune"))
    assert [t for s in repository.snapshots for t in s["tags"] if t.startswith("archive=")] == [
        f"archive={newest}"
    ] * 4


def test_an_offsite_prune_given_a_snapshot_of_another_env_forgets_nothing(tmp_path):
    world, repository, _older, _newest = two_copies(tmp_path)
    foreign = {"id": "eeee" * 16, "short_id": "eeeeeeee", "time": "2026-12-01T01:00:00Z",
               "tags": ["opskit", "project=shop", "env=dev", "archive=shop-dev-20261201T010000Z",
                        "component=manifest", "complete"]}  # fmt: skip
    world.fake.on(restic("snapshots"), stdout=json.dumps([*repository.snapshots, foreign]))
    result = offsite_command(world, "prune", "shop", "prod")
    assert isinstance(result.exception, OpskitError)
    assert "restic returned snapshot eeeeeeee (opskit, project=shop, env=dev," in str(
        result.exception
    )
    assert str(result.exception).endswith("nothing was changed")
    assert not world.fake.ran(restic("forget"))
    assert not world.fake.ran(restic("prune"))
    assert len(repository.snapshots) == 8
