"""Where checkpointing's cost goes, in CPU seconds per process (load-independent, unlike wall time).

``PYTHONPATH=. python -m benchmarks.checkpoint_cpu --repeats 3 --seconds 300 --modes off on``

Runs the checkpoint-cost graph of ``spikeloop bench restarts`` (``configs/replay_decode.yaml``,
scorer replaced by a capture node, every node its own actor, 20 ms packets, the last
``--seconds`` of the bundled recording at ``speed: max``) on the ``ray`` runner in interleaved
rounds of the given modes:

- ``off``: ``runtime.checkpoint_s: 0`` (no checkpoints, no spare actor, nothing kept);
- ``on``: checkpoints every 5 s with restarts on (the default: warm spare actor, senders keep
  their sent batches);
- ``nospare``: as ``on`` but no spare actor is started (isolates the spare's cost);
- ``nokeep``: checkpoints every 5 s, ``max_restarts: 0`` (no spare, nothing kept).

For each run, a sampler thread reads every process of this run's Ray tree (this process's
descendants, via psutil, every ``--period`` s) and sums user+system CPU seconds per role: the
driver (this process, minus the sampler's own thread), each group actor (the pids of the
observer's ``"started"`` event), the spare (worker processes born after ``started``), Ray's own
processes (raylet, GCS, agents) and Ray's idle workers. CPU seconds are split at ``started`` into
start-up and run. The last sample of an actor is at most one period before Ray kills it.

Prints one line per run and, per mode, the median CPU seconds per role and per 100k source
samples, and the median samples/s (wall; noisy on a shared machine: the load is printed).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

MODES = ("off", "on", "nospare", "nokeep")


class CpuSampler(threading.Thread):
    """Samples the CPU seconds (user + system) of this process and its descendants.

    Attributes:
        last: pid -> (cpu seconds at the latest sample, first cpu seconds seen, name).
        marks: name -> {pid: cpu seconds} snapshots taken with :meth:`mark`.
        own_s: CPU seconds this sampler thread used (subtract from the driver's).
    """

    def __init__(self, period: float = 0.1) -> None:
        super().__init__(daemon=True)
        import psutil

        self.psutil = psutil
        self.period = period
        self.root = psutil.Process(os.getpid())
        self.procs: dict[int, Any] = {}
        self.last: dict[int, float] = {}
        self.born: dict[int, float] = {}
        self.names: dict[int, str] = {}
        self.marks: dict[str, dict[int, float]] = {}
        self.mark_t: dict[str, float] = {}
        self.own_s = 0.0
        self.own_at_mark = 0.0
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self._rescan = 0.0
        self._sample()

    def _sample(self) -> None:
        psutil = self.psutil
        now = time.monotonic()
        if now - self._rescan > 0.5:
            self._rescan = now
            for p in [self.root] + self.root.children(recursive=True):
                if p.pid not in self.procs:
                    self.procs[p.pid] = p
                    self.born[p.pid] = now
                    try:
                        cmd = " ".join(p.cmdline())
                        kind = "[worker] " if cmd.startswith("ray::") or "workers/default_worker.py" in cmd else ""
                        self.names[p.pid] = kind + (cmd[:100] or p.name())
                    except psutil.Error:
                        self.names[p.pid] = "?"
        with self._lock:
            for pid, p in list(self.procs.items()):
                try:
                    t = p.cpu_times()
                    self.last[pid] = t.user + t.system
                except psutil.Error:
                    self.procs.pop(pid, None)

    def own_now(self) -> float:
        """CPU seconds of the sampler thread so far (0 before it runs)."""
        import psutil

        tid = self.native_id
        if tid is None:
            return 0.0
        for t in psutil.Process().threads():
            if t.id == tid:
                return t.user_time + t.system_time
        return 0.0

    def run(self) -> None:
        while not self._halt.wait(self.period):
            self._sample()
        self.own_s = self.own_now()

    def mark(self, name: str) -> None:
        self._sample()
        self.own_at_mark = self.own_now()
        with self._lock:
            self.marks[name] = dict(self.last)
            self.mark_t[name] = time.monotonic()

    def stop(self) -> None:
        self._halt.set()
        self.join(5)


def _delta(end: dict[int, float], start: dict[int, float], pids) -> float:
    return sum(end.get(p, 0.0) - start.get(p, 0.0) for p in pids if p in end)


def one_run(mode: str, seconds: float, tmp: Path, index: int, period: float) -> dict[str, Any]:
    from benchmarks.restarts import _with_capture
    from pipeline.graph import load_graph
    from pipeline.runners import ray_runner

    overrides = ["runtime.fuse=[]", f"runtime.checkpoint_s={0 if mode == 'off' else 5}",
                 f"runtime.max_restarts={0 if mode == 'nokeep' else 3}"]
    spec = _with_capture(load_graph("configs/replay_decode.yaml", overrides), tmp / f"{mode}{index}.yaml", seconds)
    sampler = CpuSampler(period)
    before = dict(sampler.last)
    events: dict[str, Any] = {}

    from benchmarks.restarts import _RunWatch

    watch = _RunWatch()

    def observer(event: str, info: dict) -> None:
        watch(event, info)
        if event == "started":
            events["pids"] = dict(info["pids"])
            sampler.mark("started")
        elif event == "spare_ready":
            events["spare_ready"] = time.monotonic()

    original_spare = ray_runner.Driver._spare
    if mode == "nospare":
        ray_runner.Driver._spare = lambda self: None  # restarts stay on (senders keep), no spare actor
    sampler.start()
    load = os.getloadavg()[0]
    try:
        summary = ray_runner.run(spec, progress=False, observer=observer)
    finally:
        ray_runner.Driver._spare = original_spare
        sampler.stop()
        watch.stop()
    rate = watch.steady()
    steady = None if rate is None else rate * summary["source_samples"] / seconds
    end = dict(sampler.last)
    started = sampler.marks.get("started", before)
    t_started = sampler.mark_t.get("started", time.monotonic())
    me = os.getpid()
    groups = events.get("pids", {})
    group_pids = set(groups.values())
    workers = {p for p, n in sampler.names.items() if n.startswith("[worker] ")}
    spare = {p for p in workers if p not in group_pids and sampler.born[p] >= t_started - 0.5}
    idle = workers - group_pids - spare
    system = set(sampler.names) - workers - {me}
    roles = {"driver": {me}, **{f"actor:{g}": {p} for g, p in groups.items()}, "spare": spare,
             "ray_idle_workers": idle, "ray_system": system}
    cpu_run = {r: round(_delta(end, started, ps), 3) for r, ps in roles.items()}
    cpu_start = {r: round(_delta(started, before, ps), 3) for r, ps in roles.items()}
    cpu_run["driver"] = round(cpu_run["driver"] - (sampler.own_s - sampler.own_at_mark), 3)  # the sampler's thread is not the driver's work
    role_of = {p: r for r, ps in roles.items() for p in ps}
    top = sorted(((round(end.get(p, 0.0) - started.get(p, 0.0), 3), role_of.get(p, "?"), p, sampler.names.get(p, "?"))
                  for p in end), reverse=True)[:12]
    return {"mode": mode, "top": top, "steady_samples_per_s": steady, "samples_per_s": summary["samples_per_s"], "wall_s": summary["wall_s"],
            "source_samples": summary.get("source_samples"), "checkpoints": summary.get("checkpoints"),
            "cpu_run_s": cpu_run, "cpu_startup_s": cpu_start, "sampler_s": round(sampler.own_s, 3),
            "spare_ready_after_start_s": (round(events["spare_ready"] - t_started, 2) if "spare_ready" in events else None),
            "load": load}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=3, help="rounds of the modes (default 3)")
    p.add_argument("--seconds", type=float, default=300.0, help="seconds of recording per run (default 300)")
    p.add_argument("--modes", nargs="+", choices=MODES, default=["off", "on"], help="modes (default off on)")
    p.add_argument("--period", type=float, default=0.1, help="CPU sampling period, s (default 0.1)")
    p.add_argument("--json", dest="json_path", default=None, help="write every run as JSON")
    args = p.parse_args(argv)
    from pipeline.runners.ray_runner import ensure_ray

    ensure_ray({}, None)
    print(time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "load", os.getloadavg(), flush=True)
    runs: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            order = list(args.modes) if i % 2 == 0 else list(reversed(args.modes))
            for mode in order:
                r = one_run(mode, args.seconds, Path(tmp), i, args.period)
                runs.append(r)
                actors = sum(v for k, v in r["cpu_run_s"].items() if k.startswith("actor:"))
                st = r["steady_samples_per_s"]
                print(f"round {i + 1} {mode:8s}: {r['samples_per_s']:,.0f} samples/s (steady {st or 0:,.0f}), wall {r['wall_s']:.1f} s, "
                      f"run CPU s: driver {r['cpu_run_s']['driver']:.2f}, actors {actors:.2f}, spare "
                      f"{r['cpu_run_s']['spare']:.2f}, ray idle {r['cpu_run_s']['ray_idle_workers']:.2f}, ray system "
                      f"{r['cpu_run_s']['ray_system']:.2f}; spare ready {r['spare_ready_after_start_s']} s; "
                      f"load {r['load']:.1f}", flush=True)
                for row in r["top"][:8]:
                    print("      ", row, flush=True)
                print("    per actor:", {k: v for k, v in r["cpu_run_s"].items() if k.startswith("actor:")}, flush=True)
    print("medians per mode (CPU seconds over the run; per 100k source samples in brackets):")
    for mode in args.modes:
        rs = [r for r in runs if r["mode"] == mode]
        keys = sorted({k for r in rs for k in r["cpu_run_s"]})
        med = {k: statistics.median(r["cpu_run_s"].get(k, 0.0) for r in rs) for k in keys}
        per = {k: statistics.median(1e5 * r["cpu_run_s"].get(k, 0.0) / r["source_samples"] for r in rs) for k in keys}
        total = statistics.median(sum(r["cpu_run_s"].values()) for r in rs)
        print(f"  {mode}: samples/s {statistics.median(r['samples_per_s'] for r in rs):,.0f} (steady "
              f"{statistics.median(r['steady_samples_per_s'] or 0 for r in rs):,.0f}); total {total:.2f} s; "
              + ", ".join(f"{k} {med[k]:.2f} [{per[k]:.2f}]" for k in keys))
    print("load after", os.getloadavg(), flush=True)
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(runs, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
