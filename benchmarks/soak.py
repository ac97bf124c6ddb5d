"""``spikeloop bench soak``: does a long session's memory stay flat? RSS over time, two graphs.

What is measured
    Two runs, one after the other, each for ``--minutes`` of wall time:

    * ``replay``: ``configs/replay_decode.yaml`` with ``replay.loop=true`` (the bundled recording
      replayed over and over at full speed, decoded, filtered and scored), the heaviest steady
      load: every packet goes through the run metrics and the scorer;
    * ``live``: a pusher in this process publishes 96-channel spike counts at 250 Hz on LSL, one
      sample per push; the graph ``LSL inlet -> Bessel -> SNN decoder -> LSL outlet`` reads it.

    Each graph runs as ``spikeloop run ... --json`` in a child process (the runner under test);
    this process samples the resident set size (RSS, psutil) of that process and all its
    descendants (Ray's workers too, with a Ray runner) every ``--interval`` seconds, takes a last
    sample after ``--minutes`` (counted from the child's start, so start-up is included) and then
    stops the child with SIGINT, as Ctrl-C would: shutdown is not in the samples. The RSS of each
    process at the end of warm-up and at the end is kept too (``rss_by_process_mb`` in JSON).

    Reported per run: RSS at the end of the warm-up (the first ``--warmup`` seconds, default
    the smaller of 60 s and a quarter of the run: imports, model loading and the first buffers
    fill then), at the end, the growth between them, the slope of a least-squares line through
    the samples after warm-up (MB per hour), the peak, and the samples the graph processed
    (from its own summary) with the growth per processed sample. With ``--plot`` a PNG shows
    RSS over time for both runs.

Example::

    spikeloop bench soak --minutes 10 --json soak.json --plot soak_rss.png
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CHANNELS = 96
REPLAY_CONFIG = REPO / "configs" / "replay_decode.yaml"
DEFAULT_MODEL = REPO / "models" / "snn_streaming_sample.npz"
PARTS = ("replay", "live")
EPILOG = """\
The replay part runs configs/replay_decode.yaml with replay.loop=true at full speed; the live part
pushes 96-channel samples at --rate Hz on LSL into LSL inlet -> Bessel -> SNN decoder -> LSL outlet.
RSS (process and children) is sampled every --interval s; growth and MB/hour exclude --warmup.

