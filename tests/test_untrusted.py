"""Text opskit did not write (descriptors, Docker labels, other programs) reaches the
terminal visible and inert: control characters escaped, rich markup shown as it is.
JSON output keeps the raw value. On the real CLI's stdout bytes."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

from conftest import opskit
from opskit.output import Output, one_line, progress, visible
from test_cli import run_on_terminal

# What a hostile or careless description holds: a colour escape, a bell, a NUL, a line
# break and a tab, a right-to-left override, and rich markup.
DESCRIPTION = "shop \x1b[31mred\x1b[0m \x07bell \x00nul\nnext\tcol \u202eevil [bold]x[/bold]"
SHOWN = r"shop \x1b[31mred\x1b[0m \x07bell \x00nul\nnext\tcol \u202eevil [bold]x[/bold]"
RAW = (b"\x1b[31m", b"\x07", b"\x00", "\u202e".encode())


def test_visible_escapes_what_a_terminal_would_act_on() -> None:
    assert visible(DESCRIPTION) == SHOWN
    assert visible("plain [red]text[/red] C:\\dir") == "plain [red]text[/red] C:\\dir"
    assert visible("a\nb\tc\rd", keep="\n\t") == "a\nb\tc\\rd"
    assert visible("\udcff") == "\\udcff"  # a byte that was not UTF-8 (surrogateescape)
    assert one_line("first\x1b]0;title\x07\n second ") == "first\\x1b]0;title\\x07 / second"


def test_table_cells_and_lines_are_visible() -> None:
    stream = io.StringIO()
    out = Output(stream=stream)
    out.table(["a", "b"], [[DESCRIPTION, ("x\x1b[2J", "red")]])
    out.line("unit\n\tExec=\x1b")
    text = stream.getvalue()
    assert SHOWN in text and "x\\x1b[2J" in text and "unit\n\tExec=\\x1b" in text
    assert not any(raw.decode() in text for raw in RAW) and "\x1b" not in text
    stream = io.StringIO()
    progress(stream, "Stopping web ... done\r")  # compose v1's line end
    progress(stream, "stopping \x1b[31mred\x07")
    assert stream.getvalue() == "Stopping web ... done\nstopping \\x1b[31mred\\x07\n"


def write_root(root: Path) -> Path:
    (root / "shop").mkdir(parents=True)
    quoted = DESCRIPTION.translate(
        {0x1B: "\\e", 0x07: "\\a", 0x00: "\\0", 0x0A: "\\n", 0x09: "\\t", 0x202E: "\\u202e"}
    )
    (root / "shop" / "project.yaml").write_text(
        f'name: shop\ndescription: "{quoted}"\nenvironments: [dev]\n'
    )
    return root


def test_projects_shows_a_hostile_description_escaped(tmp_path: Path) -> None:
    root = str(write_root(tmp_path))
    done = subprocess.run(
        [sys.executable, "-m", "opskit", "projects", "--root", root], capture_output=True
    )
    assert done.returncode == 0, done.stderr
    assert not [raw for raw in RAW if raw in done.stdout], done.stdout
    assert SHOWN.encode() in done.stdout
    assert done.stdout.count(b"\n") == 2  # the header and one row: the line break is shown

    data = opskit("projects", "--json", "--root", root).json()
    assert data[0]["description"] == DESCRIPTION  # type: ignore[index]


def test_projects_on_a_terminal_shows_it_escaped_and_reads_no_markup(tmp_path: Path) -> None:
    root = str(write_root(tmp_path))
    wide = {"COLUMNS": "200", "TERM": "xterm-256color"}
    code, plain = run_on_terminal(["projects", "--root", root], None, env={**wide, "NO_COLOR": "1"})
    assert code == 0, plain
    assert "\x1b" not in plain and "\x07" not in plain and "\x00" not in plain
    assert SHOWN in plain
    code, coloured = run_on_terminal(["projects", "--root", root], None, env=wide)
    assert code == 0 and "\x1b[" in coloured  # rich's own colours, and only those
    assert not [raw for raw in RAW if raw.decode() in coloured], coloured
    assert "[bold]x[/bold]" in coloured
