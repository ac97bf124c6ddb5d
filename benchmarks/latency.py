"""``spikeloop bench latency``: live latency of LSL in → Bessel → SNN decoder → LSL out, per runner.

What is measured (as an outside client sees it)
    A *pusher* process pushes 96-channel spike-count samples on an LSL outlet on a fixed schedule
    (250 Hz, 1 kHz), one sample per push, stamped with ``local_clock()`` at the push. The graph

        LSL in -> Bessel (4th order, 6.25 Hz) -> SNN decoder (numpy kernel) -> LSL out

    runs as ``spikeloop run`` in its own process(es) on each chosen runner (inlet, filter, decoder
    and outlet fused in one actor on the Ray runners). A *receiver* process reads the graph's output
    and records each output sample's arrival time. The graph keeps its inputs' timestamps, so each
    output is matched to the exact input that produced it by timestamp: latency = arrival − push
    stamp. Inputs never seen at the output are *lost*. Pusher and receiver are processes of their
    own (see :mod:`benchmarks.latency_clients`): a driver that pushes and pulls in one interpreter
    shares one GIL and inflates the floor.

    Floors, in the same run with the same clients: ``lsl hop`` (pusher → receiver, no graph) and
    ``lsl relay`` (a bare pylsl relay process: two hops, the floor under any graph that reads and
    writes LSL). ``--events`` adds a row where the pusher sends spike *events* (channel, unit;
    96 channels at 20 Hz each) and the graph bins them (``event_binner``, 4 ms, 2 ms lateness)
    before the filter and decoder; its latency is from the end of each bin to the arrival of the
    decoded sample carrying that bin's timestamp (lost = bins never seen).

How the run goes
    Rows are *interleaved and repeated*: repetition 1 runs every row once (floors first), then
    repetition 2, and so on (``--repeats``, default 3), so slow drifts in the machine's load hit
    every row alike. Per row and repetition: p50/p99/max, lost, the pusher's schedule error (push
    stamp − scheduled time), the CPU used by the graph's processes during the measured window (% of
    one core, all processes of the run, Ray's own included; and the busiest single process), and the
    machine's 1-minute load average. The table shows, per row, the median over repetitions and the
    spread (min–max), the pooled p50/p99 over all repetitions, and how far the p50 sits above the
    bare hop measured in the same repetition. ``--load N`` runs N busy processes for the whole
    benchmark, so the rows show behaviour on a busy machine.

The decoder is the bundled sample SNN_Streaming model (``--model``); for rates other than the
model's 250 Hz, a copy that declares the benchmark rate is written to a temporary directory (same
weights: the timing is what matters here).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = REPO / "models" / "snn_streaming_sample.npz"
RUNNERS = ("local", "ray", "ray-compiled")
WAITS = ("auto", "block", "spin")
CHANNELS = 96
BIN_S = 0.004


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    p.epilog = ("example: spikeloop bench latency --wait auto --rate 250 --repeats 3 --duration 20 "
                "--json out/latency.json   (add --load 2 for a busy machine, --events for spike events)")
    p.add_argument("--duration", type=float, default=20.0, metavar="S",
                   help="seconds measured per row and repetition (the 10-minute zero-loss check: 600)")
    p.add_argument("--repeats", type=int, default=3, metavar="N",
                   help="repetitions; rows are interleaved within each repetition")
    p.add_argument("--runner", action="append", choices=RUNNERS, metavar="RUNNER",
                   help="runner to measure, repeatable (default: local, ray, ray-compiled)")
    p.add_argument("--rate", action="append", type=float, metavar="HZ",
                   help="sampling rate in Hz, repeatable (default: 250)")
    p.add_argument("--wait", choices=(*WAITS, "all"), default="auto",
                   help="how the graph's LSL inlet waits: auto (predict the next sample, poll briefly "
                        "around it), block (wait in liblsl), spin (busy-poll, one core), or all three")
    p.add_argument("--events", action="store_true",
                   help="add a row per runner with spike events binned by event_binner (at 250 Hz bins)")
    p.add_argument("--load", type=int, default=0, metavar="N",
                   help="busy background processes running during the whole benchmark")
    p.add_argument("--unfused", action="store_true",
                   help="also run the Ray runners with every node in its own actor (the cost of hops)")
    p.add_argument("--variant", action="append", default=[], metavar="KEY=VALUE",
                   help="also run every graph row with this environment variable set, interleaved with the "
                        "default rows (repeatable; e.g. SPIKELOOP_AUTO_PREDICT=last: auto's rule before the "
                        "sender-schedule prediction)")
    p.add_argument("--model", default=str(DEFAULT_MODEL), help="decoder model file")
    p.add_argument("--address", help="Ray cluster address to join (default: a local Ray per run, on loopback)")
    p.add_argument("--startup-timeout", type=float, default=120.0, metavar="S",
                   help="longest wait for a graph to start publishing")
    p.add_argument("--json", dest="json_path", metavar="PATH", help="also write every row and repetition as JSON")


# --- processes ---------------------------------------------------------------------------------------
def _client(role: str, workdir: Path, *args: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "benchmarks.latency_clients", role, "--workdir", str(workdir), *args]
    return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=open(workdir / f"{role}.log", "w"))


def _stop(proc: subprocess.Popen | None, sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


class CpuMeter:
    """CPU seconds used by processes and all their descendants (Ray workers included), via psutil.

    ``pid``: the root process; ``more``: further roots measured together with it (their trees too).
    ``threads``: also attribute the CPU to each thread (``threads_top`` in :meth:`end`: the
    busiest threads, named by process and thread name, e.g. ``ray::CompiledGroupActor / python``).
    """

    def __init__(self, pid: int, *more: int, threads: bool = False) -> None:
        import psutil

        self.roots = [psutil.Process(p) for p in (pid, *more)]
        self.start: dict[int, float] = {}
        self.t0 = 0.0
        self.threads = threads
        self.start_threads: dict[tuple[int, int], float] = {}
        self.names: dict[tuple[int, int], str] = {}

    def _procs(self) -> list:
        import psutil

        procs = []
        for root in self.roots:
            try:
                procs += [root, *root.children(recursive=True)]
            except psutil.Error:
                continue
        return list({p.pid: p for p in procs}.values())

    def _snapshot(self) -> dict[int, float]:
        import psutil

        out: dict[int, float] = {}
        for proc in self._procs():
            try:
                t = proc.cpu_times()
                out[proc.pid] = t.user + t.system
            except psutil.Error:
                continue
        return out

    def _thread_snapshot(self) -> dict[tuple[int, int], float]:
        """CPU seconds per (pid, thread id); thread names from /proc (Linux)."""
        import psutil

        out: dict[tuple[int, int], float] = {}
        for proc in self._procs():
            try:
                label = _proc_label(proc)
                for th in proc.threads():
                    key = (proc.pid, th.id)
                    out[key] = th.user_time + th.system_time
                    if key not in self.names:
                        try:
                            comm = Path(f"/proc/{proc.pid}/task/{th.id}/comm").read_text().strip()
                        except OSError:
                            comm = "?"
                        self.names[key] = f"{label} / {comm}"
            except psutil.Error:
                continue
        return out

    def begin(self) -> None:
        self.start, self.t0 = self._snapshot(), time.monotonic()
        if self.threads:
            self.start_threads = self._thread_snapshot()

    def end(self) -> dict[str, Any]:
        now, wall = self._snapshot(), time.monotonic() - self.t0
        threads_now = self._thread_snapshot() if self.threads else {}
        used = {pid: now[pid] - self.start.get(pid, 0.0) for pid in now}
        self.used, self.wall = used, wall  # CPU seconds per pid over the window, for callers that attribute them
        if wall <= 0 or not used:
            return {}
        out: dict[str, Any] = {"cpu_pct": 100.0 * sum(used.values()) / wall,
                               "cpu_busiest_pct": 100.0 * max(used.values()) / wall}
        if self.threads:
            per = sorted(((100.0 * (t - self.start_threads.get(k, 0.0)) / wall, self.names.get(k, "?"))
                          for k, t in threads_now.items()), reverse=True)
            out["threads_top"] = [{"thread": name, "cpu_pct": round(pct, 2)} for pct, name in per[:8] if pct > 0.05]
        return out


class MachineMeter:
    """The whole machine's CPU use over a window, in % of one core, summed over every process.

    ``machine_cpu_pct``: every process, the benchmark's own included; ``nice_cpu_pct``: the part used
    by background processes (a positive niceness, or the ``SCHED_IDLE`` / ``SCHED_BATCH`` policy).
    A row's own CPU (graph and clients) is a fraction of the first; anything well above it is other
    work on the machine. The second matters on its own: a low-priority background job (``nice 19``,
    even ``SCHED_IDLE``) still takes a core, and on 2 cores it delays the wake-ups of every hop
    (measured: 16 bare pylsl relays p99 6 ms on the quiet machine, 340-780 ms with one nice-19
    training job running; docs/RESULTS.md, "Cluster: concurrent live sessions"). The load average
    does not show it (one such job: load ~1).

    Per-process CPU times are used, not ``/proc/stat``: the machine-wide counters are sampled at the
    scheduler tick, and a live chain's short 250 Hz bursts mostly fall between ticks (they read 2-5 %
    where the processes' own times sum to 20-30 %). Processes that start inside the window count
    fully; those that end inside it are missed.
    """

    def _snapshot(self) -> dict[tuple[int, float], tuple[float, bool]]:
        import psutil

        out: dict[tuple[int, float], tuple[float, bool]] = {}
        for proc in psutil.process_iter(["cpu_times", "nice", "create_time"]):
            info = proc.info
            times = info.get("cpu_times")
            if times is None or info.get("create_time") is None:
                continue
            background = (info.get("nice") or 0) > 0
            if not background:
                try:
                    background = os.sched_getscheduler(proc.pid) in (os.SCHED_IDLE, os.SCHED_BATCH)
                except (OSError, AttributeError):
                    pass
            out[(proc.pid, info["create_time"])] = (times.user + times.system, background)
        return out

    def begin(self) -> None:
        self._t0, self._w0 = self._snapshot(), time.monotonic()

    def end(self) -> dict[str, float]:
        now, wall = self._snapshot(), time.monotonic() - self._w0
        if wall <= 0:
            return {}
        busy = background = 0.0
        for key, (cpu, bg) in now.items():
            used = cpu - self._t0.get(key, (0.0, bg))[0]
            busy += used
            if bg:
                background += used
        return {"machine_cpu_pct": 100.0 * busy / wall, "nice_cpu_pct": 100.0 * background / wall}


def not_quiet_warning(rows: list[dict[str, Any]], nice_limit_pct: float = 10.0) -> str | None:
    """One line when background work (niced, SCHED_IDLE, SCHED_BATCH) ran during any measured window, else None."""
    worst = max((r.get("nice_cpu_pct", 0.0) for r in rows), default=0.0)
    if worst < nice_limit_pct:
        return None
    return (f"the machine was not quiet: background processes (niced, SCHED_IDLE or SCHED_BATCH) used up to "
            f"{worst:.0f} % of a core during the measured windows; on a small machine their wake-up delays show "
            f"in every row, floors included (nice_cpu_pct per row in --json). Measure with nothing else running.")


def _proc_label(proc: Any) -> str:
    """A short name for a process of the graph's tree: Ray's process title, else the command."""
    try:
        cmd = proc.cmdline()
    except Exception:  # noqa: BLE001 - gone or not ours: a name is enough
        cmd = []
    if cmd and cmd[0].startswith("ray::"):
        return cmd[0].split()[0]
    if len(cmd) >= 3 and cmd[1] == "-m":
        return f"{Path(cmd[0]).name} -m {cmd[2]}" + (f" {cmd[3]}" if len(cmd) > 3 else "")
    return Path(cmd[0]).name if cmd else proc.name()


# --- one measurement ----------------------------------------------------------------------------------
def measure(workdir: Path, in_name: str, out_name: str, rate: float, duration: float, startup_s: float,
            seed: int, events: bool = False, start_graph: Callable[[], subprocess.Popen | None] = lambda: None,
            stop_sig: int = signal.SIGINT, threads: bool = False) -> dict[str, Any]:
    """Run pusher, graph (if any) and receiver; return the row's statistics for one repetition.

    ``threads``: also attribute the graph's CPU to its busiest threads (``threads_top``)."""
    workdir.mkdir(parents=True, exist_ok=True)
    settle = 1.0
    pusher = _client("push", workdir, "--name", in_name, "--rate", str(rate), "--duration", str(duration),
                     "--startup", str(startup_s), "--settle", str(settle), "--seed", str(seed),
                     *(["--events"] if events else []))
    graph: subprocess.Popen | None = None
    receiver: subprocess.Popen | None = None
    result: dict[str, Any] = {"load_1min": os.getloadavg()[0]}
    try:
        graph = start_graph()
        receiver = _client("receive", workdir, "--name", out_name, "--startup", str(startup_s),
                           "--settle", str(settle), "--duration", str(duration))
        meter = CpuMeter(graph.pid, threads=threads) if graph is not None else None
        end = time.monotonic() + startup_s
        while not (workdir / "go").exists() and time.monotonic() < end and pusher.poll() is None:
            if graph is not None and graph.poll() is not None:
                break
            time.sleep(0.05)
        if not (workdir / "go").exists():
            return dict(result, error=f"no output on {out_name!r} within {startup_s:g} s")
        time.sleep(settle)
        machine = MachineMeter()
        machine.begin()
        if meter is not None:
            meter.begin()
        pusher.wait(duration + 30.0)
        if meter is not None:
            result.update(meter.end())
        result.update(machine.end())
        time.sleep(0.5)  # stragglers
    finally:
        (workdir / "stop").touch()
        try:
            if receiver is not None:
                receiver.wait(15.0)  # it saves its results when it sees "stop"
        except subprocess.TimeoutExpired:
            _stop(receiver)
        _stop(pusher)
        _stop(graph, stop_sig, 60.0)
    return dict(result, **_score(workdir, events))


