"""The ``local`` runner: the whole graph in one process, deterministic.

Sources are read in turn; after each read, every packet it produced travels through the graph
(FIFO) before the next read, so the same graph fed the same recording gives the same outputs on
every run. Ticks use the graph clock: ``pylsl.local_clock()`` when any source is live or paced,
or the sources' ``virtual_time`` when all of them replay faster than real time (``speed: max``).
"""
from __future__ import annotations

import time
from typing import Any

from pipeline.clock import local_clock
from pipeline.graph import GraphSpec, open_graph
from pipeline.metrics import build_summary
from pipeline.node import Source
from pipeline.runners.executor import GroupExecutor
from pipeline.runners.progress import ReplayProgress, sources_progress


def graph_clock(sources: list[Source]) -> float:
    """Seconds on the graph clock: the slowest virtual time if all sources are virtual, else live."""
    virtual = [s.virtual_time for s in sources]
    if virtual and all(v is not None for v in virtual):
        return min(virtual)  # type: ignore[type-var]
    return local_clock()


def all_virtual(sources: list[Source]) -> bool:
    """True when every source keeps its own data clock (replays at ``speed: max``)."""
    return bool(sources) and all(s.virtual_time is not None for s in sources)


def run(spec: GraphSpec, *, progress: bool = True, duration_s: float | None = None,
        address: str | None = None) -> dict[str, Any]:
    """Run ``spec`` to completion (sources exhausted and graph quiet), ``duration_s`` or Ctrl-C.

    Returns the run summary (see :func:`pipeline.metrics.build_summary`).
    """
    if address:
        raise ValueError("the local runner runs in this process; --address is for the ray runners")
    nodes = spec.instances
    order = spec.order()
    open_graph(spec)
    executor = GroupExecutor(nodes, spec.routes(), spec.sinks())
    sources = [nodes[name] for name in executor.sources]
    active = list(executor.sources)
    bar = ReplayProgress(progress)
    read_progress = lambda: sources_progress(sources)  # noqa: E731 (called by the bar at 10 Hz)
    stopped_by = "end of data"
    t_start = time.perf_counter()
    try:
        executor.start(order)
        deadline = None if duration_s is None else time.perf_counter() + duration_s
        while active:
            for name in list(active):
                if executor.read_source(name) is None:
                    active.remove(name)
            if executor.ticking and (active or not all_virtual(sources)):
                # Once every virtual (speed: max) source has ended there is no newer data time to
                # tick to: the wall clock would be a jump backwards or forwards, so flush instead.
                executor.tick(graph_clock([nodes[n] for n in active]) if active else local_clock())
            bar.update(read_progress)
            if deadline is not None and time.perf_counter() >= deadline:
                stopped_by = f"duration {duration_s:g} s"
                break
        executor.flush(order)
    except KeyboardInterrupt:
        stopped_by = "interrupted (Ctrl-C)"
    finally:
        bar.close()
        wall_s = time.perf_counter() - t_start
        counters, reports = executor.counters(), executor.reports()
        executor.close()
    return build_summary(
        graph=spec.name,
        runner="local",
        wall_s=wall_s,
        stats=executor.stats,
        counters=counters,
        reports=reports,
        latency=executor.latency,
        source_samples=sum(executor.stats[n].samples_out for n in executor.sources),
        stopped_by=stopped_by,
    )
