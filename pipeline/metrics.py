"""Run metrics shared by every runner: per-node counts and timings, end-to-end latency, summary.

Each runner keeps one :class:`NodeStats` per node (in whatever process runs the node), one
:class:`SeqTracker` per receiving node (a gap in sequence numbers is a loss), and one
:class:`LatencyStats` for packets leaving the graph; :func:`build_summary` turns them into the
summary that ``spikeloop run`` prints and writes as JSON.

Everything here is fixed-size, however long a session runs: timings and latencies go into
:class:`StreamingHistogram` (log-spaced 1 % bins; percentiles within 1 % of exact, count, min,
max and mean exact), never into a list of samples. The JSON summary is strict: NaN and ±Inf are
written as ``null`` (:func:`json_safe`).
"""
from __future__ import annotations

import json
import math
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from pipeline.packet import Packet

PROC_NS_RANGE = (1.0, 1e12)
"""Processing times resolved by :class:`NodeStats` histograms: 1 ns to 1,000 s (ns)."""
LATENCY_S_RANGE = (1e-7, 1e4)
"""Latencies resolved by :class:`LatencyStats`: 0.1 µs to 10,000 s (s); negative values mirror."""


class StreamingHistogram:
    """Fixed-memory distribution of a stream of numbers: exact count/min/max/mean, percentiles to 1 %.

    Values are binned on a logarithmic grid (HDR-histogram style): bin ``i`` of the positive side
    covers ``[lo * r**i, lo * r**(i+1))`` with ``r = 1 + rel_width`` (default 1 %), so a percentile
    read back at a bin's geometric centre is within ``sqrt(r) - 1`` (about 0.5 %) of the exact
    order statistic. Negative values use a mirrored grid (allocated on the first negative value);
    values with ``|v| < lo`` count in one zero bin, values beyond ``hi`` in the outermost bin
    (their percentiles are clamped to the exact min/max). ``count``, ``min``, ``max`` and ``sum``
    are exact (``sum`` in float64). NaN values are counted in ``nan`` and otherwise left out.

    Memory does not grow with the number of values: one int64 counts array of
    ``ceil(log(hi/lo) / log(r))`` bins per sign (2,546 bins, 20 kB, for the default 11 decades)
    and a staging buffer of at most ``batch`` values, which :meth:`append` fills (fast, no numpy
    call per value) and which is binned in one vectorised step when full.

    Args:
        lo, hi: smallest and largest magnitudes resolved (in the caller's unit: ns, s, ...).
        rel_width: relative bin width (0.01 = 1 %).
        batch: staging buffer length (values).
    """

    __slots__ = ("lo", "hi", "rel_width", "batch", "_log_lo", "_inv_log_r", "_pos", "_neg", "zero",
                 "count", "sum", "min", "max", "nan", "_buf")

    def __init__(self, lo: float = 1e-7, hi: float = 1e4, rel_width: float = 0.01, batch: int = 4096) -> None:
        if not (0 < lo < hi) or not (0 < rel_width < 1) or batch < 1:
            raise ValueError(f"StreamingHistogram: need 0 < lo < hi, 0 < rel_width < 1, batch >= 1 "
                             f"(got lo={lo}, hi={hi}, rel_width={rel_width}, batch={batch})")
        self.lo, self.hi, self.rel_width, self.batch = float(lo), float(hi), float(rel_width), int(batch)
        self._log_lo = math.log(self.lo)
        self._inv_log_r = 1.0 / math.log1p(self.rel_width)
        nbins = int(math.ceil(math.log(self.hi / self.lo) * self._inv_log_r)) + 1
        self._pos = np.zeros(nbins, dtype=np.int64)
        self._neg: np.ndarray | None = None
        self.zero = 0
        self.nan = 0  # NaN values offered: counted here, not binned, not in ``count``
        self.count = 0
        self.sum = 0.0
        self.min = math.inf
        self.max = -math.inf
        self._buf = array("d")

    # --- adding values --------------------------------------------------------------------------
    def append(self, value: float) -> None:
        """Add one value (staged; binned when ``batch`` values are waiting)."""
        buf = self._buf
        buf.append(value)
        if len(buf) >= self.batch:
            self._flush()

    add = append

    def extend(self, values: "Iterable[float] | np.ndarray | StreamingHistogram") -> None:
        """Add many values at once, or merge another histogram of the same grid."""
        if isinstance(values, StreamingHistogram):
            self.merge(values)
            return
        self._flush()
        self._bin(np.asarray(values, dtype=np.float64).ravel())

    def merge(self, other: "StreamingHistogram") -> None:
        """Add every value of ``other`` (same ``lo``/``hi``/``rel_width``) to this histogram."""
        if (other.lo, other.hi, other.rel_width) != (self.lo, self.hi, self.rel_width):
            raise ValueError("StreamingHistogram.merge: histograms have different bin grids")
        self._flush()
        other._flush()
        self._pos += other._pos
        if other._neg is not None:
            if self._neg is None:
                self._neg = np.zeros_like(self._pos)
            self._neg += other._neg
        self.zero += other.zero
        self.nan += other.nan
        self.count += other.count
        self.sum += other.sum
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)

    def _flush(self) -> None:
        if self._buf:
            values = np.frombuffer(self._buf, dtype=np.float64).copy()
            del self._buf[:]
            self._bin(values)

    def _bin(self, v: np.ndarray) -> None:
        if v.size == 0:
            return
        isnan = np.isnan(v)
        if isnan.any():  # NaN has no place on the grid: counted apart
            self.nan += int(isnan.sum())
            v = v[~isnan]
        if v.size == 0:
            return
        self.count += int(v.size)
        self.sum += float(np.sum(v))
        self.min = min(self.min, float(v.min()))
        self.max = max(self.max, float(v.max()))
        mag = np.abs(v)
        small = mag < self.lo
        self.zero += int(small.sum())
        nbins = self._pos.size
        with np.errstate(divide="ignore"):
            idx = np.floor((np.log(np.where(small, self.lo, mag)) - self._log_lo) * self._inv_log_r)
        idx = np.clip(idx, 0, nbins - 1).astype(np.int64)
        neg = v < 0
        pos_sel = ~small & ~neg
        self._pos += np.bincount(idx[pos_sel], minlength=nbins)
        neg_sel = ~small & neg
        if neg_sel.any():
            if self._neg is None:
                self._neg = np.zeros_like(self._pos)
            self._neg += np.bincount(idx[neg_sel], minlength=nbins)

    # --- reading ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.count + len(self._buf)

    @property
    def nbytes(self) -> int:
        """Bytes held in count arrays (fixed by the grid, independent of how many values came)."""
        return self._pos.nbytes + (self._neg.nbytes if self._neg is not None else 0)

    def mean(self) -> float | None:
        self._flush()
        return self.sum / self.count if self.count else None

    def _centres(self) -> np.ndarray:
        return np.exp(self._log_lo + (np.arange(self._pos.size) + 0.5) / self._inv_log_r)

    def percentile(self, q: "float | Sequence[float]") -> "float | None | list[float | None]":
        """Percentile(s) ``q`` in [0, 100], as ``np.percentile`` (linear) within ``rel_width``/2.

        Returns None when empty (a list of None for a sequence ``q``).
        """
        self._flush()
        many = not np.isscalar(q)
        qs = np.atleast_1d(np.asarray(q, dtype=np.float64))
        if self.count == 0:
            return [None] * qs.size if many else None
        centres = self._centres()
        neg = self._neg if self._neg is not None else np.zeros(0, dtype=np.int64)
        neg_centres = -centres[: neg.size]
        # ascending order of values: negatives from the largest magnitude down, zero bin, positives
        counts = np.concatenate([neg[::-1], [self.zero], self._pos])
        values = np.concatenate([neg_centres[::-1], [0.0], centres])
        cum = np.cumsum(counts)
        out: list[float | None] = []
        for qq in qs:
            h = (self.count - 1) * float(qq) / 100.0
            k = int(math.floor(h))
            frac = h - k
            lo_v = self._order_stat(k, cum, values)
            hi_v = self._order_stat(min(k + 1, self.count - 1), cum, values)
            out.append(float(lo_v + frac * (hi_v - lo_v)))
        return out if many else out[0]

    def _order_stat(self, k: int, cum: np.ndarray, values: np.ndarray) -> float:
        """Estimate of the k-th smallest value (0-based), clamped to the exact [min, max]."""
        if k <= 0:
            return self.min
        if k >= self.count - 1:
            return self.max
        b = int(np.searchsorted(cum, k + 1))
        return min(max(float(values[b]), self.min), self.max)

    def summary(self, scale: float = 1.0) -> dict[str, Any]:
        """``{count, mean, min, p50, p90, p99, p999, max}`` with values multiplied by ``scale``."""
        self._flush()
        if self.count == 0:
            return {"count": 0, "mean": None, "min": None, "p50": None, "p90": None, "p99": None,
                    "p999": None, "max": None}
        p50, p90, p99, p999 = self.percentile([50, 90, 99, 99.9])
        return {"count": self.count, "mean": self.sum / self.count * scale, "min": self.min * scale,
                "p50": p50 * scale, "p90": p90 * scale, "p99": p99 * scale, "p999": p999 * scale,
                "max": self.max * scale}

    def __getstate__(self) -> dict[str, Any]:
        self._flush()
        return {k: getattr(self, k) for k in self.__slots__}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for k, v in state.items():
            setattr(self, k, v)


