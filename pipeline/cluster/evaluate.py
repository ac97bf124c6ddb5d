"""``spikeloop evaluate`` fanned out: every (model, recording) pair as one task.

``spikeloop evaluate --model A.npz B.npz --recording R1 R2 --jobs 2`` evaluates the four pairs as
Ray tasks on a local Ray with 2 CPUs (``--address ADDR``: on a running cluster), then assembles
the same report the serial path writes, through the same code (``nodes.decoders.evaluation.evaluate``
given the per-model results): one table and one JSON. With one recording the JSON has exactly the
serial layout; with several it is ``{"recordings": [report, ...]}`` in the order given (also when
run serially, without ``--jobs``), and each plot gets the recording's stem in its name.

Controllers: offline scoring on the LiDAR test traces runs one task per model file; closed-loop
driving runs one task per controller (float, quantised, spiking of each model, and the baseline),
each over all the worlds.

Results equal the serial run's except the fields that time something on the machine that ran it,
named in :data:`TIMING_FIELDS` (a test compares serial and ``--jobs 2`` JSON with exactly these
removed). Recordings and test traces are read once, on the driver, and shared through Ray's
object store; model files are read by the task (on a cluster, from a path every node sees).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pipeline.cluster.executor import Executor, Task
from pipeline.errors import UserError

# keys whose values are wall-clock measurements (differ between any two runs, serial or not)
TIMING_FIELDS: dict[str, tuple[str, ...]] = {
    "decoder": ("step_us_p50", "step_us_p99", "offline_x_realtime"),
    "controller": ("float_time_us", "quant_time_us", "time_us_p50", "time_us_p99", "wall_s"),
}


def without(report: Any, keys: tuple[str, ...] | set[str]) -> Any:
    """A copy of a JSON-like ``report`` with every dict entry named in ``keys`` removed, at any depth."""
    if isinstance(report, dict):
        return {k: without(v, keys) for k, v in report.items() if k not in keys}
    if isinstance(report, list):
        return [without(v, keys) for v in report]
    return report


# --- tasks (run in workers) ---------------------------------------------------------------------
def decoder_pair(model: str, data: Any, filters: list[str], chunk: int, keep_curves: bool) -> dict[str, Any]:
    """One (model, recording) pair: :func:`nodes.decoders.evaluation.evaluate_model`; the curves
    (test-part velocities, only needed for plots) travel back only when ``keep_curves``."""
    from nodes.decoders.evaluation import evaluate_model

    result = evaluate_model(model, data, filters, chunk=chunk)
    if not keep_curves:
        result["_curves"] = {}
    return result


def controller_offline(model: str, seqs: Any, timesteps: list[int]) -> dict[str, Any]:
    """One controller model file on the test sequences (:func:`nodes.control.evaluation.offline_report`)."""
    from nodes.control.evaluation import offline_report
    from nodes.control.kernels import load_params

    return offline_report(model, load_params(model), seqs, timesteps)


def controller_closed_loop(models: list[str], world: str, n_worlds: int, seed: int, timesteps: int,
                           episode_s: float | None, pictures: str | None, index: int) -> tuple[str, dict[str, Any]]:
    """Controller number ``index`` of the closed-loop comparison, over all worlds."""
    from nodes.control.evaluation import closed_loop_report

    rep = closed_loop_report(models, world, n_worlds, seed, timesteps, episode_s, pictures, progress=False,
                             only=[index])
    ((name, stats),) = rep["controllers"].items()
    return name, stats


# --- the command --------------------------------------------------------------------------------
def _plot_for(plot: str | None, recording: str, several: bool) -> str | None:
    if not plot or not several:
        return plot
    p = Path(plot)
    return str(p.with_name(f"{p.stem}_{Path(recording).stem}{p.suffix}"))


def _write_json(path: str | None, report: dict[str, Any], **kw: Any) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(report, indent=2, **kw))


def evaluate_decoders(args: argparse.Namespace, ex: Executor) -> int:
    """Decoders: models × recordings as tasks; one table per recording; one JSON."""
    from nodes.decoders.data import load_data
    from nodes.decoders.evaluation import evaluate, parse_filters, print_table
    from pipeline.cli.mapping_options import mapping_from_args

    recordings = args.recording if isinstance(args.recording, list) else [args.recording]
    if not recordings or not recordings[0]:
        raise UserError("decoder evaluation needs --recording PATH (e.g. recordings/reaching_sample.xdfz)")
    filters = parse_filters(getattr(args, "filter", None))
    chunk = getattr(args, "chunk", None) or 250
    if chunk <= 0:
        raise UserError(f"--chunk must be > 0 samples, got {chunk}")
    several = len(recordings) > 1
    datas, tasks = [], []
    for rec in recordings:
        data = load_data(rec, mapping_from_args(args))
        datas.append(data)
        ref = ex.put(data)
        keep = bool(_plot_for(getattr(args, "plot", None), rec, several))
        tasks += [Task(f"{m} on {rec}", "pipeline.cluster.evaluate:decoder_pair", (m, ref, filters, chunk, keep))
                  for m in args.model]
    results = ex.map(tasks, desc="evaluate")
    reports = []
    for i, (rec, data) in enumerate(zip(recordings, datas)):
        part = results[i * len(args.model):(i + 1) * len(args.model)]
        report = evaluate(list(args.model), data, filters, plot_path=_plot_for(getattr(args, "plot", None), rec, several),
                          plot_seconds=getattr(args, "plot_seconds", None) or 10.0, chunk=chunk, results=part)
        if several:
            print(f"recording {rec}")
        print_table(report["models"], filters)
        for key, what in (("plot", ""), ("front_plot", " (R2 vs spikes per step)")):
            if report.get(key):
                print(f"wrote {report[key]}{what}")
        for path in report.get("attention_plots", {}).values():
            print(f"wrote {path} (attention gains per channel)")
        reports.append(report)
    _write_json(args.json_path, reports[0] if not several else {"recordings": reports}, default=float)
    if args.json_path:
        print(f"wrote {args.json_path}")
    return 0


def evaluate_controllers(args: argparse.Namespace, ex: Executor) -> int:
    """Controllers: offline scores one task per model file; closed loop one task per controller."""
    from nodes.control.evaluation import (DEFAULT_TIMESTEPS, closed_loop_controller_names, plot_sweep,
                                          print_closed_loop, print_offline)

    timesteps = list(args.timesteps) if args.timesteps else list(DEFAULT_TIMESTEPS)
    if any(t < 1 for t in timesteps):
        raise UserError(f"--timesteps must be >= 1, got {timesteps}")
    report: dict[str, Any] = {}
    if args.closed_loop:
        n = args.worlds or 50
        if n < 1:
            raise UserError(f"--worlds must be >= 1, got {n}")
        world = args.world or "configs/worlds/default.yaml"
        t_cl = max(timesteps) if args.timesteps else 16
        names = closed_loop_controller_names(args.model, t_cl)
        tasks = [Task(f"closed loop: {name}", "pipeline.cluster.evaluate:controller_closed_loop",
                      (list(args.model), world, n, args.seed, t_cl, args.episode_s, args.pictures, i))
                 for i, name in enumerate(names)]
        from nodes.control.simulator import WorldSpec

        spec = WorldSpec.from_file(world)
        rep: dict[str, Any] = {"world": world, "seeds": [args.seed, args.seed + n - 1],
                               "episode_s": args.episode_s or spec.episode_s, "timesteps": t_cl,
                               "controllers": dict(ex.map(tasks, desc="closed loop"))}
        print_closed_loop(rep)
        report["closed_loop"] = rep
    if args.dataset:
        from nodes.control.dataset import standard_split

        seqs = ex.put(standard_split(args.dataset).sequences("test"))
        reps = ex.map([Task(m, "pipeline.cluster.evaluate:controller_offline", (m, seqs, timesteps)) for m in args.model],
                      desc="offline")
        for rep in reps:
            print_offline(rep)
        report["offline"] = reps
        plot = args.plot or "evaluate_controller_mse_vs_T.png"
        if any("sweep" in r for r in reps):
            plot_sweep(reps, plot)
            print(f"plot of MSE versus T written to {plot}")
    if not report:
        raise UserError("nothing to evaluate: give --dataset PATH (offline scores) and/or --closed-loop")
    _write_json(args.json_path, report)
    if args.json_path:
        print(f"report written to {args.json_path}")
    return 0


FAMILIES = {"decoder": evaluate_decoders, "controller": evaluate_controllers}


def run_fanout(args: argparse.Namespace, family: str) -> int:
    """``spikeloop evaluate ... [--jobs N] [--address ADDR]``: the family's pairs as tasks."""
    if family not in FAMILIES:
        raise UserError(f"no fan-out for model family {family!r}; known: {', '.join(FAMILIES)}")
    with Executor(jobs=getattr(args, "jobs", None), address=getattr(args, "address", None),
                  timeout_s=getattr(args, "task_timeout", None) or 24 * 3600.0) as ex:
        rc = FAMILIES[family](args, ex)
        st = ex.last
        start = f", Ray start-up {st.ray_start_s:.1f} s" if st.ray_start_s is not None else ""
        print(f"{st.tasks} task(s), {st.mode}: last map {st.wall_s:.1f} s wall{start}")
    return rc