def _score(workdir: Path, events: bool) -> dict[str, Any]:
    try:
        pushed = np.load(workdir / "pushed.npz")
        received = np.load(workdir / "received.npz")
    except (OSError, ValueError) as exc:
        return {"error": f"client results missing ({exc}); logs in {workdir}"}
    ts_out, arrivals = received["timestamps"], received["arrivals"]
    first_arrival: dict[float, float] = {}
    for t, a in zip(ts_out.tolist(), arrivals.tolist()):
        first_arrival.setdefault(t, a)
    out: dict[str, Any] = {}
    sched_err = (pushed["stamps"] - pushed["scheduled"]) * 1e3
    if sched_err.size:
        out.update(push_err_p50_ms=float(np.percentile(sched_err, 50)), push_err_p99_ms=float(np.percentile(sched_err, 99)))
    if events:
        lo, hi = float(pushed["measure_from"]), float(pushed["measure_to"])
        k0, k1 = int(np.ceil(lo / BIN_S)), int(np.floor(hi / BIN_S)) - 1  # bins wholly inside the window
        expected = [round((k + 1) * BIN_S, 9) for k in range(k0, k1)]
        by_bin = {round(t, 9): a for t, a in first_arrival.items()}
        lat = np.array([by_bin[t] - t for t in expected if t in by_bin]) * 1e3
        total = len(expected)
        out["events_pushed"] = int(pushed["events_pushed"])
    else:
        stamps = pushed["stamps"].tolist()
        lat = np.array([first_arrival[t] - t for t in stamps if t in first_arrival]) * 1e3
        total = len(stamps)
    out.update(samples=total, received=int(lat.size), lost=total - int(lat.size))
    if lat.size:
        out.update(p50_ms=float(np.percentile(lat, 50)), p99_ms=float(np.percentile(lat, 99)),
                   max_ms=float(lat.max()), latencies_ms=lat)
    return out