def _proc_histogram() -> StreamingHistogram:
    return StreamingHistogram(*PROC_NS_RANGE)


@dataclass
class NodeStats:
    """Counts and processing times of one node.

    Attributes:
        packets_in, samples_in: packets/samples received on all input ports.
        packets_out, samples_out: packets/samples emitted on all output ports.
        gaps: packets missing in input sequence numbers (a loss between nodes).
        proc_ns: processing time per call (``process``/``read``/``tick``), nanoseconds, as a
            fixed-memory :class:`StreamingHistogram` (``proc_ns.append(ns)`` as with a list).
    """

    packets_in: int = 0
    samples_in: int = 0
    packets_out: int = 0
    samples_out: int = 0
    gaps: int = 0
    proc_ns: StreamingHistogram = field(default_factory=_proc_histogram)

    def to_dict(self, counters: dict[str, int] | None = None) -> dict[str, Any]:
        h = self.proc_ns
        p50, p99 = h.percentile([50, 99])
        return {
            "packets_in": self.packets_in,
            "samples_in": self.samples_in,
            "packets_out": self.packets_out,
            "samples_out": self.samples_out,
            "gaps": self.gaps,
            "calls": h.count,
            "proc_us_p50": None if p50 is None else p50 / 1e3,
            "proc_us_p99": None if p99 is None else p99 / 1e3,
            "proc_us_max": h.max / 1e3 if h.count else None,
            "proc_us_total": h.sum / 1e3,
            "counters": dict(counters or {}),
        }


