"""Run metrics shared by every runner: per-node counts and timings, end-to-end latency, summary.

Each runner keeps one :class:`NodeStats` per node (in whatever process runs the node), one
:class:`SeqTracker` per receiving node (a gap in sequence numbers is a loss), and one
:class:`LatencyStats` for packets leaving the graph; :func:`build_summary` turns them into the
summary that ``spikeloop run`` prints and writes as JSON.
"""
from __future__ import annotations

import json
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.packet import Packet


@dataclass
class NodeStats:
    """Counts and processing times of one node.

    Attributes:
        packets_in, samples_in: packets/samples received on all input ports.
        packets_out, samples_out: packets/samples emitted on all output ports.
        gaps: packets missing in input sequence numbers (a loss between nodes).
        proc_ns: one processing time per call (``process``/``read``/``tick``), nanoseconds.
    """

    packets_in: int = 0
    samples_in: int = 0
    packets_out: int = 0
    samples_out: int = 0
    gaps: int = 0
    proc_ns: array = field(default_factory=lambda: array("q"))

    def to_dict(self, counters: dict[str, int] | None = None) -> dict[str, Any]:
        times_us = np.frombuffer(self.proc_ns, dtype=np.int64) / 1e3 if len(self.proc_ns) else np.zeros(0)
        return {
            "packets_in": self.packets_in,
            "samples_in": self.samples_in,
            "packets_out": self.packets_out,
            "samples_out": self.samples_out,
            "gaps": self.gaps,
            "calls": int(times_us.size),
            "proc_us_p50": _pct(times_us, 50),
            "proc_us_p99": _pct(times_us, 99),
            "proc_us_total": float(times_us.sum()),
            "counters": dict(counters or {}),
        }


class SeqTracker:
    """Detects gaps in per-edge sequence numbers: returns how many packets went missing."""

    def __init__(self) -> None:
        self._last: dict[Any, int] = {}

    def check(self, edge: Any, seq: int) -> int:
        """Record ``seq`` arriving on ``edge``; return the number of packets skipped (0 if none)."""
        last = self._last.get(edge)
        self._last[edge] = seq
        if last is None or seq < 0:
            return 0
        return max(0, seq - last - 1)


class SeqCounter:
    """Assigns consecutive sequence numbers per output stream ``(node, port)``."""

    def __init__(self) -> None:
        self._next: dict[Any, int] = {}

    def stamp(self, stream: Any, packet: Packet) -> Packet:
        n = self._next.get(stream, 0)
        packet.seq = n
        self._next[stream] = n + 1
        return packet


class LatencyStats:
    """End-to-end latencies (seconds) of packets leaving the graph."""

    def __init__(self) -> None:
        self.values = array("d")

    def add(self, seconds: float) -> None:
        self.values.append(seconds)

    def extend(self, seconds: "array | list[float]") -> None:
        self.values.extend(seconds)

    def to_dict(self) -> dict[str, Any]:
        v = np.frombuffer(self.values, dtype=np.float64) * 1e3 if len(self.values) else np.zeros(0)
        return {
            "count": int(v.size),
            "p50_ms": _pct(v, 50),
            "p99_ms": _pct(v, 99),
            "max_ms": float(v.max()) if v.size else None,
        }


def _pct(values: np.ndarray, q: float) -> float | None:
    return float(np.percentile(values, q)) if values.size else None


def build_summary(
    *,
    graph: str,
    runner: str,
    wall_s: float,
    stats: dict[str, NodeStats],
    counters: dict[str, dict[str, int]],
    reports: dict[str, dict[str, Any]],
    latency: LatencyStats,
    source_samples: int,
    stopped_by: str,
) -> dict[str, Any]:
    """The run summary as a JSON-serialisable dict (also what ``--json`` writes)."""
    return {
        "graph": graph,
        "runner": runner,
        "stopped_by": stopped_by,
        "wall_s": wall_s,
        "source_samples": source_samples,
        "samples_per_s": source_samples / wall_s if wall_s > 0 else None,
        "latency": latency.to_dict(),
        "nodes": {name: s.to_dict(counters.get(name)) for name, s in stats.items()},
        "reports": {name: r for name, r in reports.items() if r},
    }


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def print_summary(summary: dict[str, Any], file: Any = None) -> None:
    """Print the summary as tables (rich): per node, then the whole graph, then node reports."""
    from rich.table import Table

    from pipeline.console import console, print_fitted

    out = console(file)
    headers = ["node", "pkts in", "samples in", "pkts out", "samples out", "gaps", "proc p50 µs", "proc p99 µs"]
    rows = [[name, _fmt(s["packets_in"]), _fmt(s["samples_in"]), _fmt(s["packets_out"]), _fmt(s["samples_out"]),
             _fmt(s["gaps"]), _fmt(s["proc_us_p50"]), _fmt(s["proc_us_p99"])] for name, s in summary["nodes"].items()]
    print_fitted(f"graph {summary['graph']!r} on runner {summary['runner']!r}", headers, rows, out=out)
    events = Table(title="counted events (drops, gaps, catch-ups, ...; one row per counter)", title_justify="left")
    events.add_column("node")
    events.add_column("counter", overflow="fold")
    events.add_column("count", justify="right")
    for name, s in summary["nodes"].items():
        for k, v in s["counters"].items():
            if v:
                events.add_row(name, str(k), _fmt(v))
    if events.row_count:
        out.print(events)
    else:
        out.print("counted events: none")
    lat = summary["latency"]
    whole = Table(title="whole graph", title_justify="left", show_header=False)
    whole.add_column("what")
    whole.add_column("value", justify="right")
    whole.add_row("end-to-end latency p50 / p99 / max (ms)",
                  f"{_fmt(lat['p50_ms'], 3)} / {_fmt(lat['p99_ms'], 3)} / {_fmt(lat['max_ms'], 3)}")
    whole.add_row("packets measured", _fmt(lat["count"]))
    whole.add_row("wall time (s)", _fmt(summary["wall_s"], 2))
    whole.add_row("source samples", _fmt(summary["source_samples"]))
    whole.add_row("samples per second", _fmt(summary["samples_per_s"], 0))
    whole.add_row("stopped by", summary["stopped_by"])
    out.print(whole)
    for name, report in summary["reports"].items():
        table = Table(title=f"report of {name!r}", title_justify="left", show_header=False)
        table.add_column("key")
        table.add_column("value", justify="right")
        for key, value in report.items():
            table.add_row(str(key), _fmt(value, 4) if isinstance(value, float) else str(value))
        out.print(table)


def write_json(summary: dict[str, Any], path: str | Path) -> None:
    """Write the summary to ``path`` as indented JSON."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")
