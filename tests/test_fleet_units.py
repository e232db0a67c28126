"""The fleet's inventory (#25): what a typo in ``hosts:`` gets, before any connection."""

from __future__ import annotations

from pathlib import Path

from conftest import opskit


def test_inventory_errors_are_one_line_before_any_connection(tmp_path: Path) -> None:
    cases = {
        'hosts:\n  a: {url: "ssh://root@server:port"}\n': "hosts.a.url",
        'hosts:\n  a: {url: "http://server"}\n': "hosts.a.url",
        "hosts:\n  a: {url: local}\n  a: {url: local}\n": "duplicate key",
        "hosts:\n  a: {url: local, tagz: [x]}\n": "unknown key",
        "hosts:\n  timeout: -1\n": "hosts.timeout",
    }
    for text, said in cases.items():
        (tmp_path / "opskit.yaml").write_text(text)
        run = opskit("--root", str(tmp_path), "status", "--hosts", "all")
        assert run.returncode != 0
        assert run.stderr.count("\n") == 1 and run.stderr.startswith("[error] "), run.stderr
        assert said in run.stderr and "opskit.yaml" in run.stderr, run.stderr
    (tmp_path / "opskit.yaml").write_text(
        'hosts:\n  a: {url: "ssh://root@127.0.0.1:1", tags: [eu]}\n'
    )
    run = opskit("--root", str(tmp_path), "status", "--hosts", "tag:us")
    assert run.stderr == "[error] --hosts: no host has the tag 'us' (tags: eu)\n"
    run = opskit("--root", str(tmp_path), "sync", "x", "--from", "a", "--to", "b", "--hosts", "all")
    assert run.stderr == "[error] --hosts: 'sync' runs on one host at a time (use --host)\n"