class SeqTracker:
    """Detects gaps in per-edge sequence numbers: returns how many packets went missing.

    Fast path: :attr:`last` is the public table ``edge -> newest sequence number`` that
    :meth:`check` keeps. A per-packet loop may bind it once and do what :meth:`check` does
    without the call::

        last = table.get(edge); table[edge] = seq
        skipped = seq - last - 1 if last is not None and seq >= 0 and seq - last > 1 else 0

    The table object is never replaced (:meth:`load` fills it in place), so a binding stays valid
    across a restore. :meth:`snapshot` / :meth:`load` save and resume it (checkpoints).
    """

    def __init__(self) -> None:
        self.last: dict[Any, int] = {}

    def check(self, edge: Any, seq: int) -> int:
        """Record ``seq`` arriving on ``edge``; return the number of packets skipped (0 if none)."""
        last = self.last.get(edge)
        self.last[edge] = seq
        if last is None or seq < 0:
            return 0
        return max(0, seq - last - 1)

    def snapshot(self) -> dict[Any, int]:
        """A copy of the table (for a checkpoint)."""
        return dict(self.last)

    def load(self, table: dict[Any, int]) -> None:
        """Resume from :meth:`snapshot` (in place: bindings of :attr:`last` stay valid)."""
        self.last.clear()
        self.last.update(table)


