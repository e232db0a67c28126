"""The dump transform: values (plain, JSON, PHP-serialized), MariaDB and PostgreSQL dumps."""

from __future__ import annotations

import io
import itertools
import random
import shutil
import subprocess
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import examples
from opskit.transform import Replacer, TransformedReader, replace_value

PROD = "https://mdf.example.test"
DEV = "https://dev.mdf.example.test"
PAIRS = [(PROD, DEV)]
BYTE_PAIRS = [(PROD.encode(), DEV.encode())]
PROD_JSON = PROD.replace("/", "\\/")
DEV_JSON = DEV.replace("/", "\\/")


def ser(text: str) -> str:
    """A PHP serialized string, with its length in bytes."""
    return f's:{len(text.encode())}:"{text}";'


def replaced(value: str, pairs: list[tuple[bytes, bytes]] = BYTE_PAIRS) -> tuple[str, int]:
    new, count = replace_value(value.encode(), pairs)
    return new.decode(), count


def transform(
    dump: bytes, sizes: list[int] | None = None, **options: Any
) -> tuple[bytes, Replacer]:
    """The dump through a Replacer, fed whole or in chunks of the given sizes (cycled)."""
    replacer = Replacer(PAIRS, **options)
    pieces: list[bytes] = []
    pos = 0
    for turn in itertools.count():
        if pos >= len(dump):
            break
        size = len(dump) if sizes is None else sizes[turn % len(sizes)]
        pieces.append(replacer.feed(dump[pos : pos + size]))
        pos += size
    out = b"".join(pieces)
    return out + replacer.finish(), replacer


# --- one value ------------------------------------------------------------------------------


def test_plain_text_every_occurrence() -> None:
    assert replaced(f"{PROD}/a and {PROD}.") == (f"{DEV}/a and {DEV}.", 2)


def test_pairs_apply_in_order() -> None:
    pairs = [
        (b"https://mdf.example.test", b"https://x.test"),
        (b"https://x.test", b"https://y.test"),
    ]
    assert replaced(f"{PROD}/", pairs) == ("https://y.test/", 2)


def test_json_escaped_form() -> None:
    value = '{"home":"' + PROD_JSON + '\\/wp","site":"' + PROD + '"}'
    assert replaced(value) == ('{"home":"' + DEV_JSON + '\\/wp","site":"' + DEV + '"}', 2)


def test_json_form_only_for_searches_with_a_slash() -> None:
    # A search without "/" has no JSON form: "\/" in the value is left as it is.
    value = "mdf\\/example"
    assert replaced(value, [(b"mdf/example", b"dev")]) == ("dev", 1)
    assert replaced(value, [(b"mdf", b"dev")]) == ("dev\\/example", 1)


def test_serialized_nested_two_deep_with_an_object() -> None:
    def value(url: str) -> str:
        inner = f"a:2:{{i:0;{ser(url)}i:1;{ser(url + '/x')}}}"
        obj = f'O:8:"stdClass":2:{{{ser("home")}{ser(url)}s:5:"count";i:3;}}'
        return (
            f"a:3:{{{ser('levels')}a:1:{{{ser('two')}{inner}}}{ser('object')}{obj}{ser(url)}b:1;}}"
        )

    assert replaced(value(PROD)) == (value(DEV), 4)


def test_serialized_inside_serialized() -> None:
    def value(url: str) -> str:
        inner = f"a:1:{{{ser('url')}{ser(url)}}}"
        return f"a:2:{{{ser('inner')}{ser(inner)}{ser('twice')}{ser(ser(url))}}}"

    assert replaced(value(PROD)) == (value(DEV), 2)


def test_serialized_multibyte_lengths_are_bytes() -> None:
    def value(url: str) -> str:
        return f"a:1:{{{ser('Zürich ✓')}{ser(f'Grüße {url}/über')}}}"

    assert 's:16:"Grüße https' not in value(PROD)  # the length is not the character count
    assert replaced(value(PROD)) == (value(DEV), 1)


@pytest.mark.parametrize(("old", "new"), [(PROD, DEV), (DEV, PROD)], ids=["longer", "shorter"])
def test_serialized_length_changes(old: str, new: str) -> None:
    value = f"a:2:{{i:0;{ser(old)}i:1;{ser(old + '/a')}}}"
    assert replaced(value, [(old.encode(), new.encode())]) == (
        f"a:2:{{i:0;{ser(new)}i:1;{ser(new + '/a')}}}",
        2,
    )


def test_serialized_json_inside() -> None:
    def value(url: str) -> str:
        json = '{"u":"' + url.replace("/", "\\/") + '"}'
        return f"a:1:{{{ser('json')}{ser(json)}}}"

    assert replaced(value(PROD)) == (value(DEV), 1)


