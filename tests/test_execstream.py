"""A command's output out of a container (opskit.execstream): through a FIFO on the local
engine, docker exec's own stream where the container cannot make one; the same bytes, exit
status and stderr either way, and nothing left running or lying in the container."""

from __future__ import annotations

import contextlib
import hashlib
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest

from opskit.execstream import _FifoProcess, exec_input, exec_output
from opskit.host import LocalHost
from testroot import ns

pytestmark = pytest.mark.docker

WITH_FIFO = ns("execstream-db")  # the database image: coreutils, mkfifo
WITHOUT_FIFO = ns("execstream-ro")  # a read-only root: no FIFO can be made in /tmp


@pytest.fixture(scope="module")
def containers() -> Iterator[None]:
    names = (WITH_FIFO, WITHOUT_FIFO)
    subprocess.run(["docker", "rm", "-f", *names], capture_output=True)
    for name, flags in ((WITH_FIFO, []), (WITHOUT_FIFO, ["--read-only"])):
        subprocess.run(
            [
                *("docker", "run", "--detach", "--init", "--network", "none", "--name", name),
                *flags,
                *("--entrypoint", "sleep", "opskit-test/db:1", "86400"),
            ],
            check=True,
            capture_output=True,
        )
    yield
    subprocess.run(["docker", "rm", "-f", *names], capture_output=True)


def in_container(name: str, script: str) -> str:
    return subprocess.run(
        ["docker", "exec", name, "sh", "-c", script], capture_output=True, text=True, check=True
    ).stdout


def digest_of(stream: object) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    while chunk := stream.read(1 << 20):  # type: ignore[attr-defined]
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


# 20 MB of numbered lines, the same on every run.
LINES = "seq 1 3000000"


def test_a_large_output_through_the_fifo_equals_docker_execs_stream(containers: None) -> None:
    host = LocalHost()
    process = exec_output(host, WITH_FIFO, ["sh", "-c", LINES])
    assert isinstance(process, _FifoProcess)
    through_fifo = digest_of(process.stdout)
    assert process.wait() == 0
    plain = subprocess.run(
        ["docker", "exec", WITH_FIFO, "sh", "-c", LINES], capture_output=True, check=True
    ).stdout
    assert through_fifo == (hashlib.sha256(plain).hexdigest(), len(plain))
    assert len(plain) > 20_000_000
    assert in_container(WITH_FIFO, "ls /tmp") == ""  # the FIFO's folder is gone


def test_exit_status_and_stderr_come_through_the_fifo(containers: None) -> None:
    process = exec_output(
        LocalHost(), WITH_FIFO, ["sh", "-c", "echo partial; echo 'it broke' >&2; exit 3"]
    )
    assert isinstance(process, _FifoProcess)
    assert process.stdout.read() == b"partial\n"
    assert process.wait() == 3
    assert "it broke" in process.errors()


def test_a_command_that_is_not_there_ends_at_once(containers: None) -> None:
    started = time.monotonic()
    process = exec_output(LocalHost(), WITH_FIFO, ["no-such-command"])
    assert process.stdout.read() == b""
    assert process.wait() == 127
    assert "no-such-command" in process.errors()
    assert time.monotonic() - started < 10
    assert in_container(WITH_FIFO, "ls /tmp") == ""


def test_a_command_silent_at_first_is_waited_for(containers: None) -> None:
    process = exec_output(LocalHost(), WITH_FIFO, ["sh", "-c", "sleep 1; echo late"])
    assert isinstance(process, _FifoProcess)
    assert process.stdout.read() == b"late\n"
    assert process.wait() == 0


