"""``spikeloop evaluate`` for the ``controller`` family: offline on the real traces, and in closed loop.

Offline (``--dataset PATH``): on the held-out test traces (32-step sequences, h0 = 0), the float,
quantised and spiking networks' MSE side by side for a sweep of T (``--timesteps``), the largest
|quantised - spiking| output difference, spikes per decision (+1 and -1 spikes of all layers), and
the decision time (p50/p99 microseconds, one scan at a time, batch 1, numpy). A table, a JSON
report (``--json``) and a plot of MSE versus T (``--plot``).

Closed loop (``--closed-loop --worlds N``): N seeded random worlds (``--world`` file, default
``configs/worlds/default.yaml``, seeds ``--seed`` ... ``--seed``+N-1), one episode each, for the
float, quantised and spiking controllers and the follow-the-gap baseline: collision-free episode
rate, mean distance between collisions, minimum clearance per episode (median and 5th percentile
over episodes), mean path length. The episodes run directly through the environment interface
with the controllers batched over worlds (the same numpy kernels the graph nodes run; a test
checks that an episode through the graph gives the identical trajectory).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from nodes.control.kernels import BifKernel, CrnnKernel, CrnnParams, load_params
from pipeline.errors import UserError

DEFAULT_TIMESTEPS = (1, 2, 4, 6, 8, 10, 12, 16, 24, 32)


# --- offline -------------------------------------------------------------------------------------
def decision_times_us(step: Callable[[np.ndarray, np.ndarray], Any], scans: np.ndarray, state: np.ndarray) -> np.ndarray:
    """Wall time (microseconds) of ``step`` for each scan (1, 541) in turn."""
    out = np.empty(len(scans))
    for i in range(len(scans)):
        t0 = time.perf_counter_ns()
        step(scans[i:i + 1], state[i:i + 1])
        out[i] = (time.perf_counter_ns() - t0) / 1e3
    return out


def offline_report(path: str, params: CrnnParams, seqs, timesteps: list[int], n_timing: int = 200) -> dict[str, Any]:
    """Scores of one model file on test sequences ``seqs`` (see the module docstring)."""
    y = seqs.steering
    flat_scans = seqs.scans.reshape(-1, seqs.scans.shape[-1])[:n_timing]
    flat_state = seqs.state.reshape(-1, 2)[:n_timing]
    rep: dict[str, Any] = {"model": path, "levels": params.levels, "test_sequences": len(seqs),
                           "zero_predictor_mse": float(np.mean(y ** 2))}
    fk = CrnnKernel(params, mode="float")
    rep["float_mse"] = float(np.mean((fk.run(seqs.scans, seqs.state) - y) ** 2))
    t = decision_times_us(CrnnKernel(params, mode="float").step, flat_scans, flat_state)
    rep["float_time_us"] = {"p50": float(np.percentile(t, 50)), "p99": float(np.percentile(t, 99))}
    if params.levels is None:
        return rep
    qk = CrnnKernel(params, mode="quant")
    q = qk.run(seqs.scans, seqs.state)
    rep["quant_mse"] = float(np.mean((q - y) ** 2))
    t = decision_times_us(CrnnKernel(params, mode="quant").step, flat_scans, flat_state)
    rep["quant_time_us"] = {"p50": float(np.percentile(t, 50)), "p99": float(np.percentile(t, 99))}
    rows = []
    from tqdm import tqdm

    for T in tqdm(timesteps, desc="spiking T sweep", leave=False):
        bk = BifKernel(params, timesteps=T, batch=len(seqs))
        s, spikes = bk.run(seqs.scans, seqs.state)
        t = decision_times_us(BifKernel(params, timesteps=T).step, flat_scans, flat_state)
        rows.append({
            "T": T, "spiking_mse": float(np.mean((s - y) ** 2)),
            "max_abs_diff_quant_spiking": float(np.max(np.abs(s - q))),
            "spikes_per_decision": float(spikes.mean()),
            "time_us_p50": float(np.percentile(t, 50)), "time_us_p99": float(np.percentile(t, 99)),
        })
    rep["sweep"] = rows
    return rep


def print_offline(rep: dict[str, Any]) -> None:
    print(f"\n{rep['model']}  (levels {rep['levels']}; {rep['test_sequences']} test sequences; "
          f"always-0 predictor MSE {rep['zero_predictor_mse']:.4f})")
    print(f"  float CRNN      test MSE {rep['float_mse']:.4f}   decision p50 {rep['float_time_us']['p50']:.0f} us, "
          f"p99 {rep['float_time_us']['p99']:.0f} us")
    if "quant_mse" not in rep:
        return
    print(f"  quantised CRNN  test MSE {rep['quant_mse']:.4f}   decision p50 {rep['quant_time_us']['p50']:.0f} us, "
          f"p99 {rep['quant_time_us']['p99']:.0f} us")
    print(f"  {'T':>4} {'float MSE':>10} {'quant MSE':>10} {'spiking MSE':>12} {'max|q-s|':>10} "
          f"{'spikes/dec':>11} {'p50 us':>8} {'p99 us':>8}")
    for r in rep["sweep"]:
        print(f"  {r['T']:>4} {rep['float_mse']:>10.4f} {rep['quant_mse']:>10.4f} {r['spiking_mse']:>12.4f} "
              f"{r['max_abs_diff_quant_spiking']:>10.2e} {r['spikes_per_decision']:>11.0f} "
              f"{r['time_us_p50']:>8.0f} {r['time_us_p99']:>8.0f}")


def plot_sweep(reports: list[dict[str, Any]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for rep in reports:
        if "sweep" not in rep:
            continue
        T = [r["T"] for r in rep["sweep"]]
        name = Path(rep["model"]).stem
        line, = ax.plot(T, [r["spiking_mse"] for r in rep["sweep"]], "o-", label=f"{name} spiking (BIF)")
        ax.axhline(rep["quant_mse"], color=line.get_color(), ls="--", lw=1, label=f"{name} quantised")
        ax.axhline(rep["float_mse"], color=line.get_color(), ls=":", lw=1, label=f"{name} float")
        ax.axhline(rep["zero_predictor_mse"], color="0.6", lw=0.8)
    ax.set_xlabel("T (time steps per scan)")
    ax.set_ylabel("test MSE (steering)")
    ax.set_yscale("log")
    ax.legend(fontsize=7)
    ax.set_title("Spiking controller: test MSE versus time steps", fontsize=9)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --- closed loop ---------------------------------------------------------------------------------
class _Batched:
    """Adapts a per-scan planner to the batched controller interface ``step(scans, states)``."""

    def __init__(self, make: Callable[[], Any], batch: int) -> None:
        self.planners = [make() for _ in range(batch)]

    def step(self, scans: np.ndarray, states: np.ndarray) -> np.ndarray:
        return np.array([p(s, st) for p, s, st in zip(self.planners, scans, states)])


def run_episodes(controller, seeds: list[int], spec, progress: bool = True, desc: str = "") -> list[dict[str, Any]]:
    """One episode per seed, all worlds stepped together; ``controller.step((B,541),(B,2)) -> (B,)``."""
    from tqdm import tqdm

    from nodes.control.simulator import RobotEnv

    envs = [RobotEnv(spec) for _ in seeds]
    obs = [env.reset(seed) for env, seed in zip(envs, seeds)]
    for _ in tqdm(range(envs[0].n_steps), desc=desc, leave=False, disable=not progress):
        u = controller.step(np.stack([o.scan for o in obs]), np.stack([o.state for o in obs]))
        obs = [env.step(float(ui)) for env, ui in zip(envs, u)]
    return [env.summary() | {"_env": env} for env in envs]


def closed_loop_stats(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Aggregate per-episode results (metres, counts)."""
    coll = np.array([r["collisions"] for r in results])
    path = np.array([r["path_m"] for r in results])
    clear = np.array([r["min_clearance_m"] for r in results])
    total_coll = int(coll.sum())
    return {
        "episodes": len(results),
        "collision_free_rate": float(np.mean(coll == 0)),
        "collisions": total_coll,
        "mean_distance_between_collisions_m": float(path.sum() / total_coll) if total_coll else None,
        "min_clearance_median_m": float(np.median(clear)),
        "min_clearance_p5_m": float(np.percentile(clear, 5)),
        "mean_path_m": float(path.mean()),
        "per_episode_collisions": coll.tolist(),
    }


