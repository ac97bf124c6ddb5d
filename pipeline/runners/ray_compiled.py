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

A live graph whose nodes are all fused into one group has no packet to hand between actors, so
a round does not need to be one step: the group then steps for :data:`LIVE_ROUND_S` per round
(ending the round right after a step that read data, when the next sample is furthest away), as
the ``local`` runner loops. The driver's round trip (writing the round's input, reading its
result: Python and channel work in two processes, and the actor's channel reader polling while it
waits) then happens 5 times a second instead of once per sample; outputs are the same steps in the
same order. Stopping waits for the round to end (at most :data:`LIVE_ROUND_S`).

Rounds make this runner deterministic like ``local``. Packets handed from actor to actor travel
through shared-memory channels; the receiving actor copies them before its nodes see them (a
channel's buffer is reused by the next round). Each actor keeps torch out of Ray's channel code
(:func:`keep_torch_out`).

Checkpoints and restarts (``runtime.checkpoint_s``, default 5 s, 0 = off; ``runtime.max_restarts``,
default 3; shared with the ``ray`` runner in :mod:`pipeline.runners.restarts`)
    When a checkpoint is due the driver marks the next round: every group returns its checkpoint
    with that round's output, so all groups' checkpoints are taken at one round boundary (a
    consistent cut: rounds are synchronous). Each group keeps its own round outputs since the
    last checkpoint the driver has confirmed (it forgets them once the driver tells it a newer
    checkpoint is complete); the driver keeps each round's input (the stop/quiet flags and the
    feedback batches) since then. When an actor dies (the round's results fail: Ray reports the
    death), the driver tears the compiled graph down (bounded), recreates the dead group's actor
    (from the warm spare, as the ``ray`` runner does), restores its checkpoint, and replays, as
    ordinary actor calls, the rounds it lost: round by round, each group that had not finished a
    round steps it with its upstream groups' outputs of that round (kept by them, or produced by
    the replay). Once every group has finished the failed round the graph is compiled again and
    rounds continue. A replay at ``speed: max`` through a crash therefore gives the outputs of an
    uninterrupted run (re-sent packets downstream already has are dropped by sequence number).
    Live sources cannot rewind: what arrived while their group was down is read late or lost (the
    inlet's counters show it). A group's kept outputs are bounded: past
    :data:`~pipeline.runners.ray_runner.MAX_KEPT_BYTES` the driver takes a checkpoint early. Past
    ``max_restarts`` the run stops with one line naming the node and still returns the summary of
    what ran (a dead group's statistics from its last checkpoint).
"""
from __future__ import annotations

import copy
import gc
import logging
import os
import time
from typing import Any, Callable

import numpy as np

from pipeline.graph import GraphSpec
from pipeline.log import runner_logger
from pipeline.packet import Packet
from pipeline.runners.progress import ReplayProgress, merge_progress
from pipeline.runners.ray_runner import (
    MAX_KEPT_BYTES,
    Driver,
    GroupActor,
    StartupStopped,
    ensure_ray,
    stopped_during_startup,
)
from pipeline.errors import UserError
from pipeline.runners.plan import LIVE_SOURCE_KINDS
from pipeline.runners.restarts import CheckpointSchedule, checkpoint_interval, nodes_text
from pipeline.runners.round_signal import RoundNotifier, RoundSignal
from pipeline.runners.signals import StopRequest
from pipeline.runners.status import StatusLine
from pipeline.runners.stepper import Batch
from pipeline.runners.summary import group_result, merge_summary

log = runner_logger()

ROUND_TIMEOUT_S = 30.0
"""Longest wait for one round's results (a node stuck longer than this ends the run)."""
TEARDOWN_S = 15.0
"""Longest wait for a compiled graph's teardown."""
REPLAY_TIMEOUT_S = 120.0
"""Longest wait for one group to replay the rounds it lost (many rounds, as ordinary actor calls)."""
SIGNAL_WAIT_S = 1.0
"""Live graphs: longest sleep on the round signal before Ray's own (polling) wait takes over."""
LIVE_ROUND_S = 0.2
"""A live graph fused into one group steps that group for this long (s) per compiled round
(``SPIKELOOP_COMPILED_ROUND_S`` overrides it; 0 = one step per round, the rule before, for A/B)."""


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
    """A group of nodes stepped one round at a time by a compiled DAG.

    Besides stepping, it keeps its round results since the driver's last complete checkpoint
    (``keep``), so a restarted group downstream can replay the rounds it lost, and returns its
    checkpoint in the output of a round the driver marks."""

    def setup(self, peers: dict[str, Any], state: dict[str, Any] | None = None) -> bool:
        keep_torch_out()
        super().setup({}, state)
        self._eos_sent = bool(state and state.get("eos_sent"))
        self.round = int(state["round"]) if state else 0
        self.kept: dict[int, dict[str, Any]] = {}
        self.kept_bytes = 0
        self._notifier: RoundNotifier | None = None
        return True

    def signal_rounds(self, path: str) -> bool:
        """Write a byte to the driver's FIFO at the end of each compiled round
        (:mod:`pipeline.runners.round_signal`); False if the FIFO is not on this machine."""
        if self._notifier is not None:
            self._notifier.close()
        self._notifier = RoundNotifier()
        return self._notifier.open(path)

    def step(self, round_in: dict[str, Any], *upstream: dict[str, Any]) -> dict[str, Any]:
        """One round of the compiled graph (see :meth:`_step`); then tells the driver's round
        signal, tagged with the round's number, that this group finished it."""
        try:
            return self._step(round_in, *upstream)
        finally:
            if self._notifier is not None:
                self._notifier.notify(int(round_in.get("round", 0)))

    def _step(self, round_in: dict[str, Any], *upstream: dict[str, Any]) -> dict[str, Any]:
        """One round.

        Args:
            round_in: ``{"round", "stop", "quiet", "feedback": {group: [Batch, ...]}, "keep",
                "checkpoint", "committed"}`` from the driver: ``keep`` = keep this round's result
                for replays; ``checkpoint`` = return the group's checkpoint after this round;
                ``committed`` = the round of the newest checkpoint the driver holds for every
                group (kept results up to it are forgotten).
            upstream: this round's outputs of the upstream groups, in topological order.

        Returns:
            ``{"group", "round", "to": {group: Batch}, "done", "active", "moved", "progress",
            "checkpoint", "kept_bytes"}``.
        """
        st = self.stepper
        assert st is not None, "setup() first"
        name = self.plan.name
        if round_in.get("warmup"):
            return {"group": name, "round": self.round, "to": {}, "done": False, "active": True, "moved": 0,
                    "progress": None, "checkpoint": None, "kept_bytes": 0}
        inbound = [_owned(b) for b in round_in["feedback"].get(name, [])]
        inbound += [_owned(up["to"][name]) for up in upstream if name in up["to"]]
        with self._step_lock:
            out = st.step(inbound, stop=round_in["stop"], quiet=round_in["quiet"])
            steps_s = float(round_in.get("steps_s") or 0.0)
            if steps_s > 0 and not round_in["stop"]:  # a live graph in one group: step on (module docs)
                out += self._step_on(steps_s, round_in["quiet"])
            if st.done and self._eos_sent:
                batches: dict[str, Batch] = {}
            else:
                batches = st.batches(out, eos=st.done)
                self._eos_sent = st.done
            self.round = int(round_in.get("round", self.round + 1))
            moved = len(out) + sum(len(b.deliveries) for b in inbound)
            result = {"group": name, "round": self.round, "to": batches, "done": st.done, "active": bool(st.active),
                      "moved": moved}
            committed = round_in.get("committed")
            if committed is not None and self.kept and min(self.kept) <= committed:
                self.kept = {r: k for r, k in self.kept.items() if r > committed}
                self.kept_bytes = sum(_batches_bytes(k["to"]) for k in self.kept.values())
            if round_in.get("keep"):
                self.kept[self.round] = result
                self.kept_bytes += _batches_bytes(batches)
            checkpoint = None
            if round_in.get("checkpoint"):
                t = time.perf_counter()
                checkpoint = {"stepper": st.checkpoint(), "inbox": {}, "epoch": self.epoch, "t": time.time(),
                              "round": self.round, "eos_sent": self._eos_sent}
                checkpoint["cost_s"] = time.perf_counter() - t
        return dict(result, progress=self.progress(), checkpoint=checkpoint, kept_bytes=self.kept_bytes)

    def _step_on(self, steps_s: float, quiet: bool) -> list:
        """Step (no inbound) for ``steps_s`` s, ending right after a step whose sources read data."""
        st = self.stepper
        assert st is not None
        stats = [st.executor.stats[n] for n in st.sources]
        out: list = []
        end = time.perf_counter() + steps_s
        while not st.done:
            before = sum(s.packets_out for s in stats)
            out += st.step((), stop=False, quiet=quiet)
            if time.perf_counter() >= end and sum(s.packets_out for s in stats) != before:
                break
            if time.perf_counter() >= end + steps_s:  # no data at all: end the round anyway
                break
        return out

    def replay(self, rounds: list[tuple[dict[str, Any], list[dict[str, Any]]]]) -> list[dict[str, Any]]:
        """Step the rounds this group lost, in order: ``[(round_in, upstream outputs), ...]``."""
        results = []
        for round_in, ups in rounds:
            r = self._step(round_in, *ups)
            results.append({k: r[k] for k in ("group", "round", "to", "done", "active", "moved")})
        return results

    def kept_rounds(self, first: int, last: int) -> dict[int, dict[str, Any]]:
        """The kept results of rounds ``first``..``last`` (those this group has)."""
        return {r: k for r, k in self.kept.items() if first <= r <= last}

    def round_done(self) -> int:
        """The last round this group finished."""
        return self.round

    def finish(self) -> dict[str, Any]:
        """Close the nodes and return the group's statistics."""
        st = self.stepper
        assert st is not None
        counters, reports = st.executor.counters(), st.executor.reports()
        st.executor.close()
        if self._notifier is not None:
            self._notifier.close()
        return group_result(st, time.perf_counter() - self._t0, counters, reports)


def _batches_bytes(batches: dict[str, Batch]) -> int:
    return sum(p.data.nbytes + p.timestamps.nbytes + 64 for b in batches.values() for _, _, p in b.deliveries)


class _DeadActorCancelFilter(logging.Filter):
    """Drops Ray's "Error cancelling worker task" traceback when the worker is a dead actor.

    When an actor of a compiled graph dies, Ray's monitor thread tears the graph down and logs,
    at ERROR with a full traceback, that it cannot cancel the dead actor's loop. That death is
    expected here (the runner restarts the actor and logs one line naming its nodes); any other
    error Ray logs still shows."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not (record.getMessage().startswith("Error cancelling worker task")
                    and exc is not None and type(exc).__name__ in ("ActorDiedError", "RayActorError"))


def _filter_dead_actor_tracebacks() -> None:
    ray_log = logging.getLogger("ray.dag.compiled_dag_node")
    if not any(isinstance(f, _DeadActorCancelFilter) for f in ray_log.filters):
        ray_log.addFilter(_DeadActorCancelFilter())


class _Stopped(Exception):
    """The run cannot go on (past max_restarts, or a restart failed): ``failure`` says why."""

    def __init__(self, failure: str, logged: bool = False) -> None:
        super().__init__(failure)
        self.failure, self.logged = failure, logged


class CompiledRun:
    """The driver's side of one compiled run: the DAG, the rounds, checkpoints and restarts.

    Args:
        driver: the run's :class:`~pipeline.runners.ray_runner.Driver` (actors created and opened).
        stop: the run's stop request (signals).
        duration_s: stop after this many seconds (None: at the end of data).
        bar: the replay progress bar.
    """

    def __init__(self, driver: Driver, stop: StopRequest, duration_s: float | None, bar: ReplayProgress) -> None:
        import ray

        self.ray, self.driver, self.stop, self.bar = ray, driver, stop, bar
        self.spec = driver.spec
        self.plans = driver.plans
        self.index = {p.name: i for i, p in enumerate(self.plans)}
        self.upstream = {p.name: sorted(p.upstream, key=self.index.__getitem__) for p in self.plans}
        # checkpoints (and kept round outputs) whenever checkpoint_s > 0: with max_restarts 0 they
        # still give a dead group's statistics to the summary
        self.restarts_on = checkpoint_interval(self.spec.runtime) > 0
        self.schedule = CheckpointSchedule(checkpoint_interval(self.spec.runtime))
        self.duration_s = duration_s
        self.deadline: float | None = None
        self.compiled: Any = None
        self.round = 0  # the last round executed (or attempted)
        self.committed = 0  # the round of the checkpoints the driver holds (0: none, the start)
        self.inputs: dict[int, dict[str, Any]] = {}  # round -> its round_in, since `committed`
        self.feedback: dict[str, list] = {}
        self.stopping, self.stopped_by, self.quiet = False, None, False
        self.checkpoint_next = False
        self.failure: str | None = None
        self.dead: set[str] = set()  # groups whose actor is gone for good (past max_restarts)
        self._spare_check = 0.0
        # live graphs: the driver sleeps on a round signal instead of polling in Ray's channel read
        self.live = any(n.kind in LIVE_SOURCE_KINDS for n in self.spec.nodes.values())
        self.signal: RoundSignal | None = None
        # a live graph in one group steps on within a round (module docs); feedback needs rounds
        one_group = self.live and len(self.plans) == 1 and not self.plans[0].feedback_from
        self.steps_s = _live_round_s() if one_group else 0.0

    # --- the compiled graph ------------------------------------------------------------------------
    def compile(self) -> None:
        """Bind every group's ``step`` into one DAG, compile it and run Ray's first (warm-up) round."""
        from ray.dag import InputNode, MultiOutputNode

        _filter_dead_actor_tracebacks()
        actors = self.driver.actors
        if self.live:
            self._open_round_signal()
        with InputNode() as round_in:
            outs: dict[str, Any] = {}
            for plan in self.plans:  # topological order: upstream outputs exist already
                outs[plan.name] = actors[plan.name].step.bind(round_in, *[outs[u] for u in self.upstream[plan.name]])
            dag = MultiOutputNode([outs[p.name] for p in self.plans])
        self.compiled = dag.experimental_compile()
        # Ray finishes setting up channels on the first execution: do it before the clock runs
        self.ray.get(self.compiled.execute({"warmup": True}), timeout=ROUND_TIMEOUT_S)

    def _open_round_signal(self) -> None:
        """Have every group actor (new ones after a restart too) write to the driver's round
        signal; without it (an actor on another machine) the driver waits in Ray as usual."""
        if self.signal is None:
            self.signal = RoundSignal(len(self.plans))
        driver = self.driver
        opened = [driver.get(driver.actors[p.name].signal_rounds.remote(self.signal.path), f"group {p.name!r}")
                  for p in self.plans]
        if not all(opened):
            log.info("round signal not used (a group actor runs on another machine): the driver polls in Ray")
            self.signal.close()
            self.signal, self.live = None, False

    def close(self) -> None:
        """Tear the compiled graph down and close the round signal (the end of the run)."""
        self.teardown(quiet_errors=True)
        if self.signal is not None:
            self.signal.close()
            self.signal = None

    def teardown(self, quiet_errors: bool = False) -> None:
        """Tear the compiled graph down (bounded). (``quiet_errors`` is kept for callers; Ray's
        traceback for the dead actor it cannot cancel is always filtered, see
        :class:`_DeadActorCancelFilter`.)"""
        if self.compiled is None:
            return
        _teardown(self.compiled, TEARDOWN_S)
        self.compiled = None

    # --- rounds ------------------------------------------------------------------------------------
    def run(self) -> str | None:
        """Execute rounds until every group is done; return why it stopped early (None: end of data)."""
        ray = self.ray
        self.deadline = None if self.duration_s is None else time.perf_counter() + self.duration_s
        self.compile()
        self.schedule = CheckpointSchedule(self.schedule.interval_s)  # the interval counts from the first round
        log.info("graph running (%d actors in a compiled graph; checkpoints %s)", len(self.plans), self.schedule.describe())
        while True:
            checkpoint = self.restarts_on and (self.checkpoint_next or (not self.stopping and self.schedule.due()))
            self.round += 1
            round_in = {"round": self.round, "stop": self.stopping, "quiet": self.quiet, "feedback": self.feedback,
                        "keep": self.restarts_on, "checkpoint": checkpoint, "committed": self.committed,
                        "steps_s": self.steps_s}
            if self.restarts_on:
                self.inputs[self.round] = {k: round_in[k] for k in ("round", "stop", "quiet", "feedback")}
            try:
                ref = self.compiled.execute(round_in)
                if self.signal is not None:
                    self.signal.wait(self.round, SIGNAL_WAIT_S)
                results = ray.get(ref, timeout=ROUND_TIMEOUT_S)
                results = self.after_round(results, checkpoint)
            except (ray.exceptions.RayError, TimeoutError) as exc:
                results = self.recover(exc)  # raises _Stopped when the run cannot go on
            if all(r["done"] for r in results):
                return self.stopped_by
            self.watch(results)

    def after_round(self, results: list[dict[str, Any]], checkpoint: bool) -> list[dict[str, Any]]:
        """Note a round's feedback, checkpoints and kept sizes; return the results."""
        self.feedback = {}
        for r in results:
            for group, batch in r["to"].items():
                if r["group"] not in self.plans[self.index[group]].upstream:  # a feedback edge: next round
                    self.feedback.setdefault(group, []).append(_owned(batch))
        if checkpoint:
            self.checkpoint_next = False
            for r in results:  # copies: the round's outputs may be views into the channels
                self.driver.checkpoints[r["group"]] = copy.deepcopy(r["checkpoint"])
                self.driver.checkpoint_stats.add(self.driver.checkpoints[r["group"]])
            self.committed = self.round
            self.inputs = {j: v for j, v in self.inputs.items() if j > self.round}
            for r in results:
                self.driver.observer("checkpoint", {"group": r["group"], "round": self.round})
        elif self.restarts_on and max(r.get("kept_bytes", 0) for r in results) > MAX_KEPT_BYTES:
            self.checkpoint_next = True  # kept outputs are getting large: checkpoint now
        return results

    def watch(self, results: list[dict[str, Any]]) -> None:
        """Between rounds: quiet detection, stop requests, duration, progress, the spare actor."""
        # quiet: this round moved no packet, nothing goes back, and no source is still reading
        self.quiet = not self.feedback and not any(r["active"] or r["moved"] for r in results)
        if not self.stopping:
            if self.stop:
                self.stopping, self.stopped_by = True, self.stop.reason
            elif self.deadline is not None and time.perf_counter() >= self.deadline:
                self.stopping, self.stopped_by = True, f"duration {self.duration_s:g} s"
        if any("progress" in r for r in results):
            self.bar.update(lambda: merge_progress(r["progress"] for r in results if "progress" in r))
        now = time.monotonic()
        if now - self._spare_check > 0.1:
            self._spare_check = now
            self.driver.check_spare()

    # --- restarts ----------------------------------------------------------------------------------
    def recover(self, exc: BaseException) -> list[dict[str, Any]]:
        """After a failed round: restart the dead groups, replay their lost rounds, recompile.

        Returns the failed round's results (every group has then finished it). Raises
        :class:`_Stopped` when no group is dead (a stuck node), past ``max_restarts``, or when
        restarts are off."""
        driver = self.driver
        cause = getattr(exc, "cause", None)
        if isinstance(cause, UserError):  # a node raised (NodeFailure): no restart, stop with its line
            self.teardown(quiet_errors=True)
            raise _Stopped(f"{self.spec.file}: {cause}")
        while True:
            t_dead = time.monotonic()
            self.teardown(quiet_errors=True)
            t_down = time.monotonic()
            dead = _dead_groups(self.ray, driver.actors)
            t_found = time.monotonic()
            log.debug("dead groups %s found in %.0f ms", dead, (t_found - t_down) * 1e3)
            if not dead:
                raise _Stopped(f"{self.spec.file}: round {self.round} failed ({type(exc).__name__}: "
                               f"{' '.join(str(exc).split())[:200]}); the run stopped")
            if checkpoint_interval(self.spec.runtime) <= 0:
                self.dead.update(dead)
                nodes = [n for g in dead for n in driver.by_name[g].nodes]
                raise _Stopped(f"{self.spec.file}: {nodes_text(nodes)} died ({type(exc).__name__}); restarts are off "
                               "(runtime.checkpoint_s or runtime.max_restarts is 0); the run stopped")
            for g in dead:
                failure = driver.budget.death(g, driver.by_name[g].nodes)
                if failure:
                    self.dead.update(dead)
                    raise _Stopped(failure, logged=True)
            try:
                t0 = time.perf_counter()
                restored = {}
                for g in sorted(dead, key=self.index.__getitem__):
                    restored[g] = driver.recreate(g)
                t_new = time.monotonic()
                results = self.replay_lost()
                t_replayed = time.monotonic()
                self.compile()
            except self.ray.exceptions.RayActorError as again:
                exc = again  # another death while restarting: count it and go again
                continue
            t_end = time.monotonic()
            parts = dict(driver.recreate_s, noticed_at=t_dead, teardown=t_down - t_dead, find_dead=t_found - t_down,
                         new_actor=t_new - t_found, replay=t_replayed - t_new, compile=t_end - t_replayed)
            for g, (actor, state) in restored.items():
                driver.budget.restarted(g, t_end - t_dead, driver.by_name[g].nodes,
                                        {n: s.kind for n, s in self.spec.nodes.items()})
                driver.restarted(g, actor, state, t0, f"rounds {self.committed + 1}..{self.round} replayed; teardown "
                                 f"{(t_down - t_dead) * 1e3:.0f} ms, new actor {(t_new - t_found) * 1e3:.0f} ms (configure "
                                 f"{driver.recreate_s.get('configure', 0) * 1e3:.0f}, open {driver.recreate_s.get('open', 0) * 1e3:.0f}, "
                                 f"restore {driver.recreate_s.get('restore', 0) * 1e3:.0f}), replay "
                                 f"{(t_replayed - t_new) * 1e3:.0f} ms, recompile {(t_end - t_replayed) * 1e3:.0f} ms", parts)
            return self.after_round(results, False)

    def replay_lost(self) -> list[dict[str, Any]]:
        """Bring every group to the end of the failed round; return that round's results.

        Rounds after the last checkpoint are replayed as ordinary actor calls, groups in
        topological order: a group steps the rounds it has not finished with the inputs the driver
        kept (flags, feedback) and its upstream groups' outputs of each round."""
        driver = self.driver
        last = self.round
        done = dict(zip(driver.actors, driver.get_all([a.round_done.remote() for a in driver.actors.values()],
                                                      "the groups' rounds")))
        have: dict[str, dict[int, dict]] = {g: {} for g in driver.actors}

        def outputs(group: str, first: int) -> dict[int, dict]:
            missing = [j for j in range(first, last + 1) if j not in have[group]]
            if missing:
                got = driver.get(driver.actors[group].kept_rounds.remote(missing[0], missing[-1]),
                                 f"group {group!r} (its kept rounds)")
                have[group].update(got)
            return have[group]

        for plan in self.plans:
            g = plan.name
            first = done[g] + 1
            if first > last:
                continue
            ups = {u: outputs(u, first) for u in self.upstream[g]}
            rounds = []
            for j in range(first, last + 1):
                if j not in self.inputs:
                    raise _Stopped(f"{self.spec.file}: group {g!r} cannot replay round {j} (its input is no longer "
                                   "kept); the run stopped")
                round_in = dict(self.inputs[j], keep=True, checkpoint=False, committed=None)
                lost = [u for u in ups if j not in ups[u]]
                if lost:
                    raise _Stopped(f"{self.spec.file}: group {g!r} cannot replay round {j}: the output of "
                                   f"{', '.join(map(repr, lost))} is no longer kept; the run stopped")
                rounds.append((round_in, [{"to": ups[u][j]["to"]} for u in ups]))
            t = time.perf_counter()
            results = driver.get(driver.actors[g].replay.remote(rounds), f"group {g!r} (replaying lost rounds)",
                                 REPLAY_TIMEOUT_S)
            log.info("group %r replayed rounds %d..%d in %.0f ms", g, first, last, (time.perf_counter() - t) * 1e3)
            for r in results:
                have[g][r["round"]] = r
        return [outputs(p.name, last)[last] for p in self.plans]


def run(spec: GraphSpec, *, progress: bool = True, duration_s: float | None = None,
        address: str | None = None, observer: Callable[[str, dict], None] | None = None) -> dict[str, Any]:
    """Run ``spec`` as a Ray Compiled Graph of group actors; return the summary (as ``local``).

    ``observer(event, info)`` is told ``"started"`` ({"pids": {group: pid}, "actors"}),
    ``"spare_ready"`` ({"pid"}), ``"checkpoint"``
    ({"group", "round"}) and ``"restarted"`` ({"group", "pid"}) (tests and benchmarks use it).
    """
    status = StatusLine(progress)
    status.message("starting Ray…")
    t_start = time.perf_counter()
    with StopRequest() as stop:
        started = ensure_ray(spec.runtime, address)
        stop.install()  # over the SIGTERM handler ray.init installs
        import ray

        driver = runner = None
        bar = ReplayProgress(progress)
        stopped_by, failure = "end of data", None
        results: list[dict] = []
        wall_s = 0.0
        rounds = 0
        try:
            if stop:  # asked while Ray started
                return stopped_during_startup(spec, "ray-compiled", stop, "starting Ray", t_start)
            driver = Driver(spec, "ray-compiled", worker=CompiledGroupActor, max_concurrency=1, observer=observer)
            status.message("opening nodes…")
            driver.stopping = lambda: bool(stop)
            try:
                driver.start()
            except StartupStopped as exc:
                return stopped_during_startup(spec, "ray-compiled", stop, exc.during, t_start)
            driver.stopping = lambda: False
            status.close()
            runner = CompiledRun(driver, stop, duration_s, bar)
            t0 = time.perf_counter()
            try:
                stopped_by = runner.run() or stopped_by
            except (_Stopped, UserError) as exc:  # past max_restarts, or a restart failed
                failure = exc.failure if isinstance(exc, _Stopped) else str(exc)
                if not getattr(exc, "logged", False):
                    log.error(failure)
                stopped_by = "failure: " + failure
            wall_s = time.perf_counter() - t0
            rounds = runner.round
            runner.teardown(quiet_errors=failure is not None)
            for p in driver.plans:
                try:
                    if p.name in runner.dead:
                        raise ray.exceptions.RayActorError()
                    results.append(driver.get(driver.actors[p.name].finish.remote(), f"group {p.name!r}", timeout=10.0))
                except ray.exceptions.RayError:
                    result = driver.failed_result(p.name)
                    if result is not None:
                        results.append(result)
                        log.error("group %r: statistics from its last checkpoint (its actor is gone)", p.name)
                    else:
                        log.error("group %r: no statistics (its actor is gone)", p.name)
        finally:
            bar.close()
            status.close()
            if runner is not None:
                runner.close()
            if driver is not None:
                for a in list(driver.actors.values()) + ([driver.spare] if driver.spare is not None else []):
                    ray.kill(a)
                driver.actors.clear()
                driver.spare = None
            # Drop every Ray object (DAG nodes, compiled graph, actor handles) while Ray is still up:
            # finalising them after ray.shutdown() crashes the process with some graph shapes.
            runner = None
            gc.collect()
            if started:
                ray.shutdown()
    log.info("run stopped: %s (%.2f s, restarts %s)", stopped_by, wall_s, (driver.restarts if driver else None) or "none")
    summary = merge_summary(spec, "ray-compiled", results, wall_s, stopped_by, driver.restarts if driver else {}, failure)
    if driver is not None:
        summary.update(driver.budget.summary_fields())
        summary["checkpoints"] = driver.checkpoint_stats.summary(wall_s)
    summary["rounds"] = rounds  # compiled rounds executed (a live graph in one group: 5 per second)
    return summary


def _live_round_s() -> float:
    """:data:`LIVE_ROUND_S`, or ``SPIKELOOP_COMPILED_ROUND_S`` from the environment (s, >= 0)."""
    try:
        return max(0.0, float(os.environ.get("SPIKELOOP_COMPILED_ROUND_S", LIVE_ROUND_S)))
    except ValueError:
        return LIVE_ROUND_S


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
