"""Where commands run: the local machine, or a server reached over SSH.

Every Docker, compose and file operation goes through a :class:`Host`, so each
command behaves the same locally and with ``--host ssh://user@server[:port]``.
Heavy modules (docker, fabric, paramiko) are imported only when first needed.
"""

from __future__ import annotations

import contextlib
import io
import os
import shlex
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import IO, Any, Protocol
from urllib.parse import urlsplit

import attrs

from opskit.errors import CommandFailed, DockerUnavailable, HostError, OpskitError
from opskit.settings import ssh_url

# docker.APIClient; the docker SDK ships no type information.
DockerClient = Any

LOCAL = "local"
# Docker Engine 20.10 speaks API 1.41; every later engine still accepts it.
REMOTE_DOCKER_API_VERSION = "1.41"


@attrs.frozen
class Result:
    """The outcome of a finished command."""

    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def text(self) -> str:
        return self.stdout.decode("utf-8", "replace")


def output_lines(process: Process) -> Iterator[str]:
    """The lines a running command writes on stdout, decoded (bad bytes replaced), each
    with its newline; as they come."""
    for raw in iter(process.stdout.readline, b""):
        yield raw.decode("utf-8", "replace")


class Process(Protocol):
    """A running command: stdout read as a stream, stdin written as one (when asked for)."""

    stdout: IO[bytes]
    stdin: IO[bytes] | None

    def wait(self) -> int: ...

    def kill(self) -> None: ...

    def errors(self) -> str:
        """What the command wrote on stderr (when not merged into stdout), after :meth:`wait`."""
        ...


# What a command's stderr keeps for its error message: its start and its end. A database
# client that fails echoes the whole failing statement, which can be megabytes long.
ERRORS_HEAD = 4096
ERRORS_TAIL = 16384


class _ErrorText:
    """Drains a stderr stream in a thread, keeping only its first and last few kilobytes."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.head = b""
        self.tail = b""
        self.cut = False
        self.thread = threading.Thread(target=self._drain, args=(stream,), daemon=True)
        self.thread.start()

    def _drain(self, stream: IO[bytes]) -> None:
        while chunk := stream.read(65536):
            if len(self.head) < ERRORS_HEAD:
                room = ERRORS_HEAD - len(self.head)
                self.head += chunk[:room]
                chunk = chunk[room:]
            tail = self.tail + chunk
            if len(tail) > ERRORS_TAIL:
                self.cut = True
                tail = tail[-ERRORS_TAIL:]
            self.tail = tail

    def text(self) -> str:
        gap = b"\n[...]\n" if self.cut else b""
        return (self.head + gap + self.tail).decode("utf-8", "replace")


class _Streamed:
    """What local and remote processes share: stderr, when kept apart, is drained by a
    thread, and :meth:`wait` returns only once all of it is read."""

    stdout: IO[bytes]
    stdin: IO[bytes] | None
    _errors: _ErrorText | None = None

    def _exit_code(self) -> int:
        raise NotImplementedError

    def wait(self) -> int:
        code = self._exit_code()
        if self._errors is not None:
            self._errors.thread.join()
        return code

    def errors(self) -> str:
        return self._errors.text() if self._errors is not None else ""


class LocalProcess(_Streamed):
    """A local command."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process
        assert process.stdout is not None
        self.stdout = process.stdout
        self.stdin = process.stdin
        self._errors = _ErrorText(process.stderr) if process.stderr is not None else None

    def _exit_code(self) -> int:
        return self.process.wait()

    def kill(self) -> None:
        self.process.kill()


def _check_env(env: Mapping[str, str] | None) -> dict[str, str]:
    env = dict(env or {})
    for key, value in env.items():
        if "\n" in value or "\0" in value or not key.replace("_", "a").isalnum():
            raise OpskitError(
                f"environment variable {key!r} cannot be passed (bad name or newline in value)"
            )
    return env


class Terminal(Protocol):
    """A command on a pseudo-terminal: bytes out, keystrokes in, a size."""

    def read(self) -> bytes:
        """The next output (blocking); b"" once the command ended."""
        ...

    def write(self, data: bytes) -> None: ...

    def resize(self, cols: int, rows: int) -> None: ...

    def close(self) -> None:
        """End the command and free the terminal."""
        ...