def test_a_read_stopped_early_ends_the_command_in_the_container(containers: None) -> None:
    process = exec_output(LocalHost(), WITH_FIFO, ["sh", "-c", "exec yes opskit-writes"])
    assert isinstance(process, _FifoProcess)
    assert process.stdout.read(65536).startswith(b"opskit-writes\n")
    process.kill()
    process.wait()
    deadline = time.monotonic() + 10
    while "yes" in in_container(WITH_FIFO, "ls -l /proc/[0-9]*/exe 2>/dev/null || true"):
        assert time.monotonic() < deadline, "yes still runs in the container"
        time.sleep(0.2)
    assert in_container(WITH_FIFO, "ls /tmp") == ""


def test_a_container_that_cannot_make_a_fifo_gets_docker_execs_stream(containers: None) -> None:
    process = exec_output(LocalHost(), WITHOUT_FIFO, ["head", "-c", "100000", "/dev/zero"])
    assert not isinstance(process, _FifoProcess)
    assert process.stdout.read() == b"\0" * 100000
    assert process.wait() == 0


def test_two_streams_of_one_container_at_once_keep_apart(containers: None) -> None:
    host = LocalHost()
    results: dict[str, tuple[str, int]] = {}

    def read(word: str) -> None:
        process = exec_output(host, WITH_FIFO, ["sh", "-c", f"yes {word} | head -n 500000"])
        results[word] = digest_of(process.stdout)
        assert process.wait() == 0

    threads = [threading.Thread(target=read, args=(w,)) for w in ("left", "right")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for word in ("left", "right"):
        expected = f"{word}\n".encode() * 500000
        assert results[word] == (hashlib.sha256(expected).hexdigest(), len(expected))


def test_input_through_the_fifo_reaches_the_command_whole(containers: None) -> None:
    process = exec_input(LocalHost(), WITH_FIFO, ["sh", "-c", "sha256sum; echo loaded >&2"])
    assert isinstance(process, _FifoProcess)
    assert process.stdin is not None
    data = b"".join(b"row %d\n" % n for n in range(2_000_000))
    for start in range(0, len(data), 1 << 20):
        process.stdin.write(data[start : start + (1 << 20)])
    process.stdin.close()
    assert process.stdout.read().split()[0].decode() == hashlib.sha256(data).hexdigest()
    assert process.wait() == 0
    assert "loaded" in process.errors()
    assert in_container(WITH_FIFO, "ls /tmp") == ""


def test_input_to_a_command_that_is_not_there_ends_at_once(containers: None) -> None:
    process = exec_input(LocalHost(), WITH_FIFO, ["no-such-command"])
    assert process.stdin is not None
    with contextlib.suppress(BrokenPipeError):  # as a pipe to a process that ended
        process.stdin.write(b"x" * (1 << 20))
        process.stdin.close()
    assert process.wait() == 127
    assert in_container(WITH_FIFO, "ls /tmp") == ""


def test_input_is_not_ended_by_kill(containers: None) -> None:
    """A load stopped half way must not see the end of its input (it would commit what it
    has): kill() stops docker exec alone; the command in the container still waits."""
    in_container(WITH_FIFO, "rm -f /tmp/ended")
    script = "cat > /dev/null && touch /tmp/ended"
    process = exec_input(LocalHost(), WITH_FIFO, ["sh", "-c", script])
    assert process.stdin is not None
    process.stdin.write(b"half a dump\n")
    process.stdin.flush()
    process.kill()
    process.wait()
    time.sleep(1)
    assert "ended" not in in_container(WITH_FIFO, "ls /tmp")
    in_container(WITH_FIFO, "pkill -KILL cat || kill -KILL $(pidof cat)")
    process.stdin.close()
    time.sleep(0.5)
    assert "ended" not in in_container(WITH_FIFO, "ls /tmp")


def test_input_where_no_fifo_can_be_made_goes_through_docker_exec(containers: None) -> None:
    process = exec_input(LocalHost(), WITHOUT_FIFO, ["wc", "-c"])
    assert not isinstance(process, _FifoProcess)
    assert process.stdin is not None
    process.stdin.write(b"y" * 300000)
    process.stdin.close()
    assert process.stdout.read().strip() == b"300000"
    assert process.wait() == 0