@pytest.mark.parametrize(
    "value",
    [
        f'a:1:{{i:0;s:99:"{PROD}";}}',  # wrong length
        f'a:2:{{i:0;s:24:"{PROD}";}}',  # wrong count
        f'a:1:{{i:0;s:24:"{PROD}";}} trailing',
        f's:24:"{PROD}"',  # no ";"
    ],
)
def test_invalid_serialized_gets_the_plain_replacement(value: str) -> None:
    assert replaced(value) == (value.replace(PROD, DEV), 1)


def test_serialized_keeps_the_untouched_bytes() -> None:
    value = f'a:5:{{s:1:"d";d:0.1000;s:1:"e";d:-1.5E+100;i:-7;N;s:1:"b";b:0;s:{len(PROD)}:"{PROD}";i:+1;}}'
    assert replaced(value) == (value.replace(ser(PROD), ser(DEV)), 1)
    unchanged = f'a:1:{{i:0;s:3:"{PROD[:3]}";}}'.encode()
    assert replace_value(unchanged, BYTE_PAIRS) == (unchanged, 0)


def test_serialized_php8_tokens() -> None:
    def value(url: str) -> str:
        custom = f"a:1:{{i:0;{ser(url)}}}"
        return (
            f'a:5:{{i:0;O:3:"Foo":1:{{{ser("u")}{ser(url)}}}i:1;r:2;i:2;R:3;'
            f'i:3;E:11:"Suit:Hearts";i:4;C:6:"Legacy":{len(custom)}:{{{custom}}}}}'
        )

    assert replaced(value(PROD)) == (value(DEV), 2)


def test_serialized_escaped_string_type() -> None:
    # S: strings (\xx escapes) are rewritten as plain s: strings.
    value = f'a:1:{{i:0;S:26:"\\41 {PROD}";}}'
    assert replaced(value) == (f"a:1:{{i:0;{ser('A ' + DEV)}}}", 1)


# --- MariaDB dumps --------------------------------------------------------------------------

MARIADB_HEADER = b"""-- MariaDB dump 10.19  Distrib 10.11.6-MariaDB, for debian-linux-gnu (x86_64)
--
-- Host: localhost    Database: wordpress -- https://mdf.example.test
-- ------------------------------------------------------
/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;
/*!40101 SET NAMES utf8mb4 */;
"""

WP_POSTS = b"""
DROP TABLE IF EXISTS `wp_posts`;
/*!40101 SET @saved_cs_client     = @@character_set_client */;
CREATE TABLE `wp_posts` (
  `ID` bigint(20) unsigned NOT NULL AUTO_INCREMENT,
  `post_content` longtext NOT NULL,
  `guid` varchar(255) NOT NULL DEFAULT 'https://mdf.example.test',
  `post_title` text NOT NULL,
  `thumbnail` blob,
  PRIMARY KEY (`ID`),
  KEY `post_title` (`post_title`(10)),
  CONSTRAINT `fk` FOREIGN KEY (`ID`) REFERENCES `other` (`id`)
) ENGINE=InnoDB AUTO_INCREMENT=3 DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_520_ci;
/*!40101 SET character_set_client = @saved_cs_client */;
"""

WP_OPTIONS = b"""
CREATE TABLE `wp_options` (
  `option_id` bigint(20) unsigned NOT NULL AUTO_INCREMENT,
  `option_name` varchar(191) NOT NULL DEFAULT '',
  `option_value` longtext NOT NULL,
  `autoload` varchar(20) NOT NULL DEFAULT 'yes',
  PRIMARY KEY (`option_id`),
  UNIQUE KEY `option_name` (`option_name`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
"""


def sql(value: str) -> bytes:
    """A MariaDB string literal as mysqldump writes it."""
    escapes = {"\\": "\\\\", "\0": "\\0", "\n": "\\n", "\r": "\\r", "'": "\\'", '"': '\\"'}
    escapes["\x1a"] = "\\Z"
    return ("'" + "".join(escapes.get(char, char) for char in value) + "'").encode()


def test_mariadb_guid_skipped_by_column_order_from_create_table() -> None:
    insert = (
        b"INSERT INTO `wp_posts` VALUES "
        b"(1,'Hello https://mdf.example.test/','https://mdf.example.test/?p=1',"
        b"'A, (tricky) title: https://mdf.example.test',NULL),"
        b"(2,'','https://mdf.example.test/?p=2','it\\'s, https://mdf.example.test',0x6869);\n"
    )
    out, replacer = transform(MARIADB_HEADER + WP_POSTS + insert, skip_columns={"guid"})
    assert out == MARIADB_HEADER + WP_POSTS + (
        b"INSERT INTO `wp_posts` VALUES "
        b"(1,'Hello https://dev.mdf.example.test/','https://mdf.example.test/?p=1',"
        b"'A, (tricky) title: https://dev.mdf.example.test',NULL),"
        b"(2,'','https://mdf.example.test/?p=2','it\\'s, https://dev.mdf.example.test',0x6869);\n"
    )
    assert replacer.counts == {"wp_posts": 3}


