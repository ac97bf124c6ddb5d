"""Training a controller for driving: DAgger rounds in the simulator, the QUANTISED network driving.

``spikeloop train --model crnn_driver --out models/driver_q8.npz`` (no real traces needed):

1. **Expert data.** Episodes of the privileged arc planner (:class:`nodes.control.planners.ArcPlanner`,
   collision-free in 100 % of test worlds of every shipped family) with DART-style noise injected
   (:func:`nodes.control.expert.expert_episode`), ``--episodes`` per world family per round, in
   TRAINING seeds (:data:`nodes.control.simulator.SEED_RANGES`), with sensor noise on; mirrored.
2. **Float, then quantised.** A small CRNN (:data:`nodes.control.kernels.DRIVER_LAYERS`, RNN of
   ``HIDDEN``, or ``--conv-channels`` / ``--hidden``; invalid returns filled) is trained on it,
   quantised to ``--levels`` L and fine-tuned
   with the float path of the same weights trained alongside (so "the float network of the same
   weights" is a real controller, not an accident). With ``--init`` and another size
   (``--conv-channels`` / ``--hidden``) a new network is trained this way on the file's aggregated
   DAgger data before its rounds continue; ``--extra-data`` adds other runs' labelled sequences.
3. **DAgger rounds** (``--rounds``): the quantised network -- which drives exactly like its
   spiking (BIF) conversion -- drives ``--episodes`` episodes per family, WITH the near-obstacle
   reflex in the loop when the run has one (``--reflex D0:GAIN``, or the ``--init`` file's own
   reflex; :mod:`nodes.control.reflex`), so the states it learns from are the ones the shipped
   controller (network + reflex) visits. The expert takes over on 25 % of the 2-second segments
   and after each collision until the end of the next segment; the expert labels every visited
   state (the network learns the expert's steering, the reflex stays a fixed layer added to its
   output); the data of ALL rounds is aggregated (a continued run reads the earlier rounds' data
   from ``--cache``; each round records its data file in the history) and the network fine-tuned.
4. **Model selection on driving.** After every round the quantised network (+ reflex) drives
   ``--val-worlds`` VALIDATION worlds per family for ``--val-episode-s`` (default 60 s); the key
   (:func:`selection_key`) is the worst family's collision-free rate up to ``--target-rate``
   (default 0.95), then progress: the smallest per-family margin of cells visited over
   follow-the-gap with invalid returns filled in the same worlds (:func:`ftg_validation_cells`),
   then the worst and mean rates. Test seeds are never used here. A continued run (``--init``)
   re-scores its starting model unless the file's last round was scored the same way AND on the
   same weights (``weights``: :func:`weights_digest`; a file edited after training is re-scored).
5. **The stored T** (``timesteps``) is the smallest T at which the spiking network equals the
   quantised one on every CLOSED-LOOP decision of 10 validation worlds per family
   (:func:`closed_loop_timesteps`); ``spikeloop train --model timesteps --init M --out M2``
   re-checks a file.

Everything is seeded (``--seed``); torch runs on 1 thread; ``--max-minutes`` bounds the DAgger
loop (checked after each round). The model file is written after the expert round and after
every round that is the best so far, so a run cut short keeps its best model; ``--init MODEL``
continues the DAgger rounds from such a file, ``--cache DIR`` keeps the expert episodes and each
round's DAgger episodes (a continued run aggregates the earlier rounds' data from there; a round
is identified by the families, episode length, seed and its number).

A reflex is chosen for a driver by ``spikeloop train --model reflex --init DRIVER``
(:mod:`nodes.control.reflex`); DAgger then continues from that file with the reflex in the loop.
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
            params: CrnnParams | None = None, progress: bool = True, float_share: float = 0.0) -> Sequences:
    """``episodes`` per family from world seed ``seed0`` on: expert-driven (noisy) when ``params``
    is None, else driven by the quantised network of ``params`` — or, for the last
    ``round(float_share * episodes)`` episodes of each family, by the FLOAT path of the same weights
    (so the float network also meets the states it drives into); labelled by the expert, mirrored."""
    from tqdm import tqdm

    from nodes.control.expert import expert_episode, learner_episode

    traces = []
    kernel = CrnnKernel(params, 1, "quant") if params is not None else None
    fkernel = CrnnKernel(params, 1, "float") if params is not None and float_share > 0 else None
    n_float = int(round(float_share * episodes))
    jobs = [(s, seed0 + i, i >= episodes - n_float) for s in specs for i in range(episodes)]
    for spec, seed, by_float in tqdm(jobs, desc="expert episodes" if kernel is None else "DAgger episodes",
                                     disable=not progress, leave=False):
        env = RobotEnv(spec)
        if kernel is None:
            t = expert_episode(env, seed, rng)
        elif by_float and fkernel is not None:
            fkernel.reset()
            t = learner_episode(env, seed, lambda scan, state: fkernel.step(scan[None], state[None])[0], rng)
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
    one (to 1e-9) on every step of ``seqs`` (32-step sequences from a zero state). Prefer
    :func:`closed_loop_timesteps`, which checks the decisions the controller meets when it drives."""
    from nodes.control.kernels import BifKernel

    q = CrnnKernel(params, mode="quant").run(seqs.scans, seqs.state)
    for T in candidates:
        s, _ = BifKernel(params, T, len(seqs)).run(seqs.scans, seqs.state)
        if np.max(np.abs(s - q)) < 1e-9:
            return T
    return candidates[-1]


