"""A host's streamed processes, locally and over SSH: stdout as a stream, stderr kept
apart (its start and end only) until the process ends, and the exit code."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from conftest import SSH_KEY, SSH_URL
from opskit.host import ERRORS_HEAD, ERRORS_TAIL, Host, LocalHost, SSHHost

# Writes "out" on stdout, 100 kB of numbered lines on stderr, and exits 3.
SCRIPT = 'echo out; i=0; while [ $i -lt 20000 ]; do echo "err $i"; i=$((i+1)); done >&2; exit 3'


@pytest.fixture(params=["local", pytest.param("ssh", marks=[pytest.mark.ssh])])
def host(request: pytest.FixtureRequest) -> Iterator[Host]:
    with LocalHost() if request.param == "local" else SSHHost(SSH_URL, SSH_KEY) as opened:
        yield opened


def test_stderr_is_kept_apart_and_cut_to_its_start_and_end(host: Host) -> None:
    process = host.popen(["sh", "-c", SCRIPT], merge_stderr=False)
    assert process.stdout.read() == b"out\n"
    assert process.wait() == 3
    errors = process.errors()
    head, gap, tail = errors.partition("\n[...]\n")
    assert gap and head.startswith("err 0\nerr 1\n") and tail.endswith("err 19999\n")
    assert len(head) == ERRORS_HEAD and len(tail) == ERRORS_TAIL


def test_merged_stderr_joins_stdout(host: Host) -> None:
    process = host.popen(["sh", "-c", "echo out; echo err >&2; exit 4"])
    assert sorted(process.stdout.read().split()) == [b"err", b"out"]
    assert process.wait() == 4
    assert process.errors() == ""


def test_stdin_is_a_stream_and_kill_ends_the_process(host: Host) -> None:
    process = host.popen(["cat"], stdin=True)
    assert process.stdin is not None
    process.stdin.write(b"through\n")
    process.stdin.close()
    assert process.stdout.read() == b"through\n"
    assert process.wait() == 0
    sleeper = host.popen(["sleep", "60"])
    sleeper.kill()
    assert sleeper.stdout.read() == b""


def test_a_local_command_leaves_paramiko_out_and_a_remote_host_takes_it_back() -> None:
    """docker's SSH transport imports paramiko and invoke, a fifth of a local command's start."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from opskit.host import docker_sdk, docker_ssh_transport\n"
        "docker = docker_sdk()\n"
        "assert 'paramiko' not in sys.modules\n"
        "assert not hasattr(docker.transport, 'SSHHTTPAdapter')\n"
        "docker_ssh_transport()\n"
        "client = docker.APIClient(base_url='ssh://x', use_ssh_client=True, version='1.41')\n"
        "print(type(client._custom_adapter).__name__)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "SSHHTTPAdapter"
