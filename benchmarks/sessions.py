"""``spikeloop bench sessions``: how many live sessions fit on one local Ray cluster?

What is measured
    One Ray cluster is started on loopback for the whole benchmark (``ray start --head --block
    --node-ip-address=127.0.0.1`` with a temporary ``--temp-dir`` and a free port; at the end
    exactly the processes of that cluster are stopped, no other Ray on the machine is touched).
    For each ``--sessions N``, N live sessions run at once on it, each a ``spikeloop run CONFIG
    --runner ray --address 127.0.0.1:PORT`` process with the graph

        LSL in (96 channels, 250 Hz) -> Bessel (4th order, 6.25 Hz) -> SNN decoder -> LSL out

    fused in one actor. Every session has its own outside clients (processes of their own, see
    :mod:`benchmarks.latency_clients`): a pusher that pushes one sample per 4 ms stamped at the push,
    and a receiver that records every output's arrival. Pushers warm up until *every* session
    produced output, then all measure the same ``--duration`` window. Outputs are matched to inputs
    by timestamp (:func:`benchmarks.latency._score`): latency = arrival - push stamp; inputs never
    seen at the output are *lost*.

    Reported per N and session: p50/p99/max (ms), lost/pushed, CPU (% of one core) of its actor's
    worker process (pid from the run's summary) plus its ``spikeloop run`` process; per N: the worst session's p99, total lost, total CPU of the cluster's
    process tree plus all session processes (actors included), and the 1-minute load average at
    the start and end of the window. Sessions that fail to start (no output within
    ``--startup-timeout``, or the process exited) are reported with their log's last line.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.latency import GRAPH, CpuMeter, _client, _score, _stop

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = REPO / "models" / "snn_streaming_sample.npz"
RATE_HZ = 250.0
SETTLE_S = 1.0
EPILOG = """\
Each session: spikeloop run (ray runner, joined to the benchmark's own loopback cluster) with
LSL in -> Bessel(4, 6.25 Hz) -> SNN decoder -> LSL out fused in one actor, 96 channels at 250 Hz,
its own pusher and receiver processes. Latency is push -> arrival at the receiver.

example:
  spikeloop bench sessions --sessions 1 4 8 16 --duration 60 --json out/sessions.json
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sessions", type=int, nargs="+", default=[1, 4], metavar="N",
                   help="numbers of concurrent sessions to measure, one after the other (default: 1 4)")
    p.add_argument("--duration", type=float, default=60.0, metavar="S",
                   help="seconds measured per N, the same window for every session (default 60)")
    p.add_argument("--wait", choices=("auto", "block"), default="block",
                   help="how each graph's LSL inlet waits: block (in liblsl, no spinning; default) or auto")
    p.add_argument("--model", default=str(DEFAULT_MODEL), help="decoder model (default: the bundled SNN sample)")
    p.add_argument("--startup-timeout", type=float, default=240.0, metavar="S",
                   help="longest wait for the cluster, and for all N sessions to produce output (default 240)")
    p.add_argument("--json", dest="json_path", metavar="PATH", help="also write every session's figures as JSON")


