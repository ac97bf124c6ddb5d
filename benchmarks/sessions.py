"""``spikeloop bench sessions``: how many live sessions fit on one local Ray cluster?

What is measured
    One Ray cluster is started on loopback for the whole benchmark (``ray start --head --block
    --node-ip-address=127.0.0.1`` with a temporary ``--temp-dir`` and a free port; at the end
    exactly the processes of that cluster are stopped, no other Ray on the machine is touched).
    For each ``--sessions N``, N live sessions run at once on it, each a ``spikeloop run CONFIG
    --runner ray --address 127.0.0.1:PORT`` process with the graph

        LSL in (96 channels, 250 Hz) -> Bessel (4th order, 6.25 Hz) -> SNN decoder -> LSL out

    fused in one actor. The outside clients are processes of their own: by default (``--clients
    shared``) ONE pusher process for all N input streams, staggered over the 4 ms period, and ONE
    receiver process with a thread per output stream (:mod:`benchmarks.session_clients`), as if the
    rigs were other machines; with ``--clients per-session`` every session has its own pusher and
    receiver (:mod:`benchmarks.latency_clients`; 2N Python processes whose own CPU, 3.5-5 % of a
    core each, is as large as the sessions' on 2 cores). Pushes are one sample per 4 ms per stream,
    stamped at the push; the receivers record every output's arrival. Pushers warm up until *every* session
    produced output, then all measure the same ``--duration`` window. Outputs are matched to inputs
    by timestamp (:func:`benchmarks.latency._score`): latency = arrival - push stamp; inputs never
    seen at the output are *lost*.

    Reported per N and session: p50/p99/max (ms), lost/pushed, CPU (% of one core) of its actor's
    worker process (pid from the run's summary) plus its ``spikeloop run`` process, and its start-up
    time (graph launch -> first output); per N: the worst session's p99, total lost, total CPU of
    the cluster's process tree plus all session processes (actors included), the 1-minute load
    average at the start and end of the window, the actors' niceness. Sessions that fail to start
    (no output within ``--startup-timeout`` of their own start, or a process exited) are reported
    with their log's last line.

Start-up (reported, not hidden)
    Sessions start in phases: a session's pusher first, and its graph (with its receiver) only
    once the pusher's stream exists, so no inlet races its pusher to LSL discovery; and at most
    ``--startup-parallel`` sessions (default 2) are in start-up at once, the next starting when one
    produces output. One session's start-up costs about 4-5 CPU seconds (driver imports and Ray
    connection, a Ray worker process for its actor, the decoder's compiled loop; measured with
    ``python -m benchmarks.session_startup``); started all at once (``--startup-parallel 0``), 16 of
    them ask a 2-core machine for over a minute of CPU while 2N clients and the sessions already
    running compete for it, and the late ones ran out of their time limits. Each inlet's resolve
    timeout is ``--resolve-timeout`` (default 60 s). The cluster's workers run at
    ``--worker-niceness`` (default 0; see :class:`LocalCluster`).
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

from benchmarks.latency import GRAPH, CpuMeter, MachineMeter, _client, _score, _stop, not_quiet_warning

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = REPO / "models" / "snn_streaming_sample.npz"
RATE_HZ = 250.0
SETTLE_S = 20.0
"""Default seconds between the last session's first output and the measured window: each session's
spare actor (restarts on) starts its process at normal priority in its first ~10-20 s, and several
starting inside the window put tens of ms into every session's p99 on 2 cores."""
PUSHER_UP_S = 60.0
"""Longest wait for a session's pusher to create its stream (it is a small Python process)."""
EPILOG = """\
Each session: spikeloop run (ray runner, joined to the benchmark's own loopback cluster) with
LSL in -> Bessel(4, 6.25 Hz) -> SNN decoder -> LSL out fused in one actor, 96 channels at 250 Hz,
its own pusher and receiver processes. Latency is push -> arrival at the receiver.

Sessions start in phases (pusher, then its graph once the pusher's stream exists), at most
--startup-parallel at once; each session's start-up time is reported. Workers of the benchmark's
cluster run at --worker-niceness (default 0; Ray's default 15 starves the actors behind the
clients).

examples:
  spikeloop bench sessions --sessions 1 4 8 16 --duration 60 --json out/sessions.json
  spikeloop bench sessions --sessions 16 --duration 60 --startup-parallel 0   # all 16 start at once
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sessions", type=int, nargs="+", default=[1, 4], metavar="N",
                   help="numbers of concurrent sessions to measure, one after the other (default: 1 4)")
    p.add_argument("--duration", type=float, default=60.0, metavar="S",
                   help="seconds measured per N, the same window for every session (default 60)")
    p.add_argument("--wait", choices=("auto", "block"), default="block",
                   help="how each graph's LSL inlet waits: block (in liblsl, no spinning; default) or auto")
    p.add_argument("--model", default=str(DEFAULT_MODEL), help="decoder model (default: the bundled SNN sample)")
    p.add_argument("--startup-timeout", type=float, default=180.0, metavar="S",
                   help="longest wait for the cluster, and for each session's graph to produce output, counted "
                        "from its own start (default 180)")
    p.add_argument("--startup-parallel", type=int, default=2, metavar="K",
                   help="sessions in start-up at once: the next one starts when one of them produces output "
                        "(or fails); 0 = all N at once (default 2: on 2 cores, 16 start-ups at once starve each other)")
    p.add_argument("--resolve-timeout", type=float, default=60.0, metavar="S",
                   help="each graph's LSL inlet: longest wait for its pusher's stream (default 60; the pusher's "
                        "stream exists before its graph starts)")
    p.add_argument("--worker-niceness", type=int, default=0, metavar="NICE",
                   help="niceness of the cluster's Ray workers, i.e. the sessions' actors (RAY_worker_niceness; "
                        "default 0, as the ray runner's own local Ray; Ray's default is 15)")
    p.add_argument("--settle", type=float, default=SETTLE_S, metavar="S",
                   help="seconds from the last session's first output to the measured window (default 20: the "
                        "sessions' spare actors start in their first ~10-20 s)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="passed to every session's spikeloop run, e.g. --set runtime.max_restarts=0 (no spare "
                        "actor) or --set runtime.checkpoint_s=0 (repeatable)")
    p.add_argument("--clients", choices=("shared", "per-session"), default="shared",
                   help="the outside clients: 'shared' = one pusher process for all N input streams (staggered "
                        "pushes) and one receiver process for all N outputs, as if the rigs were other machines; "
                        "'per-session' = a pusher and a receiver process per session (2N processes; on 2 cores their "
                        "own CPU starves the sessions) (default shared)")
    p.add_argument("--json", dest="json_path", metavar="PATH", help="also write every session's figures as JSON")
    p.add_argument("--graph", dest="graph_kind", choices=("spikeloop", "relay"), default="spikeloop",
                   help="what each session runs: 'spikeloop' = the graph above as a spikeloop run on the cluster "
                        "(default); 'relay' = a bare pylsl relay process (pull -> push, no Ray, no nodes), the "
                        "floor under any LSL-in/LSL-out graph on this machine, measured the same way")
    p.add_argument("--keep", metavar="DIR",
                   help="keep every session's files in DIR (graph.yaml, graph.log, summary.json, and the clients' "
                        "pushed.npz / received.npz: each sample's push schedule, stamp and arrival time in s on the "
                        "LSL clock), e.g. to line the largest delays up with a trace; default: a temporary directory")


# --- the cluster ----------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalCluster:
    """A Ray head node on loopback, started with ``ray start --block`` in a temporary directory.

    ``worker_niceness``: ``RAY_worker_niceness`` for its workers (the sessions' group actors); 0 by
    default, deliberately: Ray's own default, 15, makes every actor yield to any normal process
    (its CFS weight is 36 against 1024), so on a machine also running the benchmark's 2N client
    processes the actors' start-up and data path wait behind them. 0 is also what the ``ray``
    runner's own local Ray uses (:data:`pipeline.runners.ray_runner.WORKER_NICENESS`). None keeps
    Ray's default.

    ``stop()`` ends exactly this cluster's processes (the ``ray start`` process and every process
    seen in its tree), SIGTERM first and SIGKILL after ``grace_s``; ``ray stop`` would end every Ray
    on the machine.
    """

    def __init__(self, num_cpus: int, startup_s: float, worker_niceness: int | None = 0) -> None:
        self.port = _free_port()
        self.worker_niceness = worker_niceness
        self.address = f"127.0.0.1:{self.port}"
        # Short path: Ray's Unix sockets live under it (107-byte limit).
        self.temp_dir = Path(tempfile.mkdtemp(prefix="slr_", dir="/tmp"))
        # Token authentication with a fresh token of this cluster's own (not ~/.ray/auth_token): only
        # processes given this environment (the sessions) can join.
        self.env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",
                        RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=uuid.uuid4().hex + uuid.uuid4().hex)
        if worker_niceness is not None:  # read by the raylet `ray start` launches (its workers: our actors)
            self.env["RAY_worker_niceness"] = str(worker_niceness)
        else:
            self.env.pop("RAY_worker_niceness", None)
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

    def actor_niceness(self) -> list[int]:
        """The niceness values of the cluster's group actors now (``ray::GroupActor`` processes)."""
        import psutil

        found = set()
        for pid in self.pids():
            try:
                p = psutil.Process(pid)
                cmd = p.cmdline()
                if cmd and cmd[0].startswith("ray::GroupActor"):
                    found.add(p.nice())
            except psutil.Error:
                continue
        return sorted(found)

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