def test_mariadb_one_row_per_line() -> None:
    """MariaDB 10.11's mariadb-dump writes ``VALUES`` alone, then one line per row."""
    insert = (
        b"INSERT INTO `wp_posts` VALUES\n"
        b"(1,'Hello https://mdf.example.test/','https://mdf.example.test/?p=1','t',NULL),\n"
        b"(2,'','https://mdf.example.test/?p=2','https://mdf.example.test',0x6869);\n"
        b"UNLOCK TABLES;\n"
    )
    options = b"INSERT INTO `wp_options` VALUES\n(1,'siteurl','https://mdf.example.test','yes');\n"
    dump = MARIADB_HEADER + WP_POSTS + insert + WP_OPTIONS + options
    out, replacer = transform(dump, skip_columns={"guid"})
    assert out == MARIADB_HEADER + WP_POSTS + (
        b"INSERT INTO `wp_posts` VALUES\n"
        b"(1,'Hello https://dev.mdf.example.test/','https://mdf.example.test/?p=1','t',NULL),\n"
        b"(2,'','https://mdf.example.test/?p=2','https://dev.mdf.example.test',0x6869);\n"
        b"UNLOCK TABLES;\n"
    ) + WP_OPTIONS + options.replace(PROD.encode(), DEV.encode())
    assert replacer.counts == {"wp_posts": 2, "wp_options": 1}
    rng = random.Random(11)
    for _ in range(30):
        sizes = [rng.randint(1, 120) for _ in range(40)]
        assert transform(dump, sizes, skip_columns={"guid"})[0] == out


def test_mariadb_without_skip_columns_guid_changes_too() -> None:
    insert = b"INSERT INTO `wp_posts` VALUES (1,'x','https://mdf.example.test/?p=1','t',NULL);\n"
    out, _ = transform(WP_POSTS + insert)
    assert out == WP_POSTS + insert.replace(PROD.encode(), DEV.encode())


def test_mariadb_named_columns_insert() -> None:
    insert = (
        b"INSERT INTO `wp_posts` (`guid`, `ID`, `post_content`) VALUES "
        b"('https://mdf.example.test/?p=1',1,'https://mdf.example.test'),"
        b"('https://mdf.example.test/?p=2',2,'https://mdf.example.test');\n"
    )
    out, replacer = transform(WP_POSTS + insert, skip_columns={"GUID"})
    assert out == WP_POSTS + (
        b"INSERT INTO `wp_posts` (`guid`, `ID`, `post_content`) VALUES "
        b"('https://mdf.example.test/?p=1',1,'https://dev.mdf.example.test'),"
        b"('https://mdf.example.test/?p=2',2,'https://dev.mdf.example.test');\n"
    )
    assert replacer.total == 2


def test_mariadb_unchanged_literals_stay_byte_identical() -> None:
    # Escapes mysqldump would not write (\%, \t, '') must survive in untouched literals.
    insert = (
        b"INSERT INTO `t` VALUES (1,'100\\% \\t tab','it''s','a\\\\b','https://mdf.example.test',"
        b"'\\'\\\"\\0\\Z'),(2,'https://other.test','',-1.5e3,NULL,0x00FF);\n"
    )
    out, _ = transform(insert)
    assert out == insert.replace(b"'https://mdf.example.test'", b"'https://dev.mdf.example.test'")


def test_mariadb_escapes_around_the_url() -> None:
    before = f"'{PROD}'\n\\\r\"{PROD}\"\0\x1a\t"
    after = before.replace(PROD, DEV)
    insert = b"INSERT INTO `t` VALUES (1,%s);\n" % sql(before)
    assert b"\\'https://mdf.example.test\\'\\n\\\\\\r\\\"" in insert
    out, replacer = transform(insert)
    assert out == b"INSERT INTO `t` VALUES (1,%s);\n" % sql(after)
    assert replacer.total == 2


def test_mariadb_serialized_and_json_values() -> None:
    def options(url: str) -> bytes:
        link = f'<a href="{url}/x">x</a>'
        widget = f"a:1:{{i:2;a:2:{{{ser('title')}{ser('Link')}{ser('text')}{ser(link)}}}}}"
        blocks = '{"url":"' + url.replace("/", "\\/") + '\\/wp"}'
        rows = [
            b"(1,'siteurl',%s,'yes')" % sql(url),
            b"(2,'widget_text',%s,'yes')" % sql(widget),
            b"(3,'blocks',%s,'no')" % sql(blocks),
            b"(4,'elsewhere',%s,'no')" % sql(f"a:1:{{i:0;{ser('https://other.test')}}}"),
        ]
        return b"INSERT INTO `wp_options` VALUES " + b",".join(rows) + b";\n"

    assert b's:42:\\"<a href=\\"https://mdf.example.test/x\\">x</a>\\";' in options(PROD)
    assert b"https:\\\\/\\\\/mdf.example.test" in options(PROD)
    out, replacer = transform(WP_OPTIONS + options(PROD))
    assert out == WP_OPTIONS + options(DEV)
    assert replacer.counts == {"wp_options": 3}


