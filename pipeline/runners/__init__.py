"""Runners: where nodes run and how packets travel. Every runner runs every node.

Each runner is a function ``run(spec, *, progress=True, duration_s=None, address=None) -> dict``
returning the run summary (see :func:`pipeline.metrics.build_summary`).

- ``local``: one process, deterministic; the reference for every other runner.
- ``ray``: nodes (or fused groups) as Ray actors.
- ``ray-compiled``: Ray Compiled Graphs for sub-millisecond hops.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable

RUNNERS: dict[str, str] = {
    "local": "pipeline.runners.local:run",
    "ray": "pipeline.runners.ray_runner:run",
    "ray-compiled": "pipeline.runners.ray_compiled:run",
}


def get_runner(name: str) -> Callable[..., dict[str, Any]]:
    """The run function of runner ``name`` (imported lazily: Ray only when asked for)."""
    from pipeline.errors import UserError
    from pipeline.graph import nearest

    if name not in RUNNERS:
        raise UserError(f"unknown runner {name!r}" + nearest(name, list(RUNNERS)))
    module_name, _, func = RUNNERS[name].partition(":")
    return getattr(importlib.import_module(module_name), func)
