"""What a SQL dump holds, read while it streams: its tables and their row counts.

A backup records the counts in the manifest (``rows`` of a database component); a load
counts the stream it feeds the database client and compares the loaded tables with them
afterwards, so a load cut short (client killed, connection lost) never passes for a complete
one. For MariaDB/MySQL a load also runs in strict mode, so that a value that no longer fits
its column fails the load instead of being cut, and the client's ``at line N`` is traced back
to the table.

Dumps are those of :mod:`opskit.databases`: ``mysqldump``/``mariadb-dump`` output (an
extended INSERT on one line, or, as MariaDB 10.11 writes it, a ``VALUES`` line followed by
one line per row) and ``pg_dump`` plain output (``COPY ... FROM stdin`` blocks, one line a
row). A literal never holds a raw newline in either, so rows are counted by counting lines
wherever the dump writes one row a line.
"""

from __future__ import annotations

import bisect
import re

from opskit.sqldump import (
    MYSQL_CREATE,
    MYSQL_INSERT,
    PG_COPY,
    PG_CREATE,
    PG_INSERT,
    pg_name,
    unquote,
)

_MARIADB_STATEMENT = re.compile(rb"^(?:INSERT |REPLACE |CREATE TABLE )", re.MULTILINE)
_PG_STATEMENT = re.compile(rb"^(?:COPY |CREATE |INSERT )", re.MULTILINE)
# mysqldump's header sets the session's SQL mode, which turns strict mode off.
_SQL_MODE = re.compile(rb"(SQL_MODE=')([^'\n]*)(')")
_STRICT = b"STRICT_ALL_TABLES"
HEADER_LIMIT = 1 << 16
# "ERROR 1406 (22001) at line 57: Data too long for column 'user_url' at row 3"
_MARIADB_ERROR = re.compile(r"^ERROR \d+ \(\w+\) at line (\d+): (.*?)(?: at row (\d+))?$")


