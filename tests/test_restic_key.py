"""The store's cheaper restic key (src/opskit/restic_key.py), against real restic: the key
opskit writes is one restic opens, keeps the master key (the data stays readable), and is
kept only when restic opened the repository with it alone."""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from opskit import restic_key
from opskit.host import LocalHost

pytestmark = pytest.mark.skipif(shutil.which("restic") is None, reason="needs restic")


def restic(repo: Path, password: Path, *args: str, stdin: bytes | None = None) -> str:
    return subprocess.run(
        ["restic", "--repo", str(repo), "--password-file", str(password), "-q", *args],
        input=stdin,
        capture_output=True,
        check=True,
    ).stdout.decode()


def opens(repo: Path, password: Path) -> bool:
    result = subprocess.run(
        ["restic", "--repo", str(repo), "--password-file", str(password), "cat", "config"],
        capture_output=True,
    )
    return result.returncode == 0


def new_repository(tmp_path: Path) -> tuple[Path, Path]:
    repo, password = tmp_path / "repo", tmp_path / "password"
    password.write_text(secrets.token_urlsafe(32) + "\n")
    restic(repo, password, "init")
    restic(repo, password, "backup", "--stdin", "--stdin-filename", "data", stdin=b"rows\n" * 1000)
    return repo, password


def key_documents(repo: Path) -> list[dict[str, object]]:
    return [json.loads(path.read_text()) for path in sorted((repo / "keys").iterdir())]


def test_the_rewrapped_key_opens_the_same_repository_and_costs_less(tmp_path: Path) -> None:
    repo, password = new_repository(tmp_path)
    [before] = key_documents(repo)
    assert not restic_key.is_fast(before)  # restic's calibrated key

    started = time.monotonic()
    assert opens(repo, password)
    slow = time.monotonic() - started

    assert restic_key.rewrap(LocalHost(), str(repo), str(password), lambda: opens(repo, password))

    [after] = key_documents(repo)
    assert restic_key.is_fast(after)
    assert after["created"] == before["created"] and after["salt"] != before["salt"]
    [key_file] = (repo / "keys").iterdir()
    assert key_file.stat().st_mode & 0o777 == 0o400
    assert restic(repo, password, "dump", "latest", "data") == "rows\n" * 1000
    subprocess.run(
        ["restic", "--repo", str(repo), "--password-file", str(password), "check"],
        check=True,
        capture_output=True,
    )
    started = time.monotonic()
    assert opens(repo, password)
    # Not a timing assertion on the product: only a record that the key is the cheap one.
    print(f"cat config: {slow:.2f} s with restic's key, {time.monotonic() - started:.2f} s now")
    # A second call finds the fast key and changes nothing.
    assert restic_key.rewrap(LocalHost(), str(repo), str(password), lambda: False)
    assert key_documents(repo) == [after]


def test_a_wrong_password_changes_nothing(tmp_path: Path) -> None:
    repo, password = new_repository(tmp_path)
    before = sorted(path.name for path in (repo / "keys").iterdir())
    wrong = tmp_path / "wrong"
    wrong.write_text("not the password\n")
    with pytest.raises(restic_key.KeyFileError, match="does not open"):
        restic_key.rewrap(LocalHost(), str(repo), str(wrong), lambda: True)
    assert sorted(path.name for path in (repo / "keys").iterdir()) == before
    assert opens(repo, password)


def test_a_key_restic_cannot_open_is_removed_and_the_old_one_put_back(tmp_path: Path) -> None:
    repo, password = new_repository(tmp_path)
    before = key_documents(repo)
    seen: list[list[str]] = []

    def refuses() -> bool:
        seen.append(sorted(path.name for path in (repo / "keys").iterdir()))
        return False

    assert not restic_key.rewrap(LocalHost(), str(repo), str(password), refuses)
    [names] = seen  # while restic was asked: the new key, and the old one set aside
    assert len(names) == 2 and any(name.endswith(".replaced") for name in names)
    assert key_documents(repo) == before
    assert opens(repo, password)


def test_a_repository_with_several_keys_is_left_to_its_user(tmp_path: Path) -> None:
    repo, password = new_repository(tmp_path)
    other = tmp_path / "other"
    other.write_text("a second password\n")
    subprocess.run(
        [
            "restic",
            "--repo",
            str(repo),
            "--password-file",
            str(password),
            "key",
            "add",
            "--new-password-file",
            str(other),
        ],
        check=True,
        capture_output=True,
    )
    before = key_documents(repo)
    assert not restic_key.rewrap(LocalHost(), str(repo), str(password), lambda: True)
    assert key_documents(repo) == before