class _Recorder:
    """A batched controller that records every input it is given: ``scans`` (steps, B, 541) and
    ``states`` (steps, B, 2) after the run (for :func:`closed_loop_timesteps`)."""

    def __init__(self, kernel) -> None:
        self.kernel, self.scans, self.states = kernel, [], []

    def step(self, scans: np.ndarray, states: np.ndarray) -> np.ndarray:
        self.scans.append(np.asarray(scans, dtype=np.float32))
        self.states.append(np.asarray(states, dtype=np.float32))
        return self.kernel.step(scans, states)


def closed_loop_timesteps(params: CrnnParams, specs: list[WorldSpec], seeds: list[int],
                          candidates=(4, 6, 8, 10, 12, 14, 16, 20, 24, 32)) -> tuple[int, dict[str, Any]]:
    """The smallest T of ``candidates`` at which the spiking network equals the quantised one (to
    1e-9) on every decision of CLOSED-LOOP episodes in every family of ``specs``.

    The quantised network (with its reflex, if any) drives the worlds ``seeds`` of each family for
    the spec's whole episode, its inputs are recorded, and each candidate T replays those inputs
    through the spiking network with the recurrent state carried over the whole episode, as in a
    session (a lossless T drives exactly the same trajectory, so these ARE the spiking
    controller's decisions). Returns (T, note) with the number of decisions checked per family and
    the candidates that failed (largest difference each)."""
    from nodes.control.evaluation import run_episodes
    from nodes.control.kernels import BifKernel

    recorded = []
    for spec in specs:
        rec = _Recorder(CrnnKernel(params, len(seeds), "quant"))
        run_episodes(rec, seeds, spec, progress=False)
        scans = np.stack(rec.scans, axis=1)  # (B, steps, 541)
        states = np.stack(rec.states, axis=1)
        recorded.append((spec.name, scans, states, CrnnKernel(params, mode="quant").run(scans, states)))
    failed: dict[str, float] = {}
    chosen = candidates[-1]
    for T in candidates:
        worst = 0.0
        for name, scans, states, q in recorded:
            s, _ = BifKernel(params, T, len(seeds)).run(scans, states)
            worst = max(worst, float(np.max(np.abs(s - q))))
            if worst >= 1e-9:
                break
        if worst < 1e-9:
            chosen = T
            break
        failed[str(T)] = worst
    note = {"decisions": {name: int(q.size) for name, _, _, q in recorded}, "worlds_per_family": len(seeds),
            "episode_s": specs[0].episode_s if specs else None, "failed_T_max_diff": failed,
            "method": "closed loop: the quantised network drives, every decision replayed through the spiking one"}
    return chosen, note


