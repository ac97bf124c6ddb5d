"""Training of the decoders with snntorch / PyTorch (``spikeloop train --model KIND``).

* Streaming models (SNN_Streaming, LSTM): truncated backpropagation through time. Each epoch cuts
  the training part into ``batch_size`` contiguous streams (random offset) and steps through them
  in consecutive ``window``-step windows, carrying the (detached) state from one window to the
  next, so training sees the long-running state that streaming inference has (training on
  independent short windows from rest let the membranes drift in long runs). The first
  ``burn_in`` steps of an epoch only warm the state up.
* Window models (SNN_3D, ANN, ANN_3D): minibatches of independent windows.
* Loss: MSE on velocity normalised by the training part's mean and standard deviation.
* After every epoch the model is exported and the NUMPY KERNEL (the code that runs in graphs) is
  scored on the validation part (R²); the best export is kept; training stops after ``patience``
  epochs without improvement, after ``epochs`` epochs, or after ``max_minutes``.
* Fixed seed (torch, numpy), ``torch.set_num_threads(threads)`` (default 1: the per-step tensors
  are tiny; measured here, 2 threads made a batch 10x slower when the 2 cores were busy).

The model file is data only (``pipeline.modelfile.save_model``), family ``decoder``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from nodes.decoders.data import DecoderData
from nodes.decoders.features import FeatureSpec, features
from nodes.decoders.kernels import make_kernel
from nodes.decoders.metrics import r2
from nodes.decoders.specs import MODEL_KINDS, base_metadata


@dataclass
class TrainConfig:
    """Training settings (defaults suit the bundled sample on 2 cores: a few minutes at most)."""

    epochs: int = 40
    patience: int = 6  # epochs without a better validation R² before stopping
    lr_patience: int = 1  # epochs without a better validation R² before halving the learning rate
    batch_size: int = 32
    lr: float = 3e-3
    window: int = 160  # steps per BPTT window (streaming models)
    burn_in: int = 40  # warm-up steps without loss at the start of an epoch's first window
    samples_per_epoch: int = 12000  # window models
    max_minutes: float = 4.0
    threads: int = 1  # per-step tensors are tiny: 2 threads only add OpenMP overhead (10x slower on a busy 2-core box)
    seed: int = 0
    progress: bool = True
    attention: str = "none"  # "asa": Advance Spatial Attention on the hidden layers (snn_streaming, snn_3d)
    asa_ratio: float = 0.5  # λ, fraction of a layer's channels in the important part
    asa_reduction: int = 1  # reduction of the ASA scoring fc over time
    asa_window: int = 4  # causal ASA (snn_streaming): current + 3 past steps
    asa_bias: bool = False  # causal ASA: learn an offset per part before the sigmoid (gains can go to ~0)
    asa_bias_lr: float = 0.0  # causal ASA: Adam step size of those offsets (0: the same as lr); Adam moves a
    # parameter by about lr per step, so at lr 1e-3 an offset cannot reach the -4 that silences a part
    weight_decay: float = 0.0  # Adam L2 penalty on every parameter (against overfitting a 5-minute training part)
    rate_penalty: float = 0.0  # SNNs: loss += rate_penalty · mean spikes per neuron per step (issue 16)
    dropout: float = 0.0  # snn_3d, lstm: dropout on the normalised input and hidden activity (training only)
    input_noise: float = 0.0  # snn_3d, lstm: std of Gaussian noise on the normalised input (training only)
    learn_neurons: bool = False  # snn_3d: learn one β and one θ per layer (default: fixed β 0.5, θ 0.5 as in the paper)
    hidden: int = 0  # lstm: hidden units (0: the default, 32)
    input_norm: str = "layernorm"  # lstm: "layernorm" over channels, or "zscore" per channel (train mean/std, as the ANN)
    forget_bias: float | None = None  # lstm: initial forget-gate bias (None: torch's default init, ~U(±1/sqrt(hidden)));
    # 3 starts every cell remembering ~20 steps (sigmoid(3) = 0.95 per 4 ms step, time constant ~80 ms)
    feature_width: int = 0  # lstm: input = counts over the last N 4 ms bins (0: the default, 8 = 32 ms)
    init: str = ""  # start from this model file of the same kind (an ASA arm starts as the plain model: see start_from)


def validation_r2(arrays: dict[str, np.ndarray], meta: dict[str, Any], data: DecoderData, part: str = "val") -> float:
    """R² of the numpy kernel of ``(arrays, meta)`` on ``data.split[part]``, from a cold start."""
    kernel = make_kernel(arrays, meta)
    sl = data.split[part]
    y = kernel.run(data.spikes[sl])
    return r2(data.velocity[sl], y)


def start_from(model: Any, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> str:
    """Load a trained model file's ``arrays`` into ``model`` (same kind); return how.

    If ``model`` has ASA modules and the file has none (a plain model), the ASA arm starts as
    exactly the plain model: the two attention convs start at zero (every gain σ(0) = 0.5) and the
    attended layers' weights and biases are doubled, so the rescaled currents equal the plain
    ones bit for bit (powers of two) and fine-tuning both arms starts from the same function.
    """
    from nodes.decoders.attention_torch import export_attention

    layers = list(getattr(model, "layers", []))
    attended = [l for l, layer in enumerate(layers) if getattr(layer, "asa", None) is not None]
    if not attended or any(k.startswith("asa") for k in arrays):
        model.load_arrays(arrays)
        return "loaded as is"
    fresh = export_attention(layers)
    arrays = dict(arrays)
    for k, v in fresh.items():
        arrays[k] = np.zeros_like(v) if k.endswith(("conv_im", "conv_rest")) else v
    for l in attended:
        arrays[f"W{l}"] = np.asarray(arrays[f"W{l}"], dtype=np.float32) * np.float32(2)
        arrays[f"b{l}"] = np.asarray(arrays[f"b{l}"], dtype=np.float32) * np.float32(2)
    model.load_arrays(arrays)
    return f"plain model with ASA added on layers {attended} (convs 0: gains 0.5; those layers' W, b doubled)"


def train(kind: str, data: DecoderData, cfg: TrainConfig = TrainConfig(), source: str = "",
          on_epoch: Callable[[dict, dict, dict, Any], None] | None = None,
          resume: Any = None) -> tuple[dict, dict]:
    """Train a decoder of ``kind`` on ``data``; return ``(arrays, metadata)`` for ``save_model``.

    ``on_epoch(record, arrays, meta, state)``, if given, is called after every epoch with that
    epoch's history record (``epoch``, ``loss``, ``val_r2``, ``lr``), its exported arrays, the
    model's metadata so far and the trainer's full state (:class:`pipeline.trainstate.TrainState`)
    (used by ``spikeloop sweep`` to report to Ray Tune and checkpoint). ``resume``, a
    ``TrainState`` from such a call, continues that run from the next epoch, exactly as if it had
    not stopped (same ``kind``, data and ``cfg``).
    """
    import torch

    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown decoder model {kind!r}; choose one of: {', '.join(MODEL_KINDS)}")
    from nodes.decoders.torch_models import build

    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    meta = base_metadata(kind, data.channels, data.rate_hz)
    init_arrays: dict[str, np.ndarray] | None = None
    if cfg.init:
        from pipeline.modelfile import load_model

        init_arrays, init_meta = load_model(cfg.init)
        if init_meta.get("kind") != kind:
            raise ValueError(f"--init {cfg.init}: a {init_meta.get('kind')} model, not {kind}")
        meta["architecture"] = dict(init_meta["architecture"])
        if kind == "snn_streaming":  # rebuild from the file's initial values; its trained ones are loaded below
            for key in ("beta", "threshold"):
                meta["architecture"][key] = meta["architecture"].get(f"{key}_init", meta["architecture"][key])
    if kind == "lstm" and cfg.hidden and init_arrays is None:
        meta["architecture"]["hidden"] = int(cfg.hidden)
    if kind == "lstm" and cfg.feature_width and init_arrays is None:
        meta["features"] = FeatureSpec("sum", width=int(cfg.feature_width)).to_dict()
    if kind == "snn_3d" and cfg.learn_neurons:
        meta["architecture"].update(learn_beta=True, learn_threshold=True,
                                    beta_range=[0.0, 0.995], threshold_min=0.02)
    from nodes.decoders.attention import attention_metadata

    meta["attention"] = attention_metadata(kind, cfg.attention, cfg.asa_ratio, cfg.asa_reduction, cfg.asa_window,
                                           steps=int(meta["features"].get("steps", 1)), bias=cfg.asa_bias)
    spec = FeatureSpec.from_dict(meta["features"])
    tr = data.split["train"]
    vel_tr = data.velocity[tr].astype(np.float64)
    t_mean = vel_tr.mean(axis=0).astype(np.float32)
    t_scale = np.maximum(vel_tr.std(axis=0), 1e-6).astype(np.float32)
    X = features(spec, data.spikes)  # (T, C) or (T, steps, C), cold start at the recording's start
    Y = ((data.velocity - t_mean) / t_scale).astype(np.float32)
    extra: dict[str, np.ndarray] = {"target_scale": t_scale, "target_mean": t_mean}

    model = build(kind, meta)
    init_how = ""
    if init_arrays is not None:
        t_mean = np.asarray(init_arrays["target_mean"], dtype=np.float32)  # keep the file's output scaling
        t_scale = np.asarray(init_arrays["target_scale"], dtype=np.float32)
        Y = ((data.velocity - t_mean) / t_scale).astype(np.float32)
        extra = {"target_scale": t_scale, "target_mean": t_mean}
        init_how = start_from(model, init_arrays, meta)
    if hasattr(model, "drop"):
        model.drop.p = float(cfg.dropout)
        model.input_noise = float(cfg.input_noise)
    elif cfg.dropout > 0 or cfg.input_noise > 0:
        raise ValueError(f"dropout / input noise are available for snn_3d and lstm, not {kind}")
    if kind == "lstm" and cfg.input_norm == "zscore" and init_arrays is None:
        meta["architecture"]["norm"] = "z-score (train mean/std)"
        model = build(kind, meta)
        if hasattr(model, "drop"):
            model.drop.p = float(cfg.dropout)
            model.input_noise = float(cfg.input_noise)
    if kind == "lstm" and cfg.forget_bias is not None and init_arrays is None:
        model.init_forget_bias(cfg.forget_bias)
        meta["architecture"]["forget_bias_init"] = float(cfg.forget_bias)
    if (kind in ("ann", "ann_3d") or (kind == "lstm" and getattr(model, "zscore", False))) and init_arrays is None:
        flat = X[tr].reshape(X[tr].shape[0], -1)
        mean = flat.mean(axis=0)
        std = flat.std(axis=0)
        std = np.where(std > 1e-3, std, 1.0).astype(np.float32)
        with torch.no_grad():
            model.in_mean.copy_(torch.from_numpy(mean.astype(np.float32)))
            model.in_std.copy_(torch.from_numpy(std))
    offsets = [p for name, p in model.named_parameters() if name.endswith("gain_bias")]
    if cfg.asa_bias_lr > 0 and offsets:  # the ASA offsets get their own step size
        rest = [p for name, p in model.named_parameters() if not name.endswith("gain_bias")]
        opt = torch.optim.Adam([{"params": rest}, {"params": offsets, "lr": cfg.asa_bias_lr, "weight_decay": 0.0}],
                               lr=cfg.lr, weight_decay=cfg.weight_decay)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    # halve the step size when validation R² stalls: SNN_Streaming's validation R² rose to 0.44 and
    # then fell back to 0.11 at a constant 3e-3 (its surrogate gradients overshoot late in training)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=0.5, patience=cfg.lr_patience)
    streaming = kind in ("snn_streaming", "lstm")
    if streaming and cfg.burn_in >= cfg.window:  # the first window must keep steps for the loss (else it is NaN)
        cfg = replace(cfg, burn_in=cfg.window // 2)
    Xt, Yt = torch.from_numpy(X), torch.from_numpy(Y)
    idx_tr = np.arange(tr.start, tr.stop)
    n_tr = len(idx_tr)

    def batches() -> list:
        if streaming:
            # truncated BPTT over the training part cut into batch_size contiguous streams (random
            # offset per epoch), consecutive windows of `window` steps, state carried (detached)
            # from one window to the next, so training sees the same long-running state as inference
            offset = int(rng.integers(0, cfg.window))
            per_stream = (n_tr - offset) // cfg.batch_size
            n_win = per_stream // cfg.window
            if n_win < 1:
                raise ValueError(f"training part has {n_tr} bins, too few for {cfg.batch_size} streams of "
                                 f"one {cfg.window}-step window")
            starts = tr.start + offset + per_stream * np.arange(cfg.batch_size)
            return [starts[None, :] + (w * cfg.window + np.arange(cfg.window))[:, None] for w in range(n_win)]
        perm = rng.permutation(idx_tr)[: cfg.samples_per_epoch]
        bs = max(cfg.batch_size, 64) * 4 if kind != "snn_3d" else max(cfg.batch_size, 64) * 2
        return [perm[i:i + bs] for i in range(0, len(perm), bs)]

    carried: list = [None]  # streaming models: state carried across consecutive windows

    def loss_of(batch: np.ndarray, first: bool = True) -> "torch.Tensor":
        if first:
            carried[0] = None
        spikes = None
        if kind == "snn_streaming":
            y, state, spikes = model(Xt[batch], carried[0], record=cfg.rate_penalty > 0, record_grad=True)
            # (membrane, spikes) per layer, plus the causal ASA's window of past currents with attention
            carried[0] = [tuple(t.detach() for t in layer) for layer in state]
        elif kind == "lstm":
            y, state = model(Xt[batch], carried[0])
            carried[0] = tuple(t.detach() for t in state)
        elif kind == "snn_3d":
            y, spikes = model(Xt[batch], record=cfg.rate_penalty > 0, record_grad=True)
        else:
            y = model(Xt[batch])
        target = Yt[batch]
        if streaming and first:  # the first window starts from rest: its first steps only warm up
            y, target = y[cfg.burn_in:], target[cfg.burn_in:]
        loss = torch.mean((y - target) ** 2)
        if spikes:  # firing-rate objective: spikes per neuron per step over all layers (with gradient)
            total = sum(sp.sum() for sp in spikes)
            count = sum(sp.numel() for sp in spikes)
            loss = loss + cfg.rate_penalty * total / count
        return loss

    def export() -> dict[str, np.ndarray]:
        return {**model.export(), **extra}

    from tqdm import tqdm

    from pipeline.trainstate import capture, restore

    t0 = time.perf_counter()
    best = (-np.inf, None, -1)
    history = []
    stale = 0
    first_epoch = 0
    stop_reason = "max epochs"
    if resume is not None:  # continue a run cut off after an epoch: everything the next epoch depends on
        loop = restore(resume, model, opt, plateau, rng)
        first_epoch, stale, history = int(loop["epoch"]), int(loop["stale"]), list(loop["history"])
        best = (float(loop["best_val"]), resume.best or None, int(loop["best_epoch"]))
        t0 -= float(loop["seconds"])
        if stale >= cfg.patience:
            first_epoch, stop_reason = cfg.epochs, f"early stop ({cfg.patience} epochs without a better validation R2)"
    bar = tqdm(range(first_epoch, cfg.epochs), desc=f"train {kind}", unit="epoch", disable=not cfg.progress)
    for epoch in bar:
        model.train()
        losses = []
        for i, batch in enumerate(batches()):
            opt.zero_grad()
            loss = loss_of(batch, first=(i == 0))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            if hasattr(model, "constrain"):  # trained β in [0, 1), θ > 0
                model.constrain()
            losses.append(loss.item())
        model.eval()
        arrays = export()
        val = validation_r2(arrays, meta, data)
        history.append({"epoch": epoch, "loss": float(np.mean(losses)), "val_r2": val,
                        "lr": float(opt.param_groups[0]["lr"])})
        plateau.step(val)
        if val > best[0]:
            best, stale = (val, arrays, epoch), 0
        else:
            stale += 1
        if on_epoch is not None:
            state = capture(model, opt, plateau, rng, {"epoch": epoch + 1, "stale": stale, "history": history,
                                                       "best_val": best[0], "best_epoch": best[2],
                                                       "seconds": time.perf_counter() - t0},
                            best[1] if best[1] is not None else {})
            on_epoch(history[-1], arrays, meta, state)
        bar.set_postfix(loss=f"{np.mean(losses):.3f}", val_r2=f"{val:.3f}", best=f"{best[0]:.3f}")
        if stale >= cfg.patience:
            stop_reason = f"early stop ({cfg.patience} epochs without a better validation R2)"
            break
        if time.perf_counter() - t0 > cfg.max_minutes * 60:
            stop_reason = f"time limit ({cfg.max_minutes} min)"
            break
    bar.close()
    val_r2, arrays, best_epoch = best
    if kind == "snn_3d" and cfg.learn_neurons and best_epoch >= 0:  # the TRAINED β/θ, one per layer
        arch = meta["architecture"]
        arch["beta_init"], arch["threshold_init"] = arch["beta"], arch["threshold"]
        n_layers = len(arch["layers"])
        arch["beta"] = [float(np.asarray(arrays[f"beta{l}"]).reshape(-1)[0]) for l in range(n_layers)]
        arch["threshold"] = [float(np.asarray(arrays[f"thr{l}"]).reshape(-1)[0]) for l in range(n_layers)]
    if kind == "snn_streaming" and best_epoch >= 0:  # record the TRAINED neuron parameters
        arch = meta["architecture"]
        arch["beta_init"], arch["threshold_init"] = arch["beta"], arch["threshold"]
        n_layers = len(arch["layers"])  # exactly the values the kernel runs (thresholds on the 2**-14 grid)
        arch["beta"] = [np.asarray(arrays[f"beta{l}"], dtype=np.float64).reshape(-1).tolist() for l in range(n_layers)]
        arch["threshold"] = [np.asarray(arrays[f"thr{l}"], dtype=np.float64).reshape(-1).tolist() for l in range(n_layers)]
        arch["memory_ms_median"] = [float(np.median(-4.0 / np.log(np.clip(b, 1e-6, 0.999999)))) for b in arch["beta"]]
    meta["training"] = {
        "recording": source or data.name, "seed": cfg.seed, "epochs_run": len(history), "best_epoch": best_epoch,
        "val_r2": float(val_r2), "stop": stop_reason, "seconds": round(time.perf_counter() - t0, 1),
        "lr": cfg.lr, "batch_size": cfg.batch_size, "threads": cfg.threads,
        "window": cfg.window if streaming else None, "burn_in": cfg.burn_in if streaming else None,
        "loss": "MSE on normalised velocity" + (f" + {cfg.rate_penalty:g} x spikes per neuron per step"
                                                 if cfg.rate_penalty > 0 and kind in ("snn_streaming", "snn_3d") else ""),
        "rate_penalty": cfg.rate_penalty, "weight_decay": cfg.weight_decay,
        "asa_bias_lr": cfg.asa_bias_lr or None,
        "dropout": cfg.dropout, "input_noise": cfg.input_noise, "init": cfg.init or None,
        "forget_bias": cfg.forget_bias if kind == "lstm" else None,
        "init_how": init_how or None, "optimizer": "Adam", "lr_schedule": f"halve after {cfg.lr_patience} epochs without a better validation R2",
        "torch": torch.__version__,
        "history": history,
    }
    meta["normalisation"] = {
        "target": "velocity = output * target_scale + target_mean (mm/s; train-part mean and std)",
        "target_mean": [float(v) for v in t_mean], "target_scale": [float(v) for v in t_scale],
        "input": {"snn_streaming": "binarised counts (count > 0)", "snn_3d": "LayerNorm over channels (learned)",
                  "ann": "z-score with train mean/std (arrays in_mean, in_std)",
                  "ann_3d": "z-score with train mean/std (arrays in_mean, in_std)",
                  "lstm": ("z-score with train mean/std (arrays in_mean, in_std)" if getattr(model, "zscore", False)
                           else "LayerNorm over channels (learned)")}[kind],
    }
    return arrays, meta


def run_cli(args: Any, on_epoch: Callable[[dict, dict, dict, Any], None] | None = None) -> int:
    """``spikeloop train --model KIND --recording R --out M.npz`` (decoder family); ``on_epoch``: see :func:`train`.

    ``args.resume_state`` (not a command-line option; set by ``spikeloop sweep`` when it resumes a
    trial), if present and not None, is passed to :func:`train` as ``resume``."""
    from pipeline.errors import UserError
    from pipeline.modelfile import save_model

    from nodes.decoders.data import load_data
    from pipeline.cli.mapping_options import mapping_from_args

    if not getattr(args, "recording", None):
        raise UserError("decoder training needs --recording PATH (a reaching recording, e.g. recordings/reaching_sample.xdfz)")
    cfg = TrainConfig(seed=args.seed, progress=getattr(args, "progress", True))
    for name in ("epochs", "patience", "batch_size", "lr", "window", "burn_in", "max_minutes", "threads"):
        value = getattr(args, name, None)
        if value is not None:
            if value <= 0:
                raise UserError(f"--{name.replace('_', '-')} must be > 0, got {value}")
            setattr(cfg, name, type(getattr(cfg, name))(value))
    if getattr(args, "weight_decay", None) is not None:
        if args.weight_decay < 0:
            raise UserError(f"--weight-decay must be >= 0, got {args.weight_decay}")
        cfg.weight_decay = float(args.weight_decay)
    if getattr(args, "rate_penalty", None) is not None:
        if args.rate_penalty < 0:
            raise UserError(f"--rate-penalty must be >= 0, got {args.rate_penalty}")
        if args.model not in ("snn_streaming", "snn_3d"):
            raise UserError(f"--rate-penalty applies to spiking decoders (snn_streaming, snn_3d), not {args.model}")
        cfg.rate_penalty = float(args.rate_penalty)
    for name in ("dropout", "input_noise"):
        value = getattr(args, name, None)
        if value is not None:
            if not (0 <= value < 1 if name == "dropout" else value >= 0):
                raise UserError(f"--{name.replace('_', '-')} must be {'in [0, 1)' if name == 'dropout' else '>= 0'}, got {value}")
            if value > 0 and args.model not in ("snn_3d", "lstm"):
                raise UserError(f"--{name.replace('_', '-')} applies to snn_3d and lstm, not {args.model}")
            setattr(cfg, name, float(value))
    if getattr(args, "learn_neurons", False):
        if args.model != "snn_3d":
            raise UserError(f"--learn-neurons applies to snn_3d (snn_streaming always learns its neurons), not {args.model}")
        cfg.learn_neurons = True
    # options of the LSTM only: (name, smallest value or None, unit in the error)
    for name, least, unit in (("hidden", 1, ""), ("input_norm", None, ""), ("forget_bias", None, ""),
                              ("feature_width", 1, " bin")):
        value = getattr(args, name, None)
        if value is None:
            continue
        flag = "--" + name.replace("_", "-")
        if args.model != "lstm":
            raise UserError(f"{flag} applies to lstm, not {args.model}")
        if least is not None and value < least:
            raise UserError(f"{flag} must be >= {least}{unit}, got {value}")
        setattr(cfg, name, value)
    if getattr(args, "init", None):
        if not Path(args.init).is_file():
            raise UserError(f"--init {args.init}: no such model file")
        cfg.init = str(args.init)
    for name in ("attention", "asa_ratio", "asa_reduction", "asa_window", "asa_bias", "asa_bias_lr"):  # issue 5: ASA options
        if getattr(args, name, None) is not None:
            setattr(cfg, name, getattr(args, name))
    try:
        from nodes.decoders.attention import attention_metadata

        attention_metadata(args.model, cfg.attention, cfg.asa_ratio, cfg.asa_reduction, cfg.asa_window, bias=cfg.asa_bias)
        if cfg.asa_bias and cfg.attention != "asa":
            raise ValueError("--asa-bias needs --attention asa")
        if cfg.asa_bias_lr and not cfg.asa_bias:
            raise ValueError("--asa-bias-lr needs --asa-bias")
        if cfg.asa_bias_lr < 0:
            raise ValueError(f"--asa-bias-lr must be >= 0, got {cfg.asa_bias_lr}")
    except ValueError as exc:
        raise UserError(f"--attention/--asa-*: {exc}") from None
    data = load_data(args.recording, mapping_from_args(args))
    try:
        arrays, meta = train(args.model, data, cfg, source=str(args.recording), on_epoch=on_epoch,
                             resume=getattr(args, "resume_state", None))
    except ValueError as exc:
        if not cfg.init:
            raise
        raise UserError(f"train {args.model}: {exc}") from None
    path = save_model(args.out, arrays, meta)
    t = meta["training"]
    size = Path(path).stat().st_size
    print(f"{args.model}: validation R2 {t['val_r2']:.3f} (epoch {t['best_epoch']}, {t['stop']}, "
          f"{t['seconds']:.0f} s); wrote {path} ({size / 1024:.1f} kB)")
    return 0