example:
  spikeloop bench soak --minutes 10 --json soak.json --plot soak_rss.png
  spikeloop bench soak --minutes 30 --part replay --runner ray
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--minutes", type=float, default=5.0, metavar="N",
                   help="wall minutes per run (default 5; the issue's target is 30 for the replay)")
    p.add_argument("--part", action="append", choices=PARTS, metavar="PART",
                   help="run only this part: replay or live (repeatable; default: both)")
    p.add_argument("--runner", choices=("local", "ray", "ray-compiled"), default="local",
                   help="runner of the graphs under test (default local)")
    p.add_argument("--interval", type=float, default=5.0, metavar="S", help="seconds between RSS samples (default 5)")
    p.add_argument("--warmup", type=float, metavar="S",
                   help="seconds excluded from growth and slope (default: min(60, a quarter of the run))")
    p.add_argument("--rate", type=float, default=250.0, metavar="HZ", help="live part: push rate (default 250 Hz)")
    p.add_argument("--model", default=str(DEFAULT_MODEL), help="live part: decoder model (default: the bundled sample)")
    p.add_argument("--startup-timeout", type=float, default=120.0, metavar="S",
                   help="seconds a run may take to write its summary and exit after SIGINT (default 120)")
    p.add_argument("--plot", metavar="PNG", help="write a plot of RSS over time (matplotlib PNG)")
    p.add_argument("--json", dest="json_path", metavar="PATH", help="also write the results as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


# --- RSS sampling ----------------------------------------------------------------------------------
def tree_rss(pid: int) -> int | None:
    """Resident set size (bytes) of process ``pid`` plus all its descendants; None once it is gone."""
    import psutil

    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return None
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total


def tree_rss_by_process(pid: int) -> dict[str, float]:
    """RSS (MB) of ``pid`` and each descendant, keyed ``"pid name"`` (to see which process grows)."""
    import psutil

    out: dict[str, float] = {}
    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return out
    for p in procs:
        try:
            out[f"{p.pid} {p.name()}"] = p.memory_info().rss / 1e6
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return out


def sample_until_exit(proc: subprocess.Popen, seconds: float, interval: float, grace_s: float,
                      bar: Callable[[float], None] | None = None,
                      breakdown_at: float | None = None) -> tuple[list[tuple[float, int]], str, dict[str, Any]]:
    """Sample ``proc``'s tree RSS every ``interval`` s for ``seconds``, then stop it with SIGINT.

    The last sample is taken just before the SIGINT, so shutdown (Ray tearing down, the summary
    being written) is not in the samples. The process then has ``grace_s`` to write its summary
    and exit before SIGKILL. Returns ``([(t_s since start, rss_bytes), ...], how it ended,
    {"start": per-process MB at breakdown_at s, "end": per-process MB at the last sample})``.
    """
    samples: list[tuple[float, int]] = []
    breakdown: dict[str, Any] = {}
    t0 = time.monotonic()
    ended = "exited before the end"
    next_t = t0
    while proc.poll() is None:
        now = time.monotonic()
        last = now - t0 >= seconds
        if now >= next_t or last:
            rss = tree_rss(proc.pid)
            if rss is not None and proc.poll() is None:
                samples.append((now - t0, rss))
                if breakdown_at is not None and "start" not in breakdown and now - t0 >= breakdown_at:
                    breakdown["start"] = tree_rss_by_process(proc.pid)
                if last:
                    breakdown["end"] = tree_rss_by_process(proc.pid)
            next_t += interval
            if bar is not None:
                bar(min(now - t0, seconds))
        if last:
            proc.send_signal(signal.SIGINT)
            ended = "stopped (SIGINT) at the end"
            try:
                proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                ended = "killed: no exit within the grace time after SIGINT"
            break
        time.sleep(min(0.1, max(0.0, next_t - time.monotonic())))
    return samples, ended, breakdown


def growth(samples: list[tuple[float, int]], warmup_s: float) -> dict[str, Any]:
    """RSS figures (MB = 1e6 bytes) of one run's samples, excluding the first ``warmup_s`` seconds."""
    if not samples:
        return {"rss_samples": 0}
    t = np.array([s[0] for s in samples])
    mb = np.array([s[1] for s in samples]) / 1e6
    after = t >= warmup_s
    if after.sum() < 2:
        after = np.ones_like(after)
    ta, ma = t[after], mb[after]
    slope = float(np.polyfit(ta, ma, 1)[0]) * 3600.0 if ta.size >= 2 and ta[-1] > ta[0] else None
    return {
        "rss_samples": int(t.size),
        "rss_first_mb": float(mb[0]),
        "rss_start_mb": float(ma[0]),
        "rss_end_mb": float(ma[-1]),
        "rss_peak_mb": float(mb.max()),
        "growth_mb": float(ma[-1] - ma[0]),
        "growth_mb_per_hour": slope,
        "measured_from_s": float(ta[0]),
        "measured_to_s": float(ta[-1]),
    }


# --- the two runs ----------------------------------------------------------------------------------
def run_graph(cmd: list[str], seconds: float, interval: float, grace_s: float, workdir: Path, label: str,
              progress: bool, warmup_s: float) -> dict[str, Any]:
    """Start ``spikeloop run`` (``cmd``) as a child, sample its RSS, stop it, read its JSON summary."""
    summary_path = workdir / f"summary_{label}.json"
    log = workdir / f"log_{label}.txt"
    cmd = cmd + ["--no-progress", "--json", str(summary_path)]
    bar = _bar(label, seconds, progress)
    with open(log, "w") as log_file:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=log_file, stderr=subprocess.STDOUT)
        try:
            samples, ended, breakdown = sample_until_exit(proc, seconds, interval, grace_s,
                                                          bar.update if bar else None, breakdown_at=warmup_s)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if bar:
                bar.close()
    result: dict[str, Any] = {"part": label, "command": " ".join(cmd[2:]), "returncode": proc.returncode,
                              "ended": ended, "samples": samples, "rss_by_process_mb": breakdown}
    if summary_path.exists():
        summary = json.loads(summary_path.read_text())
        result["wall_s"] = summary.get("wall_s")
        result["source_samples"] = summary.get("source_samples")
        result["stopped_by"] = summary.get("stopped_by")
        result["graph_counters"] = {n: s["counters"] for n, s in summary["nodes"].items() if s["counters"]}
        result["reports"] = summary.get("reports", {})
    else:
        result["error"] = f"the graph wrote no summary; log tail: {log.read_text()[-1500:]}"
    return result


def run_replay(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "pipeline", "run", str(REPLAY_CONFIG), "--runner", args.runner,
           "--set", "replay.loop=true"]
    return run_graph(cmd, args.minutes * 60.0, args.interval, args.startup_timeout, workdir, "replay",
                     not args.no_progress, args.warmup_s)


def _push_until(name: str, rate: float, stop: threading.Event, pushed: list[int]) -> None:
    """Push 96-channel Poisson counts on LSL stream ``name`` at ``rate`` Hz until ``stop``; count them."""
    import pylsl

    outlet = pylsl.StreamOutlet(pylsl.StreamInfo(name, "SpikeCounts", CHANNELS, rate, "float32", name))
    rng = np.random.default_rng(0)
    t0, i = pylsl.local_clock(), 0
    while not stop.is_set():
        delay = t0 + i / rate - pylsl.local_clock()
        if delay > 0:
            time.sleep(delay)
        outlet.push_sample(rng.poisson(0.08, CHANNELS).astype(np.float32))
        i += 1
        pushed[0] = i