def _reflex_arg(args: argparse.Namespace) -> tuple[float, ...] | None:
    """``--reflex D0:GAIN[:FRONT[:TIE[:BEAMS]]]`` for crnn_driver (one value; ``0:0`` = none), or None when not given."""
    texts = getattr(args, "reflex", None)
    if not texts:
        return None
    if len(texts) != 1:
        raise UserError(f"--model crnn_driver: --reflex takes one D0:GAIN[:FRONT[:TIE[:BEAMS]]] (the reflex in the DAgger loop), got {texts}")
    from nodes.control.reflex import _candidates

    return _candidates(texts)[0]


def ftg_validation_cells(specs: list[WorldSpec], seeds: list[int], cache: Path | None) -> dict[str, float]:
    """Mean cells visited per family by follow-the-gap with invalid returns filled (the strongest
    baseline) in the validation worlds ``seeds``: the progress a selected round should reach.
    Kept in ``cache`` (a small JSON) when given."""
    import json

    from nodes.control.evaluation import _Batched, run_episodes
    from nodes.control.planners import FollowTheGap

    f = None
    if cache is not None:
        f = cache / f"ftg_filled_val_{'-'.join(s.name for s in specs)}_{specs[0].episode_s:g}s_{seeds[0]}_{len(seeds)}.json"
        if f.is_file():
            return json.loads(f.read_text())
    out = {}
    for spec in specs:
        gap = _Batched(lambda: FollowTheGap(robot_radius_m=spec.robot_radius_m, max_turn_rad_s=spec.max_turn_rad_s,
                                            fill_invalid=True), len(seeds))
        res = run_episodes(gap, seeds, spec, progress=False)
        out[spec.name] = float(np.mean([r["cells_visited"] for r in res]))
    if f is not None:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(out))
    return out


def weights_digest(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 (hex, first 16) of a network's arrays (reflex excluded): a round's validation score
    is reused by a continued run only for these very weights."""
    import hashlib

    h = hashlib.sha256()
    for k in sorted(arrays):
        if not k.startswith("reflex_"):
            h.update(k.encode())
            h.update(np.ascontiguousarray(arrays[k]).tobytes())
    return h.hexdigest()[:16]


def selection_key(score: dict[str, Any], ftg_cells: dict[str, float], target: float) -> tuple:
    """Model-selection key of one round's validation ``score`` (larger is better): first the worst
    family's collision-free rate up to ``target`` (rounds that reach the target in every family tie
    here), then progress -- the smallest per-family margin of cells visited over follow-the-gap
    (filled) -- then the worst and the mean collision-free rate."""
    fams = [k for k, v in score.items() if isinstance(v, dict)]
    rates = [score[k]["collision_free"] for k in fams]
    margin = min(score[k]["cells"] - ftg_cells.get(k, 0.0) for k in fams)
    return (min(min(rates), target), round(margin, 6), min(rates), float(np.mean(rates)))


def driver_architecture(args: argparse.Namespace, init_arrays: dict | None,
                        init_meta: dict[str, Any]) -> tuple[tuple, int, bool]:
    """(conv layers, RNN units, new) of the driver to train: the ``--init`` file's, else
    :data:`DRIVER_LAYERS` and :data:`HIDDEN`, changed by ``--conv-channels C1,C2,C3`` (out-channels
    of the three conv layers; kernels and strides stay) and ``--hidden N``. ``new`` is True when
    an ``--init`` file is given but the architecture differs from its own: a new network is then
    trained on that file's aggregated data before the DAgger rounds continue."""
    init_layers = tuple(tuple(c) for c in init_meta["conv_layers"]) if init_meta.get("conv_layers") else None
    init_hidden = int(np.asarray(init_arrays["rnn_wh"]).shape[0]) if init_arrays is not None else None
    layers = init_layers or DRIVER_LAYERS
    text = getattr(args, "conv_channels", None)
    if text:
        from nodes.control.training import with_out_channels

        layers = with_out_channels(str(text), DRIVER_LAYERS)
    hidden = getattr(args, "hidden", None) or init_hidden or HIDDEN
    if hidden < 1:
        raise UserError(f"--hidden must be >= 1, got {hidden}")
    new = init_arrays is not None and (layers != init_layers or hidden != init_hidden)
    return layers, hidden, new