class DumpLedger:
    """Counts the rows of each table of a dump stream fed to it in chunks of any size.

    ``feed`` returns the bytes to pass on: the chunk itself, except that with *strict* (a
    MariaDB/MySQL load) the header's ``SQL_MODE`` gains ``STRICT_ALL_TABLES`` (the header is
    held back until it is complete; lines keep their numbers).
    """

    def __init__(self, dialect: str, *, strict: bool = False) -> None:
        if dialect in ("mariadb", "mysql"):
            self.mariadb = True
        elif dialect in ("postgres", "postgresql"):
            self.mariadb = False
        else:
            raise ValueError(f"unknown dialect {dialect!r}")
        self.rows: dict[str, int] = {}
        # (line, table, rows of the table before it) for each INSERT: "at line N" -> table.
        self.statements: list[tuple[int, str, int]] = []
        self._partial: list[bytes] = []
        self._line = 1  # the number of the next line to scan
        self._open: str | None = None  # the table whose rows continue on the next lines
        self._head: bytes | None = b"" if strict and self.mariadb else None
        self.strict = False  # whether strict mode was switched on

    @property
    def counts(self) -> dict[str, int]:
        return self.rows

    def record(self) -> dict[str, object]:
        """What the manifest keeps about the stream."""
        return {"rows": dict(sorted(self.rows.items()))}

    def feed(self, chunk: bytes) -> bytes:
        self._scan(chunk)
        if self._head is None:
            return chunk
        self._head += chunk
        if len(self._head) < HEADER_LIMIT and not _MARIADB_STATEMENT.search(self._head):
            return b""
        return self._release_head()

    def finish(self) -> bytes:
        if self._partial:
            last = b"".join(self._partial) + b"\n"
            self._partial.clear()
            self._scan_lines(last, 0, len(last))
        return self._release_head() if self._head is not None else b""

    def statement_at(self, line: int) -> tuple[str, int] | None:
        """The table of the INSERT that starts at *line*, and its rows before it."""
        index = bisect.bisect_right(self.statements, (line, "\uffff", 0)) - 1
        if index < 0:
            return None
        _, table, before = self.statements[index]
        return table, before

    def explain(self, message: str) -> str:
        """A MariaDB client error with the table and row it was about, when it names a line."""
        found = _MARIADB_ERROR.match(message.strip())
        if not found:
            return message
        line, what, row = int(found[1]), found[2], found[3]
        statement = self.statement_at(line)
        if statement is None:
            return message
        table, before = statement
        where = f"table {table}"
        if row:
            where += f", row {before + int(row)} of the dump"
        return f"{where}: {what} (line {line})"

    # -- scanning ------------------------------------------------------------------------

    def _release_head(self) -> bytes:
        head, self._head = self._head or b"", None

        def stricter(found: re.Match[bytes]) -> bytes:
            modes = [mode for mode in found[2].split(b",") if mode]
            if _STRICT not in modes:
                modes.append(_STRICT)
            self.strict = True
            return found[1] + b",".join(modes) + found[3]

        return _SQL_MODE.sub(stricter, head, count=1)

    def _scan(self, chunk: bytes) -> None:
        # The complete lines are scanned where they are: only a line cut by the chunk's
        # edge is copied (joined with its start from the chunks before).
        cut = chunk.rfind(b"\n") + 1
        if not cut:
            if chunk:
                self._partial.append(chunk)
            return
        pos = 0
        if self._partial:
            pos = chunk.find(b"\n") + 1
            self._partial.append(chunk[:pos])
            line = b"".join(self._partial)
            self._partial.clear()
            self._scan_lines(line, 0, len(line))
        self._scan_lines(chunk, pos, cut)
        if cut < len(chunk):
            self._partial.append(chunk[cut:])

    def _add(self, table: str, rows: int) -> None:
        self.rows[table] = self.rows.get(table, 0) + rows

    def _scan_lines(self, data: bytes, pos: int, end: int) -> None:
        """Complete lines data[pos:end]."""
        statement = _MARIADB_STATEMENT if self.mariadb else _PG_STATEMENT
        while pos < end:
            if self._open is not None:
                pos = self._rows(data, pos, end)
                continue
            found = statement.search(data, pos, end)
            if found is None:
                self._line += data.count(b"\n", pos, end)
                return
            start = found.start()
            self._line += data.count(b"\n", pos, start)
            stop = data.find(b"\n", start, end) + 1
            if self.mariadb:
                self._mariadb_line(data, start, stop)
            else:
                self._postgres_line(data, start, stop)
            self._line += 1
            pos = stop

    def _rows(self, data: bytes, pos: int, end: int) -> int:
        """Rows of the open statement, one a line, from pos; returns where they stop."""
        assert self._open is not None
        if self.mariadb:
            close = data.find(b";\n", pos, end)  # a literal never holds a raw newline
            stop = close + 2 if close >= 0 else end
            rows = data.count(b"\n", pos, stop)
        else:
            if data.startswith(b"\\.\n", pos):
                close, stop, rows = pos, pos + 3, 0
            else:
                close = data.find(b"\n\\.\n", pos, end)
                stop = close + 4 if close >= 0 else end
                rows = data.count(b"\n", pos, close + 1 if close >= 0 else end)
            self._line += 1 if close >= 0 else 0  # the "\." line
        self._add(self._open, rows)
        self._line += rows
        if close >= 0:
            self._open = None
        return stop

    def _mariadb_line(self, data: bytes, start: int, stop: int) -> None:
        insert = MYSQL_INSERT.match(data, start, stop - 1)
        if insert is not None:
            table = unquote(insert[1]).decode("utf-8", "replace")
            self.statements.append((self._line, table, self.rows.get(table, 0)))
            if insert.end() >= stop - 1:  # "VALUES" ends the line: one row a line follows
                self._open = table
                self.rows.setdefault(table, 0)
            else:
                self._add(table, _tuples(data[insert.end() : stop - 1], mariadb=True))
            return
        create = MYSQL_CREATE.match(data, start, stop - 1)
        if create is not None:
            self.rows.setdefault(unquote(create[1]).decode("utf-8", "replace"), 0)

    def _postgres_line(self, data: bytes, start: int, stop: int) -> None:
        copy = PG_COPY.match(data, start, stop - 1)
        if copy is not None:
            self._open = pg_name(copy[1]).decode("utf-8", "replace")
            self.rows.setdefault(self._open, 0)
            return
        insert = PG_INSERT.match(data, start, stop - 1)
        if insert is not None:
            table = pg_name(insert[1]).decode("utf-8", "replace")
            self._add(table, _tuples(data[insert.end() : stop - 1], mariadb=False))
            return
        create = PG_CREATE.match(data, start, stop - 1)
        if create is not None:
            self.rows.setdefault(pg_name(create[1]).decode("utf-8", "replace"), 0)