# --- the cluster ----------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalCluster:
    """A Ray head node on loopback, started with ``ray start --block`` in a temporary directory.

    ``stop()`` ends exactly this cluster's processes (the ``ray start`` process and every process
    seen in its tree), SIGTERM first and SIGKILL after ``grace_s``; ``ray stop`` would end every Ray
    on the machine.
    """

    def __init__(self, num_cpus: int, startup_s: float) -> None:
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        # Short path: Ray's Unix sockets live under it (107-byte limit).
        self.temp_dir = Path(tempfile.mkdtemp(prefix="slr_", dir="/tmp"))
        # Token authentication with a fresh token of this cluster's own (not ~/.ray/auth_token): only
        # processes given this environment (the sessions) can join.
        self.env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",
                        RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=uuid.uuid4().hex + uuid.uuid4().hex)
        ray_bin = Path(sys.executable).with_name("ray")
        cmd = [str(ray_bin) if ray_bin.exists() else "ray", "start", "--head", "--block",
               "--node-ip-address=127.0.0.1", f"--port={self.port}", "--include-dashboard=false",
               f"--num-cpus={num_cpus}", f"--temp-dir={self.temp_dir}", "--disable-usage-stats"]
        self.log_path = self.temp_dir / "ray_start.log"
        self.proc = subprocess.Popen(cmd, stdout=open(self.log_path, "w"), stderr=subprocess.STDOUT,
                                     env=self.env, start_new_session=True)
        self._seen: dict[int, float] = {}  # pid -> create_time, every process ever seen in the tree
        end = time.monotonic() + startup_s
        while "Ray runtime started" not in self.log_path.read_text(errors="replace"):
            if self.proc.poll() is not None or time.monotonic() > end:
                tail = self.log_path.read_text(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
                self.stop()
                raise RuntimeError(f"ray start on {self.address} did not come up within {startup_s:g} s: {tail[0]}")
            time.sleep(0.2)
        self.pids()

    def pids(self) -> list[int]:
        """The cluster's processes now (the ``ray start`` process first); remembered for ``stop``."""
        import psutil

        try:
            root = psutil.Process(self.proc.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return []
        for p in procs:
            try:
                self._seen.setdefault(p.pid, p.create_time())
            except psutil.Error:
                continue
        return [p.pid for p in procs]

    def stop(self, grace_s: float = 10.0) -> None:
        import psutil

        self.pids()
        procs = []
        for pid, created in self._seen.items():
            try:
                p = psutil.Process(pid)
                if abs(p.create_time() - created) < 1e-3:  # the same process, not a reused pid
                    procs.append(p)
            except psutil.Error:
                continue
        for p in reversed(procs):  # children before the ray start process
            try:
                p.terminate()
            except psutil.Error:
                pass
        _, alive = psutil.wait_procs(procs, timeout=grace_s)
        for p in alive:
            try:
                p.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(alive, timeout=5.0)
        try:
            self.proc.wait(5.0)
        except subprocess.TimeoutExpired:
            pass
        shutil.rmtree(self.temp_dir, ignore_errors=True)


# --- one N ----------------------------------------------------------------------------------------------
class Session:
    """One live session: its graph process, pusher and receiver, all in ``workdir``."""

    def __init__(self, index: int, workdir: Path, cluster: LocalCluster, model: str, wait: str,
                 duration: float, startup_s: float) -> None:
        self.index, self.workdir = index, workdir
        workdir.mkdir(parents=True, exist_ok=True)
        tag = uuid.uuid4().hex[:8]
        self.in_name, self.out_name = f"bench_sin_{tag}", f"bench_sout_{tag}"
        config = workdir / "graph.yaml"
        config.write_text(GRAPH.format(in_name=self.in_name, out_name=self.out_name, model=model, wait=wait,
                                       fuse="[[inlet, smooth, decoder, outlet]]"))
        self.summary_path = workdir / "summary.json"
        client_startup = startup_s + 60.0  # the pusher waits for "go", which comes when all sessions are up
        self.pusher = _client("push", workdir, "--name", self.in_name, "--rate", str(RATE_HZ),
                              "--duration", str(duration), "--startup", str(client_startup),
                              "--settle", str(SETTLE_S), "--seed", str(index))
        cmd = [sys.executable, "-m", "pipeline", "run", str(config), "--runner", "ray", "--address",
               cluster.address, "--no-progress", "--json", str(self.summary_path)]
        self.graph = subprocess.Popen(cmd, cwd=REPO, env=cluster.env, stdout=open(workdir / "graph.log", "w"),
                                      stderr=subprocess.STDOUT)
        self.receiver = _client("receive", workdir, "--name", self.out_name, "--startup", str(client_startup),
                                "--settle", str(SETTLE_S), "--duration", str(duration), "--ready", "ready")
        self.error: str | None = None
        self.meter: CpuMeter | None = None

    def ready(self) -> bool:
        return (self.workdir / "ready").exists()

    def failed(self) -> str | None:
        if self.graph.poll() is not None:
            return f"spikeloop run exited with code {self.graph.returncode}: {self.log_tail()}"
        if self.pusher.poll() is not None:
            return f"pusher exited with code {self.pusher.returncode}"
        if self.receiver.poll() is not None and not self.ready():
            err = self.workdir / "receiver_error"
            return err.read_text() if err.exists() else f"receiver exited with code {self.receiver.returncode}"
        return None

    def log_tail(self) -> str:
        log = self.workdir / "graph.log"
        lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()] if log.exists() else []
        return lines[-1].strip() if lines else "(no output)"


def measure_n(n: int, cluster: LocalCluster, root: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Run ``n`` sessions at once on ``cluster``; every session's figures and the summary for ``n``."""
    sessions: list[Session] = []
    total: CpuMeter | None = None
    result: dict[str, Any] = {"sessions_requested": n}
    try:
        for i in range(n):
            sessions.append(Session(i, root / f"n{n}_s{i}", cluster, args.model, args.wait, args.duration,
                                    args.startup_timeout))
        t0 = time.monotonic()
        end = t0 + args.startup_timeout
        pending = list(sessions)
        while pending and time.monotonic() < end:
            for s in list(pending):
                if s.ready():
                    pending.remove(s)
                elif (why := s.failed()) is not None:
                    s.error = why
                    pending.remove(s)
            time.sleep(0.1)
        for s in pending:
            s.error = f"no output on {s.out_name!r} within {args.startup_timeout:g} s ({s.log_tail()})"
        result["startup_s"] = time.monotonic() - t0
        live = [s for s in sessions if s.error is None]
        print(f"[{n} sessions] {len(live)}/{n} producing output after {result['startup_s']:.1f} s; "
              f"measuring {args.duration:g} s", file=sys.stderr, flush=True)
        if live:
            for s in live:
                (s.workdir / "go").touch()  # every pusher starts its window SETTLE_S from now
            time.sleep(SETTLE_S)
            result["load_1min_start"] = os.getloadavg()[0]
            total = CpuMeter(cluster.proc.pid, *(s.graph.pid for s in live))
            total.begin()
            for s in live:
                s.meter = CpuMeter(s.graph.pid)
                s.meter.begin()
            deadline = time.monotonic() + args.duration + 30.0
            for s in live:
                try:
                    s.pusher.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    s.error = "pusher did not finish its window in time"
            for s in live:
                s.cpu = s.meter.end() if s.meter else {}
            result["cpu"] = total.end()
            result["load_1min_end"] = os.getloadavg()[0]
            cluster.pids()
            time.sleep(0.5)  # stragglers
    finally:
        for s in sessions:
            (s.workdir / "stop").touch()
        for s in sessions:
            try:
                s.receiver.wait(15.0)  # it saves its results when it sees "stop"
            except subprocess.TimeoutExpired:
                _stop(s.receiver)
            _stop(s.pusher)
        for s in sessions:  # Ctrl-C for every run at once, then a bounded wait for each
            if s.graph.poll() is None:
                s.graph.send_signal(signal.SIGINT)
        for s in sessions:
            _stop(s.graph, signal.SIGINT, 60.0)
    rows = []
    for s in sessions:
        row: dict[str, Any] = {"session": s.index, "in": s.in_name, "out": s.out_name}
        if s.error is not None:
            row["error"] = s.error
        else:
            row.update(_score(s.workdir, events=False))
            row["cpu_run_pct"] = getattr(s, "cpu", {}).get("cpu_pct")
            if not s.summary_path.exists():
                row.setdefault("error", f"run wrote no summary ({s.log_tail()})")
            else:  # the session's actor: its pid from the run's summary, its CPU from the cluster-wide meter
                groups = json.loads(s.summary_path.read_text()).get("groups", {})
                pids = [g.get("pid") for g in groups.values() if isinstance(g, dict)]
                used = getattr(total, "used", {}) if total is not None else {}
                if pids and all(p in used for p in pids) and total.wall > 0:
                    row["cpu_actor_pct"] = 100.0 * sum(used[p] for p in pids) / total.wall
                    row["cpu_pct"] = row["cpu_actor_pct"] + (row["cpu_run_pct"] or 0.0)
        lat = row.pop("latencies_ms", None)
        if lat is not None and lat.size:
            row["max_ms"] = float(lat.max())
        rows.append(row)
    ok = [r for r in rows if "p99_ms" in r and "error" not in r]
    result.update(
        sessions=rows, sessions_ok=len(ok),
        worst_p99_ms=max((r["p99_ms"] for r in ok), default=None),
        median_p50_ms=float(np.median([r["p50_ms"] for r in ok])) if ok else None,
        lost=sum(r.get("lost", 0) for r in rows), samples=sum(r.get("samples", 0) for r in rows),
        failed=[r["session"] for r in rows if "error" in r],
    )
    return result


# --- report ---------------------------------------------------------------------------------------------
def _print(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    from rich.table import Table

    from pipeline.console import console

    table = Table(title=f"concurrent live sessions on one loopback Ray cluster: push -> arrival (ms), "
                        f"{args.duration:g} s window, 96 ch at 250 Hz, inlet wait={args.wait}; {os.cpu_count()} CPUs",
                  title_justify="left")
    for col in ("N", "session", "p50", "p99", "max", "lost / pushed", "CPU %\nactor+run", "load 1 min", "note"):
        table.add_column(col, justify="left" if col in ("session", "note") else "right")

    def f(v: Any, d: int = 2) -> str:
        return "-" if v is None else f"{v:.{d}f}"

    for res in results:
        n = res["sessions_requested"]
        for r in res["sessions"]:
            table.add_row(str(n), f"#{r['session']}", f(r.get("p50_ms")), f(r.get("p99_ms")), f(r.get("max_ms")),
                          f"{r.get('lost', '-')} / {r.get('samples', '-')}", f(r.get("cpu_pct"), 0), "",
                          (r.get("error") or "")[:70])
        load = f"{f(res.get('load_1min_start'))} -> {f(res.get('load_1min_end'))}"
        cpu = res.get("cpu", {}).get("cpu_pct")
        table.add_row(f"[bold]{n}[/]", f"[bold]all ({res['sessions_ok']}/{n} ok)[/]", f(res.get("median_p50_ms")),
                      f"[bold]{f(res.get('worst_p99_ms'))}[/] worst", "", f"[bold]{res['lost']}[/] / {res['samples']}",
                      f"{f(cpu, 0)} total", load,
                      f"start-up {res.get('startup_s', 0):.0f} s; CPU: cluster tree + runs", end_section=True)
    console().print(table)


def run(args: argparse.Namespace) -> int:
    from pipeline.errors import UserError

    if not Path(args.model).exists():
        raise UserError(f"bench sessions: model file not found: {args.model}")
    if args.duration <= 0 or any(n < 1 for n in args.sessions):
        raise UserError("bench sessions: --duration must be > 0 s and every --sessions N >= 1")
    results: list[dict[str, Any]] = []
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="spikeloop_sessions_") as tmp:
        print("starting a Ray cluster on loopback ...", file=sys.stderr, flush=True)
        try:
            cluster = LocalCluster(num_cpus=max(max(args.sessions), os.cpu_count() or 1), startup_s=args.startup_timeout)
        except RuntimeError as exc:
            raise UserError(f"bench sessions: {exc}") from None
        try:
            print(f"cluster at {cluster.address} (temp dir {cluster.temp_dir})", file=sys.stderr, flush=True)
            for n in args.sessions:
                results.append(measure_n(n, cluster, Path(tmp), args))
        finally:
            cluster.stop()
    _print(results, args)
    if args.json_path:
        out = Path(args.json_path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({
            "benchmark": "sessions", "channels": 96, "rate_hz": RATE_HZ, "duration_s": args.duration,
            "wait": args.wait, "model": args.model, "cpu_count": os.cpu_count(), "load_avg_at_start": load_start,
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "results": results}, indent=2) + "\n")
        print(f"results written to {args.json_path}")
    return 0 if all(not r["failed"] for r in results) else 1
