"""The dump ledger (opskit.dumps): row counts read from a dump as it streams, strict mode
for MariaDB loads, and errors traced back to their table (#10)."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from opskit import databases
from opskit.descriptor import Database
from opskit.dumps import DumpLedger, TarLedger

# As MariaDB 10.11's mariadb-dump writes it: a VALUES line, then one line a row.
MARIADB_ROWS = b"""\
/*M!999999\\- enable the sandbox mode */
-- MariaDB dump 10.19  Distrib 10.11.18-MariaDB
/*!40101 SET @OLD_SQL_MODE=@@SQL_MODE, SQL_MODE='NO_AUTO_VALUE_ON_ZERO' */;
DROP TABLE IF EXISTS `wp_users`;
CREATE TABLE `wp_users` (
  `ID` bigint(20) NOT NULL,
  `user_url` varchar(100) NOT NULL DEFAULT '',
  PRIMARY KEY (`ID`)
) ENGINE=InnoDB;
CREATE TABLE `empty` (
  `x` int
);
LOCK TABLES `wp_users` WRITE;
INSERT INTO `wp_users` VALUES
(1,'https://a.test'),
(2,'b\\\\),(\\'x;'),
(3,NULL);
INSERT INTO `wp_users` VALUES
(4,'d');
UNLOCK TABLES;
/*!50001 CREATE VIEW `v` AS SELECT 1 AS `a` */;
"""

# As mysqldump (MySQL, older MariaDB) writes it: one extended INSERT a line.
MYSQL_LINES = b"""\
/*!40101 SET @OLD_SQL_MODE=@@SQL_MODE, SQL_MODE='NO_AUTO_VALUE_ON_ZERO' */;
CREATE TABLE `t` (
  `a` int,
  `b` text
);
INSERT INTO `t` VALUES (1,'x),(y'),(2,'it\\'s (not) a row'),(3,'\\\\'),(4,NULL);
INSERT INTO `t` VALUES (5,0x28292C28);
"""

PG_DUMP = b"""\
CREATE TABLE public."Odd Name" (
    a integer
);
CREATE TABLE public.t (
    id integer,
    s text
);
COPY public."Odd Name" (a) FROM stdin;
\\.
COPY public.t (id, s) FROM stdin;
1\ta\\tb\\nc
2\t\\N
3\t\\\\.
\\.
INSERT INTO public.t VALUES (4, 'it''s (a) value');
"""


def fed(dump: bytes, dialect: str, size: int, strict: bool = False) -> tuple[DumpLedger, bytes]:
    ledger = DumpLedger(dialect, strict=strict)
    out = b"".join(ledger.feed(dump[i : i + size]) for i in range(0, len(dump), size))
    return ledger, out + ledger.finish()


@pytest.mark.parametrize("size", [1, 5, 64, 1 << 20])
def test_rows_are_counted_in_chunks_of_any_size(size: int) -> None:
    ledger, out = fed(MARIADB_ROWS, "mariadb", size)
    assert ledger.rows == {"wp_users": 4, "empty": 0}  # the view is not a table
    assert out == MARIADB_ROWS
    ledger, _ = fed(MYSQL_LINES, "mysql", size)
    assert ledger.rows == {"t": 5}
    ledger, _ = fed(PG_DUMP, "postgres", size)
    assert ledger.rows == {"public.Odd Name": 0, "public.t": 4}


def test_a_dump_without_a_final_newline_is_counted() -> None:
    ledger, _ = fed(MYSQL_LINES.rstrip(b"\n"), "mariadb", 7)
    assert ledger.rows == {"t": 5}


@pytest.mark.parametrize("size", [1, 3, 1 << 20])
def test_a_load_switches_strict_mode_on_and_keeps_line_numbers(size: int) -> None:
    ledger, out = fed(MARIADB_ROWS, "mariadb", size, strict=True)
    assert ledger.strict
    assert b"SQL_MODE='NO_AUTO_VALUE_ON_ZERO,STRICT_ALL_TABLES'" in out
    assert out.count(b"\n") == MARIADB_ROWS.count(b"\n")
    assert out.replace(b",STRICT_ALL_TABLES", b"") == MARIADB_ROWS
    ledger, out = fed(PG_DUMP, "postgres", size, strict=True)
    assert out == PG_DUMP  # PostgreSQL is strict already


def test_an_error_names_table_and_row_in_the_dump() -> None:
    ledger, _ = fed(MARIADB_ROWS, "mariadb", 1 << 20, strict=True)
    line = MARIADB_ROWS.split(b"\n").index(b"INSERT INTO `wp_users` VALUES", 15) + 1
    message = f"ERROR 1406 (22001) at line {line}: Data too long for column 'user_url' at row 1"
    assert ledger.explain(message) == (
        f"table wp_users, row 4 of the dump: Data too long for column 'user_url' (line {line})"
    )
    assert ledger.explain("ERROR 2013 (HY000): Lost connection") == (
        "ERROR 2013 (HY000): Lost connection"
    )


def test_client_errors_are_one_line_without_the_statement_or_the_value() -> None:
    database = Database(service="db", type="postgres", name="app")
    stderr = (
        "psql:<stdin>:57: ERROR:  value too long for type character varying(40)\n"
        'CONTEXT:  COPY users, line 3, column url: "https://secret.example/very/long"\n'
    )
    error = databases.client_error(database, "dev-db", 3, stderr)
    assert str(error) == (
        "postgres app in dev-db: ERROR:  value too long for type character varying(40) "
        "(COPY users, line 3, column url)"
    )
    mariadb = Database(service="db", type="mariadb", name="app")
    statement = (
        "--------------\nINSERT INTO `t` VALUES\n" + "(1,'x'),\n" * 1000 + "--------------\n"
    )
    stderr = statement + "\nERROR 1406 (22001) at line 3: Data too long for column 's' at row 2\n"
    error = databases.client_error(mariadb, "dev-db", 1, stderr)
    assert "\n" not in str(error) and str(error).endswith("Data too long for column 's' at row 2")


def _tree(path: Path) -> Path:
    (path / "t" / "sub").mkdir(parents=True)
    (path / "t" / "a.txt").write_text("hello")
    (path / "t" / "sub" / ("x" * 150)).write_bytes(os.urandom(100_000))  # a GNU long name
    os.link(path / "t" / "a.txt", path / "t" / "hard")  # no data of its own
    os.symlink("a.txt", path / "t" / "link")
    (path / "t" / "empty").touch()
    return path / "t"


@pytest.mark.parametrize("size", [1, 511, 513, 1 << 20])
def test_tar_ledger_counts_files_and_bytes_of_gnu_tar(tmp_path: Path, size: int) -> None:
    _tree(tmp_path)
    stream = subprocess.run(
        ["tar", "--create", "--file=-", "--numeric-owner", "-C", str(tmp_path), "t"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    ledger = TarLedger()
    for start in range(0, len(stream), size):
        assert ledger.feed(stream[start : start + size]) == stream[start : start + size]
    assert ledger.record() == {"files": 3, "bytes": 100_005}


def test_tar_ledger_reads_pax_sizes(tmp_path: Path) -> None:
    tree = _tree(tmp_path)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        archive.add(tree, arcname="t")
        info = tarfile.TarInfo("big")
        info.size = 10
        info.pax_headers = {"size": "10", "comment": "x" * 600}  # a pax header over a block
        archive.addfile(info, io.BytesIO(b"0123456789"))
    ledger = TarLedger()
    ledger.feed(buffer.getvalue())
    assert ledger.record() == {"files": 4, "bytes": 100_015}
