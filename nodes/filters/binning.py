"""Event binning node (kind ``event_binner``): irregular event streams → fixed-rate count frames.

Input: an irregular stream (``nominal_rate == 0``), one row per event, timestamps (events,) in
seconds on the graph clock (an ``lsl_inlet`` with ``clock_sync``, or a replay).

* ``events: spikes`` — columns ``(channel, unit)`` (found by label, else columns 0 and 1); the
  frame has ``channels`` counts, one per electrode channel, all units of a channel summed
  (``binarize: true`` clips counts to 1, as NeuroBench ORs the units of a channel).
* ``events: dvs`` — columns ``(x, y, polarity)`` (by label, else columns 0, 1, 2); the frame is
  an event-camera count image flattened in C-order from shape ``(2, height, width)`` (polarity
  plane 0 = OFF (polarity <= 0), 1 = ON (polarity > 0)), or ``(height, width)`` with
  ``polarity: false`` (both polarities summed): channel index ``(p·height + y)·width + x``.

Bins: a fixed grid of ``bin_s`` seconds anchored at 0 on the clock, bin k = ``[k·bin_s, (k+1)·bin_s)``.
A bin *closes* when the graph clock (``tick(now)``) or the newest event time passes its end by
``lateness_s``; every closed bin is emitted, empty or not, so frames come at the fixed rate even
when no event arrives. Output timestamps are the bins' end times ``(k+1)·bin_s``; the output rate is
``1 / bin_s`` Hz, dtype float32, units ``counts``.

Nothing is lost silently (``counters()``):

* ``late_events``: events whose bin had already closed. ``late_policy: drop`` (default) leaves them
  out of the counts; ``late_policy: oldest_open`` adds them to the oldest still-open bin.
* ``out_of_range``: channel / x / y / polarity outside the declared frame (left out).
* ``bad_events``: non-finite values or timestamps (left out).
"""
from __future__ import annotations

from typing import Any, Literal

import numpy as np

from pipeline.clock import local_clock
from pipeline.node import Layout, Node, StreamMismatch, param_value, require
from pipeline.packet import Packet, StreamInfo

EVENT_KINDS = ("spikes", "dvs")
LATE_POLICIES = ("drop", "oldest_open")


