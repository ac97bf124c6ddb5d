"""Reaching data for decoders: binned spikes, cursor velocity, reach segments, the NeuroBench split.

:func:`load_reaching` reads any reaching recording (``.xdf`` / ``.xdfz`` from ``spikeloop synth``
or the recorder, NeuroBench ``.mat``, NWB) into :class:`ReachingData`. Which streams are the
neural input and the kinematics, and how they are aligned onto the neural bins, is set by a
:class:`~pipeline.recordings.mapping.StreamMapping` (rules in that module). A reach segment runs between
two target changes (NeuroBench's ``get_flag_index``: a new segment starts after the last sample
of the old target); segments are split chronologically: the first ``floor(0.5 · n)`` segments
train, the next ``floor((n − n_train) / 2)`` validate, the rest test.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import RecordingError
from pipeline.recordings.base import Recording
from pipeline.recordings.mapping import Alignment, StreamMapping, build_dataset

TRAIN_RATIO = 0.5


@dataclass
class ReachingData:
    """One reaching session, aligned on the 4 ms bins of the spikes stream.

    Attributes:
        spikes: shape ``(T, C)`` float32, spike counts per 4 ms bin.
        velocity: shape ``(T, 2)`` float32, cursor velocity (vx, vy) in mm/s.
        timestamps: shape ``(T,)`` float64, seconds (the recording's own clock).
        rate_hz: bins per second (250.0).
        segments: ``[(start, stop), ...]`` bin indices (stop exclusive) of reaches, split at target
            changes; contiguous and covering ``0..T``.
        split: ``{"train": slice, "val": slice, "test": slice}`` of bin indices, chronological
            50/25/25 % by segments.
        target: shape ``(T, 2)`` float32 target position in mm (None if the recording has none).
        name: where the data came from.
        alignment: how the streams were mapped and aligned (:class:`~pipeline.recordings.mapping.Alignment`).
    """

    spikes: np.ndarray
    velocity: np.ndarray
    timestamps: np.ndarray
    rate_hz: float
    segments: list[tuple[int, int]]
    split: dict[str, slice]
    target: np.ndarray | None = None
    name: str = ""
    alignment: Alignment | None = None

    @property
    def channels(self) -> int:
        return int(self.spikes.shape[1])

    def time_range(self, part: str) -> tuple[float, float]:
        """``(first, last)`` timestamp (s) of a split part (``"train"``, ``"val"``, ``"test"``)."""
        sl = self.split[part]
        if sl.stop <= sl.start:
            raise RecordingError(f"{self.name}: the {part!r} split is empty")
        return float(self.timestamps[sl.start]), float(self.timestamps[sl.stop - 1])


def segments_from_target(target: np.ndarray) -> list[tuple[int, int]]:
    """Reach segments from target positions, shape ``(T, 2)``: boundaries after each target change.

    As NeuroBench: index ``i`` is a boundary when ``target[i + 1] != target[i]``; segments are
    ``[(0, i1), (i1, i2), ..., (ik, T)]``.
    """
    T = target.shape[0]
    if T == 0:
        return []
    change = np.flatnonzero(np.abs(np.diff(target, axis=0)).sum(axis=1) != 0)
    bounds = [0, *change.tolist(), T]
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def split_segments(segments: list[tuple[int, int]], T: int, train_ratio: float = TRAIN_RATIO) -> dict[str, slice]:
    """Chronological train/val/test slices of bin indices from segments (NeuroBench's rule)."""
    n = len(segments)
    n_train = math.floor(train_ratio * n)
    n_val = math.floor((n - n_train) / 2)

    def start(i: int) -> int:
        return segments[i][0] if i < n else T

    a, b = start(n_train), start(n_train + n_val)
    return {"train": slice(0, a), "val": slice(a, b), "test": slice(b, T)}


def reaching_from_recording(rec: Recording, name: str = "", mapping: StreamMapping | None = None) -> ReachingData:
    """Build :class:`ReachingData` from a recording, streams chosen by ``mapping``.

    Default mapping: neural ``spikes``, kinematics ``velocity``, segments from ``target`` when
    present. The alignment rules are in :mod:`pipeline.recordings.mapping`.
    """
    try:
        d = build_dataset(rec, mapping)
    except RecordingError as exc:
        raise RecordingError(f"{name}: {exc}" if name else str(exc)) from None
    segments = d["segments"]
    T = d["spikes"].shape[0]
    if len(segments) < 4:
        raise RecordingError(
            f"{name}: only {len(segments)} reach segment(s) ({d['alignment'].segments_from}); need at least 4 "
            f"for a train/val/test split (give --markers, or a longer recording)"
        )
    return ReachingData(
        spikes=d["spikes"],
        velocity=d["velocity"],
        timestamps=np.asarray(d["timestamps"], dtype=np.float64),
        rate_hz=float(d["rate_hz"]),
        segments=segments,
        split=split_segments(segments, T),
        target=d["target"],
        name=name,
        alignment=d["alignment"],
    )


def load_reaching(path: str | Path, mapping: StreamMapping | None = None) -> ReachingData:
    """Load a reaching recording (``.xdf``, ``.xdfz``, ``.xdf.gz``, NeuroBench ``.mat``, ``.nwb``).

    ``mapping`` names the neural / kinematics / marker streams (default: ``spikes``, ``velocity``).
    """
    from pipeline.recordings import load_recording

    return reaching_from_recording(load_recording(path), name=str(path), mapping=mapping)
