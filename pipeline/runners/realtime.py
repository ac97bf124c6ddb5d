"""Keep Python's cyclic garbage collector off a live data path.

A full (generation 2) collection scans every container object in the process. A runner process
holds hundreds of thousands of them once numpy, numba, scipy, the model and, in an actor, Ray's own
modules are imported, so a full pass stops the interpreter for tens of milliseconds: a p99 spike on
a 4 ms sample that has nothing to do with the graph. :func:`freeze_setup_objects` runs one
collection after the graph is set up and then moves every surviving object into the collector's
permanent generation (``gc.freeze()``), so later passes scan only what the run itself allocates
(packets, small dicts), and they stay short. Nothing is disabled: cycles created during the run are
still collected; objects alive at set-up are simply never scanned again (they live as long as the
run anyway).

``SPIKELOOP_GC_FREEZE=0`` in the environment skips the freeze (a diagnostic: it lets
``spikeloop bench latency-path --no-gc-freeze`` measure what the freeze buys).
"""
from __future__ import annotations

import gc
import os

ENV = "SPIKELOOP_GC_FREEZE"


def freeze_setup_objects() -> int:
    """Collect once, then freeze every object alive now; return how many objects were frozen.

    Returns 0 without doing anything when ``SPIKELOOP_GC_FREEZE=0`` (diagnostic switch)."""
    if os.environ.get(ENV, "1") == "0":
        return 0
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
