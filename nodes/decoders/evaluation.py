"""Offline evaluation of decoder model files (``spikeloop evaluate --model M ... --recording R``).

The test part of the recording goes THROUGH THE SAME NODE CODE a graph runs: a ``decoder`` node
(numpy kernel) and ``bessel`` filter nodes, constructed and fed packets directly (1 s packets,
as a replay would deliver them). Reported per model:

* R² (NeuroBench: per axis ``1 − SSE/(N·var)``, mean of x and y) without a filter and with each
  filter variant: ``causal`` (4th-order 6.25 Hz Bessel, SOS), ``block-last`` and ``block-middle``
  (the paper's block-bidirectional filter over 32 outputs). Two scores per variant:
  ``r2`` **as emitted** — each label compared with the newest output a live user holds when that
  label's input sample arrives (for ``block-middle`` that is the smoothed value of the sample
  64 ms earlier) — and ``r2_aligned``, each output compared with the sample it smooths (the
  node's timestamps; 64 ms of look-ahead for ``block-middle``, equal to ``r2`` for the others);
* a linear baseline on every table (``linear``: ridge on 256 ms of counts in four 64 ms bins,
  fitted on the recording's training part, run by the ``linear_decoder`` node);
* a bit budget (weights × bits + activations × bits × time steps per output, after the Bit
  Budget proposal): float32 weights at 32 bits, spikes at 1 bit, real activations at 32 bits;
* activation sparsity (zero activations / all activations) and spikes per neuron per step;
* effective synaptic operations per 4 ms step: ACs (layers fed by spikes or binary bins) and MACs
  (layers fed by real values), counting nonzero inputs × fan-out, biases excluded (NeuroBench);
* footprint: bytes of parameters and buffers;
* per-step inference time (p50, p99 µs) of the decoder node fed one 4 ms bin per packet (the live
  case), and offline speed in multiples of real time (1 s packets).

Also writes a plot of true and decoded velocity over a stretch of the test part and prints a
comparison table (rich).
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.packet import Packet, StreamInfo

from nodes.decoders.data import DecoderData
from nodes.decoders.metrics import r2

FILTERS: dict[str, dict[str, Any]] = {
    "none": {},
    "causal": {"order": 4, "cutoff_hz": 6.25, "mode": "causal"},
    "block-last": {"order": 4, "cutoff_hz": 6.25, "mode": "block", "block": 32, "take": "last"},
    "block-middle": {"order": 4, "cutoff_hz": 6.25, "mode": "block", "block": 32, "take": "middle"},
}

PAPER_R2 = {  # Zhou, Sun, Basu 2025, mean over six NeuroBench sessions (real data): (no filter, filter)
    "ann": (0.582, 0.617), "ann_3d": (0.601, 0.665), "lstm": (0.651, 0.671),
    "snn_3d": (0.622, 0.673), "snn_streaming": (0.611, 0.645),
}


def parse_filters(text: str | None) -> list[str]:
    """``"none,causal"`` → ``["none", "causal"]``; every name must be in :data:`FILTERS`."""
    from pipeline.errors import UserError

    names = [s.strip() for s in (text or ",".join(FILTERS)).split(",") if s.strip()]
    for name in names:
        if name not in FILTERS:
            raise UserError(f"--filter: unknown filter {name!r}; choose from {', '.join(FILTERS)}")
    if "none" not in names:
        names.insert(0, "none")
    return names


def _spikes_info(data: DecoderData) -> StreamInfo:
    return StreamInfo("spikes", "SpikeCounts", data.channels, data.rate_hz, "float32",
                      units=("counts",) * data.channels)


def _feed(node, packets: list[Packet]) -> tuple[np.ndarray, np.ndarray]:
    ys, ts = [], []
    for p in packets:
        out = node.process("in", p)
        if "out" in out:
            ys.append(out["out"].data)
            ts.append(out["out"].timestamps)
    out = node.flush()
    if "out" in out:
        ys.append(out["out"].data)
        ts.append(out["out"].timestamps)
    return np.concatenate(ys), np.concatenate(ts)


def _packets(x: np.ndarray, stamps: np.ndarray, chunk: int) -> list[Packet]:
    return [Packet(x[i:i + chunk], stamps[i:i + chunk], 0.0) for i in range(0, x.shape[0], chunk)]


def bit_budget(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> dict[str, int]:
    """Bits a model moves per output step: ``weights × bits + activations × bits × time steps``.

    Weights (every stored array but normalisation constants) count 32 bits (float32 as stored).
    Activations: spikes 1 bit, real values 32 bits, times the time steps per output (1 for the
    streaming models, ``steps`` for SNN_3D). Returns ``{"weight_bits", "activation_bits", "total_bits"}``.
    """
    kind = meta.get("kind")
    skip = {"target_scale", "target_mean", "in_mean", "in_std"}
    n_w = int(sum(np.asarray(a).size for k, a in arrays.items() if k not in skip))
    arch = meta.get("architecture", {})
    C = int(meta.get("channels", 0))
    if kind == "snn_streaming":
        act = sum(arch["layers"]) * 1  # spikes, one step
    elif kind == "snn_3d":
        steps = int(meta["features"].get("steps", 7))
        act = (C * 32 + sum(arch["layers"][:-1]) * 1 + arch["layers"][-1] * 32) * steps  # LayerNorm out, spikes, readout
    elif kind in ("ann", "ann_3d"):
        steps = int(meta["features"].get("steps", 1)) if kind == "ann_3d" else 1
        act = (C * steps + sum(arch["layers"])) * 32
    elif kind == "lstm":
        H = int(arch["hidden"])
        act = (C + 4 * H + 2 * H + 2) * 32  # LayerNorm out, gates, (h, c), output
    elif kind == "linear":
        act = (int(meta["history_bins"]) // int(meta["group_bins"]) * C + 2) * 32
    else:
        act = 0
    return {"weight_bits": n_w * 32, "activation_bits": int(act), "total_bits": n_w * 32 + int(act)}


def _as_emitted(y: np.ndarray, delay: int) -> np.ndarray:
    """What a live user holds at each input sample: the output re-aligned ``delay`` samples back.

    ``y`` (n, 2) is aligned with the labels (output i smooths input i); the output for input i is
    emitted when input ``i + delay`` arrives, so at input t the newest output is ``y[t − delay]``
    (the first ``delay`` samples hold the first output)."""
    if delay <= 0:
        return y
    return np.concatenate([np.repeat(y[:1], delay, axis=0), y[:-delay]])


def _decoder_node(path: str, count_activity: bool):
    """The node a graph would run for a decoder model file: ``decoder`` or ``linear_decoder``."""
    from pipeline.modelfile import load_model

    _, meta = load_model(path)
    if meta.get("kind") == "linear":
        from nodes.decoders.linear import LinearDecoder

        node = LinearDecoder(model=path)
        node.meta = meta
        return node
    from nodes.decoders.node import Decoder

    return Decoder(model=path, count_activity=count_activity)


def evaluate_model(path: str, data: DecoderData, filters: list[str], chunk: int = 250,
                   latency_steps: int = 5000) -> dict[str, Any]:
    """Evaluate one decoder model file on ``data``'s test part (see module docs)."""
    from nodes.filters.bessel import BesselFilter
    from pipeline.modelfile import load_model

    sl = data.split["test"]
    x, y_true = data.spikes[sl], data.velocity[sl].astype(np.float64)
    stamps = np.asarray(data.timestamps[sl], dtype=np.float64)
    info = _spikes_info(data)
    arrays, meta = load_model(path)
    linear = meta.get("kind") == "linear"

    # offline pass: 1 s packets, activity counted
    node = _decoder_node(path, count_activity=True)
    out_info = node.open({"in": info})["out"]
    packets = _packets(x, stamps, chunk)
    t0 = time.perf_counter()
    y_dec, t_dec = _feed(node, packets)
    offline_s = time.perf_counter() - t0
    assert np.array_equal(t_dec, stamps), "decoder output timestamps must equal input timestamps"

    # live-like pass: one 4 ms bin per packet, each process() call timed
    live = _decoder_node(path, count_activity=False)
    live.open({"in": info})
    k = min(latency_steps, x.shape[0])
    times = np.empty(k)
    y_live = np.empty((k, y_dec.shape[1]), dtype=np.float32)
    clock = time.perf_counter_ns
    for i in range(k):
        p = Packet(x[i:i + 1], stamps[i:i + 1], 0.0)
        t = clock()
        y_live[i] = live.process("in", p)["out"].data[0]
        times[i] = clock() - t
    # SNNs are bit-exact across chunkings (grid weights); ANN/LSTM differ by float32 rounding of
    # BLAS gemv vs gemm, so report the largest difference too
    chunk_diff = float(np.abs(y_live.astype(np.float64) - y_dec[:k]).max()) if k else 0.0
    chunking_invariant = bool(np.array_equal(y_live, y_dec[:k]))

    scores: dict[str, float] = {}
    aligned: dict[str, float] = {}
    filtered: dict[str, np.ndarray] = {}
    for name in filters:
        delay = 0
        if name == "none":
            y = y_dec.astype(np.float64)
        else:
            f = BesselFilter(**FILTERS[name])
            f.open({"in": out_info})
            delay = f.delay_samples
            y, t_f = _feed(f, _packets(y_dec, t_dec, chunk))
            assert np.array_equal(t_f, stamps), f"filter {name}: outputs not aligned with labels"
        aligned[name] = r2(y_true, y)
        y = _as_emitted(y, delay)
        filtered[name] = y
        scores[name] = r2(y_true, y)
    if linear:
        # MACs of the ridge readout: nonzero features × 2 outputs (bias excluded)
        from nodes.decoders.linear import history_features

        feats_nz = int(np.count_nonzero(history_features(x.astype(np.float64), int(meta["history_bins"]),
                                                         int(meta["group_bins"]))))
        report = {"acs_per_step": 0.0, "macs_per_step": feats_nz * 2 / max(x.shape[0], 1),
                  "footprint_bytes": int(sum(np.asarray(a).nbytes for a in arrays.values())),
                  "activation_sparsity": None, "spikes_per_neuron_per_step": None}
    else:
        report = node.report()
    duration = x.shape[0] / data.rate_hz
    activity = getattr(node, "activity", None)
    result = {
        "model": str(path),
        "kind": meta["kind"],
        "channels": int(meta["channels"]),
        "test_steps": int(x.shape[0]),
        "r2": scores,
        "r2_aligned": aligned,
        "r2_definition": "r2: scored as emitted (what a live user holds); r2_aligned: outputs re-aligned with the samples they smooth",
        "bit_budget": bit_budget(meta, arrays),
        "activation_sparsity": report.get("activation_sparsity"),
        "spikes_per_neuron_per_step": report.get("spikes_per_neuron_per_step"),
        # issue 5: spikes per output step, all layers and per layer (None for non-spiking models)
        "spikes_per_step": (activity.spikes / max(activity.steps, 1)) if activity is not None and activity.neurons else None,
        "spikes_per_step_per_layer": ([c / max(activity.steps, 1) for c in activity.per_layer_spikes] or None) if activity is not None else None,
        "attention": meta.get("attention", {"kind": "none"}),
        "acs_per_step": report.get("acs_per_step"),
        "macs_per_step": report.get("macs_per_step"),
        "footprint_bytes": report["footprint_bytes"],
        "step_us_p50": float(np.percentile(times, 50) / 1e3),
        "step_us_p99": float(np.percentile(times, 99) / 1e3),
        "latency_steps": int(k),
        "offline_x_realtime": duration / offline_s if offline_s > 0 else float("inf"),
        "offline_chunk": chunk,
        "chunking_invariant": chunking_invariant,
        "chunking_max_abs_diff": chunk_diff,
        "paper_r2_real_data": PAPER_R2.get(meta["kind"]),
        "val_r2_at_training": meta.get("training", {}).get("val_r2"),
    }
    result["_curves"] = {"true": y_true, **filtered}
    return result


