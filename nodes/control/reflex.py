"""The near-obstacle reflex of the driving controller, and ``spikeloop train --model reflex``.

The reflex is a second, fixed pathway beside the learned network, made of the same parts so it
converts to spiking neurons the same way (:class:`nodes.control.kernels.BifKernel`):

* 54 neurons, one per 5-degree sector of the scan (10 beams, 27 sectors a side, mirror images;
  :data:`~nodes.control.kernels.REFLEX_SECTOR_BEAMS`), or with a fifth candidate field BEAMS
  (``D0:GAIN:FRONT:TIE:BEAMS``, e.g. ``0.6:2:0.6:0:1``) 540 / BEAMS narrower neurons, weighted so a
  filled 5-degree arc pushes the same (one neuron per beam: a door frame's edge or a thin post
  with open space behind pushes too, where the 10-beam mean can stay out of reach),
  input current ``d0/5 - mean(x over the sector)`` with x = min(range, 5 m) / 5 m the network's
  own input (invalid returns filled): positive when the sector's obstacle is nearer than
  ``d0`` metres. Float path: ReLU; quantised: Q with L levels and step ``(d0/5)/(L-1)``;
  spiking: BIF neurons given that current at the first time step (they settle in L-1 steps,
  fewer than the shipped T, so the spiking reflex equals the quantised one).
* A linear readout added to the network's steering: a sector at angle a within +-90 degrees of
  the heading pushes away from its side with ``gain * cos(a)`` per metre of intrusion
  (:func:`~nodes.control.kernels.reflex_weights`); sectors behind the robot weigh nothing.

It is symmetric and knows nothing about any world family: in a doorway both sides push and
cancel, near a single post the robot is pushed off it. ``spikeloop train --model reflex --init
DRIVER --reflex 0.5:2 0.4:1 ... --out M`` adds it to a trained driver, choosing among the given
``d0:gain`` candidates (and "no reflex") in VALIDATION worlds (``--val-worlds`` per family,
``--val-episode-s`` long, default 60 s; the quantised network driving) with the key the DAgger
rounds use (:func:`nodes.control.driving.selection_key`: worst family's collision-free rate up to
``--target-rate``, then progress over follow-the-gap with invalid returns filled), then stores the
T at which the spiking output equals the quantised one on closed-loop decisions
(:func:`nodes.control.driving.closed_loop_timesteps`). DAgger continued from such a file
(``--model crnn_driver --init M``) keeps the reflex in the loop.
"""
from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from nodes.control.kernels import (REFLEX_SECTOR_BEAMS, RANGE_CLIP_M, CrnnParams, check_sector_beams, reflex_reach,
                                   reflex_weights)
from pipeline.errors import UserError


def with_reflex(arrays: dict[str, np.ndarray], meta: dict[str, Any], d0_m: float, gain: float,
                front_m: float | None = None, tie_deg: float = 0.0, sector_beams: int = REFLEX_SECTOR_BEAMS,
                fov_deg: float = 180.0) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """A copy of a controller's (arrays, meta) with the reflex of reach ``d0_m`` metres and
    ``gain`` (steering per metre of intrusion) added; ``gain`` 0 removes it.

    ``front_m`` (> d0): a longer reach ahead, d0 + (front - d0) cos(a)^2 per sector
    (:func:`~nodes.control.kernels.reflex_reach`; one bias per neuron, array ``reflex_b`` (54,)).
    ``tie_deg`` (> 0): the sectors within +-tie_deg of the heading all push left, which breaks
    the tie of an obstacle met square-on (:func:`~nodes.control.kernels.reflex_weights`).
    ``sector_beams``: beams per reflex neuron, 10 (54 neurons of 5 degrees, the default) or any
    divisor of 270, e.g. 1 (540 neurons, one per beam: an obstacle seen by only a few beams of a
    5-degree sector -- a thin post or a door frame's edge with open space behind -- still pushes;
    :func:`~nodes.control.kernels.reflex_weights`).
    Without these the file is exactly the older symmetric reflex (scalar ``reflex_b``)."""
    a = {k: v for k, v in arrays.items() if not k.startswith("reflex_")}
    m = {k: v for k, v in meta.items() if k != "reflex"}
    if gain == 0:
        return a, m
    if not 0 < d0_m < RANGE_CLIP_M or gain < 0:
        raise UserError(f"reflex: reach d0 must be in (0, {RANGE_CLIP_M}) m and gain >= 0, got {d0_m}, {gain}")
    if front_m is not None and not d0_m <= front_m < RANGE_CLIP_M:
        raise UserError(f"reflex: front reach must be in [d0, {RANGE_CLIP_M}) m, got {front_m} (d0 {d0_m})")
    if not 0 <= tie_deg <= 90:
        raise UserError(f"reflex: tie-break half-angle must be in [0, 90] degrees, got {tie_deg}")
    try:
        sector_beams = check_sector_beams(sector_beams)
    except ValueError as e:
        raise UserError(str(e)) from None
    shaped = front_m is not None and front_m > d0_m
    bias = reflex_reach(d0_m, front_m, sector_beams) if shaped else np.float64(d0_m / RANGE_CLIP_M)
    a["reflex_w"] = reflex_weights(gain, fov_deg, tie_deg, sector_beams)
    a["reflex_b"] = bias
    if meta.get("levels"):  # one step for the population: the longest reach spans L-1 levels
        a["reflex_step"] = np.float64(float(np.max(bias)) / (int(meta["levels"]) - 1))
    m["reflex"] = {"d0_m": d0_m, "gain": gain, "fov_deg": fov_deg, "sector_beams": sector_beams,
                   "neurons": int(len(a["reflex_w"]))}
    if shaped:
        m["reflex"]["front_m"] = front_m
    if tie_deg > 0:
        m["reflex"]["tie_deg"] = tie_deg
    return a, m