# --- one N ---------------------------------------------------------------------------------------------
class Session:
    """One live session: its pusher, graph process and receiver, all in ``workdir``, started in phases.

    :meth:`start` launches the pusher; :meth:`advance` (called every 0.1 s) launches the graph and the
    receiver once the pusher's stream exists (its ``outlet`` file), and notes when the first output
    arrives (``ready``) or why the session failed. ``startup_s``: from the pusher's launch to the first
    output; ``graph_startup_s``: from the graph's launch to the first output.
    """

    def __init__(self, index: int, workdir: Path, cluster: "LocalCluster | None", model: str, wait: str,
                 duration: float, startup_s: float, resolve_s: float, client_startup_s: float,
                 shared: "SharedClients | None" = None, settle_s: float = SETTLE_S,
                 overrides: tuple[str, ...] = (), graph_kind: str = "spikeloop") -> None:
        self.index, self.workdir, self.cluster = index, workdir, cluster
        self.graph_kind = graph_kind
        self.shared = shared
        self.settle = settle_s
        self.overrides: list[str] = list(overrides)
        workdir.mkdir(parents=True, exist_ok=True)
        tag = uuid.uuid4().hex[:8]
        self.in_name, self.out_name = f"bench_sin_{tag}", f"bench_sout_{tag}"
        self.config = workdir / "graph.yaml"
        graph = GRAPH.replace("resolve_timeout_s: 30", "resolve_timeout_s: {resolve}")
        self.config.write_text(graph.format(in_name=self.in_name, out_name=self.out_name, model=model, wait=wait,
                                            fuse="[[inlet, smooth, decoder, outlet]]", resolve=f"{resolve_s:g}"))
        self.summary_path = workdir / "summary.json"
        self.duration, self.startup_limit, self.client_startup = duration, startup_s, client_startup_s
        self.pusher: subprocess.Popen | None = None
        self.graph: subprocess.Popen | None = None
        self.receiver: subprocess.Popen | None = None
        self.phase = "waiting"  # -> pusher -> graph -> up | failed
        self.t_start = self.t_graph = self.t_up = 0.0
        self.t0 = 0.0  # when the start of all sessions began (set by start_all)
        self.startup_s: float | None = None
        self.graph_startup_s: float | None = None
        self.error: str | None = None
        self.meter: CpuMeter | None = None

    def start(self) -> None:
        """Launch the pusher (its stream must exist before the graph resolves it)."""
        self.t_start = time.monotonic()
        if self.shared is not None:  # the shared pusher made this session's stream already
            self.pusher = self.shared.pusher
            self.phase = "pusher"
            return
        self.pusher = _client("push", self.workdir, "--name", self.in_name, "--rate", str(RATE_HZ),
                              "--duration", str(self.duration), "--startup", str(self.client_startup),
                              "--settle", str(self.settle), "--seed", str(self.index))
        self.phase = "pusher"

    def _launch_graph(self) -> None:
        if self.graph_kind == "relay":  # the floor: a bare pylsl relay, no Ray, no nodes
            cmd = [sys.executable, "-m", "benchmarks.latency_clients", "relay", "--name", self.in_name,
                   "--out-name", self.out_name]
            env = None
        else:
            cmd = [sys.executable, "-m", "pipeline", "run", str(self.config), "--runner", "ray", "--address",
                   self.cluster.address, "--no-progress", "--json", str(self.summary_path)]
            for item in self.overrides:
                cmd += ["--set", item]
            env = self.cluster.env
        self.t_graph = time.monotonic()
        self.graph = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=open(self.workdir / "graph.log", "w"),
                                      stderr=subprocess.STDOUT)
        if self.shared is not None:  # the shared receiver is already resolving this session's output
            self.receiver = self.shared.receiver
            self.phase = "graph"
            return
        self.receiver = _client("receive", self.workdir, "--name", self.out_name, "--startup", str(self.client_startup),
                                "--settle", str(self.settle), "--duration", str(self.duration), "--ready", "ready")
        self.phase = "graph"

    def advance(self) -> None:
        """One look at the session's start-up: next phase, up, or failed (every wait bounded)."""
        now = time.monotonic()
        if self.phase == "pusher":
            if (self.workdir / "outlet").exists():
                self._launch_graph()
            elif self.pusher is not None and self.pusher.poll() is not None:
                self._fail(f"pusher exited with code {self.pusher.returncode} before its stream existed")
            elif now - self.t_start > PUSHER_UP_S:
                self._fail(f"pusher's stream {self.in_name!r} not created within {PUSHER_UP_S:g} s")
        elif self.phase == "graph":
            if self.ready():
                self.phase, self.t_up = "up", now
                self.startup_s, self.graph_startup_s = now - self.t_start, now - self.t_graph
            elif (why := self.failed()) is not None:
                self._fail(why)
            elif now - self.t_graph > self.startup_limit:
                self._fail(f"no output on {self.out_name!r} within {self.startup_limit:g} s of its start ({self.log_tail()})")

    def _fail(self, why: str) -> None:
        self.error, self.phase = why, "failed"

    @property
    def starting(self) -> bool:
        return self.phase in ("pusher", "graph")

    def ready(self) -> bool:
        return (self.workdir / "ready").exists()

    def failed(self) -> str | None:
        if self.graph is not None and self.graph.poll() is not None:
            return f"spikeloop run exited with code {self.graph.returncode}: {self.log_tail()}"
        if self.pusher is not None and self.pusher.poll() is not None:
            return f"pusher exited with code {self.pusher.returncode}"
        if self.receiver is not None and self.receiver.poll() is not None and not self.ready():
            err = self.workdir / "receiver_error"
            return err.read_text() if err.exists() else f"receiver exited with code {self.receiver.returncode}"
        return None

    def log_tail(self) -> str:
        log = self.workdir / "graph.log"
        lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()] if log.exists() else []
        return lines[-1].strip() if lines else "(no output)"


