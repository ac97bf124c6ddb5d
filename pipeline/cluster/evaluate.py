"""``spikeloop evaluate`` fanned out: every (model, recording) pair as one task.

``spikeloop evaluate --model A.npz B.npz --recording R1 R2 --jobs 2`` evaluates the four pairs as
Ray tasks on a local Ray with 2 CPUs (``--address ADDR``: on a running cluster), then assembles
the same report the serial path writes, through the same code (``nodes.decoders.evaluation.evaluate``
given the per-model results): one table and one JSON. With one recording the JSON has exactly the
serial layout; with several it is ``{"recordings": [report, ...]}`` in the order given (also when
run serially, without ``--jobs``), and each plot gets the recording's stem in its name.

Controllers: offline scoring on the LiDAR test traces runs one task per (split, model file);
closed-loop driving runs one task per (world family, controller): each model's float network, each
quantised model's spiking network (with its quantised twin alongside, and the separate quantised
run when their decisions differ), and each follow-the-gap baseline, over all the family's test
worlds. The driver merges the per-episode results and computes the per-family paired comparisons
(McNemar, intervals) with the same function the serial path uses
(:func:`nodes.control.evaluation.family_report`), so the report is the serial one.

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


def controller_offline(model: str, seqs: Any, split: str, timesteps: list[int]) -> dict[str, Any]:
    """One controller model file on one split's test sequences (:func:`nodes.control.evaluation.offline_split_report`)."""
    from nodes.control.evaluation import offline_split_report

    return offline_split_report(model, seqs, split, timesteps)


def controller_closed_loop(unit: tuple[str, Any], world: str, episode_s: float | None, sensor_noise: bool,
                           seeds: list[int], timesteps: int, pictures: str | None) -> dict[str, dict[str, Any]]:
    """One unit of :func:`nodes.control.evaluation.closed_loop_units` (one controller, or spiking with
    its quantised twin) in the worlds ``seeds`` of one family: ``{controller name: stats}``."""
    from nodes.control.evaluation import family_spec, run_unit

    return run_unit(tuple(unit), family_spec(world, episode_s, sensor_noise), seeds, timesteps, pictures, progress=False)


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
    """Controllers: offline scores one task per (split, model file); closed loop one task per
    (world family, controller unit), assembled (comparisons included) as the serial path does."""
    from nodes.control.evaluation import (closed_loop_seeds, closed_loop_timesteps, closed_loop_units,
                                          evaluation_options, family_report, family_spec, offline_splits, plot_sweep,
                                          print_closed_loop, print_offline_split)

    timesteps, n, worlds = evaluation_options(args)
    report: dict[str, Any] = {}
    if args.closed_loop:
        t_cl = closed_loop_timesteps(args, timesteps)
        noise = not getattr(args, "no_sensor_noise", False)
        seeds = closed_loop_seeds(n, args.seed)
        units = closed_loop_units(list(args.model), getattr(args, "baselines", None) or "both")
        specs = [family_spec(w, args.episode_s, noise) for w in worlds]  # reads every file on the driver: errors early
        tasks = [Task(f"closed loop: {spec.name}: {u[0]} {u[1]}", "pipeline.cluster.evaluate:controller_closed_loop",
                      (u, w, args.episode_s, noise, seeds, t_cl, args.pictures))
                 for w, spec in zip(worlds, specs) for u in units]
        parts = ex.map(tasks, desc="closed loop")
        rep: dict[str, Any] = {"seeds": [seeds[0], seeds[-1]], "timesteps": t_cl, "sensor_noise": noise, "families": {}}
        for i, (w, spec) in enumerate(zip(worlds, specs)):
            rep["families"][spec.name] = family_report(w, spec, list(args.model), t_cl,
                                                       parts[i * len(units):(i + 1) * len(units)])
        rep["complete"] = True  # as the serial report (every unit finished)
        print_closed_loop(rep)
        report["closed_loop"] = rep
    if args.dataset:
        from nodes.control.dataset import get_split

        tasks = []
        for split in offline_splits(args):
            seqs = ex.put(get_split(args.dataset, split).sequences("test"))
            tasks += [Task(f"{m} on the {split} split", "pipeline.cluster.evaluate:controller_offline",
                           (m, seqs, split, timesteps)) for m in args.model]
        reps = ex.map(tasks, desc="offline")
        for rep in reps:
            print_offline_split(rep)
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
