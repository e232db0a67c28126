"""The grammar of SQL dumps: the statements that name tables and columns, and identifiers.

Shared by the dump rewriter (:mod:`opskit.transform`) and the row counter
(:mod:`opskit.dumps`). Dumps are ``mysqldump``/``mariadb-dump`` output (`backquoted`
names, an INSERT or REPLACE per line) and ``pg_dump`` plain output (``COPY … FROM stdin``
blocks, "double-quoted" names, optionally ``schema.table``). Patterns match bytes; a table
name is group 1, an explicit column list group 2.
"""

from __future__ import annotations

import re

# --- MariaDB / MySQL ------------------------------------------------------------------------

BACKQUOTED = rb"`(?:[^`]|``)+`"
MYSQL_INSERT = re.compile(
    rb"(?:INSERT|REPLACE)\s+(?:(?:LOW_PRIORITY|DELAYED|HIGH_PRIORITY|IGNORE)\s+)*INTO\s+"
    rb"(?:" + BACKQUOTED + rb"\.)?(" + BACKQUOTED + rb")\s*"
    rb"(?:\(((?:" + BACKQUOTED + rb"|[^)`])*)\)\s*)?VALUES\s*"
)
MYSQL_CREATE = re.compile(
    rb"(?:/\*!\d+\s+)?CREATE\s+(?:TEMPORARY\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?"
    rb"(?:" + BACKQUOTED + rb"\.)?(" + BACKQUOTED + rb")\s*\(\s*$"
)
MYSQL_COLUMN = re.compile(rb"  (" + BACKQUOTED + rb")")
MYSQL_NAME = re.compile(BACKQUOTED)

# --- PostgreSQL ------------------------------------------------------------------------------

PG_IDENTIFIER = rb'(?:"(?:[^"]|"")+"|[^\s".(),]+)'
PG_NAME = PG_IDENTIFIER + rb"(?:\." + PG_IDENTIFIER + rb")*"
PG_COLUMN_LIST = rb'\(((?:"(?:[^"]|"")*"|[^)"])*)\)'
PG_COPY = re.compile(
    rb"COPY\s+(" + PG_NAME + rb")\s*(?:" + PG_COLUMN_LIST + rb"\s*)?FROM\s+stdin\b"
)
PG_INSERT = re.compile(
    rb"INSERT\s+INTO\s+(" + PG_NAME + rb")\s*(?:" + PG_COLUMN_LIST + rb"\s*)?"
    rb"(?:OVERRIDING\s+(?:SYSTEM|USER)\s+VALUE\s+)?VALUES\s*"
)
PG_CREATE = re.compile(
    rb"CREATE\s+(?:(?:UNLOGGED|TEMPORARY|TEMP|GLOBAL|LOCAL)\s+)*TABLE\s+"
    rb"(?:IF\s+NOT\s+EXISTS\s+)?(" + PG_NAME + rb")\s*\(\s*$"
)
PG_COLUMN = re.compile(
    rb"\s+(?!(?:CONSTRAINT|PRIMARY|UNIQUE|CHECK|FOREIGN|EXCLUDE|LIKE)\b)(" + PG_IDENTIFIER + rb")"
)
PG_IDENTIFIERS = re.compile(PG_IDENTIFIER)

# --- identifiers -----------------------------------------------------------------------------


def unquote(name: bytes) -> bytes:
    """A `backquoted` or "double-quoted" identifier without its quotes."""
    if len(name) >= 2 and name[:1] == name[-1:] and name[:1] in (b"`", b'"'):
        quote = name[:1]
        return name[1:-1].replace(quote + quote, quote)
    return name


def pg_names(text: bytes) -> list[bytes]:
    return [unquote(name) for name in PG_IDENTIFIERS.findall(text)]


def pg_name(text: bytes) -> bytes:
    """schema.table as one name, without quotes."""
    return b".".join(pg_names(text))
