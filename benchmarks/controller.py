"""``spikeloop bench controller``: decision time of the spiking controller, numpy versus PyTorch.

One decision = one LiDAR scan through the BIF network for T time steps (batch 1, as in a graph
node). Three implementations run the same weights and the same algorithm in float64, on the same
scans, in the same run: the kernel the graph uses (``nodes.control.kernels.BifKernel``, compiled
engine: numpy input encoding, the T steps in one numba-compiled function), the same kernel's numpy
engine (array ops per step), and the network stepped with torch ops
(``nodes.control.torch_models.TorchBif``). Reported: median and p99 decision time in microseconds
for each, the largest output difference between them, and the simulator's time for one 60 s
episode. With ``--dataset PATH`` it also prints the
test MSE versus T table (float, quantised, spiking; the same numbers as ``spikeloop evaluate``).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from pipeline.errors import UserError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="models/crnn_driver_q8.npz",
                   help="quantised CRNN model file (default models/crnn_driver_q8.npz, the shipped driving controller)")
    p.add_argument("--timesteps", type=int, nargs="+", default=None, metavar="T",
                   help="time steps per scan (default: the model file's shipped T, its 'timesteps' metadata, else 8 16)")
    p.add_argument("--decisions", type=int, default=1000, help="decisions timed per implementation (default 1000)")
    p.add_argument("--dataset", default=None, metavar="PATH", help="ICRA 2020 traces: also print the test MSE-versus-T table (on the test traces of the split the file was trained on)")
    p.add_argument("--world", default="configs/worlds/default.yaml", help="world for the simulator timing")
    p.add_argument("--json", dest="json_path", default=None, help="write the results as JSON")


def _times(step, scans, states) -> tuple[np.ndarray, np.ndarray]:
    out, t = np.empty(len(scans)), np.empty(len(scans))
    for i in range(len(scans)):
        t0 = time.perf_counter_ns()
        out[i] = step(scans[i:i + 1], states[i:i + 1])[0]
        t[i] = (time.perf_counter_ns() - t0) / 1e3
    return t, out


def run(args: argparse.Namespace) -> int:
    import torch

    from nodes.control.kernels import BifKernel, load_params
    from nodes.control.planners import FollowTheGap
    from nodes.control.simulator import RobotEnv
    from nodes.control.torch_models import TorchBif

    if args.decisions < 1:
        raise UserError(f"--decisions must be >= 1, got {args.decisions}")
    torch.set_num_threads(1)
    params = load_params(args.model)
    # scans from simulated episodes (the controller's real input in the loop); a new seed each time
    # an episode ends, so any number of decisions can be timed
    env = RobotEnv.from_file(args.world)
    seed = 0
    obs, gap, scans, states = env.reset(seed), FollowTheGap(), [], []
    while len(scans) < args.decisions:
        scans.append(obs.scan)
        states.append(obs.state)
        if env.done:
            seed += 1
            obs = env.reset(seed)
        else:
            obs = env.step(gap(obs.scan, obs.state))
    scans, states = np.array(scans), np.array(states)
    results: dict = {"model": args.model, "decisions": args.decisions, "timesteps": {}}
    timesteps = args.timesteps or ([int(params.meta["timesteps"])] if params.meta.get("timesteps") else [8, 16])
    import os

    load = os.getloadavg()
    results["load_average"] = list(load)
    print(f"spiking controller {args.model} (L={params.levels}), {args.decisions} decisions, batch 1; "
          f"machine load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on {os.cpu_count()} cores "
          f"(timings on a loaded machine are upper bounds)")
    print("  shipped step = BifKernel (compiled engine, what graphs run); numpy engine = the same algorithm in "
          "numpy array ops; torch = the same network stepped with torch ops")
    print(f"  {'T':>4} {'shipped p50 us':>15} {'shipped p99 us':>15} {'numpy-engine p50':>17} {'numpy-engine p99':>17} "
          f"{'torch p50 us':>13} {'torch p99 us':>13} {'max |diff|':>11}")
    for T in timesteps:
        BifKernel(params, T).step(scans[:1], states[:1])  # compile (cached on disk) before timing
        tn, yn = _times(BifKernel(params, T).step, scans, states)
        te, ye = _times(BifKernel(params, T, engine="numpy").step, scans, states)
        tt, yt = _times(TorchBif(params, T).step, scans, states)
        r = {"numpy_p50_us": float(np.median(tn)), "numpy_p99_us": float(np.percentile(tn, 99)),
             "numpy_engine_p50_us": float(np.median(te)), "numpy_engine_p99_us": float(np.percentile(te, 99)),
             "torch_p50_us": float(np.median(tt)), "torch_p99_us": float(np.percentile(tt, 99)),
             "max_abs_diff": float(max(np.max(np.abs(yn - yt)), np.max(np.abs(yn - ye))))}
        results["timesteps"][T] = r
        print(f"  {T:>4} {r['numpy_p50_us']:>15.0f} {r['numpy_p99_us']:>15.0f} {r['numpy_engine_p50_us']:>17.0f} "
              f"{r['numpy_engine_p99_us']:>17.0f} {r['torch_p50_us']:>13.0f} {r['torch_p99_us']:>13.0f} "
              f"{r['max_abs_diff']:>11.1e}")
    walls = []
    for seed in range(3):
        env.reset(seed)
        t0 = time.perf_counter()
        while not env.done:
            env.step(0.3)
        walls.append(time.perf_counter() - t0)
    results["sim_episode_s"] = {"median": float(np.median(walls)), "episode_s": env.spec.episode_s}
    print(f"simulator: one {env.spec.episode_s:g} s episode ({env.n_steps} steps incl. ray casting) "
          f"in {np.median(walls):.2f} s wall (median of 3)")
    if args.dataset:
        from nodes.control.dataset import get_split
        from nodes.control.evaluation import DEFAULT_TIMESTEPS, offline_report, print_offline

        # the test traces of the split the file was trained on (a keras-ncp file trained on some of
        # the standard split's test traces); simulator-trained files use the standard split
        split_name = (params.meta.get("split") or {}).get("name") or "standard"
        print(f"test traces of the {split_name!r} split:")
        rep = offline_report(args.model, params, get_split(args.dataset, split_name).sequences("test"),
                             list(DEFAULT_TIMESTEPS))
        print_offline(rep)
        results["mse_vs_T"] = rep
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(results, indent=2))
        print(f"results written to {args.json_path}")
    return 0