class SharedClients:
    """``--clients shared``: one pusher process for every session's input stream and one receiver
    process for every output (:mod:`benchmarks.session_clients`), started before the sessions; each
    session's files (``outlet``, ``ready``, ``pushed.npz``, ``received.npz``) are where its own
    clients would put them, so start-up and scoring are the same as with per-session clients."""

    def __init__(self, sessions: list[Session], workdir: Path, duration: float, startup_s: float,
                 settle_s: float) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        names = [s.in_name for s in sessions]
        dirs = [str(s.workdir) for s in sessions]
        common = ["--workdir", str(workdir), "--sessions", *dirs, "--duration", str(duration),
                  "--startup", str(startup_s), "--settle", str(settle_s)]
        self.pusher = self._launch("push-many", ["--names", *names, "--rate", str(RATE_HZ), *common])
        self.receiver = self._launch("receive-many", ["--names", *[s.out_name for s in sessions], *common])
        for s in sessions:
            s.shared = self

    def _launch(self, role: str, args: list[str]) -> subprocess.Popen:
        cmd = [sys.executable, "-m", "benchmarks.session_clients", role, *args]
        return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=open(self.workdir / f"{role}.log", "w"))


def start_all(sessions: list[Session], parallel: int) -> float:
    """Bring ``sessions`` up, at most ``parallel`` in start-up at once (0 = all at once); return the seconds taken.

    A session is in start-up from its pusher's launch until its first output (or its failure). Every
    wait is bounded by the sessions' own limits (:data:`PUSHER_UP_S`, ``--startup-timeout``)."""
    t0 = time.monotonic()
    for s in sessions:
        s.t0 = t0
    waiting = list(sessions)
    limit = parallel if parallel > 0 else len(sessions)
    while waiting or any(s.starting for s in sessions):
        while waiting and sum(s.starting for s in sessions) < limit:
            waiting.pop(0).start()
        for s in sessions:
            if s.starting:
                s.advance()
        time.sleep(0.1)
    return time.monotonic() - t0


