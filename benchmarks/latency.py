"""``spikeloop bench latency``: end-to-end latency of a live LSL decoding graph, per runner.

What is measured
    A driver pushes 96-channel spike-count samples on an LSL outlet at the chosen rate (250 Hz,
    1 kHz), one sample per push, each stamped with ``local_clock()`` at the push. The graph

        LSL in -> Bessel (4th order, 6.25 Hz) -> SNN decoder (numpy kernel) -> LSL out

    runs in its own process(es) on each chosen runner, with the inlet, filter, decoder and outlet
    fused in one actor on the Ray runners (the data path stays in one process; ``--unfused`` adds
    rows with every node in its own actor). The graph's inlet either blocks in liblsl while waiting
    for data or busy-polls (``spin_s``, one core busy); ``--wait both`` (default) shows both. The driver reads the
    graph's output stream and, for every sample it pushed, takes the arrival time of the output
    sample carrying that sample's timestamp: latency = arrival - push. Samples pushed but never
    seen at the output are *lost*.

    Floors, measured in the same run with the same driver:

    * ``lsl hop``: outlet -> inlet in the driver, no graph (one LSL hop);
    * ``lsl relay``: a bare pylsl relay process (pull -> push, no graph): two LSL hops, the floor
      under any graph that reads and writes LSL.

    Reported per row: p50, p99 and max (ms), samples measured, samples lost, and how far the p50
    and p99 sit above the relay floor.

How the run goes
    For each rate: the floors, then every runner. A runner's graph is started as
    ``spikeloop run`` in a child process (so the driver's threads do not share its interpreter),
    warmed up until outputs flow, measured for ``--duration`` seconds, then stopped with Ctrl-C
    (SIGINT), which makes it print its summary (its per-node counters, e.g. the inlet's estimated
    lost samples, go into ``--json`` too). Each Ray run starts its own local Ray on loopback unless
    ``--address`` names a cluster.

The decoder is the bundled sample SNN_Streaming model (``--model``); for rates other than the
model's 250 Hz, a copy of the model that declares the benchmark rate is written to a temporary
directory (same weights: the timing is what matters here, not the decoded values).
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
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = REPO / "models" / "snn_streaming_sample.npz"
RUNNERS = ("local", "ray", "ray-compiled")
CHANNELS = 96


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--duration", type=float, default=10.0, metavar="S",
                   help="seconds measured per runner and rate (default 10; the issue's target run is 600)")
    p.add_argument("--floor-duration", type=float, metavar="S",
                   help="seconds measured for each LSL floor (default: --duration, at most 60)")
    p.add_argument("--runner", action="append", choices=RUNNERS, metavar="RUNNER",
                   help="runner to measure (repeatable; default: local, ray, ray-compiled)")
    p.add_argument("--rate", action="append", type=float, metavar="HZ",
                   help="sampling rate in Hz (repeatable; default: 250 and 1000)")
    p.add_argument("--wait", choices=("block", "spin", "both"), default="both",
                   help="how the graph's LSL inlet waits for data: block in liblsl (no CPU while idle), "
                        "spin (busy-poll, one core busy, lowest latency), or both side by side (default)")
    p.add_argument("--unfused", action="store_true",
                   help="also run the Ray runners with every node in its own actor (shows the cost of hops)")
    p.add_argument("--model", default=str(DEFAULT_MODEL), help="decoder model file (default: the bundled sample)")
    p.add_argument("--address", help="Ray cluster address to join (default: a local Ray per run, on loopback)")
    p.add_argument("--startup-timeout", type=float, default=120.0, metavar="S",
                   help="longest wait for a graph to start publishing (default 120 s)")
    p.add_argument("--json", dest="json_path", metavar="PATH", help="also write the results as JSON")


# --- the driver: paced pushes, arrivals on another thread ----------------------------------------
class Receiver(threading.Thread):
    """Pulls a stream and records ``timestamp -> arrival local_clock()`` for every sample."""

    def __init__(self, inlet: Any) -> None:
        super().__init__(daemon=True)
        self.inlet = inlet
        self.arrivals: dict[float, float] = {}
        self.first = threading.Event()
        self.stop_flag = threading.Event()

    def run(self) -> None:
        import pylsl

        while not self.stop_flag.is_set():
            _, stamps = self.inlet.pull_chunk(timeout=0.05, max_samples=4096, min_samples=1)
            if stamps:
                now = pylsl.local_clock()
                for ts in stamps:
                    self.arrivals.setdefault(ts, now)
                self.first.set()


def push_paced(outlet: Any, rate: float, seconds: float, rng: np.random.Generator,
               until: threading.Event | None = None) -> list[float]:
    """Push one sample every 1/rate s for ``seconds`` (or until ``until`` is set); return the stamps.

    Sleeps (never spins) between pushes, so the receiving thread gets the interpreter at once; the
    stamp is taken at the push, so sleep jitter does not enter the measured latency.
    """
    import pylsl

    stamps: list[float] = []
    n = int(round(seconds * rate))
    t0 = pylsl.local_clock()
    sample = np.zeros(CHANNELS, dtype=np.float32)
    for i in range(n):
        if until is not None and until.is_set():
            break
        delay = t0 + i / rate - pylsl.local_clock()
        if delay > 0:
            time.sleep(delay)
        sample[:] = rng.poisson(0.08, CHANNELS)
        ts = pylsl.local_clock()
        outlet.push_sample(sample, ts)
        stamps.append(ts)
    return stamps


def latency_stats(pushed: list[float], arrivals: dict[float, float]) -> dict[str, Any]:
    """p50/p99/max (ms), samples measured and lost, for ``pushed`` stamps."""
    lat = np.array([arrivals[t] - t for t in pushed if t in arrivals]) * 1e3
    out: dict[str, Any] = {"samples": len(pushed), "received": int(lat.size), "lost": len(pushed) - int(lat.size)}
    if lat.size:
        out.update(p50_ms=float(np.percentile(lat, 50)), p99_ms=float(np.percentile(lat, 99)),
                   max_ms=float(lat.max()), mean_ms=float(lat.mean()))
    return out


def _outlet(name: str, rate: float) -> Any:
    import pylsl

    from pipeline.lsl import to_lsl_info
    from pipeline.packet import StreamInfo

    info = StreamInfo(name, "SpikeCounts", CHANNELS, rate, "float32",
                      tuple(f"ch{k}" for k in range(CHANNELS)), ("counts",) * CHANNELS, source_id=name)
    return pylsl.StreamOutlet(to_lsl_info(info))


def _client(name: str, timeout: float) -> Any:
    import pylsl

    from pipeline.errors import UserError

    found = pylsl.resolve_byprop("name", name, 1, timeout)
    if not found:
        raise UserError(f"bench latency: stream {name!r} did not appear within {timeout:g} s")
    inlet = pylsl.StreamInlet(found[0], max_buflen=60, processing_flags=0)
    inlet.open_stream(timeout)
    return inlet


def measure(in_name: str, out_name: str, rate: float, duration: float, startup_timeout: float,
            outlet: Any, seed: int = 0) -> dict[str, Any]:
    """Warm up until outputs flow on ``out_name``, then measure ``duration`` seconds."""
    rng = np.random.default_rng(seed)
    receiver = Receiver(_client(out_name, startup_timeout))
    receiver.start()
    t_end = time.monotonic() + startup_timeout
    while not receiver.first.is_set() and time.monotonic() < t_end:
        push_paced(outlet, rate, 0.2, rng)
    if not receiver.first.is_set():
        receiver.stop_flag.set()
        return {"error": f"no output on {out_name!r} within {startup_timeout:g} s"}
    push_paced(outlet, rate, 0.5, rng)  # settle
    pushed = push_paced(outlet, rate, duration, rng)
    time.sleep(0.5)  # stragglers
    receiver.stop_flag.set()
    receiver.join(1.0)
    return latency_stats(pushed, receiver.arrivals)


# --- floors ----------------------------------------------------------------------------------------
def relay(in_name: str, out_name: str, max_block_s: float = 0.005) -> None:
    """A bare pylsl relay (pull -> push, stamps kept), run in a child process as the 2-hop floor."""
    import pylsl

    found = pylsl.resolve_byprop("name", in_name, 1, 30.0)
    inlet = pylsl.StreamInlet(found[0], max_buflen=60)
    full = inlet.info(10.0)
    outlet = pylsl.StreamOutlet(pylsl.StreamInfo(out_name, full.type(), full.channel_count(), full.nominal_srate(),
                                                 full.channel_format(), out_name))
    inlet.open_stream(10.0)
    buf = np.empty((1024, full.channel_count()), dtype=np.float32)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    while True:
        data, stamps = inlet.pull_chunk(timeout=max_block_s, max_samples=1024, dest_obj=buf, min_samples=1, as_numpy=True)
        n = len(stamps)
        if n == 1:
            outlet.push_chunk(np.array(data[:1]), float(stamps[0]))
        elif n:
            outlet.push_chunk(np.array(data[:n]), stamps.tolist())


def floor_hop(rate: float, duration: float, seed: int) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    name = f"bench_hop_{tag}"
    outlet = _outlet(name, rate)
    return measure(name, name, rate, duration, 10.0, outlet, seed)


def floor_relay(rate: float, duration: float, seed: int) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    in_name, out_name = f"bench_rin_{tag}", f"bench_rout_{tag}"
    outlet = _outlet(in_name, rate)
    proc = subprocess.Popen([sys.executable, "-c", f"from benchmarks.latency import relay; relay({in_name!r}, {out_name!r})"],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        return measure(in_name, out_name, rate, duration, 30.0, outlet, seed)
    finally:
        proc.kill()
        proc.wait()


# --- graphs ----------------------------------------------------------------------------------------
GRAPH = """
name: bench_latency
description: LSL in -> Bessel -> SNN decoder -> LSL out (spikeloop bench latency)
nodes:
  inlet:   {{kind: lsl_inlet, params: {{name: {in_name}, clock_sync: false, max_block_s: 0.005, spin_s: {spin_s}}}}}
  smooth:  {{kind: bessel, params: {{order: 4, cutoff_hz: 6.25, mode: causal}}}}
  decoder: {{kind: decoder, params: {{model: {model}}}}}
  outlet:  {{kind: lsl_outlet, params: {{name: {out_name}}}}}
