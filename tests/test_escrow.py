"""A copy of each restic password kept off the server (issue #22, #23): the fingerprint,
the record and its staleness, doctor's warning, and the ``password`` command line."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from conftest import assert_one_error_line, opskit
from fakeroot import World, make_world
from opskit.errors import OpskitError
from opskit.escrow import fingerprint

PASSWORD = "correct horse battery staple"
TARGET = "s3://backups.example.test/opskit"


def root_of(tmp_path: Path, store: bool = True, offsite: bool = False) -> World:
    """shop on a fake host with the archive store (``backup.store: restic``) and/or an
    offsite target, the state folder in the sandbox."""
    world = make_world(tmp_path)
    path = f"{world.root}/shop/project.yaml"
    text = world.fake.read(path).decode()
    if store:
        text = text.replace(
            "  store: folder  # the fake host runs no restic\n", "  store: restic\n"
        )
    if offsite:
        text += f"offsite:\n  target: {TARGET}\n"
    world.fake.write(path, text)
    world.fake.write(f"{world.root}/opskit.yaml", f"state_dir: {world.fake.path('state')}\n")
    return world


def store_written(world: World) -> None:
    """What ``restic init`` leaves that doctor looks for: the store's repository config."""
    world.fake.write(f"{world.backups}/.restic/config", "")


def warnings(world: World) -> list[str]:
    with world.ops() as ops:
        return [f.message for f in ops.doctor().findings if f.kind == "password"]


def test_a_fingerprint_tells_a_changed_password_and_never_holds_it() -> None:
    first = fingerprint(PASSWORD + "\n")
    assert first == fingerprint(PASSWORD) == fingerprint(f"  {PASSWORD}\r\n")  # as restic reads
    assert first != fingerprint(PASSWORD + "!")
    assert first.startswith("sha256:") and len(first) == len("sha256:") + 16
    assert "horse" not in first


def test_doctor_warns_until_a_copy_of_the_store_password_is_recorded_and_again_once_it_changed(
    tmp_path: Path,
) -> None:
    world = root_of(tmp_path)
    fake = world.fake
    secret = fake.path("state/restic-store-password")
    assert warnings(world) == []  # no store written yet: nothing to keep
    fake.write(secret, PASSWORD + "\n", mode=0o600)
    assert warnings(world) == []  # a password alone (a store cut off while created)
    store_written(world)
    [warning] = warnings(world)
    assert warning.startswith(f"no copy of {secret} is recorded as kept off this server")
    assert f"the archive store {world.backups}/.restic" in warning
    assert "(used by shop)" in warning
    assert "'opskit password store --show'" in warning
    assert "'opskit password store --confirm-escrowed'" in warning
    with world.ops() as ops:
        [kept] = ops.password("store", confirm_escrowed=True).escrows
    assert (kept.state, kept.fingerprint) == ("current", fingerprint(PASSWORD))
    assert warnings(world) == []
    record = Path(secret + ".escrowed")
    assert PASSWORD not in record.read_text() and fingerprint(PASSWORD) in record.read_text()
    assert stat.S_IMODE(os.stat(record).st_mode) == 0o600
    # A new password file: the copy that was kept no longer opens the store.
    fake.write(secret, "a new password\n", mode=0o600)
    with world.ops() as ops:
        [changed] = ops.password("store").escrows
    assert (changed.state, changed.recorded_at) == ("stale", kept.recorded_at)
    [warning] = warnings(world)
    assert warning.startswith(f"{secret} changed after its copy was recorded as kept")
    assert "that copy no longer opens the archive store" in warning


def test_doctor_warns_about_the_offsite_password_only_for_a_root_with_an_offsite_target(
    tmp_path: Path,
) -> None:
    world = root_of(tmp_path, store=False)
    fake = world.fake
    fake.write(fake.path("state/restic-password"), PASSWORD, mode=0o600)
    fake.write(fake.path("state/restic-store-password"), PASSWORD, mode=0o600)
    assert warnings(world) == []  # neither the store nor an offsite target is in use
    world = root_of(tmp_path / "offsite", store=False, offsite=True)
    fake = world.fake
    fake.write(fake.path("state/restic-password"), PASSWORD, mode=0o600)
    [warning] = warnings(world)
    assert f"no copy of {fake.path('state/restic-password')} is recorded" in warning
    assert f"the offsite repositories {TARGET}" in warning
    assert "'opskit password offsite --confirm-escrowed'" in warning
    with world.ops() as ops:
        ops.password("offsite", confirm_escrowed=True)
    assert warnings(world) == []


def test_a_store_repository_without_its_password_file_is_a_problem(tmp_path: Path) -> None:
    world = root_of(tmp_path)
    world.fake.write(f"{world.backups}/.restic/config", b"\x00restic")
    with world.ops() as ops:
        report = ops.doctor()
    [finding] = [f for f in report.findings if f.kind == "password"]
    assert finding.severity == "problem" and not report.ok
    assert finding.message == (
        f"the archive store {world.backups}/.restic has no password file at "
        f"{world.fake.path('state/restic-store-password')}: none of its archives can be read"
    )


def test_nothing_to_confirm_or_show_without_a_password_file(tmp_path: Path) -> None:
    world = root_of(tmp_path)
    with world.ops() as ops, pytest.raises(OpskitError, match="no store password at"):
        ops.password("store", confirm_escrowed=True)
    assert not world.fake.exists(world.fake.path("state/restic-store-password.escrowed"))
    with world.ops() as ops, pytest.raises(OpskitError, match="--show or --confirm-escrowed"):
        ops.password("store", show=True, confirm_escrowed=True)


