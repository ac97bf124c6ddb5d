"""The rich console every table is printed on, and helpers that keep tables within its width."""
from __future__ import annotations

import os
from typing import Any

PIPE_WIDTH = 200
"""Columns of a console that is not a terminal (a pipe, a CI log) when ``COLUMNS`` is not set."""


def console(file: Any = None):
    """A ``rich.console.Console`` on ``file`` (stdout by default).

    Width: the terminal's; ``COLUMNS`` when set (also in pipes, so ``COLUMNS=100 spikeloop ...``
    shows what a 100-column terminal shows); else 200 columns in a pipe or log file instead of
    rich's 80, so wide tables are not squeezed.
    """
    from rich.console import Console

    out = Console(file=file)
    cols = os.environ.get("COLUMNS", "")
    if cols.isdigit() and int(cols) > 0:
        out.width = int(cols)
    elif not out.is_terminal:
        out.width = PIPE_WIDTH
    return out


def _natural_width(headers: list[str], rows: list[list[str]]) -> int:
    """Columns a rich table with a box needs when no cell is cut and headers wrap only at spaces."""
    widths = []
    for j, h in enumerate(headers):
        words = max((len(w) for w in h.split()), default=0)
        cells = max((len(r[j]) for r in rows), default=0)
        widths.append(max(words, cells))
    return sum(widths) + 3 * len(widths) + 1


def print_fitted(title: str, headers: list[str], rows: list[list[str]], *, out: Any = None,
                 right: set[int] | None = None) -> str:
    """Print a table that fits the console width without cutting any cell.

    Tried in order: as given (one row per item); transposed (one row per column, one column per
    item, the first column's cells as headers) when that fits; stacked (one small "what | value"
    table per item) otherwise. Returns the layout used: ``"rows"``, ``"transposed"`` or ``"stacked"``.

    Args:
        title: table title. headers: column names. rows: cells as strings, ``len(headers)`` each;
        the first cell names the item (a model, a node). out: a console (default :func:`console`).
        right: indices of right-justified columns (default: every column but the first).
    """
    from rich.table import Table

    out = out or console()
    right = set(range(1, len(headers))) if right is None else right
    width = out.width
    if _natural_width(headers, rows) <= width:
        t = Table(title=title, title_justify="left")
        for j, h in enumerate(headers):
            t.add_column(h, justify="right" if j in right else "left", no_wrap=False, overflow="fold")
        for r in rows:
            t.add_row(*r)
        out.print(t)
        return "rows"
    t_headers = [headers[0], *[r[0] for r in rows]]
    t_rows = [[headers[j], *[r[j] for r in rows]] for j in range(1, len(headers))]
    if _natural_width(t_headers, t_rows) <= width:
        t = Table(title=title, title_justify="left")
        for j, h in enumerate(t_headers):
            t.add_column(h, justify="left" if j == 0 else "right", overflow="fold")
        for r in t_rows:
            t.add_row(*r)
        out.print(t)
        return "transposed"
    out.print(title)
    for r in rows:
        t = Table(title=f"{headers[0]} {r[0]}", title_justify="left", show_header=False)
        t.add_column("what", overflow="fold")
        t.add_column("value", justify="right", overflow="fold")
        for j in range(1, len(headers)):
            t.add_row(headers[j], r[j])
        out.print(t)
    return "stacked"
