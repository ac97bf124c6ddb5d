"""The ``ray-compiled`` runner: the graph's group actors wired as one Ray Compiled Graph.

Ray Compiled Graphs (``ray.dag`` ... ``experimental_compile()``) move data between actors over
pre-allocated shared-memory channels instead of per-call RPCs: a hop costs about 0.3 ms here
instead of about 1 ms. Ray keeps this API in maintenance mode, so it lives only in this module:
nodes never see it, and the same graph runs unchanged on ``local`` and ``ray``.

How a run goes
    Groups (``runtime.fuse``, every other node alone) become actors, created and opened exactly
    as in the ``ray`` runner (:class:`pipeline.runners.ray_runner.Driver`), and are bound into a
    DAG that follows the graph's forward edges between groups. Each ``execute()`` is one *round*:
    every actor calls :meth:`~pipeline.runners.stepper.Stepper.step` once with its upstream
    actors' batches of this round (in topological order of the senders): deliver, read each
    source once, tick on the graph clock, pass the outgoing batches on. Batches over feedback
    edges (closed loops) go back through the driver and are delivered at the start of the next
    round, before the receiving simulator steps. A closed loop ends once a round moved no packet
    at all (the driver tells the groups the graph is quiet). The driver runs rounds until every
    group has ended, ``duration_s``, Ctrl-C, SIGTERM or SIGHUP.

Rounds make this runner deterministic like ``local``. Packets handed from actor to actor travel
through shared-memory channels; the receiving actor copies them before its nodes see them (a
channel's buffer is reused by the next round). Each actor keeps torch out of Ray's channel code
(:func:`keep_torch_out`).

Checkpoints and restarts are not implemented on this runner yet (see the ``ray`` runner): an actor
that dies ends the run with one line naming its node, and the summary of what ran.
"""
from __future__ import annotations

import gc
import time
from typing import Any

import numpy as np

from pipeline.graph import GraphSpec
from pipeline.log import runner_logger
from pipeline.packet import Packet
from pipeline.runners.plan import LIVE_SOURCE_KINDS
from pipeline.runners.progress import ReplayProgress, merge_progress
from pipeline.runners.ray_runner import Driver, GroupActor, ensure_ray
from pipeline.runners.round_signal import RoundNotifier, RoundSignal
from pipeline.runners.signals import StopRequest
from pipeline.runners.status import StatusLine
from pipeline.runners.stepper import Batch
from pipeline.runners.summary import group_result, merge_summary

log = runner_logger()

ROUND_TIMEOUT_S = 30.0
"""Longest wait for one round's results (a node stuck longer than this ends the run)."""
SIGNAL_WAIT_S = 1.0
"""Live graphs: longest sleep on the round signal before Ray's own (polling) wait takes over."""


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


def _owned(batch: Batch) -> Batch:
    """A batch whose arrays this process owns (channel buffers are reused by the next round)."""
    return Batch(batch.sender, batch.clock, [
        (dst, port, Packet(np.array(p.data, copy=True), np.array(p.timestamps, copy=True), p.t_enter, p.seq))
        for dst, port, p in batch.deliveries], batch.eos)