def test_mariadb_non_strings_and_ddl_pass_through() -> None:
    dump = (
        MARIADB_HEADER
        + WP_POSTS
        + b"INSERT INTO `wp_posts` VALUES (1,_binary 'https://mdf.example.test',0x68747470733a2f2f,"
        b"'https://mdf.example.test',NULL);\n"
        b"/*!50003 CREATE TRIGGER x BEFORE INSERT ON t FOR EACH ROW SET @u = 'https://mdf.example.test' */;;\n"
        b"-- Dump completed on 2024-05-01 12:00:00 https://mdf.example.test\n"
    )
    out, replacer = transform(dump)
    assert out == dump.replace(
        b"0x68747470733a2f2f,'https://mdf.example.test'",
        b"0x68747470733a2f2f,'https://dev.mdf.example.test'",
    )
    assert replacer.counts == {"wp_posts": 1}


def test_mariadb_counts_per_table() -> None:
    dump = (
        WP_POSTS
        + b"INSERT INTO `wp_posts` VALUES (1,'https://mdf.example.test https://mdf.example.test','g','t',NULL);\n"
        + WP_OPTIONS
        + b"INSERT INTO `wp_options` VALUES (1,'home','https://mdf.example.test','yes');\n"
        + b"INSERT INTO `wp_options` VALUES (2,'siteurl','https:\\\\/\\\\/mdf.example.test','yes');\n"
        + b"INSERT INTO `wp_users` VALUES (1,'admin','https://other.test');\n"
    )
    _, replacer = transform(dump)
    assert replacer.counts == {"wp_posts": 2, "wp_options": 2}
    assert replacer.total == 4


def test_mariadb_last_line_without_newline() -> None:
    out, _ = transform(b"INSERT INTO `t` VALUES ('https://mdf.example.test');")
    assert out == b"INSERT INTO `t` VALUES ('https://dev.mdf.example.test');"


# --- PostgreSQL dumps -----------------------------------------------------------------------

PG_DUMP = b"""--
-- PostgreSQL database dump
--

SET statement_timeout = 0;
SET client_encoding = 'UTF8';

CREATE TABLE public.wp_posts (
    id bigint NOT NULL,
    post_content text,
    guid character varying(255) DEFAULT 'https://mdf.example.test'::character varying,
    "Meta" text,
    CONSTRAINT positive CHECK ((id > 0))
);

COPY public.wp_posts (id, post_content, guid, "Meta") FROM stdin;
1	Tab\\there https://mdf.example.test\\\\path\\nnext	https://mdf.example.test/?p=1	\\N
2	\\N	https://mdf.example.test/?p=2	{"u":"https:\\\\/\\\\/mdf.example.test"}
3	\\001https://mdf.example.test	g	a:1:{i:0;s:24:"https://mdf.example.test";}
4	nothing here	g	\\N
\\.

-- https://mdf.example.test in a comment stays
COPY public.wp_options (option_id, option_name, option_value) FROM stdin;
1	home	https://mdf.example.test
\\.

INSERT INTO public.wp_posts VALUES (5, 'it''s https://mdf.example.test', 'https://mdf.example.test/?p=5', E'https://mdf.example.test\\n');
INSERT INTO public.wp_posts (guid, id, "Meta") OVERRIDING SYSTEM VALUE VALUES ('https://mdf.example.test/?p=6', 6, 'https://mdf.example.test');
SELECT pg_catalog.setval('public.wp_posts_id_seq', 6, true);
"""

PG_EXPECTED = (
    PG_DUMP.replace(
        b"1\tTab\\there https://mdf.example.test\\\\path\\nnext",
        b"1\tTab\\there https://dev.mdf.example.test\\\\path\\nnext",
    )
    .replace(b"https:\\\\/\\\\/mdf.example.test", b"https:\\\\/\\\\/dev.mdf.example.test")
    .replace(b"\\001https://mdf.example.test", b"\x01https://dev.mdf.example.test")
    .replace(
        b'a:1:{i:0;s:24:"https://mdf.example.test";}',
        b'a:1:{i:0;s:28:"https://dev.mdf.example.test";}',
    )
    .replace(b"home\thttps://mdf.example.test", b"home\thttps://dev.mdf.example.test")
    .replace(b"'it''s https://mdf.example.test'", b"'it''s https://dev.mdf.example.test'")
    .replace(b"6, 'https://mdf.example.test'", b"6, 'https://dev.mdf.example.test'")
)