# --- rows -----------------------------------------------------------------------------------------------
GRAPH = """
name: bench_latency
description: LSL in -> Bessel -> SNN decoder -> LSL out (spikeloop bench latency)
nodes:
  inlet:   {{kind: lsl_inlet, params: {{name: {in_name}, clock_sync: false, max_block_s: 0.005, wait: {wait}, resolve_timeout_s: 30}}}}
  smooth:  {{kind: bessel, params: {{order: 4, cutoff_hz: 6.25, mode: causal}}}}
  decoder: {{kind: decoder, params: {{model: {model}}}}}
  outlet:  {{kind: lsl_outlet, params: {{name: {out_name}}}}}
edges:
  - inlet -> smooth -> decoder -> outlet
runtime:
  fuse: {fuse}
"""

EVENT_GRAPH = """
name: bench_latency_events
description: LSL spike events -> event_binner -> Bessel -> SNN decoder -> LSL out (spikeloop bench latency --events)
nodes:
  inlet:   {{kind: lsl_inlet, params: {{name: {in_name}, clock_sync: false, max_block_s: 0.005, wait: {wait}, resolve_timeout_s: 30}}}}
  bins:    {{kind: event_binner, params: {{bin_s: {bin_s}, events: spikes, channels: {channels}, binarize: true}}}}
  smooth:  {{kind: bessel, params: {{order: 4, cutoff_hz: 6.25, mode: causal}}}}
  decoder: {{kind: decoder, params: {{model: {model}}}}}
  outlet:  {{kind: lsl_outlet, params: {{name: {out_name}}}}}
edges:
  - inlet -> bins -> smooth -> decoder -> outlet
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


def floor_hop(workdir: Path, rate: float, duration: float, seed: int) -> dict[str, Any]:
    name = f"bench_hop_{uuid.uuid4().hex[:8]}"
    return measure(workdir, name, name, rate, duration, 20.0, seed)


def floor_relay(workdir: Path, rate: float, duration: float, seed: int) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    in_name, out_name = f"bench_rin_{tag}", f"bench_rout_{tag}"
    start = lambda: _client("relay", workdir, "--name", in_name, "--out-name", out_name)  # noqa: E731
    return measure(workdir, in_name, out_name, rate, duration, 30.0, seed, start_graph=start, stop_sig=signal.SIGTERM)


def run_graph(workdir: Path, runner: str, fused: bool, wait: str, rate: float, duration: float, model: str,
              startup_s: float, address: str | None, seed: int, events: bool = False,
              env: dict[str, str] | None = None, threads: bool = False) -> dict[str, Any]:
    """One graph row: write the graph, run it under ``spikeloop run`` between pusher and receiver.

    ``env``: extra environment variables for the graph's process (and a local Ray's workers, which
    inherit it), e.g. ``SPIKELOOP_PROBE``; ``threads``: per-thread CPU (see :class:`CpuMeter`)."""
    tag = uuid.uuid4().hex[:8]
    in_name, out_name = f"bench_in_{tag}", f"bench_out_{tag}"
    workdir.mkdir(parents=True, exist_ok=True)
    chain = "[[inlet, bins, smooth, decoder, outlet]]" if events else "[[inlet, smooth, decoder, outlet]]"
    template = EVENT_GRAPH if events else GRAPH
    config = workdir / "graph.yaml"
    config.write_text(template.format(in_name=in_name, out_name=out_name, model=model, wait=wait,
                                      fuse=chain if fused else "[]", bin_s=BIN_S, channels=CHANNELS))
    summary_path = workdir / "summary.json"
    cmd = [sys.executable, "-m", "pipeline", "run", str(config), "--runner", runner, "--no-progress",
           "--json", str(summary_path)]
    if address:
        cmd += ["--address", address]

    def start() -> subprocess.Popen:
        return subprocess.Popen(cmd, cwd=REPO, stdout=open(workdir / "graph.log", "w"), stderr=subprocess.STDOUT,
                                env={**os.environ, **(env or {})})

    result = measure(workdir, in_name, out_name, rate, duration, startup_s, seed, events=events, start_graph=start,
                     threads=threads)
    if summary_path.exists():
        summary = json.loads(summary_path.read_text())
        result["graph_counters"] = {n: s["counters"] for n, s in summary["nodes"].items() if s.get("counters")}
        result["node_proc_us_p50"] = {n: s.get("proc_us_p50") for n, s in summary["nodes"].items()}
    elif "error" not in result:
        result["error"] = f"graph wrote no summary (log: {workdir / 'graph.log'})"
    if "error" in result and (workdir / "graph.log").exists():
        result["log_tail"] = (workdir / "graph.log").read_text()[-2000:]
    return result


# --- report -----------------------------------------------------------------------------------------------
def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per (rate, path): medians and spread over repetitions, pooled percentiles, excess over the
    hop measured in the same repetition (p50 and p99: the floor beside each row)."""
    hop_p50 = {(r["rate_hz"], r["repeat"]): r.get("p50_ms") for r in rows if r["path"].startswith("lsl hop")}
    hop_p99 = {(r["rate_hz"], r["repeat"]): r.get("p99_ms") for r in rows if r["path"].startswith("lsl hop")}
    groups: dict[tuple[float, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["rate_hz"], r["path"]), []).append(r)
    out = []
    for (rate, path), reps in groups.items():
        ok = [r for r in reps if "p50_ms" in r]
        entry: dict[str, Any] = {"rate_hz": rate, "path": path, "runs": len(reps), "runs_ok": len(ok),
                                 "lost": sum(r.get("lost", 0) for r in reps), "samples": sum(r.get("samples", 0) for r in reps),
                                 "errors": [r["error"] for r in reps if "error" in r]}
        for key in ("p50_ms", "p99_ms", "max_ms", "cpu_pct", "cpu_busiest_pct", "push_err_p99_ms", "load_1min",
                    "machine_cpu_pct", "nice_cpu_pct"):
            vals = [r[key] for r in ok if r.get(key) is not None]
            if vals:
                entry[key] = float(np.median(vals))
                entry[key + "_min"], entry[key + "_max"] = float(min(vals)), float(max(vals))
        pooled = [r["latencies_ms"] for r in ok if "latencies_ms" in r]
        if pooled:
            allv = np.concatenate(pooled)
            entry["pooled_p50_ms"], entry["pooled_p99_ms"] = float(np.percentile(allv, 50)), float(np.percentile(allv, 99))
        over = [r["p50_ms"] - hop_p50[(rate, r["repeat"])] for r in ok
                if hop_p50.get((rate, r["repeat"])) is not None and not path.startswith("lsl hop")]
        if over:
            entry["p50_over_hop_ms"] = float(np.median(over))
        over99 = [r["p99_ms"] - hop_p99[(rate, r["repeat"])] for r in ok
                  if hop_p99.get((rate, r["repeat"])) is not None and not path.startswith("lsl hop")]
        if over99:
            entry["p99_over_hop_ms"] = float(np.median(over99))
        out.append(entry)
    return out