class Host:
    """A machine that runs commands, holds files and a Docker engine."""

    name: str = LOCAL
    # How many data streams (a dump, a tree, a load, each with its helpers) an engine may
    # run side by side on this host: an SSH server caps the sessions of one connection
    # (sshd's MaxSessions, 10 by default), and two streams with their helpers exceed it.
    streams: int = 2

    def __init__(self) -> None:
        self._docker: Any = None
        self.cache: dict[str, Any] = {}

    # -- commands ------------------------------------------------------------

    def run(
        self,
        argv: Sequence[str],
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        input: bytes | None = None,
        check: bool = True,
        timeout: float | None = None,
    ) -> Result:
        """Run *argv* to completion and capture its output.

        *env* is added to the command's environment (secrets travel here, never in argv).
        With *check*, a non-zero exit raises :class:`CommandFailed`.
        """
        result = self._run(list(argv), cwd=cwd, env=_check_env(env), input=input, timeout=timeout)
        if check and result.returncode != 0:
            raise CommandFailed(
                list(argv), result.returncode, result.stderr.decode("utf-8", "replace"), self.name
            )
        return result

    def _run(
        self,
        argv: list[str],
        *,
        cwd: str | None,
        env: dict[str, str],
        input: bytes | None,
        timeout: float | None,
    ) -> Result:
        raise NotImplementedError

    def call(self, argv: Sequence[str], *, cwd: str | None = None, tty: bool = False) -> int:
        """Run *argv* attached to this terminal (stdin, stdout, stderr); return its exit code."""
        raise NotImplementedError

    def terminal(self, argv: Sequence[str], cols: int = 80, rows: int = 24) -> Terminal:
        """Run *argv* on a new pseudo-terminal of this host (the dashboard's terminal)."""
        raise NotImplementedError

    def popen(
        self,
        argv: Sequence[str],
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        stdin: bool = False,
        merge_stderr: bool = True,
    ) -> Process:
        """Start *argv* with stdout as a byte stream.

        With *stdin*, the process's stdin is a writable stream (close it to send EOF).
        With *merge_stderr* (the default) stderr joins stdout; otherwise it is collected
        and available from ``errors()`` after ``wait()``.
        """
        raise NotImplementedError

    def open_write(self, path: str) -> IO[bytes]:
        """A new file at *path*, written as a stream; closing it finishes the write."""
        raise NotImplementedError

    def open_read(self, path: str) -> IO[bytes]:
        """The file at *path*, read as a stream."""
        raise NotImplementedError

    def open_regular(self, path: str) -> IO[bytes]:
        """The regular file at *path*, read as a stream; a link (even to a file) or anything
        else raises :class:`HostError`: a file inside an archive is never a way out of it."""
        raise NotImplementedError

    # -- files ---------------------------------------------------------------

    def exists(self, path: str) -> bool:
        raise NotImplementedError

    def read_text(self, path: str) -> str:
        raise NotImplementedError

    def listdir(self, path: str) -> list[str]:
        """Names in the folder *path*; an empty list when it does not exist."""
        raise NotImplementedError

    def read_existing(self, paths: Sequence[str]) -> dict[str, str]:
        """The text of each of *paths* that is a file; others are left out."""
        return {path: self.read_text(path) for path in paths if self.exists(path)}

    # -- network -------------------------------------------------------------

    def http_status(self, url: str, timeout: float) -> int:
        """GET *url* as seen from this host; return the HTTP status code."""
        raise NotImplementedError

    # -- Docker --------------------------------------------------------------

    def docker(self) -> DockerClient:
        """The Docker API client of this host's engine (created once)."""
        if self._docker is None:
            docker = docker_sdk()
            try:
                self._docker = self._make_docker_client()
                self._docker.ping()
            except (docker.errors.DockerException, OSError, EOFError) as exc:
                raise DockerUnavailable(
                    f"cannot reach the Docker engine ({self.name}): {_short(exc)}"
                ) from None
        return self._docker

    def _make_docker_client(self) -> DockerClient:
        raise NotImplementedError

    def close(self) -> None:
        if self._docker is not None:
            self._docker.close()
            self._docker = None

    def __enter__(self) -> Host:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def docker_sdk() -> Any:
    """The docker SDK, imported without its SSH transport when nothing has needed paramiko yet.

    That transport imports paramiko and invoke: a fifth of the start of every local command,
    which never uses it. A remote host takes it back with :func:`docker_ssh_adapter`.
    """
    if "docker" not in sys.modules and "paramiko" not in sys.modules:
        sys.modules["paramiko"] = None  # type: ignore[assignment]  # import fails: docker skips it
        try:
            import docker
        finally:
            del sys.modules["paramiko"]
    import docker

    return docker