class EventBinner(Node):
    """Count events per channel (or pixel) in fixed time bins that close on time.

    Params:
        bin_s: bin width in seconds (default 0.004 = 250 Hz frames).
        events: ``spikes`` (columns channel, unit) or ``dvs`` (columns x, y, polarity).
        channels: number of electrode channels (spikes; required there).
        width, height: sensor size in pixels (dvs; required there).
        polarity: keep ON/OFF as two planes (dvs; default true).
        binarize: clip counts to 1 (default false).
        lateness_s: how long after a bin's end it waits for stragglers, seconds (default 0.002).
        late_policy: ``drop`` (default) or ``oldest_open`` (see module docs); both counted.
        tick_s: seconds between clock ticks (default ``bin_s / 4``).
        stream_name: output stream name (default ``<input name>_binned``).
    """

    kind = "event_binner"

    @classmethod
    def layout(cls, params: dict[str, Any]) -> Layout:
        """Ticks every ``tick_s`` (default ``bin_s / 4``)."""
        tick_s, bin_s = param_value(cls, params, "tick_s"), param_value(cls, params, "bin_s")
        return Layout(tuple(cls.inputs), tuple(cls.outputs), (), float(tick_s) if tick_s is not None else float(bin_s) / 4)

    def __init__(self, bin_s: float = 0.004, events: Literal["spikes", "dvs"] = "spikes", channels: int | None = None,
                 width: int | None = None, height: int | None = None, polarity: bool = True,
                 binarize: bool = False, lateness_s: float = 0.002, late_policy: Literal["drop", "oldest_open"] = "drop",
                 tick_s: float | None = None, stream_name: str | None = None) -> None:
        if not bin_s > 0:
            raise ValueError(f"event_binner: bin_s must be > 0 s, got {bin_s}")
        if events not in EVENT_KINDS:
            raise ValueError(f"event_binner: events must be one of {EVENT_KINDS}, got {events!r}")
        if late_policy not in LATE_POLICIES:
            raise ValueError(f"event_binner: late_policy must be one of {LATE_POLICIES}, got {late_policy!r}")
        if lateness_s < 0:
            raise ValueError(f"event_binner: lateness_s must be >= 0 s, got {lateness_s}")
        if events == "spikes":
            if not (isinstance(channels, int) and channels >= 1):
                raise ValueError(f"event_binner: events 'spikes' needs channels >= 1, got {channels!r}")
            self.shape: tuple[int, ...] = (channels,)
        else:
            if not (isinstance(width, int) and width >= 1 and isinstance(height, int) and height >= 1):
                raise ValueError(f"event_binner: events 'dvs' needs width and height >= 1, got {width!r} x {height!r}")
            self.shape = (2, height, width) if polarity else (height, width)
        self.bin_s, self.events, self.polarity, self.binarize = float(bin_s), events, bool(polarity), bool(binarize)
        self.lateness_s, self.late_policy = float(lateness_s), late_policy
        self.tick_interval = float(tick_s) if tick_s is not None else self.bin_s / 4
        if not self.tick_interval > 0:
            raise ValueError(f"event_binner: tick_s must be > 0 s, got {tick_s}")
        self.stream_name = stream_name
        self.width = int(np.prod(self.shape))
        self._cols: tuple[int, ...] = ()
        self._next: int | None = None  # index of the oldest open bin
        self._open: dict[int, np.ndarray] = {}  # bin index -> counts (width,)
        self._watermark = -np.inf
        self._counts = {"late_events": 0, "out_of_range": 0, "bad_events": 0}

    def open(self, inputs: dict[str, StreamInfo]) -> dict[str, StreamInfo]:
        info = require(inputs, "in", regular=False)
        names = ("channel", "unit") if self.events == "spikes" else ("x", "y", "polarity")
        needed = names[:1] if self.events == "spikes" else names
        labels = [label.lower() for label in info.channel_labels]
        if labels and all(n in labels for n in needed):
            self._cols = tuple(labels.index(n) for n in needed)
        else:
            self._cols = tuple(range(len(needed)))
        if info.channel_count < len(needed):
            raise _mismatch(info, len(needed), needed)
        kind = "SpikeCounts" if self.events == "spikes" else "EventFrames"
        out_labels = tuple(f"ch{k}" for k in range(self.width)) if self.events == "spikes" else ()
        out = StreamInfo(
            name=self.stream_name or f"{info.name}_binned", type=kind, channel_count=self.width,
            nominal_rate=1.0 / self.bin_s, dtype="float32", channel_labels=out_labels,
            units=("counts",) * self.width, source_id=info.source_id,
            metadata={"bin_s": self.bin_s, "frame_shape": list(self.shape), "events": self.events},
        )
        return {"out": out}

    # --- events ----------------------------------------------------------------------------------
    def _flat_index(self, data: np.ndarray) -> np.ndarray:
        """Frame index (events,) of each event; -1 for out of range."""
        cols = [data[:, c] for c in self._cols]
        if self.events == "spikes":
            ch = cols[0]
            ok = (ch >= 0) & (ch < self.shape[0]) & (ch == np.floor(ch))
            return np.where(ok, ch, -1).astype(np.int64)
        x, y, p = cols
        h, w = self.shape[-2], self.shape[-1]
        ok = (x >= 0) & (x < w) & (y >= 0) & (y < h) & (x == np.floor(x)) & (y == np.floor(y))
        idx = y * w + x
        if self.polarity:
            idx = idx + (p > 0) * (h * w)
        return np.where(ok, idx, -1).astype(np.int64)

    def process(self, port: str, packet: Packet) -> dict[str, Packet]:
        data = np.asarray(packet.data, dtype=np.float64)
        stamps = np.asarray(packet.timestamps, dtype=np.float64)
        if data.shape[0]:
            good = np.isfinite(stamps) & np.all(np.isfinite(data[:, list(self._cols)]), axis=1)
            self._counts["bad_events"] += int(np.sum(~good))
            data, stamps = data[good], stamps[good]
        if data.shape[0]:
            idx = self._flat_index(data)
            inside = idx >= 0
            self._counts["out_of_range"] += int(np.sum(~inside))
            idx, stamps = idx[inside], stamps[inside]
        if stamps.size:
            bins = np.floor(stamps / self.bin_s).astype(np.int64)
            if self._next is None:
                self._next = int(bins.min())
            late = bins < self._next
            n_late = int(np.sum(late))
            if n_late:
                self._counts["late_events"] += n_late
                if self.late_policy == "oldest_open":
                    bins = np.where(late, self._next, bins)
                else:
                    bins, idx = bins[~late], idx[~late]
            for k in np.unique(bins):
                acc = self._open.get(int(k))
                if acc is None:
                    acc = self._open[int(k)] = np.zeros(self.width, dtype=np.float32)
                np.add.at(acc, idx[bins == k], 1.0)
            self._watermark = max(self._watermark, float(stamps.max()))
        return self._close(packet.t_enter)

    def tick(self, now: float) -> dict[str, Packet]:
        if self._next is None:
            self._next = int(np.floor(now / self.bin_s))
        self._watermark = max(self._watermark, float(now))
        return self._close(None)

    def _close(self, t_enter: float | None) -> dict[str, Packet]:
        """Emit every bin whose end + lateness_s <= the watermark, empty ones included."""
        if self._next is None:
            return {}
        last = int(np.floor((self._watermark - self.lateness_s) / self.bin_s)) - 1  # newest closable bin
        if last < self._next:
            return {}
        ks = np.arange(self._next, last + 1)
        frames = np.zeros((ks.size, self.width), dtype=np.float32)
        for row, k in enumerate(ks):
            acc = self._open.pop(int(k), None)
            if acc is not None:
                frames[row] = acc
        if self.binarize:
            np.minimum(frames, 1.0, out=frames)
        self._next = last + 1
        stamps = (ks + 1) * self.bin_s
        return {"out": Packet(frames, stamps.astype(np.float64), local_clock() if t_enter is None else t_enter)}

    def counters(self) -> dict[str, int]:
        return dict(self._counts)

    def state(self) -> dict[str, Any]:
        return {"next": self._next, "open": {k: v.copy() for k, v in self._open.items()},
                "watermark": self._watermark, "counts": dict(self._counts)}

    def restore(self, state: dict[str, Any]) -> None:
        self._next = state["next"]
        self._open = {int(k): np.asarray(v, dtype=np.float32).copy() for k, v in state["open"].items()}
        self._watermark = float(state["watermark"])
        self._counts.update(state["counts"])


def _mismatch(info: StreamInfo, needed: int, names: tuple[str, ...]) -> StreamMismatch:
    return StreamMismatch("in", "channel count", f">= {needed} ({', '.join(names)})", info.channel_count)
