"""Streaming search-and-replace for SQL dumps.

Copying a database from one environment to another (prod -> dev of a WordPress site, say)
needs the site's own addresses rewritten on the way: ``https://mdf.example.test`` becomes
``https://dev.mdf.example.test`` in plain text, in JSON (``https:\\/\\/mdf.example.test``) and
inside PHP ``serialize()`` output, whose ``s:N:`` byte lengths must follow. This is the core's
transform; any plugin can put a :class:`Replacer` (or a :class:`TransformedReader`) between a
dump and a restore.

Dumps are MariaDB/MySQL ``mysqldump`` output (extended inserts, one statement a line) or
PostgreSQL ``pg_dump`` plain output (``COPY ... FROM stdin`` blocks). The stream is cut into
lines; a line that holds none of the search strings, in any form they take in the dump, is
passed on without being parsed, so the transform keeps up with ``mariadb-dump | mariadb``.
Only the string values of data rows are rewritten; comments, DDL and other statements pass
through unchanged.
"""

from __future__ import annotations

import functools
import io
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import IO, ClassVar

# Defined in opskit.contracts (the types plugins and engines share); re-exported here.
from opskit.contracts import Transform as Transform
from opskit.sqldump import (
    MYSQL_COLUMN,
    MYSQL_CREATE,
    MYSQL_INSERT,
    MYSQL_NAME,
    PG_COLUMN,
    PG_COPY,
    PG_CREATE,
    PG_INSERT,
    pg_name,
    pg_names,
    unquote,
)

READ_SIZE = 1 << 20
PLACES = 5  # places named in a dry run's warnings, for each kind


# --- one value ------------------------------------------------------------------------------

# The start of one PHP serialize() token; the grammar of php-src's var_unserializer.re.
_PHP_TOKEN = re.compile(
    rb"(?P<scalar>N;|b:[01];|i:[+-]?\d+;"
    rb"|d:(?:[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|NAN|-?INF);|[rR]:\d+;)"
    rb'|(?P<string>[sSE]):(?P<length>\d+):"'
    rb"|a:(?P<items>\d+):\{"
    rb'|(?P<object>[OC]):(?P<name_length>\d+):"'
)
_PHP_PLAIN_STRING = re.compile(rb's:(\d+):"')
_PHP_OBJECT_BODY = re.compile(rb'":(\d+):\{')
_PHP_KEY_TYPES = frozenset(b"isS")
_PHP_HEX = frozenset(b"0123456789abcdefABCDEF")
# What PHP's trim() removes.
_PHP_WHITESPACE = b" \t\n\r\0\x0b"
# Only these can hold strings; other serialized values have nothing to rewrite.
_PHP_CONTAINERS = (b"a:", b"O:", b"C:", b"s:", b"S:")
_PHP_ENDS = (b";", b"}")


class _NotSerialized(Exception):
    """The value is not PHP serialize() output."""


# A host name goes on after an occurrence with a letter, digit or "-", or a "." and a letter
# or digit ("https://shop.ch." ending a sentence is still shop.ch) ...
_HOST_GOES_ON = rb"[A-Za-z0-9-]|\.[A-Za-z0-9]"
# ... and began before it with a letter, digit, "-" or "." (cdn.shop.ch, myshop.ch), unless
# that is the end of a %XX escape (https%3A%2F%2Fshop.ch in a query string).
_HOST_BEFORE = rb"[A-Za-z0-9.-]"
_ESCAPE_BEFORE = rb"%[0-9A-Fa-f][0-9A-Fa-f]"
_HOST_BYTES = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-")
_URL_SCHEME = re.compile(rb"[A-Za-z][A-Za-z0-9+.-]*://")


def _starts_with_host(search: bytes) -> bool:
    """Whether *search* starts with a host name (shop.ch/x), not a scheme or a "/"."""
    return search[:1].isalnum() and not _URL_SCHEME.match(search)


def _lookalike_pattern(search: bytes) -> re.Pattern[bytes] | None:
    """Where *search* is part of a longer host name: it ends inside one (shop.ch in
    shop.chocolate.com) or, for a string that starts with a host name, begins inside one
    (shop.ch in cdn.shop.ch); None when neither can happen (it ends in "/", say)."""
    escaped = re.escape(search)
    choices = []
    if _starts_with_host(search):
        choices.append(rb"(?<=%s)(?<!%s)%s" % (_HOST_BEFORE, _ESCAPE_BEFORE, escaped))
    if search[-1:].isalnum():
        choices.append(rb"%s(?=%s)" % (escaped, _HOST_GOES_ON))
    return re.compile(b"|".join(choices)) if choices else None


def _whole_pattern(search: bytes) -> re.Pattern[bytes]:
    """*search* where it is not part of a longer host name (see :func:`_lookalike_pattern`)."""
    pattern = re.escape(search)
    if _starts_with_host(search):
        pattern = rb"(?:(?<!%s)|(?<=%s))%s" % (_HOST_BEFORE, _ESCAPE_BEFORE, pattern)
    if search[-1:].isalnum():
        pattern += rb"(?!%s)" % _HOST_GOES_ON
    return re.compile(pattern)