def test_the_watch_does_not_check_the_passwords(tmp_path: Path) -> None:
    """Doctor only: an unkept password is no failing check of the watch, so it does not
    alert on it every pass."""
    from datetime import UTC, datetime

    world = root_of(tmp_path)
    world.fake.write(world.fake.path("state/restic-store-password"), PASSWORD, mode=0o600)
    store_written(world)
    assert warnings(world)
    with world.ops() as ops:
        report = ops.watch(datetime(2026, 12, 3, 14, 0, tzinfo=UTC), coverage=True)
    assert report.checks  # the pass ran, coverage included
    assert not [c for c in report.checks if "password" in c.key + c.detail]


# -- the command line (a real opskit process on a local root, no Docker) ------------------


def local_root(tmp_path: Path) -> tuple[Path, Path]:
    """A root whose project keeps its archives in the store, and its store password."""
    root, state = tmp_path / "root", tmp_path / "state"
    (root / "shop").mkdir(parents=True)
    (root / "shop" / "project.yaml").write_text(
        "name: shop\nenvironments: [prod]\n"
        f"backup:\n  dir: {tmp_path / 'backups'}\n  store: restic\n  paths: [data]\n"
    )
    (root / "opskit.yaml").write_text(f"state_dir: {state}\n")
    state.mkdir(mode=0o700)
    secret = state / "restic-store-password"
    secret.write_text(PASSWORD + "\n")
    secret.chmod(0o600)
    return root, secret


def test_password_show_prints_it_only_on_a_terminal_or_with_yes(tmp_path: Path) -> None:
    root, secret = local_root(tmp_path)
    refused = opskit("password", "store", "--show", "--root", str(root))
    assert_one_error_line(refused, "only on a terminal", "--yes")
    assert PASSWORD not in refused.stdout + refused.stderr
    shown = opskit("password", "store", "--show", "--yes", "--root", str(root))
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == PASSWORD + "\n"  # the password alone: a pipe into a manager
    assert "password manager" in shown.stderr and str(secret) in shown.stderr
    assert "opskit password store --confirm-escrowed" in shown.stderr
    assert PASSWORD not in shown.stderr


def test_password_lists_each_password_and_its_kept_copy(tmp_path: Path) -> None:
    root, secret = local_root(tmp_path)
    before = opskit("password", "--json", "--root", str(root)).json()
    assert before == {  # type: ignore[comparison-overlap]
        "passwords": [
            {
                "kind": "store",
                "path": str(secret),
                "opens": f"the archive store {tmp_path / 'backups'}/.restic",
                "used_by": ["shop"],
                "escrow": "none",
                "recorded_at": None,
                "fingerprint": fingerprint(PASSWORD),
            },
            {
                "kind": "offsite",
                "path": str(secret.parent / "restic-password"),
                "opens": "the offsite repositories (offsite.target)",
                "used_by": [],
                "escrow": "no file",
                "recorded_at": None,
                "fingerprint": None,
            },
        ]
    }
    kept = opskit("password", "store", "--confirm-escrowed", "--root", str(root))
    assert kept.returncode == 0, kept.stderr
    assert kept.stdout.startswith(f"store: a kept copy of {secret} recorded (sha256:")
    listed = opskit("password", "--root", str(root))
    assert listed.returncode == 0, listed.stderr
    [store_line] = [line for line in listed.stdout.splitlines() if line.startswith("store")]
    assert "kept (recorded 20" in store_line and store_line.endswith("shop")
    record = Path(f"{secret}.escrowed")
    assert stat.S_IMODE(record.stat().st_mode) == 0o600
    unknown = opskit("password", "vault", "--root", str(root))
    assert_one_error_line(unknown, "'vault' is not one of 'store', 'offsite'")


def test_offsite_init_reminds_to_keep_the_password_until_a_copy_is_recorded(tmp_path: Path) -> None:
    from test_engines_offsite import offsite_command, offsite_world

    world, _repository = offsite_world(tmp_path)
    reminder = "Keep a copy of " + world.fake.path("state/restic-password")
    first = offsite_command(world, "init")
    assert first.exit_code == 0, first.output
    assert reminder in first.stderr and reminder not in first.stdout
    with world.ops() as ops:
        ops.password("offsite", confirm_escrowed=True)
    again = offsite_command(world, "init")
    assert again.exit_code == 0 and reminder not in again.stderr


def test_password_show_on_a_terminal_needs_no_yes(tmp_path: Path) -> None:
    from test_cli import run_on_terminal

    root, _secret = local_root(tmp_path)
    code, output = run_on_terminal(["password", "store", "--show", "--root", str(root)], None)
    assert code == 0, output
    assert output.splitlines()[0] == PASSWORD and "password manager" in output


def test_a_password_or_record_that_cannot_be_read_is_a_warning_not_a_silence(
    tmp_path: Path,
) -> None:
    world = root_of(tmp_path)
    secret = world.fake.path("state/restic-store-password")
    os.makedirs(secret)  # not a file: it cannot be read
    store_written(world)
    [warning] = warnings(world)
    assert warning.startswith(f"cannot tell whether a copy of {secret} is kept: cannot read")
    os.rmdir(secret)
    world.fake.write(secret, PASSWORD, mode=0o600)
    world.fake.write(secret + ".escrowed", "{half a record", mode=0o600)
    [warning] = warnings(world)
    assert warning.startswith(f"cannot tell whether a copy of {secret} is kept: {secret}.escrowed")
    with world.ops() as ops:
        ops.password("store", confirm_escrowed=True)  # a new record replaces it whole
    assert warnings(world) == []
    assert not world.fake.exists(secret + ".escrowed.new")
