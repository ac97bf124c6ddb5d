"""The ``ray`` runner: every node, or fused group of nodes (``runtime.fuse``), in its own Ray actor.

Placement
    Each group becomes one actor (:class:`GroupWorker`) that runs a
    :class:`~pipeline.runners.executor.GroupExecutor`: packets between nodes of the same group are
    plain function calls; packets to another group travel as Ray actor calls. Fuse the nodes of a
    latency-critical path (an LSL inlet, the decoder, the LSL outlet) so the path stays in one
    process. An actor's Ray resources are the sum of its nodes' ``resources`` in the config
    (``CPU``, ``GPU``, ``memory`` in bytes, or custom names); without any, an actor asks for no CPU,
    so a small machine can host many actors.

Ray itself
    ``address`` (``--address`` or ``runtime.address``) joins an existing cluster. Otherwise the
    runner starts a local Ray bound to loopback (``127.0.0.1``), dashboard off unless
    ``runtime.dashboard: true`` (then on 127.0.0.1 too), ``runtime.num_cpus`` CPUs (default: this
    machine's), and shuts it down at the end. If Ray is already initialised in this process (a
    notebook, a test session), the runner uses it and leaves it running.

Data flow
    Actors that hold sources run a loop: read each source, route the packets, tick the group's
    ticking nodes on the graph clock, and send each other group one batch per loop iteration
    (fire-and-forget actor calls). Batches are numbered per (sender, receiver) and processed in
    that order, so every edge keeps its packet order (Ray does not order calls into threaded
    actors). A receiver whose inbox is full makes its senders wait (bounded memory at
    ``speed: max``). Batches carry the sender's graph clock: with replays at ``speed: max`` (a
    virtual clock) receivers tick on the data's time, as the local runner does, so ticking nodes
    give the same frames; with live sources they tick on ``local_clock()`` and idle senders send a
    heartbeat every 10 ms.

End of data
    When a group's sources are exhausted (or the run is stopped by ``duration_s`` / Ctrl-C) and
    every group feeding it (feedback edges aside) has finished, it flushes its nodes, sends its
    last packets and an end-of-stream mark downstream, and returns its statistics. The driver
    merges them into the same summary as the local runner (:func:`pipeline.metrics.build_summary`).

Determinism: every edge keeps its order, so a graph whose nodes depend only on each input's own
order (all of ours) gives the same outputs as the local runner. A node with inputs from two
different actors sees those inputs interleaved as they arrive, as in any live system.
"""
from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from pipeline.clock import local_clock
from pipeline.errors import ConfigError, UserError
from pipeline.graph import GraphSpec
from pipeline.metrics import LatencyStats, build_summary
from pipeline.node import Source, StreamMismatch
from pipeline.packet import StreamInfo
from pipeline.registry import node_class
from pipeline.runners.executor import GroupExecutor
from pipeline.runners.progress import ReplayProgress, merge_progress, sources_progress

HEARTBEAT_S = 0.01
"""Seconds after which an idle live sender tells its receivers the time anyway."""
MAX_INBOX = 64
"""Batches an actor queues before its senders wait."""
MAX_INFLIGHT = 8
"""Unacknowledged batches a sender keeps per receiver before it waits."""
SWITCH_INTERVAL_S = 0.0002
"""``sys.setswitchinterval`` inside group actors (see :class:`GroupWorker`)."""


# --- planning (driver side, no Ray needed) ---------------------------------------------------------
@dataclass
class GroupPlan:
    """One actor's share of a graph.

    Attributes:
        name: the group's name (its nodes joined by ``+``).
        nodes: node names in topological order.
        upstream: groups that feed this one over non-feedback edges (their end-of-stream is awaited).
        downstream: groups this one sends packets to (feedback edges included).
        resources: summed Ray resources of the nodes.
    """

    name: str
    nodes: list[str]
    upstream: set[str] = field(default_factory=set)
    downstream: set[str] = field(default_factory=set)
    resources: dict[str, float] = field(default_factory=dict)