def test_postgres_copy_and_insert() -> None:
    out, replacer = transform(PG_DUMP, dialect="postgres", skip_columns={"guid"})
    assert out == PG_EXPECTED
    assert replacer.counts == {"public.wp_posts": 6, "public.wp_options": 1}


def test_postgres_copy_escapes_what_pg_escapes() -> None:
    dump = (
        b"COPY public.t (a) FROM stdin;\n"
        + b"x\\\\\\t\\r\\b\\f\\v\\x41\\101 https://mdf.example.test\n\\.\n"
    )
    out, _ = transform(dump, dialect="postgres")
    assert out == dump.replace(
        b"\\x41\\101 https://mdf.example.test", b"AA https://dev.mdf.example.test"
    )


def test_unknown_dialect() -> None:
    with pytest.raises(ValueError, match="dialect"):
        Replacer(PAIRS, dialect="oracle")


# --- streaming ------------------------------------------------------------------------------

MARIADB_DUMP = (
    MARIADB_HEADER
    + WP_POSTS
    + b"INSERT INTO `wp_posts` VALUES (1,'https://mdf.example.test \\'q\\'','https://mdf.example.test',"
    b"'a:1:{i:0;s:24:\\\"https://mdf.example.test\\\";}',NULL),(2,'x','y','z',0x00);\n"
    + WP_OPTIONS
    + b"INSERT INTO `wp_options` VALUES (1,'home','https:\\\\/\\\\/mdf.example.test','yes');\n"
    + b"-- Dump completed"
)


@pytest.mark.parametrize(("dialect", "dump"), [("mariadb", MARIADB_DUMP), ("postgres", PG_DUMP)])
def test_chunk_boundaries_anywhere(dialect: str, dump: bytes) -> None:
    whole, replacer = transform(dump, dialect=dialect, skip_columns={"guid"})
    assert whole != dump
    one_byte, one_byte_replacer = transform(dump, [1], dialect=dialect, skip_columns={"guid"})
    assert one_byte == whole
    assert one_byte_replacer.counts == replacer.counts
    rng = random.Random(7)
    for _ in range(30):
        sizes = [rng.randint(1, 200) for _ in range(20)]
        assert transform(dump, sizes, dialect=dialect, skip_columns={"guid"})[0] == whole


def test_feed_returns_complete_lines_only() -> None:
    replacer = Replacer(PAIRS)
    assert replacer.feed(b"INSERT INTO `t` VALUES ('https://mdf.exa") == b""
    assert (
        replacer.feed(b"mple.test');\n-- tail")
        == b"INSERT INTO `t` VALUES ('https://dev.mdf.example.test');\n"
    )
    assert replacer.finish() == b"-- tail"


def test_transformed_reader() -> None:
    whole, _ = transform(MARIADB_DUMP, skip_columns={"guid"})
    for read_size in (1, 7, 4096):
        reader = TransformedReader(
            io.BytesIO(MARIADB_DUMP), Replacer(PAIRS, skip_columns={"guid"}), read_size=read_size
        )
        pieces = []
        while piece := reader.read(5):
            assert len(piece) <= 5
            pieces.append(piece)
        assert b"".join(pieces) == whole
    reader = TransformedReader(io.BytesIO(MARIADB_DUMP), Replacer(PAIRS, skip_columns={"guid"}))
    assert reader.readable()
    assert reader.read1(10) == whole[:10]
    assert reader.read() == whole[10:]
    assert reader.read() == b""
    reader.close()
    with pytest.raises(ValueError):
        reader.read()


# --- PHP's own unserialize ------------------------------------------------------------------

PHP_PRELUDE = r"""
error_reporting(E_ALL & ~E_DEPRECATED);
enum Suit { case Hearts; }
class Widget {
    public $url; protected $links; private $meta;
    function __construct($u) {
        $this->url = $u; $this->links = [$u . "/a", ["deep" => $u]];
        $this->meta = serialize(["inner" => $u]);
    }
}
class Legacy implements Serializable {
    public $u;
    function __construct($u = null) { $this->u = $u; }
    function serialize() { return serialize([$this->u]); }
    function unserialize($data) { $this->u = unserialize($data)[0]; }
}
function build($u) {
    $object = new stdClass; $object->home = $u; $object->nested = ["x" => [$u, 1, 2.5, true, null]];
    return [
        "home" => $u,
        "Zürich ✓" => "Grüße aus $u/über",
        "$u/key" => "a key",
        "levels" => ["one" => ["two" => [$u, "$u/wp-content/uploads/ä.jpg"]]],
        "object" => $object,
        "again" => $object,
        "widget" => new Widget($u),
        "legacy" => new Legacy($u),
        "suit" => Suit::Hearts,
        "serialized" => serialize(["url" => $u, "list" => [$u, 3]]),
        "double" => serialize(serialize([$u])),
        "json" => json_encode(["url" => "$u/x"]),
        "other" => "no url here",
        7 => -3,
        "float" => 0.1,
    ];
}
"""
PHP_SERIALIZE = PHP_PRELUDE + "echo serialize(build($argv[1]));"
PHP_CHECK = (
    PHP_PRELUDE
    + r"""
$value = unserialize(stream_get_contents(STDIN));
if ($value === false) { echo "unserialize failed"; exit(1); }
$got = var_export($value, true);
$want = var_export(build($argv[1]), true);
echo $got === $want ? "same" : "got:\n$got\nwant:\n$want";
"""
)