def _print_table(summary: list[dict[str, Any]], load: int) -> None:
    from rich.table import Table

    from pipeline.console import console

    table = Table(title=f"latency, push -> arrival (ms; median of runs [min-max]); background load: {load} busy processes",
                  title_justify="left")
    for col in ("Hz", "path", "p50", "p99", "pooled p50/p99", "p50-hop", "p99-hop", "lost", "CPU %", "push err p99",
                "load\nmachine %"):
        table.add_column(col, justify="left" if col == "path" else "right")

    def rng(e: dict[str, Any], key: str, d: int = 3) -> str:
        if key not in e:
            return "-"
        return f"{e[key]:.{d}f}\n[{e[key + '_min']:.{d}f}-{e[key + '_max']:.{d}f}]"

    for e in summary:
        if not e["runs_ok"]:
            table.add_row(f"{e['rate_hz']:g}", e["path"], "error", "; ".join(e["errors"])[:60], "", "", "", "", "", "",
                          "")
            continue
        pooled = f"{e['pooled_p50_ms']:.3f} / {e['pooled_p99_ms']:.3f}" if "pooled_p50_ms" in e else "-"
        over = f"{e['p50_over_hop_ms']:+.3f}" if "p50_over_hop_ms" in e else "-"
        over99 = f"{e['p99_over_hop_ms']:+.3f}" if "p99_over_hop_ms" in e else "-"
        cpu = rng(e, "cpu_pct", 0) if "cpu_pct" in e else "-"
        table.add_row(f"{e['rate_hz']:g}", f"{e['path']}\n({e['runs_ok']}/{e['runs']} runs)", rng(e, "p50_ms"),
                      rng(e, "p99_ms"), pooled, over, over99, f"{e['lost']}/{e['samples']}", cpu,
                      rng(e, "push_err_p99_ms", 2) if "push_err_p99_ms" in e else "-",
                      f"{e.get('load_1min', 0):.2f}\n{e.get('machine_cpu_pct', float('nan')):.0f}")
    console().print(table)
    warning = not_quiet_warning(summary)
    if warning:
        console().print(f"[yellow]{warning}[/]")


