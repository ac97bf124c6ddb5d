"""The ``ray-compiled`` runner: the graph's actors wired as one Ray Compiled Graph.

Ray Compiled Graphs (``ray.dag`` ... ``experimental_compile()``) move data between actors over
pre-allocated shared-memory channels instead of per-call RPCs: a hop costs about 0.3 ms here
instead of about 1 ms. Ray keeps this API in maintenance mode, so it lives only in this module:
nodes never see it, and the same graph runs unchanged on ``local`` and ``ray``.

How a run goes
    Groups (``runtime.fuse``, every other node alone) become actors, exactly as in the ``ray``
    runner, and are bound into a DAG that follows the graph's forward edges between groups. Each
    ``execute()`` is one *round*, the same step the local runner takes per loop: every actor
    receives its upstream actors' packets of this round (in topological order of the senders),
    reads each of its sources once, ticks its ticking nodes on the graph clock, and passes its
    outgoing packets on. Packets over feedback edges (closed loops) go back through the driver and
    are delivered at the start of the next round, before the receiving simulator steps. The driver
    runs rounds until every group has finished (end of data), ``duration_s`` or Ctrl-C.

Rounds make this runner deterministic like ``local``: the same graph fed the same recording at
``speed: max`` gives identical outputs on the three runners.

Packets a round hands from actor to actor travel through shared-memory channels; the receiving
actor copies them before its nodes see them (a channel's buffer is reused by the next round).
Each actor process keeps torch out of Ray's channel code (:func:`keep_torch_out`).

Groups whose fusing would create a cycle between actors are refused when the graph loads (see
:func:`pipeline.runners.ray_runner.plan_groups`).
"""
from __future__ import annotations

import gc
import signal
import threading
import time
from typing import Any

import numpy as np

from pipeline.clock import local_clock
from pipeline.graph import GraphSpec
from pipeline.packet import Packet
from pipeline.runners.progress import ReplayProgress, merge_progress
from pipeline.runners.ray_runner import (
    GroupWorker,
    _get,
    ensure_ray,
    make_actors,
    merge_summary,
    open_remote,
    plan_groups,
)


def keep_torch_out() -> None:
    """Tell Ray's channel code that torch is unavailable, so it never imports it.

    Compiled Graphs otherwise import torch in every actor on the first execution (to support
    tensor channels), which costs seconds and hundreds of MB, and would put torch on our runtime
    path. Packets are numpy arrays, so no tensor channel is ever needed. Best effort: if a Ray
    version moves this switch, the run still works (with torch imported by Ray).
    """
    try:
        from ray.experimental.channel.common import ChannelContext

        ChannelContext.get_current()._torch_available = False
    except (ImportError, AttributeError):  # pragma: no cover - other Ray versions
        pass


def _owned(packet: Packet) -> Packet:
    """A packet whose arrays this process owns.

    Arrays read from a compiled graph's channel may be zero-copy views of a shared-memory buffer
    that the next round overwrites; nodes may keep what they receive, so copy first.
    """
    return Packet(np.array(packet.data, copy=True), np.array(packet.timestamps, copy=True), packet.t_enter, packet.seq)


class _CtrlC:
    """The first Ctrl-C sets ``flag`` (the run then ends its rounds cleanly); a second one raises.

    A KeyboardInterrupt in the middle of ``execute()`` would abandon a round inside the compiled
    graph, so the driver loop polls this flag between rounds instead. Main thread only.
    """

    def __init__(self) -> None:
        self.flag = False
        self._old = None
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.flag:
            raise KeyboardInterrupt
        self.flag = True

    def restore(self) -> None:
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
            self._old = None


class CompiledGroupWorker(GroupWorker):
    """A group of nodes stepped one round at a time by a compiled DAG."""

    def setup(self, peers: dict[str, Any], ticking_groups: set[str]) -> bool:
        keep_torch_out()
        super().setup(peers, ticking_groups)
        self._started = False
        self._active: list[str] = []
        self._done = False
        self._t0 = time.perf_counter()
        return True

    def step(self, round_in: dict[str, Any], *upstream: dict[str, Any]) -> dict[str, Any]:
        """One round: deliver, read sources once, tick, pass outgoing packets on.

        Args:
            round_in: ``{"stop": bool, "feedback": {group: [(dst, port, Packet), ...]}}`` from the driver.
            upstream: this round's outputs of the upstream groups, in topological order.

        Returns:
            ``{"group", "to": {group: deliveries}, "clock": (s, virtual), "done": bool}``.
        """
        ex = self.executor
        assert ex is not None, "setup() first"
        external: list = []
        if round_in.get("warmup"):
            return {"group": self.plan.name, "to": {}, "clock": (0.0, True), "done": False, "progress": None}
        if self._done:
            return self._out([], self._upstream_clock() or (local_clock(), False))
        if not self._started:
            self._started = True
            self._active = list(ex.sources)
            external += ex.start(self.plan.nodes)
        for dst, port, packet in round_in["feedback"].get(self.plan.name, []):
            external += ex.deliver(dst, port, _owned(packet))
        for up in upstream:
            self._clocks[up["group"]] = up["clock"]
            for dst, port, packet in up["to"].get(self.plan.name, []):
                external += ex.deliver(dst, port, _owned(packet))
            if up["done"]:
                self._eos.add(up["group"])
        if round_in["stop"]:
            self._active = []
        for name in list(self._active):
            out = ex.read_source(name)
            if out is None:
                self._active.remove(name)
            else:
                external += out
        clock = self._round_clock()
        if ex.ticking and (self._active or self._clocks):
            external += ex.tick(clock[0])
        if not self._active and self.plan.upstream <= self._eos:
            external += ex.flush(self.plan.nodes)
            self._done = True
        return self._out(external, clock)

    def _round_clock(self) -> tuple[float, bool]:
        own = self._own_clock(self._active) if self._active else None
        up = self._upstream_clock()
        clocks = [c for c in (own, up) if c is not None]
        if not clocks or any(not virtual for _, virtual in clocks):
            return local_clock(), False
        return min(c for c, _ in clocks), True

    def _out(self, external: list, clock: tuple[float, bool]) -> dict[str, Any]:
        to: dict[str, list] = {}
        for dst, port, packet in external:
            to.setdefault(self.group_of[dst], []).append((dst, port, packet))
        return {"group": self.plan.name, "to": to, "clock": clock, "done": self._done, "progress": self.progress()}

    def finish(self) -> dict[str, Any]:
        """Close the nodes and return the group's statistics."""
        ex = self.executor
        assert ex is not None
        counters, reports = ex.counters(), ex.reports()
        ex.close()
        return self._result(time.perf_counter() - self._t0, counters, reports)