def php(code: str, argument: str, stdin: bytes = b"") -> bytes:
    if shutil.which("php") is None:
        pytest.fail("php is missing: run scripts/testbed.sh (it installs php-cli)")
    done = subprocess.run(
        ["php", "-d", "display_errors=stderr", "-r", code, argument],
        input=stdin,
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, (done.stdout, done.stderr)
    return done.stdout


def test_php_unserializes_the_rewritten_values() -> None:
    serialized = php(PHP_SERIALIZE, PROD)
    assert b'C:6:"Legacy"' in serialized and b"r:" in serialized and b"E:11:" in serialized
    rewritten, count = replace_value(serialized, BYTE_PAIRS)
    assert count == 16
    assert PROD.encode() not in rewritten and PROD_JSON.encode() not in rewritten
    assert php(PHP_CHECK, DEV, rewritten) == b"same"
    assert replace_value(rewritten, [(DEV.encode(), PROD.encode())]) == (serialized, count)


@pytest.mark.parametrize(("before", "after"), [(b"", b"\n"), (b"  ", b"\r\n"), (b"\t", b"")])
def test_a_serialized_value_with_whitespace_around_it_is_still_serialized(
    before: bytes, after: bytes
) -> None:
    """WordPress trims before is_serialized(); so must the rewrite, keeping the whitespace."""
    serialized = php(PHP_SERIALIZE, PROD)
    rewritten, count = replace_value(before + serialized + after, BYTE_PAIRS)
    assert count == 16
    assert rewritten.startswith(before) and rewritten.endswith(after)
    assert php(PHP_CHECK, DEV, rewritten.strip(b" \t\n\r\0\x0b")) == b"same"


# --- property: serialize, replace, parse ----------------------------------------------------


def php_serialize(value: object) -> bytes:
    """PHP serialize() for strings, ints and arrays (lists and dicts)."""
    if isinstance(value, int):
        return b"i:%d;" % value
    if isinstance(value, str):
        data = value.encode()
        return b's:%d:"%s";' % (len(data), data)
    assert isinstance(value, list | dict)
    items = enumerate(value) if isinstance(value, list) else value.items()
    body = b"".join(php_serialize(key) + php_serialize(item) for key, item in items)
    return b"a:%d:{%s}" % (len(value), body)


def php_parse(data: bytes, pos: int = 0) -> tuple[object, int]:
    """A strict parser for php_serialize's output: arrays become tuples of (key, value)."""
    kind = data[pos : pos + 2]
    if kind == b"i:":
        end = data.index(b";", pos)
        return int(data[pos + 2 : end]), end + 1
    colon = data.index(b":", pos + 2)
    length = int(data[pos + 2 : colon])
    if kind == b"s:":
        assert data[colon : colon + 2] == b':"'
        start = colon + 2
        assert data[start + length : start + length + 2] == b'";', "length does not match"
        return data[start : start + length].decode(), start + length + 2
    assert kind == b"a:" and data[colon : colon + 2] == b":{"
    pos = colon + 2
    items = []
    for _ in range(length):
        key, pos = php_parse(data, pos)
        item, pos = php_parse(data, pos)
        items.append((key, item))
    assert data[pos : pos + 1] == b"}"
    return tuple(items), pos + 1


def expected(value: object) -> tuple[object, int]:
    """What replacing should make of a value, in php_parse's shape, and the count."""
    if isinstance(value, int):
        return value, 0
    if isinstance(value, str):
        plain = value.count(PROD)
        value = value.replace(PROD, DEV)
        json = value.count(PROD_JSON)
        return value.replace(PROD_JSON, DEV_JSON), plain + json
    assert isinstance(value, list | dict)
    items = list(enumerate(value)) if isinstance(value, list) else list(value.items())
    result = []
    total = 0
    for key, item in items:
        new_key, key_count = expected(key)
        new_item, item_count = expected(item)
        result.append((new_key, new_item))
        total += key_count + item_count
    return tuple(result), total


texts = st.lists(
    st.one_of(st.text(max_size=6), st.sampled_from([PROD, PROD_JSON, "/", "\\", '";'])), max_size=5
).map("".join)
arrays = st.recursive(
    st.one_of(texts, st.integers()),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(texts, children, max_size=4)
    ),
    max_leaves=25,
)