def plan_groups(spec: GraphSpec) -> tuple[list[GroupPlan], dict[str, str]]:
    """Groups (fused ones from ``runtime.fuse``, every other node alone) and node -> group name.

    Groups come in topological order of their first node.
    """
    order = spec.order()
    fused = {n: list(g) for g in spec.runtime.get("fuse") or [] for n in g}
    plans: list[GroupPlan] = []
    group_of: dict[str, str] = {}
    for name in order:
        if name in group_of:
            continue
        members = [n for n in order if n in fused[name]] if name in fused else [name]
        plan = GroupPlan("+".join(members), members)
        for member in members:
            group_of[member] = plan.name
            for key, value in spec.nodes[member].resources.items():
                plan.resources[key] = plan.resources.get(key, 0.0) + float(value)
        plans.append(plan)
    by_name = {p.name: p for p in plans}
    for e in spec.edges:
        src, dst = group_of[e.src], group_of[e.dst]
        if src == dst:
            continue
        by_name[src].downstream.add(dst)
        if not e.feedback:
            by_name[dst].upstream.add(src)
    _refuse_group_cycles(spec, plans)
    return plans, group_of


LIVE_SOURCE_KINDS = ("lsl_inlet",)


def unfused_live_warning(spec: GraphSpec, group_of: dict[str, str]) -> str | None:
    """A warning when a live source's packets leave its actor: each one then pays a Ray actor call
    (about a millisecond of CPU), which on a small machine queues a live stream (see the README)."""
    live = [n for n, node in spec.nodes.items() if node.kind in LIVE_SOURCE_KINDS]
    leaving = [n for n in live if any(e.src == n and group_of[e.dst] != group_of[n] for e in spec.edges)]
    if not leaving:
        return None
    return (f"{spec.file}: live source(s) {', '.join(leaving)} send every packet to another actor; for low "
            "latency put the live path in one group (runtime.fuse: [[inlet, ..., outlet]])")


def _refuse_group_cycles(spec: GraphSpec, plans: list[GroupPlan]) -> None:
    """Fusing a -> b -> c with a and c in one group, but not b, makes two actors wait on each other."""
    from pipeline.graph import Edge, _find_cycle

    edges = [Edge(u, "out", p.name, "in") for p in plans for u in p.upstream]
    cycle = _find_cycle([p.name for p in plans], edges)
    if cycle:
        raise ConfigError(
            spec.file,
            "fuse groups make a cycle between actors: " + " -> ".join(cycle + [cycle[0]])
            + "; put every node on the path between two fused nodes into their group",
            key="runtime.fuse",
        )


def actor_options(resources: dict[str, float]) -> dict[str, Any]:
    """Ray actor options for summed node resources (CPU/GPU/memory or custom names)."""
    opts: dict[str, Any] = {"num_cpus": 0.0}
    custom: dict[str, float] = {}
    for key, value in resources.items():
        k = key.lower()
        if k in ("cpu", "num_cpus"):
            opts["num_cpus"] = value
        elif k in ("gpu", "num_gpus"):
            opts["num_gpus"] = value
        elif k == "memory":
            opts["memory"] = value
        else:
            custom[key] = value
    if custom:
        opts["resources"] = custom
    return opts


def check_resources(spec: GraphSpec, plans: list[GroupPlan], cluster: dict[str, float]) -> None:
    """Refuse a group that asks for more than the whole cluster has (Ray would wait forever)."""
    names = {"num_cpus": "CPU", "num_gpus": "GPU", "memory": "memory"}
    for plan in plans:
        opts = actor_options(plan.resources)
        wanted = {names[k]: v for k, v in opts.items() if k in names and v}
        wanted.update(opts.get("resources", {}))
        for key, value in wanted.items():
            if cluster.get(key, 0.0) < value:
                have = ", ".join(f"{k}={v:g}" for k, v in sorted(cluster.items()) if not k.startswith("node:")
                                 and not k.startswith("accelerator_type"))
                raise ConfigError(
                    spec.file,
                    f"nodes {', '.join(plan.nodes)} ask for {key}={value:g} but the Ray cluster has "
                    f"{key}={cluster.get(key, 0.0):g} (cluster: {have})",
                    node=plan.nodes[0], key="resources",
                )