def load_sequences(path: str | Path) -> Sequences:
    """Expert-labelled 32-step sequences from a data-only .npz (``scans`` (N, 32, 541) metres,
    ``state`` (N, 32, 2), ``steering`` (N, 32); what ``--cache`` holds). Refuses, naming the file,
    anything else (no pickle is ever loaded)."""
    from nodes.control.kernels import N_BEAMS

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such data file")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = {"scans", "state", "steering"} - set(z.files)
            if missing:
                raise UserError(f"{path}: not a sequence file (missing arrays {sorted(missing)})")
            seqs = Sequences(z["scans"].astype(np.float32, copy=False), z["state"].astype(np.float32, copy=False),
                             z["steering"].astype(np.float32, copy=False))
    except (ValueError, OSError) as e:
        raise UserError(f"{path}: cannot read as a data-only .npz ({e})") from None
    n = len(seqs.scans)
    if (seqs.scans.shape != (n, SEQ_LEN, N_BEAMS) or seqs.state.shape != (n, SEQ_LEN, 2)
            or seqs.steering.shape != (n, SEQ_LEN)):
        raise UserError(f"{path}: expected scans (N, {SEQ_LEN}, {N_BEAMS}), state (N, {SEQ_LEN}, 2), steering "
                        f"(N, {SEQ_LEN}); got {seqs.scans.shape}, {seqs.state.shape}, {seqs.steering.shape}")
    if not (np.all(np.isfinite(seqs.scans)) and np.all(np.isfinite(seqs.state)) and np.all(np.isfinite(seqs.steering))):
        raise UserError(f"{path}: holds non-finite values")
    return seqs


def inherited_extra_data(notes: list[dict[str, Any]], folders: list[Path | None]) -> list[Path]:
    """The ``--extra-data`` files an ``--init`` file was trained with (its ``extra_data`` notes:
    name, SHA-256), found by name in ``folders`` (the run's ``--cache``, the --init file's folder)
    and used only when their bytes still hash the same. A file that is missing or changed is
    named in a printed note and left out (give ``--extra-data`` to choose explicitly)."""
    from pipeline.modelfile import file_sha256

    found = []
    for note in notes:
        hits = [f / note["file"] for f in folders if f is not None and (f / note["file"]).is_file()]
        match = next((h for h in hits if file_sha256(h) == note.get("sha256")), None)
        if match is not None:
            found.append(match)
        else:
            where = ", ".join(str(f) for f in folders if f is not None)
            print(f"note: the --init file's extra data {note['file']} ({note.get('sequences')} sequences) is "
                  f"{'changed' if hits else 'not found'} in {where}; continuing without it")
    return found