def plot(results: list[dict[str, Any]], rate_hz: float, path: str, seconds: float = 10.0, start_s: float = 0.0) -> None:
    """True vs decoded velocity (vx, vy) over ``seconds`` of the test part; Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    a = int(start_s * rate_hz)
    b = a + int(seconds * rate_hz)
    fig, axes = plt.subplots(2, 1, figsize=(13, 6.5), sharex=True)
    first = results[0]["_curves"]
    t = np.arange(first["true"][a:b].shape[0]) / rate_hz + start_s
    colours = plt.get_cmap("tab10").colors  # one colour per model; line style per filter variant
    styles = {"none": (":", 0.9), "causal": ("--", 1.2), "block-middle": ("-", 1.4)}
    for ax_i, (ax, label) in enumerate(zip(axes, ("vx", "vy"))):
        ax.plot(t, first["true"][a:b, ax_i], color="black", lw=2.2, label="true")
        for k, res in enumerate(results):
            c = res["_curves"]
            name = Path(res["model"]).stem
            for fname, (ls, lw) in styles.items():
                if fname in c:
                    what = "no filter" if fname == "none" else f"+ {fname}"
                    ax.plot(t, c[fname][a:b, ax_i], color=colours[k % len(colours)], ls=ls, lw=lw,
                            label=f"{name} {what} (R² {res['r2'][fname]:.3f})")
        ax.set_ylabel(f"{label} (mm/s)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)  # outside: hides no data
    axes[-1].set_xlabel("time in test part (s)")
    fig.suptitle("Decoded vs true velocity (test part)")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")  # keeps the outside legend
    plt.close(fig)


def _fmt(v: Any, spec: str) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "–"
    return format(v, spec)


def print_table(results: list[dict[str, Any]], filters: list[str]) -> None:
    """A table comparing the models (one row per model; transposed or stacked to fit the console)."""
    from pipeline.console import print_fitted

    shifted = [f for f in filters if f != "none" and FILTERS[f].get("take") == "middle"]
    headers = ["model", "kind", *[f"R² {f}" for f in filters], *[f"R² {f} aligned (look-ahead)" for f in shifted],
               "sparsity", "spk/neuron/step", "spikes/step (per layer)", "ACs/step", "MACs/step", "footprint kB",
               "bit budget kbit (w + act)", "step p50 µs", "step p99 µs", "× real time"]
    rows = []
    for r in results:
        bb = r.get("bit_budget") or {}
        rows.append([
            Path(r["model"]).name, r["kind"], *[_fmt(r["r2"][f], ".3f") for f in filters],
            *[_fmt(r.get("r2_aligned", {}).get(f), ".3f") for f in shifted],
            _fmt(r["activation_sparsity"], ".3f"), _fmt(r["spikes_per_neuron_per_step"], ".3f"),
            "–" if r.get("spikes_per_step") is None else f"{r['spikes_per_step']:.2f} ("
            + " / ".join(f"{c:.2f}" for c in r["spikes_per_step_per_layer"] or []) + ")",
            _fmt(r["acs_per_step"], ".0f"), _fmt(r["macs_per_step"], ".0f"),
            _fmt(r["footprint_bytes"] / 1024, ".1f"),
            f"{bb['total_bits'] / 1000:.1f} ({bb['weight_bits'] / 1000:.1f} + {bb['activation_bits'] / 1000:.2f})" if bb else "–",
            _fmt(r["step_us_p50"], ".1f"), _fmt(r["step_us_p99"], ".1f"),
            _fmt(r["offline_x_realtime"], ".0f"),
        ])
    print_fitted("Decoders on the test part (R², NeuroBench definitions)", headers, rows)


LINEAR_BASELINE = "linear baseline (ridge, 256 ms)"


def linear_baseline(data: DecoderData, filters: list[str], chunk: int = 250) -> dict[str, Any]:
    """The ridge baseline row: fitted on ``data``'s training part (256 ms of counts in four 64 ms
    bins, α = 1), saved to a temporary model file and scored like any model (linear_decoder node)."""
    import tempfile

    from nodes.decoders.linear import fit_linear

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "linear_baseline.npz"
        fit_linear(data).save(path)
        result = evaluate_model(str(path), data, filters, chunk=chunk)
    result["model"] = LINEAR_BASELINE
    return result


def evaluate(models: list[str], data: DecoderData, filters: list[str], *, plot_path: str | None = None,
             plot_seconds: float = 10.0, chunk: int = 250, results: list[dict[str, Any]] | None = None,
             baseline: bool = True) -> dict[str, Any]:
    """Evaluate several model files; returns the JSON-serialisable report.

    ``results``: the :func:`evaluate_model` results of ``models`` in that order, already computed
    elsewhere (``spikeloop evaluate --jobs N`` runs each model as a Ray task); computed here when None.
    ``baseline``: add the linear (ridge) baseline row first (see :func:`linear_baseline`).
    """
    from tqdm import tqdm

    if results is None:
        results = [evaluate_model(m, data, filters, chunk=chunk) for m in tqdm(models, desc="evaluate", unit="model", leave=False)]
    results = list(results)
    if baseline:
        results.insert(0, linear_baseline(data, filters, chunk=chunk))
    if plot_path:
        plot(results, data.rate_hz, plot_path, seconds=plot_seconds)
    front_path = None
    spiking = [r for r in results if r.get("spikes_per_step") is not None]
    if plot_path and len(spiking) > 1:  # issue 5: R² vs spikes per step, one point per model
        from nodes.decoders.attention_report import plot_front

        front_path = str(Path(plot_path).with_name(Path(plot_path).stem + "_front.png"))
        plot_front([{"label": Path(r["model"]).stem, "spikes_per_step": r["spikes_per_step"], "r2": r["r2"]["none"],
                     "group": r["kind"], "attention": r["attention"].get("kind", "none")} for r in spiking], front_path)
    attention_plots = {}
    if plot_path:  # issue 5: what each ASA model learned, gains per channel over the first 4 s of the test part
        from nodes.decoders.attention_report import attention_trace, plot_attention
        from pipeline.modelfile import load_model

        stretch = data.spikes[data.split["test"]][: int(4 * data.rate_hz)]
        for r in results:
            if r["attention"].get("kind", "none") == "none":
                continue
            stem = Path(r["model"]).stem
            arrays, meta = load_model(r["model"])
            target = Path(plot_path).with_name(f"{Path(plot_path).stem}_attention_{stem}.png")
            attention_plots[r["model"]] = str(plot_attention(
                attention_trace(arrays, meta, stretch), data.rate_hz, target,
                title=f"ASA gains per channel, {stem}, first 4 s of the test part"))
    for r in results:
        r.pop("_curves")
    sl = data.split["test"]
    return {
        "recording": data.name,
        "part": "test",
        "test_bins": int(sl.stop - sl.start),
        "test_seconds": (sl.stop - sl.start) / data.rate_hz,
        "filters": {f: FILTERS[f] for f in filters},
        "r2_definition": "NeuroBench: per axis 1 - SSE/(N*population variance), mean over vx, vy",
        "models": results,
        "plot": plot_path,
        "front_plot": front_path,
        "attention_plots": attention_plots,
    }


def run_cli(args: Any) -> int:
    """``spikeloop evaluate --model M [M2 ...] --recording R [--filter ...] [--json OUT] [--plot PNG]``."""
    from pipeline.errors import UserError
    from pipeline.modelfile import check_model_fits

    from nodes.decoders.data import load_data
    from pipeline.cli.mapping_options import mapping_from_args

    if not getattr(args, "recording", None):
        raise UserError("decoder evaluation needs --recording PATH (e.g. recordings/reaching_sample.xdfz)")
    filters = parse_filters(getattr(args, "filter", None))
    chunk = getattr(args, "chunk", None) or 250
    if chunk <= 0:
        raise UserError(f"--chunk must be > 0 samples, got {chunk}")
    data = load_data(args.recording, mapping_from_args(args))
    for model in args.model:  # a channel or rate mismatch: one line, before any work
        check_model_fits(model, data.spikes.shape[1], data.rate_hz, args.recording)
    report = evaluate(list(args.model), data, filters, plot_path=getattr(args, "plot", None),
                      plot_seconds=getattr(args, "plot_seconds", None) or 10.0, chunk=chunk,
                      baseline=not getattr(args, "no_baseline", False))
    print_table(report["models"], filters)
    if args.json_path:
        Path(args.json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_path).write_text(json.dumps(report, indent=2, default=float))
        print(f"wrote {args.json_path}")
    if report["plot"]:
        print(f"wrote {report['plot']}")
    if report.get("front_plot"):
        print(f"wrote {report['front_plot']} (R2 vs spikes per step)")
    for path in report.get("attention_plots", {}).values():
        print(f"wrote {path} (attention gains per channel)")
    return 0
