"""``spikeloop evaluate`` for the ``controller`` family: offline on the real traces, and in closed loop.

Offline (``--dataset PATH``): on the held-out test traces (32-step sequences, h0 = 0), the float,
quantised and spiking networks' MSE side by side for a sweep of T (``--timesteps``), the largest
|quantised - spiking| output difference, spikes per decision (+1 and -1 spikes of all layers), and
the decision time (p50/p99 microseconds, one scan at a time, batch 1, numpy). A table, a JSON
report (``--json``) and a plot of MSE versus T (``--plot``).

Both real-trace splits are scored side by side (``standard`` and ``keras-ncp``; ``--split`` picks
one).

Closed loop (``--closed-loop --worlds N``): N TEST worlds (seeds from
``SEED_RANGES['test']``, never used in training or model selection) of every world family
(``--world`` files, default the four in ``configs/worlds``), sensor noise on unless
``--no-sensor-noise``, one episode each, for each model's float network (the SAME weights, run
unquantised), its quantised network and its spiking (BIF) conversion, and the follow-the-gap
baseline. The spiking controller drives with its quantised twin computed alongside on the same
inputs; when no decision differs the quantised run is that same run (reported as such), else it
is run separately. Per controller: collision-free rate with a Wilson 95 % interval, collisions,
cells visited and path (progress), minimum clearance. Per family, paired by world: spiking vs
float and spiking vs follow-the-gap, exact McNemar p, the rate difference with a 95 % interval
(Newcombe), and the cells-visited difference (95 % t interval). The episodes run directly through
the environment interface with the controllers batched over worlds (the same numpy kernels the
graph nodes run; a test checks that an episode through the graph gives the identical trajectory).
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


def wilson_ci(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score 95 % interval of a rate k/n (as fractions)."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (float(max(0.0, mid - half)), float(min(1.0, mid + half)))


def mcnemar_exact(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    """Exact (binomial) McNemar test of paired outcomes a, b (bool per world: collision-free).

    Returns the discordant counts (only a / only b), the two-sided p value and the rate
    difference a - b with a 95 % interval (Newcombe's method 10, from the Wilson intervals).
    """
    from scipy.stats import binomtest

    a, b = np.asarray(a, bool), np.asarray(b, bool)
    n = len(a)
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    p = 1.0 if only_a + only_b == 0 else float(binomtest(only_a, only_a + only_b, 0.5).pvalue)
    p1, p2 = a.mean(), b.mean()
    l1, u1 = wilson_ci(int(a.sum()), n)
    l2, u2 = wilson_ci(int(b.sum()), n)
    # Newcombe (1998) method 10 for paired proportions, with the phi correlation of the pairs
    n11, n22 = int(np.sum(a & b)), int(np.sum(~a & ~b))
    den = np.sqrt(float((n11 + only_a) * (only_b + n22) * (n11 + only_b) * (only_a + n22)))
    phi = (n11 * n22 - only_a * only_b) / den if den > 0 else 0.0
    d = p1 - p2
    lo = d - np.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    hi = d + np.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    return {"only_first": only_a, "only_second": only_b, "p_value": p, "difference": float(d),
            "difference_ci95": [float(lo), float(hi)]}


def paired_mean_diff(x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Mean of x - y over paired worlds with a 95 % t interval."""
    from scipy.stats import t as student

    d = np.asarray(x, float) - np.asarray(y, float)
    m = float(d.mean())
    if len(d) < 2:
        return {"difference": m, "difference_ci95": [m, m]}
    half = float(student.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d)))
    return {"difference": m, "difference_ci95": [m - half, m + half]}


