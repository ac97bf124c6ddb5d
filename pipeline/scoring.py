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
