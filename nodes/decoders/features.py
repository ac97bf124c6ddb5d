"""Input features of the decoders, computed from 4 ms spike-count bins (numpy only).

The same functions build the training set (whole arrays) and the streaming features (a chunk plus
the last few bins of history), so training and inference see identical inputs. Each window sum is
computed by the same reduction over the same bins whatever the chunking, so streamed features
equal whole-array features exactly.

Feature kinds (C = channels, one feature row per 4 ms input bin t):

* ``binary``: ``counts[t] > 0`` as 0/1, shape ``(C,)`` (SNN_Streaming).
* ``sum``: counts summed over the last ``width`` bins (``t-width+1 .. t``), shape ``(C,)``
  (ANN 2-D: 50 bins = 200 ms; LSTM: 8 bins = 32 ms).
* ``steps``: the last ``steps × step_bins`` bins summed in ``steps`` groups, oldest first,
  shape ``(steps, C)`` (SNN_3D and ANN 3-D: 7 × 7 bins = 7 steps of 28 ms over 196 ms).

Start of a stream: bins before the first one count as zero (no spikes), so the window features of
the first ``width-1`` bins see a partially empty window. This matches how training windows are cut
from the start of a recording.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FEATURES = ("binary", "sum", "steps")


@dataclass(frozen=True)
class FeatureSpec:
    """How a decoder's inputs are made from spike counts.

    Attributes:
        kind: ``binary``, ``sum`` or ``steps``.
        width: bins in the window for ``sum`` (ignored otherwise).
        steps: number of time steps for ``steps``.
        step_bins: bins per step for ``steps``.
    """

    kind: str
    width: int = 1
    steps: int = 1
    step_bins: int = 1

    @property
    def history(self) -> int:
        """Bins of history (before the current one) a feature row needs."""
        if self.kind == "binary":
            return 0
        if self.kind == "sum":
            return self.width - 1
        return self.steps * self.step_bins - 1

    def to_dict(self) -> dict:
        return {"kind": self.kind, "width": self.width, "steps": self.steps, "step_bins": self.step_bins}

    @classmethod
    def from_dict(cls, d: dict) -> "FeatureSpec":
        if d.get("kind") not in FEATURES:
            raise ValueError(f"unknown feature kind {d.get('kind')!r}; expected one of {FEATURES}")
        return cls(str(d["kind"]), int(d.get("width", 1)), int(d.get("steps", 1)), int(d.get("step_bins", 1)))


def features(spec: FeatureSpec, counts: np.ndarray, history: np.ndarray | None = None) -> np.ndarray:
    """Feature rows for each row of ``counts``.

    Args:
        spec: the feature definition.
        counts: shape ``(n, C)``, spike counts per 4 ms bin.
        history: shape ``(spec.history, C)``, the bins just before ``counts`` (zeros at the start
            of a stream); None means zeros.

    Returns:
        float32 array, shape ``(n, C)`` for ``binary``/``sum`` or ``(n, steps, C)`` for ``steps``.
    """
    counts = np.asarray(counts, dtype=np.float32)
    n, c = counts.shape
    if spec.kind == "binary":
        return (counts > 0).astype(np.float32)
    h = spec.history
    if history is None:
        history = np.zeros((h, c), dtype=np.float32)
    joined = np.concatenate([np.asarray(history, dtype=np.float32), counts], axis=0)  # (h+n, C)
    if spec.kind == "sum":
        win = np.lib.stride_tricks.sliding_window_view(joined, spec.width, axis=0)  # (n, C, width)
        return win.sum(axis=-1, dtype=np.float32)
    total = spec.steps * spec.step_bins
    win = np.lib.stride_tricks.sliding_window_view(joined, total, axis=0)  # (n, C, total)
    grouped = win.reshape(n, c, spec.steps, spec.step_bins).sum(axis=-1, dtype=np.float32)
    return np.ascontiguousarray(grouped.transpose(0, 2, 1))  # (n, steps, C)


def next_history(spec: FeatureSpec, counts: np.ndarray, history: np.ndarray | None) -> np.ndarray:
    """The history to pass with the next chunk: the last ``spec.history`` bins seen, shape ``(h, C)``."""
    h = spec.history
    counts = np.asarray(counts, dtype=np.float32)
    if history is None:
        history = np.zeros((h, counts.shape[1]), dtype=np.float32)
    if h == 0:
        return history[:0]
    return np.concatenate([history, counts], axis=0)[-h:].copy()
