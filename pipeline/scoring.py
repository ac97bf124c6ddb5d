"""Scores shared by sinks, trainers and evaluators (numpy only).

R² follows NeuroBench: per axis ``1 − SSE / (N · var)`` with the population variance of the true
values, then averaged over the axes (x and y for velocity).
"""
from __future__ import annotations

import numpy as np


def r2_per_axis(true: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """R² of each column. ``true``, ``pred``: shape ``(N, axes)`` (or ``(N,)``); returns ``(axes,)``.

    An axis whose true values are constant has no defined R² and gives NaN.
    """
    y = np.asarray(true, dtype=np.float64)
    p = np.asarray(pred, dtype=np.float64)
    if y.ndim == 1:
        y = y[:, None]
    if p.ndim == 1:
        p = p[:, None]
    if y.shape != p.shape:
        raise ValueError(f"r2: true shape {y.shape} and pred shape {p.shape} differ")
    if y.shape[0] == 0:
        raise ValueError("r2: no samples")
    sse = np.sum((y - p) ** 2, axis=0)
    denom = y.shape[0] * np.var(y, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denom > 0, 1.0 - sse / np.where(denom > 0, denom, 1.0), np.nan)


def r2_score(true: np.ndarray, pred: np.ndarray) -> float:
    """NeuroBench R²: :func:`r2_per_axis` averaged over axes. Shapes ``(N, axes)``."""
    return float(np.mean(r2_per_axis(true, pred)))


class R2Accumulator:
    """NeuroBench R² from sufficient statistics, in fixed memory (float64, Chan/Welford merges).

    Keeps per axis: ``n``, the running mean of the true values, ``m2`` = Σ(y − ȳ)² (so that
    ``N · var = m2`` with the population variance), the running mean of the predictions, and
    ``sse`` = Σ(y − ŷ)². Batches are summarised with numpy and merged with Chan et al.'s
    parallel update, which stays accurate where the textbook Σy² − (Σy)²/N cancels.
    :meth:`r2_per_axis` equals :func:`r2_per_axis` on all the pairs at once to rounding
    (about 1e-12 relative).

    Args:
        axes: number of columns (2 for velocity x, y).
    """

    def __init__(self, axes: int) -> None:
        self.axes = int(axes)
        self.n = 0
        self.mean_true = np.zeros(self.axes)
        self.m2_true = np.zeros(self.axes)
        self.mean_pred = np.zeros(self.axes)
        self.sse = np.zeros(self.axes)

    def add(self, true: np.ndarray, pred: np.ndarray) -> None:
        """Add pairs: ``true``, ``pred`` of shape ``(N, axes)`` (float64 used internally)."""
        y = np.asarray(true, dtype=np.float64).reshape(-1, self.axes)
        p = np.asarray(pred, dtype=np.float64).reshape(-1, self.axes)
        nb = y.shape[0]
        if nb == 0:
            return
        mean_b = y.mean(axis=0)
        m2_b = np.sum((y - mean_b) ** 2, axis=0)
        pmean_b = p.mean(axis=0)
        n = self.n + nb
        delta = mean_b - self.mean_true
        self.m2_true = self.m2_true + m2_b + delta ** 2 * (self.n * nb / n)
        self.mean_true = self.mean_true + delta * (nb / n)
        self.mean_pred = self.mean_pred + (pmean_b - self.mean_pred) * (nb / n)
        self.sse = self.sse + np.sum((y - p) ** 2, axis=0)
        self.n = n

    def merge(self, other: "R2Accumulator") -> None:
        """Add all the pairs of ``other`` (same number of axes)."""
        if other.n == 0:
            return
        n = self.n + other.n
        delta = other.mean_true - self.mean_true
        self.m2_true = self.m2_true + other.m2_true + delta ** 2 * (self.n * other.n / n)
        self.mean_true = self.mean_true + delta * (other.n / n)
        self.mean_pred = self.mean_pred + (other.mean_pred - self.mean_pred) * (other.n / n)
        self.sse = self.sse + other.sse
        self.n = n

    def r2_per_axis(self) -> np.ndarray:
        """R² of each axis, ``(axes,)``; NaN where the true values are constant (or no pairs)."""
        denom = self.m2_true
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(denom > 0, 1.0 - self.sse / np.where(denom > 0, denom, 1.0), np.nan)

    def state(self) -> dict[str, np.ndarray]:
        """The statistics as arrays (for checkpoints)."""
        return {"n": np.array(self.n), "mean_true": self.mean_true.copy(), "m2_true": self.m2_true.copy(),
                "mean_pred": self.mean_pred.copy(), "sse": self.sse.copy()}

    def restore(self, state: dict[str, np.ndarray]) -> None:
        self.n = int(state["n"])
        for key in ("mean_true", "m2_true", "mean_pred", "sse"):
            setattr(self, key, np.array(state[key], dtype=np.float64))
