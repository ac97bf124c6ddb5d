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
