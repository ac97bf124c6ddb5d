"""A least-squares (ridge) linear decoder from binned spike counts to velocity (numpy only).

Features are the spike counts of the last ``history_bins`` 4 ms bins, summed in groups of
``group_bins`` bins and stacked: ``history_bins / group_bins`` groups × C channels, plus a
constant. With the defaults (64 bins in groups of 16) the decoder sees the last 256 ms in four
64 ms bins, like a classic Wiener filter. It is fitted by ridge regression on a recording's training split
(:func:`fit_linear`), saved as a model file (family ``decoder``, kind ``linear``) and run one
output row per input row, with the input rows' timestamps.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from pipeline.errors import UserError
from pipeline.modelfile import load_model, save_model
from pipeline.node import Node, Outputs, require
from pipeline.packet import Packet, StreamInfo


def history_features(counts: np.ndarray, history_bins: int, group_bins: int,
                     previous: np.ndarray | None = None) -> np.ndarray:
    """Grouped history features.

    Args:
        counts: shape ``(n, C)`` spike counts per bin.
        history_bins: bins of history per output row (a multiple of ``group_bins``).
        group_bins: bins summed per feature group.
        previous: shape ``(history_bins - 1, C)``: the rows before ``counts`` (zeros if None).

    Returns:
        shape ``(n, G·C)`` with ``G = history_bins // group_bins``; group ``g`` of row ``t`` is the
        sum of rows ``t − g·group_bins − group_bins + 1 .. t − g·group_bins``.
    """
    n, C = counts.shape
    H = history_bins
    if previous is None:
        previous = np.zeros((H - 1, C))
    x = np.vstack([previous, counts]).astype(np.float64, copy=False)
    csum = np.zeros((x.shape[0] + 1, C))
    np.cumsum(x, axis=0, out=csum[1:])
    G = H // group_bins
    feats = np.empty((n, G * C))
    for g in range(G):  # csum[H + t - g·gb] - csum[H + t - (g+1)·gb] for every row t
        hi = H - g * group_bins
        np.subtract(csum[hi:hi + n], csum[hi - group_bins:hi - group_bins + n], out=feats[:, g * C:(g + 1) * C])
    return feats


@dataclass
class LinearModel:
    """Weights of a linear decoder: ``velocity = features @ weights + bias``.

    Attributes:
        weights: shape ``(G·C, 2)``; bias: shape ``(2,)`` mm/s.
        channels: C; rate_hz: input bin rate; history_bins, group_bins: see :func:`history_features`.
        train_r2: R² on the training split (NeuroBench definition).
    """

    weights: np.ndarray
    bias: np.ndarray
    channels: int
    rate_hz: float
    history_bins: int
    group_bins: int
    alpha: float
    train_r2: float = float("nan")
    source: str = ""

    def predict(self, counts: np.ndarray, previous: np.ndarray | None = None) -> np.ndarray:
        """Velocity (n, 2) mm/s for counts (n, C); ``previous`` as in :func:`history_features`."""
        return history_features(counts, self.history_bins, self.group_bins, previous) @ self.weights + self.bias

    def save(self, path: str | Path) -> Path:
        """Write a model file (``.npz``, family ``decoder``, kind ``linear``)."""
        return save_model(path, {"weights": self.weights, "bias": self.bias}, {
            "family": "decoder", "kind": "linear", "channels": self.channels, "rate_hz": self.rate_hz,
            "history_bins": self.history_bins, "group_bins": self.group_bins, "alpha": self.alpha,
            "train_r2": self.train_r2, "source": self.source, "outputs": ["vx", "vy"], "units": "mm/s",
        })

    @classmethod
    def load(cls, path: str | Path) -> "LinearModel":
        arrays, meta = load_model(path)
        if meta.get("family") != "decoder" or meta.get("kind") != "linear":
            raise UserError(f"{path}: not a linear decoder model (family {meta.get('family')!r}, kind {meta.get('kind')!r})")
        try:
            return cls(np.asarray(arrays["weights"], dtype=np.float64), np.asarray(arrays["bias"], dtype=np.float64),
                       int(meta["channels"]), float(meta["rate_hz"]), int(meta["history_bins"]),
                       int(meta["group_bins"]), float(meta.get("alpha", 0.0)), float(meta.get("train_r2", float("nan"))),
                       str(meta.get("source", "")))
        except KeyError as exc:
            raise UserError(f"{path}: linear decoder model lacks {exc}") from None


def _check_history(history_bins: int, group_bins: int) -> None:
    if group_bins < 1 or history_bins < group_bins or history_bins % group_bins:
        raise UserError(
            f"linear decoder: history_bins ({history_bins}) must be a positive multiple of group_bins ({group_bins})"
        )


def fit_linear(data: Any, history_bins: int = 64, group_bins: int = 16, alpha: float = 1.0,
               part: str = "train") -> LinearModel:
    """Fit a ridge linear decoder on one split part of reaching data.

    Args:
        data: :class:`~pipeline.recordings.reaching.ReachingData` (spikes (T, C), velocity (T, 2) mm/s,
            split slices).
        history_bins, group_bins: feature layout (see :func:`history_features`).
        alpha: ridge penalty on the weights (not on the bias).
        part: which split part to fit on.
    """
    _check_history(history_bins, group_bins)
    spikes = np.asarray(data.spikes, dtype=np.float64)
    sl = data.split[part]
    start, stop = sl.start or 0, sl.stop
    Y = np.asarray(data.velocity, dtype=np.float64)[start:stop]
    C = spikes.shape[1]
    F = (history_bins // group_bins) * C
    if stop - start < F:
        raise UserError(f"{data.name}: the {part!r} split has {stop - start} bins, fewer than {F} features")

    def chunks():  # features of the split in blocks (the full matrix would be large)
        for a in range(start, stop, _FIT_BLOCK):
            b = min(a + _FIT_BLOCK, stop)
            prev = spikes[max(0, a - history_bins + 1):a]
            prev = np.vstack([np.zeros((history_bins - 1 - prev.shape[0], C)), prev])
            yield a - start, history_features(spikes[a:b], history_bins, group_bins, prev)

    n = stop - start
    xs, xtx, xty = np.zeros(F), np.zeros((F, F)), np.zeros((F, 2))
    for a, X in chunks():
        xs += X.sum(axis=0)
        xtx += X.T @ X
        xty += X.T @ Y[a:a + X.shape[0]]
    xm, ym = xs / n, Y.mean(axis=0)
    A = xtx - n * np.outer(xm, xm) + alpha * np.eye(F)  # centred normal equations (bias not penalised)
    W = np.linalg.solve(A, xty - n * np.outer(xm, ym))
    bias = ym - xm @ W
    model = LinearModel(W, bias, C, float(data.rate_hz), history_bins, group_bins, float(alpha), source=str(data.name))
    # training SSE per axis from the accumulated sums: sum((y - Xw - b)^2)
    sse = (np.sum(Y ** 2, axis=0) - 2 * np.einsum("fk,fk->k", W, xty) - 2 * bias * Y.sum(axis=0)
           + np.einsum("fk,fg,gk->k", W, xtx, W) + 2 * bias * (xs @ W) + n * bias ** 2)
    var = n * Y.var(axis=0)
    model.train_r2 = float(np.mean(1.0 - sse / var))
    return model


_FIT_BLOCK = 8192


class LinearDecoder(Node):
    """Linear decoder node: spike counts (C channels, 4 ms bins) in, velocity (vx, vy mm/s) out.

    Params:
        model: a model file made by :meth:`LinearModel.save` / :func:`fit_linear`.
        fit_recording: instead of ``model``, a reaching recording to fit on (its training split)
            when the graph opens.
        history_bins: bins of history when fitting (default 64 = 256 ms).
        group_bins: bins summed per feature group when fitting (default 16 = 64 ms).
        alpha: ridge penalty when fitting (default 1.0).
        save_to: optional path to save the fitted model (``.npz``).
        neural, kinematics, markers, kinematics_kind: the stream mapping of ``fit_recording``
            (``pipeline.recordings.mapping``; defaults ``spikes`` / ``velocity``).

    One output row per input row, with the input row's timestamp. Non-finite input counts are
    replaced by 0 and counted (``nonfinite``).
    """

    kind = "linear_decoder"

    def __init__(self, model: str | None = None, fit_recording: str | None = None, history_bins: int = 64,
                 group_bins: int = 16, alpha: float = 1.0, save_to: str | None = None, neural: str | None = None,
                 kinematics: str | None = None, markers: str | None = None,
                 kinematics_kind: Literal["auto", "position", "velocity"] | None = None) -> None:
        from pipeline.recordings.mapping import StreamMapping

        if (model is None) == (fit_recording is None):
            raise UserError("linear_decoder: give exactly one of 'model' (a .npz file) or 'fit_recording' (a recording)")
        _check_history(int(history_bins), int(group_bins))
        if alpha < 0:
            raise UserError(f"linear_decoder: alpha must be >= 0, got {alpha}")
        for what, p in (("model", model), ("fit_recording", fit_recording)):
            if p is not None and not Path(p).is_file():
                raise UserError(f"linear_decoder: {what} file not found: {p}")
        self.model_path, self.fit_recording = model, fit_recording
        self.history_bins, self.group_bins, self.alpha = int(history_bins), int(group_bins), float(alpha)
        self.save_to = save_to
        self.mapping = StreamMapping.from_params(neural, kinematics, markers, kinematics_kind)
        self.model: LinearModel | None = None
        self._prev: np.ndarray | None = None
        self._nonfinite = 0

    def open(self, inputs: dict[str, StreamInfo]) -> dict[str, StreamInfo]:
        if self.model is None:
            if self.model_path is not None:
                self.model = LinearModel.load(self.model_path)
            else:
                from pipeline.recordings.reaching import load_reaching

                self.model = fit_linear(load_reaching(self.fit_recording, self.mapping), self.history_bins, self.group_bins, self.alpha)
                if self.save_to:
                    self.model.save(self.save_to)
        m = self.model
        require(inputs, "in", channel_count=m.channels, nominal_rate=m.rate_hz, regular=True)
        self._prev = np.zeros((m.history_bins - 1, m.channels))
        return {"out": StreamInfo("velocity_decoded", "Velocity", 2, m.rate_hz, "float32", ("vx", "vy"),
                                  ("mm/s", "mm/s"), metadata={"decoder": "linear", "train_r2": m.train_r2})}

    def process(self, port: str, packet: Packet) -> Outputs:
        m = self.model
        assert m is not None and self._prev is not None, "open() first"
        x = np.asarray(packet.data, dtype=np.float64)
        if not np.all(np.isfinite(x)):
            bad = ~np.isfinite(x)
            self._nonfinite += int(bad.sum())
            x = np.where(bad, 0.0, x)
        y = m.predict(x, self._prev)
        keep = m.history_bins - 1
        if keep:
            self._prev = np.vstack([self._prev, x])[-keep:]
        return {"out": packet.derive(y.astype(np.float32))}

    def counters(self) -> dict[str, int]:
        return {"nonfinite": self._nonfinite}

    def report(self) -> dict[str, Any]:
        return {"train_r2": round(self.model.train_r2, 4)} if self.model is not None else {}

    def state(self) -> dict[str, Any]:
        return {"prev": None if self._prev is None else self._prev.copy(), "nonfinite": self._nonfinite}

    def restore(self, state: dict[str, Any]) -> None:
        self._prev = None if state["prev"] is None else np.array(state["prev"], dtype=np.float64)
        self._nonfinite = int(state.get("nonfinite", 0))