def train_driver(args: argparse.Namespace, on_epoch: Callable[[dict, dict, dict, Any], None] | None = None) -> int:
    """``spikeloop train --model crnn_driver``: see the module docstring.

    ``on_epoch(record, arrays, meta, None)``, if given (``spikeloop sweep``), is called after every
    round is scored on the validation worlds (round 0: the expert round), with that round's model
    (``arrays`` and the metadata its file would have) and ``record`` = ``{"epoch": rounds done - 1,
    "val_collision_free": worst family's validation collision-free rate (0..1), "val_collision_free_mean",
    "val_cells": mean cells visited per episode, "val_mse": the last fine-tuning's validation MSE}``.
    No trainer state is passed: a resumed sweep trial of this kind starts again from its first round."""
    import torch

    from nodes.control.reflex import reflex_label, reflex_tuple, with_reflex
    from nodes.control.torch_models import CRNN
    from nodes.control.training import FitConfig, apply_regularisation, architecture_text, base_metadata, fit
    from pipeline.modelfile import file_sha256, save_model

    for name in ("ema", "swa_from", "lr_schedule"):  # crnn-only options: refuse rather than ignore them
        if getattr(args, name, None) is not None:
            raise UserError(f"--{name.replace('_', '-')} applies to --model crnn, not crnn_driver")
    torch.set_num_threads(1)
    t_start = time.monotonic()
    budget_s = 60 * (args.max_minutes or 14.0)
    levels = args.levels or 8
    if not 2 <= levels <= 64:
        raise UserError(f"--levels must be in 2..64, got {levels}")
    families = list(args.worlds_files or DEFAULT_FAMILIES)
    episode_s = args.episode_s or 30.0
    specs = _specs(families, episode_s)
    val_episode_s = getattr(args, "val_episode_s", None) or 60.0
    val_specs = _specs(families, val_episode_s)
    episodes = args.episodes or 6
    rounds = args.rounds if args.rounds is not None else 4
    n_val = args.val_worlds or 20
    target = getattr(args, "target_rate", None) or 0.95
    rng = np.random.default_rng(args.seed + 17)
    train_seed = SEED_RANGES["train"][0] + 1000 * args.seed
    val_seeds = list(range(SEED_RANGES["validation"][0], SEED_RANGES["validation"][0] + n_val))

    cache = Path(args.cache) if getattr(args, "cache", None) else None
    init_arrays, init_meta = None, {}
    if args.init:
        from pipeline.modelfile import load_model

        init_arrays, init_meta = load_model(args.init)
        if init_meta.get("ensemble"):
            raise UserError(f"{args.init}: an ensemble (train --model ensemble) is not trained further; continue "
                            f"one of its members ({', '.join(m['file'] for m in init_meta['ensemble']['members'])}) "
                            f"and merge again")
        if init_meta.get("family") != "controller" or "dagger" not in init_meta:
            raise UserError(f"{args.init}: --init must be a driving controller (train one without --init first)")
    layers, hidden, new_network = driver_architecture(args, init_arrays, init_meta)
    if init_arrays is not None and not new_network and init_meta.get("levels") != levels:
        raise UserError(f"{args.init}: --init must be a driving controller with L={levels} "
                        f"(it has L={init_meta.get('levels')}; give --conv-channels/--hidden for a new network)")
    meta = base_metadata(levels, "simulator (DAgger, arc-planner expert)", conv_layers=layers)
    meta.update({"invalid_returns": "fill", "split": None, "families": [s.name for s in specs]})
    meta["architecture"] = architecture_text(layers, hidden)
    # the near-obstacle reflex IN the DAgger loop: --reflex, else the --init file's own reflex
    reflex = _reflex_arg(args)
    if reflex is None and init_meta.get("reflex"):
        reflex = reflex_tuple(init_meta["reflex"])
    if reflex is not None and reflex[1] == 0:
        reflex = None
    print(f"driving controller: families {[s.name for s in specs]}, {episode_s:g} s training episodes, L={levels}, "
          f"{rounds} DAgger rounds x {episodes} episodes per family, "
          f"reflex {'in the loop: ' + reflex_label(reflex) if reflex else 'none'}; selection on {n_val} validation "
          f"worlds per family ({val_episode_s:g} s): worst family's collision-free rate up to {100 * target:g} %, "
          f"then progress over follow-the-gap (filled)")

    def full(arrays: dict) -> tuple[dict, dict]:
        """The network's arrays with the run's reflex added: what drives, is scored and is saved."""
        return with_reflex(arrays, meta, *reflex) if reflex is not None else (arrays, meta)

    def cached(name: str, make) -> Sequences:
        """Expert data is deterministic for its seeds: keep it in ``--cache DIR`` (data-only .npz)."""
        if cache is None:
            return make()
        f = cache / f"{name}.npz"
        if f.is_file():
            return load_sequences(f)
        seqs = make()
        cache.mkdir(parents=True, exist_ok=True)
        np.savez(f, scans=seqs.scans, state=seqs.state, steering=seqs.steering)
        return seqs

    tag = f"{'-'.join(s.name for s in specs)}_{episode_s:g}s_seed{args.seed}"
    dagger_tag = tag if reflex is None else f"{tag}_rfx" + "-".join(f"{v:g}" for v in reflex)
    data = [cached(f"expert_{tag}_{episodes * 2}", lambda: collect(specs, episodes * 2, train_seed, np.random.default_rng(args.seed)))]
    train_seed += episodes * 2
    val = cached(f"expert_val_{tag}", lambda: collect(specs, 2, SEED_RANGES["validation"][1] - 100,
                                                       np.random.default_rng(args.seed + 1), progress=False))
    print(f"round 0: {len(data[0])} expert sequences ({len(val)} for early stopping)")
    extra_notes = []
    extra_paths = list(getattr(args, "extra_data", None) or [])
    if not extra_paths and init_meta.get("extra_data"):  # a continuation keeps its --init file's extra data
        extra_paths = inherited_extra_data(init_meta["extra_data"], [cache, Path(args.init).parent])
    for path in extra_paths:  # other runs' expert-labelled sequences
        seqs = load_sequences(path)
        data.append(seqs)
        extra_notes.append({"file": Path(path).name, "sha256": file_sha256(path), "sequences": len(seqs)})
    if extra_notes:
        meta["extra_data"] = extra_notes
        print(f"extra data: {sum(n['sequences'] for n in extra_notes)} sequences from {len(extra_notes)} files")
    ftg_cells = ftg_validation_cells(val_specs, val_seeds, cache)
    print("follow-the-gap (filled) validation cells: " + ", ".join(f"{k} {v:.1f}" for k, v in ftg_cells.items()), flush=True)
    n_check = min(n_val, getattr(args, "t_check_worlds", None) or 10)

    def file_model(arrays: dict, extra: dict) -> tuple[dict, dict]:
        """The arrays and metadata a model file of ``arrays`` holds (reflex included, lossless T
        checked in closed loop)."""
        a, m = full(arrays)
        m = dict(m, **extra, seed=args.seed, train_minutes=(time.monotonic() - t_start) / 60,
                 init=str(args.init) if args.init else None)
        m["timesteps"], note = closed_loop_timesteps(CrnnParams(a, m), val_specs, val_seeds[:n_check])
        m["timesteps_note"] = note
        return a, m

    def save(arrays: dict, extra: dict) -> None:
        save_model(args.out, *file_model(arrays, extra))

    fit_minutes = getattr(args, "fit_minutes", None)
    if fit_minutes is not None and fit_minutes <= 0:
        raise UserError(f"--fit-minutes must be > 0, got {fit_minutes}")

    qcfg = FitConfig(epochs=args.epochs or 5, patience=3, seed=args.seed, max_minutes=fit_minutes or 2.5, batch_size=16,
                     lr=getattr(args, "lr", None) or 1e-3, dual=True)
    regularisation = apply_regularisation(qcfg, args)  # e.g. --state-drop: the turn-rate input cannot latch a turn
    if regularisation:
        print(f"DAgger fine-tuning with {regularisation}")
        meta["regularisation"] = regularisation

    def train_new_network() -> tuple[dict, float]:
        """A network of ``layers``/``hidden`` trained on all the data so far: float first, then
        quantised to L with its float path trained alongside (the fine-tuning settings ``qcfg``).
        Returns (arrays, validation MSE)."""
        torch.manual_seed(args.seed)
        train = _concat(data)
        cfg = FitConfig(epochs=args.epochs or 8, patience=4, seed=args.seed, max_minutes=fit_minutes or 3.0, batch_size=16)
        arrays, _, _ = fit(CRNN(None, layers, hidden), train, val, dict(meta, levels=None), cfg, desc="float")
        model = CRNN.from_arrays(arrays, levels, layers)
        model.init_steps(torch.from_numpy(train.scans[:64]), torch.from_numpy(train.state[:64]))
        arrays, mse, _ = fit(model, train, val, meta, qcfg, desc=f"QAT L={levels}")
        return arrays, mse
    val_mse = float("nan")  # the last fine-tuning's validation MSE (none yet for a continued run's first round)
    if init_arrays is not None:  # continue DAgger from a quantised driver (its reflex, if any, set aside)
        arrays, _ = with_reflex(init_arrays, init_meta, 0.0, 0.0)
        history = list((init_meta.get("dagger") or {}).get("history", []))
        if cache is not None:  # aggregate the DAgger data of earlier rounds (DAgger keeps all of it)
            for h in history:  # a round's own data file (this code), else the older naming (no reflex tag)
                name = h.get("data") or (f"dagger_{tag}_round{h['round']}_{episodes}" if h["round"] > 0 else None)
                if name and (cache / f"{name}.npz").is_file():
                    data.append(cached(name, lambda: None))
                elif name:
                    print(f"note: round {h['round']}'s DAgger data {name}.npz is not in {cache}; continuing without it")
            print(f"aggregated data: {sum(len(d) for d in data)} sequences from {len(data)} rounds")
        if new_network:  # a new architecture learns from everything the earlier rounds collected
            print(f"new network {meta['architecture']} (L={levels}) trained on {sum(len(d) for d in data)} sequences")
            arrays, val_mse = train_new_network()
            meta["new_network"] = {"from": Path(args.init).name, "at_round": len(history) - 1 if history else 0,
                                   "sequences": int(sum(len(d) for d in data)),
                                   "previous_architecture": init_meta.get("architecture")}
    else:
        arrays, val_mse = train_new_network()
        history = []
        save(arrays, {"dagger": {"rounds": 0, "history": [], "selected_round": 0}})
        print(f"expert-round model saved -> {args.out}")
    best: tuple | None = None
    next_data: str | None = None  # the cache name of the DAgger data the next round trains on
    r0 = len(history)
    if history:  # --init: its round is re-entered (re-scored unless it was scored on these very worlds)
        r0 -= 1
    for r in range(r0, r0 + rounds + 1):
        params = CrnnParams(*full(arrays))
        last = history.pop() if r == r0 and len(history) > r0 else None
        digest = weights_digest(arrays)
        if (last is not None and last.get("val_worlds") == n_val and last.get("val_episode_s") == val_episode_s
                and last.get("reflex") == (list(reflex) if reflex else None) and len(last["validation"]) == len(specs)
                and last.get("weights") == digest):  # the very weights that were scored (not a file edited since)
            score = last["validation"]
        else:  # scored on other worlds (or not at all): score it on this run's validation worlds
            score = drive_score(params, val_specs, val_seeds)
            score.pop("_key")
        key = selection_key(score, ftg_cells, target)
        history.append({"round": r, "validation": score, "val_worlds": n_val, "val_episode_s": val_episode_s,
                        "weights": digest,
                        "reflex": list(reflex) if reflex else None, "sequences": int(sum(len(d) for d in data)),
                        "data": next_data if r > r0 else (last or {}).get("data")})
        print(f"round {r}: validation collision-free " + ", ".join(f"{k} {100 * v['collision_free']:.0f}% ({v['cells']:.1f} cells)"
              for k, v in score.items()) + f" (worst {100 * key[2]:.1f}%, progress margin over follow-the-gap {key[1]:+.1f} cells)",
              flush=True)
        if on_epoch is not None:  # spikeloop sweep: this round's model and its validation driving
            dagger = {"rounds": r, "episodes_per_family": episodes, "episode_s": episode_s,
                      "val_episode_s": val_episode_s, "history": list(history), "selected_round": r}
            record = {"epoch": r - r0, "val_collision_free": key[2], "val_collision_free_mean": key[3],
                      "val_cells": float(np.mean([v["cells"] for v in score.values() if isinstance(v, dict)]))}
            if np.isfinite(val_mse):
                record["val_mse"] = float(val_mse)
            on_epoch(record, *file_model(arrays, {"dagger": dagger, "validation_worst_collision_free": key[2]}), None)
        if getattr(args, "keep_rounds", None):  # every round's network beside --out, for a later look or reflex
            a_r, m_r = full(arrays)
            rpath = Path(args.out).with_suffix(f".round{r}.npz")
            save_model(rpath, a_r, dict(m_r, seed=args.seed, timesteps=None,
                                        timesteps_note="not checked: run spikeloop train --model timesteps",
                                        dagger={"rounds": r, "history": list(history), "selected_round": r}))
        if best is None or key > best[0]:
            best = (key, arrays, r)
            save(arrays, {"dagger": {"rounds": r, "episodes_per_family": episodes, "episode_s": episode_s,
                                     "val_episode_s": val_episode_s, "history": history, "selected_round": r,
                                     "selection": f"worst-family collision-free up to {target:g}, then cells over "
                                                  f"follow-the-gap (filled) {ftg_cells}",
                                     "reflex_in_loop": list(reflex) if reflex else None},
                          "validation_worst_collision_free": key[2]})
        if r == r0 + rounds or time.monotonic() - t_start > budget_s:
            break
        # the cached name names the DRIVER (its weights digest): a run from another file never reuses
        # (and silently trains on) episodes that a different network drove
        float_share = getattr(args, "float_drive", None) or 0.0
        next_data = (f"dagger_{dagger_tag}_round{r + 1}_{episodes}_by{digest[:8]}"
                     + (f"_float{float_share:g}" if float_share else ""))
        data.append(cached(next_data, lambda: collect(specs, episodes, train_seed + 100 * r, rng, params,
                                                      float_share=float_share)))
        model = CRNN.from_arrays(arrays, levels, layers)
        qcfg.seed += 1
        arrays, val_mse, _ = fit(model, _concat(data), val, meta, qcfg, desc=f"round {r + 1}")
    key, arrays, r_best = best
    print(f"selected round {r_best} (worst-family validation collision-free {100 * key[2]:.1f}%, "
          f"progress margin {key[1]:+.1f} cells) -> {args.out}")
    return 0


