"""Running database clients inside database containers.

The password stays inside the container: the client reads it from the container's own
variable named by ``password_env``, so it never appears in an argv or a log. The scripts
below run under ``sh -c`` in the container; names and SQL arrive as ``"$1"``, ``"$2"``, ...
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from opskit.errors import OpskitError

if TYPE_CHECKING:
    from opskit.descriptor import Database
    from opskit.host import Host

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


def dump_script(database: Database) -> str:
    """Write a plain SQL dump of database "$2" (as user "$1") to stdout."""
    if database.type in MARIADB_TYPES:
        return (
            _password(database) + _client("mariadb-dump", "mysqldump")
            + 'exec "$c" --user="$1" --single-transaction --routines --triggers --events '
            '--hex-blob --default-character-set=utf8mb4 "$2"'
        )  # fmt: skip
    return _password(database) + f'exec pg_dump {_tcp(database)}--username="$1" --no-password "$2"'


def restore_script(database: Database) -> str:
    """Drop and recreate database "$2" (as user "$1"), then load the SQL dump on stdin."""
    if database.type in MARIADB_TYPES:
        return (
            _password(database) + _client("mariadb", "mysql")
            + '"$c" --user="$1" --execute="DROP DATABASE IF EXISTS \\`$2\\`; CREATE DATABASE \\`$2\\`" '
            '&& exec "$c" --user="$1" --binary-mode "$2"'
        )  # fmt: skip
    tcp = _tcp(database)
    return (
        _password(database)
        + f'dropdb {tcp}--username="$1" --if-exists "$2" && createdb {tcp}--username="$1" "$2" '
        f'&& exec psql {tcp}--username="$1" --quiet --set=ON_ERROR_STOP=1 --single-transaction '
        '--output=/dev/null "$2"'
    )


def client_argv(
    container: str, script: str, database: Database, *extra: str, stdin: bool = False
) -> list[str]:
    """``docker exec`` running *script* in *container* with the database's user and name."""
    flags = ["-i"] if stdin else []
    return [
        "docker",
        "exec",
        *flags,
        container,
        "sh",
        "-c",
        script,
        "opskit",
        default_user(database),
        database.name,
        *extra,
    ]


def client_error(database: Database, container: str, returncode: int, stderr: str) -> OpskitError:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
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
    """Every table of the database with its exact row count (one query per database)."""
    if database.type in MARIADB_TYPES:
        listing = (
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE' ORDER BY table_name"
        )
        quote = "`{}`"
    else:
        listing = (
            "SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_tables "
            "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1"
        )
        quote = "{}"
    names = [n for n in query(host, container, database, listing).splitlines() if n]
    if not names:
        return {}
    counts = " UNION ALL ".join(
        f"SELECT {_literal(name)}, COUNT(*) FROM {quote.format(name.replace('`', '``'))}"
        for name in names
    )
    rows = {}
    for line in query(host, container, database, counts, timeout=600).splitlines():
        name, _, count = line.rpartition("\t" if database.type in MARIADB_TYPES else "|")
        if name:
            rows[name] = int(count)
    return rows


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
