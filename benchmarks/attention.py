"""``spikeloop bench attention``: decoders with and without Advance Spatial Attention (issue 5).

For each model kind (SNN_Streaming with the causal ASA, SNN_3D with the per-window clip ASA) and
each seed, trains the decoder twice on the bundled recording — ``attention: none`` and
``attention: asa`` — with the SAME training settings (seed, epochs, time limit, learning rate,
loss: MSE only, no sparsity regulariser in either arm), then scores both on the test part through
the decoder node (``nodes.decoders.evaluation.evaluate_model``):

* R² (no filter and causal Bessel), NeuroBench definition;
* spikes per 4 ms output step (all layers), firing rate per layer and overall (spikes per neuron
  per step), effective synaptic operations (ACs, MACs per step; plus the attention's own MACs,
  shown separately since NeuroBench counts layers only);
* step time of the decoder node fed one bin per packet (p50, p99 µs);

and prints one table, the per-seed comparison against the targets (≥ 30 % fewer spikes per step,
R² no lower than −0.005, step time ≤ 1.5×), an R²-vs-spikes plot (accuracy–energy front) and a plot
of the attention gains per channel over a stretch of test data. Model files are kept
(``--models-dir``) and reused with ``--reuse``.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_RECORDING = "recordings/reaching_sample.xdfz"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recording", default=DEFAULT_RECORDING, help=f"reaching recording (default {DEFAULT_RECORDING})")
    p.add_argument("--kinds", default="snn_streaming,snn_3d", help="comma-separated model kinds (default snn_streaming,snn_3d)")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated training seeds (default 0,1,2)")
    p.add_argument("--rate-penalties", default="0", metavar="W,...",
                   help="comma-separated weights of the firing-rate objective (loss += W x spikes per neuron per step); "
                        "both arms (with and without ASA) train at each weight (default 0: MSE only)")
    p.add_argument("--epochs", type=int, default=15, help="maximum training epochs per model (default 15)")
    p.add_argument("--max-minutes", type=float, default=2.0, help="training time limit per model in minutes (default 2)")
    p.add_argument("--init", default=None, metavar="MODEL",
                   help="start both arms from this trained plain model of the kind (fine-tuning; the ASA arm starts "
                        "as exactly this model: ASA gains 0.5 and the attended layers' weights doubled); default: train from scratch")
    p.add_argument("--lr", type=float, default=None, help="Adam learning rate (default: the trainer's, 0.003)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="streams per batch (snn_streaming) / windows per batch (default: the trainer's, 32); more streams "
                        "= fewer sequential steps per epoch")
    p.add_argument("--window", type=int, default=None,
                   help="truncated-BPTT window in 4 ms steps (snn_streaming; default: the trainer's, 160)")
    p.add_argument("--patience", type=int, default=None, help="epochs without a better validation R² before stopping (default 6)")
    p.add_argument("--asa-ratio", type=float, default=0.5, help="ASA ratio λ (default 0.5)")
    p.add_argument("--asa-reduction", type=int, default=1, help="ASA reduction (default 1)")
    p.add_argument("--asa-bias", action="store_true",
                   help="the ASA arm also learns an offset per part before the sigmoid, starting at 0 (gains can go to ~0 "
                        "and silence the 'rest' neurons; snn_streaming)")
    p.add_argument("--latency-steps", type=int, default=3000, help="bins timed one per packet per model (default 3000)")
    p.add_argument("--models-dir", default="models/attention", help="where trained model files go (default models/attention)")
    p.add_argument("--out-dir", default="results/attention", help="plots and JSON (default results/attention)")
    p.add_argument("--reuse", action="store_true", help="reuse model files already in --models-dir instead of training")
    p.add_argument("--report-only", action="store_true",
                   help="train nothing: report the model files already in --models-dir and list the missing ones")
    p.add_argument("--json", dest="json_path", help="write the results as JSON here (default OUT_DIR/attention.json)")


def _train(kind: str, seed: int, attention: str, args: argparse.Namespace, data, path: Path,
           rate_penalty: float = 0.0) -> None:
    from nodes.decoders.training import TrainConfig, train
    from pipeline.modelfile import save_model

    cfg = TrainConfig(seed=seed, epochs=args.epochs, max_minutes=args.max_minutes, attention=attention,
                      asa_ratio=args.asa_ratio, asa_reduction=args.asa_reduction, rate_penalty=rate_penalty,
                      asa_bias=bool(getattr(args, "asa_bias", False)) and attention == "asa" and kind == "snn_streaming",
                      init=getattr(args, "init", None) or "", progress=False)
    if getattr(args, "lr", None):
        cfg.lr = float(args.lr)
    if getattr(args, "patience", None):
        cfg.patience = int(args.patience)
    if getattr(args, "batch_size", None):
        cfg.batch_size = int(args.batch_size)
    if getattr(args, "window", None):
        cfg.window = int(args.window)
        cfg.burn_in = min(cfg.burn_in, cfg.window // 2)  # the first window must keep steps for the loss
    arrays, meta = train(kind, data, cfg, source=args.recording)
    save_model(path, arrays, meta)


def _row(path: Path, data, args: argparse.Namespace) -> dict[str, Any]:
    from nodes.decoders.attention import attention_ops_per_step
    from nodes.decoders.attention_report import layer_activity
    from nodes.decoders.evaluation import evaluate_model
    from pipeline.modelfile import load_model

    arrays, meta = load_model(path)
    ev = evaluate_model(str(path), data, ["none", "causal"], latency_steps=args.latency_steps)
    ev.pop("_curves", None)
    sl = data.split["test"]
    act = layer_activity(arrays, meta, data.spikes[sl])
    sizes = [int(np.asarray(arrays[f"W{l}"]).shape[0]) for l in range(len(meta["architecture"]["layers"]))]
    return {
        "model": str(path), "kind": meta["kind"], "attention": meta.get("attention", {}).get("kind", "none"),
        "seed": meta["training"]["seed"], "epochs_run": meta["training"]["epochs_run"],
        "rate_penalty": float(meta["training"].get("rate_penalty", 0.0)),
        "train_seconds": meta["training"]["seconds"], "val_r2": meta["training"]["val_r2"],
        "r2": ev["r2"]["none"], "r2_causal": ev["r2"]["causal"],
        **act,
        "attention_macs_per_step": attention_ops_per_step(meta, sizes),
        "step_us_p50": ev["step_us_p50"], "step_us_p99": ev["step_us_p99"],
        "footprint_bytes": ev["footprint_bytes"], "offline_x_realtime": ev["offline_x_realtime"],
    }


def _table(rows: list[dict[str, Any]]) -> None:
    from pipeline.console import console
    from rich.table import Table

    t = Table(title="Decoders with and without ASA (test part of the bundled recording)")
    for col in ("kind", "seed", "penalty", "attention", "R²", "R² causal", "spikes/step", "per layer", "rate overall",
                "ACs/step", "MACs/step", "ASA MACs", "step p50 µs", "step p99 µs", "epochs"):
        t.add_column(col, justify="right")
    for r in rows:
        t.add_row(r["kind"], str(r["seed"]), f"{r.get('rate_penalty', 0.0):g}", r["attention"], f"{r['r2']:.3f}", f"{r['r2_causal']:.3f}",
                  f"{r['spikes_per_step']:.2f}", " / ".join(f"{s:.2f}" for s in r["spikes_per_step_per_layer"]),
                  f"{r['rate_overall']:.4f}", f"{r['acs_per_step']:.0f}", f"{r['macs_per_step']:.0f}",
                  f"{r['attention_macs_per_step']}", f"{r['step_us_p50']:.1f}", f"{r['step_us_p99']:.1f}",
                  str(r["epochs_run"]))
    console().print(t)


def compare(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (kind, seed, penalty): spike reduction, R² change, step-time ratio, and whether targets are met
    (ASA against the plain model trained with the same seed and the same firing-rate penalty)."""
    out = []
    keyed = {(r["kind"], r["seed"], r.get("rate_penalty", 0.0), r["attention"]): r for r in rows}
    for (kind, seed, pen, att), base in sorted(keyed.items()):
        if att != "none" or (kind, seed, pen, "asa") not in keyed:
            continue
        asa = keyed[(kind, seed, pen, "asa")]
        red = 1.0 - asa["spikes_per_step"] / base["spikes_per_step"] if base["spikes_per_step"] else float("nan")
        d_r2 = asa["r2"] - base["r2"]
        ratio = asa["step_us_p50"] / base["step_us_p50"]
        out.append({"kind": kind, "seed": seed, "rate_penalty": pen, "spike_reduction": red, "delta_r2": d_r2,
                    "delta_r2_causal": asa["r2_causal"] - base["r2_causal"], "step_time_ratio_p50": ratio,
                    "step_time_ratio_p99": asa["step_us_p99"] / base["step_us_p99"],
                    "met_spikes": bool(red >= 0.30), "met_r2": bool(d_r2 >= -0.005), "met_time": bool(ratio <= 1.3)})
    return out