edges:
  - inlet -> smooth -> decoder -> outlet
runtime:
  fuse: {fuse}
"""


def model_for_rate(model: str, rate: float, workdir: Path) -> str:
    """The model path, or a copy declaring ``rate`` Hz (same weights) when it differs."""
    from pipeline.modelfile import load_model, save_model

    arrays, meta = load_model(model)
    if abs(float(meta.get("rate_hz", rate)) - rate) < 1e-9:
        return model
    meta = dict(meta, rate_hz=rate, note=f"benchmark copy of {Path(model).name} declaring {rate:g} Hz")
    return str(save_model(workdir / f"model_{int(rate)}hz.npz", arrays, meta))


def run_graph(runner: str, fused: bool, rate: float, duration: float, model: str, workdir: Path,
              startup_timeout: float, address: str | None, seed: int, spin: bool = False) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    in_name, out_name = f"bench_in_{tag}", f"bench_out_{tag}"
    fuse = "[[inlet, smooth, decoder, outlet]]" if fused else "[]"
    config = workdir / f"graph_{tag}.yaml"
    config.write_text(GRAPH.format(in_name=in_name, out_name=out_name, model=model, fuse=fuse,
                                   spin_s=0.005 if spin else 0.0))
    summary_path = workdir / f"summary_{tag}.json"
    outlet = _outlet(in_name, rate)
    cmd = [sys.executable, "-m", "pipeline", "run", str(config), "--runner", runner, "--no-progress",
           "--json", str(summary_path)]
    if address:
        cmd += ["--address", address]
    log = workdir / f"log_{tag}.txt"
    with open(log, "w") as log_file:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=log_file, stderr=subprocess.STDOUT)
        try:
            result = measure(in_name, out_name, rate, duration, startup_timeout, outlet, seed)
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    if summary_path.exists():
        summary = json.loads(summary_path.read_text())
        result["graph_counters"] = {n: s["counters"] for n, s in summary["nodes"].items() if s["counters"]}
        result["graph_gaps"] = sum(s["gaps"] for s in summary["nodes"].values())
        result["node_proc_us_p50"] = {n: s["proc_us_p50"] for n, s in summary["nodes"].items()}
        result["graph_groups"] = summary.get("groups")
    elif "error" not in result:
        result["error"] = f"graph wrote no summary (log: {log})"
    if "error" in result:
        result["log_tail"] = log.read_text()[-2000:]
    return result


# --- report ----------------------------------------------------------------------------------------
def _print_table(rows: list[dict[str, Any]]) -> None:
    from pipeline.console import console
    from rich.table import Table

    table = Table(title="end-to-end latency: push -> arrival of the output carrying the sample's timestamp",
                  title_justify="left")
    for col in ("rate Hz", "path", "p50 ms", "p99 ms", "max ms", "samples", "lost", "p50 +relay", "p99 +relay"):
        table.add_column(col, justify="left" if col == "path" else "right")

    def f(v: Any, d: int = 3) -> str:
        return "-" if v is None else f"{v:.{d}f}"

    for r in rows:
        if "error" in r:
            table.add_row(f"{r['rate_hz']:g}", r["path"], "error", r["error"], "", "", "", "", "")
            continue
        table.add_row(f"{r['rate_hz']:g}", r["path"], f(r.get("p50_ms")), f(r.get("p99_ms")), f(r.get("max_ms")),
                      str(r["samples"]), str(r["lost"]), f(r.get("p50_over_floor_ms")), f(r.get("p99_over_floor_ms")))
    console().print(table)


def run(args: argparse.Namespace) -> int:
    from pipeline.errors import UserError

    runners = args.runner or list(RUNNERS)
    rates = args.rate or [250.0, 1000.0]
    if not Path(args.model).exists():
        raise UserError(f"bench latency: model file not found: {args.model} (train one with spikeloop train, or pass --model)")
    if args.duration <= 0:
        raise UserError(f"bench latency: --duration must be > 0 s, got {args.duration}")
    floor_s = args.floor_duration or min(args.duration, 60.0)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="spikeloop_bench_") as tmp:
        workdir = Path(tmp)
        for rate in rates:
            model = model_for_rate(args.model, rate, workdir)
            plan: list[tuple[str, Any]] = [
                ("lsl hop (1 hop)", lambda: floor_hop(rate, floor_s, 1)),
                ("lsl relay (2 hops)", lambda: floor_relay(rate, floor_s, 2)),
            ]
            waits = ["block", "spin"] if args.wait == "both" else [args.wait]
            for runner in runners:
                variants = [True, False] if args.unfused and runner != "local" else [True]
                for fused in variants:
                    for wait in waits:
                        label = runner + ("" if runner == "local" else (" fused" if fused else " unfused")) + f", {wait}"
                        plan.append((label, lambda runner=runner, fused=fused, wait=wait: run_graph(
                            runner, fused, rate, args.duration, model, workdir, args.startup_timeout, args.address, 3,
                            spin=wait == "spin")))
            floor = None
            for label, fn in plan:
                print(f"[{rate:g} Hz] {label} ...", file=sys.stderr, flush=True)
                result = dict(fn(), rate_hz=rate, path=label)
                if label.startswith("lsl relay") and "p50_ms" in result:
                    floor = result
                if floor is not None and "p50_ms" in result and result is not floor and not label.startswith("lsl"):
                    result["p50_over_floor_ms"] = result["p50_ms"] - floor["p50_ms"]
                    result["p99_over_floor_ms"] = result["p99_ms"] - floor["p99_ms"]
                rows.append(result)
    _print_table(rows)
    if args.json_path:
        out = Path(args.json_path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"benchmark": "latency", "channels": CHANNELS, "duration_s": args.duration,
                                   "cpu_count": os.cpu_count(), "rows": rows}, indent=2) + "\n")
        print(f"results written to {args.json_path}")
    return 0 if all("error" not in r for r in rows) else 1
