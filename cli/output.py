"""Where output goes: data on stdout, messages on stderr, JSON untouched by rich.

rich is imported only when something is printed through it, so `--json`
commands never pay for it. rich itself honours NO_COLOR and drops colour and
animation when the stream is not a terminal.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from google.protobuf.message import Message
    from rich.console import Console


@cache
def stdout_console() -> Console:
    from rich.console import Console

    width = None
    if not sys.stdout.isatty() and "COLUMNS" not in os.environ:
        # Piped tables should not wrap at rich's 80-column default: grep and
        # awk want one row per line.
        width = 400
    return Console(highlight=False, emoji=False, width=width)


@cache
def stderr_console() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False, emoji=False)


def stderr_is_terminal() -> bool:
    return stderr_console().is_terminal


def say(text: str, style: str | None = None) -> None:
    """A message for the user, on stderr (never markup-parsed: ids may hold brackets)."""
    stderr_console().print(text, style=style, markup=False, soft_wrap=True)


def out(text: str, style: str | None = None) -> None:
    """One line of data on stdout."""
    stdout_console().print(text, style=style, markup=False, soft_wrap=True)


def to_dict(message: Message) -> dict[str, Any]:
    """A proto message as ProtoJSON with the .proto field names and every field shown."""
    from google.protobuf.json_format import MessageToDict

    return MessageToDict(
        message,
        always_print_fields_with_no_presence=True,
        preserving_proto_field_name=True,
        unquote_int64_if_possible=True,
    )


def print_json(value: object) -> None:
    """Pretty JSON on stdout, and nothing else."""
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def print_json_line(value: object) -> None:
    """One compact JSON object per line (for streams of events)."""
    sys.stdout.write(json.dumps(value, ensure_ascii=False, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def print_table(
    columns: Sequence[str],
    rows: Iterable[Sequence[str]],
    styles: Sequence[str | None] | None = None,
) -> None:
    """A borderless table on stdout, like `docker ps`: one row per line, the last
    column cut short when the terminal is too narrow."""
    from rich.table import Table

    table = Table(box=None, padding=(0, 3, 0, 0), pad_edge=False, header_style="bold")
    rows = [list(row) for row in rows]
    for i, column in enumerate(columns):
        last = i == len(columns) - 1
        # Every column but the last keeps its full width (ids must stay whole).
        width = None if last else max([len(column)] + [len(row[i]) for row in rows])
        table.add_column(column, no_wrap=True, overflow="ellipsis", min_width=width)
    for i, row in enumerate(rows):
        table.add_row(*row, style=styles[i] if styles else None)
    _print_block(table)


def print_fields(rows: Iterable[tuple[str, str]]) -> None:
    """`key  value` lines on stdout, keys aligned."""
    from rich.table import Table

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    for key, value in rows:
        grid.add_row(key, value)
    _print_block(grid)


def _print_block(renderable: object) -> None:
    console = stdout_console()
    if console.is_terminal:
        console.print(renderable)
        return
    # rich pads every cell to its column's width; piped, that is trailing blanks.
    with console.capture() as captured:
        console.print(renderable)
    lines = captured.get().splitlines()
    sys.stdout.write("".join(line.rstrip() + "\n" for line in lines))
    sys.stdout.flush()