def _tuples(values: bytes, *, mariadb: bool) -> int:
    """The rows of a VALUES list on one line: the "(" outside string literals."""
    if b"'" not in values:
        return values.count(b"(")
    if mariadb:  # escaped quotes and backslashes out of the way, quotes only delimit
        values = values.replace(b"\\\\", b"").replace(b"\\'", b"")
    return b"".join(values.split(b"'")[::2]).count(b"(")


# --- tar streams ------------------------------------------------------------------------

BLOCK = 512


class TarLedger:
    """Counts the regular files of a tar stream and their bytes, as it passes.

    A backup records the counts in the manifest (``files``, ``bytes`` of a path or volume
    component); a restore drill compares a scratch extraction with them. ``feed`` returns
    the chunk unchanged. A hard link is not counted again: it holds no data of its own.
    """

    def __init__(self) -> None:
        self.files = 0
        self.bytes = 0
        self._header = b""  # the part of the next header seen so far
        self._skip = 0  # bytes of member data (and padding) still to pass
        self._pax_size: int | None = None  # a pax header's size for the next member
        self._pax = b""  # a pax header's data, while it is read
        self._pax_left = 0

    def record(self) -> dict[str, object]:
        return {"files": self.files, "bytes": self.bytes}

    def finish(self) -> bytes:
        return b""

    def feed(self, chunk: bytes) -> bytes:
        pos, size = 0, len(chunk)
        while pos < size:
            if self._skip:
                step = min(self._skip, size - pos)
                if self._pax_left:
                    take = min(step, self._pax_left)
                    self._pax += chunk[pos : pos + take]
                    self._pax_left -= take
                    if not self._pax_left:
                        self._pax_size = _pax_size(self._pax)
                self._skip -= step
                pos += step
                continue
            take = min(BLOCK - len(self._header), size - pos)
            self._header += chunk[pos : pos + take]
            pos += take
            if len(self._header) == BLOCK:
                header, self._header = self._header, b""
                self._member(header)
        return chunk

    def _member(self, header: bytes) -> None:
        if not header.strip(b"\0"):
            return  # the end of the archive: zero blocks
        kind = header[156:157]
        size = _number(header[124:136])
        if kind == b"x":  # a pax header: its records apply to the next member
            self._pax, self._pax_left = b"", size
        elif kind in (b"g", b"L", b"K"):  # global pax header, GNU long name or link name
            pass
        elif kind in (b"0", b"7", b"\0", b"S"):
            if self._pax_size is not None:
                size = self._pax_size
            self.files += 1
            self.bytes += size
            self._pax_size = None
        else:  # links, devices, folders and fifos carry no data
            size = 0
            self._pax_size = None
        self._skip = -(-size // BLOCK) * BLOCK


def _number(field: bytes) -> int:
    """A tar header number: octal text, or GNU's base-256 for large values."""
    if field[:1] and field[0] & 0x80:
        return int.from_bytes(field[1:], "big")
    text = field.rstrip(b"\0 ").strip()
    return int(text, 8) if text else 0


def _pax_size(data: bytes) -> int | None:
    """The ``size`` record of a pax extended header, if it has one."""
    for record in data.split(b"\n"):
        _, _, keyword = record.partition(b" ")
        key, _, value = keyword.partition(b"=")
        if key == b"size" and value.isdigit():
            return int(value)
    return None
