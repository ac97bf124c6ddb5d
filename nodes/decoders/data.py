"""Reaching data for training and evaluating decoders (numpy only).

``load_data(path)`` reads a recording through ``pipeline.recordings.reaching.load_reaching``
(XDF sample recordings, NeuroBench ``.mat`` files) and returns :class:`DecoderData`.
``synthetic_data(...)`` makes a small cosine-tuned Poisson data set in memory (tests, development).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.errors import UserError


@dataclass
class DecoderData:
    """Binned spikes and velocity labels with a chronological split.

    Attributes:
        spikes: shape ``(T, C)`` float32, spike counts per 4 ms bin.
        velocity: shape ``(T, 2)`` float32, mm/s.
        timestamps: shape ``(T,)`` s.
        rate_hz: bins per second (250.0).
        split: ``{"train": slice, "val": slice, "test": slice}`` of bin indices.
        name: where the data came from.
    """

    spikes: np.ndarray
    velocity: np.ndarray
    timestamps: np.ndarray
    rate_hz: float
    split: dict[str, slice]
    name: str = ""

    @property
    def channels(self) -> int:
        return int(self.spikes.shape[1])


def load_data(path: str, mapping=None) -> DecoderData:
    """Load a reaching recording (``.xdfz``/``.xdf``/NeuroBench ``.mat``/``.nwb``) for decoding.

    ``mapping``: a ``pipeline.recordings.mapping.StreamMapping`` (which streams are neural input and
    kinematics); when given, how the streams were aligned is printed (one fact per line).
    """
    try:
        from pipeline.recordings.reaching import load_reaching
    except ImportError as exc:  # pragma: no cover - the recordings module ships with the project
        raise UserError(f"cannot read {path}: pipeline.recordings.reaching is not available ({exc})") from None
    d = load_reaching(path, mapping)
    if mapping is not None and d.alignment is not None:
        for line in d.alignment.lines():
            print(f"{path}: {line}")
    split = {k: v for k, v in d.split.items()}
    for k in ("train", "val", "test"):
        if k not in split:
            raise UserError(f"{path}: the recording's split has no {k!r} part")
    return DecoderData(np.asarray(d.spikes, dtype=np.float32), np.asarray(d.velocity, dtype=np.float32),
                       np.asarray(d.timestamps, dtype=np.float64), float(d.rate_hz), split, name=str(path))


def synthetic_data(seconds: float = 120.0, channels: int = 32, seed: int = 0, rate_hz: float = 250.0) -> DecoderData:
    """Cosine-tuned Poisson spike counts driven by smooth 2-D reaching velocity (mm/s).

    Reaches of 0.6–1.6 s towards random directions with bell-shaped speed profiles; each channel
    fires at ``base + gain·(v·d)+`` spikes/s for a preferred direction ``d``. Split 50/25/25 %.
    """
    rng = np.random.default_rng(seed)
    T = int(seconds * rate_hz)
    vel = np.zeros((T, 2))
    t = 0
    while t < T:
        dur = int(rng.uniform(0.6, 1.6) * rate_hz)
        ang = rng.uniform(0, 2 * np.pi)
        speed = rng.uniform(60, 200)
        prof = np.sin(np.linspace(0, np.pi, dur)) ** 2 * speed
        seg = slice(t, min(T, t + dur))
        vel[seg] = (prof[: seg.stop - seg.start, None] * [np.cos(ang), np.sin(ang)])
        t += dur + int(rng.uniform(0.1, 0.4) * rate_hz)
    pref = rng.uniform(0, 2 * np.pi, channels)
    dirs = np.stack([np.cos(pref), np.sin(pref)], axis=1)
    base = rng.uniform(5, 20, channels)
    gain = rng.uniform(0.1, 0.4, channels)
    lead = 25  # neurons lead movement by 100 ms
    drive = np.roll(vel, -lead, axis=0) @ dirs.T
    rate = base + gain * np.clip(drive, 0, None)  # spikes/s
    spikes = rng.poisson(rate / rate_hz).astype(np.float32)
    a, b = int(0.5 * T), int(0.75 * T)
    split = {"train": slice(0, a), "val": slice(a, b), "test": slice(b, T)}
    return DecoderData(spikes, vel.astype(np.float32), np.arange(T) / rate_hz, rate_hz, split, name=f"synthetic(seed={seed})")