def _host_around(value: bytes, end: int) -> tuple[int, int]:
    """The span of the host name that goes through position *end* of *value*."""
    start = end
    while start > 0 and value[start - 1] in _HOST_BYTES:
        start -= 1
    while end < len(value) and value[end] in _HOST_BYTES:
        end += 1
    return start, end


class _Rewriter:
    """Replaces the search strings in one unescaped value: plain, JSON-escaped, serialized."""

    def __init__(self, pairs: Sequence[tuple[bytes, bytes]], whole_hosts: bool = False) -> None:
        self.whole_hosts = whole_hosts
        # Places where a search string is part of a longer host name (shop.ch in
        # shop.chocolate.com or cdn.shop.ch), each counted once however many strings
        # find it; and the host names of the value rewritten last.
        self.longer_hosts = 0
        self.hosts: list[bytes] = []
        forms: list[tuple[bytes, bytes]] = []
        for search, replacement in pairs:
            if not search:
                raise ValueError("a search string must not be empty")
            forms.append((search, replacement))
            if b"/" in search:
                forms.append((search.replace(b"/", b"\\/"), replacement.replace(b"/", b"\\/")))
        self.forms = tuple(forms)
        self.searches = tuple(dict.fromkeys(search for search, _ in forms))
        self.lookalikes = tuple(
            (search, pattern)
            for search in self.searches
            if (pattern := _lookalike_pattern(search)) is not None
        )
        self.whole = tuple(_whole_pattern(search) for search, _ in forms)

    def rewrite(self, value: bytes) -> tuple[bytes, int]:
        for search in self.searches:
            if search in value:
                break
        else:
            return value, 0
        # WordPress trims a value before it decides that it is serialized (is_serialized),
        # so a serialized value may carry whitespace around it; the whitespace is kept.
        core = value.strip(_PHP_WHITESPACE)
        if core.startswith(_PHP_CONTAINERS) and core.endswith(_PHP_ENDS):
            try:
                new, count = self._rewrite_serialized(core)
            except _NotSerialized:
                pass
            else:
                start = len(value) - len(value.lstrip(_PHP_WHITESPACE))
                return value[:start] + new + value[start + len(core) :], count
        return self._rewrite_plain(value)

    def find_lookalikes(self, value: bytes) -> None:
        """Note the places in *value* where a search string is part of a longer host name."""
        ends: dict[int, int] = {}
        for search, pattern in self.lookalikes:
            if search in value:
                for found in pattern.finditer(value):
                    at = found.start()
                    if not (at and value[at - 1] in _HOST_BYTES):
                        at = found.end()  # it ends inside a host name, not begins in one
                    start, end = _host_around(value, at)
                    ends.setdefault(end, start)
        self.longer_hosts += len(ends)
        self.hosts += (value[start:end] for end, start in sorted(ends.items()))

    def _rewrite_plain(self, value: bytes) -> tuple[bytes, int]:
        self.find_lookalikes(value)
        total = 0
        for (search, replacement), whole in zip(self.forms, self.whole, strict=True):
            if search not in value:
                continue
            if self.whole_hosts:
                # a template: only backslashes are special in it
                value, found = whole.subn(replacement.replace(b"\\", b"\\\\"), value)
            else:
                found = value.count(search)
                value = value.replace(search, replacement)
            total += found
        return value, total

    def _rewrite_serialized(self, data: bytes) -> tuple[bytes, int]:
        """Walk the token stream (no recursion for nesting), collecting rewritten strings."""
        edits: list[tuple[int, int, bytes]] = []
        total = 0
        # Tokens (keys and values) still expected by each open array or object.
        expected: list[int] = []
        pos = 0
        searches = self.searches
        while True:
            if expected and expected[-1] == 0:
                if data[pos : pos + 1] != b"}":
                    raise _NotSerialized
                pos += 1
                expected.pop()
                if not expected:
                    break
                expected[-1] -= 1
                continue
            if data[pos : pos + 2] == b"s:":  # the common case, inline and with a simple pattern
                token = _PHP_PLAIN_STRING.match(data, pos)
                if token is None:
                    raise _NotSerialized
                head, start = pos, token.end()
                stop = start + int(token[1])
                if data[stop : stop + 2] != b'";':
                    raise _NotSerialized
                pos = stop + 2
                content = data[start:stop]
                for search in searches:
                    if search in content:
                        new, count = self.rewrite(content)  # it may be serialized itself
                        total += count
                        if new != content:
                            edits.append((head, pos, b's:%d:"%s";' % (len(new), new)))
                        break
                if not expected:
                    break
                expected[-1] -= 1
                continue
            token = _PHP_TOKEN.match(data, pos)
            if token is None:
                raise _NotSerialized
            if expected and expected[-1] % 2 == 0 and data[pos] not in _PHP_KEY_TYPES:
                raise _NotSerialized
            head, pos = pos, token.end()
            if token["items"] is not None:
                expected.append(2 * int(token["items"]))
                continue
            if token["string"] is not None:
                pos, count = self._string(data, head, pos, int(token["length"]), edits)
                total += count
            elif token["object"] is not None:
                name_end = pos + int(token["name_length"])
                body = _PHP_OBJECT_BODY.match(data, name_end)
                if body is None:
                    raise _NotSerialized
                if data[head] == ord("O"):
                    pos = body.end()
                    expected.append(2 * int(body[1]))
                    continue
                pos, count = self._custom_object(data, head, body, edits)
                total += count
            if not expected:
                break
            expected[-1] -= 1
        if pos != len(data):
            raise _NotSerialized
        return _splice(data, edits), total

    def _string(
        self, data: bytes, head: int, start: int, length: int, edits: list[tuple[int, int, bytes]]
    ) -> tuple[int, int]:
        kind = data[head]
        if kind == ord("S"):
            content, stop = _php_escaped_string(data, start, length)
        else:
            stop = start + length
            content = data[start:stop]
        if data[stop : stop + 2] != b'";':
            raise _NotSerialized
        end = stop + 2
        if kind == ord("E"):  # an enum case: Class:Case, never rewritten
            return end, 0
        for search in self.searches:
            if search in content:
                break
        else:
            return end, 0
        new, count = self.rewrite(content)  # a string may itself be serialized: recurse
        if new != content:
            edits.append((head, end, b's:%d:"%s";' % (len(new), new)))
        return end, count

    def _custom_object(
        self, data: bytes, head: int, body: re.Match[bytes], edits: list[tuple[int, int, bytes]]
    ) -> tuple[int, int]:
        """C:N:"Class":N:{payload}, written by a class's own Serializable::serialize()."""
        start = body.end()
        stop = start + int(body[1])
        if data[stop : stop + 1] != b"}":
            raise _NotSerialized
        payload = data[start:stop]
        new, count = self.rewrite(payload)
        if new != payload:
            prefix = data[head : body.start()]
            edits.append((head, stop + 1, b'%s":%d:{%s}' % (prefix, len(new), new)))
        return stop + 1, count


