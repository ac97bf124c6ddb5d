"""The live status line: one line a second on a terminal while a run goes on.

Shows source and sink rates (samples/s over the last second), in-graph and end-to-end latency
p50 so far, and every non-zero counter (gaps, drops, restarts, ...). Runners call
:meth:`StatusLine.update` in their loops with a function that reads a :class:`Snapshot`; it is
called only when a redraw is due (once a second), so reading it may cost a little.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Callable, TextIO


@dataclass
class Snapshot:
    """Totals so far: samples out of sources, samples into sinks, latency p50s (ms), counters."""

    source_samples: int = 0
    sink_samples: int = 0
    in_graph_p50_ms: float | None = None
    e2e_p50_ms: float | None = None
    counters: dict[str, int] = field(default_factory=dict)


def snapshot_from(executors: list, extra: dict[str, int] | None = None) -> Snapshot:
    """A snapshot from in-process :class:`GroupExecutor` s (the ``local`` runner)."""
    snap = Snapshot(counters=dict(extra or {}))
    for ex in executors:
        snap.source_samples += sum(ex.stats[n].samples_out for n in ex.sources)
        snap.sink_samples += sum(ex.stats[n].samples_in for n in ex.sinks)
        lat, e2e = ex.latency.to_dict(), ex.e2e.to_dict()
        snap.in_graph_p50_ms = lat.get("p50_ms")
        snap.e2e_p50_ms = e2e.get("p50_ms")
        for name, st in ex.stats.items():
            if st.gaps:
                snap.counters[f"{name}.gaps"] = st.gaps
        for name, counts in ex.counters().items():
            for key, value in counts.items():
                if value and not key.startswith("packets."):
                    snap.counters[f"{name}.{key}"] = int(value)
    return snap


class StatusLine:
    """Redraws one status line on ``stream`` (stderr) at most once per ``interval_s``."""

    def __init__(self, enabled: bool, interval_s: float = 1.0, stream: TextIO | None = None) -> None:
        self.enabled = enabled
        self.interval_s = interval_s
        self.stream = stream or sys.stderr
        self._last_t = time.monotonic()
        self._last: Snapshot | None = None
        self._drawn = False

    def message(self, text: str) -> None:
        """Show ``text`` on the status line now (e.g. "starting Ray…")."""
        if self.enabled:
            self.stream.write("\r\x1b[2K" + text)
            self.stream.flush()
            self._drawn = True

    def update(self, read: Callable[[], Snapshot]) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last_t < self.interval_s:
            return
        snap = read()
        dt = now - self._last_t
        prev = self._last or Snapshot()
        self._last, self._last_t = snap, now
        self.message(format_status(snap, prev, dt))

    def close(self) -> None:
        if self.enabled and self._drawn:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
            self._drawn = False


def format_status(snap: Snapshot, prev: Snapshot, dt: float) -> str:
    """``in 250/s  out 250/s  in-graph p50 0.21 ms  end-to-end p50 0.9 ms  gaps=1``."""
    rate_in = (snap.source_samples - prev.source_samples) / dt if dt > 0 else 0.0
    rate_out = (snap.sink_samples - prev.sink_samples) / dt if dt > 0 else 0.0
    parts = [f"in {rate_in:,.0f}/s", f"out {rate_out:,.0f}/s"]
    if snap.in_graph_p50_ms is not None:
        parts.append(f"in-graph p50 {snap.in_graph_p50_ms:.2f} ms")
    if snap.e2e_p50_ms is not None:
        parts.append(f"end-to-end p50 {snap.e2e_p50_ms:.2f} ms")
    parts += [f"{k}={v}" for k, v in sorted(snap.counters.items()) if v]
    return "  ".join(parts)
