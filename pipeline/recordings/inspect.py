"""What is in a recording: per-stream facts and which streams could be neural input or kinematics.

Used by ``spikeloop inspect``. Numbers only, no printing (see ``pipeline.cli.inspect``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from pipeline.errors import RecordingError
from pipeline.recordings.base import RecordedStream, Recording
from pipeline.recordings.mapping import DEFAULT_TARGET, _kinematics_kind

GAP_FACTOR = 1.5
"""An interval longer than this many nominal sample periods is a gap (regular streams)."""


@dataclass
class StreamFacts:
    """Facts about one stream. Times in s, rates in Hz."""

    name: str
    type: str
    channels: int  # columns of the data (for spike events: channel, unit)
    event_channels: int | None  # spike-event streams: electrode channels (from the metadata or the data)
    dtype: str
    samples: int
    nominal_rate: float
    effective_rate: float  # (samples - 1) / duration; 0 when unknown
    first_s: float
    duration_s: float
    gaps: int | None  # regular streams: intervals > GAP_FACTOR periods; None for irregular
    gap_s: float  # time missing in those gaps, s
    backwards: int  # timestamps that go backwards
    clock_offsets: int  # number of (time, offset) pairs
    mean_offset_s: float
    role: str  # "neural (counts)", "neural (spike events)", "kinematics (position)", ...

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def guess_role(s: RecordedStream) -> str:
    """Which part a stream could play in a decoding dataset (a guess from its description)."""
    info = s.info
    t = f"{info.type} {info.name}".lower()
    if info.dtype == "object" or "marker" in t or ("event" in t and info.channel_count == 1):
        return "markers"
    if info.name == DEFAULT_TARGET or "target" in t:
        return "target (segments)"
    labels = [label.lower() for label in info.channel_labels]
    if info.irregular:
        if "channel" in labels or "spike" in t:
            return "neural (events)"
        return "irregular (unknown)"
    units = {u.lower() for u in info.units if u}
    if "spike" in t or "count" in t or units == {"counts"}:
        return "neural (counts)"
    if info.channel_count >= 2:
        try:
            kind, _ = _kinematics_kind(s, "auto")
            return f"kinematics {kind}"
        except RecordingError:
            pass
    if info.channel_count >= 8:
        return "neural? (many channels)"
    return "-"


def stream_facts(s: RecordedStream) -> StreamFacts:
    """Count, rate, duration, gaps and clock offsets of one stream."""
    ts = np.asarray(s.timestamps, dtype=np.float64)
    n = ts.size
    dur = float(ts[-1] - ts[0]) if n > 1 else 0.0
    eff = (n - 1) / dur if dur > 0 else 0.0
    d = np.diff(ts) if n > 1 else np.zeros(0)
    gaps: int | None = None
    gap_s = 0.0
    if s.info.nominal_rate > 0:
        period = 1.0 / s.info.nominal_rate
        big = d > GAP_FACTOR * period
        gaps = int(big.sum())
        gap_s = float(np.sum(d[big] - period))
    off = np.asarray(s.clock_offsets, dtype=np.float64).reshape(-1, 2)
    ev_ch = None
    if s.info.irregular and s.info.dtype != "object" and "channel" in [c.lower() for c in s.info.channel_labels]:
        col = [c.lower() for c in s.info.channel_labels].index("channel")
        ev_ch = int(s.info.metadata.get("channels", 0) or 0)
        if n:
            ev_ch = max(ev_ch, int(np.max(s.data[:, col])) + 1)
    return StreamFacts(
        name=s.info.name, type=s.info.type, channels=s.info.channel_count, event_channels=ev_ch,
        dtype=s.info.dtype, samples=n,
        nominal_rate=float(s.info.nominal_rate), effective_rate=float(eff), first_s=float(ts[0]) if n else 0.0,
        duration_s=dur, gaps=gaps, gap_s=gap_s, backwards=int(np.sum(d < 0)), clock_offsets=off.shape[0],
        mean_offset_s=float(off[:, 1].mean()) if off.shape[0] else 0.0, role=guess_role(s),
    )


def inspect_recording(rec: Recording) -> list[StreamFacts]:
    """Facts for every stream of ``rec``, in the recording's order."""
    return [stream_facts(s) for s in rec.streams.values()]


def suggest_mapping(facts: list[StreamFacts]) -> dict[str, str | None]:
    """The likeliest ``neural`` / ``kinematics`` / ``markers`` stream names (None where none fits).

    Prefers today's defaults (``spikes``, ``velocity``) when they exist, then counts over events,
    velocity over position.
    """
    def pick(prefix: str, default: str | None = None, prefer: str = "") -> str | None:
        cands = [f for f in facts if f.role.startswith(prefix)]
        if default and any(f.name == default for f in cands):
            return default
        cands.sort(key=lambda f: (prefer not in f.role, -f.samples))
        return cands[0].name if cands else None

    return {"neural": pick("neural", "spikes", "counts"), "kinematics": pick("kinematics", "velocity", "velocity"),
            "markers": pick("markers")}
