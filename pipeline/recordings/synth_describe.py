"""Statistics of a reaching recording beside the calibration targets (``spikeloop synth --describe``).

The targets are those of ``recordings/README.md`` (O'Doherty et al. sessions as NeuroBench bins
them); each row says where its number comes from. Works on any reaching recording
(``.xdf``/``.xdfz`` from ``spikeloop synth`` or the recorder, NeuroBench ``.mat``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

STILL_MM_S = 20.0
"""Speed (mm/s) below which the hand counts as still."""


@dataclass(frozen=True)
class Target:
    """One calibration target: a statistic, its accepted range and where the range comes from."""

    key: str
    label: str
    lo: float
    hi: float
    source: str


TARGETS: tuple[Target, ...] = (
    Target("max_value", "largest value in a bin (0/1 after ORing units)", 1, 1,
           "NeuroBench loader: units of a channel ORed per 4 ms bin"),
    Target("bin_fraction_median", "fraction of 4 ms bins with a spike, median channel", 0.05, 0.2,
           "own estimate (2-4 units + hash per channel at 2-25 spikes/s)"),
    Target("still_fraction", f"fraction of time with speed < {STILL_MM_S:g} mm/s", 0.05, 0.2,
           "own estimate: continuous self-paced reaching, no inter-trial interval (dataset description)"),
    Target("segment_s_median", "time per target (segment), median, s", 0.6, 1.5,
           "own estimate"),
    Target("peak_speed_median", "peak speed per segment, median, mm/s", 80, 250,
           "own estimate"),
    Target("lead_ms", "neural lead over velocity (best lag of a ridge fit), ms", 60, 160,
           "Paninski et al. 2004; Moran & Schwartz 1999 (~100 ms)"),
    Target("drift_cv_median", "slow drift: CV of channel firing over 60 s windows, median", 0.03, 0.25,
           "own estimate"),
    Target("ridge_256ms_r2", "ridge on 256 ms of counts (4 x 64 ms), test R²", 0.45, 0.7,
           "near the network baselines on real data (NeuroBench, iBMI paper: R² 0.58-0.67)"),
)


def _bin_sum(x: np.ndarray, k: int) -> np.ndarray:
    n = (x.shape[0] // k) * k
    return x[:n].reshape(-1, k, *x.shape[1:]).sum(axis=1)


def _ridge_r2(X: np.ndarray, Y: np.ndarray, train: slice, test: slice, alpha: float = 1.0) -> float:
    from pipeline.scoring import r2_score

    Xa = np.hstack([X, np.ones((X.shape[0], 1))])
    A = Xa[train]
    w = np.linalg.solve(A.T @ A + alpha * np.eye(A.shape[1]), A.T @ Y[train])
    return float(r2_score(Y[test], Xa[test] @ w))


def lead_ms(spikes: np.ndarray, velocity: np.ndarray, rate_hz: float, step_bins: int = 8,
            lags_ms: tuple[float, float] = (-96.0, 256.0)) -> float:
    """Lag (ms, positive = neurons lead) at which 32 ms spike counts best predict velocity (ridge).

    Args:
        spikes: ``(T, C)`` counts per bin; velocity: ``(T, 2)`` mm/s; rate_hz: bins per second.
    """
    X = _bin_sum(spikes.astype(np.float64), step_bins)
    V = _bin_sum(velocity.astype(np.float64), step_bins) / step_bins
    step_ms = 1000.0 * step_bins / rate_hz
    best, best_r2 = 0.0, -np.inf
    n = X.shape[0]
    for k in range(int(lags_ms[0] // step_ms), int(lags_ms[1] // step_ms) + 1):
        # neurons lead by k steps: counts at i predict velocity at i + k
        Xs, Vs = (X[:n - k], V[k:]) if k >= 0 else (X[-k:], V[:n + k])
        m = Xs.shape[0]
        r2 = _ridge_r2(Xs, Vs, slice(0, m // 2), slice(m // 2, m))
        if r2 > best_r2:
            best, best_r2 = k * step_ms, r2
    return best


def describe(path: str | Path) -> dict[str, Any]:
    """Statistics of a reaching recording (keys of :data:`TARGETS` plus a few informative ones)."""
    from nodes.decoders.linear import fit_linear
    from pipeline.recordings.reaching import load_reaching
    from pipeline.scoring import r2_score

    d = load_reaching(path)
    x, v, r = d.spikes, d.velocity.astype(np.float64), d.rate_hz
    frac = (x > 0).mean(axis=0)
    speed = np.linalg.norm(v, axis=1)
    seg = np.array(d.segments)
    seg_s = (seg[:, 1] - seg[:, 0]) / r
    peaks = np.array([speed[a:b].max() for a, b in d.segments if b > a])
    win = int(60 * r)
    rates = _bin_sum((x > 0).astype(np.float64), win) / win if x.shape[0] >= 2 * win else None
    cv = None
    if rates is not None:
        mean = rates.mean(axis=0)
        ok = mean > 0
        cv = float(np.median(rates.std(axis=0)[ok] / mean[ok]))
    test = d.split["test"]
    ridge = fit_linear(d)
    one_bin = fit_linear(d, history_bins=1, group_bins=1)
    return {
        "path": str(path), "seconds": x.shape[0] / r, "channels": d.channels, "segments": len(d.segments),
        "max_value": float(x.max()),
        "bin_fraction_median": float(np.median(frac)),
        "bin_fraction_p10_p90": [float(np.percentile(frac, 10)), float(np.percentile(frac, 90))],
        "channel_rate_hz_median": float(np.median(-np.log1p(-np.minimum(frac, 0.999)) * r)),
        "still_fraction": float((speed < STILL_MM_S).mean()),
        "segment_s_median": float(np.median(seg_s)),
        "segment_s_p10_p90": [float(np.percentile(seg_s, 10)), float(np.percentile(seg_s, 90))],
        "peak_speed_median": float(np.median(peaks)),
        "speed_median": float(np.median(speed)),
        "lead_ms": lead_ms(x, v, r),
        "drift_cv_median": cv,
        "ridge_256ms_r2": float(r2_score(v[test], ridge.predict(x)[test])),
        "ridge_1bin_r2": float(r2_score(v[test], one_bin.predict(x)[test])),
    }


def print_description(stats: dict[str, Any]) -> None:
    """A rich table: each statistic, its value, the target range, in range or not, the source."""
    from rich.table import Table

    from pipeline.console import console

    t = Table(title=f"{stats['path']}: {stats['seconds']:.0f} s, {stats['channels']} channels, {stats['segments']} segments")
    for col in ("statistic", "value", "target", "ok", "source of the target"):
        t.add_column(col)
    for tg in TARGETS:
        val = stats.get(tg.key)
        ok = "–" if val is None else ("yes" if tg.lo <= val <= tg.hi else "NO")
        t.add_row(tg.label, "–" if val is None else f"{val:.3g}", f"{tg.lo:g} – {tg.hi:g}", ok, tg.source)
    t.add_row("fraction of bins with a spike, p10 / p90 channel", " / ".join(f"{q:.3f}" for q in stats["bin_fraction_p10_p90"]), "", "", "informative")
    t.add_row("equivalent channel rate, median, spikes/s", f"{stats['channel_rate_hz_median']:.1f}", "", "", "informative")
    t.add_row("time per target p10 / p90, s", " / ".join(f"{q:.2f}" for q in stats["segment_s_p10_p90"]), "", "", "informative")
    t.add_row("median speed, mm/s", f"{stats['speed_median']:.0f}", "", "", "informative")
    t.add_row("ridge on one 4 ms bin, test R²", f"{stats['ridge_1bin_r2']:.3f}", "", "", "informative")
    console().print(t)