def closed_loop_stats(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Aggregate per-episode results (metres, counts); the per-episode outcomes are kept for pairing."""
    coll = np.array([r["collisions"] for r in results])
    path = np.array([r["path_m"] for r in results])
    cells = np.array([r["cells_visited"] for r in results])
    clear = np.array([r["min_clearance_m"] for r in results])
    total_coll = int(coll.sum())
    free = int(np.sum(coll == 0))
    return {
        "episodes": len(results),
        "collision_free_rate": free / len(results),
        "collision_free_ci95": list(wilson_ci(free, len(results))),
        "collisions": total_coll,
        "mean_distance_between_collisions_m": float(path.sum() / total_coll) if total_coll else None,
        "min_clearance_median_m": float(np.median(clear)),
        "min_clearance_p5_m": float(np.percentile(clear, 5)),
        "mean_path_m": float(path.mean()),
        "mean_cells_visited": float(cells.mean()),
        "per_episode_collisions": coll.tolist(),
        "per_episode_cells": cells.tolist(),
    }


class ShadowedSpiking:
    """The spiking controller driving, its quantised twin computed on the same inputs alongside:
    counts the decisions where they differ (``differ``, |spiking - quantised| > ``tol``) out of
    ``decisions``. With none differing, the quantised controller's closed-loop run IS this run."""

    def __init__(self, params: CrnnParams, timesteps: int, batch: int, tol: float = 1e-9) -> None:
        self.bif = BifKernel(params, timesteps, batch)
        self.quant = CrnnKernel(params, batch, "quant")
        self.tol, self.decisions, self.differ, self.max_diff = tol, 0, 0, 0.0
        self.spikes = 0.0

    def step(self, scans: np.ndarray, states: np.ndarray) -> np.ndarray:
        u = self.bif.step(scans, states)
        q = self.quant.step(scans, states)
        d = np.abs(u - q)
        self.decisions += len(u)
        self.differ += int(np.sum(d > self.tol))
        self.max_diff = max(self.max_diff, float(d.max()))
        self.spikes += float(self.bif.last_spikes.sum())
        return u


DEFAULT_FAMILIES = ("configs/worlds/default.yaml", "configs/worlds/dense.yaml",
                    "configs/worlds/corridor.yaml", "configs/worlds/rooms.yaml")
BASELINES = (("follow-the-gap (baseline)", False), ("follow-the-gap, invalid returns filled", True))


def family_spec(world: str, episode_s: float | None, sensor_noise: bool):
    """The :class:`WorldSpec` of one family file with the run's episode length and sensor setting."""
    from nodes.control.simulator import WorldSpec

    spec = WorldSpec.from_file(world)
    if episode_s:
        spec.episode_s = episode_s
    if not sensor_noise:
        spec.range_noise_m, spec.dropout_rate = 0.0, 0.0
    return spec


def closed_loop_seeds(n_worlds: int, seed: int) -> list[int]:
    """The ``n_worlds`` TEST seeds from ``SEED_RANGES['test'][0] + seed`` on."""
    from nodes.control.simulator import SEED_RANGES

    return list(range(SEED_RANGES["test"][0] + seed, SEED_RANGES["test"][0] + seed + n_worlds))


def _model_names(m: str, levels: int | None, timesteps: int) -> tuple[str, str, str]:
    stem = Path(m).stem
    fname = f"float ({stem})" if levels is None else f"float, same weights ({stem})"
    return fname, f"spiking T={timesteps} ({stem})", f"quantised L={levels} ({stem})"


BASELINE_CHOICES = {"both": (False, True), "filled": (True,), "none": ()}


def closed_loop_units(models: list[str], baselines: str = "both") -> list[tuple[str, Any]]:
    """The closed-loop work of one family as independent units, in report order (reads the model
    files): ``("spiking", model)`` per quantised model (the spiking run with its quantised twin
    alongside, plus the separate quantised run when they differ) -- first, so a run cut short
    keeps the controller that ships -- then ``("float", model)`` per model, and ``("gap",
    fill_invalid)`` per follow-the-gap baseline. :func:`run_unit` runs one."""
    units: list[tuple[str, Any]] = []
    for m in models:
        if load_params(m).levels is not None:
            units.append(("spiking", m))
        units.append(("float", m))
    return units + [("gap", fill) for _, fill in BASELINES if fill in BASELINE_CHOICES[baselines]]


def run_unit(unit: tuple[str, Any], spec, seeds: list[int], timesteps: int, pictures: str | None = None,
             progress: bool = True) -> dict[str, dict[str, Any]]:
    """Drive one unit of :func:`closed_loop_units` through the worlds ``seeds`` of family ``spec``:
    ``{controller name: stats}`` (one entry, or spiking and quantised for a ``spiking`` unit)."""
    from nodes.control.planners import FollowTheGap

    out: dict[str, dict[str, Any]] = {}

    def record(name: str, results: list[dict[str, Any]], t0: float, extra: dict | None = None) -> None:
        stats = closed_loop_stats(results) | (extra or {})
        stats["wall_s"] = time.perf_counter() - t0
        out[name] = stats
        if pictures:
            slug = "_".join("".join(c if c.isalnum() else " " for c in name).split())
            r = results[0]
            r["_env"].plot(Path(pictures) / f"{spec.name}_{slug}_seed{r['seed']}.png",
                           title=f"{name} in a '{spec.name}' world (seed {r['seed']}): {r['collisions']} collisions, "
                                 f"{r['path_m']:.1f} m, {r['cells_visited']} cells")

    kind, arg = unit
    t0 = time.perf_counter()
    if kind == "gap":
        gname = next(g for g, fill in BASELINES if fill == arg)
        gap = _Batched(lambda: FollowTheGap(robot_radius_m=spec.robot_radius_m,
                                            max_turn_rad_s=spec.max_turn_rad_s, fill_invalid=arg), len(seeds))
        record(gname, run_episodes(gap, seeds, spec, progress, f"{spec.name}: {gname}"), t0)
        return out
    p = load_params(arg)
    fname, sname, qname = _model_names(arg, p.levels, timesteps)
    if kind == "float":
        record(fname, run_episodes(CrnnKernel(p, len(seeds), "float"), seeds, spec, progress, f"{spec.name}: {fname}"), t0)
        return out
    ctl = ShadowedSpiking(p, timesteps, len(seeds))
    res = run_episodes(ctl, seeds, spec, progress, f"{spec.name}: {sname}")
    shadow = {"quantised_decisions_compared": ctl.decisions, "quantised_decisions_differing": ctl.differ,
              "max_abs_diff_quantised": ctl.max_diff, "spikes_per_decision": ctl.spikes / max(ctl.decisions, 1)}
    record(sname, res, t0, shadow)
    if ctl.differ == 0:  # identical decisions on identical inputs: the same trajectories
        out[qname] = dict(out[sname], identical_to=sname)
    else:
        t0 = time.perf_counter()
        record(qname, run_episodes(CrnnKernel(p, len(seeds), "quant"), seeds, spec, progress, f"{spec.name}: {qname}"), t0)
    return out


def family_report(world: str, spec, models: list[str], timesteps: int,
                  parts: list[dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """One family's report from the :func:`run_unit` results ``parts`` (in unit order): the
    controllers, then the paired comparisons (spiking vs float of each model, every spiking vs
    every baseline), computed here so serial and fanned-out runs give the same report."""
    controllers: dict[str, Any] = {}
    for part in parts:
        controllers.update(part)
    outcomes = {name: (np.array(st["per_episode_collisions"]) == 0, np.array(st["per_episode_cells"]))
                for name, st in controllers.items()}

    def compare(a: str, b: str) -> dict[str, Any]:
        return mcnemar_exact(outcomes[a][0], outcomes[b][0]) | {"cells": paired_mean_diff(outcomes[a][1], outcomes[b][1])}

    comparisons: dict[str, Any] = {}
    for m in models:
        levels = load_params(m).levels
        if levels is None:
            continue
        fname, sname, _ = _model_names(m, levels, timesteps)
        if sname in controllers and fname in controllers:  # (a partial report may lack one)
            comparisons[f"{sname} vs {fname}"] = compare(sname, fname)
    for name in controllers:
        if name.startswith("spiking"):
            for gname in (g for g, _ in BASELINES if g in controllers):
                comparisons[f"{name} vs {gname}"] = compare(name, gname)
    return {"world": world, "episode_s": spec.episode_s, "controllers": controllers, "comparisons": comparisons}


def closed_loop_report(models: list[str], worlds: list[str], n_worlds: int, seed: int, timesteps: int,
                       episode_s: float | None, pictures: str | None = None, progress: bool = True,
                       sensor_noise: bool = True, baselines: str = "both",
                       on_progress: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Every model (float path of its weights; quantised and spiking if it is quantised) and
    follow-the-gap in ``n_worlds`` TEST worlds of every family in ``worlds`` (seeds
    ``SEED_RANGES['test'][0] + seed`` on), with paired comparisons per family. Serial; the
    fan-out (``pipeline.cluster.evaluate``) runs the same units as tasks and assembles the same way.
    ``on_progress(report)``, if given, gets the report so far (``"complete": False``) after every
    unit, so a run that is stopped keeps what it finished."""
    seeds = closed_loop_seeds(n_worlds, seed)
    units = closed_loop_units(models, baselines)
    rep: dict[str, Any] = {"seeds": [seeds[0], seeds[-1]], "timesteps": timesteps, "sensor_noise": sensor_noise,
                           "families": {}}
    for world in worlds:
        spec = family_spec(world, episode_s, sensor_noise)
        parts = []
        for u in units:
            parts.append(run_unit(u, spec, seeds, timesteps, pictures, progress))
            rep["families"][spec.name] = family_report(world, spec, models, timesteps, parts)
            if on_progress is not None:
                on_progress(dict(rep, complete=False))
    rep["complete"] = True
    return rep


def print_closed_loop(rep: dict[str, Any]) -> None:
    from pipeline.console import console

    c = console()
    c.print(f"\nclosed loop: test seeds {rep['seeds'][0]}..{rep['seeds'][1]} in every family, "
            f"sensor noise {'on' if rep['sensor_noise'] else 'OFF'}; collision-free with Wilson 95 % interval")
    for fam_name, fam in rep["families"].items():
        c.print(f"\n[bold]{fam_name}[/bold] ({fam['world']}, {fam['episode_s']:g} s episodes)")
        c.print(f"  {'controller':<46} {'collision-free':>22} {'collisions':>10} {'cells':>6} {'path m':>7} {'clear p50':>9}")
        for name, st in fam["controllers"].items():
            lo, hi = st["collision_free_ci95"]
            note = "  (= spiking, identical decisions)" if "identical_to" in st else ""
            c.print(f"  {name:<46} {100 * st['collision_free_rate']:>6.1f}% [{100 * lo:5.1f}, {100 * hi:5.1f}] "
                    f"{st['collisions']:>10} {st['mean_cells_visited']:>6.1f} {st['mean_path_m']:>7.1f} "
                    f"{st['min_clearance_median_m']:>9.2f}{note}", highlight=False)
            if "quantised_decisions_compared" in st and "identical_to" not in st:
                c.print(f"    spiking vs quantised twin: {st['quantised_decisions_differing']} of "
                        f"{st['quantised_decisions_compared']} decisions differ (max |diff| {st['max_abs_diff_quantised']:.1e}); "
                        f"{st['spikes_per_decision']:.0f} spikes per decision", highlight=False)
        for name, cmp_ in fam["comparisons"].items():
            lo, hi = cmp_["difference_ci95"]
            cl, ch = cmp_["cells"]["difference_ci95"]
            c.print(f"  {name}: collision-free {100 * cmp_['difference']:+.1f} points [{100 * lo:+.1f}, {100 * hi:+.1f}], "
                    f"McNemar exact p = {cmp_['p_value']:.3g} ({cmp_['only_first']} vs {cmp_['only_second']} discordant); "
                    f"cells {cmp_['cells']['difference']:+.1f} [{cl:+.1f}, {ch:+.1f}]", highlight=False)


# --- CLI entry -----------------------------------------------------------------------------------
def _shipped_timesteps(models: list[str]) -> int:
    """T for the closed loop: the model file's ``timesteps`` metadata (the shipped T), else 16."""
    for m in models:
        t = load_params(m).meta.get("timesteps")
        if t:
            return int(t)
    return 16

def offline_split_report(m: str, seqs, split: str, timesteps: list[int]) -> dict[str, Any]:
    """:func:`offline_report` of model file ``m`` on the test sequences of real-trace split
    ``split``, with the split the model was trained on (``trained_on_split``)."""
    params = load_params(m)
    sp = params.meta.get("split", {})
    trained = "simulator" if sp is None else (sp.get("name") or "standard")
    return offline_report(m, params, seqs, timesteps) | {"split": split, "trained_on_split": trained}


def print_offline_split(rep: dict[str, Any]) -> None:
    """:func:`print_offline` under a ``[split]`` header, with a note when the model was trained on the other split."""
    split, trained = rep["split"], rep["trained_on_split"]
    note = "" if trained in (split, "simulator") else (f" (NOTE: {Path(rep['model']).name} was trained on the {trained} "
                                                       "split: these test traces include some of its training traces)")
    print(f"\n[{split} split]{note}", end="")
    print_offline(rep)


def closed_loop_timesteps(args: argparse.Namespace, timesteps: list[int]) -> int:
    """T for the closed loop: the largest ``--timesteps`` if given, else the model file's shipped T."""
    return max(timesteps) if args.timesteps else _shipped_timesteps(args.model)


def evaluation_options(args: argparse.Namespace) -> tuple[list[int], int, list[str]]:
    """``--timesteps`` (default :data:`DEFAULT_TIMESTEPS`), ``--worlds`` (default 200) and ``--world``
    files (default every family) of a controller evaluation, checked; shared by the serial and
    fan-out paths."""
    timesteps = list(args.timesteps) if args.timesteps else list(DEFAULT_TIMESTEPS)
    if any(t < 1 for t in timesteps):
        raise UserError(f"--timesteps must be >= 1, got {timesteps}")
    n = args.worlds or 200
    if n < 1:
        raise UserError(f"--worlds must be >= 1, got {n}")
    worlds = list(args.world) if args.world else list(DEFAULT_FAMILIES)
    return timesteps, n, worlds


def offline_splits(args: argparse.Namespace) -> list[str]:
    """The real-trace splits an evaluation scores: ``--split``, else both (standard and keras-ncp)."""
    return [args.split] if getattr(args, "split", None) else ["standard", "keras-ncp"]


def _partial_writer(path: str | None) -> Callable[[dict[str, Any]], None] | None:
    """Writes the closed-loop report so far to ``path`` (``{"closed_loop": ...}``, with
    ``"complete": false``) after every unit; the final report overwrites it."""
    if not path:
        return None

    def write(rep: dict[str, Any]) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps({"closed_loop": rep}, indent=2))
    return write


def evaluate_controllers(args: argparse.Namespace) -> int:
    """``spikeloop evaluate --model M... [--dataset PATH] [--closed-loop --worlds N]``."""
    timesteps, n, worlds = evaluation_options(args)
    report: dict[str, Any] = {}
    if args.closed_loop:
        T = closed_loop_timesteps(args, timesteps)
        rep = closed_loop_report(args.model, worlds, n, args.seed, T, args.episode_s, args.pictures,
                                 sensor_noise=not getattr(args, "no_sensor_noise", False),
                                 baselines=getattr(args, "baselines", None) or "both",
                                 on_progress=_partial_writer(args.json_path))
        print_closed_loop(rep)
        report["closed_loop"] = rep
    if args.dataset:
        from nodes.control.dataset import get_split

        splits = offline_splits(args)
        reps = []
        for split in splits:
            seqs = get_split(args.dataset, split).sequences("test")
            for m in args.model:
                rep = offline_split_report(m, seqs, split, timesteps)
                print_offline_split(rep)
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
