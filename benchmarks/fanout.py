"""``spikeloop bench fanout``: scheduling overhead of ``spikeloop evaluate --jobs N`` against the serial run.

The work is the evaluation of every (model, recording) pair, exactly the tasks ``spikeloop
evaluate --jobs N`` submits (:func:`pipeline.cluster.evaluate.decoder_pair`). Each repeat runs
the pairs serially in this process, then as Ray tasks with at most 1 and then N in flight, on one
local Ray started once (its start-up time reported on its own: a cluster pays it once, not per
evaluation). Reported per mode: median and spread of the wall time of all pairs; with N in
flight the speed-up over serial. Scheduling overhead, two ways: ``(wall - serial wall) / serial
wall`` with one task in flight, and, less sensitive to a shared machine's load changing between
modes, ``wall - sum of the tasks' own run times`` (measured inside each worker) with one task in
flight, as a share of that wall: what submitting, shipping data and results and waiting cost
(the target is <= 10 %). Also the machine's load average, since the CPUs are shared.

Example: ``spikeloop bench fanout --model models/ann_sample.npz models/lstm_sample.npz --repeats 3 --json out/fanout.json``
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", nargs="+", default=["models/ann_sample.npz", "models/snn_streaming_sample.npz",
                                                  "models/lstm_sample.npz", "models/snn_3d_sample.npz"],
                   help="decoder model files (default: the four bundled samples)")
    p.add_argument("--recording", nargs="+", default=["recordings/reaching_sample.xdfz"],
                   help="recordings (default: the bundled sample)")
    p.add_argument("--jobs", type=int, default=2, metavar="N", help="tasks in flight in the parallel mode (default 2)")
    p.add_argument("--repeats", type=int, default=3, help="repeats of each mode, alternating (default 3)")
    p.add_argument("--filter", default="causal", help="Bessel variants scored besides none (default causal)")
    p.add_argument("--json", dest="json_path", default=None, help="write the figures as JSON")
    p.epilog = "example:\n  " + __doc__.split("Example: ")[-1].strip().strip("`")


def run(args: argparse.Namespace) -> int:
    from nodes.decoders.data import load_data
    from nodes.decoders.evaluation import parse_filters
    from pipeline.cluster.executor import Executor, Task
    from pipeline.errors import UserError
    from pipeline.runners.ray_runner import ensure_ray

    if args.repeats < 1 or args.jobs < 1:
        raise UserError("--repeats and --jobs must be >= 1")
    filters = parse_filters(args.filter)
    datas = [load_data(r) for r in args.recording]
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    started = ensure_ray({"num_cpus": args.jobs}, None)
    ray_start_s = time.perf_counter() - t0
    walls: dict[str, list[float]] = {"serial": [], "ray, 1 in flight": [], f"ray, {args.jobs} in flight": []}
    task_sums: dict[str, list[float]] = {k: [] for k in walls}
    try:
        for _ in range(args.repeats):
            for mode in walls:
                jobs = None if mode == "serial" else (1 if "1 in flight" in mode else args.jobs)
                with Executor(jobs=jobs, progress=False) as ex:
                    refs = [ex.put(d) for d in datas]  # shipping the recording is part of the cost
                    tasks = [Task(f"{m} on {r}", "pipeline.cluster.evaluate:decoder_pair", (m, ref, filters, 250, False))
                             for r, ref in zip(args.recording, refs) for m in args.model]
                    t = time.perf_counter()
                    ex.map(tasks)
                    walls[mode].append(time.perf_counter() - t)
                    task_sums[mode].append(sum(ex.last.task_s))
    finally:
        if started:
            import ray

            ray.shutdown()
    load1 = os.getloadavg()
    serial = float(np.median(walls["serial"]))
    rows: dict[str, Any] = {}
    for mode, w in walls.items():
        med = float(np.median(w))
        rows[mode] = {"wall_s_median": med, "wall_s_min": float(min(w)), "wall_s_max": float(max(w)),
                      "task_s_sum_median": float(np.median(task_sums[mode])),
                      "dispatch_share_median": float(np.median([(w_ - t_) / w_ for w_, t_ in zip(w, task_sums[mode])])),
                      "overhead_vs_serial": (med - serial) / serial, "speedup_vs_serial": serial / med}
    report = {"pairs": len(args.model) * len(args.recording), "models": args.model, "recordings": args.recording,
              "repeats": args.repeats, "jobs": args.jobs, "ray_start_s": ray_start_s,
              "loadavg_1min_before_after": [load0[0], load1[0]], "cpus": os.cpu_count(), "modes": rows}
    from rich.table import Table

    from pipeline.console import console

    table = Table(title=f"evaluate fan-out: {report['pairs']} pairs, {args.repeats} repeats; Ray start-up "
                        f"{ray_start_s:.1f} s (once); load average {load0[0]:.1f} -> {load1[0]:.1f} on {os.cpu_count()} CPUs")
    for col in ("mode", "wall median s", "min s", "max s", "sum of task times s", "(wall - tasks) / wall", "vs serial"):
        table.add_column(col, justify="right" if col != "mode" else "left")
    for mode, r in rows.items():
        vs = "–" if mode == "serial" else (f"{100 * r['overhead_vs_serial']:+.1f} % time" if "1 in flight" in mode
                                            else f"{r['speedup_vs_serial']:.2f}x faster")
        table.add_row(mode, f"{r['wall_s_median']:.2f}", f"{r['wall_s_min']:.2f}", f"{r['wall_s_max']:.2f}",
                      f"{r['task_s_sum_median']:.2f}",
                      "–" if f"{args.jobs} in flight" in mode and args.jobs > 1 else f"{100 * r['dispatch_share_median']:.1f} %", vs)
    console().print(table)
    if args.json_path:
        Path(args.json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_path).write_text(json.dumps(report, indent=2))
        print(f"wrote {args.json_path}")
    return 0