def reflex_tuple(spec: dict[str, Any]) -> tuple[float, ...]:
    """A file's ``reflex`` metadata as the candidate tuple (d0, gain[, front[, tie]])."""
    t = [float(spec["d0_m"]), float(spec["gain"])]
    beams = int(spec.get("sector_beams", REFLEX_SECTOR_BEAMS))
    if spec.get("front_m") is not None or spec.get("tie_deg") or beams != REFLEX_SECTOR_BEAMS:
        t.append(float(spec.get("front_m") or spec["d0_m"]))
    if spec.get("tie_deg") or beams != REFLEX_SECTOR_BEAMS:
        t.append(float(spec.get("tie_deg") or 0.0))
    if beams != REFLEX_SECTOR_BEAMS:
        t.append(float(beams))
    return tuple(t)


def reflex_label(c: tuple[float, ...]) -> str:
    """'d0 0.6 m, gain 2[, front 0.9 m][, tie 10 deg]' for a candidate tuple."""
    out = f"d0 {c[0]:g} m, gain {c[1]:g}"
    if len(c) > 2 and c[2] > c[0]:
        out += f", front {c[2]:g} m"
    if len(c) > 3 and c[3] > 0:
        out += f", tie {c[3]:g} deg"
    if len(c) > 4 and c[4] != REFLEX_SECTOR_BEAMS:
        out += ", one neuron per beam" if c[4] == 1 else f", {c[4]:g} beams per neuron"
    return out


def _candidates(texts: list[str]) -> list[tuple[float, ...]]:
    """``D0:GAIN[:FRONT[:TIE[:BEAMS]]]`` strings -> tuples for :func:`with_reflex`."""
    out = []
    for t in texts:
        try:
            vals = tuple(float(v) for v in t.split(":"))
        except ValueError:
            vals = ()
        if not 2 <= len(vals) <= 5:
            raise UserError(f"--reflex: expected D0:GAIN[:FRONT[:TIE[:BEAMS]]] (metres : steering per metre : front "
                            f"reach metres : tie-break degrees : beams per neuron), e.g. 0.5:2, 0.6:2:0.9:10 or "
                            f"0.6:2:0.6:0:1, got {t!r}")
        out.append(vals)
    return out


def add_reflex_cli(args: argparse.Namespace) -> int:
    """``spikeloop train --model reflex``: see the module docstring."""
    from pathlib import Path

    from nodes.control.driving import (DEFAULT_FAMILIES, _specs, closed_loop_timesteps, drive_score,
                                       ftg_validation_cells, selection_key)
    from nodes.control.simulator import SEED_RANGES
    from pipeline.modelfile import load_model, save_model

    if not args.init:
        raise UserError("--model reflex needs --init DRIVER (a trained driving controller)")
    arrays, meta = load_model(args.init)
    if meta.get("family") != "controller" or not meta.get("levels"):
        raise UserError(f"{args.init}: --model reflex needs a quantised controller model (train --model crnn_driver)")
    cands = [(0.0, 0.0)] + _candidates(getattr(args, "reflex", None) or ["0.5:2"])
    specs = _specs(list(args.worlds_files or DEFAULT_FAMILIES),
                   getattr(args, "val_episode_s", None) or args.episode_s or 60.0)
    n_val = args.val_worlds or 40
    target = getattr(args, "target_rate", None) or 0.95
    first = SEED_RANGES["validation"][0] + (getattr(args, "val_offset", None) or 0)
    seeds = list(range(first, first + n_val))
    ftg_cells = ftg_validation_cells(specs, seeds, Path(args.cache) if getattr(args, "cache", None) else None)
    print(f"reflex for {args.init}: candidates {cands[1:]} and none, {n_val} validation worlds per family "
          f"({specs[0].episode_s:g} s), selection on the worst family's collision-free rate up to {100 * target:g} %, "
          f"then progress over follow-the-gap (filled: " + ", ".join(f"{k} {v:.1f}" for k, v in ftg_cells.items()) + " cells)")
    best = None
    scores = []
    for c in cands:
        a, m = with_reflex(arrays, meta, *c)
        score = drive_score(CrnnParams(a, m), specs, seeds)
        score.pop("_key")
        key = selection_key(score, ftg_cells, target)
        entry = {"d0_m": c[0], "gain": c[1], "validation": score}
        if len(c) > 2:
            entry["front_m"] = c[2]
        if len(c) > 3:
            entry["tie_deg"] = c[3]
        scores.append(entry)
        print(f"  {reflex_label(c) if c[1] else 'none'}: " + ", ".join(
              f"{k} {100 * v['collision_free']:.1f}% ({v['cells']:.1f} cells)" for k, v in score.items())
              + f" (worst {100 * key[2]:.1f}%, progress margin {key[1]:+.1f} cells)", flush=True)
        if best is None or key > best[0]:
            best = (key, a, m, c)
    key, a, m, c = best
    m = dict(m, reflex_selection={"candidates": scores, "val_worlds": n_val, "episode_s": specs[0].episode_s,
                                  "seeds_from": seeds[0], "selected": {k: v for k, v in scores[cands.index(c)].items() if k != "validation"}},
             validation_worst_collision_free=key[2], init=str(args.init))
    m["timesteps"], m["timesteps_note"] = closed_loop_timesteps(CrnnParams(a, m), specs, seeds[:min(n_val, 10)])
    save_model(args.out, a, m)
    print(f"selected {reflex_label(c) if c[1] else 'no reflex'} (worst-family validation collision-free {100 * key[2]:.1f}%), "
          f"spiking = quantised from T = {m['timesteps']} -> {args.out}")
    return 0