def run_live(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    from benchmarks.latency import GRAPH  # the same live chain as the latency benchmark, fused

    tag = uuid.uuid4().hex[:8]
    in_name, out_name = f"soak_in_{tag}", f"soak_out_{tag}"
    config = workdir / "live.yaml"
    config.write_text(GRAPH.format(in_name=in_name, out_name=out_name, model=args.model, wait="auto",
                                   fuse="[[inlet, smooth, decoder, outlet]]"))
    stop = threading.Event()
    pushed = [0]
    thread = threading.Thread(target=_push_until, args=(in_name, args.rate, stop, pushed), daemon=True,
                              name="soak-pusher")
    thread.start()
    try:
        cmd = [sys.executable, "-m", "pipeline", "run", str(config), "--runner", args.runner]
        result = run_graph(cmd, args.minutes * 60.0, args.interval, args.startup_timeout, workdir, "live",
                           not args.no_progress, args.warmup_s)
    finally:
        stop.set()
        thread.join(5.0)
    result["pushed"] = int(pushed[0])
    result["rate_hz"] = args.rate
    return result


def _bar(label: str, seconds: float, progress: bool):
    if not progress or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    bar = tqdm(total=round(seconds), desc=f"soak {label}", unit="s", mininterval=1.0, leave=True)

    class _Bar:
        def update(self, t: float) -> None:
            bar.n = round(t)
            bar.refresh()

        def close(self) -> None:
            bar.close()

    return _Bar()


# --- report ----------------------------------------------------------------------------------------
def summarise(result: dict[str, Any], warmup_s: float) -> dict[str, Any]:
    out = dict(result)
    out.update(growth(result["samples"], warmup_s))
    n, wall = result.get("source_samples"), result.get("wall_s")
    if n and wall and out.get("growth_mb") is not None:
        span = out["measured_to_s"] - out["measured_from_s"]
        processed = n * min(1.0, span / wall)  # over the measured span, at the run's average rate
        out["samples_in_span"] = int(processed)
        out["growth_bytes_per_sample"] = out["growth_mb"] * 1e6 / processed if processed else None
    return out


def _print_table(rows: list[dict[str, Any]]) -> None:
    from rich.table import Table

    from pipeline.console import console

    table = Table(title="memory soak: RSS of the run process (and its children)", title_justify="left")
    for col in ("run", "minutes", "samples", "RSS start MB", "RSS end MB", "growth MB", "MB/hour", "peak MB",
                "B/sample", "RSS samples", "ended"):
        table.add_column(col, justify="left" if col in ("run", "ended") else "right")

    def f(v: Any, d: int = 1) -> str:
        return "-" if v is None else (f"{v:,.{d}f}" if isinstance(v, float) else f"{v:,}")

    for r in rows:
        if "error" in r and not r.get("rss_samples"):
            table.add_row(r["part"], "", "", "error", r["error"][:120], "", "", "", "", "", "")
            continue
        table.add_row(r["part"], f((r.get("wall_s") or 0) / 60, 2), f(r.get("source_samples")),
                      f(r.get("rss_start_mb")), f(r.get("rss_end_mb")), f(r.get("growth_mb"), 2),
                      f(r.get("growth_mb_per_hour"), 2), f(r.get("rss_peak_mb")),
                      f(r.get("growth_bytes_per_sample"), 3), f(r.get("rss_samples")), r.get("ended", ""))
    console().print(table)


def plot(rows: list[dict[str, Any]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.2), dpi=110)
    for r in rows:
        if r["samples"]:
            t = np.array([s[0] for s in r["samples"]]) / 60.0
            ax.plot(t, np.array([s[1] for s in r["samples"]]) / 1e6, label=r["part"])
    ax.set_xlabel("minutes")
    ax.set_ylabel("RSS (MB)")
    ax.set_title("spikeloop bench soak: RSS of the run process")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def run(args: argparse.Namespace) -> int:
    from pipeline.errors import UserError
    from pipeline.metrics import dumps_json

    if args.minutes <= 0:
        raise UserError(f"bench soak: --minutes must be > 0, got {args.minutes}")
    if args.interval <= 0:
        raise UserError(f"bench soak: --interval must be > 0 s, got {args.interval}")
    parts = args.part or list(PARTS)
    if "live" in parts and not Path(args.model).exists():
        raise UserError(f"bench soak: model file not found: {args.model}")
    seconds = args.minutes * 60.0
    warmup = args.warmup if args.warmup is not None else min(60.0, seconds / 4)
    args.warmup_s = warmup
    rows = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="spikeloop_soak_") as tmp:
        for part in parts:
            print(f"soak: {part} for {args.minutes:g} min on runner {args.runner} ...", file=sys.stderr, flush=True)
            result = (run_replay if part == "replay" else run_live)(args, Path(tmp))
            rows.append(summarise(result, warmup))
    _print_table(rows)
    if args.plot:
        plot(rows, args.plot)
        print(f"plot written to {args.plot}")
    if args.json_path:
        out = Path(args.json_path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(dumps_json({"benchmark": "soak", "minutes": args.minutes, "runner": args.runner,
                                   "warmup_s": warmup, "interval_s": args.interval, "cpu_count": os.cpu_count(),
                                   "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
                                   "rows": rows}) + "\n")
        print(f"results written to {args.json_path}")
    return 0 if all("error" not in r for r in rows) else 1
