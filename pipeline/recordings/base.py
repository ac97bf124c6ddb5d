"""In-memory form of a recording: named streams of samples with timestamps.

Every reader (XDF, NeuroBench ``.mat``) returns a :class:`Recording`; the XDF writer and the replay
source consume one.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.errors import RecordingError
from pipeline.packet import StreamInfo


@dataclass
class RecordedStream:
    """One stream of a recording.

    Attributes:
        info: its description (name, type, channels, rate, labels, units).
        data: shape ``(samples, channels)``, dtype ``info.dtype``.
        timestamps: shape ``(samples,)``, seconds on the recording's clock.
        clock_offsets: shape ``(k, 2)``: rows of (collection time s, offset s) as in XDF.
    """

    info: StreamInfo
    data: np.ndarray
    timestamps: np.ndarray
    clock_offsets: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))

    def __post_init__(self) -> None:
        if self.data.ndim != 2 or self.data.shape[1] != self.info.channel_count:
            raise RecordingError(
                f"stream {self.info.name!r}: data shape {self.data.shape} does not match "
                f"{self.info.channel_count} channels"
            )
        if self.timestamps.shape != (self.data.shape[0],):
            raise RecordingError(
                f"stream {self.info.name!r}: {self.timestamps.shape[0]} timestamps for "
                f"{self.data.shape[0]} samples"
            )


@dataclass
class Recording:
    """A set of streams recorded together, plus file-level metadata (JSON-serialisable)."""

    streams: dict[str, RecordedStream]
    metadata: dict[str, Any] = field(default_factory=dict)

    def stream(self, name: str) -> RecordedStream:
        """The stream called ``name``; a clear error listing the available names otherwise."""
        try:
            return self.streams[name]
        except KeyError:
            raise RecordingError(
                f"no stream {name!r} in recording; it has: {', '.join(sorted(self.streams)) or 'none'}"
            ) from None