@settings(max_examples=examples(150), deadline=None)
@given(st.one_of(st.lists(arrays, max_size=4), st.dictionaries(texts, arrays, max_size=4)))
def test_property_serialized_lengths_stay_consistent(
    value: list[object] | dict[str, object],
) -> None:
    rewritten, count = replace_value(php_serialize(value), BYTE_PAIRS)
    parsed, end = php_parse(rewritten)
    assert end == len(rewritten)
    assert (parsed, count) == expected(value)


# --- several replacements per env, aligned by position (#10) -------------------------------


def test_several_strings_per_env_are_replaced_in_order() -> None:
    from opskit.descriptor import DescriptorSource, parse_descriptor
    from opskit.errors import DescriptorError
    from opskit.sync import replacements

    text = (
        "name: shop\nenvironments: [dev, prod]\nsync:\n  pairs: [[prod, dev]]\n  replace:\n"
        "    prod: [https://shop.ch, http://shop.ch, //shop.ch]\n"
        "    dev: [https://dev.shop.ch, http://dev.shop.ch, //dev.shop.ch]\n"
    )
    project = parse_descriptor(DescriptorSource("/r/shop/project.yaml", text))
    assert project.sync is not None and project.sync.replacement("dev") == "https://dev.shop.ch"
    pairs = replacements(project, "prod", "dev")
    assert pairs[2] == ("//shop.ch", "//dev.shop.ch")
    value = (
        b'<a href="https://shop.ch/a">, <img src="http://shop.ch/b">, <script src="//shop.ch/c">'
    )
    new, count = replace_value(value, [(a.encode(), b.encode()) for a, b in pairs])
    assert new == (
        b'<a href="https://dev.shop.ch/a">, <img src="http://dev.shop.ch/b">, '
        b'<script src="//dev.shop.ch/c">'
    )
    assert count == 3
    with pytest.raises(DescriptorError, match=r"sync.replace.dev: has 1 strings, prod has 3"):
        parse_descriptor(
            DescriptorSource("/r/shop/project.yaml", text.replace(
                "dev: [https://dev.shop.ch, http://dev.shop.ch, //dev.shop.ch]", "dev: https://dev.shop.ch"
            ))
        )  # fmt: skip


def test_whole_hosts_leave_a_longer_host_alone_and_count_it() -> None:
    from opskit.descriptor import DescriptorSource, parse_descriptor

    text = (
        "name: shop\nenvironments: [dev, prod]\n"
        "sync: {pairs: [[prod, dev]], whole_hosts: true, "
        "replace: {prod: 'https://shop.ch', dev: 'https://dev.shop.ch'}}\n"
    )
    project = parse_descriptor(DescriptorSource("/r/shop/project.yaml", text))
    assert project.sync is not None and project.sync.whole_hosts is True
    dump = (
        b"INSERT INTO `wp_posts` VALUES (1,'see https://shop.ch/a and https://shop.chocolate.com"
        b" or https://shop.ch.', 'https://shop.ch-old.net');\n"
    )
    for whole, expected in (
        (True, b"see https://dev.shop.ch/a and https://shop.chocolate.com or https://dev.shop.ch."),
        (
            False,
            b"see https://dev.shop.ch/a and https://dev.shop.chocolate.com or https://dev.shop.ch.",
        ),
    ):
        replacer = Replacer([("https://shop.ch", "https://dev.shop.ch")], whole_hosts=whole)
        out = replacer.feed(dump) + replacer.finish()
        assert expected in out
        assert replacer.longer_hosts == 2  # shop.chocolate.com and shop.ch-old.net


def test_a_dumped_serialized_value_with_a_trailing_newline_gets_its_lengths_fixed() -> None:
    """In a mysqldump line the newline is the escape \\n; the fast plain path must not
    take the value for plain text."""
    value = b'a:1:{s:3:"url";s:15:"https://shop.ch";}'
    line = b"INSERT INTO `wp_options` VALUES (1,'widget','" + value + b"\\n');\n"
    replacer = Replacer([("https://shop.ch", "https://dev.shop.ch")])
    out = replacer.feed(line) + replacer.finish()
    assert b's:19:\\"https://dev.shop.ch\\";}\\n' in out


# --- #18: PHP's whole trim() set, hosts at both ends, places named --------------------------


