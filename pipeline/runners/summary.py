"""One run summary from any number of groups (the same keys on every runner).

Each group reports :func:`group_result` (from its own process); :func:`merge_summary` joins them
into :func:`pipeline.metrics.build_summary`'s dict plus:

- ``latency`` is the **in-graph** latency: from the moment a packet's data entered the graph (its
  source read it) to the moment a sink processed it (``latency_name`` says so);
- ``latency_end_to_end``: from the input sample's own timestamp (LSL clock, clock-corrected by
  the inlet) to the moment the sink processed (pushed) the output, both on the LSL clock: what
  an outside client measures, including the LSL transport and the inlet's wait. Measured only
  while the graph runs on the LSL clock (live or paced sources);
- ``restarts`` (per group) and ``duplicates_dropped``, ``dropped_after_end`` counts;
- ``groups``: pid and whether torch was imported, per group.
"""
from __future__ import annotations

import os
import sys
from typing import Any

from pipeline.graph import GraphSpec
from pipeline.metrics import LatencyStats, build_summary


def group_result(stepper: Any, wall_s: float, counters: dict | None = None, reports: dict | None = None) -> dict[str, Any]:
    """What one group sends back at the end of a run (picklable)."""
    ex = stepper.executor
    return {
        "group": stepper.plan.name,
        "stats": ex.stats,
        "counters": counters if counters is not None else ex.counters(),
        "reports": reports if reports is not None else ex.reports(),
        "latency": ex.latency,
        "e2e": ex.e2e,
        "source_samples": sum(ex.stats[n].samples_out for n in ex.sources),
        "duplicates": stepper.duplicates,
        "dropped_after_end": ex.dropped_after_end,
        "wall_s": wall_s,
        "pid": os.getpid(),
        "torch_imported": "torch" in sys.modules,  # the runtime path must stay torch-free
    }


def merge_latency(parts: list[LatencyStats]) -> LatencyStats:
    """One LatencyStats from several."""
    out = LatencyStats()
    for part in parts:
        try:
            out.extend(part)  # a LatencyStats (its histogram merges)
        except TypeError:
            out.extend(part.values)  # type: ignore[attr-defined]  # older LatencyStats: raw values
    return out


def merge_summary(spec: GraphSpec, runner: str, results: list[dict], wall_s: float, stopped_by: str,
                  restarts: dict[str, int] | None = None, failure: str | None = None) -> dict[str, Any]:
    """The run summary from every group's results, nodes in config order."""
    stats, counters, reports = {}, {}, {}
    for r in results:
        stats.update(r["stats"])
        counters.update(r["counters"])
        reports.update(r["reports"])
    ordered = {n: stats[n] for n in spec.nodes if n in stats}
    summary = build_summary(
        graph=spec.name, runner=runner, wall_s=wall_s, stats=ordered,
        counters={n: counters.get(n, {}) for n in ordered}, reports={n: reports.get(n, {}) for n in ordered},
        latency=merge_latency([r["latency"] for r in results]),
        source_samples=sum(r["source_samples"] for r in results), stopped_by=stopped_by,
    )
    summary["latency_name"] = "in-graph (source read -> sink processed)"
    summary["latency_end_to_end"] = merge_latency([r["e2e"] for r in results]).to_dict()
    summary["restarts"] = dict(restarts or {})
    summary["duplicates_dropped"] = sum(r.get("duplicates", 0) for r in results)
    summary["dropped_after_end"] = sum(r.get("dropped_after_end", 0) for r in results)
    summary["groups"] = {r["group"]: {"pid": r["pid"], "torch_imported": r["torch_imported"]} for r in results}
    if failure:
        summary["failure"] = failure
    return summary
