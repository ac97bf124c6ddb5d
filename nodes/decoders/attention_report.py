"""Plots and per-layer activity for decoders with and without ASA (numpy + matplotlib, Agg; no torch).

* :func:`layer_activity` — spikes per neuron per step, per layer and overall, of a model file's
  numpy kernel on a stretch of counts (NeuroBench firing-rate definition; SNN_3D: per 28 ms
  inner step, i.e. divided by 7 as well).
* :func:`plot_front` — R² against spikes per 4 ms output step, one point per model (the
  accuracy–energy front).
* :func:`plot_attention` — the attention gains per channel over a stretch of data (heat map per
  attended layer, channels × time), with the important/rest split.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from nodes.decoders.kernels import Activity, make_kernel



def _save(fig, path: str | Path) -> Path:
    """Lay out, write (PNG, 110 dpi, parent folders made) and close ``fig``; return the path."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

def layer_activity(arrays: dict[str, np.ndarray], meta: dict[str, Any], counts: np.ndarray) -> dict[str, Any]:
    """Run the numpy kernel over ``counts`` (shape ``(n, C)``, 4 ms bins) from a cold start.

    Returns:
        ``spikes_per_step`` (all layers, per output step), ``rate_per_layer`` and ``rate_overall``
        (spikes per neuron per inner step), ``acs_per_step``, ``macs_per_step``.
    """
    kernel = make_kernel(arrays, meta)
    act = Activity()
    kernel.run(counts, act)
    sizes = list(kernel.sizes)
    inner = int(meta["features"].get("steps", 1)) if meta["kind"] == "snn_3d" else 1
    steps = max(act.steps, 1)
    per_layer = act.per_layer_spikes or [0] * len(sizes)
    return {
        "spikes_per_step": act.spikes / steps,
        "spikes_per_step_per_layer": [s / steps for s in per_layer],
        "rate_per_layer": [s / (steps * inner * n) for s, n in zip(per_layer, sizes)],
        "rate_overall": act.spikes / (steps * inner * sum(sizes)),
        "acs_per_step": act.acs / steps,
        "macs_per_step": act.macs / steps,
    }