class CompiledGroupActor(GroupActor):
    """A group of nodes stepped one round at a time by a compiled DAG."""

    def setup(self, peers: dict[str, Any], state: dict[str, Any] | None = None) -> bool:
        keep_torch_out()
        super().setup({}, state)
        self._eos_sent = False
        self._notifier: RoundNotifier | None = None
        return True

    def signal_rounds(self, path: str) -> bool:
        """Write a byte to the driver's FIFO at each step's end (:mod:`pipeline.runners.round_signal`)."""
        self._notifier = RoundNotifier()
        return self._notifier.open(path)

    def step(self, round_in: dict[str, Any], *upstream: dict[str, Any]) -> dict[str, Any]:
        """One round (see :meth:`_step`); tells the driver's round signal when it is done."""
        try:
            return self._step(round_in, *upstream)
        finally:
            if self._notifier is not None:
                self._notifier.notify()

    def _step(self, round_in: dict[str, Any], *upstream: dict[str, Any]) -> dict[str, Any]:
        """One round.

        Args:
            round_in: ``{"stop", "quiet", "feedback": {group: [Batch, ...]}}`` from the driver.
            upstream: this round's outputs of the upstream groups, in topological order.

        Returns:
            ``{"group", "to": {group: Batch}, "done", "active", "moved", "progress"}``.
        """
        st = self.stepper
        assert st is not None, "setup() first"
        name = self.plan.name
        if round_in.get("warmup"):
            return {"group": name, "to": {}, "done": False, "active": True, "moved": 0, "progress": None}
        inbound = [_owned(b) for b in round_in["feedback"].get(name, [])]
        inbound += [_owned(up["to"][name]) for up in upstream if name in up["to"]]
        with self._step_lock:
            out = st.step(inbound, stop=round_in["stop"], quiet=round_in["quiet"])
            if st.done and self._eos_sent:
                batches: dict[str, Batch] = {}
            else:
                batches = st.batches(out, eos=st.done)
                self._eos_sent = st.done
        moved = len(out) + sum(len(b.deliveries) for b in inbound)
        return {"group": name, "to": batches, "done": st.done, "active": bool(st.active), "moved": moved,
                "progress": self.progress()}

    def finish(self) -> dict[str, Any]:
        """Close the nodes and return the group's statistics."""
        st = self.stepper
        assert st is not None
        counters, reports = st.executor.counters(), st.executor.reports()
        st.executor.close()
        if self._notifier is not None:
            self._notifier.close()
        return group_result(st, time.perf_counter() - self._t0, counters, reports)


def run(spec: GraphSpec, *, progress: bool = True, duration_s: float | None = None,
        address: str | None = None) -> dict[str, Any]:
    """Run ``spec`` as a Ray Compiled Graph of group actors; return the summary (as ``local``)."""
    status = StatusLine(progress)
    status.message("starting Ray…")
    with StopRequest() as stop:
        started = ensure_ray(spec.runtime, address)
        stop.install()  # over the SIGTERM handler ray.init installs
        import ray
        from ray.dag import InputNode, MultiOutputNode

        driver = compiled = dag = outs = round_in = signal = None
        bar = ReplayProgress(progress)
        stopped_by, failure = "end of data", None
        results: list[dict] = []
        wall_s = 0.0
        try:
            driver = Driver(spec, "ray-compiled", worker=CompiledGroupActor, max_concurrency=1, restarts=False)
            status.message("opening nodes…")
            driver.start()
            status.close()
            plans, actors = driver.plans, driver.actors
            index = {p.name: i for i, p in enumerate(plans)}
            if any(n.kind in LIVE_SOURCE_KINDS for n in spec.nodes.values()):
                signal = _round_signal(driver, plans)
            with InputNode() as round_in:
                outs = {}
                for plan in plans:  # topological order: upstream outputs exist already
                    ups = sorted(plan.upstream, key=index.__getitem__)
                    outs[plan.name] = actors[plan.name].step.bind(round_in, *[outs[u] for u in ups])
                dag = MultiOutputNode([outs[p.name] for p in plans])
            compiled = dag.experimental_compile()
            # Ray finishes setting up channels on the first execution: do it before the clock runs
            ray.get(compiled.execute({"warmup": True}), timeout=ROUND_TIMEOUT_S)
            log.info("graph running (%d actors in a compiled graph)", len(plans))
            t0 = time.perf_counter()
            try:
                stopped_by = _rounds(ray, compiled, plans, duration_s, bar, stop, signal) or stopped_by
            except (ray.exceptions.RayError, TimeoutError) as exc:
                dead = _dead_groups(ray, actors)
                nodes = [n for g in dead for n in driver.by_name[g].nodes]
                what = (("node " if len(nodes) == 1 else "nodes ") + ", ".join(map(repr, nodes))) if nodes else "a group actor"
                failure = (f"{spec.file}: {what} died ({type(exc).__name__}); ray-compiled does not restart "
                           "actors (use --runner ray for restarts from checkpoints); the run stopped")
                log.error(failure)
                stopped_by = "failure: " + failure
            wall_s = time.perf_counter() - t0
            _teardown(compiled, 15.0)
            compiled = None
            for p in plans:
                try:
                    results.append(driver.get(actors[p.name].finish.remote(), f"group {p.name!r}", timeout=10.0))
                except ray.exceptions.RayError:
                    log.error("group %r: no statistics (its actor is gone)", p.name)
        finally:
            bar.close()
            status.close()
            if signal is not None:
                signal.close()
            if compiled is not None:
                _teardown(compiled, 15.0)
            if driver is not None:
                for a in list(driver.actors.values()) + ([driver.spare] if driver.spare is not None else []):
                    ray.kill(a)
                driver.actors.clear()
                driver.spare = None
            # Drop every Ray object (DAG nodes, compiled graph, actor handles) while Ray is still up:
            # finalising them after ray.shutdown() crashes the process with some graph shapes.
            compiled = dag = outs = round_in = None  # noqa: F841
            gc.collect()
            if started:
                ray.shutdown()
    log.info("run stopped: %s (%.2f s)", stopped_by, wall_s)
    return merge_summary(spec, "ray-compiled", results, wall_s, stopped_by, {}, failure)


