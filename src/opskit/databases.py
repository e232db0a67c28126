"""Running database clients inside database containers.

The password stays inside the container: the client reads it from the container's own
variable named by ``password_env``, so it never appears in an argv or a log. The scripts
below run under ``sh -c`` in the container; names and SQL arrive as ``"$1"``, ``"$2"``, ...
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from opskit.errors import OpskitError
from opskit.processes import signals_deferred

if TYPE_CHECKING:
    from opskit.containers import Container
    from opskit.descriptor import Database
    from opskit.host import Host

# How long a throw-away server (:func:`start_copy`) may take to accept connections.
READY_TIMEOUT = 180

MARIADB_TYPES = ("mariadb", "mysql")
# Exit status of a script whose password variable is missing in the container.
MISSING_VARIABLE = 97


def _password(database: Database) -> str:
    """A script prefix that checks the password variable and exports it to the client."""
    variable = database.password_env
    if not variable:
        return ""
    target = "MYSQL_PWD" if database.type in MARIADB_TYPES else "PGPASSWORD"
    return (
        f'[ -n "${{{variable}+x}}" ] || {{ echo "variable {variable} is not set in the container" >&2; '
        f'exit {MISSING_VARIABLE}; }}; {target}="${{{variable}}}"; export {target}; '
    )


def _client(mariadb: str, mysql: str) -> str:
    return f"c={mariadb}; command -v {mariadb} >/dev/null 2>&1 || c={mysql}; "


def default_user(database: Database) -> str:
    return database.user or ("root" if database.type in MARIADB_TYPES else "postgres")


def _tcp(database: Database) -> str:
    # With a password, PostgreSQL authenticates over TCP; without one, the socket's rules apply.
    return "--host=127.0.0.1 " if database.password_env else ""


def query_script(database: Database) -> str:
    """Run one SQL statement ("$3") in database "$2" as user "$1"; plain output."""
    if database.type in MARIADB_TYPES:
        return (
            _password(database) + _client("mariadb", "mysql")
            + 'exec "$c" --user="$1" --batch --skip-column-names --execute="$3" "$2"'
        )  # fmt: skip
    return (
        _password(database)
        + f'exec psql {_tcp(database)}--username="$1" --no-align --tuples-only --quiet --command="$3" "$2"'
    )


# The dump's stdout is a pipe to docker, where stdio buffers 4 KiB: every 4 KiB is a write
# that containerd's shim and dockerd each pass on. With stdbuf (coreutils; when the image has
# it and it works) the dump writes 1 MiB at a time. The peer bench's 114 MB dump through
# docker exec: the daemons' CPU 1.70 / 2.59 s -> 1.20 / 1.05 s, the wall time 5.3 / 7.4 s ->
# 4.2 / 3.0 s (two runs each, a loaded machine). The exec keeps the dump's exit status.
_BUFFERED = (
    'b=; command -v stdbuf >/dev/null 2>&1 && stdbuf -o1M true 2>/dev/null && b="stdbuf -o1M"; '
)


def dump_script(database: Database) -> str:
    """Write a plain SQL dump of database "$2" (as user "$1") to stdout."""
    if database.type in MARIADB_TYPES:
        return (
            _password(database) + _client("mariadb-dump", "mysqldump") + _BUFFERED
            + 'exec $b "$c" --user="$1" --single-transaction --routines --triggers --events '
            '--hex-blob --default-character-set=utf8mb4 "$2"'
        )  # fmt: skip
    return (
        _password(database) + _BUFFERED
        + f'exec $b pg_dump {_tcp(database)}--username="$1" --no-password "$2"'
    )  # fmt: skip


# Succeeds when no shell runs in the container any more, apart from this script's own
# docker exec (parent pid 0) and its subshells: an image's entrypoint initialises in a shell
# (a temporary server on the socket only, seed scripts) and then execs the server.
INITIALISED = (
    'for d in /proc/[0-9]*; do p=${d#/proc/}; [ "$p" = "$$" ] && continue; '
    "ppid=$(sed -n 's/^PPid:[[:space:]]*//p' \"$d/status\" 2>/dev/null); "
    '[ -n "$ppid" ] || continue; [ "$ppid" = "$$" ] && continue; '
    '[ "$ppid" = 0 ] && [ "$p" != 1 ] && continue; '
    "name=$(tr '\\000' '\\n' 2>/dev/null <\"$d/cmdline\" | head -n 1); "
    "name=${name##*/}; name=${name#-}; "
    'case "$name" in sh|bash|dash|ash|zsh|ksh|mksh|busybox) '
    'echo "its initialisation is still running (pid $p: $name)"; exit 1;; esac; done; exit 0'
)


def ready_script(database: Database) -> str:
    """Succeed once the server the container keeps accepts connections; print why not.

    An image that initialises runs a temporary server on its socket only, so a server that
    answers over TCP on 127.0.0.1 is ready. One configured for its socket only
    (``listen_addresses=''``, ``skip-networking``) is ready when the client answers on the
    socket and the image's initialisation has ended (:data:`INITIALISED`). No password
    is needed."""
    if database.type in MARIADB_TYPES:
        tcp = '"$c" --protocol=TCP --host=127.0.0.1 --user="$1" ping >/dev/null 2>&1'
        socket = '"$c" --protocol=SOCKET --user="$1" ping >/dev/null 2>&1'
        client = _client("mariadb-admin", "mysqladmin")
    else:
        tcp = "pg_isready --host=127.0.0.1 --quiet"
        socket = "pg_isready --quiet"
        client = ""
    return (
        f"{client}{tcp} && exit 0; "
        f'{socket} || {{ echo "it answers neither over TCP nor on its socket"; exit 1; }}; '
        + INITIALISED
    )


# The load's own lines on stdout: the shell's and the client's process ids inside the
# container (so that an interrupted load can be stopped there, not only its docker exec),
# then the client's exit status, which ``docker exec`` does not always pass on.
PID_LINE = "opskit-load-pid"
STATUS_LINE = "opskit-load-status"


def _background_load(client: str) -> str:
    """Run *client* on the script's stdin in the background; report its pid and status."""
    return (
        f"exec 3<&0; {client} <&3 3<&- >/dev/null & pid=$!; exec 3<&-; "
        f'echo "{PID_LINE} $pid"; wait "$pid"; status=$?; echo "{STATUS_LINE} $status"; '
        'exit "$status"'
    )


