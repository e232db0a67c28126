"""A warm ``opskit`` for the tests' command lines.

Each test runs the real command line in a process of its own, many hundred times a run, and
each of those processes spent most of its CPU importing opskit, click, attrs, yaml and the
docker SDK: on two cores shared by three runners that was the largest cost of the suite. One
server per pytest process imports them once and forks a child for each command, as pytest's
``runpytest_inprocess`` and tox's provisioning avoid a fresh interpreter per run. The child is
a real process: its own pid, its stdin, stdout and stderr (pipes the test owns), its
environment, working folder and exit code; its parent waits for it and reports the code.

``OPSKIT_TEST_FORK=0`` runs ``python -m opskit`` every time instead; a command whose
environment sets ``PYTHON*`` variables (they act when an interpreter starts) always does.
Commands a test interrupts with signals run as ``python -m opskit`` too (their own Popen).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import traceback
from collections.abc import Mapping, Sequence

# What a command imports anyway: loaded once in the server.
WARM = (
    "opskit.cli",
    "opskit.api",
    "opskit.runtime",
    "opskit.backups",
    "opskit.components",
    "opskit.operations",
    "opskit.defaults.commands",
    "opskit.plugins",
    "yaml",
)


def serve(path: str) -> None:
    """Listen on the Unix socket *path*; fork a child per request. Ends with its parent."""
    import importlib

    from opskit.plugins import entry_points

    for name in WARM:
        importlib.import_module(name)
    for entry_point in entry_points():  # the installed plugins (importing them runs nothing)
        importlib.import_module(entry_point.value.split(":")[0])
    from opskit.host import docker_sdk

    docker_sdk()
    parent = os.getppid()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    listener.settimeout(5)
    # Reaped, not ignored: a reaped child's CPU counts in this process's children's time,
    # and so, once pytest has reaped this server, in the run's.
    signal.signal(signal.SIGCHLD, lambda _number, _frame: _reap())
    sys.stdout.flush()
    sys.stderr.flush()
    while os.getppid() == parent:
        try:
            connection, _ = listener.accept()
        except TimeoutError:
            continue
        if os.fork() == 0:
            listener.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            _handle(connection)
        connection.close()


def _reap() -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def _handle(connection: socket.socket) -> None:
    """In a child of the server: run one command in a grandchild, report its pid and code."""
    code = 1
    try:
        message, fds, _flags, _address = socket.recv_fds(connection, 1 << 20, 3)
        request = json.loads(message)
        pid = os.fork()
        if pid == 0:
            connection.close()
            _command(request, fds)
        for fd in fds:
            os.close(fd)
        connection.sendall(json.dumps({"pid": pid}).encode() + b"\n")
        _, status, usage = os.wait4(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        cpu = usage.ru_utime + usage.ru_stime  # the command's and the children it waited for
        connection.sendall(json.dumps({"code": code, "cpu": cpu}).encode() + b"\n")
    finally:
        os._exit(0)


def _command(request: dict[str, object], fds: Sequence[int]) -> None:
    """In the grandchild: become the command (its streams, environment and folder) and run."""
    import time

    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.environ.clear()
    os.environ.update(request["env"])  # type: ignore[arg-type]
    time.tzset()
    os.chdir(str(request["cwd"]))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    argv = [str(arg) for arg in request["argv"]]  # type: ignore[attr-defined]
    sys.argv = [os.path.join(os.path.dirname(__file__), "opskit"), *argv]
    code = 1
    try:
        from opskit.cli import run

        code = run(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):  # a reader gone: nothing left to tell
                stream.flush()
        os._exit(code)


class Server:
    """The client side: one server per pytest process, started on first use."""

    def __init__(self) -> None:
        self.folder = tempfile.mkdtemp(prefix="opskit-fork-")
        self.path = os.path.join(self.folder, "socket")
        self.process = subprocess.Popen(
            [sys.executable, __file__, self.path],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def connect(self) -> socket.socket:
        import time

        deadline = time.monotonic() + 60
        while True:
            connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                connection.connect(self.path)
                return connection
            except (FileNotFoundError, ConnectionRefusedError):
                connection.close()
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the tests' opskit fork server did not start") from None
                time.sleep(0.05)

    def run(
        self, argv: Sequence[str], env: Mapping[str, str], input: str, timeout: float
    ) -> tuple[int, str, str]:
        """Run ``opskit *argv*``; its exit code, stdout and stderr. Raises
        :class:`subprocess.TimeoutExpired` after *timeout* seconds (the command killed)."""
        connection = self.connect()
        stdin_read, stdin_write = os.pipe()
        stdout_read, stdout_write = os.pipe()
        stderr_read, stderr_write = os.pipe()
        request = {"argv": list(argv), "env": dict(env), "cwd": os.getcwd()}
        try:
            socket.send_fds(
                connection, [json.dumps(request).encode()], [stdin_read, stdout_write, stderr_write]
            )
        finally:
            for fd in (stdin_read, stdout_write, stderr_write):
                os.close(fd)
        replies = connection.makefile("rb")
        pid = json.loads(replies.readline())["pid"]
        out: list[bytes] = []
        err: list[bytes] = []

        def feed() -> None:
            data = memoryview(input.encode())
            try:
                while data:
                    data = data[os.write(stdin_write, data) :]
            except BrokenPipeError:
                pass  # the command did not read it all, as subprocess.run allows
            finally:
                os.close(stdin_write)

        def drain(fd: int, into: list[bytes]) -> None:
            with open(fd, "rb") as handle:
                into.append(handle.read())

        threads = [
            threading.Thread(target=feed, daemon=True),
            threading.Thread(target=drain, args=(stdout_read, out), daemon=True),
            threading.Thread(target=drain, args=(stderr_read, err), daemon=True),
        ]
        for thread in threads:
            thread.start()
        connection.settimeout(timeout)
        try:
            line = replies.readline()
        except TimeoutError:
            os.kill(pid, signal.SIGKILL)
            raise subprocess.TimeoutExpired(["opskit", *argv], timeout) from None
        finally:
            connection.close()
        for thread in threads:
            thread.join(timeout)
        reply = json.loads(line)
        global spent_cpu
        spent_cpu += reply["cpu"]
        return reply["code"], b"".join(out).decode(), b"".join(err).decode()

    def close(self) -> None:
        self.process.kill()
        self.process.wait()
        import shutil

        shutil.rmtree(self.folder, ignore_errors=True)


# The CPU seconds of every command this process has run through its server so far.
spent_cpu = 0.0
_server: Server | None = None
_lock = threading.Lock()


def server() -> Server:
    global _server
    with _lock:
        if _server is None or _server.process.poll() is not None:
            _server = Server()
            import atexit

            atexit.register(_server.close)
        return _server


def wanted(env: Mapping[str, str]) -> bool:
    """Whether a command with the environment *env* may run forked."""
    if os.environ.get("OPSKIT_TEST_FORK", "1") == "0":
        return False
    return not any(key.startswith("PYTHON") and env.get(key) != os.environ.get(key) for key in env)


if __name__ == "__main__":
    serve(sys.argv[1])