def closed_loop_controllers(models: list[str], spec, n_worlds: int, timesteps: int) -> list[tuple[str, Callable[[], Any]]]:
    """``(name, make)`` of every controller the closed-loop comparison drives, in report order."""
    from nodes.control.planners import FollowTheGap

    seeds = range(n_worlds)
    loaded = [(m, load_params(m)) for m in models]
    controllers: list[tuple[str, Callable[[], Any]]] = []
    for m, p in loaded:
        stem = Path(m).stem
        if p.levels is None:
            controllers.append((f"float ({stem})", lambda p=p: CrnnKernel(p, len(seeds), "float")))
        else:
            if not any(q.levels is None for _, q in loaded):
                controllers.append((f"float ({stem}, unquantised weights)", lambda p=p: CrnnKernel(p, len(seeds), "float")))
            controllers.append((f"quantised L={p.levels} ({stem})", lambda p=p: CrnnKernel(p, len(seeds), "quant")))
            controllers.append((f"spiking T={timesteps} ({stem})", lambda p=p: BifKernel(p, timesteps, len(seeds))))
    controllers.append(("follow-the-gap (baseline)", lambda: _Batched(lambda: FollowTheGap(
        robot_radius_m=spec.robot_radius_m, max_turn_rad_s=spec.max_turn_rad_s), len(seeds))))
    return controllers


