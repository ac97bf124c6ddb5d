"""Why does the float path of a driver's weights drive differently from its spiking (= quantised)
network? A 2 x 2 on VALIDATION worlds: network float / quantised x reflex float (ReLU) / quantised.

    python scripts/float_gap.py --model models/crnn_driver_q8.npz --worlds 60 --offset 40 --json out.json

Per family (the four shipped ones, or ``--world`` files): collision-free rate, cells visited and
median per-episode minimum clearance of each of the four combinations, driving the same worlds
(seeds 100 000 + offset ...), 60 s, sensor noise on. "quantised network + quantised reflex" is the
shipped controller (its spiking conversion decides identically at the stored T); "float network +
float reflex" is the "float, same weights" row of ``spikeloop evaluate``. The two mixed rows say
whether a gap comes from the network or from the reflex. Also the mean |steering| and the mean
steering (a circling bias shows as a non-zero mean) of each combination. ``--pure`` drives only the
two pure rows (the spiking controller and the float path of its weights), in half the time.
``--clip`` adds a row for the quantised network WITHOUT its rounding (every activation clamped to
its quantiser's range, in float; reflex likewise): where it drives like the quantised network the
float path's gap comes from its activation shape (tanh / unbounded ReLU), where it drives like the
float path it comes from the rounding.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


class MixedKernel:
    """A driver whose network runs in ``net`` mode and whose reflex runs in ``reflex`` mode
    ("float" or "quant"); ``step(scans (B, 541), state (B, 2)) -> steering (B,)``."""

    def __init__(self, params, batch: int, net: str, reflex: str) -> None:  # modes: float, quant, clip
        from nodes.control.kernels import CrnnKernel

        self.net = CrnnKernel(params, batch, net)
        self.rfx = CrnnKernel(params, batch, reflex)
        self.steer: list[np.ndarray] = []

    def step(self, scans: np.ndarray, state: np.ndarray) -> np.ndarray:
        u = self.net.step(scans, state) - self.net.reflex_out(scans) + self.rfx.reflex_out(scans)
        self.steer.append(u)
        return u


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="models/crnn_driver_q8.npz", help="driver file (default %(default)s)")
    ap.add_argument("--worlds", type=int, default=60, help="validation worlds per family (default %(default)s)")
    ap.add_argument("--offset", type=int, default=40, help="first validation seed = 100000 + offset (default %(default)s)")
    ap.add_argument("--episode-s", type=float, default=60.0, help="episode length, s (default %(default)s)")
    ap.add_argument("--world", nargs="*", default=None, help="world files (default: the four shipped families)")
    ap.add_argument("--json", default=None, help="write the table here")
    ap.add_argument("--pure", action="store_true",
                    help="only the two pure rows (quantised network + quantised reflex = the spiking controller, "
                         "float + float = the float path of the same weights): half the time")
    ap.add_argument("--clip", action="store_true",
                    help="also drive the quantised network without its rounding (clip + clip): which part of the "
                         "float path's difference is its activation shape, which the rounding")
    args = ap.parse_args(argv)

    from nodes.control.driving import DEFAULT_FAMILIES, _specs
    from nodes.control.evaluation import run_episodes
    from nodes.control.kernels import load_params
    from nodes.control.simulator import SEED_RANGES

    params = load_params(args.model)
    if params.reflex is None:
        raise SystemExit(f"{args.model}: no reflex in this file; the 2 x 2 needs one")
    specs = _specs(list(args.world or DEFAULT_FAMILIES), args.episode_s)
    seeds = list(range(SEED_RANGES["validation"][0] + args.offset, SEED_RANGES["validation"][0] + args.offset + args.worlds))
    out: dict = {"model": args.model, "seeds": [seeds[0], seeds[-1]], "episode_s": args.episode_s, "families": {}}
    print("| family | network | reflex | collision-free | cells | min clearance p50 m | mean steering | mean abs steering |")
    print("|---|---|---|---|---|---|---|---|")
    for spec in specs:
        fam = {}
        combos = [(net, rfx) for net in ("quant", "float") for rfx in ((net,) if args.pure else ("quant", "float"))]
        for net, rfx in combos + ([("clip", "clip")] if args.clip else []):
            k = MixedKernel(params, len(seeds), net, rfx)
            res = run_episodes(k, seeds, spec, progress=False)
            steer = np.concatenate(k.steer)
            row = {"collision_free": float(np.mean([r["collisions"] == 0 for r in res])),
                   "cells": float(np.mean([r["cells_visited"] for r in res])),
                   "min_clearance_p50_m": float(np.median([r["min_clearance_m"] for r in res])),
                   "mean_steering": float(np.mean(steer)), "mean_abs_steering": float(np.mean(np.abs(steer))),
                   "colliding_seeds": [r["seed"] for r in res if r["collisions"]]}
            fam[f"{net}+{rfx}"] = row
            print(f"| {spec.name} | {net} | {rfx} | {100 * row['collision_free']:.1f} % | {row['cells']:.1f} | "
                  f"{row['min_clearance_p50_m']:.2f} | {row['mean_steering']:+.3f} | {row['mean_abs_steering']:.3f} |",
                  flush=True)
        out["families"][spec.name] = fam
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