def docker_ssh_transport() -> None:
    """Import docker's SSH transport now if :func:`docker_sdk` left it out."""
    docker = docker_sdk()
    from docker.transport.sshconn import SSHHTTPAdapter

    # docker's client looks the adapter up by these names, set when it was importable at first.
    docker.transport.SSHHTTPAdapter = SSHHTTPAdapter
    docker.api.client.SSHHTTPAdapter = SSHHTTPAdapter


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    if "Connection refused" in text or "FileNotFoundError" in text or "No such file" in text:
        return "connection refused (is dockerd running?)"
    return text.splitlines()[0][:300]


# ---------------------------------------------------------------------------
# Local
# ---------------------------------------------------------------------------


class LocalHost(Host):
    """This machine: subprocess and the local Docker socket."""

    name = LOCAL

    def _run(
        self,
        argv: list[str],
        *,
        cwd: str | None,
        env: dict[str, str],
        input: bytes | None,
        timeout: float | None,
    ) -> Result:
        try:
            done = subprocess.run(
                argv,
                cwd=cwd,
                env={**os.environ, **env} if env else None,
                input=input,
                stdin=None if input is not None else subprocess.DEVNULL,
                capture_output=True,
                timeout=timeout,
                check=False,
            )
        except FileNotFoundError as exc:
            raise HostError(f"{argv[0]}: command not found ({exc.filename or cwd})") from None
        except subprocess.TimeoutExpired:
            raise HostError(f"{' '.join(argv[:3])} timed out after {timeout} s") from None
        return Result(done.returncode, done.stdout, done.stderr)

    def terminal(self, argv: Sequence[str], cols: int = 80, rows: int = 24) -> Terminal:
        return _LocalTerminal(argv, cols, rows)

    def call(self, argv: Sequence[str], *, cwd: str | None = None, tty: bool = False) -> int:
        try:
            return subprocess.call(list(argv), cwd=cwd)
        except FileNotFoundError:
            raise HostError(f"{argv[0]}: command not found") from None

    def popen(
        self,
        argv: Sequence[str],
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        stdin: bool = False,
        merge_stderr: bool = True,
    ) -> Process:
        extra = _check_env(env)
        try:
            process = subprocess.Popen(
                list(argv),
                cwd=cwd,
                env={**os.environ, **extra} if extra else None,
                stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
            )
        except FileNotFoundError:
            raise HostError(f"{argv[0]}: command not found") from None
        return LocalProcess(process)

    def open_write(self, path: str) -> IO[bytes]:
        try:
            return open(path, "xb")
        except OSError as exc:
            raise HostError(f"cannot write {path}: {exc}") from None

    def open_read(self, path: str) -> IO[bytes]:
        try:
            return open(path, "rb")
        except OSError as exc:
            raise HostError(f"cannot read {path}: {exc}") from None

    def open_regular(self, path: str) -> IO[bytes]:
        import errno
        import stat

        try:
            # O_NONBLOCK: opening a FIFO must not hang; it does not matter for a file.
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise HostError(f"{path} is a link, not a regular file") from None
            raise HostError(f"cannot read {path}: {exc}") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise HostError(f"{path} is not a regular file")
        os.set_blocking(fd, True)
        return open(fd, "rb")

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def read_text(self, path: str) -> str:
        try:
            with open(path, encoding="utf-8") as handle:
                return handle.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise HostError(f"cannot read {path}: {exc}") from None

    def listdir(self, path: str) -> list[str]:
        try:
            return sorted(os.listdir(path))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise HostError(f"cannot list {path}: {exc}") from None

    def http_status(self, url: str, timeout: float) -> int:
        import urllib.error
        import urllib.request

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            # A probe reports the status it gets (301 stays 301), as it does over SSH.
            def redirect_request(self, *args: Any, **kwargs: Any) -> None:
                return None

        try:
            with urllib.request.build_opener(NoRedirect).open(url, timeout=timeout) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)

    def _make_docker_client(self) -> DockerClient:
        docker = docker_sdk()
        return docker.APIClient(version="auto", **docker.utils.kwargs_from_env())