def closed_loop_controller_names(models: list[str], timesteps: int = 16) -> list[str]:
    """The names :func:`closed_loop_report` gives its controllers, in order (reads the model files)."""
    return [name for name, _ in closed_loop_controllers(models, None, 1, timesteps)]


def closed_loop_report(models: list[str], world: str, n_worlds: int, seed: int, timesteps: int,
                       episode_s: float | None, pictures: str | None = None, progress: bool = True,
                       only: list[int] | None = None) -> dict[str, Any]:
    """Drive every controller (or those at positions ``only``) through the same ``n_worlds`` worlds."""
    from nodes.control.simulator import WorldSpec

    spec = WorldSpec.from_file(world)
    if episode_s:
        spec.episode_s = episode_s
    seeds = list(range(seed, seed + n_worlds))
    controllers = closed_loop_controllers(models, spec, n_worlds, timesteps)
    if only is not None:
        controllers = [controllers[i] for i in only]
    rep: dict[str, Any] = {"world": world, "seeds": [seeds[0], seeds[-1]], "episode_s": spec.episode_s,
                           "timesteps": timesteps, "controllers": {}}
    for name, make in controllers:
        t0 = time.perf_counter()
        results = run_episodes(make(), seeds, spec, progress, desc=name)
        stats = closed_loop_stats(results)
        stats["wall_s"] = time.perf_counter() - t0
        rep["controllers"][name] = stats
        if pictures:
            slug = "_".join("".join(c if c.isalnum() else " " for c in name).split())  # model stem included
            for r in results[:3]:
                r["_env"].plot(Path(pictures) / f"{slug}_seed{r['seed']}.png", title=f"{name}, seed {r['seed']}: "
                               f"{r['collisions']} collisions, {r['path_m']:.1f} m")
    return rep


def print_closed_loop(rep: dict[str, Any]) -> None:
    print(f"\nclosed loop: world {rep['world']}, seeds {rep['seeds'][0]}..{rep['seeds'][1]}, "
          f"{rep['episode_s']:g} s episodes")
    print(f"  {'controller':<44} {'coll-free':>9} {'collisions':>10} {'m/collision':>11} "
          f"{'clear p50':>9} {'clear p5':>8} {'path m':>7}")
    for name, s in rep["controllers"].items():
        mdc = s["mean_distance_between_collisions_m"]
        print(f"  {name:<44} {100 * s['collision_free_rate']:>8.0f}% {s['collisions']:>10} "
              f"{'-' if mdc is None else f'{mdc:.1f}':>11} {s['min_clearance_median_m']:>9.2f} "
              f"{s['min_clearance_p5_m']:>8.2f} {s['mean_path_m']:>7.1f}")


# --- CLI entry -----------------------------------------------------------------------------------
def evaluate_controllers(args: argparse.Namespace) -> int:
    """``spikeloop evaluate --model M... [--dataset PATH] [--closed-loop --worlds N]``."""
    timesteps = list(args.timesteps) if args.timesteps else list(DEFAULT_TIMESTEPS)
    if any(t < 1 for t in timesteps):
        raise UserError(f"--timesteps must be >= 1, got {timesteps}")
    report: dict[str, Any] = {}
    if args.closed_loop:
        n = args.worlds or 50
        if n < 1:
            raise UserError(f"--worlds must be >= 1, got {n}")
        world = args.world or "configs/worlds/default.yaml"
        rep = closed_loop_report(args.model, world, n, args.seed, max(timesteps) if args.timesteps else 16,
                                 args.episode_s, args.pictures)
        print_closed_loop(rep)
        report["closed_loop"] = rep
    if args.dataset:
        from nodes.control.dataset import standard_split

        seqs = standard_split(args.dataset).sequences("test")
        reps = []
        for m in args.model:
            rep = offline_report(m, load_params(m), seqs, timesteps)
            print_offline(rep)
            reps.append(rep)
        report["offline"] = reps
        plot = args.plot or "evaluate_controller_mse_vs_T.png"
        if any("sweep" in r for r in reps):
            plot_sweep(reps, plot)
            print(f"plot of MSE versus T written to {plot}")
    if not report:
        raise UserError("nothing to evaluate: give --dataset PATH (offline scores) and/or --closed-loop")
    if args.json_path:
        Path(args.json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_path).write_text(json.dumps(report, indent=2))
        print(f"report written to {args.json_path}")
    return 0
