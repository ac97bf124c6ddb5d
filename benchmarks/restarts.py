"""``spikeloop bench restarts``: what a dead actor costs on the Ray runners.

1. **Kill to first output** (on ``--runner``). A live graph (LSL inlet -> Bessel -> LSL outlet, fused in one actor,
   ``runtime.checkpoint_s`` 1 s) is fed 250 Hz by a pusher; its actor process is SIGKILLed
   ``--kills`` times (each time after two checkpoints of the new incarnation). For each kill:
   seconds from the kill to the first output sample whose timestamp is later than the kill
   (what a client sees), and to the driver's "restarted" event. Median and max over the kills.
   The pusher and the client are threads of this process (a restart takes hundreds of ms, so
   their shared GIL does not matter at that scale).
2. **Checkpoint cost.** ``configs/replay_decode.yaml`` (replay at ``speed: max``, 20 ms packets,
   of the last ``--seconds`` of the bundled recording -> SNN decoder -> Bessel -> capture, every
   node its own actor) on ``--runner`` (``ray`` or ``ray-compiled``), with checkpoints every
   ``--interval`` s (default 5, the default of ``runtime.checkpoint_s``) and off, in ``--repeats``
   interleaved pairs (off/on, then on/off, ...): source samples per second of each run, the
   per-pair cost (1 - on/off) with its median and spread, and the work the checkpoints did,
   counted rather than timed (checkpoints taken, bytes pickled, seconds the groups spent in
   ``state()`` per second of run). On ``ray`` also the **steady-state** throughput (between 20 % and
   95 % of the data, from when the spare actor was ready: polled from the replay group) with its
   per-pair cost, and the **one-off** cost of being ready to restart: the CPU seconds the spare
   actor's process used to start and prepare, and when it was ready.

Timings on a shared machine are noisy: the load average is printed with the results.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.epilog = ("example:\n  spikeloop bench restarts --kills 5 --skip-cost   (kill -> restarted -> first output)\n"
                "  spikeloop bench restarts --skip-kills --runner ray-compiled   (checkpoint cost, 5 pairs)")
    p.add_argument("--kills", type=int, default=5, help="actor kills in the live run (default 5)")
    p.add_argument("--interval", type=float, default=5.0, help="checkpoint interval (s) for the throughput part (default 5)")
    p.add_argument("--repeats", type=int, default=5, help="interleaved pairs of replay runs, checkpoints off and on (default 5)")
    p.add_argument("--runner", choices=("ray", "ray-compiled"), default="ray",
                   help="runner of both parts (default ray)")
    p.add_argument("--seconds", type=float, default=120.0,
                   help="seconds of the bundled 10-minute recording replayed per throughput run (default 120)")
    p.add_argument("--skip-kills", action="store_true", help="only the checkpoint-cost part")
    p.add_argument("--skip-cost", action="store_true", help="only the kill part")
    p.add_argument("--json", dest="json_path", default=None, help="write the results as JSON")


class _Killer:
    """Kills the group's actor at its 3rd checkpoint after a restart, once the spare actor is up;
    after each restart, polls the new actor until its sinks have processed a new packet."""

    def __init__(self, group: str, kills: int) -> None:
        self.group, self.kills = group, kills
        self.pids: dict[str, int] = {}
        self.since_restart = 0
        self.spare_ready = False
        self.killed_lsl: list[float] = []
        self.restarted_after: list[float] = []
        self.output_after: list[float] = []
        self.parts: list[dict[str, float]] = []
        self.handle = None
        self._t_kill = 0.0

    def __call__(self, event: str, info: dict) -> None:
        import pylsl

        if event == "started":
            self.pids.update(info["pids"])
        elif event == "spare_ready":
            self.spare_ready = True
        elif event == "restarted":
            self.pids[info["group"]] = info["pid"]
            self.restarted_after.append(time.monotonic() - self._t_kill)
            parts = dict(info.get("parts_s") or {})
            if "noticed_at" in parts:
                parts["noticed"] = parts.pop("noticed_at") - self._t_kill
            self.parts.append(parts)
            self.since_restart = 0
            self.spare_ready = False
            threading.Thread(target=self._first_output, args=(info["actor"], info["sink_samples_restored"], self._t_kill),
                             daemon=True).start()
        elif event == "checkpoint" and info["group"] == self.group:
            self.since_restart += 1
            if self.since_restart >= 3 and self.spare_ready and len(self.killed_lsl) < self.kills:
                self._t_kill = time.monotonic()
                self.killed_lsl.append(pylsl.local_clock())
                self.since_restart = -10**9  # until the restart
                os.kill(self.pids[self.group], signal.SIGKILL)

    def _first_output(self, actor, restored: int, t_kill: float) -> None:
        """Poll the restarted actor (every 10 ms) until its sinks processed a packet after restoring."""
        import ray

        while time.monotonic() - t_kill < 30.0:
            ready, _ = ray.wait([ref := actor.status.remote()], timeout=1.0)
            if ready and ray.get(ref)["sink_samples"] > restored:
                self.output_after.append(time.monotonic() - t_kill)
                return
            time.sleep(0.01)


def kill_to_output(kills: int, runner_name: str = "ray") -> dict:
    import pylsl

    from pipeline.graph import parse_graph
    from pipeline.lsl import to_lsl_info
    from pipeline.packet import StreamInfo
    from pipeline.runners import get_runner

    run = get_runner(runner_name)
    tag = uuid.uuid4().hex[:8]
    src, out = f"bench_rs_in_{tag}", f"bench_rs_out_{tag}"
    outlet = pylsl.StreamOutlet(to_lsl_info(StreamInfo(src, "Bench", 2, 250.0, "float32", source_id=f"sid-{tag}")))
    doc = {
        "name": "restart_bench",
        "nodes": {
            "inlet": {"kind": "lsl_inlet", "params": {"name": src, "clock_sync": False, "resolve_timeout_s": 30}},
            "smooth": {"kind": "bessel", "params": {"order": 2, "cutoff_hz": 20}},
            "outlet": {"kind": "lsl_outlet", "params": {"name": out}},
        },
        "edges": ["inlet -> smooth -> outlet"],
        "runtime": {"fuse": [["inlet", "smooth", "outlet"]], "checkpoint_s": 1.0, "max_restarts": kills},
    }
    spec = parse_graph(doc, "<bench restarts>")
    killer = _Killer("inlet+smooth+outlet", kills)
    result: dict = {}
    duration = 15.0 + 12.0 * kills
    runner = threading.Thread(target=lambda: result.update(
        run(spec, progress=False, duration_s=duration, observer=killer)))
    runner.start()
    stop = threading.Event()

    def push() -> None:
        while not stop.is_set():
            outlet.push_sample([1.0, 2.0], pylsl.local_clock())
            time.sleep(0.004)

    threading.Thread(target=push, daemon=True).start()
    found = pylsl.resolve_byprop("name", out, 1, 60.0)
    if not found:
        stop.set()
        runner.join(120)
        raise RuntimeError("the benchmark graph's outlet did not appear")
    client = pylsl.StreamInlet(found[0], recover=True)
    stamps: list[float] = []
    while runner.is_alive():
        _, ts = client.pull_chunk(timeout=0.05)
        stamps.extend(ts)
    stop.set()
    runner.join(60)
    arr = np.array(stamps)
    to_output = []
    for t_kill in killer.killed_lsl:
        after = arr[arr > t_kill]
        if after.size:
            # the sample pushed after the kill reaches the client at about its stamp + the live
            # latency; the first one seen is the resumption (stamps are the pusher's clock)
            to_output.append(float(after[0] - t_kill))
    return {
        "kills": len(killer.killed_lsl),
        "restarts": result.get("restarts", {}),
        "kill_to_first_output_stamp_s": to_output,
        "kill_to_restarted_s": killer.restarted_after,
        "kill_to_first_output_pushed_s": killer.output_after,
        "restart_parts_s": killer.parts,
        "p50_restart_parts_s": {k: statistics.median(p[k] for p in killer.parts if k in p)
                                for k in sorted({k for p in killer.parts for k in p})},
        "p50_kill_to_first_output_pushed_s": statistics.median(killer.output_after) if killer.output_after else None,
        "p50_kill_to_first_output_s": statistics.median(to_output) if to_output else None,
        "max_kill_to_first_output_s": max(to_output) if to_output else None,
        "p50_kill_to_restarted_s": statistics.median(killer.restarted_after) if killer.restarted_after else None,
    }


class _RunWatch:
    """Observer of one throughput run (``ray`` runner): polls the replay group's progress (data
    seconds done) every ``period`` s, and notes the spare actor's pid and when it was ready.

    ``steady()`` is the throughput between 20 % and 95 % of the data, started no earlier than the
    spare being ready: the run once its one-off start-up work (the spare's process) is done."""

    def __init__(self, period: float = 0.25) -> None:
        self.period = period
        self.points: list[tuple[float, float]] = []
        self.total: float | None = None
        self.t_started: float | None = None
        self.spare_pid: int | None = None
        self.t_spare: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __call__(self, event: str, info: dict) -> None:
        if event == "started":
            self.t_started = time.monotonic()
            actors = info.get("actors") or {}
            replay = next((a for g, a in actors.items() if "replay" in g.split("+")), None)
            if replay is not None:
                self._thread = threading.Thread(target=self._poll, args=(replay,), daemon=True)
                self._thread.start()
        elif event == "spare_ready":
            self.spare_pid, self.t_spare = info.get("pid"), time.monotonic()

    def _poll(self, actor) -> None:
        import ray

        while not self._stop.is_set():
            ref = actor.progress.remote()
            ready, _ = ray.wait([ref], timeout=1.0)
            if ready:
                try:
                    got = ray.get(ref)
                except ray.exceptions.RayError:
                    return  # the run ended (actor gone)
                if got is not None:
                    self.points.append((time.monotonic(), float(got[0])))
                    self.total = float(got[1])
            self._stop.wait(self.period)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def spare_cpu_s(self) -> float | None:
        """CPU seconds (user + system) the spare actor's process used by now (None if unknown)."""
        if self.spare_pid is None:
            return None
        try:
            import psutil

            t = psutil.Process(self.spare_pid).cpu_times()
            return t.user + t.system
        except Exception:  # noqa: BLE001 - gone, or on another machine
            return None

    def steady(self) -> float | None:
        """Data seconds per wall second between 20 % and 95 % of the data (after the spare was ready)."""
        if not self.points or not self.total:
            return None
        t_from = self.t_spare or 0.0
        pts = [(t, x) for t, x in self.points if t >= t_from and 0.2 * self.total <= x <= 0.95 * self.total]
        if len(pts) < 4 or pts[-1][0] - pts[0][0] < 2.0:
            return None
        return (pts[-1][1] - pts[0][1]) / (pts[-1][0] - pts[0][0])


def checkpoint_cost(interval: float, repeats: int, seconds: float, runner: str = "ray") -> dict:
    from pipeline.graph import load_graph
    from pipeline.runners import get_runner

    run = get_runner(runner)
    rates: dict[str, list[float]] = {"off": [], "on": []}
    steady: dict[str, list[float | None]] = {"off": [], "on": []}
    spare_cpu: list[float] = []
    spare_ready: list[float] = []
    work: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeats):
            for mode in (("off", "on") if i % 2 == 0 else ("on", "off")):  # interleaved, order alternated
                spec = load_graph("configs/replay_decode.yaml",
                                  ["runtime.fuse=[]", f"runtime.checkpoint_s={interval if mode == 'on' else 0}"])
                spec = _with_capture(spec, Path(tmp) / f"{mode}{i}.yaml", seconds)
                watch = _RunWatch()
                try:
                    summary = run(spec, progress=False, observer=watch)
                finally:
                    watch.stop()
                rates[mode].append(summary["samples_per_s"])
                per_data_s = summary["source_samples"] / seconds  # samples per second of data
                rate = watch.steady()
                steady[mode].append(None if rate is None else rate * per_data_s)
                ck = summary.get("checkpoints") or {}
                extra = ""
                if mode == "on":
                    work.append(dict(ck, wall_s=summary["wall_s"]))
                    cpu = watch.spare_cpu_s()
                    if cpu is not None:
                        spare_cpu.append(cpu)
                    if watch.t_spare is not None and watch.t_started is not None:
                        spare_ready.append(watch.t_spare - watch.t_started)
                    extra = (f"; spare ready after {spare_ready[-1] if spare_ready else float('nan'):.1f} s, "
                             f"its CPU {cpu if cpu is not None else float('nan'):.2f} s")
                st = steady[mode][-1]
                print(f"  pair {i + 1}/{repeats} checkpoints {mode}: {summary['samples_per_s']:,.0f} samples/s, steady "
                      f"{'-' if st is None else f'{st:,.0f}'} ({summary['wall_s']:.1f} s; checkpoints {ck.get('count', 0)}, "
                      f"{ck.get('bytes', 0):,} bytes, state() {ck.get('state_s', 0.0) * 1e3:.1f} ms{extra}; "
                      f"load {os.getloadavg()[0]:.1f})", flush=True)
    off, on = statistics.median(rates["off"]), statistics.median(rates["on"])
    pair_cost = [100.0 * (1.0 - b / a) for a, b in zip(rates["off"], rates["on"])]
    steady_pairs = [100.0 * (1.0 - b / a) for a, b in zip(steady["off"], steady["on"]) if a and b]
    state_frac = [w["state_s_per_s"] for w in work if w.get("state_s_per_s") is not None]
    return {"runner": runner, "interval_s": interval, "samples_per_s_off": rates["off"], "samples_per_s_on": rates["on"],
            "median_off": off, "median_on": on, "cost_pct": 100.0 * (off - on) / off,
            "pair_cost_pct": pair_cost, "median_pair_cost_pct": statistics.median(pair_cost),
            "pair_cost_range_pct": [min(pair_cost), max(pair_cost)], "work": work,
            "steady_samples_per_s_off": steady["off"], "steady_samples_per_s_on": steady["on"],
            "steady_pair_cost_pct": steady_pairs,
            "median_steady_pair_cost_pct": statistics.median(steady_pairs) if steady_pairs else None,
            "spare_cpu_s": spare_cpu, "median_spare_cpu_s": statistics.median(spare_cpu) if spare_cpu else None,
            "spare_ready_after_s": spare_ready,
            "median_state_s_per_s": statistics.median(state_frac) if state_frac else None,
            "median_bytes_per_s": statistics.median([w["bytes_per_s"] for w in work if w.get("bytes_per_s") is not None] or [0])}


