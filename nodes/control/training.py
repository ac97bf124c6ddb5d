"""Training of the collision-avoidance CRNN and its quantisation-aware fine-tuning (torch, lazily).

``spikeloop train --model crnn --dataset PATH --out models/crnn.npz`` trains the float CRNN on the
standard split (:mod:`nodes.control.dataset`); ``--levels L --init models/crnn.npz`` fine-tunes a
quantised CRNN (QCRNN) from it; ``--sim-episodes N`` adds N episodes of the simulator's expert
(:mod:`nodes.control.expert`) to the training data (to close the real-to-sim gap; the real traces
stay in the mix so the real test MSE is still reported); ``--dagger-episodes N --init M`` adds N
episodes driven by the controller ``M`` and labelled by the expert (DAgger).

* Loss: MSE of the steering over every step of 32-step sequences, h0 = 0 per sequence.
* Optional augmentation (``FitConfig.augment``, off by default: it did not lower the validation
  MSE): per-sequence range scaling by U(0.85, 1.15) plus N(0, 3 cm) noise.
* Optional regularisation (all off by default): Adam weight decay (``--weight-decay``, default
  1e-4), dropout on the features entering the RNN and on the hidden state read out
  (``--dropout``), Gaussian range noise in metres (``--input-noise``), a smaller or larger RNN
  (``--hidden``, from scratch only), wider or narrower conv layers (``--conv-channels``, from
  scratch only; stored in the file's ``conv_layers``), and for the turn-rate state input (index 1, which the network
  feeds back to itself in closed loop) Gaussian noise (``--state-noise``) or zeroing per sequence
  (``--state-drop``), so it cannot serve as a latch.
* Ensemble distillation (``--teachers M [M ...]``, ``--teacher-weight W``, default 1): the training
  labels become (1 - W) x label + W x the mean output of the teacher networks (same split only);
  validation and test keep the recorded labels.
* Quantised models: ``--consistency W`` adds W x MSE between the float path of the same weights
  and the quantised output (held fixed) on every training sequence, so the float network of the
  weights learns to decide as the quantised (= spiking) one does.
* Optional weight averaging and schedule (off by default): ``--ema DECAY`` scores and keeps an
  exponential moving average of the weights, ``--swa-from EPOCH`` the equal-weight mean of every
  epoch's weights from that epoch on (:mod:`nodes.control.averaging`); ``--lr-schedule cosine``
  decays the learning rate to 0 over ``--epochs`` in place of halving it on a validation plateau.
* Adam, fixed seed (torch, numpy), ``torch.set_num_threads(1)``; after every epoch the numpy
  kernel of the exported model (the code that runs in graphs) is scored on the validation traces
  and the best export is kept; training stops after ``patience`` epochs without improvement,
  ``epochs`` epochs or ``max_minutes``.
* The test MSE (held-out traces) is printed at the end and stored in the model's metadata.

Model files are data only (``pipeline.modelfile.save_model``), family ``controller``, kind ``crnn``.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from nodes.control.averaging import WeightAverage
from nodes.control.dataset import (KERAS_TEST_TRACES, KERAS_VAL_TRACES, SEQ_LEN, SEQ_STRIDE, TEST_TRACES, VAL_TRACES,
                                   Sequences, get_split)
from nodes.control.kernels import CONV_LAYERS, HIDDEN, RANGE_CLIP_M, CrnnKernel, CrnnParams, conv_lengths, n_features
from pipeline.errors import UserError


@dataclass
class FitConfig:
    """Optimiser settings (defaults: a few minutes on 2 cores)."""

    epochs: int = 40
    patience: int = 15
    batch_size: int = 8
    lr: float = 2e-3
    weight_decay: float = 1e-4
    max_minutes: float = 4.0
    seed: int = 0
    threads: int = 1
    progress: bool = True
    augment: bool = False  # per-sequence range scaling x U(0.85, 1.15) and N(0, 0.03 m) range noise
    dual: bool = False  # quantised model: also train its float path (same weights) on the same targets
    input_noise: float = 0.0  # N(0, input_noise) metres added to every range while training (clamped at 0)
    state_noise: float = 0.0  # N(0, state_noise) added to the turn-rate state value (index 1) while training
    state_drop: float = 0.0  # per sequence, probability that the turn-rate state value is fed as 0 while training
    consistency: float = 0.0  # quantised model: weight of MSE(float path, quantised output held fixed) in the loss
    ema: float = 0.0  # > 0: score and keep an exponential moving average of the weights (decay per optimiser step)
    swa_from: int = 0  # >= 1: score and keep the equal-weight mean of the weights after epochs swa_from, swa_from+1, ...
    lr_schedule: str = "plateau"  # "plateau": halve on a validation plateau; "cosine": cosine decay to 0 over `epochs`


def kernel_mse(arrays: dict[str, np.ndarray], meta: dict[str, Any], seqs: Sequences) -> float:
    """MSE of the numpy kernel (float or quantised, per ``meta['levels']``) on ``seqs``."""
    mode = "quant" if meta.get("levels") else "float"
    k = CrnnKernel(CrnnParams(arrays, meta), mode=mode)
    pred = k.run(seqs.scans, seqs.state)
    return float(np.mean((pred - seqs.steering) ** 2))


def augment_batch(x, st, cfg: FitConfig):
    """Training-time augmentation of one batch: scans ``x`` (B, N, 541) metres, state ``st`` (B, N, 2).

    Returns new tensors (the inputs are not modified): range scaling/noise per ``cfg.augment``,
    ``cfg.input_noise`` metres of Gaussian range noise, and on the turn-rate state value (index 1)
    ``cfg.state_noise`` Gaussian noise and, per sequence with probability ``cfg.state_drop``, zero.
    """
    import torch

    if cfg.augment:
        scale = torch.empty(len(x), 1, 1, dtype=x.dtype).uniform_(0.85, 1.15)
        x = torch.clamp(x * scale + 0.03 * torch.randn_like(x), min=0.0)
    if cfg.input_noise > 0:
        x = torch.clamp(x + cfg.input_noise * torch.randn_like(x), min=0.0)
    if cfg.state_noise > 0 or cfg.state_drop > 0:
        st = st.clone()
        if cfg.state_noise > 0:
            st[..., 1] += cfg.state_noise * torch.randn_like(st[..., 1])
        if cfg.state_drop > 0:
            keep = (torch.rand(len(st), 1, dtype=st.dtype) >= cfg.state_drop).to(st.dtype)
            st[..., 1] *= keep
    return x, st


def fit(model, train: Sequences, val: Sequences, meta: dict[str, Any], cfg: FitConfig, desc: str = "train",
        on_epoch: Callable[[dict, dict, dict, Any], None] | None = None, resume: Any = None):
    """Train ``model`` (a :class:`CRNN`); return the best ``(arrays, val_mse, epochs_run)``.

    ``on_epoch(record, arrays, meta, state)``, if given, is called after every epoch with
    ``{"epoch", "loss", "val_mse", "lr"}``, the epoch's exported arrays, ``meta`` and the
    trainer's full state (:class:`pipeline.trainstate.TrainState`; ``spikeloop sweep`` reports to
    Ray Tune and checkpoints them). ``resume``, such a state, continues that run from its next
    epoch exactly as if it had not stopped (same model, data and ``cfg``).
    """
    import torch
    from tqdm import tqdm

    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    rng = np.random.default_rng(cfg.seed)
    xs, ss, ys = (torch.from_numpy(a) for a in (train.scans, train.state, train.steering))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.lr_schedule == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, cfg.epochs))
    elif cfg.lr_schedule == "plateau":
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=max(2, cfg.patience // 3))
    else:
        raise UserError(f"learning-rate schedule must be 'plateau' or 'cosine', got {cfg.lr_schedule!r}")
    average = WeightAverage(model, cfg.ema, cfg.swa_from) if cfg.ema > 0 or cfg.swa_from > 0 else None
    from pipeline.trainstate import capture, restore

    best = (np.inf, model.export(), 0)
    t0 = time.monotonic()
    first_epoch = 0
    if resume is not None:  # continue a run cut off after an epoch
        loop = restore(resume, model, opt, sched, rng)
        first_epoch, best = int(loop["epoch"]), (float(loop["best_val"]), resume.best, int(loop["best_epoch"]))
        if average is not None:
            average.load_state(resume.arrays, int(loop.get("avg_count", 0)))
        t0 -= float(loop["seconds"])
        if first_epoch - best[2] >= cfg.patience:
            first_epoch = cfg.epochs
    bar = tqdm(range(first_epoch, cfg.epochs), desc=desc, unit="epoch", disable=not cfg.progress, leave=False)
    epoch = first_epoch - 1 if first_epoch else 0
    for epoch in bar:
        model.train()
        order = rng.permutation(len(train))
        losses = []
        for i in range(0, len(order), cfg.batch_size):
            idx = torch.from_numpy(order[i:i + cfg.batch_size])
            x, st = augment_batch(xs[idx], ss[idx], cfg)
            pred, _ = model(x, st)
            loss = torch.mean((pred - ys[idx]) ** 2)
            if (cfg.dual or cfg.consistency > 0) and model.levels is not None:  # the float path of the same weights
                levels, model.levels = model.levels, None
                pred_f, _ = model(x, st)
                model.levels = levels
                if cfg.dual:  # it must also drive: fitted to the same targets
                    loss = loss + torch.mean((pred_f - ys[idx]) ** 2)
                if cfg.consistency > 0:  # pulled towards what the quantised network outputs on these states
                    loss = loss + cfg.consistency * torch.mean((pred_f - pred.detach()) ** 2)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            if average is not None:
                average.after_step()
            losses.append(loss.item())
        if average is not None:
            average.after_epoch(epoch + 1)
            with average.swapped_in():  # score (and keep) the averaged weights once there are any
                arrays = model.export()
        else:
            arrays = model.export()
        val_mse = kernel_mse(arrays, meta, val)
        if cfg.lr_schedule == "cosine":
            sched.step()
        else:
            sched.step(val_mse)
        if val_mse < best[0]:
            best = (val_mse, arrays, epoch + 1)
        bar.set_postfix(train=f"{np.mean(losses):.4f}", val=f"{val_mse:.4f}", best=f"{best[0]:.4f}")
        if on_epoch is not None:
            state = capture(model, opt, sched, rng, {"epoch": epoch + 1, "best_val": best[0], "best_epoch": best[2],
                                                     "seconds": time.monotonic() - t0,
                                                     "avg_count": average.count if average is not None else 0}, best[1])
            if average is not None:
                state.arrays.update(average.state_arrays())
            on_epoch({"epoch": epoch, "loss": float(np.mean(losses)), "val_mse": val_mse,
                      "lr": float(opt.param_groups[0]["lr"])}, arrays, meta, state)
        if epoch + 1 - best[2] >= cfg.patience:
            break
        if time.monotonic() - t0 > 60 * cfg.max_minutes:
            break
    bar.close()
    return best[1], best[0], epoch + 1


def apply_regularisation(cfg: FitConfig, args: argparse.Namespace) -> dict[str, float]:
    """Copy the regularisation options given on the command line into ``cfg``; return them (for
    the model's metadata). Options left out (None) keep ``cfg``'s values; bad values raise UserError."""
    used: dict[str, float] = {}
    for name in ("weight_decay", "input_noise", "state_noise", "state_drop", "dropout", "consistency"):
        v = getattr(args, name, None)
        if v is None:
            continue
        if v < 0 or (name in ("state_drop", "dropout") and v >= 1):
            raise UserError(f"--{name.replace('_', '-')} must be >= 0{' and < 1' if name in ('state_drop', 'dropout') else ''}, got {v}")
        if name != "dropout":  # dropout lives in the model
            setattr(cfg, name, float(v))
        used[name] = float(v)
    return used


def apply_schedule(cfg: FitConfig, args: argparse.Namespace) -> dict[str, Any]:
    """Copy ``--ema``, ``--swa-from`` and ``--lr-schedule`` into ``cfg``; return them (for the model's
    metadata). Options left out keep ``cfg``'s values; bad values or EMA with SWA raise UserError."""
    used: dict[str, Any] = {}
    ema, swa, sched = getattr(args, "ema", None), getattr(args, "swa_from", None), getattr(args, "lr_schedule", None)
    if ema is not None:
        if not 0.0 < ema < 1.0:
            raise UserError(f"--ema must be in (0, 1) (decay per optimiser step, e.g. 0.999), got {ema}")
        cfg.ema = used["ema"] = float(ema)
    if swa is not None:
        if swa < 1:
            raise UserError(f"--swa-from must be an epoch >= 1, got {swa}")
        cfg.swa_from = used["swa_from"] = int(swa)
    if cfg.ema > 0 and cfg.swa_from > 0:
        raise UserError("--ema and --swa-from are two ways of averaging the weights: give one of them")
    if sched is not None:
        if sched not in ("plateau", "cosine"):
            raise UserError(f"--lr-schedule must be plateau or cosine, got {sched!r}")
        cfg.lr_schedule = used["lr_schedule"] = sched
    return used


def architecture_text(conv_layers=CONV_LAYERS, hidden: int = HIDDEN) -> str:
    """One line naming the layers, e.g. the reference
    ``Conv1D(12,k5,s3)-Conv1D(16,k5,s3)-Conv1D(24,k5,s2)-Conv1D(1,k1)->28 + 2 state -> RNN(32) -> 1``."""
    convs = "-".join(f"Conv1D({c},k{k}" + (f",s{s})" if s != 1 else ")") for _, c, k, s, _ in conv_layers)
    return f"{convs}->{n_features(conv_layers)} + 2 state -> RNN({hidden}) -> 1"


def _conv_layers(args: argparse.Namespace, init_meta: dict[str, Any]) -> tuple:
    """The conv stack to train: the --init file's, the reference one, or the reference one with the
    out-channels of ``--conv-channels C1,C2,C3,C4`` (from scratch only)."""
    text = getattr(args, "conv_channels", None)
    layers = (tuple(tuple(c) for c in init_meta["conv_layers"]) if init_meta.get("conv_layers") else CONV_LAYERS)
    if not text:
        return layers
    if args.init:
        raise UserError("--conv-channels applies to training from scratch (the --init file fixes its layers)")
    return with_out_channels(str(text), CONV_LAYERS)


def with_out_channels(text: str, base: tuple) -> tuple:
    """The conv layers ``base`` with the out-channels of ``text`` ("C1,C2,...": one positive count
    per layer, ``--conv-channels``); kernels, strides and signs stay."""
    try:
        channels = [int(c) for c in text.split(",")]
    except ValueError:
        channels = []
    if len(channels) != len(base) or min(channels) < 1:
        raise UserError(f"--conv-channels {text!r}: give {len(base)} positive out-channel counts, one per conv "
                        f"layer, e.g. {','.join(str(c) for _, c, *_ in base)} (the default)")
    return tuple((name, c, k, s, g) for (name, _, k, s, g), c in zip(base, channels))


def split_metadata(split: str = "standard") -> dict[str, Any]:
    """How a real-trace split is cut (stored in a model file as ``split``): its held-out test and
    validation trace numbers, the sequence length and stride, and which parts are mirrored."""
    if split == "standard":
        return {"name": "standard", "test_traces": list(TEST_TRACES), "val_traces": list(VAL_TRACES),
                "seq_len": SEQ_LEN, "seq_stride": SEQ_STRIDE, "mirror": True}
    return {"name": split, "test_traces": list(KERAS_TEST_TRACES), "val_traces": list(KERAS_VAL_TRACES),
            "seq_len": SEQ_LEN, "seq_stride": SEQ_STRIDE, "mirror": "train, val and test"}


def base_metadata(levels: int | None, dataset: str, split: str = "standard",
                  conv_layers=CONV_LAYERS) -> dict[str, Any]:
    """Architecture and data description stored in every controller model file (``conv_layers``
    only when it differs from the reference stack, so older readers see the same files)."""
    meta: dict[str, Any] = {
        "family": "controller",
        "kind": "crnn",
        "levels": levels,
        "architecture": architecture_text(conv_layers),
        "conv_lengths": conv_lengths(layers=conv_layers),
        "inputs": {"scan": "541 ranges in metres, 270 deg at 0.5 deg, beam 0 on the right",
                   "state": "2 values (linear, angular velocity) clipped to [-1, 1]"},
        "preprocess": f"min(range, {RANGE_CLIP_M}) / {RANGE_CLIP_M}",
        "output": "steering in [-1, 1], +1 turns left (towards beam 540)",
        "rate_hz": 20.0,
        "dataset": dataset,
        "split": split_metadata(split),
    }
    if tuple(tuple(c) for c in conv_layers) != CONV_LAYERS:
        meta["conv_layers"] = [list(c) for c in conv_layers]
    return meta


def trace_timesteps(arrays: dict[str, np.ndarray], meta: dict[str, Any], seqs: Sequences,
                    candidates=(4, 6, 8, 10, 12, 14, 16, 20, 24, 32)) -> tuple[int, dict[str, Any]]:
    """The smallest T of ``candidates`` at which the spiking (BIF) network's output equals the
    quantised one (to 1e-9) on every step of ``seqs`` (e.g. the validation traces' 32-step
    sequences from a zero state), and a note with the largest difference of every T that failed.
    If none is lossless, the last candidate is returned and the note says so."""
    from nodes.control.kernels import BifKernel

    params = CrnnParams(arrays, meta)
    q = CrnnKernel(params, mode="quant").run(seqs.scans, seqs.state)
    failed: dict[str, float] = {}
    for T in candidates:
        s, _ = BifKernel(params, T, len(seqs)).run(seqs.scans, seqs.state)
        worst = float(np.max(np.abs(s - q)))
        if worst < 1e-9:
            return T, {"method": "spiking vs quantised output, every step of the validation traces' sequences",
                       "sequences": len(seqs), "failed_T_max_diff": failed}
        failed[str(T)] = worst
    return candidates[-1], {"method": "spiking vs quantised output, validation traces", "sequences": len(seqs),
                            "failed_T_max_diff": failed, "lossless": False}


def teacher_targets(paths: list[str], seqs: Sequences, split_name: str) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Mean steering (S, SEQ_LEN) of the teacher networks ``paths`` on ``seqs`` (each run by its
    numpy kernel, float or quantised as its file says, h0 = 0 per sequence), and a note per teacher.

    A teacher must be a real-trace controller trained on the same split (the same test and
    validation traces, as its metadata lists them): one trained on another split has seen this
    split's test traces, and its targets would leak them into training."""
    want = split_metadata(split_name)
    from pipeline.modelfile import file_sha256, load_model

    preds, notes = [], []
    for path in paths:
        arrays, meta = load_model(path)
        if meta.get("family") != "controller" or meta.get("kind") != "crnn":
            raise UserError(f"--teachers {path}: not a crnn controller file (family {meta.get('family')!r}, "
                            f"kind {meta.get('kind')!r})")
        got = meta.get("split") or {}
        if any(sorted(got.get(key) or []) != sorted(want[key]) for key in ("test_traces", "val_traces")):
            raise UserError(f"--teachers {path}: trained with test traces {got.get('test_traces')} and validation "
                            f"traces {got.get('val_traces')}; this run's {split_name!r} split holds out "
                            f"{want['test_traces']} and {want['val_traces']} (the teacher's targets would carry "
                            "held-out traces into training)")
        mode = "quant" if meta.get("levels") else "float"
        preds.append(CrnnKernel(CrnnParams(arrays, meta), mode=mode).run(seqs.scans, seqs.state))
        notes.append({"file": Path(path).name, "sha256": file_sha256(path),
                      "seed": meta.get("seed"), "levels": meta.get("levels"), "architecture": meta.get("architecture"),
                      "val_mse": meta.get("val_mse"), "test_mse": meta.get("test_mse")})
    return np.mean(preds, axis=0).astype(np.float32), notes


def _concat(a: Sequences, b: Sequences) -> Sequences:
    return Sequences(*(np.concatenate([x, y]) for x, y in ((a.scans, b.scans), (a.state, b.state), (a.steering, b.steering))))


def train_crnn(args: argparse.Namespace, on_epoch: Callable[[dict, dict, dict, Any], None] | None = None) -> int:
    """``spikeloop train --model crnn``: see the module docstring; ``on_epoch``: see :func:`fit`.

    ``args.resume_state`` (set by ``spikeloop sweep`` when it resumes a trial), if not None, is
    passed to :func:`fit` as ``resume``."""
    import torch

    from nodes.control.torch_models import CRNN
    from pipeline.modelfile import load_model, save_model

    if not args.dataset:
        raise UserError("--dataset PATH is required for --model crnn (the ICRA 2020 LiDAR traces, "
                        "e.g. ../shared/datasets/icra2020-lidar)")
    levels = args.levels
    if levels is not None and not 2 <= levels <= 256:
        raise UserError(f"--levels must be in 2..256, got {levels}")
    if getattr(args, "consistency", None) and levels is None:
        raise UserError("--consistency pulls the float path towards the QUANTISED output: it needs --levels L")
    split_name = getattr(args, "split", None) or "standard"
    split = get_split(args.dataset, split_name)
    train, val, test = split.sequences("train"), split.sequences("val"), split.sequences("test")
    test_numbers = sorted({t.number for t in split.test})
    print(f"dataset {args.dataset}, {split_name} split: {len(split.train)} training traces (with mirrors), "
          f"{len(split.val)} validation, test traces {test_numbers}; "
          f"{len(train)} / {len(val)} / {len(test)} sequences of {SEQ_LEN} steps")
    sim_note = None
    if args.sim_episodes:
        from nodes.control.expert import expert_sequences

        sim = expert_sequences(args.sim_episodes, seed=args.seed + 1000, progress=True)
        sim_val = expert_sequences(max(4, args.sim_episodes // 8), seed=args.seed + 9000, progress=True)
        print(f"simulator expert data: {args.sim_episodes} episodes -> {len(sim)} sequences "
              f"(+{len(sim_val)} for validation)")
        train, val = _concat(train, sim), _concat(val, sim_val)
        sim_note = {"episodes": args.sim_episodes, "seed": args.seed + 1000}
    dagger_note = None
    if getattr(args, "dagger_episodes", None):
        from nodes.control.expert import dagger_sequences

        if not args.init:
            raise UserError("--dagger-episodes needs --init MODEL: the controller that drives the DAgger episodes")
        dag = dagger_sequences(args.init, args.dagger_episodes, seed=args.seed + 2000, progress=True)
        print(f"DAgger data: {args.dagger_episodes} episodes driven by {args.init}, labelled by the expert "
              f"-> {len(dag)} sequences")
        train = _concat(train, dag)
        dagger_note = {"episodes": args.dagger_episodes, "seed": args.seed + 2000, "driver": str(args.init)}
    init_meta: dict[str, Any] = {}
    if args.init:
        arrays0, init_meta = load_model(args.init)
    conv_layers = _conv_layers(args, init_meta)
    teacher_note = None
    if getattr(args, "teachers", None):  # ensemble distillation: blend the labels with the teachers' mean
        weight = 1.0 if getattr(args, "teacher_weight", None) is None else float(args.teacher_weight)
        if not 0.0 < weight <= 1.0:
            raise UserError(f"--teacher-weight must be in (0, 1], got {weight}")
        mean, notes = teacher_targets(list(args.teachers), train, split_name)
        before = float(np.mean((mean - train.steering) ** 2))
        train = Sequences(train.scans, train.state, ((1.0 - weight) * train.steering + weight * mean).astype(np.float32))
        print(f"distillation: {len(notes)} teachers, their mean's MSE to the training labels {before:.4f}; "
              f"training target = {1 - weight:g} x label + {weight:g} x teachers' mean")
        teacher_note = {"teachers": notes, "weight": weight, "teacher_mean_train_mse": before}
    meta = base_metadata(levels, str(args.dataset), split_name, conv_layers)
    meta["distillation"] = teacher_note
    meta["sim_expert"] = sim_note
    meta["dagger"] = dagger_note
    if args.init:
        if getattr(args, "hidden", None) and args.hidden != int(arrays0["rnn_wh"].shape[0]):
            raise UserError(f"--hidden {args.hidden}: {args.init} has {int(arrays0['rnn_wh'].shape[0])} hidden units "
                            "(--hidden applies to training from scratch)")
        model = CRNN.from_arrays(arrays0, levels, conv_layers, dropout=getattr(args, "dropout", None) or 0.0)
        if levels is not None and "rnn_step" not in arrays0:
            model.init_steps(torch.from_numpy(train.scans[:64]), torch.from_numpy(train.state[:64]))
    else:
        torch.manual_seed(args.seed)
        model = CRNN(levels, conv_layers, hidden=getattr(args, "hidden", None) or HIDDEN,
                     dropout=getattr(args, "dropout", None) or 0.0)
        if levels is not None:
            model.init_steps(torch.from_numpy(train.scans[:64]), torch.from_numpy(train.state[:64]))
    cfg = FitConfig(seed=args.seed, progress=getattr(args, "progress", True))
    if args.epochs:
        cfg.epochs = args.epochs
    if args.max_minutes:
        cfg.max_minutes = args.max_minutes
    if getattr(args, "patience", None):  # shared option (also used by the decoders)
        cfg.patience = args.patience
    if getattr(args, "augment", None):
        cfg.augment = True
    if args.init:
        cfg.lr = 1e-3
    for name in ("lr", "threads", "batch_size"):  # shared options (defined by the decoder family)
        if getattr(args, name, None):
            setattr(cfg, name, getattr(args, name))
    apply_regularisation(cfg, args)
    apply_schedule(cfg, args)
    t0 = time.monotonic()
    arrays, val_mse, epochs = fit(model, train, val, meta, cfg,
                                  desc=f"crnn{'' if levels is None else f' L={levels}'}", on_epoch=on_epoch,
                                  resume=getattr(args, "resume_state", None))
    test_mse = kernel_mse(arrays, meta, test)
    zero_mse = float(np.mean(test.steering ** 2))
    meta.update({
        "seed": args.seed, "epochs_run": epochs, "val_mse": val_mse, "test_mse": test_mse,
        "architecture": architecture_text(conv_layers, int(arrays["rnn_wh"].shape[0])),
        "test_mse_zero_predictor": zero_mse, "init": str(args.init) if args.init else None,
        "init_test_mse": init_meta.get("test_mse"), "train_minutes": (time.monotonic() - t0) / 60,
        "regularisation": {"weight_decay": cfg.weight_decay, "dropout": getattr(args, "dropout", None) or 0.0,
                           "input_noise_m": cfg.input_noise, "augment": cfg.augment, "lr": cfg.lr,
                           "hidden": int(arrays["rnn_wh"].shape[0])},
        "schedule": {"lr_schedule": cfg.lr_schedule, "lr": cfg.lr,
                     "weight_average": ({"kind": "ema", "decay": cfg.ema} if cfg.ema > 0 else
                                        {"kind": "swa", "from_epoch": cfg.swa_from} if cfg.swa_from > 0 else None)},
    })
    if levels is not None:  # the T a spiking session runs at: the smallest lossless one on the validation traces
        meta["timesteps"], meta["timesteps_note"] = trace_timesteps(arrays, meta, val)
        print(f"spiking T = {meta['timesteps']} (smallest T whose spiking output equals the quantised one on "
              f"the {len(val)} validation sequences; failed: {meta['timesteps_note']['failed_T_max_diff']})")
    save_model(args.out, arrays, meta)
    kind = "float CRNN" if levels is None else f"quantised CRNN (L={levels})"
    print(f"{kind}: {epochs} epochs, validation MSE {val_mse:.4f}, "
          f"TEST MSE {test_mse:.4f} (always-0 predictor {zero_mse:.4f}) -> {args.out}")
    return 0
