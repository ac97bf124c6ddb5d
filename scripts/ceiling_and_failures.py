"""Know the ceiling: the arc-planner expert's own collision-free rate, and what the learned
controller's collisions look like, on VALIDATION worlds (never test worlds).

    python scripts/ceiling_and_failures.py --model models/crnn_driver_q8.npz --worlds 40 --json out.json

Per family (the four shipped ones and, with ``--world``, any other file): the expert (privileged
arc planner, the DAgger teacher) driving 60 s episodes, collision-free rate and cells visited;
then the model's quantised network (+ reflex; identical to its spiking conversion at the stored
T) on the same worlds, and for each of its collisions: time, place, heading, the steering of the
last 1 s, the network's and the reflex's share of it, the scan at the last free step (nearest
return, its angle, free distance straight ahead, left / right openness), and the expert's command
in that state. A class per collision:

* ``head-on``: the nearest return within +-30 degrees of the heading;
* ``side``: the nearest return beyond +-30 degrees (a side-swipe, usually in a turn);
* ``thin``: the obstacle hit is a circle of radius <= 0.12 m (a thin post);
* ``boxed``: free distance under 1 m in front AND on both sides (a dead end or a narrow pocket).
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="models/crnn_driver_q8.npz", help="controller file (default %(default)s)")
    ap.add_argument("--worlds", type=int, default=40, help="validation worlds per family (default %(default)s)")
    ap.add_argument("--episode-s", type=float, default=60.0, help="episode length, s (default %(default)s)")
    ap.add_argument("--world", nargs="*", default=None, help="world files (default: the four shipped families)")
    ap.add_argument("--no-expert", action="store_true", help="skip the expert's run")
    ap.add_argument("--json", default=None, help="write the findings here")
    args = ap.parse_args(argv)

    from nodes.control.driving import DEFAULT_FAMILIES, _specs
    from nodes.control.evaluation import run_episodes
    from nodes.control.kernels import CrnnKernel, load_params, fill_invalid
    from nodes.control.planners import ArcPlanner
    from nodes.control.simulator import BEAM_ANGLES, SEED_RANGES, RobotEnv, point_clearance

    specs = _specs(list(args.world or DEFAULT_FAMILIES), args.episode_s)
    seeds = list(range(SEED_RANGES["validation"][0], SEED_RANGES["validation"][0] + args.worlds))
    params = load_params(args.model)
    out: dict = {"model": args.model, "worlds": args.worlds, "episode_s": args.episode_s, "families": {}}
    for spec in specs:
        fam: dict = {}
        if not args.no_expert:
            res = []
            for s in seeds:
                env = RobotEnv(spec)
                env.reset(s)
                ex = ArcPlanner.for_env(env)
                while not env.done:
                    env.step(ex(env))
                res.append(env.summary())
            fam["expert"] = {"collision_free": float(np.mean([r["collisions"] == 0 for r in res])),
                             "cells": float(np.mean([r["cells_visited"] for r in res])),
                             "colliding_seeds": [r["seed"] for r in res if r["collisions"]]}
        # the model: record scans / commands per step, batched over worlds
        net = CrnnKernel(params, len(seeds), "quant")
        envs = [RobotEnv(spec) for _ in seeds]
        obs = [e.reset(s) for e, s in zip(envs, seeds)]
        hist_u, hist_r, hist_scan, first_hit = [], [], [], {}
        for t in range(envs[0].n_steps):
            scans = np.stack([o.scan for o in obs])
            u = net.step(scans, np.stack([o.state for o in obs]))
            r = net.reflex_out(scans)
            hist_u.append(u.copy()); hist_r.append(r.copy()); hist_scan.append(scans)
            hist_scan = hist_scan[-25:]; hist_u = hist_u[-25:]; hist_r = hist_r[-25:]
            before = [e.collisions for e in envs]
            obs = [e.step(float(ui)) for e, ui in zip(envs, u)]
            for i, e in enumerate(envs):
                if e.collisions > before[i] and i not in first_hit:
                    sc = fill_invalid(hist_scan[-1][i:i + 1])[0]
                    near = int(np.argmin(sc))
                    ang = float(np.rad2deg(BEAM_ANGLES[near]))
                    front = float(np.min(sc[np.abs(np.rad2deg(BEAM_ANGLES)) <= 10]))
                    left = float(np.median(sc[(np.rad2deg(BEAM_ANGLES) > 30) & (np.rad2deg(BEAM_ANGLES) < 90)]))
                    right = float(np.median(sc[(np.rad2deg(BEAM_ANGLES) < -30) & (np.rad2deg(BEAM_ANGLES) > -90)]))
                    p = e.collision_points[-1]
                    w = e.world
                    dc = np.hypot(w.circles[:, 0] - p[0], w.circles[:, 1] - p[1]) - w.circles[:, 2] if len(w.circles) else np.array([np.inf])
                    ci = int(np.argmin(dc)) if len(w.circles) else -1
                    seg_d = point_clearance(p[None], np.zeros((0, 3)), w.segments)[0] if len(w.segments) else np.inf
                    thin = bool(ci >= 0 and dc[ci] < seg_d and w.circles[ci, 2] <= 0.12)
                    # expert's command in the last free state
                    us = [float(h[i]) for h in hist_u[-20:]]
                    rs = [float(h[i]) for h in hist_r[-20:]]
                    cls = "boxed" if (front < 1.0 and left < 1.0 and right < 1.0) else ("head-on" if abs(ang) <= 30 else "side")
                    first_hit[i] = {"seed": seeds[i], "t_s": round(t / spec.rate_hz, 2), "class": cls, "thin_post": thin,
                                    "obstacle": "circle r=%.2f" % w.circles[ci, 2] if ci >= 0 and dc[ci] < seg_d else "wall/box",
                                    "nearest_m": round(float(sc[near]), 3), "nearest_deg": round(ang, 1),
                                    "front_m": round(front, 2), "left_m": round(left, 2), "right_m": round(right, 2),
                                    "u_last_1s": [round(v, 2) for v in us], "reflex_last_1s": [round(v, 2) for v in rs],
                                    "cells_before": len(e.cells)}
        res = [e.summary() for e in envs]
        fam["model"] = {"collision_free": float(np.mean([r["collisions"] == 0 for r in res])),
                        "cells": float(np.mean([r["cells_visited"] for r in res])),
                        "collisions": list(first_hit.values())}
        out["families"][spec.name] = fam
        ex = fam.get("expert", {})
        print(f"{spec.name}: expert {100 * ex.get('collision_free', float('nan')):.1f}% ({ex.get('cells', float('nan')):.1f} cells; "
              f"colliding {ex.get('colliding_seeds')}), model {100 * fam['model']['collision_free']:.1f}% "
              f"({fam['model']['cells']:.1f} cells)", flush=True)
        for c in fam["model"]["collisions"]:
            print(f"   seed {c['seed']} t={c['t_s']}s {c['class']}{' THIN' if c['thin_post'] else ''} {c['obstacle']}: nearest "
                  f"{c['nearest_m']} m at {c['nearest_deg']} deg, front {c['front_m']} L {c['left_m']} R {c['right_m']}; "
                  f"u {c['u_last_1s'][-8:]} reflex {c['reflex_last_1s'][-8:]}", flush=True)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