def run(spec: GraphSpec, *, progress: bool = True, duration_s: float | None = None,
        address: str | None = None) -> dict[str, Any]:
    """Run ``spec`` as a Ray Compiled Graph of group actors; return the summary (as ``local``)."""
    started = ensure_ray(spec.runtime, address)
    import ray
    from ray.dag import InputNode, MultiOutputNode

    plans, group_of = plan_groups(spec)
    actors = make_actors(spec, plans, group_of, worker=CompiledGroupWorker)
    bar = ReplayProgress(progress)
    compiled = dag = outs = round_in = None
    stopped_by = "end of data"
    try:
        open_remote(spec, {n: actors[g] for n, g in group_of.items()})
        ticking = {group_of[n] for n, node in spec.instances.items() if node.tick_interval}
        ray.get([a.setup.remote({}, ticking) for a in actors.values()])
        keep_torch_out()
        index = {p.name: i for i, p in enumerate(plans)}
        with InputNode() as round_in:
            outs: dict[str, Any] = {}
            for plan in plans:  # topological order: upstream outputs exist already
                ups = sorted(plan.upstream, key=index.__getitem__)
                outs[plan.name] = actors[plan.name].step.bind(round_in, *[outs[u] for u in ups])
            dag = MultiOutputNode([outs[p.name] for p in plans])
        compiled = dag.experimental_compile()
        # Ray finishes setting up channels on the first execution: do it before the clock runs
        _get(ray, compiled.execute({"warmup": True}))
        t0 = time.perf_counter()
        stopped_by = _rounds(ray, compiled, plans, duration_s, bar) or stopped_by
        wall_s = time.perf_counter() - t0
        compiled.teardown()
        compiled = None
        results = [_get(ray, actors[p.name].finish.remote()) for p in plans]
    finally:
        bar.close()
        if compiled is not None:
            try:
                compiled.teardown()
            except Exception:  # noqa: BLE001 - already failing; keep the original error
                pass
        for a in actors.values():
            ray.kill(a)
        # Drop every Ray object (DAG nodes, compiled graph, actor handles) while Ray is still up:
        # finalising them after ray.shutdown() crashes the process with some graph shapes.
        compiled = dag = outs = round_in = None  # noqa: F841
        actors.clear()
        gc.collect()
        if started:
            ray.shutdown()
    return merge_summary(spec, "ray-compiled", results, wall_s, stopped_by)


def _rounds(ray: Any, compiled: Any, plans: list, duration_s: float | None, bar: ReplayProgress) -> str | None:
    """Execute rounds until every group is done; return why it stopped early (None: end of data).

    Round outputs may be views into the compiled graph's shared-memory channels: they live only
    in this function, so none outlives the graph's teardown.
    """
    upstream = {p.name: p.upstream for p in plans}
    deadline = None if duration_s is None else time.perf_counter() + duration_s
    feedback: dict[str, list] = {}
    stop, stopped_by = False, None
    interrupted = _CtrlC()
    try:
        while True:
            results = _get(ray, compiled.execute({"stop": stop, "feedback": feedback}))
            feedback = {}
            for r in results:
                for group, deliveries in r["to"].items():
                    if r["group"] not in upstream[group]:  # a feedback edge: next round
                        feedback.setdefault(group, []).extend(deliveries)
            if all(r["done"] for r in results):
                return stopped_by
            now = time.perf_counter()
            if not stop and interrupted.flag:
                stop, stopped_by = True, "interrupted (Ctrl-C)"
            if not stop and deadline is not None and now >= deadline:
                stop, stopped_by = True, f"duration {duration_s:g} s"
            bar.update(lambda: merge_progress(r["progress"] for r in results))
    finally:
        interrupted.restore()