def restore_script(database: Database) -> str:
    """Drop and recreate database "$2" (as user "$1"), then load the SQL dump on stdin.

    Prints the pid lines and the status line described at :data:`PID_LINE`."""
    announce = f'echo "{PID_LINE} $$"; '
    if database.type in MARIADB_TYPES:
        return (
            announce + _password(database) + _client("mariadb", "mysql")
            + '"$c" --user="$1" --execute="DROP DATABASE IF EXISTS \\`$2\\`; CREATE DATABASE \\`$2\\`" '
            '|| exit 1; '
            + _background_load('"$c" --user="$1" --binary-mode "$2"')
        )  # fmt: skip
    tcp = _tcp(database)
    # A load that was stopped half way may still hold its session for a moment: --force
    # (PostgreSQL 13 and later) ends it instead of failing.
    return (
        announce
        + _password(database)
        + "force=; dropdb --help 2>/dev/null | grep -q -- --force && force=--force; "
        f'dropdb {tcp}--username="$1" $force --if-exists "$2" && createdb {tcp}--username="$1" "$2" '
        "|| exit 1; "
        + _background_load(
            f'psql {tcp}--username="$1" --quiet --set=ON_ERROR_STOP=1 --single-transaction "$2"'
        )
    )


KILL_SCRIPT = 'kill -KILL "$@" 2>/dev/null; true'


def client_argv(container: str, script: str, database: Database, *extra: str) -> list[str]:
    """``docker exec`` running *script* in *container* with the database's user and name."""
    return ["docker", "exec", container, *client_command(script, database, *extra)]


def client_command(script: str, database: Database, *extra: str) -> list[str]:
    """The command, in the container, that runs *script* with the database's user and name."""
    return ["sh", "-c", script, "opskit", default_user(database), database.name, *extra]


def client_error(
    database: Database, container: str, returncode: int, stderr: str, explain: Any = None
) -> OpskitError:
    """The client's own error, in one line: the ERROR line (PostgreSQL: with its CONTEXT,
    which names table, line and column), else the last line of stderr.

    *explain* (a function of the ERROR line) may add what the line number refers to."""
    lines = [
        re.sub(r"^psql:[^:\n]*:\d+: ", "", line.strip())  # "psql:<stdin>:57: ERROR: ..."
        for line in stderr.strip().splitlines()
        if line.strip()
    ]
    errors = [line for line in lines if line.startswith("ERROR")]
    if errors:
        detail = errors[-1]
        if explain is not None:
            detail = explain(detail)
        context = [line for line in lines if line.startswith("CONTEXT:")]
        if context:
            # "CONTEXT:  COPY wp_users, line 3, column user_url: "<the value>"": not the value
            where = re.sub(r':\s+".*$', "", context[0].removeprefix("CONTEXT:").strip())
            detail = f"{detail} ({where})"
    else:
        detail = lines[-1] if lines else f"exit {returncode}"
    return OpskitError(f"{database.type} {database.name} in {container}: {detail}")


def query(host: Host, container: str, database: Database, sql: str, timeout: float = 30) -> str:
    """Run *sql* with the container's own client; return its plain-text output."""
    argv = client_argv(container, query_script(database), database, sql)
    result = host.run(argv, check=False, timeout=timeout)
    if result.returncode != 0:
        raise client_error(
            database, container, result.returncode, result.stderr.decode("utf-8", "replace")
        )
    return result.text


