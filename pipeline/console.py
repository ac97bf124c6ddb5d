"""The rich console every table is printed on: full width in pipes and log files too."""
from __future__ import annotations

from typing import Any


def console(file: Any = None):
    """A ``rich.console.Console`` on ``file`` (stdout by default) that, when it is not a terminal
    (a pipe, a CI log), is 200 columns wide instead of rich's 80, so wide tables are not squeezed."""
    from rich.console import Console

    out = Console(file=file)
    if not out.is_terminal:
        out.width = 200
    return out
