"""All user-facing output: rich tables on a terminal, plain text otherwise, JSON on request.

Results go to stdout; errors, warnings and progress to stderr. No ANSI codes when
``NO_COLOR`` is set or stdout is not a terminal.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from typing import IO, Any, TextIO

Cell = str | tuple[str, str]  # text, or (text, rich style)
# Who speaks: a fleet command's host (``web1: ``) before each of its warnings and errors
speaker: ContextVar[str] = ContextVar("opskit_speaker", default="")


def visible(text: str, keep: str = "") -> str:
    """*text* safe to print on a terminal: every character that is not printable (ESC,
    BEL, NUL, line breaks, tabs, bidi overrides) becomes its escape, such as ``\\x1b``,
    except those in *keep*. Everything else is kept as it is; tables never read rich
    markup such as ``[red]`` in it. Untrusted text (descriptors, Docker labels, other
    programs) goes through here before it is printed; JSON output keeps the raw value."""
    if text.isprintable():
        return text
    return "".join(
        c if c.isprintable() or c in keep else c.encode("unicode_escape").decode("ascii")
        for c in text
    )


def one_line(text: str) -> str:
    """*text* on one line: line breaks become ' / ', other control characters visible."""
    parts = [part.strip() for part in text.splitlines() if part.strip()]
    return visible(" / ".join(parts), keep="\t")


def error(message: str) -> None:
    print(f"[error] {speaker.get()}{one_line(message)}", file=sys.stderr)


def warning(message: str) -> None:
    print(f"[warning] {speaker.get()}{one_line(message)}", file=sys.stderr)


def trace(text: str) -> None:
    """A line of ``OPSKIT_TRACE`` output (pluggy's hook calls), on stderr."""
    sys.stderr.write(f"[trace] {text}")


def info(message: str) -> None:
    print(message, file=sys.stderr)


def progress(stream: IO[str] | None, message: str) -> None:
    """One progress line on *stream* (the commands pass stderr), :func:`visible` (compose
    v1 ends its lines with a carriage return); nothing without one."""
    if stream is not None:
        stream.write(visible(message.rstrip("\r"), keep="\t") + "\n")
        stream.flush()


class Reporter:
    """Renders a job's events for people: its lines on *stream*, each phase's bytes on a
    counter from *meter* (given a label, the function that advances it), else the
    phase's label as a line. Warnings go to stderr."""

    def __init__(
        self,
        stream: IO[str] | None,
        meter: Callable[[str], Callable[[int], None]] | None = None,
    ) -> None:
        self.stream = stream
        self.meter = meter
        self._jobs: dict[str, str] = {}  # job id -> "project env"
        self._counters: dict[tuple[str, str], tuple[Callable[[int], None], int]] = {}

    def __call__(self, event: Any) -> None:
        from opskit import events

        if isinstance(event, events.JobStarted):
            self._jobs[event.job] = " ".join((event.project, *event.envs))
        elif isinstance(event, events.LogLine):
            progress(self.stream, event.line)
        elif isinstance(event, events.Warning):
            warning(event.message)
        elif isinstance(event, events.PhaseStarted):
            label = visible(f"{self._jobs.get(event.job, '')}: {event.phase}")
            if self.meter is not None:
                self._counters[(event.job, event.phase)] = (self.meter(label), 0)
            else:
                progress(self.stream, label)
        elif isinstance(event, events.Progress):
            counter = self._counters.get((event.job, event.phase))
            if counter is not None:
                advance, shown = counter
                advance(event.done - shown)
                self._counters[(event.job, event.phase)] = (advance, event.done)


def json_lines(stream: TextIO | None = None) -> Callable[[Any], None]:
    """A subscriber that writes each event as one JSON line (``--events``)."""

    def write(event: Any) -> None:
        target = stream or sys.stdout
        target.write(event.to_json() + "\n")
        target.flush()

    return write


class Output:
    """Writes a command's result in the form the user asked for."""

    def __init__(self, json_mode: bool = False, stream: TextIO | None = None) -> None:
        self.json_mode = json_mode
        self.stream = stream or sys.stdout
        self.is_terminal = bool(getattr(self.stream, "isatty", lambda: False)())
        self.color = self.is_terminal and "NO_COLOR" not in os.environ

    def json(self, data: Any) -> None:
        import json

        self.stream.write(json.dumps(data, indent=2, default=str) + "\n")

    def line(self, text: str = "") -> None:
        """*text* and a line break; line breaks and tabs in it are kept, as in a unit file."""
        self.stream.write(visible(text, keep="\n\t") + "\n")

    def table(
        self, columns: Sequence[str], rows: Sequence[Sequence[Cell]], title: str | None = None
    ) -> None:
        """One row per line; every cell is shown :func:`visible`, on one line."""
        rows = [
            [(visible(c[0]), c[1]) if isinstance(c, tuple) else visible(c) for c in row]
            for row in rows
        ]
        if self.is_terminal:
            self._rich_table(columns, rows, title)
            return
        texts = [[cell[0] if isinstance(cell, tuple) else cell for cell in row] for row in rows]
        widths = [max([len(col)] + [len(row[i]) for row in texts]) for i, col in enumerate(columns)]
        if title:
            self.line(title)
        self.line(
            "  ".join(col.upper().ljust(w) for col, w in zip(columns, widths, strict=True)).rstrip()
        )
        for row in texts:
            self.line(
                "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            )

    def _rich_table(
        self, columns: Sequence[str], rows: Sequence[Sequence[Cell]], title: str | None
    ) -> None:
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        # color_system=None: a table with no escape codes at all (NO_COLOR).
        console = Console(
            file=self.stream,
            color_system="auto" if self.color else None,
            highlight=False,
            force_terminal=True,
        )
        table = Table(
            *columns,
            title=Text(visible(title)) if title else None,
            title_justify="left",
            header_style="bold",
        )
        for row in rows:
            table.add_row(  # Text: markup such as "[red]" in a cell is shown, never read
                *(
                    Text(cell[0], style=cell[1]) if isinstance(cell, tuple) else Text(cell)
                    for cell in row
                )
            )
        console.print(table)


def human_bytes(value: int | None) -> str:
    if value is None:
        return "-"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"
