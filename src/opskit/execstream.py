"""A command's stdout out of a container, or its stdin into it, as a stream, on the
shortest way the host allows.

``docker exec``'s own stream passes every byte through containerd's shim and dockerd, and
then the docker client: with two cores, the peer bench's 380 MB dump took 7.2 s that way and
4.6 s through a FIFO. So on the local engine the command writes into a FIFO in the
container's ``/tmp``, and opskit reads it through ``/proc/PID/root`` (root, or the engine's
own user, may); a load reads its stdin from one the same way. Where that cannot work (an SSH
host, an engine in a VM, a read-only ``/tmp``, no ``mkfifo`` in the image) the stream is
docker exec's, as before.
"""

from __future__ import annotations

import contextlib
import os
import select
import stat
import time
from collections.abc import Sequence
from typing import IO

from opskit.errors import HostError, OpskitError
from opskit.host import Host, LocalHost, LocalProcess, Process

# In the container: a private folder with the FIFO "fifo"; prints the folder.
_MAKE = 'd=$(mktemp -d /tmp/opskit-fifo.XXXXXX) && mkfifo -m 600 "$d/fifo" && printf %s "$d"'
# In the container: stdout into the FIFO, or stdin from it (the open waits for opskit's
# end), the folder gone (the open FIFO stays), then the command itself. Exit 125: the FIFO
# did not open.
_WRITE = 'd=$1; shift; exec >"$d/fifo" || exit 125; rm -rf -- "$d"; exec "$@"'
_READ = 'd=$1; shift; exec <"$d/fifo" || exit 125; rm -rf -- "$d"; exec "$@"'
# How long a command in the container may take to open its input FIFO (it does at once).
OPEN_TIMEOUT = 30.0


def exec_output(host: Host, container: str, argv: Sequence[str]) -> Process:
    """Run *argv* in *container*; its stdout is the returned process's ``stdout``, its
    stderr kept for ``errors()``, its exit status ``wait()``'s. ``kill()`` ends the read,
    and the command in the container with it (its next write fails)."""
    return _exec(host, container, argv, into=False)


def exec_input(host: Host, container: str, argv: Sequence[str]) -> Process:
    """Run *argv* in *container* with the returned process's ``stdin`` as its stdin (close
    it to end the input); its stdout and stderr as :func:`exec_output`'s. ``kill()`` does
    not end the input: a command in the container that must not take a cut-off stream for
    a complete one is stopped there first."""
    return _exec(host, container, argv, into=True)


def _exec(host: Host, container: str, argv: Sequence[str], *, into: bool) -> Process:
    if isinstance(host, LocalHost):
        fast = _through_fifo(host, container, argv, into=into)
        if fast is not None:
            return fast
    flags = ["-i"] if into else []
    return host.popen(["docker", "exec", *flags, container, *argv], stdin=into, merge_stderr=False)


def _through_fifo(
    host: LocalHost, container: str, argv: Sequence[str], *, into: bool
) -> Process | None:
    from opskit.host import docker_sdk

    try:  # the API client the host has open: no process of its own
        pid = int(host.docker().inspect_container(container)["State"]["Pid"])
    except (docker_sdk().errors.DockerException, OpskitError, OSError, LookupError, ValueError):
        return None  # docker exec's stream says what is wrong
    if pid <= 0:
        return None
    made = host.run(["docker", "exec", container, "sh", "-c", _MAKE], check=False)
    folder = made.text.strip()
    if made.returncode != 0 or not folder.startswith("/tmp/opskit-fifo."):
        return None
    path = f"/proc/{pid}/root{folder}/fifo"
    fd = None if into else _open_fifo(path, os.O_RDONLY)
    if (fd is None) if not into else not _is_fifo(path):
        host.run(["docker", "exec", container, "rm", "-rf", "--", folder], check=False)
        return None
    script = _READ if into else _WRITE
    try:
        process = host.popen(
            ["docker", "exec", container, "sh", "-c", script, "opskit", folder, *argv],
            merge_stderr=False,
        )
    except BaseException:
        if fd is not None:
            os.close(fd)
        raise
    assert isinstance(process, LocalProcess)
    if into:
        writer = _open_writer(path, process)
        return _FifoProcess(process, process.stdout, writer)
    assert fd is not None
    _wait_for_writer(fd, process)
    return _FifoProcess(process, open(fd, "rb", buffering=1 << 20), None)


def _is_fifo(path: str) -> bool:
    try:
        return stat.S_ISFIFO(os.lstat(path).st_mode)
    except OSError:
        return False


def _open_writer(path: str, process: LocalProcess) -> IO[bytes]:
    """The FIFO's write end, once the command has opened it to read; when the command
    ended first, a sink (its exit status says why)."""
    deadline = time.monotonic() + OPEN_TIMEOUT
    while True:
        fd = _open_fifo(path, os.O_WRONLY)
        if fd is not None:
            os.set_blocking(fd, True)
            return open(fd, "wb")
        if process.process.poll() is not None:
            return open(os.devnull, "wb")
        if time.monotonic() > deadline:
            process.kill()
            raise HostError(f"{path}: the command in the container never opened its input")
        time.sleep(0.01)


def _open_fifo(path: str, mode: int) -> int | None:
    """The FIFO at *path* opened with *mode*, or None when it is not a FIFO this process
    can open (for writing: also while nobody reads it yet). Not blocking; no link followed
    at the end (the folder is the container's)."""
    try:
        fd = os.open(path, mode | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    if not stat.S_ISFIFO(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return fd


def _wait_for_writer(fd: int, process: LocalProcess) -> None:
    """Wait until the command has opened the FIFO, or has ended without (a read then ends
    at once, and its exit status says why); then make reads block.

    Until a writer has opened it, a FIFO's read returns end-of-file; poll reports it ready
    only once a writer has written, or opened and closed it again (Linux)."""
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLHUP)
    while not poller.poll(100):
        if process.process.poll() is not None:
            break
    os.set_blocking(fd, True)


class _FifoProcess:
    """The ``docker exec`` of a command whose stdout or stdin is the FIFO."""

    def __init__(self, process: LocalProcess, stdout: IO[bytes], stdin: IO[bytes] | None) -> None:
        self.process = process
        self.stdout = stdout
        self.stdin = stdin

    def wait(self) -> int:
        code = self.process.wait()
        if self.stdout is not self.process.stdout:
            with contextlib.suppress(OSError):
                self.stdout.close()
        return code

    def kill(self) -> None:
        if self.stdout is not self.process.stdout:
            with contextlib.suppress(OSError):
                self.stdout.close()  # the command's next write fails: it ends
        self.process.kill()

    def errors(self) -> str:
        return self.process.errors()