# ---------------------------------------------------------------------------
# SSH
# ---------------------------------------------------------------------------


def _env_preamble(argv: list[str], env: dict[str, str]) -> tuple[list[str], bytes]:
    """Wrap *argv* so that *env* arrives on stdin, not on the remote command line."""
    if not env:
        return argv, b""
    reader = 'while IFS= read -r kv && [ -n "$kv" ]; do export "$kv"; done; exec "$@"'
    lines = "".join(f"{key}={value}\n" for key, value in env.items()) + "\n"
    return ["sh", "-c", reader, "opskit", *argv], lines.encode()


class _ChannelProcess(_Streamed):
    """A remote command's channel, shaped like :class:`subprocess.Popen`."""

    def __init__(self, channel: Any, stdin: bool, merge_stderr: bool) -> None:
        self.channel = channel
        self.stdout = channel.makefile("rb")
        self.stdin = channel.makefile_stdin("wb") if stdin else None
        if merge_stderr:
            channel.set_combine_stderr(True)
        else:
            self._errors = _ErrorText(channel.makefile_stderr("rb"))
        if not stdin:
            channel.shutdown_write()

    def _exit_code(self) -> int:
        return int(self.channel.recv_exit_status())

    def kill(self) -> None:
        self.channel.close()


class _ChannelWriter(io.RawIOBase):
    """A remote file written through ``cat > path``; close() waits for it to finish."""

    def __init__(self, process: _ChannelProcess, path: str, host: str) -> None:
        self.process = process
        self.path = path
        self.host = host

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        assert self.process.stdin is not None
        self.process.stdin.write(bytes(data))
        return len(data)

    def close(self) -> None:
        if self.closed:
            return
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.channel.shutdown_write()
        code = self.process.wait()
        super().close()
        if code != 0:
            raise HostError(
                f"cannot write {self.path} on {self.host}: {self.process.errors().strip()}"
            )


class _CheckedReader(io.RawIOBase):
    """A command's stdout as a file; at its end the command's exit status is checked, so a
    command that failed is an error, never a short file."""

    def __init__(self, process: Process, failure: str) -> None:
        self.process = process
        self.failure = failure
        self.ended = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.process.stdout.read(len(buffer))
        if not data and not self.ended:
            self.ended = True
            if self.process.wait() != 0:
                lines = self.process.errors().strip().splitlines()
                raise HostError(f"{self.failure}: {'; '.join(lines) or 'it failed'}")
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed and not self.ended:
            self.process.kill()
        super().close()