def run(args: argparse.Namespace) -> int:
    from pipeline.errors import UserError

    runners = args.runner or list(RUNNERS)
    rates = args.rate or [250.0]
    waits = list(WAITS) if args.wait == "all" else [args.wait]
    if not Path(args.model).exists():
        raise UserError(f"bench latency: model file not found: {args.model} (train one with spikeloop train, or pass --model)")
    if args.duration <= 0 or args.repeats < 1 or args.load < 0:
        raise UserError("bench latency: --duration must be > 0 s, --repeats >= 1 and --load >= 0")
    variants: list[tuple[str, dict[str, str]]] = [("", {})]
    for item in args.variant:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"bench latency: --variant takes KEY=VALUE, got {item!r}")
        variants.append((f", {item}", {key: value}))
    busy = [_client("busy", Path(tempfile.gettempdir())) for _ in range(args.load)]
    rows: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="spikeloop_bench_") as tmp:
            root = Path(tmp)
            plan: list[tuple[float, str, Callable[[Path, int], dict[str, Any]]]] = []
            for rate in rates:
                model = model_for_rate(args.model, rate, root)
                plan.append((rate, "lsl hop (1 hop)", lambda w, s, rate=rate: floor_hop(w, rate, args.duration, s)))
                plan.append((rate, "lsl relay (2 hops)", lambda w, s, rate=rate: floor_relay(w, rate, args.duration, s)))
                for runner in runners:
                    for fused in ([True, False] if args.unfused and runner != "local" else [True]):
                        for wait in waits:
                            for suffix, env in variants:
                                label = (runner + ("" if runner == "local" else (" fused" if fused else " unfused"))
                                         + f", {wait}{suffix}")
                                plan.append((rate, label, lambda w, s, runner=runner, fused=fused, wait=wait, rate=rate,
                                             model=model, env=env: run_graph(w, runner, fused, wait, rate, args.duration,
                                                                             model, args.startup_timeout, args.address, s,
                                                                             env=env)))
                    if args.events and rate == 250.0:
                        plan.append((rate, f"{runner} fused, {waits[0]}, spike events binned",
                                     lambda w, s, runner=runner, model=model: run_graph(
                                         w, runner, True, waits[0], 250.0, args.duration, model, args.startup_timeout,
                                         args.address, s, events=True)))
            for rep in range(args.repeats):
                for k, (rate, label, fn) in enumerate(plan):
                    print(f"[run {rep + 1}/{args.repeats}] {rate:g} Hz, {label} ...", file=sys.stderr, flush=True)
                    result = fn(root / f"r{rep}_{k}", 100 * rep + k)
                    rows.append(dict(result, rate_hz=rate, path=label, repeat=rep))
    finally:
        for proc in busy:
            _stop(proc)
    summary = summarize(rows)
    _print_table(summary, args.load)
    if args.json_path:
        out = Path(args.json_path)
        out.parent.mkdir(parents=True, exist_ok=True)
        clean = [{k: v for k, v in r.items() if k != "latencies_ms"} for r in rows]
        out.write_text(json.dumps({"benchmark": "latency", "channels": CHANNELS, "duration_s": args.duration,
                                   "repeats": args.repeats, "load_processes": args.load, "cpu_count": os.cpu_count(),
                                   "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "summary": summary, "runs": clean},
                                  indent=2) + "\n")
        print(f"results written to {args.json_path}")
    return 0 if all("error" not in r for r in rows) else 1