def validation_timesteps(args: argparse.Namespace, params: CrnnParams, label: str = "") -> tuple[int, dict[str, Any]]:
    """The T a quantised controller file stores, from :func:`closed_loop_timesteps` on
    ``--val-worlds`` validation worlds per family (default 10) of ``--worlds-files`` (default the
    four shipped families), ``--val-episode-s`` long (default 60): (T, note). ``label`` (e.g. the
    file's name) starts the progress line."""
    specs = _specs(list(args.worlds_files or DEFAULT_FAMILIES), getattr(args, "val_episode_s", None) or 60.0)
    n = args.val_worlds or 10
    seeds = list(range(SEED_RANGES["validation"][0], SEED_RANGES["validation"][0] + n))
    print(f"{label + ': ' if label else ''}checking T on closed-loop decisions, {n} validation worlds x {len(specs)} families, "
          f"{specs[0].episode_s:g} s (stored T: {params.meta.get('timesteps')})", flush=True)
    return closed_loop_timesteps(params, specs, seeds)


def check_timesteps_cli(args: argparse.Namespace) -> int:
    """``spikeloop train --model timesteps --init M --out M2``: re-check a quantised controller's
    stored T on CLOSED-LOOP decisions (:func:`validation_timesteps`) and write the file with that T
    and the check's note; the weights are unchanged."""
    from pipeline.modelfile import load_model, save_model

    if not args.init:
        raise UserError("--model timesteps needs --init MODEL (a quantised controller file)")
    arrays, meta = load_model(args.init)
    if meta.get("family") != "controller" or not meta.get("levels"):
        raise UserError(f"{args.init}: --model timesteps needs a quantised controller model")
    T, note = validation_timesteps(args, CrnnParams(arrays, meta), label=str(args.init))
    previous = meta.get("timesteps")
    meta = dict(meta, timesteps=T, timesteps_note=dict(note, previous_T=previous, previous_note=meta.get("timesteps_note")))
    save_model(args.out, arrays, meta)
    print(f"spiking = quantised from T = {T} on {sum(note['decisions'].values()):,} closed-loop decisions "
          f"(T that failed, largest difference: {note['failed_T_max_diff'] or 'none'}) -> {args.out}")
    return 0
