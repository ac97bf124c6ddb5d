"""What one live session's start-up costs, in CPU seconds (load-independent) and wall time.

``python -m benchmarks.session_startup [--tree PATH] [--repeats K] [--json PATH]``

One Ray cluster is started on loopback (:class:`benchmarks.sessions.LocalCluster`, the cluster of
``spikeloop bench sessions``, workers at niceness 0). Then, ``--repeats`` times one after the other, one session of the
``bench sessions`` graph (LSL in -> Bessel -> SNN decoder -> LSL out, fused in one actor) is
started on it with ``spikeloop run --runner ray --address`` from the source tree ``--tree``
(default: this one; give an older checkout to compare commits with the same cluster and clients).
Its pusher is started first and waited for (its stream visible), so the pusher's own start-up is
not counted; the receiver is started with the run.

Measured from the run's start to the first output at the receiver:

* wall seconds (moves with the machine's load);
* CPU seconds (user + system, from ``/proc`` through psutil; the same work costs the same CPU
  seconds on a busy or a quiet machine, which is why this is the comparison to trust): of the
  ``spikeloop run`` process (the driver), of each Ray worker process that appeared during the
  start-up (the session's actor, its spare, the session registry), and of the cluster's own
  processes (GCS, raylet, idle workers) over the same interval;
* the driver's log lines, each with the wall time and the driver's and new workers' CPU seconds
  when it was printed: the cost of each start-up step (Ray connect, placement check, actor
  start, node open, ...).

A cluster's idle processes use some CPU of their own (heartbeats), so "cluster" includes a small
share that is not the session's; it is reported separately. "Workers" also holds the start of the
session's spare actor (it is launched just before the graph runs), in proportion to how long the
first output takes. ``--concurrent K`` then starts K sessions at the same moment and reports the
CPU seconds until all of them produced output. To compare two commits, check the older one out with
``git worktree add`` and pass it as ``--tree`` (run this module from the newer tree, without
``PYTHONPATH``, so each session imports its own tree's code).
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


def _cpu(proc: Any) -> float:
    t = proc.cpu_times()
    return t.user + t.system


def _label(proc: Any) -> str:
    try:
        cmd = proc.cmdline()
    except Exception:  # noqa: BLE001 - gone: a name is enough
        return "?"
    if cmd and cmd[0].startswith("ray::"):
        return cmd[0].split()[0]
    return Path(cmd[0]).name if cmd else proc.name()


class TreeCpu:
    """CPU seconds per process of a set of process trees; remembers processes that have gone."""

    def __init__(self, *roots: int) -> None:
        import psutil

        self.roots = [psutil.Process(p) for p in roots]
        self.last: dict[int, float] = {}
        self.created: dict[int, float] = {}
        self.labels: dict[int, str] = {}

    def sample(self) -> dict[int, float]:
        import psutil

        procs = []
        for r in self.roots:
            try:
                procs += [r, *r.children(recursive=True)]
            except psutil.Error:
                continue
        for p in procs:
            try:
                self.last[p.pid] = _cpu(p)
                if p.pid not in self.created:
                    self.created[p.pid] = p.create_time()
                    self.labels[p.pid] = _label(p)
                elif self.labels.get(p.pid) in ("?", "python", "python3", "default_worker.py"):
                    self.labels[p.pid] = _label(p)  # a worker's title is set after it starts
            except psutil.Error:
                continue
        return dict(self.last)


def one_session(cluster: Any, tree: Path, model: str, workdir: Path, timeout_s: float,
                steady_s: float = 0.0) -> dict[str, Any]:
    """Start one session from ``tree`` on ``cluster``; its start-up costs (see the module doc)."""
    import psutil
    import pylsl

    from benchmarks.latency import GRAPH, _client, _stop

    workdir.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    in_name, out_name = f"prof_in_{tag}", f"prof_out_{tag}"
    config = workdir / "graph.yaml"
    config.write_text(GRAPH.format(in_name=in_name, out_name=out_name, model=model, wait="block",
                                   fuse="[[inlet, smooth, decoder, outlet]]"))
    pusher = _client("push", workdir, "--name", in_name, "--rate", "250", "--duration", str(steady_s + 5),
                     "--startup", str(timeout_s + 60), "--settle", "1")
    receiver = graph = None
    try:
        if not pylsl.resolve_byprop("name", in_name, 1, 60.0):
            raise RuntimeError(f"pusher stream {in_name!r} not visible within 60 s")
        cluster_cpu = TreeCpu(cluster.proc.pid)
        before = cluster_cpu.sample()
        known = set(before)
        env = dict(cluster.env, PYTHONPATH=str(tree))
        t0 = time.monotonic()
        graph = subprocess.Popen([sys.executable, "-m", "pipeline", "run", str(config), "--runner", "ray",
                                  "--address", cluster.address, "--no-progress"],
                                 cwd=tree, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        driver = psutil.Process(graph.pid)
        receiver = _client("receive", workdir, "--name", out_name, "--startup", str(timeout_s), "--settle", "1",
                           "--duration", "1", "--ready", "ready")
        lines: list[dict[str, Any]] = []

        def costs() -> tuple[float, float]:
            now = cluster_cpu.sample()
            try:
                d = _cpu(driver)
            except psutil.Error:
                d = float("nan")
            new = sum(v for pid, v in now.items() if pid not in known)
            return d, new

        def read() -> None:
            assert graph is not None and graph.stdout is not None
            for line in graph.stdout:
                d, new = costs()
                lines.append({"t_s": round(time.monotonic() - t0, 3), "driver_cpu_s": round(d, 3),
                              "workers_cpu_s": round(new, 3), "line": line.rstrip()[:160]})

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        ready = workdir / "ready"
        end = t0 + timeout_s
        while not ready.exists() and time.monotonic() < end and graph.poll() is None:
            costs()
            time.sleep(0.05)
        wall = time.monotonic() - t0
        ok = ready.exists()
        driver_cpu, _ = costs()
        after = cluster_cpu.sample()
        workers = {pid: after[pid] for pid in after if pid not in known}
        cluster_own = sum(after.get(pid, v) - v for pid, v in before.items())
        steady: dict[str, Any] = {}
        if ok and steady_s > 0:  # the running session: CPU per second of the driver, the new workers, the cluster
            d0, s0 = driver_cpu, cluster_cpu.sample()
            ts = time.monotonic()
            while time.monotonic() < ts + steady_s and graph.poll() is None:
                costs()
                time.sleep(0.5)
            d1, s1 = costs()[0], cluster_cpu.sample()
            dt = time.monotonic() - ts
            steady = {"seconds": round(dt, 2), "driver_pct": round(100 * (d1 - d0) / dt, 1),
                      "workers_pct": {f"{cluster_cpu.labels.get(pid, '?')}[{pid}]": round(100 * (v - s0.get(pid, 0.0)) / dt, 1)
                                      for pid, v in s1.items() if pid not in known},
                      "cluster_own_pct": round(100 * sum(s1.get(pid, 0.0) - s0.get(pid, 0.0) for pid in known) / dt, 1)}
        return {"steady": steady,
            "ok": ok, "wall_s": round(wall, 3), "driver_cpu_s": round(driver_cpu, 3),
            "workers_cpu_s": round(sum(workers.values()), 3),
            "workers": [{"label": cluster_cpu.labels.get(pid, "?"), "cpu_s": round(v, 3)} for pid, v in workers.items()],
            "cluster_own_cpu_s": round(cluster_own, 3),
            "total_cpu_s": round(driver_cpu + sum(workers.values()) + cluster_own, 3),
            "log": lines,
        }
    finally:
        if graph is not None and graph.poll() is None:
            graph.send_signal(signal.SIGINT)
            try:
                graph.wait(60.0)
            except subprocess.TimeoutExpired:
                graph.kill()
        (workdir / "stop").touch()
        if receiver is not None:
            _stop(receiver)
        _stop(pusher)


def concurrent_sessions(cluster: Any, tree: Path, model: str, workdir: Path, k: int, timeout_s: float) -> dict[str, Any]:
    """Start ``k`` sessions from ``tree`` at the same moment (their pushers up first); the CPU seconds
    of all their drivers, the new workers and the cluster until every one produced output (or the
    timeout), and how many did. CPU seconds are the load-independent figure; wall time is not."""
    import psutil
    import pylsl

    from benchmarks.latency import GRAPH, _client, _stop

    pushers, graphs, receivers, dirs = [], [], [], []
    try:
        for i in range(k):
            d = workdir / f"c{i}"
            d.mkdir(parents=True, exist_ok=True)
            tag = uuid.uuid4().hex[:8]
            (d / "graph.yaml").write_text(GRAPH.format(in_name=f"prof_in_{tag}", out_name=f"prof_out_{tag}", model=model,
                                                       wait="block", fuse="[[inlet, smooth, decoder, outlet]]"))
            pushers.append(_client("push", d, "--name", f"prof_in_{tag}", "--rate", "250", "--duration", "1",
                                   "--startup", str(timeout_s + 60), "--settle", "1"))
            dirs.append((d, tag))
        for d, tag in dirs:
            if not pylsl.resolve_byprop("name", f"prof_in_{tag}", 1, 60.0):
                raise RuntimeError(f"pusher stream prof_in_{tag} not visible within 60 s")
        cluster_cpu = TreeCpu(cluster.proc.pid)
        before = cluster_cpu.sample()
        env = dict(cluster.env, PYTHONPATH=str(tree))
        t0 = time.monotonic()
        for d, tag in dirs:
            graphs.append(subprocess.Popen([sys.executable, "-m", "pipeline", "run", str(d / "graph.yaml"), "--runner",
                                            "ray", "--address", cluster.address, "--no-progress"], cwd=tree, env=env,
                                           stdout=open(d / "graph.log", "w"), stderr=subprocess.STDOUT))
            receivers.append(_client("receive", d, "--name", f"prof_out_{tag}", "--startup", str(timeout_s),
                                     "--settle", "1", "--duration", "1", "--ready", "ready"))
        drivers = [psutil.Process(g.pid) for g in graphs]
        last = {g.pid: 0.0 for g in graphs}
        up: dict[int, float] = {}
        end = t0 + timeout_s
        while len(up) < k and time.monotonic() < end:
            cluster_cpu.sample()
            for i, ((d, _), p) in enumerate(zip(dirs, drivers)):
                try:
                    last[p.pid] = _cpu(p)
                except psutil.Error:
                    pass
                if i not in up and (d / "ready").exists():
                    up[i] = time.monotonic() - t0
            time.sleep(0.1)
        after = cluster_cpu.sample()
        workers = sum(v for pid, v in after.items() if pid not in before)
        cluster_own = sum(after.get(pid, v) - v for pid, v in before.items())
        return {"k": k, "up": len(up), "wall_all_up_s": round(max(up.values()), 2) if len(up) == k else None,
                "up_times_s": sorted(round(v, 2) for v in up.values()),
                "driver_cpu_s": round(sum(last.values()), 2), "workers_cpu_s": round(workers, 2),
                "cluster_own_cpu_s": round(cluster_own, 2),
                "total_cpu_s": round(sum(last.values()) + workers + cluster_own, 2)}
    finally:
        for g in graphs:
            if g.poll() is None:
                g.send_signal(signal.SIGINT)
        for g in graphs:
            try:
                g.wait(60.0)
            except subprocess.TimeoutExpired:
                g.kill()
        for d, _ in dirs:
            (d / "stop").touch()
        for r in receivers + pushers:
            _stop(r)


def main(argv: list[str] | None = None) -> int:
    from benchmarks.sessions import DEFAULT_MODEL, LocalCluster

    p = argparse.ArgumentParser(prog="python -m benchmarks.session_startup", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="example:\n  python -m benchmarks.session_startup --repeats 3 --json out/startup.json")
    p.add_argument("--tree", type=Path, default=REPO, help="source tree whose `spikeloop run` starts the session "
                   "(default: this one)")
    p.add_argument("--repeats", type=int, default=3, help="sessions started one after the other (default 3)")
    p.add_argument("--num-cpus", type=int, default=16, help="the cluster's --num-cpus (default 16, as bench "
                   "sessions --sessions 16 starts it)")
    p.add_argument("--timeout", type=float, default=180.0, help="longest wait for a session's first output (s)")
    p.add_argument("--steady", type=float, default=0.0, metavar="S",
                   help="after the first output, also measure the running session's CPU for S seconds (default 0)")
    p.add_argument("--concurrent", type=int, default=0, metavar="K",
                   help="also start K sessions at the same moment (after the one-by-one ones) and report the CPU "
                        "seconds until all produced output (default 0: not)")
    p.add_argument("--json", dest="json_path", help="write the figures as JSON")
    p.add_argument("--show-log", action="store_true", help="print each run's log lines with their costs")
    a = p.parse_args(argv)
    model = str(a.tree / "models" / "snn_streaming_sample.npz")
    if not Path(model).exists():
        model = str(DEFAULT_MODEL)
    runs = []
    conc: dict[str, Any] | None = None
    with tempfile.TemporaryDirectory(prefix="spikeloop_startup_") as tmp:
        cluster = LocalCluster(num_cpus=a.num_cpus, startup_s=120.0)
        try:
            time.sleep(2.0)  # the cluster's own start-up settles
            for k in range(a.repeats):
                load = os.getloadavg()[0]
                r = one_session(cluster, a.tree.resolve(), model, Path(tmp) / f"s{k}", a.timeout, a.steady)
                r["load_1min"] = load
                runs.append(r)
                print(f"session {k}: ok={r['ok']} wall {r['wall_s']:.2f} s; CPU s: driver {r['driver_cpu_s']:.2f}, "
                      f"new workers {r['workers_cpu_s']:.2f} "
                      f"({', '.join(w['label'] + ' ' + format(w['cpu_s'], '.2f') for w in r['workers'])}), "
                      f"cluster {r['cluster_own_cpu_s']:.2f}; total {r['total_cpu_s']:.2f} (load {load:.1f})",
                      flush=True)
                if r["steady"]:
                    print(f"  running: {r['steady']}", flush=True)
                if a.show_log:
                    for ln in r["log"]:
                        print(f"  {ln['t_s']:7.2f} s  driver {ln['driver_cpu_s']:5.2f}  workers "
                              f"{ln['workers_cpu_s']:5.2f}  | {ln['line']}")
            if a.concurrent > 0:
                load = os.getloadavg()[0]
                conc = concurrent_sessions(cluster, a.tree.resolve(), model, Path(tmp) / "conc", a.concurrent,
                                           a.timeout)
                conc["load_1min"] = load
                print(f"{a.concurrent} sessions at once: {conc}", flush=True)
        finally:
            cluster.stop()
    med = {k: float(np.median([r[k] for r in runs])) for k in ("wall_s", "driver_cpu_s", "workers_cpu_s",
                                                               "cluster_own_cpu_s", "total_cpu_s")}
    print("median: " + ", ".join(f"{k} {v:.2f}" for k, v in med.items()))
    if a.json_path:
        Path(a.json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json_path).write_text(json.dumps({"tree": str(a.tree), "median": med, "runs": runs, "concurrent": conc,
                                                 "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}, indent=2) + "\n")
    return 0 if all(r["ok"] for r in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