def _with_capture(spec, path: Path, seconds: float):
    """The replay_decode graph with the scorer replaced by a capture node, ``seconds`` of data."""
    import yaml

    from pipeline.graph import load_graph

    doc = yaml.safe_load(Path(spec.file).read_text())
    doc["nodes"]["score"] = {"kind": "capture", "params": {"streams": ["pred", "true"]}}
    doc["nodes"]["replay"]["params"]["start_s"] = max(0.0, 600.0 - seconds)  # the last `seconds` of 10 min
    doc["nodes"]["replay"]["params"]["chunk_s"] = 0.02  # 5 samples a packet: actor calls do not dominate
    for key in ("path",):
        doc["nodes"]["replay"]["params"][key] = str(Path(doc["nodes"]["replay"]["params"][key]).resolve())
    doc["nodes"]["decoder"]["params"]["model"] = str(Path(doc["nodes"]["decoder"]["params"]["model"]).resolve())
    doc["runtime"] = dict(spec.runtime, fuse=[], address=None)
    path.write_text(yaml.safe_dump(doc))
    return load_graph(path)


def run(args: argparse.Namespace) -> int:
    from pipeline.runners.ray_runner import ensure_ray

    ensure_ray({}, None)
    load = os.getloadavg()
    results: dict = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load_before": load}
    print(f"machine load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1/5/15 min), {os.cpu_count()} cores")
    if not args.skip_kills:
        print(f"live graph on {args.runner}, {args.kills} actor kills:", flush=True)
        k = kill_to_output(args.kills, args.runner)
        results["kills"] = k
        fmt = lambda xs: ", ".join(f"{x:.3f}" for x in xs)  # noqa: E731
        one = lambda x: "-" if x is None else f"{x:.3f}"  # noqa: E731
        print(f"  kill -> actor restarted (s): p50 {one(k['p50_kill_to_restarted_s'])}  [{fmt(k['kill_to_restarted_s'])}]")
        print(f"  kill -> first output pushed by the restarted graph (s): p50 {one(k['p50_kill_to_first_output_pushed_s'])}"
              f"  [{fmt(k['kill_to_first_output_pushed_s'])}]")
        print("  where the restart's time went, p50 (s): " + ", ".join(
            f"{name} {v:.3f}" for name, v in k["p50_restart_parts_s"].items())
              + "  (noticed = kill -> the driver notices; configure/open/restore = the new actor)")
        print(f"  kill -> first post-kill sample seen by an LSL client (s, liblsl reconnection included): "
              f"p50 {one(k['p50_kill_to_first_output_s'])}  [{fmt(k['kill_to_first_output_stamp_s'])}]")
    if not args.skip_cost:
        print(f"replay throughput on {args.runner}, checkpoints every {args.interval:g} s vs off, "
              f"{args.repeats} interleaved pairs:", flush=True)
        c = checkpoint_cost(args.interval, args.repeats, args.seconds, args.runner)
        results["checkpoint_cost"] = c
        lo, hi = c["pair_cost_range_pct"]
        print(f"  median samples/s: off {c['median_off']:,.0f}, on {c['median_on']:,.0f}; cost of the medians "
              f"{c['cost_pct']:.1f} %; per pair median {c['median_pair_cost_pct']:.1f} % (range {lo:.1f} .. {hi:.1f} %)")
        if c["median_steady_pair_cost_pct"] is not None:
            sp = c["steady_pair_cost_pct"]
            print(f"  steady state (20-95 % of the data, after the spare was ready): per pair median "
                  f"{c['median_steady_pair_cost_pct']:.1f} % (range {min(sp):.1f} .. {max(sp):.1f} %)")
        if c["median_spare_cpu_s"] is not None:
            print(f"  one-off: the spare actor's process used {c['median_spare_cpu_s']:.2f} CPU s (median) to start and "
                  f"prepare, ready {statistics.median(c['spare_ready_after_s']):.1f} s after the graph started")
        if c["median_state_s_per_s"] is not None:
            print(f"  work: the groups spent {100 * c['median_state_s_per_s']:.3f} % of the run's wall time in state() "
                  f"(summed over groups), {c['median_bytes_per_s']:,.0f} checkpoint bytes per second (medians)")
    results["load_after"] = os.getloadavg()
    print(f"machine load average after: {results['load_after'][0]:.1f}")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(results, indent=2) + "\n")
    return 0
