"""The one Ray-free core every runner drives: a group of nodes and one step.

A :class:`Stepper` owns a :class:`~pipeline.runners.executor.GroupExecutor` (the group's opened
nodes) and does one *step* at a time:

1. deliver the inbound :class:`Batch` es (packets from other groups, in order; a packet whose
   sequence number was already seen on its input port is a duplicate re-sent after a restart and
   is dropped, counted in ``duplicates``), ticking the group's ticking nodes after each batch;
2. read each active source once;
3. tick on the graph clock (:meth:`Stepper.clock`);
4. once every source is exhausted (or the run is stopping), every forward upstream group has
   ended and, for a group on a closed loop, the loop is quiet: flush the nodes and end.

The graph clock policy, in one place: virtual time (the slowest data time) while every source
that feeds the group replays at ``speed: max``, else ``pylsl.local_clock()``. A group's clock is
the minimum of its own active sources' ``virtual_time`` and the clocks its upstream groups sent
with their last batches; any live clock makes it the LSL clock. So a ticking node sees the same
ticks (data time) on every runner and a replay is deterministic.

Transports: ``local`` steps one group over the whole graph in a loop; ``ray`` steps one stepper
per actor behind a mailbox; ``ray-compiled`` calls :meth:`Stepper.step` once per round of the
compiled DAG; :mod:`pipeline.runners.inprocess` wires several steppers in one process (tests).

Checkpoints: :meth:`Stepper.checkpoint` returns every node's ``state()`` plus the stepper's and
executor's bookkeeping (sequence numbers, tick times, statistics); :meth:`Stepper.restore`
resumes from it in a freshly opened group.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Iterable

from pipeline.clock import local_clock
from pipeline.node import Node, Source
from pipeline.packet import Packet
from pipeline.runners.executor import GroupExecutor
from pipeline.runners.plan import GroupPlan
from pipeline.runners.probe import install as install_probe

Delivery = tuple[str, str, Packet]
"""``(destination node, destination port, packet)``."""
Clock = tuple[float, bool]
"""``(seconds on the graph clock, virtual)``: virtual = data time of replays at ``speed: max``."""


@dataclass
class Batch:
    """What one group sends another in one step.

    Attributes:
        sender: the sending group's name.
        clock: the sender's graph clock after its step, or None when it has none (its sources
            ended and it has no upstream clock).
        deliveries: packets for nodes of the receiving group, in the order they were produced.
        eos: the sender has ended (flushed); nothing more comes from it.
    """

    sender: str
    clock: Clock | None
    deliveries: list[Delivery] = field(default_factory=list)
    eos: bool = False


class Stepper:
    """One group of opened nodes and its step (see the module docstring).

    Args:
        plan: the group (its nodes in topological order, upstream/feedback groups).
        nodes: the group's nodes by name, already opened.
        routes: the graph's routing table ``(src, port) -> [(dst, port), ...]``.
        sinks: nodes where packets leave the graph (latency is measured there).
        group_of: node -> group name for the whole graph (to address outgoing packets).
    """

    def __init__(self, plan: GroupPlan, nodes: dict[str, Node], routes: dict, sinks: Iterable[str],
                 group_of: dict[str, str] | None = None) -> None:
        self.plan = plan
        self.executor = GroupExecutor(nodes, routes, sinks)
        self.group_of = group_of or {n: plan.name for n in nodes}
        self.sources: dict[str, Source] = {n: nodes[n] for n in self.executor.sources}  # type: ignore[misc]
        self.active: list[str] = list(self.executor.sources)
        self.started = False
        self.done = False
        self.clocks: dict[str, Clock] = {}
        self.eos: set[str] = set()
        self.last_seq: dict[tuple[str, str], int] = {}
        self.duplicates = 0
        self._clock_sent: dict[str, Clock | None] = {}
        self.probe = install_probe(self)  # None unless SPIKELOOP_PROBE is set (a diagnostic)

    # --- the graph clock -----------------------------------------------------------------------
    def clock(self) -> Clock | None:
        """The group's graph clock now, or None when it has no source of time (see module doc)."""
        if not self.clocks:  # the common case (one group, or a source group): same result, fewer calls
            if not self.active:
                return None
            sources = self.sources
            own = [sources[n].virtual_time for n in self.active]
            if None in own:
                return local_clock(), False
            return min(float(v) for v in own), True  # type: ignore[arg-type]
        own = [self.sources[n].virtual_time for n in self.active]
        ups = list(self.clocks.values())
        if not own and not ups:
            return None
        if any(v is None for v in own) or any(not virtual for _, virtual in ups):
            return local_clock(), False
        return min([float(v) for v in own] + [c for c, _ in ups]), True  # type: ignore[arg-type]

    def _tick(self) -> list[Delivery]:
        ex = self.executor
        now = self.clock()
        ex.live = now is not None and not now[1]
        if not ex.ticking or now is None:
            return []
        return ex.tick(now[0])

    # --- the step --------------------------------------------------------------------------------
    def take(self, batch: Batch) -> list[Delivery]:
        """Deliver one inbound batch (duplicates dropped), note its clock and end, tick."""
        ex = self.executor
        out: list[Delivery] = []
        if batch.clock is not None:
            ex.live = not batch.clock[1]
        for dst, port, packet in batch.deliveries:
            key = (dst, port)
            last = self.last_seq.get(key)
            if packet.seq >= 0 and last is not None and packet.seq <= last:
                self.duplicates += 1
                continue
            self.last_seq[key] = packet.seq
            out += ex.deliver(dst, port, packet)
        if batch.eos:
            self.eos.add(batch.sender)
            self.clocks.pop(batch.sender, None)
        elif batch.clock is not None:
            self.clocks[batch.sender] = batch.clock
        out += self._tick()
        return out

    def step(self, inbound: Iterable[Batch] = (), *, stop: bool = False, quiet: bool = False,
             read: bool = True) -> list[Delivery]:
        """One step; returns the deliveries for nodes outside this group.

        Args:
            inbound: batches from other groups, in the order they are to be processed.
            stop: stop reading sources (duration reached, Ctrl-C, SIGTERM): the group then ends as
                at the end of data.
            quiet: the transport has seen the whole graph quiet (no packet in flight): a group on
                a closed loop may end.
            read: read the sources in this step (False: only deliver and tick).
        """
        ex = self.executor
        out: list[Delivery] = []
        if self.done:
            for batch in inbound:  # after the end nothing is processed; count it
                ex.dropped_after_end += sum(1 for _ in batch.deliveries)
            return out
        if not self.started:
            self.started = True
            out += ex.start(self.plan.nodes)
        inbound = list(inbound)
        for batch in inbound:
            out += self.take(batch)
        if stop:
            self.active = []
        if read and self.active:
            for name in list(self.active):
                got = ex.read_source(name)
                if got is None:
                    self.active.remove(name)
                else:
                    out += got
            out += self._tick()
        elif not self.active:
            out += self._tick()  # a group without (active) sources ticks on its upstream clock
        # quiet is the transport's view from before this step: moving a packet now disproves it
        moved = bool(out) or any(b.deliveries for b in inbound)
        if self.can_end(quiet and not moved):
            out += ex.flush(self.plan.nodes)
            self.done = True
        return out

    def can_end(self, quiet: bool) -> bool:
        """True when the group may flush and end: sources done, upstream ended, loop quiet."""
        return (not self.done and not self.active and self.plan.upstream <= self.eos
                and (quiet or not self.plan.feedback_from))

    def batches(self, deliveries: list[Delivery], *, eos: bool = False, clock_targets: bool = True,
                all_targets: bool = False) -> dict[str, Batch]:
        """Split outgoing ``deliveries`` into one batch per receiving group.

        A group in ``plan.clock_to`` (it or a group after it ticks) gets a batch (perhaps empty)
        whenever this group has a virtual clock, so ticks follow the data time; ``eos`` or
        ``all_targets`` address every downstream group.
        """
        clock = None if eos else self.clock()
        out: dict[str, Batch] = {}
        for dst, port, packet in deliveries:
            group = self.group_of[dst]
            if group not in out:
                out[group] = Batch(self.plan.name, clock)
            out[group].deliveries.append((dst, port, packet))
        extra: set[str] = set()
        if eos or all_targets:
            extra = set(self.plan.downstream)
        elif clock_targets and clock is not None and clock[1]:
            extra = set(self.plan.clock_to)
        for group in extra:
            if group not in out and (eos or all_targets or self._clock_sent.get(group) != clock):
                out[group] = Batch(self.plan.name, clock)  # a clock-only batch, when the clock moved
        for group in out:
            self._clock_sent[group] = clock
        if eos:
            for b in out.values():
                b.eos = True
        return out

    # --- checkpoints -----------------------------------------------------------------------------
    def checkpoint(self) -> dict[str, Any]:
        """Everything needed to resume this group in a fresh process (a deep copy)."""
        nodes = self.executor.nodes
        return copy.deepcopy({
            "nodes": {name: node.state() for name, node in nodes.items()},
            "virtual_time": {n: s.virtual_time for n, s in self.sources.items()},
            "executor": self.executor.checkpoint(),
            "active": list(self.active),
            "started": self.started,
            "done": self.done,
            "clocks": dict(self.clocks),
            "eos": sorted(self.eos),
            "last_seq": dict(self.last_seq),
            "duplicates": self.duplicates,
        })

    def restore(self, state: dict[str, Any]) -> None:
        """Resume from :meth:`checkpoint` (the group's nodes opened, not started)."""
        state = copy.deepcopy(state)
        for name, node in self.executor.nodes.items():
            node.restore(state["nodes"].get(name, {}))
        for n, vt in state["virtual_time"].items():
            self.sources[n].virtual_time = vt
        self.executor.restore(state["executor"])
        self.active = [n for n in state["active"] if n in self.sources]
        self.started, self.done = bool(state["started"]), bool(state["done"])
        self.clocks = {k: (float(c), bool(v)) for k, (c, v) in state["clocks"].items()}
        self.eos = set(state["eos"])
        self.last_seq = dict(state["last_seq"])
        self.duplicates = int(state["duplicates"])