# --- Ray start-up ----------------------------------------------------------------------------------
def ensure_ray(runtime: dict[str, Any], address: str | None) -> bool:
    """Connect to Ray; return True if this call started it (and so must shut it down)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    if ray.is_initialized():
        return False
    address = address or runtime.get("address")
    try:
        if address:
            ray.init(address=address, log_to_driver=True, logging_level=logging.WARNING)
        else:
            # A local Ray for this run only: its services listen on loopback, not on the machine's
            # network address. Ray swaps an explicit 127.0.0.1 for the "reachable" address unless
            # multi-node clustering is off: the variable turns it off for the processes Ray starts,
            # the constant for this one (read at import, which may have happened already).
            from ray._private import ray_constants

            os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
            ray_constants.ENABLE_RAY_CLUSTER = False
            dashboard = bool(runtime.get("dashboard"))
            ray.init(
                num_cpus=runtime.get("num_cpus") or os.cpu_count() or 1,
                include_dashboard=dashboard,
                dashboard_host="127.0.0.1",
                _node_ip_address="127.0.0.1",
                log_to_driver=True,
                logging_level=logging.WARNING,
            )
    except (ConnectionError, ValueError, RuntimeError) as exc:
        where = f"Ray cluster at {address!r}" if address else "a local Ray"
        raise UserError(f"could not start or join {where}: {exc}") from None
    return True


# --- the actor -------------------------------------------------------------------------------------
class GroupWorker:
    """Hosts one group of nodes inside a Ray actor (also usable in-process, for tests).

    Messages between groups are ``(sender, number, clock, virtual, deliveries, eos)``:
    ``deliveries`` is a list of ``(dst node, dst port, Packet)``; ``clock`` the sender's graph
    clock (s) and ``virtual`` whether that clock is data time (replay at ``speed: max``).
    """

    def __init__(self, plan: GroupPlan, node_specs: dict[str, tuple[str, dict[str, Any]]],
                 routes: dict, sinks: set[str], group_of: dict[str, str]) -> None:
        # Ray runs helper threads in an actor process; when one wants the interpreter while the
        # group's loop is busy (a spinning LSL inlet), Python's default 5 ms switch interval would
        # stall the data path for that long. 0.2 ms bounds such stalls. This process is ours.
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        self.plan = plan
        self.nodes = {}
        for name, (kind, params) in node_specs.items():
            node = node_class(kind)(**params)  # as the graph loader does (a node may have a "name" param)
            node.name = name
            self.nodes[name] = node
        self.routes, self.sinks, self.group_of = routes, sinks, group_of
        self.executor: GroupExecutor | None = None
        self.peers: dict[str, Any] = {}
        self.ticking_groups: set[str] = set()
        self._inbox: deque = deque()
        self._cv = threading.Condition()
        self._stop = threading.Event()
        self._sent: dict[str, int] = {}
        self._inflight: dict[str, deque] = {}
        self._expected: dict[str, int] = {}
        self._pending: dict[str, dict[int, tuple]] = {}
        self._eos: set[str] = set()
        self._clocks: dict[str, tuple[float, bool]] = {}
        self._last_send = 0.0
        self.dropped_after_end = 0

    # --- opening -----------------------------------------------------------------------------
    def open_node(self, name: str, inputs: dict[str, dict]) -> tuple:
        """Open one node; ``("ok", {port: info dict})`` or ``("mismatch", port, message)``."""
        node = self.nodes[name]
        try:
            outputs = node.open({port: StreamInfo.from_dict(d) for port, d in inputs.items()})
        except StreamMismatch as exc:
            return ("mismatch", exc.port, str(exc))
        missing = [p for p in node.outputs if p not in outputs]
        if missing:
            return ("error", f"node opened without describing its output port {missing[0]!r}")
        return ("ok", {port: outputs[port].to_dict() for port in node.outputs})

    def open_feedback(self, name: str, port: str, info: dict) -> tuple:
        try:
            self.nodes[name].open_feedback(port, StreamInfo.from_dict(info))
        except StreamMismatch as exc:
            return ("mismatch", exc.port, str(exc))
        return ("ok",)

    def setup(self, peers: dict[str, Any], ticking_groups: set[str]) -> bool:
        """Receive the handles of the other groups' actors; build the executor."""
        self.peers = peers
        self.ticking_groups = ticking_groups
        self.executor = GroupExecutor(self.nodes, self.routes, self.sinks)
        return True

    # --- messages ----------------------------------------------------------------------------
    def push(self, message: tuple) -> bool:
        """Queue a batch from another group (waits while the inbox is full)."""
        feedback_sender = message[0] not in self.plan.upstream  # never block a loop's way back
        with self._cv:
            while len(self._inbox) >= MAX_INBOX and not self._stop.is_set() and not feedback_sender:
                self._cv.wait(0.05)
            self._inbox.append(message)
            self._cv.notify_all()
        return True

    def stop(self) -> bool:
        """Stop reading sources; the group then finishes as at the end of data."""
        self._stop.set()
        with self._cv:
            self._cv.notify_all()
        return True

    def progress(self) -> tuple[float, float] | None:
        return sources_progress([n for n in self.nodes.values() if isinstance(n, Source)])

    def _send(self, external: list, clock: float, virtual: bool, eos: bool = False, force: bool = False) -> None:
        """Send one numbered batch to each downstream group that has packets (or all, if forced)."""
        import ray

        by_group: dict[str, list] = {}
        for dst, port, packet in external:
            by_group.setdefault(self.group_of[dst], []).append((dst, port, packet))
        targets = self.plan.downstream if (eos or force) else set(by_group)
        if virtual and not eos:
            targets = targets | (self.plan.downstream & self.ticking_groups)
        for group in sorted(targets):
            number = self._sent.get(group, 0)
            self._sent[group] = number + 1
            inflight = self._inflight.setdefault(group, deque())
            while len(inflight) >= MAX_INFLIGHT:
                ray.wait([inflight.popleft()], timeout=None)
            inflight.append(self.peers[group].push.remote(
                (self.plan.name, number, clock, virtual, by_group.get(group, []), eos)))
        if targets:
            self._last_send = time.monotonic()

    def _take_ready(self) -> list[tuple]:
        """Messages that are next in their sender's numbering, in order."""
        with self._cv:
            while self._inbox:
                msg = self._inbox.popleft()
                self._pending.setdefault(msg[0], {})[msg[1]] = msg
            self._cv.notify_all()
        ready = []
        for sender, pending in self._pending.items():
            n = self._expected.get(sender, 0)
            while n in pending:
                ready.append(pending.pop(n))
                n += 1
            self._expected[sender] = n
        return ready

    def _upstream_clock(self) -> tuple[float, bool] | None:
        if not self._clocks:
            return None
        if any(not virtual for _, virtual in self._clocks.values()):
            return local_clock(), False
        return min(c for c, _ in self._clocks.values()), True

    # --- the loop (plain ray runner) ---------------------------------------------------------
    def run_loop(self) -> dict[str, Any]:
        """Run until the group's sources end (or stop()) and every upstream group has finished."""
        ex = self.executor
        assert ex is not None, "setup() first"
        order = self.plan.nodes
        active = list(ex.sources)
        t0 = time.perf_counter()
        try:
            self._send(ex.start(order), local_clock(), False)
            while True:
                did_work = False
                for msg in self._take_ready():
                    sender, _, clock, virtual, deliveries, eos = msg
                    self._clocks[sender] = (clock, virtual)
                    external: list = []
                    for dst, port, packet in deliveries:
                        external += ex.deliver(dst, port, packet)
                    if eos:
                        self._eos.add(sender)
                    if ex.ticking and not active:
                        now = self._upstream_clock()
                        if now is not None:
                            external += ex.tick(now[0])
                    now = self._upstream_clock() or (local_clock(), False)
                    heartbeat = not now[1] and time.monotonic() - self._last_send > HEARTBEAT_S
                    self._send(external, now[0], now[1], force=heartbeat)
                    did_work = True
                if self._stop.is_set():
                    active = []
                if active:
                    external = []
                    for name in list(active):
                        out = ex.read_source(name)
                        if out is None:
                            active.remove(name)
                        else:
                            external += out
                    clock, virtual = self._own_clock(active)
                    if ex.ticking:
                        external += ex.tick(clock)
                    heartbeat = time.monotonic() - self._last_send > HEARTBEAT_S
                    self._send(external, clock, virtual, force=heartbeat and not virtual)
                    did_work = True
                elif ex.ticking:
                    now = self._upstream_clock()
                    if now is not None and not now[1]:  # live: tick on the wall clock when idle
                        self._send(ex.tick(now[0]), now[0], False)
                if not active and self.plan.upstream <= self._eos and not self._has_pending():
                    break
                if not did_work:
                    with self._cv:
                        if not self._inbox:
                            self._cv.wait(0.001 if ex.ticking else 0.05)
            clock, virtual = self._upstream_clock() or self._own_clock([])
            self._send(ex.flush(order), clock, virtual)
            self._send([], clock, virtual, eos=True)
            self._drain_inflight()
        finally:
            wall_s = time.perf_counter() - t0
            counters, reports = ex.counters(), ex.reports()
            ex.close()
        return self._result(wall_s, counters, reports)

    def _own_clock(self, active: list[str]) -> tuple[float, bool]:
        virtual = [self.nodes[n].virtual_time for n in active]  # type: ignore[attr-defined]
        if virtual and all(v is not None for v in virtual):
            return float(min(virtual)), True  # type: ignore[type-var]
        return local_clock(), False

    def _has_pending(self) -> bool:
        with self._cv:
            return bool(self._inbox) or any(self._pending.values())

    def _drain_inflight(self) -> None:
        import ray

        refs = [r for q in self._inflight.values() for r in q]
        if refs:
            ray.get(refs)

    def _result(self, wall_s: float, counters: dict, reports: dict) -> dict[str, Any]:
        ex = self.executor
        assert ex is not None
        return {
            "group": self.plan.name,
            "stats": ex.stats,
            "counters": counters,
            "reports": reports,
            "latency": ex.latency.values,
            "source_samples": sum(ex.stats[n].samples_out for n in ex.sources),
            "wall_s": wall_s,
            "pid": os.getpid(),
            "torch_imported": "torch" in sys.modules,  # the runtime path must stay torch-free
        }

    def ping(self) -> int:
        return os.getpid()


