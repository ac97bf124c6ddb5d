"""Runners: where nodes run and how packets travel. Every runner runs every node.

Each runner is a function ``run(spec, *, progress=True, duration_s=None, address=None) -> dict``
returning the run summary (see :mod:`pipeline.runners.summary`).

One core, three transports: :class:`pipeline.runners.stepper.Stepper` (a group of nodes and one
step: deliver, read sources once, tick on the graph clock, flush at the end; checkpoints) is
Ray-free; :mod:`pipeline.runners.plan` splits a graph into groups (Ray-free, used by
``spikeloop check``); :mod:`pipeline.runners.opening` constructs and opens nodes with one error
mapping. The transports:

- ``local``: one group in a loop, in this process; deterministic, the reference.
- ``ray``: one group per Ray actor behind a mailbox; checkpoints and restarts of dead actors.
- ``ray-compiled``: the step bound in a Ray Compiled Graph, one round per ``execute()``;
  checkpoints at one round boundary and restarts of dead actors (the graph torn down, the dead
  group recreated and its lost rounds replayed, the graph recompiled). Both Ray runners share the
  checkpoint schedule and restart budget (:mod:`pipeline.runners.restarts`).
- :mod:`pipeline.runners.inprocess`: several groups in one process (tests of the multi-group
  semantics without Ray).

Ctrl-C, SIGTERM and SIGHUP end every runner cleanly (:mod:`pipeline.runners.signals`).
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