def _php_escaped_string(data: bytes, start: int, length: int) -> tuple[bytes, int]:
    """The content of an S:N:"..." string (\\xx hex escapes count as one byte) and its end."""
    content = bytearray()
    pos = start
    for _ in range(length):
        if pos >= len(data):
            raise _NotSerialized
        if data[pos] == ord("\\"):
            digits = data[pos + 1 : pos + 3]
            if len(digits) != 2 or not _PHP_HEX.issuperset(digits):
                raise _NotSerialized
            content.append(int(digits, 16))
            pos += 3
        else:
            content.append(data[pos])
            pos += 1
    return bytes(content), pos


def _splice(data: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    """data with each (start, end) span replaced; the spans are ordered and disjoint."""
    if not edits:
        return data
    pieces: list[bytes] = []
    last = 0
    for start, end, new in edits:
        pieces += (data[last:start], new)
        last = end
    pieces.append(data[last:])
    return b"".join(pieces)


# Exactly what PHP's trim() removes, each written plainly and as a dump's escape.
_ESCAPED_WHITESPACE = (*(bytes((c,)) for c in _PHP_WHITESPACE), b"\\n", b"\\r", b"\\t", b"\\0")


def _strip_escaped_whitespace(body: bytes) -> bytes:
    """*body* (as a dump writes a literal) without the whitespace PHP's trim() removes,
    written plainly or as escapes, at either end."""
    changed = True
    while changed and body:
        changed = False
        for item in _ESCAPED_WHITESPACE:
            if body.startswith(item):
                body, changed = body[len(item) :], True
            if body.endswith(item) and not body.endswith(b"\\" + item):
                body, changed = body[: -len(item)], True
    return body


@functools.lru_cache(maxsize=16)
def _rewriter(pairs: tuple[tuple[bytes, bytes], ...]) -> _Rewriter:
    return _Rewriter(pairs)


def replace_value(value: bytes, pairs: Sequence[tuple[bytes, bytes]]) -> tuple[bytes, int]:
    """Replace in one unescaped value; PHP-serialized aware; returns (new value, count).

    Every pair is applied in order, to the plain text and, when the search string holds a
    "/", to its JSON-escaped form ("\\/"). Valid serialize() output is rewritten string by
    string with the byte lengths recomputed; anything else gets the plain replacement.
    """
    rewriter = _rewriter(tuple(pairs))
    try:
        return rewriter.rewrite(value)
    finally:
        rewriter.hosts.clear()


# --- escaping -------------------------------------------------------------------------------

_MYSQL_UNESCAPES = {
    b"0": b"\0",
    b"b": b"\b",
    b"n": b"\n",
    b"r": b"\r",
    b"t": b"\t",
    b"Z": b"\x1a",
    b"%": b"\\%",  # MySQL keeps the backslash of \% and \_ (they are LIKE escapes)
    b"_": b"\\_",
}
_MYSQL_ESCAPE_SEQUENCE = re.compile(rb"\\(.)|''", re.DOTALL)


def _mysql_unescape(text: bytes) -> bytes:
    if b"\\" not in text and b"''" not in text:
        return text
    if b"\\\\" not in text and b"''" not in text:
        # Without an escaped backslash every backslash starts a two-byte escape, so the
        # common escapes can be undone in C; anything else left goes the general way.
        plain = (
            text.replace(b'\\"', b'"')
            .replace(b"\\'", b"'")
            .replace(b"\\n", b"\n")
            .replace(b"\\r", b"\r")
            .replace(b"\\t", b"\t")
            .replace(b"\\0", b"\0")
        )
        if b"\\" not in plain:
            return plain
    return _MYSQL_ESCAPE_SEQUENCE.sub(_mysql_unescape_one, text)


def _mysql_unescape_one(match: re.Match[bytes]) -> bytes:
    char = match[1]
    if char is None:
        return b"'"
    return _MYSQL_UNESCAPES.get(char, char)


def _mysql_escape(value: bytes) -> bytes:
    """mysqldump's escaping (mysql_real_escape_string)."""
    return (
        value.replace(b"\\", b"\\\\")
        .replace(b"\0", b"\\0")
        .replace(b"\n", b"\\n")
        .replace(b"\r", b"\\r")
        .replace(b"'", b"\\'")
        .replace(b'"', b'\\"')
        .replace(b"\x1a", b"\\Z")
    )


_COPY_UNESCAPES = {b"b": b"\b", b"f": b"\f", b"n": b"\n", b"r": b"\r", b"t": b"\t", b"v": b"\v"}
_COPY_ESCAPE_SEQUENCE = re.compile(rb"\\(?:([0-7]{1,3})|x([0-9A-Fa-f]{1,2})|(.))", re.DOTALL)


def _copy_unescape(text: bytes) -> bytes:
    if b"\\" not in text:
        return text
    return _COPY_ESCAPE_SEQUENCE.sub(_copy_unescape_one, text)


def _copy_unescape_one(match: re.Match[bytes]) -> bytes:
    octal, hexadecimal, char = match.groups()
    if octal is not None:
        return bytes((int(octal, 8) & 0xFF,))
    if hexadecimal is not None:
        return bytes((int(hexadecimal, 16),))
    return _COPY_UNESCAPES.get(char, char)


def _copy_escape(value: bytes) -> bytes:
    """PostgreSQL's COPY text escaping (CopyAttributeOutText); other control bytes stay raw."""
    return (
        value.replace(b"\\", b"\\\\")
        .replace(b"\b", b"\\b")
        .replace(b"\f", b"\\f")
        .replace(b"\n", b"\\n")
        .replace(b"\r", b"\\r")
        .replace(b"\t", b"\\t")
        .replace(b"\v", b"\\v")
    )


def _standard_unescape(text: bytes) -> bytes:
    return text.replace(b"''", b"'")


def _standard_escape(value: bytes) -> bytes:
    return value.replace(b"'", b"''")


# --- lines of a dump ------------------------------------------------------------------------


class _Finder:
    """The next occurrence of any of several byte strings, each searched once per region."""

    def __init__(self, data: bytes, needles: Iterable[bytes]) -> None:
        self._data = data
        found = ((needle, data.find(needle)) for needle in needles)
        self._next = {needle: at for needle, at in found if at >= 0}

    def next(self, pos: int) -> int:
        """The first position >= pos where a needle starts, or -1."""
        best = -1
        for needle, found in list(self._next.items()):
            if found < pos:
                found = self._data.find(needle, pos)
                if found < 0:
                    del self._next[needle]
                    continue
                self._next[needle] = found
            if best < 0 or found < best:
                best = found
        return best


class _Lines:
    """What one dialect does with the lines worth a look; also its state between lines."""

    keywords: ClassVar[tuple[bytes, ...]]  # statements whose lines change the state
    # Bytes that can follow a backslash in this dialect's escaped literals (and the
    # backslash itself); a literal that is never escaped has none.
    escape_letters: ClassVar[frozenset[bytes]] = frozenset()
    # A quoted string literal (group 1: its body), for the default next_literal.
    literal: ClassVar[re.Pattern[bytes]]

    def __init__(
        self, rewriter: _Rewriter, skip_columns: frozenset[bytes], counts: dict[str, int]
    ) -> None:
        self.rewriter = rewriter
        self.needles = self._needles(rewriter.searches)
        # The forms (search, replacement) escaped as the dump writes literals. When no
        # escaped search starts with a backslash or with a letter that follows one in an
        # escape, a match can never begin inside an escape sequence, so plain values can be
        # rewritten without decoding them: the same result, much faster.
        escaped = [(self.escape(a), self.escape(b)) for a, b in rewriter.forms]
        safe = all(a[:1] not in self.escape_letters for a, _ in escaped)
        # Whole hosts need the lookarounds of _Rewriter, so they take the decoding path.
        direct = safe and not rewriter.whole_hosts
        self.direct: tuple[tuple[bytes, bytes], ...] = tuple(escaped) if direct else ()
        # A literal where a search string may be part of a longer host name takes the
        # decoding path too, where the place is found and counted once.
        lookalikes = [p.pattern for a, _ in escaped if (p := _lookalike_pattern(a)) is not None]
        self.direct_lookalike = re.compile(b"|".join(lookalikes)) if lookalikes else None
        self.markers = tuple(dict.fromkeys((*self.needles, *self.keywords)))
        self.skip_columns = skip_columns
        self.counts = counts
        self.columns: dict[bytes, list[bytes]] = {}
        # The table whose CREATE TABLE column list is being read: every line matters then.
        self.creating: bytes | None = None
        # With locate (a dry run), every rewritten value knows its column and row, and is
        # held against the column's limit: (table, column) -> (characters, bytes).
        self.locate = False
        self.limits: dict[tuple[bytes, bytes], tuple[int | None, int | None]] = {}
        self.lookalikes: list[str] = []  # the first PLACES places, named
        self.too_long: list[str] = []  # the first PLACES values longer than their column
        self.too_long_count = 0

    def _needles(self, searches: Sequence[bytes]) -> tuple[bytes, ...]:
        """Every form a search string can take in the dump's text."""
        raise NotImplementedError

    def line(self, line: bytes) -> bytes:
        """The line (with its newline) as it goes out."""
        raise NotImplementedError

    def unescape(self, body: bytes) -> bytes:
        raise NotImplementedError

    def escape(self, value: bytes) -> bytes:
        raise NotImplementedError

    def is_not_text(self, line: bytes, start: int) -> bool:
        """Whether the literal at start is binary or escaped in a way this does not read."""
        raise NotImplementedError

    def count(self, table: bytes, count: int) -> None:
        if count:
            name = table.decode("utf-8", "replace")
            self.counts[name] = self.counts.get(name, 0) + count

    def note(
        self,
        table: bytes,
        columns: Sequence[bytes],
        column: int | None,
        key: Callable[[], str | None],
        changed: bytes | None,
    ) -> None:
        """Name the places of the value just rewritten: the longer host names the rewriter
        found in it, and (*changed*: its new text) a value longer than its column."""
        hosts = self.rewriter.hosts
        name = None
        if column is not None:
            name = columns[column] if column < len(columns) else b"column %d" % (column + 1)
        excess = None
        if changed is not None and name is not None:
            excess = self.excess(table, name, changed)
        if not hosts and excess is None:
            return
        place = table.decode("utf-8", "replace")
        if name is not None:
            place += "." + name.decode("utf-8", "replace")
        row = key()
        if row is not None:
            first = columns[0].decode("utf-8", "replace") if columns else "the first column"
            place += f" where {first} = {row}"
        for host in hosts:
            if len(self.lookalikes) < PLACES:
                self.lookalikes.append(f"{host.decode('utf-8', 'replace')} in {place}")
        hosts.clear()
        if excess is not None:
            self.too_long_count += 1
            if len(self.too_long) < PLACES:
                self.too_long.append(f"{place}: {excess}")

    def excess(self, table: bytes, column: bytes, value: bytes) -> str | None:
        """How *value* exceeds the column's limit, or None when it fits (or none is known)."""
        limit = self.limits.get((table, column.lower()))
        if limit is None:
            return None
        characters, octets = limit
        length = len(value.decode("utf-8", "replace"))
        if characters is not None and length > characters:
            return f"{length} characters after the rewrite, the column holds {characters}"
        if octets is not None and len(value) > octets:
            return f"{len(value)} bytes after the rewrite, the column holds {octets}"
        return None

    def row_key(self, text: bytes, row: int) -> str | None:
        """The first value of the row whose "(" is at *row* in *text*, as SQL writes it."""
        if row < 0:
            return None
        if text[row + 1 : row + 2] == b"'":
            span = self.next_literal(text, row + 1)
            if span is None:
                return None
            value = self.unescape(text[span[0] + 1 : span[1] - 1])
            return "'" + _shortened(value) + "'"
        found = _FIRST_VALUE.match(text, row + 1)
        return _shortened(found[0].strip()) if found else None

    def skipped(self, columns: Sequence[bytes]) -> frozenset[int]:
        """Positions of the columns whose values are never changed."""
        if not self.skip_columns:
            return frozenset()
        return frozenset(i for i, name in enumerate(columns) if name.lower() in self.skip_columns)

    def rewrite_tuples(
        self,
        text: bytes,
        pos: int,
        table: bytes,
        columns: Sequence[bytes],
        skipped: frozenset[int] | None = None,
    ) -> bytes:
        """Rewrite the string literals of the rows of a VALUES list that starts at pos.

        *text* is one line, or several lines holding one row each. Only literals that
        hold a needle are decoded; lines before the next needle are not even scanned
        (a literal never holds a raw newline, so a line start is outside any literal).
        """
        if skipped is None:
            skipped = self.skipped(columns)
        finder = _Finder(text, self.needles)
        hit = finder.next(pos)
        if hit < 0:
            return text
        locate = self.locate
        track = locate or bool(skipped)  # the column (and row) of each literal
        direct = () if locate else self.direct
        escape, next_literal, rewriter = self.escape, self.next_literal, self.rewriter
        pieces: list[bytes] = []
        last = total = column = 0
        row = -1  # where the row of the literal starts, its "("
        gap = pos  # where the text between literals (numbers, NULL, "),(") starts
        while hit >= 0:
            line_start = text.rfind(b"\n", pos, hit) + 1
            if line_start > pos:  # rows without a needle are passed by
                pos = gap = line_start
            span = next_literal(text, pos)
            if span is None:
                break
            start, end = span
            if track:
                column, row = _position(text, gap, start, column, row)
                gap = end
            pos = end
            if end <= hit:
                continue  # a literal before the needle: no needle in it
            if start > hit:  # the needle was outside any literal
                hit = finder.next(start)
                if not start <= hit < end:
                    continue
            hit = finder.next(end)
            if column in skipped or self.is_not_text(text, start):
                continue
            body = text[start + 1 : end - 1]
            core = _strip_escaped_whitespace(body)
            if (
                direct
                and not (core.startswith(_PHP_CONTAINERS) and core.endswith(_PHP_ENDS))
                and not (self.direct_lookalike and self.direct_lookalike.search(body))
            ):
                # Plain text: replaced in its escaped form, without decoding (see __init__).
                new = body
                for search, replacement in direct:
                    found = new.count(search)
                    if found:
                        new = new.replace(search, replacement)
                        total += found
                if new != body:
                    pieces += (text[last:start], b"'", new, b"'")
                    last = end
                continue
            value = self.unescape(body)
            new, count = rewriter.rewrite(value)
            total += count
            if locate or rewriter.hosts:
                self.note(
                    table,
                    columns,
                    column if track else None,
                    functools.partial(self.row_key, text, row),
                    new if new != value else None,
                )
            if new != value:
                pieces += (text[last:start], b"'", escape(new), b"'")
                last = end
        self.count(table, total)
        if not pieces:
            return text
        pieces.append(text[last:])
        return b"".join(pieces)

    def region_end(self, block: bytes, start: int) -> int:
        """The end of what :meth:`line` takes from *block* at *start*: its line."""
        return block.find(b"\n", start) + 1 or len(block)

    def next_literal(self, text: bytes, pos: int) -> tuple[int, int] | None:
        """(start, end) of the next quoted string literal from pos on, quotes included."""
        literal = self.literal.search(text, pos)
        return literal.span() if literal else None

    def read_column(self, line: bytes, column: re.Pattern[bytes]) -> None:
        """One line of the CREATE TABLE being read."""
        assert self.creating is not None
        if line.startswith(b")"):
            self.creating = None
            return
        found = column.match(line)
        if found:
            self.columns[self.creating].append(unquote(found[1]))


class _MariaDB(_Lines):
    """mysqldump output: CREATE TABLE gives column order. An INSERT is one line, or (as
    MariaDB 10.11's mariadb-dump writes it) a ``VALUES`` line followed by one line per row."""

    keywords = (b"CREATE TABLE", b"INSERT ", b"REPLACE ")
    escape_letters = frozenset(bytes([c]) for c in b"\\0bnrtZ'\"%_")

    def __init__(
        self, rewriter: _Rewriter, skip_columns: frozenset[bytes], counts: dict[str, int]
    ) -> None:
        super().__init__(rewriter, skip_columns, counts)
        # The table and columns of the last INSERT, for its rows on the lines that follow.
        self.inserting: tuple[bytes, list[bytes], frozenset[int]] | None = None

    def _needles(self, searches: Sequence[bytes]) -> tuple[bytes, ...]:
        return tuple(dict.fromkeys(n for s in searches for n in (s, _mysql_escape(s))))

    def line(self, line: bytes) -> bytes:
        if self.creating is not None:
            self.read_column(line, MYSQL_COLUMN)
        elif line.startswith((b"INSERT", b"REPLACE")):
            insert = MYSQL_INSERT.match(line)
            if insert:
                table = unquote(insert[1])
                if insert[2] is not None:
                    columns = [unquote(name) for name in MYSQL_NAME.findall(insert[2])]
                else:
                    columns = self.columns.get(table, [])
                skipped = self.skipped(columns)
                self.inserting = (table, columns, skipped)
                return self.rewrite_tuples(line, insert.end(), table, columns, skipped)
        elif line.startswith(b"(") and self.inserting is not None:
            table, columns, skipped = self.inserting
            return self.rewrite_tuples(line, 0, table, columns, skipped)
        else:
            create = MYSQL_CREATE.match(line)
            if create:
                self.creating = unquote(create[1])
                self.columns[self.creating] = []
        return line

    def next_literal(self, text: bytes, pos: int) -> tuple[int, int] | None:
        # What the literal pattern finds, but scanned with bytes.find: several times faster
        # on long values (each quote is one step, not each byte).
        find = text.find
        start = find(b"'", pos)
        if start < 0:
            return None
        at = start + 1
        while True:
            quote = find(b"'", at)
            if quote < 0:
                return None  # not terminated: not a dump line worth rewriting
            backslash = quote
            while backslash > at and text[backslash - 1] == 0x5C:
                backslash -= 1
            if (quote - backslash) % 2:
                at = quote + 1  # \' inside the literal
            elif text[quote + 1 : quote + 2] == b"'":
                at = quote + 2  # '' inside the literal
            else:
                return start, quote + 1

    def region_end(self, block: bytes, start: int) -> int:
        # An INSERT, and the rows of one: up to the end of the statement (or of the block)
        # in one piece, so a statement with a row per line costs one call, not one a row.
        if block.startswith((b"INSERT", b"REPLACE"), start) or (
            self.inserting is not None and block.startswith(b"(", start)
        ):
            end = block.find(b";\n", start)
            return end + 2 if end >= 0 else len(block)
        return super().region_end(block, start)

    def unescape(self, body: bytes) -> bytes:
        return _mysql_unescape(body)

    def escape(self, value: bytes) -> bytes:
        return _mysql_escape(value)

    def is_not_text(self, line: bytes, start: int) -> bool:
        return line[max(0, start - 8) : start].rstrip().endswith(b"_binary")


class _Postgres(_Lines):
    """pg_dump plain output: COPY blocks (and single-line INSERT statements)."""

    keywords = (b"COPY ", b"CREATE ", b"\\.")
    escape_letters = frozenset((b"'",))  # standard strings only double their quotes
    literal = re.compile(rb"'([^']*(?:''[^']*)*)'")

    def __init__(
        self, rewriter: _Rewriter, skip_columns: frozenset[bytes], counts: dict[str, int]
    ) -> None:
        super().__init__(rewriter, skip_columns, counts)
        # The table of the COPY block being read and the positions of its skipped columns.
        self.copying: tuple[bytes, list[bytes], frozenset[int]] | None = None

    def _needles(self, searches: Sequence[bytes]) -> tuple[bytes, ...]:
        return tuple(
            dict.fromkeys(n for s in searches for n in (s, _copy_escape(s), _standard_escape(s)))
        )

    def line(self, line: bytes) -> bytes:
        if self.copying is not None:
            return self.copy_row(line)
        if self.creating is not None:
            self.read_column(line, PG_COLUMN)
        elif line.startswith(b"COPY "):
            copy = PG_COPY.match(line)
            if copy:
                table = pg_name(copy[1])
                columns = pg_names(copy[2]) if copy[2] is not None else self.columns.get(table)
                self.copying = (table, columns or [], self.skipped(columns or []))
        elif line.startswith(b"INSERT "):
            insert = PG_INSERT.match(line)
            if insert:
                table = pg_name(insert[1])
                if insert[2] is not None:
                    columns = pg_names(insert[2])
                else:
                    columns = self.columns.get(table, [])
                return self.rewrite_tuples(line, insert.end(), table, columns)
        elif line.startswith(b"CREATE "):
            create = PG_CREATE.match(line)
            if create:
                self.creating = pg_name(create[1])
                self.columns[self.creating] = []
        return line

    def copy_row(self, line: bytes) -> bytes:
        assert self.copying is not None
        row = line[:-1] if line.endswith(b"\n") else line
        if row == b"\\.":
            self.copying = None
            return line
        if not any(needle in row for needle in self.needles):
            return line
        table, columns, skipped = self.copying
        fields = row.split(b"\t")
        first = fields[0]

        def key() -> str:
            return _shortened(_copy_unescape(first))

        total = 0
        changed = False
        for index, field in enumerate(fields):
            if index in skipped or field == b"\\N":
                continue
            if not any(needle in field for needle in self.needles):
                continue
            value = _copy_unescape(field)
            new, count = self.rewriter.rewrite(value)
            total += count
            if self.locate or self.rewriter.hosts:
                self.note(table, columns, index, key, new if new != value else None)
            if new != value:
                fields[index] = _copy_escape(new)
                changed = True
        self.count(table, total)
        if not changed:
            return line
        return b"\t".join(fields) + line[len(row) :]

    def unescape(self, body: bytes) -> bytes:
        return _standard_unescape(body)

    def escape(self, value: bytes) -> bytes:
        return _standard_escape(value)

    def is_not_text(self, line: bytes, start: int) -> bool:
        # E'...' (backslash escapes), U&'...', B'...', X'...': not plain standard strings.
        before = line[start - 1 : start]
        return before.isalpha() or before == b"&"


def _position(line: bytes, gap: int, start: int, column: int, row: int) -> tuple[int, int]:
    """The column of the literal at start and where its row starts (its "("), from the
    text since the previous literal (in *column* and *row*).

    Dumps have no parentheses outside literals but those around each row.
    """
    opened = line.rfind(b"(", gap, start)
    if opened >= 0:
        return line.count(b",", opened, start), opened
    return column + line.count(b",", gap, start), row


_FIRST_VALUE = re.compile(rb"[^,)]*")


def _shortened(value: bytes, size: int = 40) -> str:
    text = value.decode("utf-8", "replace")
    return text if len(text) <= size else text[: size - 1] + "…"


# --- the stream -----------------------------------------------------------------------------


class Replacer:
    """Rewrites strings in a SQL dump stream (MariaDB/MySQL mysqldump output or PostgreSQL
    pg_dump plain output).

    Feed it the dump in chunks of any size; it returns the transformed bytes that are ready,
    holding back only the current unfinished line. ``counts`` has the replacements made per
    table (``wp_posts``; for PostgreSQL with its schema, ``public.wp_posts``). Columns named in
    ``skip_columns`` (any table, any case) are never changed.
    """

    def __init__(
        self,
        pairs: Sequence[tuple[str, str]],
        *,
        dialect: str = "mariadb",
        skip_columns: Collection[str] = (),
        whole_hosts: bool = False,
    ) -> None:
        rewriter = _Rewriter(
            [(search.encode(), new.encode()) for search, new in pairs], whole_hosts
        )
        self._rewriter = rewriter
        skip = frozenset(name.lower().encode() for name in skip_columns)
        self.counts: dict[str, int] = {}
        self._lines: _Lines
        if dialect in ("mariadb", "mysql"):
            self._lines = _MariaDB(rewriter, skip, self.counts)
        elif dialect in ("postgres", "postgresql"):
            self._lines = _Postgres(rewriter, skip, self.counts)
        else:
            raise ValueError(f"unknown dialect {dialect!r} (expected 'mariadb' or 'postgres')")
        self._pending: list[bytes] = []  # the current line, not yet complete

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def longer_hosts(self) -> int:
        """Places where a search string is part of a longer host name (shop.ch in
        shop.chocolate.com or cdn.shop.ch), each counted once: left alone with
        ``whole_hosts``, rewritten without it."""
        return self._rewriter.longer_hosts

    @property
    def lookalikes(self) -> list[str]:
        """The first :data:`PLACES` of those places: host, table, column and row."""
        return self._lines.lookalikes

    @property
    def too_long(self) -> list[str]:
        """The first :data:`PLACES` rewritten values longer than their column (see
        :meth:`watch_lengths`), each with table, column, row and the lengths."""
        return self._lines.too_long

    @property
    def too_long_count(self) -> int:
        return self._lines.too_long_count

    def watch_lengths(
        self, limits: Mapping[tuple[str, str], tuple[int | None, int | None]]
    ) -> None:
        """Name the place of each look-alike host, and hold every rewritten value against
        its column's limit, *limits*: (table as the dump names it, column) -> (characters,
        bytes), None where there is none. Slower; for a dry run."""
        lines = self._lines
        lines.locate = True
        lines.limits = {
            (table.encode(), column.lower().encode()): limit
            for (table, column), limit in limits.items()
        }

    def feed(self, chunk: bytes) -> bytes:
        """The transformed bytes ready to write (b"" while a line is still being read)."""
        cut = chunk.rfind(b"\n") + 1
        if not cut:
            if chunk:
                self._pending.append(chunk)
            return b""
        if self._pending:
            self._pending.append(chunk[:cut])
            block = b"".join(self._pending)
            self._pending.clear()
        else:
            block = chunk if cut == len(chunk) else chunk[:cut]
        if cut < len(chunk):
            self._pending.append(chunk[cut:])
        return self._transform(block)

    def finish(self) -> bytes:
        """The rest: the last line when the dump does not end with a newline."""
        block = b"".join(self._pending)
        self._pending.clear()
        return self._transform(block) if block else b""

    def _transform(self, block: bytes) -> bytes:
        """Complete lines in, complete lines out; only lines with a marker are looked at."""
        lines = self._lines
        finder = _Finder(block, lines.markers)
        pieces: list[bytes] = []
        pos = 0
        size = len(block)
        while pos < size:
            if lines.creating is not None:
                start = pos
            else:
                hit = finder.next(pos)
                if hit < 0:
                    break
                start = max(pos, block.rfind(b"\n", pos, hit) + 1)
            stop = lines.region_end(block, start)
            if start > pos:
                pieces.append(block[pos:start])
            pieces.append(lines.line(block[start:stop]))
            pos = stop
        if not pieces:
            return block
        pieces.append(block[pos:])
        return b"".join(pieces)


class TransformedReader(io.BufferedIOBase):
    """A read-only binary file object: read(n) returns transformed bytes of *raw* (an IO[bytes]).

    Closing it does not close *raw*.
    """

    def __init__(self, raw: IO[bytes], replacer: Transform, *, read_size: int = READ_SIZE) -> None:
        super().__init__()
        self._raw = raw
        self._replacer = replacer
        self._read_size = read_size
        self._buffer = bytearray()
        self._done = False

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if self.closed:
            raise ValueError("read of closed file")
        if size is None or size < 0:
            while not self._done:
                self._fill()
            size = len(self._buffer)
        else:
            while len(self._buffer) < size and not self._done:
                self._fill()
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def read1(self, size: int = -1) -> bytes:
        if self.closed:
            raise ValueError("read of closed file")
        while not self._buffer and not self._done:
            self._fill()
        if size < 0:
            size = len(self._buffer)
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def _fill(self) -> None:
        chunk = self._raw.read(self._read_size)
        if chunk:
            self._buffer += self._replacer.feed(chunk)
        else:
            self._buffer += self._replacer.finish()
            self._done = True