def test_a_serialized_value_in_vertical_tabs_gets_its_lengths_fixed_in_a_dump() -> None:
    """PHP's trim() strips \\x0b too; mysqldump writes it raw, so the fast path must know it."""
    value = "\x0b" + ser("https://shop.ch/a") + "\x0b"
    line = b"INSERT INTO `wp_options` VALUES (1,'widget'," + sql(value) + b");\n"
    replacer = Replacer([("https://shop.ch", "https://dev.shop.ch")])
    out = replacer.feed(line) + replacer.finish()
    rewritten = out.split(b"'widget','", 1)[1].rsplit(b"');", 1)[0].replace(b'\\"', b'"')
    assert rewritten == ("\x0b" + ser("https://dev.shop.ch/a") + "\x0b").encode()
    read = php("echo json_encode(unserialize(trim(stream_get_contents(STDIN))));", "", rewritten)
    assert read == b'"https:\\/\\/dev.shop.ch\\/a"'


SHOP_LIST = [("https://shop.ch", "https://dev.shop.ch"), ("shop.ch", "dev.shop.ch")]


def test_whole_hosts_begin_at_a_boundary_too() -> None:
    text = (
        "https://shop.ch/a https://myshop.ch/x cdn.shop.ch mail@shop.ch shop.ch/b "
        "my-shop.ch https%3A%2F%2Fshop.ch%2Fc shop.chocolate.com"
    )
    dump = b"INSERT INTO `wp_posts` VALUES (1," + sql(text) + b");\n"
    replacer = Replacer(SHOP_LIST, whole_hosts=True)
    out = replacer.feed(dump) + replacer.finish()
    assert (
        sql(
            "https://dev.shop.ch/a https://myshop.ch/x cdn.shop.ch mail@dev.shop.ch dev.shop.ch/b "
            "my-shop.ch https%3A%2F%2Fdev.shop.ch%2Fc shop.chocolate.com"
        )
        in out
    )
    assert replacer.longer_hosts == 4  # myshop.ch, cdn.shop.ch, my-shop.ch, shop.chocolate.com
    assert replacer.lookalikes == [
        "myshop.ch in wp_posts", "cdn.shop.ch in wp_posts", "my-shop.ch in wp_posts",
        "shop.chocolate.com in wp_posts",
    ]  # fmt: skip
    # A string with a scheme begins where the scheme does; one ending in "/" ends anywhere.
    assert replace_value(
        b"xhttps://shop.ch/a https://shop.ch/about",
        [(b"https://shop.ch/", b"https://dev.shop.ch/")],
    ) == (b"xhttps://dev.shop.ch/a https://dev.shop.ch/about", 2)


def test_overlapping_strings_count_each_lookalike_place_once() -> None:
    pairs = [
        ("https://shop.ch", "https://dev.shop.ch"),
        ("http://shop.ch", "http://dev.shop.ch"),
        ("//shop.ch", "//dev.shop.ch"),
    ]
    rows = ",".join(
        f"({i},{sql(f'https://shop.chocolate.com/{i} and http://shop.ch-old.net').decode()})"
        for i in range(25)
    )
    dump = f"INSERT INTO `wp_posts` VALUES {rows};\n".encode()
    for whole in (True, False):
        replacer = Replacer(pairs, whole_hosts=whole)
        replacer.feed(dump)
        replacer.finish()
        assert replacer.longer_hosts == 50  # two places a row, not one per matching string
        assert len(replacer.lookalikes) == 5


def test_a_dry_run_names_places_and_values_longer_than_their_column() -> None:
    url = "https://shop.ch/" + "x" * 44  # 60 characters; 64 after the rewrite
    dump = (
        MARIADB_HEADER + WP_OPTIONS
        + b"INSERT INTO `wp_options` VALUES (7,'siteurl'," + sql(url) + b",'yes'),"
        + b"(8,'lookalike','see https://cdn.shop.ch/x','yes'),(9,'grown'," + sql(url[:-2]) + b",'no');\n"
    )  # fmt: skip
    replacer = Replacer(SHOP_LIST, whole_hosts=True)
    replacer.watch_lengths(
        {("wp_options", "option_value"): (62, 248), ("wp_options", "autoload"): (20, 80)}
    )
    replacer.feed(dump)
    replacer.finish()
    assert replacer.too_long == [
        "wp_options.option_value where option_id = 7: "
        "64 characters after the rewrite, the column holds 62",
    ]
    assert replacer.too_long_count == 1
    assert replacer.lookalikes == ["cdn.shop.ch in wp_options.option_value where option_id = 8"]
    # The same in a PostgreSQL COPY block, where a limit can be in bytes too.
    pg = (
        b"COPY public.wp_options (option_name, option_value) FROM stdin;\n"
        b"home\thttps://shop.ch/\xc3\xa4\xc3\xa4\n\\.\n"
    )
    replacer = Replacer(SHOP_LIST, dialect="postgres", whole_hosts=True)
    replacer.watch_lengths({("public.wp_options", "option_value"): (None, 22)})
    replacer.feed(pg)
    replacer.finish()
    assert replacer.too_long == [
        "public.wp_options.option_value where option_name = home: "
        "24 bytes after the rewrite, the column holds 22",
    ]
