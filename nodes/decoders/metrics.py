"""Scores of decoded velocity (numpy only)."""
from __future__ import annotations

import numpy as np


def r2(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """R² as NeuroBench defines it: per axis ``1 − SSE / (N · population variance)``, averaged over
    axes. Shapes ``(N, axes)``. Uses ``pipeline.scoring.r2_score`` when the project provides it."""
    try:
        from pipeline.scoring import r2_score
    except ImportError:
        r2_score = None
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_true.shape != y_pred.shape or y_true.ndim != 2:
        raise ValueError(f"r2: shapes {y_true.shape} and {y_pred.shape} must be equal (N, axes)")
    if r2_score is not None:
        return float(r2_score(y_true, y_pred))
    sse = ((y_true - y_pred) ** 2).sum(axis=0)
    var = y_true.var(axis=0) * y_true.shape[0]
    return float(np.mean(1.0 - sse / var))
