"""Running database clients inside database containers.

The password stays inside the container: the client reads it from the container's own
variable named by ``password_env``, so it never appears in an argv or a log.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from opskit.errors import OpskitError

if TYPE_CHECKING:
    from opskit.descriptor import Database
    from opskit.host import Host

# Scripts run by ``sh`` in the container; the SQL and names arrive as "$1", "$2", ...
_MARIADB = (
    "c=mariadb; command -v mariadb >/dev/null 2>&1 || c=mysql; "
    '{password}exec "$c" --user="$1" --batch --skip-column-names --execute="$2" "$3"'
)
_POSTGRES = (
    '{password}exec psql {tcp}--username="$1" --no-align --tuples-only --quiet --command="$2" "$3"'
)


def client_script(database: Database) -> tuple[str, str]:
    """The ``sh -c`` script that runs one SQL statement, and the default user."""
    variable = database.password_env
    if database.type in ("mariadb", "mysql"):
        password = f'MYSQL_PWD="${{{variable}}}" ' if variable else ""
        return _MARIADB.format(password=password), "root"
    password = f'PGPASSWORD="${{{variable}}}" ' if variable else ""
    # With a password, authenticate over TCP; without one, the local socket's own rules apply.
    return _POSTGRES.format(
        password=password, tcp="--host=127.0.0.1 " if variable else ""
    ), "postgres"


def query(host: Host, container: str, database: Database, sql: str, timeout: float = 30) -> str:
    """Run *sql* with the container's own client; return its plain-text output."""
    script, default_user = client_script(database)
    argv = [
        "docker",
        "exec",
        container,
        "sh",
        "-c",
        script,
        "opskit",
        database.user or default_user,
        sql,
        database.name,
    ]
    result = host.run(argv, check=False, timeout=timeout)
    if result.returncode != 0:
        message = result.stderr.decode("utf-8", "replace").strip().splitlines()
        raise OpskitError(
            f"{database.type} query in {container} failed: {message[-1] if message else result.returncode}"
        )
    return result.text