class SeqCounter:
    """Assigns consecutive sequence numbers per output stream ``(node, port)``.

    Fast path: :attr:`next` is the public table ``stream -> next number`` that :meth:`stamp`
    keeps. A per-packet loop may bind it once and do what :meth:`stamp` does without the call::

        n = table.get(stream, 0); packet.seq = n; table[stream] = n + 1

    The table object is never replaced (:meth:`load` fills it in place), so a binding stays valid
    across a restore. :meth:`snapshot` / :meth:`load` save and resume it (checkpoints).
    """

    def __init__(self) -> None:
        self.next: dict[Any, int] = {}

    def stamp(self, stream: Any, packet: Packet) -> Packet:
        n = self.next.get(stream, 0)
        packet.seq = n
        self.next[stream] = n + 1
        return packet

    def snapshot(self) -> dict[Any, int]:
        """A copy of the table (for a checkpoint)."""
        return dict(self.next)

    def load(self, table: dict[Any, int]) -> None:
        """Resume from :meth:`snapshot` (in place: bindings of :attr:`next` stay valid)."""
        self.next.clear()
        self.next.update(table)


class LatencyStats:
    """Latencies (seconds) of packets leaving the graph, in fixed memory.

    ``values`` is a :class:`StreamingHistogram` (0.1 µs .. 10,000 s, 1 % bins): percentiles are
    within 1 % of exact, count/min/max/mean exact. A runner ships ``values`` (or the whole
    object) between processes and merges with :meth:`extend`.
    """

    def __init__(self) -> None:
        self.values = StreamingHistogram(*LATENCY_S_RANGE)

    def add(self, seconds: float) -> None:
        self.values.append(seconds)

    def extend(self, seconds: "Iterable[float] | StreamingHistogram | LatencyStats") -> None:
        """Add many latencies (s), or merge another :class:`LatencyStats` / its ``values``."""
        if isinstance(seconds, LatencyStats):
            seconds = seconds.values
        self.values.extend(seconds)

    merge = extend

    def to_dict(self) -> dict[str, Any]:
        h = self.values
        p50, p99 = h.percentile([50, 99])
        return {
            "count": h.count,
            "p50_ms": None if p50 is None else p50 * 1e3,
            "p99_ms": None if p99 is None else p99 * 1e3,
            "max_ms": h.max * 1e3 if h.count else None,
        }


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
    whole.add_row("in-graph latency p50 / p99 / max (ms)",
                  f"{_fmt(lat['p50_ms'], 3)} / {_fmt(lat['p99_ms'], 3)} / {_fmt(lat['max_ms'], 3)}")
    whole.add_row("packets measured", _fmt(lat["count"]))
    e2e = summary.get("latency_end_to_end")  # sample timestamp -> sink, LSL clock (live/paced runs)
    if e2e:
        whole.add_row("end-to-end latency p50 / p99 / max (ms)",
                      f"{_fmt(e2e['p50_ms'], 3)} / {_fmt(e2e['p99_ms'], 3)} / {_fmt(e2e['max_ms'], 3)}"
                      if e2e["count"] else "- (replay at speed: max: no live clock)")
    for key, label in (("restarts", "actor restarts"), ("duplicates_dropped", "duplicate packets dropped"),
                       ("dropped_after_end", "packets after a node's end (dropped)")):
        value = summary.get(key)
        if value:
            whole.add_row(label, ", ".join(f"{g}: {n}" for g, n in value.items()) if isinstance(value, dict) else _fmt(value))
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
            table.add_row(str(key), _fmt(value, 4) if value is None or isinstance(value, float) else str(value))
        out.print(table)


def json_safe(value: Any) -> Any:
    """``value`` with every NaN/±Inf replaced by None and numpy scalars/arrays made plain Python.

    Dicts (keys made strings), lists, tuples and sets are walked recursively, so the result always
    serialises as strict JSON (RFC 8259 has no NaN or Infinity): an undefined number is ``null``.
    """
    if isinstance(value, dict):
        return {(k if isinstance(k, str) else str(_plain(k))): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    value = _plain(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value


def dumps_json(summary: Any, indent: int | None = 2) -> str:
    """Strict JSON text of ``summary`` (NaN/Inf as ``null``; raises on anything else unknown)."""
    return json.dumps(json_safe(summary), indent=indent, allow_nan=False, default=_json_default)


def write_json(summary: dict[str, Any], path: str | Path) -> None:
    """Write the summary to ``path`` as indented, strict JSON (NaN/Inf written as ``null``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dumps_json(summary) + "\n")


def _json_default(value: Any) -> Any:
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")
