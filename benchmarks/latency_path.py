"""``spikeloop bench latency-path``: where a live graph's time goes, per sample, on each runner.

The same graph and outside clients as ``spikeloop bench latency`` (a pusher process at ``--rate``
Hz, LSL in -> Bessel -> SNN decoder -> LSL out fused in one group, a receiver process), with the
graph run under the probe (:mod:`pipeline.runners.probe`, ``SPIKELOOP_PROBE``): every step that
read a sample records the LSL-clock moments (push stamp, wake-up, output pushed), the CPU time of
every stage (the pull that returned the data, the pulls that found nothing, the rest of the inlet's
read, each node's ``process()``, the runner's own bookkeeping) and the garbage collector's time.
The graph's process tree is also measured per thread (which thread of which process burns the CPU:
Ray's own threads, a compiled graph's channel readers).

Why CPU times: this machine is shared, and a wall-clock latency moves with the load; the CPU time
a stage costs (``time.thread_time_ns``) hardly does. The table therefore gives, per stage, the
median and p99 CPU time in µs, and beside it the wall-clock figures of the same run (medians and
p99, noisy: quote them with the load). (Instruction counts would not depend on the load at all,
but this machine's kernel exposes no hardware counters: ``perf stat -e instructions:u`` answers
"not supported"; :func:`perf_available` checks.)

Read the output as: ``wake`` = push stamp -> the inlet's pull returned (LSL transit plus wake-up);
``graph`` = pull returned -> output pushed (the graph's own time); ``outside`` = push stamp ->
arrival at the receiver process (what a lab sees). ``--no-gc-freeze`` runs the graph with the
set-up objects not frozen (``SPIKELOOP_GC_FREEZE=0``), to measure what the freeze buys.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.latency import DEFAULT_MODEL, RUNNERS, WAITS, model_for_rate, run_graph

EPILOG = ("example: spikeloop bench latency-path --runner local --runner ray --duration 10 --json out/path.json\n"
          "         (add --no-gc-freeze to compare the collector setting;\n"
          "          spikeloop bench latency-path --pull-cost: the CPU cost of one LSL pull alone;\n"
          "          spikeloop bench latency-path --node-cost: Bessel + decoder on one sample, warm vs cold)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = EPILOG
    p.add_argument("--runner", action="append", choices=RUNNERS, metavar="RUNNER",
                   help="runner to probe, repeatable (default: local, ray, ray-compiled)")
    p.add_argument("--rate", type=float, default=250.0, metavar="HZ", help="sampling rate in Hz (default 250)")
    p.add_argument("--wait", choices=WAITS, default="auto", help="the inlet's wait mode (default auto)")
    p.add_argument("--duration", type=float, default=10.0, metavar="S", help="seconds measured per run (default 10)")
    p.add_argument("--repeats", type=int, default=1, metavar="N", help="runs per runner, interleaved (default 1)")
    p.add_argument("--no-gc-freeze", action="store_true",
                   help="also run each runner without the garbage-collector freeze (SPIKELOOP_GC_FREEZE=0)")
    p.add_argument("--model", default=str(DEFAULT_MODEL), help="decoder model file (default: the bundled sample)")
    p.add_argument("--startup-timeout", type=float, default=120.0, metavar="S",
                   help="longest wait for a graph to start publishing (default 120)")
    p.add_argument("--variant", action="append", default=[], metavar="KEY=VALUE",
                   help="also run each runner with this environment variable set (repeatable; e.g. "
                        "SPIKELOOP_POLL_YIELD=0: the inlet's poll does not yield the CPU)")
    p.add_argument("--pull-cost", action="store_true",
                   help="only measure the CPU cost of one LSL pull: pylsl's pull_chunk vs the inlet's direct "
                        "liblsl call (in this process, 20,000 pulls; seconds)")
    p.add_argument("--node-cost", action="store_true",
                   help="only measure the CPU cost of one live sample's parts: the Bessel + decoder process(), the "
                        "inlet's health update, schedule learning and copies; back to back vs. one every 4 ms "
                        "(cold caches); in this process, seconds")
    p.add_argument("--keep", metavar="DIR", help="keep the probe files (npz) in this directory")
    p.add_argument("--replay-probe", metavar="DIR",
                   help="only replay the arrivals recorded in DIR's probe files (best from a --wait spin run kept "
                        "with --keep: every arrival then seen within a poll) through auto's two predictions, "
                        "the sender's schedule and last stamp + period: which samples each would catch while "
                        "polling, and the polling time; no graph is run, so the figures do not depend on the load")
    p.add_argument("--json", dest="json_path", metavar="PATH", help="also write the figures as JSON")


# --- reading probe files ----------------------------------------------------------------------------
def _pct(v: np.ndarray, q: float) -> float | None:
    return float(np.percentile(v, q)) if v.size else None


def _dist(v: np.ndarray, scale: float = 1.0) -> dict[str, float | None]:
    v = np.asarray(v, dtype=np.float64) * scale
    return {"p50": _pct(v, 50), "p99": _pct(v, 99), "mean": float(v.mean()) if v.size else None}


def summarize_probe(path: Path, skip_s: float = 1.0) -> dict[str, Any]:
    """Per-stage CPU and wall figures of one probe file (rows of the first ``skip_s`` s left out)."""
    z = np.load(path, allow_pickle=False)
    meta = json.loads(str(z["meta"]))
    stamp, t_wake, t_out = z["stamp"], z["t_wake"], z["t_out"]
    keep = np.ones(stamp.size, dtype=bool)
    if stamp.size:
        keep &= stamp >= stamp[0] + skip_s
    keep &= (t_out > 0) & (t_wake > 0)
    nodes = meta["nodes"]
    node_cpu, node_wall = z["node_cpu_ns"][keep], z["node_wall_ns"][keep]
    read_cpu, pull_cpu, wait_cpu = z["read_cpu_ns"][keep], z["pull_cpu_ns"][keep], z["wait_cpu_ns"][keep]
    step_cpu, step_wall, gc_ns = z["step_cpu_ns"][keep], z["step_wall_ns"][keep], z["gc_ns"][keep]
    processed = node_cpu.sum(axis=1) if node_cpu.size else np.zeros(int(keep.sum()), dtype=np.int64)
    stages_cpu = {"inlet: pull that returned the data": pull_cpu,
                  "inlet: pulls that found nothing (waiting)": wait_cpu,
                  "inlet: rest of read (wait loop, prewarm, copy, packet, the last packet's health)": read_cpu - pull_cpu - wait_cpu}
    for k, name in enumerate(nodes):
        if np.any(node_cpu[:, k]):
            stages_cpu[f"node {name}: process"] = node_cpu[:, k]
    stages_cpu["runner bookkeeping (step - read - nodes)"] = step_cpu - read_cpu - processed
    stages_cpu["whole step"] = step_cpu
    phase = z["phase"][keep]
    wake = (t_wake[keep] - stamp[keep])
    graph = (t_out[keep] - t_wake[keep])
    total = (t_out[keep] - stamp[keep])
    out: dict[str, Any] = {
        "group": meta["group"], "rows": int(keep.sum()), "rows_dropped": meta["rows_dropped"],
        "samples": int(z["n"][keep].sum()),
        "cpu_us": {k: _dist(v, 1e-3) for k, v in stages_cpu.items()},
        "wall_us": {"wake (stamp -> pull returned)": _dist(wake, 1e6), "graph (pull returned -> pushed)": _dist(graph, 1e6),
                    "in-graph total (stamp -> pushed)": _dist(total, 1e6), "step wall": _dist(step_wall, 1e-3)},
        "phase_share": {name: float(np.mean(phase == k)) if phase.size else None
                        for k, name in enumerate(("buffered", "block", "poll"))},
        "wake_us_by_phase": {name: _dist(wake[phase == k], 1e6) for k, name in enumerate(("buffered", "block", "poll"))
                             if np.any(phase == k)},
        "thread_cpu_pct": 100.0 * meta["thread_cpu_ns"] / meta["wall_ns"] if meta["wall_ns"] else None,
        "idle_cpu_pct": 100.0 * meta["idle_cpu_ns"] / meta["wall_ns"] if meta["wall_ns"] else None,
        "steps": meta["steps"], "idle_steps": meta["idle_steps"],
        "gc": {"collections": meta["gcs"], "frozen_objects": meta["gc_frozen"],
               "by_generation": {int(g): int(np.sum(z["gc_log_gen"] == g)) for g in np.unique(z["gc_log_gen"])},
               "us": _dist(z["gc_log_ns"], 1e-3), "max_us": float(z["gc_log_ns"].max() / 1e3) if z["gc_log_ns"].size else None,
               "rows_with_gc": int(np.sum(gc_ns > 0))},
    }
    t_due = z["t_due"][keep] if "t_due" in z.files else np.zeros(int(keep.sum()))
    has_due = t_due > 0
    due_err = (t_wake[keep] - t_due)
    out["predicted_share"] = float(np.mean(has_due)) if has_due.size else None
    out["due_error_us_by_phase"] = {  # pull returned - predicted arrival, for reads that predicted one
        name: _dist(due_err[has_due & (phase == k)], 1e6) for k, name in enumerate(("buffered", "block", "poll"))
        if np.any(has_due & (phase == k))}
    if total.size:
        tail = total >= np.percentile(total, 99)
        out["tail_p99"] = {  # what the slowest 1 % of samples have in common
            "rows": int(tail.sum()), "wake_us_p50": _pct(wake[tail] * 1e6, 50), "graph_us_p50": _pct(graph[tail] * 1e6, 50),
            "step_cpu_us_p50": _pct(step_cpu[tail] * 1e-3, 50), "with_gc": int(np.sum(gc_ns[tail] > 0)),
            "due_error_us_p50": _pct(due_err[tail & has_due] * 1e6, 50), "predicted": int(np.sum(tail & has_due)),
            "phase_share": {name: float(np.mean(phase[tail] == k)) for k, name in enumerate(("buffered", "block", "poll"))}}
    return out


# --- perf ------------------------------------------------------------------------------------------
def perf_available() -> bool:
    """True if ``perf stat -e instructions:u`` counts on this machine (a VM may have no PMU)."""
    if shutil.which("perf") is None:
        return False
    try:
        done = subprocess.run(["perf", "stat", "-x,", "-e", "instructions:u", "true"], capture_output=True,
                              text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and "<not supported>" not in done.stderr and "<not counted>" not in done.stderr


# --- the run ---------------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> int:
    from pipeline.errors import UserError

    if args.duration <= 0 or args.repeats < 1:
        raise UserError("bench latency-path: --duration must be > 0 s and --repeats >= 1")
    if not Path(args.model).exists():
        raise UserError(f"bench latency-path: model file not found: {args.model}")
    if args.replay_probe:
        files = sorted(Path(args.replay_probe).rglob("probe_*.npz"))
        if not files:
            raise UserError(f"bench latency-path: no probe_*.npz under {args.replay_probe}")
        found = {}
        for f in files:
            for rule, r in replay_predictions(f, args.rate).items():
                found.setdefault(rule, []).append(r)
                print(f"{f.parent.name}/{f.name}, {rule}: {r['samples']} samples; caught while polling "
                      f"{100 * r['caught']:.1f} %, before the window (found by a block) {100 * r['early']:.1f} %, "
                      f"after it (found by a block) {100 * r['late']:.1f} %, buffered {100 * r['buffered']:.1f} %; "
                      f"polling {r['poll_ms_per_s']:.1f} ms per s")
        if args.json_path:
            Path(args.json_path).write_text(json.dumps({"benchmark": "latency-path --replay-probe", "date": time.strftime(
                "%Y-%m-%d %H:%M:%S %Z"), "files": [str(f) for f in files], "replay": found}, indent=2) + "\n")
        return 0
    if args.pull_cost:
        costs = pull_cost()
        for label, c in costs.items():
            print(f"{label}: empty pull {c['empty_p50_us']:.2f} µs p50 / {c['empty_p99_us']:.2f} p99; "
                  f"one-sample pull {c['one_p50_us']:.2f} / {c['one_p99_us']:.2f} (CPU µs)")
        if args.json_path:
            Path(args.json_path).write_text(json.dumps({"benchmark": "latency-path --pull-cost", "date": time.strftime(
                "%Y-%m-%d %H:%M:%S %Z"), "load_1min": os.getloadavg()[0], "pull_cpu_us": costs}, indent=2) + "\n")
        return 0
    if args.node_cost:
        costs = node_cost(args.model)
        for what, by_label in costs.items():
            for label, c in by_label.items():
                print(f"{what}, {label}: {c['p50_us']:.1f} µs p50 / {c['p99_us']:.1f} p99 (CPU)")
        if args.json_path:
            Path(args.json_path).write_text(json.dumps({"benchmark": "latency-path --node-cost", "date": time.strftime(
                "%Y-%m-%d %H:%M:%S %Z"), "load_1min": os.getloadavg()[0], "cpu_us": costs}, indent=2) + "\n")
        return 0
    runners = args.runner or list(RUNNERS)
    variants = [("freeze", {})] + ([("no freeze", {"SPIKELOOP_GC_FREEZE": "0"})] if args.no_gc_freeze else [])
    for item in args.variant:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"bench latency-path: --variant takes KEY=VALUE, got {item!r}")
        variants.append((item, {key: value}))
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="spikeloop_path_") as tmp:
        root = Path(tmp)
        model = model_for_rate(args.model, args.rate, root)
        for rep in range(args.repeats):
            for runner in runners:
                for variant, extra in variants:
                    label = f"{runner}, {args.wait}" + {"freeze": "", "no freeze": ", no gc freeze"}.get(variant, f", {variant}")
                    print(f"[run {rep + 1}/{args.repeats}] {args.rate:g} Hz, {label} ...", flush=True)
                    work = root / f"r{rep}_{runner}_{len(results)}"
                    probe_dir = work / "probe"
                    env = {"SPIKELOOP_PROBE": str(probe_dir), **extra}
                    row = run_graph(work, runner, True, args.wait, args.rate, args.duration, model,
                                    args.startup_timeout, None, 1000 + rep, env=env, threads=True)
                    files = sorted(probe_dir.glob("probe_*.npz"))
                    row.pop("latencies_ms", None)
                    entry = {"runner": runner, "variant": variant, "repeat": rep, "path": label,
                             "load_1min": row.get("load_1min"), "outside": {k: row.get(k) for k in (
                                 "p50_ms", "p99_ms", "max_ms", "lost", "samples", "cpu_pct", "cpu_busiest_pct", "push_err_p50_ms",
                                 "push_err_p99_ms")},
                             "threads_top": row.get("threads_top", []), "error": row.get("error"),
                             "probe": [summarize_probe(f) for f in files]}
                    if not files and not entry["error"]:
                        entry["error"] = f"no probe file written (graph log: {work / 'graph.log'})"
                    if args.keep:
                        dest = Path(args.keep) / work.name
                        dest.mkdir(parents=True, exist_ok=True)
                        for f in files:
                            shutil.copy(f, dest / f.name)
                    results.append(entry)
    _print(results, args)
    if args.json_path:
        out = Path(args.json_path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"benchmark": "latency-path", "rate_hz": args.rate, "wait": args.wait,
                                   "duration_s": args.duration, "cpu_count": os.cpu_count(),
                                   "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "runs": results}, indent=2) + "\n")
        print(f"results written to {args.json_path}")
    return 0 if all(not r["error"] for r in results) else 1


def _f(v: float | None, d: int = 1) -> str:
    return "-" if v is None else f"{v:.{d}f}"


def _print(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    from rich.table import Table

    from pipeline.console import console

    out = console()
    for r in results:
        head = (f"{r['path']} (run {r['repeat'] + 1}; load {_f(r['load_1min'], 2)}): outside p50/p99 "
                f"{_f(r['outside']['p50_ms'], 3)} / {_f(r['outside']['p99_ms'], 3)} ms, lost "
                f"{r['outside']['lost']}/{r['outside']['samples']}, CPU {_f(r['outside']['cpu_pct'], 0)} %, "
                f"pusher schedule error p50/p99 {_f(r['outside']['push_err_p50_ms'], 3)} / "
                f"{_f(r['outside']['push_err_p99_ms'], 3)} ms")
        if r["error"]:
            out.print(f"{head}\n  error: {r['error']}")
            continue
        for p in r["probe"]:
            t = Table(title=f"{head}\ngroup {p['group']}: {p['rows']} samples probed; stepping thread "
                            f"{_f(p['thread_cpu_pct'])} % of a core ({_f(p['idle_cpu_pct'])} % waiting)",
                      title_justify="left")
            for col in ("stage", "CPU µs p50", "CPU µs p99", "CPU µs mean"):
                t.add_column(col, justify="left" if col == "stage" else "right")
            for stage, d in p["cpu_us"].items():
                t.add_row(stage, _f(d["p50"]), _f(d["p99"]), _f(d["mean"]))
            for stage, d in p["wall_us"].items():
                t.add_row(f"[dim]wall: {stage}[/dim]", _f(d["p50"]), _f(d["p99"]), _f(d["mean"]))
            out.print(t)
            shares = ", ".join(f"{k} {100 * v:.0f} %" for k, v in p["phase_share"].items() if v)
            wake = ", ".join(f"{k} {_f(d['p50'])}/{_f(d['p99'])}" for k, d in p["wake_us_by_phase"].items())
            g = p["gc"]
            out.print(f"  data found: {shares}; wake p50/p99 µs by how: {wake}")
            if p.get("predicted_share") is not None:
                errs = ", ".join(f"{k} {_f(d['p50'])}/{_f(d['p99'])}" for k, d in p["due_error_us_by_phase"].items())
                out.print(f"  reads with a predicted arrival: {100 * p['predicted_share']:.0f} %; pull returned - "
                          f"predicted, p50/p99 µs by how: {errs}")
            out.print(f"  gc: {g['collections']} collections {g['by_generation']}, p50 {_f(g['us']['p50'])} µs, "
                      f"max {_f(g['max_us'])} µs; frozen objects {g['frozen_objects']}; samples whose step "
                      f"had a collection: {g['rows_with_gc']}")
            if "tail_p99" in p:
                tl = p["tail_p99"]
                out.print(f"  slowest 1 % ({tl['rows']} samples): wake p50 {_f(tl['wake_us_p50'])} µs, graph p50 "
                          f"{_f(tl['graph_us_p50'])} µs, step CPU p50 {_f(tl['step_cpu_us_p50'])} µs, with a gc "
                          f"{tl['with_gc']}, predicted {tl['predicted']} (pull returned - predicted p50 "
                          f"{_f(tl['due_error_us_p50'])} µs), found by " + ", ".join(f"{k} {100 * v:.0f} %" for k, v in
                                                                    tl["phase_share"].items() if v))
        if r["threads_top"]:
            out.print("  busiest threads (% of a core): " + "; ".join(
                f"{t['thread']} {t['cpu_pct']:.1f}" for t in r["threads_top"][:6]))


# --- auto's predictions replayed on recorded arrivals --------------------------------------------------
def replay_predictions(path: Path, rate: float, step_s: float | None = None, guard_s: float = 0.0003,
                       window_s: float = 0.001) -> dict[str, dict[str, float]]:
    """Replay one probe file's arrivals (``stamp``, ``t_wake``) through ``wait: auto``'s predictions.

    For each sample the inlet is taken to be ready to wait once the previous one has been processed
    (its arrival + ``step_s``, default: the file's median ``t_out - t_wake``). Arriving before that:
    *buffered*. Else, with the prediction ``due`` made as the inlet makes it (same code,
    :class:`~nodes.sources.lsl_wait.InletWait`): arriving before ``due - guard_s`` is *early* (a
    blocking pull finds it), up to ``due + window_s`` *caught* by polling, after that *late* (a
    blocking pull finds it). Polling time per sample is from ``max(ready, due - guard_s)`` to the
    arrival or the window's end. Returns per rule (``schedule``, ``last``) the shares and the
    polling milliseconds per second of stream.
    """
    from nodes.sources.lsl_wait import InletWait

    z = np.load(path, allow_pickle=False)
    keep = (z["t_wake"] > 0) & (z["n"] == 1)
    stamp, arrival = z["stamp"][keep], z["t_wake"][keep]
    if step_s is None:
        graph = (z["t_out"] - z["t_wake"])[keep & (z["t_out"] > 0)]
        step_s = float(np.median(graph)) if graph.size else 0.0003
    out: dict[str, dict[str, float]] = {}
    for rule in ("schedule", "last"):
        w = InletWait("auto", 0.005, rate, guard_s=guard_s, spin_window_s=window_s)
        w.by_schedule = rule == "schedule"
        counts = {"caught": 0, "early": 0, "late": 0, "buffered": 0, "unpredicted": 0}
        poll_s = 0.0
        for i in range(stamp.size):
            one = float(stamp[i])
            if i == 0:
                w._note(one, 1, None)
                continue
            ready = arrival[i - 1] + step_s
            if arrival[i] <= ready:
                counts["buffered"] += 1
                w._note(one, 1, None)
                continue
            due = w._predict(float(stamp[i - 1]))
            if due is None:
                counts["unpredicted"] += 1
            else:
                start = max(ready, due - guard_s)
                if arrival[i] < due - guard_s:
                    counts["early"] += 1
                elif arrival[i] <= due + window_s:
                    counts["caught"] += 1
                    poll_s += arrival[i] - start
                else:
                    counts["late"] += 1
                    poll_s += max(0.0, due + window_s - start)
            w._note(one, 1, float(arrival[i]))
        total = max(1, stamp.size - 1)
        span = float(stamp[-1] - stamp[0]) if stamp.size > 1 else 1.0
        out[rule] = {"samples": int(total), **{k: v / total for k, v in counts.items()},
                     "poll_ms_per_s": 1e3 * poll_s / span, "step_s": step_s}
    return out


# --- the pull alone -----------------------------------------------------------------------------------
def pull_cost(pulls: int = 20_000, channels: int = 96) -> dict[str, dict[str, float]]:
    """CPU µs per pull (median and p99 over ``pulls``) of pylsl's ``pull_chunk`` and of
    :class:`~nodes.sources.lsl_pull.ChunkPuller`, on a loopback outlet in this process.

    Two cases each: an *empty* zero-timeout pull (what a polling wait repeats) and a pull that
    returns one sample (an outlet pushed it just before; the waiting pull asks for one sample with
    a timeout, then drains). CPU time (``time.thread_time_ns``), so the figures hardly move with the
    machine's load.
    """
    import pylsl

    from nodes.sources.lsl_pull import ChunkPuller

    name = f"pullcost_{os.getpid()}_{time.monotonic_ns()}"
    outlet = pylsl.StreamOutlet(pylsl.StreamInfo(name, "Bench", channels, 1000.0, "float32", name))
    found = pylsl.resolve_byprop("name", name, 1, 10.0)
    if not found:
        raise RuntimeError(f"pull cost: own outlet {name!r} not found on loopback")
    inlet = pylsl.StreamInlet(found[0], max_buflen=10, processing_flags=0)
    inlet.open_stream(10.0)
    outlet.push_sample(np.zeros(channels, dtype=np.float32))
    inlet.pull_chunk(timeout=2.0, max_samples=1024, min_samples=1)  # connected and flowing
    buf = np.empty((1024, channels), dtype=np.float32)
    puller = ChunkPuller(inlet, channels, np.float32, 1024)
    sample = np.arange(channels, dtype=np.float32)
    ways = {
        "pylsl pull_chunk(dest_obj)": lambda timeout: inlet.pull_chunk(
            timeout=timeout, max_samples=1024, dest_obj=buf, as_numpy=True, **({"min_samples": 1} if timeout else {})),
        "direct liblsl (ChunkPuller)": puller.pull,
    }
    out: dict[str, dict[str, float]] = {}
    for label, pull in ways.items():
        empty = np.empty(pulls, dtype=np.int64)
        one = np.empty(pulls // 10, dtype=np.int64)
        for i in range(pulls):
            c0 = time.thread_time_ns()
            pull(0.0)
            empty[i] = time.thread_time_ns() - c0
        for i in range(one.size):
            outlet.push_sample(sample)
            deadline = time.monotonic() + 1.0
            while not inlet.samples_available() and time.monotonic() < deadline:
                pass
            c0 = time.thread_time_ns()
            _, stamps = pull(0.5)
            one[i] = time.thread_time_ns() - c0
            if len(stamps) != 1:
                raise RuntimeError(f"pull cost: {label} returned {len(stamps)} samples, expected 1")
        out[label] = {"empty_p50_us": float(np.median(empty)) / 1e3, "empty_p99_us": float(np.percentile(empty, 99)) / 1e3,
                      "one_p50_us": float(np.median(one)) / 1e3, "one_p99_us": float(np.percentile(one, 99)) / 1e3}
    inlet.close_stream()  # before the outlet goes (liblsl would log a broken transmission)
    del inlet
    return out


# --- the nodes alone, warm and cold -----------------------------------------------------------------
def node_cost(model: str, calls: int = 400, gap_s: float = 0.004) -> dict[str, dict[str, dict[str, float]]]:
    """CPU µs (p50 / p99) of what a live 96-channel sample costs, one sample at a time: the
    benchmark's Bessel and decoder ``process``, and the inlet's per-packet bookkeeping (its stream
    health update, its wait's schedule learning, the two copies out of the pull buffers). Each
    back to back (warm caches), after a ``gap_s`` sleep, and after ``gap_s`` of spinning in another
    loop (what the graph does between two 250 Hz samples). Nodes opened as in the graph."""
    from nodes.decoders.node import Decoder
    from nodes.filters.bessel import BesselFilter
    from nodes.sources.lsl_health import TimestampHealth
    from nodes.sources.lsl_schedule import SenderSchedule
    from pipeline.packet import Packet, StreamInfo

    info = StreamInfo(name="bench", type="SpikeCounts", channel_count=96, nominal_rate=250.0, dtype="float32")
    bessel = BesselFilter(order=4, cutoff_hz=6.25, mode="causal")
    decoder = Decoder(model=model)
    decoder.open({"in": bessel.open({"in": info})["out"]})
    health, schedule = TimestampHealth(250.0), SenderSchedule(250.0)
    rng = np.random.default_rng(0)
    xs = rng.poisson(0.08, (calls, 1, 96)).astype(np.float32)
    buf, tbuf = np.zeros((16, 96), dtype=np.float32), np.zeros(16)
    t = [1000.0]

    def nodes(i: int) -> None:
        decoder.process("in", bessel.process("in", Packet(xs[i], np.array([1.0]), 0.0))["out"])

    def health_update(i: int) -> None:
        t[0] += 0.004
        health.update(np.array([t[0]]), time.monotonic())

    def schedule_note(i: int) -> None:
        t[0] += 0.004
        schedule.note(t[0], 1, t[0] + 0.0001)

    def copies(i: int) -> None:
        np.array(buf[:1], copy=True), np.array(tbuf[:1], dtype=np.float64, copy=True)

    def spin(s: float) -> None:
        end = time.perf_counter() + s
        while time.perf_counter() < end:
            pass

    out: dict[str, dict[str, dict[str, float]]] = {}
    for what, one in (("Bessel + decoder process", nodes), ("inlet health update", health_update),
                      ("inlet schedule learning", schedule_note), ("inlet copies out of the pull buffers", copies)):
        out[what] = {}
        for label, between in (("back to back", lambda: None),
                               (f"after a {gap_s * 1e3:g} ms sleep", lambda: time.sleep(gap_s)),
                               (f"after {gap_s * 1e3:g} ms spinning elsewhere", lambda: spin(gap_s))):
            cpu = np.empty(calls, dtype=np.int64)
            for i in range(calls):
                between()
                c0 = time.thread_time_ns()
                one(i)
                cpu[i] = time.thread_time_ns() - c0
            out[what][label] = {"p50_us": float(np.median(cpu)) / 1e3, "p99_us": float(np.percentile(cpu, 99)) / 1e3}
    return out