def fronts(rows: list[dict[str, Any]], tolerance: float = 0.005) -> list[dict[str, Any]]:
    """Per kind: the issue-16 target read off the two fronts (means over seeds at each penalty).

    The reference is the best plain arm (highest mean R², usually penalty 0). For each arm, the
    point with the fewest spikes per neuron per step whose mean R² is within ``tolerance`` of the
    reference, and its spike reduction against the reference (target: ASA ≥ 30 %).
    """
    out = []
    for kind in sorted({r["kind"] for r in rows}):
        means = {}
        for r in rows:
            if r["kind"] != kind:
                continue
            key = (r["attention"], float(r.get("rate_penalty", 0.0)))
            means.setdefault(key, []).append(r)
        pts = {k: {"r2": float(np.mean([r["r2"] for r in v])), "rate": float(np.mean([r["rate_overall"] for r in v])),
                   "seeds": len(v)} for k, v in means.items()}
        plain = {k: v for k, v in pts.items() if k[0] == "none"}
        if not plain:
            continue
        ref_key = max(plain, key=lambda k: plain[k]["r2"])
        ref = plain[ref_key]
        entry = {"kind": kind, "reference": {"attention": "none", "rate_penalty": ref_key[1], **ref},
                 "points": [{"attention": k[0], "rate_penalty": k[1], **v} for k, v in sorted(pts.items())]}
        for arm in ("none", "asa"):
            ok = [(k, v) for k, v in pts.items() if k[0] == arm and v["r2"] >= ref["r2"] - tolerance]
            if ok:
                k, v = min(ok, key=lambda kv: kv[1]["rate"])
                entry[f"best_{arm}"] = {"rate_penalty": k[1], **v, "spike_reduction": 1.0 - v["rate"] / ref["rate"]}
            else:
                entry[f"best_{arm}"] = None
        b = entry["best_asa"]
        entry["met_spikes"] = bool(b is not None and b["spike_reduction"] >= 0.30)
        out.append(entry)
    return out