def table_rows(host: Host, container: str, database: Database) -> dict[str, int]:
    """Every table of the database with its exact row count (two queries per database).

    Names are as dumps write them, without quotes (PostgreSQL: ``schema.table``); a
    PostgreSQL table counts only its own rows, not those of its partitions or children.
    """
    mariadb = database.type in MARIADB_TYPES
    if mariadb:
        listing = (
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE' ORDER BY table_name"
        )
    else:
        listing = (
            "SELECT schemaname || chr(31) || tablename FROM pg_tables "
            "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1"
        )
    names = [n for n in query(host, container, database, listing).splitlines() if n]
    if not names:
        return {}
    if mariadb:
        sources = {name: "`" + name.replace("`", "``") + "`" for name in names}
    else:
        sources = {
            name.replace("\x1f", "."): "ONLY "
            + ".".join('"' + part.replace('"', '""') + '"' for part in name.split("\x1f"))
            for name in names
        }
    counts = " UNION ALL ".join(
        f"SELECT {_literal(str(index))}, COUNT(*) FROM {source}"
        for index, source in enumerate(sources.values())
    )
    by_index = list(sources)
    rows = {}
    for line in query(host, container, database, counts, timeout=600).splitlines():
        index, _, count = line.partition("\t" if mariadb else "|")
        if index.isdigit():
            rows[by_index[int(index)]] = int(count)
    return rows


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# -- throw-away servers (restore drills) ---------------------------------------------------


def start_copy(host: Host, live: Container, database: Database, name: str, label: str) -> Container:
    """A throw-away copy of *live*'s database server, named *name* and labelled *label*
    (``key=value``), as are its volumes: same image, command, variables and read-only
    mounts; a fresh volume where *live* writes; no network. The password variable gets a
    new random value. The caller removes the container and its volumes by the label."""
    import json
    import secrets

    from opskit.containers import Container

    inspected = json.loads(host.run(["docker", "inspect", live.id]).text)[0]
    config = inspected.get("Config") or {}
    argv = ["docker", "run", "--detach", "--name", name, "--label", label]
    argv += ["--network", "none"]
    if config.get("User"):
        argv += ["--user", str(config["User"])]
    # The variables' values travel in the docker client's environment, not in argv.
    environment: dict[str, str] = {}
    for item in config.get("Env") or []:
        variable, _, value = str(item).partition("=")
        environment[variable] = value
    if database.password_env:
        environment[database.password_env] = secrets.token_urlsafe(18)
    for variable in environment:
        argv += ["--env", variable]
    for index, mount in enumerate(inspected.get("Mounts") or []):
        target = str(mount.get("Destination"))
        if mount.get("RW"):
            volume = f"{name}-{index}"
            with signals_deferred():
                host.run(["docker", "volume", "create", "--label", label, volume])
            argv += ["--mount", f"type=volume,source={volume},target={target}"]
        elif mount.get("Type") == "bind":
            argv += ["--mount", f"type=bind,source={mount.get('Source')},target={target},readonly"]
    entrypoint = list(config.get("Entrypoint") or [])
    if entrypoint:
        argv += ["--entrypoint", str(entrypoint[0])]
    argv += ["--", str(config.get("Image") or live.image)]
    argv += [str(part) for part in entrypoint[1:]] + [str(c) for c in config.get("Cmd") or []]
    with signals_deferred():  # a drill interrupted now removes the container it started
        created = host.run(argv, env=environment).text.strip()
    key, _, value = label.partition("=")
    return Container(
        id=created[:12],
        name=name,
        image=str(config.get("Image") or live.image),
        state="running",
        status="",
        health="none",
        labels={key: value},
    )


def wait_ready(host: Host, container: Container, database: Database) -> None:
    """Until the server the container keeps accepts connections (:func:`ready_script`):
    over TCP, or on its socket once the image's initialisation has ended, so that a server
    configured for its socket only is used as it runs. Raises when the container stops or
    after :data:`READY_TIMEOUT` seconds, with what it saw last."""
    import time

    deadline = time.monotonic() + READY_TIMEOUT
    argv = client_argv(container.name, ready_script(database), database)
    while True:
        result = host.run(argv, check=False, timeout=30)
        if result.returncode == 0:
            return
        state = host.run(
            ["docker", "inspect", "-f", "{{.State.Status}}", container.name], check=False
        ).text.strip()
        if state != "running":
            logs = host.run(["docker", "logs", "--tail", "5", container.name], check=False).text
            last = [line for line in logs.splitlines() if line.strip()][-1:] or [state]
            raise OpskitError(f"the throw-away {database.type} server did not start: {last[0]}")
        if time.monotonic() > deadline:
            why = result.text.strip().splitlines()[-1:] or [f"exit {result.returncode}"]
            raise OpskitError(
                f"the throw-away {database.type} server was not ready after "
                f"{READY_TIMEOUT} s: {why[0]}"
            )
        time.sleep(1)
