"""Option groups shared by several model families on one command line (``train``, ``evaluate``)."""
from __future__ import annotations

import argparse
from typing import Callable


def family_options(p: argparse.ArgumentParser, title: str) -> Callable[..., None]:
    """An ``add_argument`` for a new group titled ``title`` that skips options already defined.

    Two families may both want ``--epochs`` or ``--plot``: the first one to register it defines
    it (with its help text); later families share it instead of clashing.
    """
    group = p.add_argument_group(title)

    def opt(*names: str, **kw) -> None:
        if not any(n in p._option_string_actions for n in names):
            group.add_argument(*names, **kw)

    return opt