def run(args: argparse.Namespace) -> int:
    from pipeline.console import console

    from nodes.decoders.attention_report import attention_trace, plot_attention, plot_front, plot_rate_fronts
    from nodes.decoders.data import load_data
    from pipeline.modelfile import load_model

    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    penalties = [float(w) for w in args.rate_penalties.split(",") if w.strip()]
    data = load_data(args.recording)
    models_dir, out_dir = Path(args.models_dir), Path(args.out_dir)
    rows = []
    missing: list[str] = []
    t0 = time.perf_counter()
    for kind in kinds:
        for pen in penalties:
            for seed in seeds:
                for attention in ("none", "asa"):
                    tag = "" if pen == 0 else f"_pen{pen:g}"
                    path = models_dir / f"{kind}_{attention}{tag}_seed{seed}.npz"
                    if getattr(args, "report_only", False) and not path.is_file():
                        missing.append(path.name)
                        continue
                    if not (args.reuse and path.is_file()):
                        _train(kind, seed, attention, args, data, path, rate_penalty=pen)
                    rows.append(_row(path, data, args))
                if not rows:
                    continue
                print(f"[{time.perf_counter() - t0:.0f} s] {Path(rows[-1]['model']).name}: R2 {rows[-1]['r2']:.3f}, "
                      f"{rows[-1]['spikes_per_step']:.2f} spikes/step, p50 {rows[-1]['step_us_p50']:.1f} us", flush=True)
    if missing:
        print(f"not trained (left out of the report): {', '.join(missing)}")
    _table(rows)
    comp = compare(rows)
    con = console()
    for c in comp:
        con.print(f"{c['kind']} seed {c['seed']} penalty {c['rate_penalty']:g}: spikes/step {-100 * c['spike_reduction']:+.1f} % "
                  f"(target ≤ −30 %: {'met' if c['met_spikes'] else 'NOT met'}), ΔR² {c['delta_r2']:+.3f} "
                  f"(target ≥ −0.005: {'met' if c['met_r2'] else 'NOT met'}), step time ×{c['step_time_ratio_p50']:.2f} "
                  f"p50 (target ≤ 1.3: {'met' if c['met_time'] else 'NOT met'})")
    points = [{"label": f"{r['kind']} {r['attention']} w{r.get('rate_penalty', 0.0):g} s{r['seed']}", "spikes_per_step": r["spikes_per_step"],
               "r2": r["r2"], "group": r["kind"], "attention": r["attention"]} for r in rows]
    front = plot_front(points, out_dir / "front.png")
    refs = []
    if getattr(args, "init", None):  # the model both arms were fine-tuned from, as a reference point
        init_row = _row(Path(args.init), data, args)
        refs.append({"label": f"start model ({Path(args.init).name})", "rate_overall": init_row["rate_overall"],
                     "r2": init_row["r2"]})
    plots = {"front": str(front),
             "rate_fronts": str(plot_rate_fronts(rows, out_dir / "rate_fronts.png", references=refs))}
    front_summary = fronts(rows)
    for f in front_summary:
        ref = f["reference"]
        con.print(f"{f['kind']}: best plain mean R² {ref['r2']:.3f} at penalty {ref['rate_penalty']:g}, "
                  f"{ref['rate']:.4f} spikes/neuron/step")
        for arm in ("none", "asa"):
            b = f[f"best_{arm}"]
            name = "with ASA" if arm == "asa" else "without ASA"
            if b is None:
                con.print(f"  {name}: no penalty keeps the mean R² within 0.005 of it")
            else:
                con.print(f"  {name}: fewest spikes within 0.005 R²: penalty {b['rate_penalty']:g}, R² {b['r2']:.3f}, "
                          f"{b['rate']:.4f} spikes/neuron/step ({-100 * b['spike_reduction']:+.1f} %)")
        con.print(f"  target (ASA ≥ 30 % fewer spikes at R² within 0.005): {'met' if f['met_spikes'] else 'NOT met'}")
    sl = data.split["test"]
    stretch = data.spikes[sl][: int(4 * data.rate_hz)]
    for kind in kinds:
        tag = "" if penalties[0] == 0 else f"_pen{penalties[0]:g}"
        path = models_dir / f"{kind}_asa{tag}_seed{seeds[0]}.npz"
        if not path.is_file():
            continue
        arrays, meta = load_model(path)
        trace = attention_trace(arrays, meta, stretch)
        plots[f"attention_{kind}"] = str(plot_attention(trace, data.rate_hz, out_dir / f"attention_{kind}.png",
                                                        title=f"ASA gains per channel, {kind} (seed {seeds[0]}), first 4 s of the test part"))
    report = {"recording": args.recording, "seeds": seeds, "kinds": kinds,
              "training": {"epochs": args.epochs, "max_minutes": args.max_minutes,
                           "loss": "MSE + rate_penalty x spikes per neuron per step, same in both arms", "rate_penalties": penalties,
                           "asa_ratio": args.asa_ratio, "asa_reduction": args.asa_reduction,
                           "asa_bias": bool(getattr(args, "asa_bias", False)),
                           "init": getattr(args, "init", None), "lr": getattr(args, "lr", None),
                           "batch_size": getattr(args, "batch_size", None), "window": getattr(args, "window", None)},
              "rows": rows, "missing": missing, "comparison": comp, "fronts": front_summary, "references": refs, "plots": plots}
    json_path = Path(args.json_path) if args.json_path else out_dir / "attention.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=2, default=float))
    print(f"wrote {json_path}, {', '.join(plots.values())}")
    return 0


def main() -> int:  # pragma: no cover - convenience entry point
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(p)
    return run(p.parse_args())


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