# --- driver helpers shared with the compiled runner --------------------------------------------------
def open_remote(spec: GraphSpec, actor_of: dict[str, Any]) -> dict[tuple[str, str], StreamInfo]:
    """Open every node inside its actor, in topological order (errors as in :func:`open_graph`)."""
    import ray

    infos: dict[tuple[str, str], StreamInfo] = {}
    incoming: dict[str, list] = {n: [] for n in spec.nodes}
    for e in spec.edges:
        incoming[e.dst].append(e)
    for name in spec.order():
        inputs = {e.dst_port: infos[(e.src, e.src_port)].to_dict() for e in incoming[name] if not e.feedback}
        result = _get(ray, actor_of[name].open_node.remote(name, inputs))
        if result[0] == "mismatch":
            upstream = next((f" (from {e.src}.{e.src_port})" for e in incoming[name] if e.dst_port == result[1]), "")
            raise ConfigError(spec.file, f"{result[2]}{upstream}", node=name, key=f"input {result[1]}")
        if result[0] == "error":
            raise ConfigError(spec.file, result[1], node=name)
        for port, d in result[1].items():
            infos[(name, port)] = StreamInfo.from_dict(d)
    for e in spec.edges:
        if e.feedback:
            result = _get(ray, actor_of[e.dst].open_feedback.remote(e.dst, e.dst_port, infos[(e.src, e.src_port)].to_dict()))
            if result[0] == "mismatch":
                raise ConfigError(spec.file, f"{result[2]} (fed back from {e.src}.{e.src_port})", node=e.dst,
                                  key=f"input {e.dst_port}")
    return infos