class SSHHost(Host):
    """A server reached over SSH through fabric; its Docker engine through the same connection."""

    streams = 1

    def __init__(
        self, url: str, key_filename: str | None = None, timeout: float | None = None
    ) -> None:
        super().__init__()
        parts = ssh_url(url)
        self.port = parts.port
        self.hostname = parts.hostname
        self.user = parts.username
        self.name = url
        self.key_filename = key_filename or os.environ.get("OPSKIT_SSH_KEY") or None
        # the connection's own limits: a server that accepts and never answers (its banner,
        # the login) is given up on after *timeout* (a fleet's per-host limit)
        self.timeout = timeout
        self._connection: Any = None

    @property
    def connection(self) -> Any:
        """The open fabric connection (opened on first use, and again when it broke: a
        server that restarted, or a dashboard's connection kept across an outage)."""
        if self._connection is not None and not self._connection.is_connected:
            self.close()  # the engine's client with it: it spoke over that connection
        if self._connection is None:
            import logging

            import fabric

            # paramiko logs a failed channel to stderr by itself; the error reaches the
            # user once, as opskit's own [error] line.
            logging.getLogger("paramiko").addHandler(logging.NullHandler())
            connect_kwargs: dict[str, Any] = {}
            if self.key_filename:
                connect_kwargs["key_filename"] = self.key_filename
            if self.timeout is not None:
                connect_kwargs["banner_timeout"] = self.timeout
                connect_kwargs["auth_timeout"] = self.timeout
            connection = fabric.Connection(
                self.hostname,
                user=self.user,
                port=self.port,
                connect_timeout=min(10, self.timeout or 10),
                connect_kwargs=connect_kwargs,
            )
            try:
                connection.open()
            except Exception as exc:  # paramiko and socket errors of all kinds
                raise HostError(f"cannot connect to {self.name}: {_short(exc)}") from None
            self._connection = connection
        return self._connection

    def _command(self, argv: list[str], cwd: str | None) -> str:
        command = shlex.join(argv)
        if cwd:
            command = f"cd {shlex.quote(cwd)} && {command}"
        return command

    def _open(self, argv: list[str], cwd: str | None, env: dict[str, str]) -> Any:
        argv, preamble = _env_preamble(argv, env)
        try:
            channel = self.connection.client.get_transport().open_session()
            channel.exec_command(self._command(argv, cwd))
        except HostError:
            raise
        except Exception as exc:
            raise HostError(f"lost the connection to {self.name}: {_short(exc)}") from None
        if preamble:
            channel.sendall(preamble)
        return channel

    def _run(
        self,
        argv: list[str],
        *,
        cwd: str | None,
        env: dict[str, str],
        input: bytes | None,
        timeout: float | None,
    ) -> Result:
        channel = self._open(argv, cwd, env)
        if timeout is not None:
            channel.settimeout(timeout)
        stderr_chunks: list[bytes] = []
        reader = threading.Thread(
            target=lambda: stderr_chunks.append(channel.makefile_stderr("rb").read())
        )
        reader.start()
        if input:
            channel.sendall(input)
        channel.shutdown_write()
        try:
            stdout = channel.makefile("rb").read()
            status = channel.recv_exit_status()
        except TimeoutError:
            channel.close()
            raise HostError(
                f"{' '.join(argv[:3])} timed out after {timeout} s on {self.name}"
            ) from None
        reader.join()
        if status == 127 and not stdout:
            stderr = b"".join(stderr_chunks)
            if b"not found" in stderr:
                raise HostError(f"{argv[0]}: command not found on {self.name}")
        return Result(status, stdout, b"".join(stderr_chunks))

    def terminal(self, argv: Sequence[str], cols: int = 80, rows: int = 24) -> Terminal:
        try:
            channel = self.connection.client.get_transport().open_session()
            channel.get_pty(term="xterm-256color", width=cols, height=rows)
            channel.exec_command(shlex.join(argv))
        except Exception as exc:
            raise HostError(f"lost the connection to {self.name}: {_short(exc)}") from None
        return _ChannelTerminal(channel)

    def call(self, argv: Sequence[str], *, cwd: str | None = None, tty: bool = False) -> int:
        try:
            stdin_ok = sys.stdin is not None and sys.stdin.isatty() if tty else _readable(sys.stdin)
            result = self.connection.run(
                self._command(list(argv), cwd),
                pty=tty,
                warn=True,
                hide=False,
                in_stream=None if stdin_ok else False,
            )
        except HostError:
            raise
        except Exception as exc:
            raise HostError(f"lost the connection to {self.name}: {_short(exc)}") from None
        return int(result.exited)

    def popen(
        self,
        argv: Sequence[str],
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        stdin: bool = False,
        merge_stderr: bool = True,
    ) -> Process:
        channel = self._open(list(argv), cwd, _check_env(env))
        return _ChannelProcess(channel, stdin=stdin, merge_stderr=merge_stderr)

    def open_write(self, path: str) -> IO[bytes]:
        script = 'set -C; cat > "$1"'  # noclobber: never overwrite, like open(path, "xb")
        process = self.popen(["sh", "-c", script, "opskit", path], stdin=True, merge_stderr=False)
        return io.BufferedWriter(_ChannelWriter(process, path, self.name), buffer_size=1 << 20)  # type: ignore[arg-type]

    def open_read(self, path: str) -> IO[bytes]:
        return self.popen(["cat", "--", path], merge_stderr=False).stdout

    def open_regular(self, path: str) -> IO[bytes]:
        # dd's iflag=nofollow opens it with O_NOFOLLOW: no link slips in after the test.
        script = (
            'if [ -L "$1" ]; then echo "$1 is a link, not a regular file" >&2; exit 1; fi; '
            'if [ ! -f "$1" ]; then echo "$1 is not a regular file" >&2; exit 1; fi; '
            'exec dd if="$1" iflag=nofollow bs=1M status=none'
        )
        process = self.popen(["sh", "-c", script, "opskit", path], merge_stderr=False)
        reader = _CheckedReader(process, f"cannot read {path} on {self.name}")
        return io.BufferedReader(reader, buffer_size=1 << 20)

    def exists(self, path: str) -> bool:
        return self.run(["test", "-e", path], check=False).returncode == 0

    def read_text(self, path: str) -> str:
        result = self.run(["cat", "--", path], check=False)
        if result.returncode != 0:
            raise HostError(
                f"cannot read {path} on {self.name}: {result.stderr.decode(errors='replace').strip()}"
            )
        try:
            return result.stdout.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise HostError(f"cannot read {path} on {self.name}: {exc}") from None

    def listdir(self, path: str) -> list[str]:
        result = self.run(["ls", "-A", "--", path], check=False)
        if result.returncode != 0:
            if not self.exists(path):
                return []
            raise HostError(
                f"cannot list {path} on {self.name}: {result.stderr.decode(errors='replace').strip()}"
            )
        return sorted(result.text.splitlines())

    def read_existing(self, paths: Sequence[str]) -> dict[str, str]:
        # One round trip: each existing file as "path NUL size NUL bytes".
        script = 'for p; do [ -f "$p" ] && printf "%s\\0%s\\0" "$p" "$(wc -c <"$p")" && cat -- "$p"; done; true'
        data = self.run(["sh", "-c", script, "opskit", *paths]).stdout
        found: dict[str, str] = {}
        offset = 0
        while offset < len(data):
            path_end = data.index(b"\0", offset)
            size_end = data.index(b"\0", path_end + 1)
            size = int(data[path_end + 1 : size_end])
            body = data[size_end + 1 : size_end + 1 + size]
            path = data[offset:path_end].decode("utf-8", "replace")
            try:
                found[path] = body.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise HostError(f"cannot read {path} on {self.name}: {exc}") from None
            offset = size_end + 1 + size
        return found

    def http_status(self, url: str, timeout: float) -> int:
        import http.client

        parts = urlsplit(url)
        if parts.scheme != "http":
            # TLS through an SSH channel needs a socket; ask the server's curl instead.
            result = self.run(
                [
                    "curl",
                    "-s",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    "-m",
                    str(timeout),
                    url,
                ],
                check=False,
            )
            if result.returncode != 0:
                raise OSError(f"curl exit {result.returncode}")
            return int(result.text.strip() or 0)
        port = parts.port or 80
        channel = self.connection.client.get_transport().open_channel(
            "direct-tcpip", (parts.hostname, port), ("127.0.0.1", 0), timeout=timeout
        )
        channel.settimeout(timeout)
        connection = http.client.HTTPConnection(parts.hostname or "", port, timeout=timeout)
        connection.sock = channel
        try:
            connection.request(
                "GET", (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            )
            return connection.getresponse().status
        finally:
            connection.close()

    def _make_docker_client(self) -> DockerClient:
        docker = docker_sdk()
        docker_ssh_transport()
        from docker.transport.sshconn import SSHHTTPAdapter

        ssh_client = self.connection.client

        class FabricAdapter(SSHHTTPAdapter):  # type: ignore[misc]
            """Docker's SSH adapter, over our fabric connection (``docker system dial-stdio``)."""

            def __init__(self) -> None:
                super().__init__("ssh://opskit", shell_out=True)
                self.ssh_client = ssh_client

            def get_connection(self, url: str, proxies: Any = None) -> Any:
                # docker's adapter keeps a pool per request URL: every new path opened
                # another channel and another `docker system dial-stdio` on the server.
                # One pool for the engine: its connections serve every request.
                return super().get_connection("http+docker://ssh", proxies)

            def close(self) -> None:
                self.pools.clear()  # the connection belongs to the host

        # shell_out and a fixed version: nothing connects until our adapter is mounted.
        client = docker.APIClient(
            base_url="ssh://opskit", use_ssh_client=True, version=REMOTE_DOCKER_API_VERSION
        )
        client.mount("http+docker://ssh", FabricAdapter())
        return client

    def close(self) -> None:
        super().close()
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def _readable(stream: Any) -> bool:
    try:
        stream.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    return True


def open_host(url: str | None, timeout: float | None = None) -> Host:
    """The host for ``--host``/``OPSKIT_HOST``: local when empty or ``local``; *timeout*
    limits an SSH connection's set-up (see :class:`SSHHost`)."""
    if not url or url == LOCAL:
        return LocalHost()
    if url.startswith("ssh://"):
        return SSHHost(url, timeout=timeout)
    raise HostError(f"bad host {url!r}: expected ssh://user@server[:port] or 'local'")


# Starts a terminal's command: every signal back to its default (a server started under
# nohup ignores SIGHUP, and its children would too), a session of its own with the pty as
# its controlling terminal (without one, a resize sends no SIGWINCH and docker exec never
# passes it on), then the command.
_TERMINAL_START = """
import fcntl, os, signal, sys, termios
for number in signal.valid_signals() - {signal.SIGKILL, signal.SIGSTOP}:
    try:
        signal.signal(number, signal.SIG_DFL)
    except (OSError, ValueError):
        pass
signal.pthread_sigmask(signal.SIG_SETMASK, ())
os.setsid()
fcntl.ioctl(0, termios.TIOCSCTTY, 0)
try:
    os.execvp(sys.argv[1], sys.argv[1:])
except OSError as exc:
    print(f"{sys.argv[1]}: {exc.strerror}", file=sys.stderr)
    os._exit(127)
"""


class _LocalTerminal:
    """A local command on a pty, in a session of its own."""

    def __init__(self, argv: Sequence[str], cols: int, rows: int) -> None:
        import pty

        self.primary, secondary = pty.openpty()
        self.resize(cols, rows)
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _TERMINAL_START, *argv], stdin=secondary,
                stdout=secondary, stderr=secondary, close_fds=True,
            )  # fmt: skip
        finally:
            os.close(secondary)

    def read(self) -> bytes:
        try:
            return os.read(self.primary, 65536)
        except OSError:  # EIO: the command ended and closed the pty
            return b""

    def write(self, data: bytes) -> None:
        os.write(self.primary, data)

    def resize(self, cols: int, rows: int) -> None:
        import fcntl
        import struct
        import termios

        fcntl.ioctl(self.primary, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def close(self) -> None:
        """SIGHUP to the command's process group, then SIGTERM, then SIGKILL, a second
        apart: it ends within about 2 s whatever it does with signals."""
        import signal

        for number in (signal.SIGHUP, signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, number)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=1)
                break
        self.process.wait()
        os.close(self.primary)


class _ChannelTerminal:
    """A command on a pty of the SSH server (paramiko's channel)."""

    def __init__(self, channel: Any) -> None:
        self.channel = channel

    def read(self) -> bytes:
        return bytes(self.channel.recv(65536))

    def write(self, data: bytes) -> None:
        self.channel.sendall(data)

    def resize(self, cols: int, rows: int) -> None:
        self.channel.resize_pty(width=cols, height=rows)

    def close(self) -> None:
        self.channel.close()