def _dead_groups(ray: Any, actors: dict[str, Any], timeout: float = 2.0) -> list[str]:
    """Groups whose actor does not answer a ping within ``timeout`` s (dead)."""
    refs = {g: a.ping.remote() for g, a in actors.items()}
    ready, _ = ray.wait(list(refs.values()), num_returns=len(refs), timeout=timeout)
    dead = []
    for g, ref in refs.items():
        try:
            if ref not in ready:
                raise TimeoutError
            ray.get(ref)
        except Exception:  # noqa: BLE001 - any failure to answer: dead
            dead.append(g)
    return dead


def _teardown(compiled: Any, timeout: float) -> None:
    """``compiled.teardown()`` in a thread, waited for at most ``timeout`` s (a dead actor may hang it)."""
    import threading

    def down() -> None:
        try:
            compiled.teardown()
        except Exception as exc:  # noqa: BLE001 - already failing; keep the original error
            log.debug("compiled graph teardown: %s", exc)

    t = threading.Thread(target=down, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        log.warning("compiled graph teardown did not finish within %g s; going on", timeout)


def _round_signal(driver: Driver, plans: list) -> RoundSignal | None:
    """A live graph's round signal, if every group actor can reach it (same machine), else None."""
    signal = RoundSignal(len(plans))
    opened = [driver.get(driver.actors[p.name].signal_rounds.remote(signal.path), f"group {p.name!r}")
              for p in plans]
    if all(opened):
        return signal
    log.info("round signal not used (a group actor runs on another machine): the driver polls in Ray")
    signal.close()
    return None


def _rounds(ray: Any, compiled: Any, plans: list, duration_s: float | None, bar: ReplayProgress, stop: StopRequest,
            signal: RoundSignal | None = None) -> str | None:
    """Execute rounds until every group is done; return why it stopped early (None: end of data).

    ``signal``: live graphs sleep on it until every actor has finished the round (round 0 was the
    warm-up), instead of polling inside ``ray.get``.

    Round outputs may be views into the compiled graph's shared-memory channels: they live only
    in this function, so none outlives the graph's teardown.
    """
    upstream = {p.name: p.upstream for p in plans}
    deadline = None if duration_s is None else time.perf_counter() + duration_s
    feedback: dict[str, list] = {}
    stopping, stopped_by, quiet = False, None, False
    round_index = 0
    while True:
        ref = compiled.execute({"stop": stopping, "quiet": quiet, "feedback": feedback})
        round_index += 1
        if signal is not None:
            signal.wait(round_index, SIGNAL_WAIT_S)
        results = ray.get(ref, timeout=ROUND_TIMEOUT_S)
        feedback = {}
        for r in results:
            for group, batch in r["to"].items():
                if r["group"] not in upstream[group]:  # a feedback edge: next round
                    feedback.setdefault(group, []).append(_owned(batch))
        if all(r["done"] for r in results):
            return stopped_by
        # quiet: this round moved no packet, nothing goes back, and no source is still reading
        quiet = not feedback and not any(r["active"] or r["moved"] for r in results)
        if not stopping:
            if stop:
                stopping, stopped_by = True, stop.reason
            elif deadline is not None and time.perf_counter() >= deadline:
                stopping, stopped_by = True, f"duration {duration_s:g} s"
        bar.update(lambda: merge_progress(r["progress"] for r in results))