def _get(ray: Any, ref: Any, timeout: float | None = None) -> Any:
    """``ray.get`` that re-raises a node's own error (UserError, ValueError, ...) unwrapped."""
    try:
        return ray.get(ref, timeout=timeout)
    except ray.exceptions.RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, UserError):
            raise cause from None
        raise


def make_actors(spec: GraphSpec, plans: list[GroupPlan], group_of: dict[str, str],
                max_concurrency: int = 1, worker: type | None = None) -> dict[str, Any]:
    """One actor per group (``{group name: handle}``), each holding freshly constructed nodes.

    ``max_concurrency > 1`` makes threaded actors (the ``ray`` runner's loop plus incoming batches).
    """
    import ray

    options: dict[str, Any] = {"max_concurrency": max_concurrency}
    check_resources(spec, plans, ray.cluster_resources())
    if (warning := unfused_live_warning(spec, group_of)):
        print(f"warning: {warning}", file=sys.stderr)
    cls = ray.remote(worker or GroupWorker)
    routes, sinks = spec.routes(), spec.sinks()
    actors = {}
    for plan in plans:
        node_specs = {n: (spec.nodes[n].kind, spec.nodes[n].params) for n in plan.nodes}
        actors[plan.name] = cls.options(**options, **actor_options(plan.resources)).remote(
            plan, node_specs, routes, sinks, group_of)
    return actors