def _agg():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_front(points: list[dict[str, Any]], path: str | Path, title: str = "") -> Path:
    """Scatter R² (y) against spikes per output step (x), one point per model.

    ``points``: dicts with ``label``, ``spikes_per_step``, ``r2`` and optional ``group`` (e.g.
    "snn_streaming", "snn_3d") and ``attention`` ("asa"/"none") for colour and marker.
    """
    plt = _agg()
    fig, ax = plt.subplots(figsize=(7, 5))
    groups = sorted({p.get("group", "") for p in points})
    colours = dict(zip(groups, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    for p in points:
        asa = p.get("attention", "none") == "asa"
        ax.scatter(p["spikes_per_step"], p["r2"], s=60, marker="o" if asa else "s",
                   color=colours.get(p.get("group", "")), facecolors=None if asa else "none", linewidths=1.5)
        ax.annotate(p["label"], (p["spikes_per_step"], p["r2"]), fontsize=7, xytext=(4, 3), textcoords="offset points")
    for g in groups:
        ax.scatter([], [], color=colours[g], label=g or "model")
    ax.scatter([], [], marker="o", color="gray", label="with ASA (filled)")
    ax.scatter([], [], marker="s", facecolors="none", edgecolors="gray", label="without ASA (open)")
    ax.set_xlabel("spikes per 4 ms output step (all layers)")
    ax.set_ylabel("R² (test part)")
    ax.set_title(title or "Accuracy–energy front: R² vs spikes per step")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def attention_trace(arrays: dict[str, np.ndarray], meta: dict[str, Any], counts: np.ndarray) -> dict[int, np.ndarray]:
    """Gains of each attended layer for every step of ``counts``: ``{layer: (n, units)}``
    (SNN_3D: mean over a window's 7 inner steps)."""
    kernel = make_kernel(arrays, meta)
    if hasattr(kernel, "compiled_asa"):
        kernel.compiled_asa = False  # the numpy CausalASA path records every step's gains (same spikes)
    mods = kernel.transforms
    layers = [l for l, t in enumerate(mods) if t is not None]
    if not layers:
        raise ValueError(f"model {meta['kind']} has no attention (metadata attention: {meta.get('attention')})")
    out = {l: np.zeros((counts.shape[0], kernel.sizes[l]), dtype=np.float32) for l in layers}
    for i in range(counts.shape[0]):
        kernel.run(counts[i:i + 1])
        for l in layers:
            g = mods[l].last_gain
            out[l][i] = g.reshape(-1, g.shape[-1]).mean(axis=0)
    return out


def plot_attention(trace: dict[int, np.ndarray], rate_hz: float, path: str | Path, title: str = "") -> Path:
    """Heat maps of the gains (channels × time), one per attended layer, plus the mean gain."""
    plt = _agg()
    layers = sorted(trace)
    fig, axes = plt.subplots(len(layers) + 1, 1, figsize=(11, 2.6 * (len(layers) + 1)), sharex=True)
    for ax, l in zip(axes, layers):
        g = trace[l]
        t_end = g.shape[0] / rate_hz
        im = ax.imshow(g.T, aspect="auto", origin="lower", extent=(0, t_end, -0.5, g.shape[1] - 0.5),
                       vmin=0.0, vmax=1.0, cmap="viridis", interpolation="nearest")
        ax.set_ylabel(f"layer {l} neuron")
        fig.colorbar(im, ax=ax, label="gain")
    ax = axes[-1]
    for l in layers:
        t = np.arange(trace[l].shape[0]) / rate_hz
        ax.plot(t, trace[l].mean(axis=1), lw=0.8, label=f"layer {l}: mean gain")
    ax.set_ylim(0, 1)
    ax.set_ylabel("mean gain")
    ax.set_xlabel("time (s)")
    ax.legend(fontsize=8)
    fig.suptitle(title or "ASA gains per channel (input-current scale before the membrane)")
    return _save(fig, path)


def plot_rate_fronts(rows: list[dict[str, Any]], path: str | Path, title: str = "",
                     references: list[dict[str, Any]] | None = None) -> Path:
    """R² (y) against spikes per neuron per step (x): one front per arm (with / without ASA).

    ``rows``: dicts with ``kind``, ``attention`` ("asa"/"none"), ``rate_penalty``, ``seed``,
    ``r2`` and ``rate_overall`` (spikes per neuron per step). Every model is a small dot; the mean
    over seeds at each penalty is a large marker with ±1 s.d. bars (both axes), joined in penalty
    order and labelled with the penalty weight. ``references``: extra single models drawn as stars
    (dicts with ``label``, ``rate_overall``, ``r2``), e.g. the model the sweep was fine-tuned from.
    """
    plt = _agg()
    fig, ax = plt.subplots(figsize=(7.5, 5.2))
    arms = sorted({(r["kind"], r["attention"]) for r in rows})
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (kind, att) in enumerate(arms):
        c = colours[i % len(colours)]
        mine = [r for r in rows if (r["kind"], r["attention"]) == (kind, att)]
        ax.scatter([r["rate_overall"] for r in mine], [r["r2"] for r in mine], s=12, color=c, alpha=0.45)
        pens = sorted({float(r.get("rate_penalty", 0.0)) for r in mine})
        mx, my, sx, sy = [], [], [], []
        for w in pens:
            g = [r for r in mine if float(r.get("rate_penalty", 0.0)) == w]
            x, y = np.array([r["rate_overall"] for r in g]), np.array([r["r2"] for r in g])
            mx.append(x.mean()); my.append(y.mean()); sx.append(x.std()); sy.append(y.std())
            ax.annotate(f"w={w:g}", (mx[-1], my[-1]), fontsize=7, xytext=(5, -10 if att == "asa" else 5),
                        textcoords="offset points", color=c)
        ax.errorbar(mx, my, xerr=sx, yerr=sy, color=c, marker="o" if att == "asa" else "s", ms=7, lw=1.2,
                    capsize=2, label=f"{kind}, {'with ASA' if att == 'asa' else 'without ASA'} (mean ± s.d. over seeds)")
    for ref in references or []:
        ax.scatter([ref["rate_overall"]], [ref["r2"]], marker="*", s=160, color="black", zorder=5, label=ref["label"])
    ax.set_xlabel("spikes per neuron per 4 ms step (test part, all layers)")
    ax.set_ylabel("R² (test part, no filter)")
    ax.set_title(title or "Firing-rate objective: R² against spikes, with and without ASA at equal penalty")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)