def measure_n(n: int, cluster: LocalCluster | None, root: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Run ``n`` sessions at once on ``cluster`` (None: ``--graph relay``, no Ray); every session's figures
    and the summary for ``n``."""
    overrides = tuple(getattr(args, "overrides", ()) or ())
    graph_kind = getattr(args, "graph_kind", "spikeloop")
    sessions: list[Session] = []
    shared: SharedClients | None = None
    total: CpuMeter | None = None
    clients: CpuMeter | None = None
    result: dict[str, Any] = {"sessions_requested": n, "startup_parallel": args.startup_parallel,
                              "resolve_timeout_s": args.resolve_timeout, "startup_timeout_s": args.startup_timeout,
                              "worker_niceness": args.worker_niceness, "clients": args.clients,
                              "settle_s": args.settle, "overrides": list(overrides)}
    # the clients wait (bounded) for the last session to come up before the measured window starts
    client_startup = n * (args.startup_timeout + PUSHER_UP_S) + 60.0
    try:
        for i in range(n):
            sessions.append(Session(i, root / f"n{n}_s{i}", cluster, args.model, args.wait, args.duration,
                                    args.startup_timeout, args.resolve_timeout, client_startup, settle_s=args.settle,
                                    overrides=overrides, graph_kind=graph_kind))
        if args.clients == "shared":
            shared = SharedClients(sessions, root / f"n{n}_clients", args.duration, client_startup, args.settle)
        result["load_1min_before_startup"] = os.getloadavg()[0]
        result["startup_s"] = start_all(sessions, args.startup_parallel)
        live = [s for s in sessions if s.error is None]
        ups = [s.graph_startup_s for s in live if s.graph_startup_s is not None]
        result["graph_startup_s_median"] = float(np.median(ups)) if ups else None
        result["graph_startup_s_max"] = max(ups) if ups else None
        print(f"[{n} sessions] {len(live)}/{n} producing output after {result['startup_s']:.1f} s "
              f"(at most {args.startup_parallel or n} starting at once; one session's start-up median "
              f"{result['graph_startup_s_median'] or 0:.1f} s); measuring {args.duration:g} s", file=sys.stderr, flush=True)
        if live:
            for s in live:
                (s.workdir / "go").touch()  # every pusher starts its window --settle s from now
            if shared is not None:
                (shared.workdir / "go").touch()
            time.sleep(args.settle)
            result["load_1min_start"] = os.getloadavg()[0]
            total = CpuMeter(*([cluster.proc.pid] if cluster is not None else []),
                             *(s.graph.pid for s in live if s.graph is not None))
            total.begin()
            client_pids = ([shared.pusher.pid, shared.receiver.pid] if shared is not None else
                           [p.pid for s in live for p in (s.pusher, s.receiver) if p is not None])
            clients = CpuMeter(*client_pids)
            clients.begin()
            machine = MachineMeter()
            machine.begin()
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
            result["cpu_clients"] = clients.end()
            result.update(machine.end())
            result["load_1min_end"] = os.getloadavg()[0]
            if cluster is not None:
                result["actor_niceness"] = cluster.actor_niceness()
                cluster.pids()
            time.sleep(0.5)  # stragglers
    finally:
        for s in sessions:
            (s.workdir / "stop").touch()
        deadline = time.monotonic() + 15.0  # one bounded wait shared by all receivers, not 15 s each
        for s in sessions:
            if s.receiver is not None:
                if not s.ready() and shared is None:  # still resolving: nothing to save, cannot see "stop"
                    _stop(s.receiver)
                try:
                    s.receiver.wait(max(0.1, deadline - time.monotonic()))  # it saves its results on "stop"
                except subprocess.TimeoutExpired:
                    _stop(s.receiver)
            _stop(s.pusher)
        if shared is not None:
            for proc in (shared.receiver, shared.pusher):
                try:
                    proc.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    _stop(proc)
        for s in sessions:  # Ctrl-C for every run at once, then a bounded wait for each
            if s.graph is not None and s.graph.poll() is None:
                s.graph.send_signal(signal.SIGTERM if s.graph_kind == "relay" else signal.SIGINT)
        # one bounded wait shared by all runs; never a second Ctrl-C, which would force a run's exit
        # before it writes its summary: only a run still alive after the wait is terminated
        deadline = time.monotonic() + 60.0
        for s in sessions:
            if s.graph is None:
                continue
            try:
                s.graph.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _stop(s.graph)
    rows = []
    for s in sessions:
        row: dict[str, Any] = {"session": s.index, "in": s.in_name, "out": s.out_name,
                               "startup_s": s.startup_s, "graph_startup_s": s.graph_startup_s,
                               # when (s after the first start) its pusher was launched and its first output came
                               "started_at_s": s.t_start - s.t0 if s.t_start else None,
                               "up_at_s": s.t_up - s.t0 if s.t_up else None}
        if s.error is not None:
            row["error"] = s.error
        else:
            row.update(_score(s.workdir, events=False))
            row["cpu_run_pct"] = getattr(s, "cpu", {}).get("cpu_pct")
            if s.graph_kind == "relay":  # one process per session, no actor: its own CPU
                row["cpu_pct"] = row["cpu_run_pct"]
            elif not s.summary_path.exists():
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

    relay = getattr(args, "graph_kind", "") == "relay"
    what = ("bare pylsl relays (the floor; no Ray, no nodes)" if relay
            else "concurrent live sessions on one loopback Ray cluster")
    table = Table(title=f"{what}: push -> arrival (ms), "
                        f"{args.duration:g} s window, 96 ch at 250 Hz, inlet wait={args.wait}; {os.cpu_count()} CPUs; "
                        f"start-up: at most {args.startup_parallel or 'all'} at once, inlet resolve timeout "
                        f"{args.resolve_timeout:g} s, worker niceness {args.worker_niceness}",
                  title_justify="left")
    for col in ("N", "session", "p50", "p99", "max", "lost / pushed", "CPU %\nactor+run", "start-up s",
                "load 1 min", "note"):
        table.add_column(col, justify="left" if col in ("session", "note") else "right")

    def f(v: Any, d: int = 2) -> str:
        return "-" if v is None else f"{v:.{d}f}"

    for res in results:
        n = res["sessions_requested"]
        for r in res["sessions"]:
            table.add_row(str(n), f"#{r['session']}", f(r.get("p50_ms")), f(r.get("p99_ms")), f(r.get("max_ms")),
                          f"{r.get('lost', '-')} / {r.get('samples', '-')}", f(r.get("cpu_pct"), 0),
                          f(r.get("graph_startup_s"), 1), "", (r.get("error") or "")[:70])
        load = f"{f(res.get('load_1min_start'))} -> {f(res.get('load_1min_end'))}"
        cpu = res.get("cpu", {}).get("cpu_pct")
        table.add_row(f"[bold]{n}[/]", f"[bold]all ({res['sessions_ok']}/{n} ok)[/]", f(res.get("median_p50_ms")),
                      f"[bold]{f(res.get('worst_p99_ms'))}[/] worst", "", f"[bold]{res['lost']}[/] / {res['samples']}",
                      f"{f(cpu, 0)} total", f"{f(res.get('graph_startup_s_median'), 1)} med", load,
                      f"all up in {res.get('startup_s', 0):.0f} s; "
                      + ("CPU: the relays; " if relay else
                         f"actor nice {res.get('actor_niceness', '?')}; CPU: cluster tree + runs; ")
                      + f"clients ({res.get('clients', '?')}) "
                      f"{f(res.get('cpu_clients', {}).get('cpu_pct'), 0)} %; machine "
                      f"{f(res.get('machine_cpu_pct'), 0)} % (niced {f(res.get('nice_cpu_pct'), 0)} %)",
                      end_section=True)
    console().print(table)
    warning = not_quiet_warning(results)
    if warning:
        console().print(f"[yellow]{warning}[/]")


def run(args: argparse.Namespace) -> int:
    from pipeline.errors import UserError

    if not Path(args.model).exists():
        raise UserError(f"bench sessions: model file not found: {args.model}")
    if args.duration <= 0 or any(n < 1 for n in args.sessions):
        raise UserError("bench sessions: --duration must be > 0 s and every --sessions N >= 1")
    if args.startup_parallel < 0 or args.resolve_timeout <= 0 or args.startup_timeout <= 0:
        raise UserError("bench sessions: --startup-parallel must be >= 0, --resolve-timeout and --startup-timeout > 0 s")
    if args.settle < 0:
        raise UserError(f"bench sessions: --settle must be >= 0 s, got {args.settle}")
    if not -20 <= args.worker_niceness <= 19:
        raise UserError(f"bench sessions: --worker-niceness must be in -20..19, got {args.worker_niceness}")
    keep = getattr(args, "keep", None)
    if keep and Path(keep).exists() and any(Path(keep).iterdir()):
        raise UserError(f"bench sessions: --keep {keep}: the directory is not empty (a session's old 'stop' or "
                        "'ready' file would end or start the new one early); give a new or empty directory")
    results: list[dict[str, Any]] = []
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="spikeloop_sessions_") as tmp:
        root = Path(tmp)
        if keep:
            root = Path(keep)
            root.mkdir(parents=True, exist_ok=True)
        cluster: LocalCluster | None = None
        if getattr(args, "graph_kind", "spikeloop") != "relay":  # bare relays need no Ray
            print("starting a Ray cluster on loopback ...", file=sys.stderr, flush=True)
            try:
                cluster = LocalCluster(num_cpus=max(max(args.sessions), os.cpu_count() or 1),
                                       startup_s=args.startup_timeout, worker_niceness=args.worker_niceness)
            except RuntimeError as exc:
                raise UserError(f"bench sessions: {exc}") from None
            print(f"cluster at {cluster.address} (temp dir {cluster.temp_dir})", file=sys.stderr, flush=True)
        try:
            for n in args.sessions:
                results.append(measure_n(n, cluster, root, args))
        finally:
            if cluster is not None:
                cluster.stop()
    _print(results, args)
    if args.json_path:
        out = Path(args.json_path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({
            "benchmark": "sessions", "channels": 96, "rate_hz": RATE_HZ, "duration_s": args.duration,
            "wait": args.wait, "graph": args.graph_kind, "model": args.model, "cpu_count": os.cpu_count(), "load_avg_at_start": load_start,
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "results": results}, indent=2) + "\n")
        print(f"results written to {args.json_path}")
    return 0 if all(not r["failed"] for r in results) else 1