def merge_summary(spec: GraphSpec, runner: str, results: list[dict], wall_s: float, stopped_by: str) -> dict[str, Any]:
    """The run summary from every group's results, nodes in config order (as the local runner)."""
    stats, counters, reports = {}, {}, {}
    latency = LatencyStats()
    for r in results:
        stats.update(r["stats"])
        counters.update(r["counters"])
        reports.update(r["reports"])
        latency.extend(r["latency"])
    ordered = {n: stats[n] for n in spec.nodes if n in stats}
    summary = build_summary(
        graph=spec.name, runner=runner, wall_s=wall_s, stats=ordered,
        counters={n: counters.get(n, {}) for n in ordered}, reports={n: reports.get(n, {}) for n in ordered},
        latency=latency, source_samples=sum(r["source_samples"] for r in results), stopped_by=stopped_by,
    )
    summary["groups"] = {r["group"]: {"pid": r["pid"], "torch_imported": r["torch_imported"]} for r in results}
    return summary


# --- the runner --------------------------------------------------------------------------------------
def run(spec: GraphSpec, *, progress: bool = True, duration_s: float | None = None,
        address: str | None = None) -> dict[str, Any]:
    """Run ``spec`` with one Ray actor per group; return the summary (same keys as ``local``)."""
    started = ensure_ray(spec.runtime, address)
    import ray

    plans, group_of = plan_groups(spec)
    # threads: the loop, incoming batches, control calls. Pushes wait only when an inbox is full
    # (and then the loop is draining it), so a small pool suffices; large pools slow Ray's calls.
    actors = make_actors(spec, plans, group_of, max_concurrency=4 + MAX_INFLIGHT)
    bar = ReplayProgress(progress)
    stopped_by = "end of data"
    try:
        open_remote(spec, {n: actors[g] for n, g in group_of.items()})
        ticking = {group_of[n] for n, node in spec.instances.items() if node.tick_interval}
        ray.get([a.setup.remote(actors, ticking) for a in actors.values()])
        t0 = time.perf_counter()
        refs = [a.run_loop.remote() for a in actors.values()]
        source_groups = [g for g in plans if any(isinstance(spec.instances[n], Source) for n in g.nodes)]
        deadline = None if duration_s is None else time.perf_counter() + duration_s
        stopped = False
        try:
            while True:
                ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0.2)
                if len(ready) == len(refs):
                    break
                bar.update(lambda: merge_progress(ray.get([actors[g.name].progress.remote() for g in source_groups])))
                if not stopped and deadline is not None and time.perf_counter() >= deadline:
                    stopped_by, stopped = f"duration {duration_s:g} s", True
                    ray.get([a.stop.remote() for a in actors.values()])
        except KeyboardInterrupt:
            stopped_by = "interrupted (Ctrl-C)"
            ray.get([a.stop.remote() for a in actors.values()])
        results = [_get(ray, r) for r in refs]
        wall_s = time.perf_counter() - t0
    finally:
        bar.close()
        for a in actors.values():
            ray.kill(a)
        if started:
            ray.shutdown()
    return merge_summary(spec, "ray", results, wall_s, stopped_by)
