"""Offsite targets (#12), without a repository: descriptor and opskit.yaml fields, the
built-in schemes and their credentials, and the server-wide default."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from opskit.descriptor import DescriptorError, DescriptorSource, parse_descriptor
from opskit.offsite import builtin_repository
from opskit.settings import Settings, parse_settings

OPSKIT = str(Path(sys.executable).parent / "opskit")
PROJECT = "name: site\nenvironments: [dev]\n{offsite}"


def project(offsite: str = "") -> object:
    return parse_descriptor(
        DescriptorSource("/r/site/project.yaml", PROJECT.format(offsite=offsite))
    )


def test_a_target_of_another_scheme_is_left_to_plugins_but_a_path_is_refused() -> None:
    found = project('offsite: {target: "rclone://remote/copies", keep: 3}\n')
    assert found.offsite.target == "rclone://remote/copies"  # type: ignore[attr-defined]
    with pytest.raises(DescriptorError, match=r"project.yaml:3: offsite.target: expected a URL"):
        project('offsite: {target: "/mnt/copies"}\n')


def test_opskit_yaml_names_a_default_target_and_s3_credentials() -> None:
    settings = parse_settings(
        "/r/opskit.yaml",
        "offsite:\n  target: s3://s3.example.net/bucket/opskit\n  keep: 5\n"
        "  s3: {access_key_id: AKID, secret_access_key: SECRET, region: eu-central-1}\n",
    )
    assert settings.offsite.target == "s3://s3.example.net/bucket/opskit"
    assert dict(settings.offsite.s3) == {
        "AWS_ACCESS_KEY_ID": "AKID",
        "AWS_SECRET_ACCESS_KEY": "SECRET",
        "AWS_DEFAULT_REGION": "eu-central-1",
    }
    assert "SECRET" not in repr(settings)  # never in a log line or a traceback
    with pytest.raises(DescriptorError, match=r"opskit.yaml:2: offsite.s3.password: unknown key"):
        parse_settings("/r/opskit.yaml", "offsite:\n  s3: {password: x}\n")


def test_the_project_target_comes_first_then_the_server_wide_one() -> None:
    server = parse_settings("/r/opskit.yaml", "offsite: {target: 'file:///mnt/b', keep: 2}\n")
    own = project('offsite: {target: "sftp://box//copies"}\n')
    assert server.offsite_for(own).target == "sftp://box//copies"  # type: ignore[arg-type, union-attr]
    default = server.offsite_for(project())  # type: ignore[arg-type]
    assert default is not None and (default.target, default.keep) == ("file:///mnt/b", 2)
    assert Settings().offsite_for(project()) is None  # type: ignore[arg-type]


def test_built_in_schemes_and_where_s3_credentials_come_from(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    settings = parse_settings(
        "/r/opskit.yaml", "offsite:\n  s3: {access_key_id: FILE, secret_access_key: S}\n"
    )
    plain = Settings()
    assert builtin_repository("file:///mnt/b/r", plain).url == "/mnt/b/r"  # type: ignore[union-attr]
    sftp = "sftp://u@box:23//srv/r"
    assert builtin_repository(sftp, plain).url == sftp  # type: ignore[union-attr]
    s3 = builtin_repository("s3://s3.example.net/bucket/p", settings)
    assert s3 is not None and s3.url == "s3:https://s3.example.net/bucket/p"
    assert s3.env["AWS_ACCESS_KEY_ID"] == "FILE"
    local = builtin_repository("s3+http://127.0.0.1:9000/bucket", settings)
    assert local is not None and local.url == "s3:http://127.0.0.1:9000/bucket"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "ENVSECRET")
    from_env = builtin_repository("s3://s3.example.net/bucket/p", settings)
    assert from_env is not None and from_env.env["AWS_ACCESS_KEY_ID"] == "ENV"  # as aws does
    assert "ENVSECRET" not in repr(from_env)
    assert builtin_repository("rclone://remote/x", plain) is None


def test_the_server_wide_target_puts_offsite_into_the_backup_timer(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "site").mkdir(parents=True)
    (root / "site" / "project.yaml").write_text(
        f'name: site\nenvironments: [dev]\nbackup: {{dir: {tmp_path}, schedule: "03:00", '
        'paths: ["data"]}\n'
    )
    (root / "opskit.yaml").write_text("offsite: {target: 'file:///mnt/copies'}\n")
    done = subprocess.run(
        [OPSKIT, "--root", str(root), "timers", "--dry-run"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "backup site --scheduled --offsite" in done.stdout
