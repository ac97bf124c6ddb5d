"""Training a controller for driving: DAgger rounds in the simulator, the QUANTISED network driving.

``spikeloop train --model crnn_driver --out models/driver_q8.npz`` (no real traces needed):

1. **Expert data.** Episodes of the privileged arc planner (:class:`nodes.control.planners.ArcPlanner`,
   collision-free in 100 % of test worlds of every shipped family) with DART-style noise injected
   (:func:`nodes.control.expert.expert_episode`), ``--episodes`` per world family per round, in
   TRAINING seeds (:data:`nodes.control.simulator.SEED_RANGES`), with sensor noise on; mirrored.
2. **Float, then quantised.** A small CRNN (:data:`nodes.control.kernels.DRIVER_LAYERS`, RNN of
   ``HIDDEN``; invalid returns filled) is trained on it, quantised to ``--levels`` L and fine-tuned
   with the float path of the same weights trained alongside (so "the float network of the same
   weights" is a real controller, not an accident).
3. **DAgger rounds** (``--rounds``): the quantised network -- which drives exactly like its
   spiking (BIF) conversion -- drives ``--episodes`` episodes per family (the expert takes over on
   25 % of the 2-second segments, and after each collision until the end of the next segment), the
   expert labels every visited state, the data of ALL rounds is aggregated (a continued run reads
   the earlier rounds' data from ``--cache``) and the network fine-tuned.
4. **Model selection on driving.** After every round the quantised network drives ``--val-worlds``
   VALIDATION worlds per family; the round with the highest worst-family collision-free rate
   (ties: mean rate, then cells visited) is saved. Test seeds are never used here. A continued run
   (``--init``) re-scores its starting model on its own validation worlds unless the file's last
   round was scored on the same number of them.

Everything is seeded (``--seed``); torch runs on 1 thread; ``--max-minutes`` bounds the DAgger
loop (checked after each round). The model file is written after the expert round and after
every round that is the best so far, so a run cut short keeps its best model; ``--init MODEL``
continues the DAgger rounds from such a file, ``--cache DIR`` keeps the expert episodes and each
round's DAgger episodes (a continued run aggregates the earlier rounds' data from there; a round
is identified by the families, episode length, seed and its number).

The shipped driver adds a fixed near-obstacle reflex afterwards (``spikeloop train --model reflex
--init DRIVER``, :mod:`nodes.control.reflex`); DAgger continues from the driver without it.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from nodes.control.dataset import SEQ_LEN, SEQ_STRIDE, Sequences, cut_sequences
from nodes.control.kernels import DRIVER_LAYERS, CrnnKernel, CrnnParams, fill_invalid
from nodes.control.simulator import SEED_RANGES, RobotEnv, WorldSpec
from pipeline.errors import UserError

DEFAULT_FAMILIES = ("configs/worlds/default.yaml", "configs/worlds/dense.yaml",
                    "configs/worlds/corridor.yaml", "configs/worlds/rooms.yaml")
HIDDEN = 32


def _specs(paths: list[str], episode_s: float) -> list[WorldSpec]:
    specs = []
    for p in paths:
        s = WorldSpec.from_file(p)
        s.episode_s = episode_s
        specs.append(s)
    return specs


def _concat(parts: list[Sequences]) -> Sequences:
    return Sequences(*(np.concatenate([getattr(p, k) for p in parts]) for k in ("scans", "state", "steering")))


def collect(specs: list[WorldSpec], episodes: int, seed0: int, rng: np.random.Generator,
            params: CrnnParams | None = None, progress: bool = True) -> Sequences:
    """``episodes`` per family from world seed ``seed0`` on: expert-driven (noisy) when ``params``
    is None, else driven by the quantised network of ``params``; labelled by the expert, mirrored."""
    from tqdm import tqdm

    from nodes.control.expert import expert_episode, learner_episode

    traces = []
    kernel = CrnnKernel(params, 1, "quant") if params is not None else None
    jobs = [(s, seed0 + i) for s in specs for i in range(episodes)]
    for spec, seed in tqdm(jobs, desc="expert episodes" if kernel is None else "DAgger episodes",
                           disable=not progress, leave=False):
        env = RobotEnv(spec)
        if kernel is None:
            t = expert_episode(env, seed, rng)
        else:
            kernel.reset()
            t = learner_episode(env, seed, lambda scan, state: kernel.step(scan[None], state[None])[0], rng)
        t.scans = fill_invalid(t.scans).astype(np.float32)  # per trace: before the overlapping cut
        traces += [t, t.mirrored(state_signs=(1.0, -1.0))]
    return cut_sequences(traces, SEQ_LEN, SEQ_STRIDE)


def drive_score(params: CrnnParams, specs: list[WorldSpec], seeds: list[int], mode: str = "quant") -> dict[str, Any]:
    """Collision-free rate and cells visited per family, the network (``mode``) driving ``seeds``."""
    from nodes.control.evaluation import run_episodes

    out: dict[str, Any] = {}
    for spec in specs:
        res = run_episodes(CrnnKernel(params, len(seeds), mode), seeds, spec, progress=False)
        out[spec.name] = {"collision_free": float(np.mean([r["collisions"] == 0 for r in res])),
                          "cells": float(np.mean([r["cells_visited"] for r in res]))}
    rates = [v["collision_free"] for v in out.values()]
    out["_key"] = (min(rates), float(np.mean(rates)), float(np.mean([v["cells"] for v in out.values() if isinstance(v, dict)])))
    return out


def lossless_timesteps(params: CrnnParams, seqs: Sequences, candidates=(4, 6, 8, 10, 12, 14, 16, 20, 24, 32)) -> int:
    """The smallest T of ``candidates`` at which the spiking network's output equals the quantised
    one (to 1e-9) on every step of ``seqs`` (the shipped T is stored as ``timesteps`` in the file)."""
    from nodes.control.kernels import BifKernel

    q = CrnnKernel(params, mode="quant").run(seqs.scans, seqs.state)
    for T in candidates:
        s, _ = BifKernel(params, T, len(seqs)).run(seqs.scans, seqs.state)
        if np.max(np.abs(s - q)) < 1e-9:
            return T
    return candidates[-1]


def train_driver(args: argparse.Namespace, on_epoch: Callable[[dict, dict, dict, Any], None] | None = None) -> int:
    """``spikeloop train --model crnn_driver``: see the module docstring.

    ``on_epoch(record, arrays, meta, None)``, if given (``spikeloop sweep``), is called after every
    round is scored on the validation worlds (round 0: the expert round), with that round's model
    (``arrays`` and the metadata its file would have) and ``record`` = ``{"epoch": rounds done - 1,
    "val_collision_free": worst family's validation collision-free rate (0..1), "val_collision_free_mean",
    "val_cells", "val_mse": the last fine-tuning's validation MSE}``. No trainer state is passed: a
    resumed sweep trial of this kind starts again from its first round."""
    import torch

    from nodes.control.torch_models import CRNN
    from nodes.control.training import FitConfig, base_metadata, fit
    from pipeline.modelfile import save_model

    torch.set_num_threads(1)
    t_start = time.monotonic()
    budget_s = 60 * (args.max_minutes or 14.0)
    levels = args.levels or 8
    if not 2 <= levels <= 64:
        raise UserError(f"--levels must be in 2..64, got {levels}")
    families = list(args.worlds_files or DEFAULT_FAMILIES)
    episode_s = args.episode_s or 30.0
    specs = _specs(families, episode_s)
    episodes = args.episodes or 6
    rounds = args.rounds if args.rounds is not None else 4
    n_val = args.val_worlds or 20
    rng = np.random.default_rng(args.seed + 17)
    train_seed = SEED_RANGES["train"][0] + 1000 * args.seed
    val_seeds = list(range(SEED_RANGES["validation"][0], SEED_RANGES["validation"][0] + n_val))
    print(f"driving controller: families {[s.name for s in specs]}, {episode_s:g} s episodes, L={levels}, "
          f"{rounds} DAgger rounds x {episodes} episodes per family, selection on {n_val} validation worlds per family")

    meta = base_metadata(levels, "simulator (DAgger, arc-planner expert)")
    meta.update({"conv_layers": [list(c) for c in DRIVER_LAYERS], "invalid_returns": "fill",
                 "architecture": "Conv1D(8,k11,s10)-Conv1D(8,k5,s3)-Conv1D(2,k1) -> 34 + 2 state -> RNN(32) -> 1",
                 "split": None, "families": [s.name for s in specs]})
    cache = Path(args.cache) if getattr(args, "cache", None) else None

    def cached(name: str, make) -> Sequences:
        """Expert data is deterministic for its seeds: keep it in ``--cache DIR`` (data-only .npz)."""
        if cache is None:
            return make()
        f = cache / f"{name}.npz"
        if f.is_file():
            with np.load(f, allow_pickle=False) as z:
                return Sequences(z["scans"], z["state"], z["steering"])
        seqs = make()
        cache.mkdir(parents=True, exist_ok=True)
        np.savez(f, scans=seqs.scans, state=seqs.state, steering=seqs.steering)
        return seqs

    tag = f"{'-'.join(s.name for s in specs)}_{episode_s:g}s_seed{args.seed}"
    data = [cached(f"expert_{tag}_{episodes * 2}", lambda: collect(specs, episodes * 2, train_seed, np.random.default_rng(args.seed)))]
    train_seed += episodes * 2
    val = cached(f"expert_val_{tag}", lambda: collect(specs, 2, SEED_RANGES["validation"][1] - 100,
                                                       np.random.default_rng(args.seed + 1), progress=False))
    print(f"round 0: {len(data[0])} expert sequences ({len(val)} for early stopping)")

    def file_meta(arrays: dict, extra: dict) -> dict:
        m = dict(meta, **extra, seed=args.seed, train_minutes=(time.monotonic() - t_start) / 60)
        m["timesteps"] = lossless_timesteps(CrnnParams(arrays, m), Sequences(val.scans[:300], val.state[:300], val.steering[:300]))
        return m

    def save(arrays: dict, extra: dict) -> None:
        save_model(args.out, arrays, file_meta(arrays, extra))

    qcfg = FitConfig(epochs=args.epochs or 5, patience=3, seed=args.seed, max_minutes=2.5, batch_size=16,
                     lr=getattr(args, "lr", None) or 1e-3, dual=True)
    val_mse = float("nan")  # the last fine-tuning's validation MSE (none yet for a continued run's first round)
    if args.init:  # continue DAgger from a quantised driver
        from pipeline.modelfile import load_model

        arrays, init_meta = load_model(args.init)
        if "reflex_w" in arrays:
            raise UserError(f"{args.init}: has a near-obstacle reflex; continue DAgger from the driver without it "
                            f"(its 'init' metadata names it) and add the reflex afterwards (--model reflex)")
        if init_meta.get("levels") != levels or init_meta.get("conv_layers") != meta["conv_layers"]:
            raise UserError(f"{args.init}: --init must be a driving controller with L={levels} (train one without --init first)")
        history = list((init_meta.get("dagger") or {}).get("history", []))
        if cache is not None:  # aggregate the DAgger data of earlier rounds (DAgger keeps all of it)
            for f in sorted(cache.glob(f"dagger_{tag}_round*.npz")):
                if int(f.stem.split("_round")[1].split("_")[0]) < len(history):
                    data.append(cached(f.stem, lambda: None))
            print(f"aggregated data: {sum(len(d) for d in data)} sequences from {len(data)} rounds")
    else:
        torch.manual_seed(args.seed)
        fmodel = CRNN(None, DRIVER_LAYERS, HIDDEN)
        cfg = FitConfig(epochs=args.epochs or 8, patience=4, seed=args.seed, max_minutes=3.0, batch_size=16)
        arrays, _, _ = fit(fmodel, _concat(data), val, dict(meta, levels=None), cfg, desc="float")
        model = CRNN.from_arrays(arrays, levels, DRIVER_LAYERS)
        train = _concat(data)
        model.init_steps(torch.from_numpy(train.scans[:64]), torch.from_numpy(train.state[:64]))
        arrays, val_mse, _ = fit(model, train, val, meta, qcfg, desc=f"QAT L={levels}")
        history = []
        save(arrays, {"dagger": {"rounds": 0, "history": [], "selected_round": 0}})
        print(f"expert-round model saved -> {args.out}")
    best: tuple | None = None
    r0 = len(history)
    if history:  # --init: its round is re-entered (re-scored unless it was scored on these very worlds)
        r0 -= 1
    for r in range(r0, r0 + rounds + 1):
        params = CrnnParams(arrays, meta)
        last = history.pop() if r == r0 and len(history) > r0 else None
        if last is not None and last.get("val_worlds") == n_val and len(last["validation"]) == len(specs):
            score = last["validation"]
            rates = [v["collision_free"] for v in score.values()]
            key = (min(rates), float(np.mean(rates)), float(np.mean([v["cells"] for v in score.values()])))
        else:  # scored on other worlds (or not at all): score it on this run's validation worlds
            score = drive_score(params, specs, val_seeds)
            key = score.pop("_key")
        history.append({"round": r, "validation": score, "val_worlds": n_val,
                        "sequences": int(sum(len(d) for d in data))})
        print(f"round {r}: validation collision-free " + ", ".join(f"{k} {100 * v['collision_free']:.0f}%"
              for k, v in score.items()) + f" (worst {100 * key[0]:.0f}%, cells {key[2]:.1f})", flush=True)
        if on_epoch is not None:  # spikeloop sweep: this round's model and its validation driving
            dagger = {"rounds": r, "episodes_per_family": episodes, "episode_s": episode_s, "history": list(history),
                      "selected_round": r}
            record = {"epoch": r - r0, "val_collision_free": key[0], "val_collision_free_mean": key[1], "val_cells": key[2]}
            if np.isfinite(val_mse):
                record["val_mse"] = float(val_mse)
            on_epoch(record, arrays, file_meta(arrays, {"dagger": dagger, "validation_worst_collision_free": key[0]}), None)
        if best is None or key > best[0]:
            best = (key, arrays, r)
            save(arrays, {"dagger": {"rounds": r, "episodes_per_family": episodes, "episode_s": episode_s,
                                     "history": history, "selected_round": r},
                          "validation_worst_collision_free": key[0]})
        if r == r0 + rounds or time.monotonic() - t_start > budget_s:
            break
        data.append(cached(f"dagger_{tag}_round{r + 1}_{episodes}", lambda: collect(specs, episodes, train_seed + 100 * r, rng, params)))
        model = CRNN.from_arrays(arrays, levels, DRIVER_LAYERS)
        qcfg.seed += 1
        arrays, val_mse, _ = fit(model, _concat(data), val, meta, qcfg, desc=f"round {r + 1}")
    key, arrays, r_best = best
    print(f"selected round {r_best} (worst-family validation collision-free {100 * key[0]:.0f}%) -> {args.out}")
    return 0
