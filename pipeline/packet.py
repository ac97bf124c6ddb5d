"""Packets and stream descriptions: what travels along a graph's edges.

A *stream description* (:class:`StreamInfo`) travels once, when the graph opens. A *packet*
(:class:`Packet`) is one chunk of one stream and travels many times.

Conventions (every node and runner follows them):

* ``data`` has shape ``(samples, channels)``. Irregular (event) streams use the same layout: one
  row per event, the columns named by ``channel_labels`` (for example ``("channel", "unit")`` for
  spike events or ``("x", "y", "polarity")`` for event-camera events).
* ``timestamps`` has shape ``(samples,)``, in seconds on the LSL clock (``pylsl.local_clock()``).
  An output sample carries the timestamp of the newest input sample that produced it.
* ``seq`` is a per-stream sequence number assigned by the transport (the runner): a gap is a loss
  and is counted.
* ``t_enter`` is the ``local_clock()`` reading, in seconds, when the oldest data this packet
  derives from entered the graph; end-to-end latency is ``local_clock() - t_enter`` when the
  packet leaves.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

IRREGULAR_RATE = 0.0
"""``nominal_rate`` of an irregular (event) stream, as in LSL."""


@dataclass(frozen=True)
class StreamInfo:
    """Description of one stream, fixed for the life of a graph.

    Attributes:
        name: stream name (LSL ``name``), e.g. ``"spikes"``.
        type: stream content type (LSL ``type``), e.g. ``"SpikeCounts"``, ``"Velocity"``.
        channel_count: number of columns in ``Packet.data``.
        nominal_rate: samples per second (Hz); ``0.0`` for irregular streams.
        dtype: numpy dtype name of ``Packet.data``, e.g. ``"float32"``.
        channel_labels: one label per channel (empty = unlabelled).
        units: one unit string per channel, e.g. ``"counts"``, ``"m/s"`` (empty = unknown).
        source_id: LSL source id, if any.
        metadata: free-form extra description (JSON-serialisable), e.g. ``{"delay_s": 0.064}``.
    """

    name: str
    type: str
    channel_count: int
    nominal_rate: float
    dtype: str = "float64"
    channel_labels: tuple[str, ...] = ()
    units: tuple[str, ...] = ()
    source_id: str = ""
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.channel_count < 0:
            raise ValueError(f"stream {self.name!r}: channel_count must be >= 0, got {self.channel_count}")
        if self.nominal_rate < 0:
            raise ValueError(f"stream {self.name!r}: nominal_rate must be >= 0 Hz, got {self.nominal_rate}")
        for what, values in (("channel_labels", self.channel_labels), ("units", self.units)):
            if values and len(values) != self.channel_count:
                raise ValueError(
                    f"stream {self.name!r}: {len(values)} {what} for {self.channel_count} channels"
                )
        np.dtype(self.dtype)  # raises TypeError on an unknown dtype name

    @property
    def irregular(self) -> bool:
        """True for event streams (``nominal_rate == 0``)."""
        return self.nominal_rate == IRREGULAR_RATE

    def with_(self, **changes: Any) -> "StreamInfo":
        """A copy with some fields changed (``dataclasses.replace``)."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (for summaries, Ray transport, file headers)."""
        return {
            "name": self.name,
            "type": self.type,
            "channel_count": self.channel_count,
            "nominal_rate": self.nominal_rate,
            "dtype": self.dtype,
            "channel_labels": list(self.channel_labels),
            "units": list(self.units),
            "source_id": self.source_id,
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "StreamInfo":
        return cls(
            name=d["name"],
            type=d["type"],
            channel_count=int(d["channel_count"]),
            nominal_rate=float(d["nominal_rate"]),
            dtype=d.get("dtype", "float64"),
            channel_labels=tuple(d.get("channel_labels", ())),
            units=tuple(d.get("units", ())),
            source_id=d.get("source_id", ""),
            metadata=dict(d.get("metadata", {})),
        )


@dataclass(slots=True)
class Packet:
    """One chunk of one stream.

    Attributes:
        data: shape ``(samples, channels)``.
        timestamps: shape ``(samples,)``, seconds on the LSL clock.
        t_enter: ``local_clock()`` seconds when the data entered the graph (for latency).
        seq: per-stream sequence number, set by the runner on each output edge (-1 = unset).
    """

    data: np.ndarray
    timestamps: np.ndarray
    t_enter: float
    seq: int = -1

    def __post_init__(self) -> None:
        if self.data.ndim != 2:
            raise ValueError(f"Packet.data must be 2-D (samples, channels), got shape {self.data.shape}")
        if self.timestamps.shape != (self.data.shape[0],):
            raise ValueError(
                f"Packet.timestamps shape {self.timestamps.shape} does not match "
                f"{self.data.shape[0]} samples"
            )

    @property
    def n_samples(self) -> int:
        return self.data.shape[0]

    def derive(self, data: np.ndarray, timestamps: np.ndarray | None = None) -> "Packet":
        """A packet computed from this one: same ``t_enter``, same timestamps unless given."""
        return Packet(data, self.timestamps if timestamps is None else timestamps, self.t_enter)


def concat_packets(packets: list[Packet]) -> Packet:
    """Join packets of one stream in order; ``t_enter`` is the oldest one's (worst-case latency)."""
    if len(packets) == 1:
        return packets[0]
    return Packet(
        np.concatenate([p.data for p in packets], axis=0),
        np.concatenate([p.timestamps for p in packets]),
        min(p.t_enter for p in packets),
    )
