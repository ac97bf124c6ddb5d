"""In-process execution of a group of nodes: the engine inside every runner.

The ``local`` runner runs the whole graph as one group; the Ray runners run one group per actor
(a single node, or a fused group). A group delivers packets between its own nodes directly, in
FIFO order (deterministic), and hands back the packets bound for nodes outside it.
"""
from __future__ import annotations

import copy
import os
import time
from collections import deque
from typing import Any, Iterable

from pipeline.clock import local_clock
from pipeline.errors import UserError
from pipeline.metrics import LatencyStats, NodeStats, SeqCounter, SeqTracker
from pipeline.node import Node, Outputs, Source
from pipeline.packet import Packet

Route = tuple[str, str]  # (node name, port)
PREWARM_ENV = "SPIKELOOP_PREWARM"
"""Environment variable: ``0`` = live sources do not warm the group's nodes before a sample is due."""


class NodeFailure(UserError):
    """A node raised while running: one line naming the node, the call and the error."""

    def __init__(self, node: str, call: str, exc: BaseException) -> None:
        self.node = node
        text = " ".join(str(exc).split()) or type(exc).__name__
        super().__init__(f"node {node!r} failed in {call}(): {type(exc).__name__}: {text}")


class GroupExecutor:
    """Runs ``nodes`` (a subset of a graph) in this process.

    Args:
        nodes: the group's nodes by name (already opened).
        routes: ``(src, src_port) -> [(dst, dst_port), ...]`` for the group's output ports
            (the whole graph's table is fine; destinations outside the group are external).
        sinks: names of nodes where packets leave the graph (for end-to-end latency).
    """

    def __init__(self, nodes: dict[str, Node], routes: dict[Route, list[Route]], sinks: Iterable[str]) -> None:
        self.nodes = nodes
        self.routes = {k: v for k, v in routes.items() if k[0] in nodes}
        self.sinks = set(sinks) & set(nodes)
        self.stats = {name: NodeStats() for name in nodes}
        self.latency = LatencyStats()
        """In-graph latency (s): ``local_clock() - t_enter`` when a packet reaches a sink."""
        self.e2e = LatencyStats()
        """End-to-end latency (s): ``local_clock()`` after a sink processed (pushed) a packet minus
        the packet's newest sample timestamp (LSL clock; the inlet clock-corrects). Measured only
        while ``live`` (the graph clock is the LSL clock: live or paced sources), since replays at
        ``speed: max`` keep the recording's own timestamps."""
        self.live = False
        self.dropped_after_end = 0
        self.seq_out = SeqCounter()
        self.seq_in = SeqTracker()
        self._seq_next = self.seq_out.next  # the fast paths of SeqCounter / SeqTracker, bound once
        self._seq_last = self.seq_in.last
        self.sources = [name for name, node in nodes.items() if isinstance(node, Source)]
        self.ticking = {name: node.tick_interval for name, node in nodes.items() if node.tick_interval}
        self.next_tick: dict[str, float] = {}
        self._queue: deque[tuple[str, str, Packet]] = deque()
        self._install_prewarm()

    def _install_prewarm(self) -> None:
        """Give every source of the group a ``prewarm`` that calls :meth:`Node.warm` on the group's
        other nodes that have one, in the group's order (a live inlet calls it just before a sample
        is due). ``SPIKELOOP_PREWARM=0`` in the environment leaves it unset (a diagnostic for A/B)."""
        if os.environ.get(PREWARM_ENV, "1") == "0":
            return
        warmers = [(name, node.warm) for name, node in self.nodes.items()
                   if not isinstance(node, Source) and type(node).warm is not Node.warm]
        if not warmers:
            return

        def prewarm() -> None:
            for name, warm in warmers:
                try:
                    warm()
                except Exception as exc:  # noqa: BLE001 - one line naming the node
                    raise NodeFailure(name, "warm", exc) from exc

        for name in self.sources:
            self.nodes[name].prewarm = prewarm  # type: ignore[attr-defined]

    # --- emitting and delivering -------------------------------------------------------------
    def emit(self, src: str, outputs: Outputs | None) -> list[tuple[str, str, Packet]]:
        """Stamp and route ``src``'s outputs; process internal deliveries; return external ones.

        External deliveries are ``(dst, dst_port, packet)`` for nodes outside this group.
        """
        external: list[tuple[str, str, Packet]] = []
        self._route(src, outputs, external)
        self._drain(external)
        return external

    def deliver(self, dst: str, port: str, packet: Packet) -> list[tuple[str, str, Packet]]:
        """Process a packet arriving from outside the group; return the resulting external deliveries."""
        external: list[tuple[str, str, Packet]] = []
        self._queue.append((dst, port, packet))
        self._drain(external)
        return external

    # The two methods below run for every packet of a live session: they are written out (the
    # sequence-number bookkeeping through the fast paths of SeqCounter.stamp / SeqTracker.check,
    # their public tables bound once in __init__; lookups hoisted) because on a live graph each
    # sample's code runs with cold caches, where every Python call costs several times its warm
    # price (docs/RESULTS.md, "Live latency: where the time goes").
    def _route(self, src: str, outputs: Outputs | None, external: list) -> None:
        if not outputs:
            return
        stats = self.stats[src]
        seq_next, routes, nodes, queue = self._seq_next, self.routes, self.nodes, self._queue
        for port, packet in outputs.items():
            key = (src, port)
            n = seq_next.get(key, 0)  # SeqCounter.stamp
            packet.seq = n
            seq_next[key] = n + 1
            stats.packets_out += 1
            stats.samples_out += packet.data.shape[0]
            for dst, dst_port in routes[key]:
                if dst in nodes:
                    queue.append((dst, dst_port, packet))
                else:
                    external.append((dst, dst_port, packet))

    def _drain(self, external: list) -> None:
        queue, nodes, all_stats, seq_last, sinks = self._queue, self.nodes, self.stats, self._seq_last, self.sinks
        clock_ns = time.perf_counter_ns
        while queue:
            dst, port, packet = queue.popleft()
            stats = all_stats[dst]
            seq, key = packet.seq, (dst, port)
            last = seq_last.get(key)
            seq_last[key] = seq
            if last is not None and seq >= 0 and seq - last > 1:  # SeqTracker.check: packets skipped
                stats.gaps += seq - last - 1
            stats.packets_in += 1
            stats.samples_in += packet.data.shape[0]
            t0 = clock_ns()
            try:
                outputs = nodes[dst].process(port, packet)
            except Exception as exc:  # noqa: BLE001 - one line naming the node, not a numpy traceback
                raise NodeFailure(dst, "process", exc) from exc
            stats.proc_ns.append(clock_ns() - t0)
            if dst in sinks:
                now = local_clock()
                self.latency.values.append(now - packet.t_enter)
                if self.live and packet.timestamps.shape[0]:
                    self.e2e.values.append(now - float(packet.timestamps[-1]))
            if outputs:
                self._route(dst, outputs, external)

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self, order: list[str]) -> list[tuple[str, str, Packet]]:
        """Call ``start()`` on the group's nodes in ``order``; return external deliveries."""
        external: list[tuple[str, str, Packet]] = []
        for name in order:
            if name in self.nodes:
                self._route(name, self.nodes[name].start(), external)
                self._drain(external)
        return external

    def read_source(self, name: str) -> list[tuple[str, str, Packet]] | None:
        """Read one source once; None when it is exhausted, else the external deliveries."""
        t0 = time.perf_counter_ns()
        node = self.nodes[name]
        try:
            outputs = node.read()  # type: ignore[attr-defined]
        except Exception as exc:  # noqa: BLE001
            raise NodeFailure(name, "read", exc) from exc
        if outputs is None:
            return None
        self.live = node.virtual_time is None  # type: ignore[attr-defined]  # LSL-clock stamps?
        if outputs:
            self.stats[name].proc_ns.append(time.perf_counter_ns() - t0)
        return self.emit(name, outputs)

    def tick(self, now: float) -> list[tuple[str, str, Packet]]:
        """Tick every ticking node whose time has come (``now`` s on the graph clock)."""
        external: list[tuple[str, str, Packet]] = []
        for name, interval in self.ticking.items():
            due = self.next_tick.setdefault(name, now + interval)
            if now >= due:
                self.next_tick[name] = max(due + interval, now)
                t0 = time.perf_counter_ns()
                try:
                    outputs = self.nodes[name].tick(now)
                except Exception as exc:  # noqa: BLE001
                    raise NodeFailure(name, "tick", exc) from exc
                self.stats[name].proc_ns.append(time.perf_counter_ns() - t0)
                self._route(name, outputs, external)
                self._drain(external)
        return external

    def flush(self, order: list[str]) -> list[tuple[str, str, Packet]]:
        """Call ``flush()`` on the group's nodes in topological ``order``; return external deliveries."""
        external: list[tuple[str, str, Packet]] = []
        for name in order:
            if name in self.nodes:
                self._route(name, self.nodes[name].flush(), external)
                self._drain(external)
        return external

    def checkpoint(self) -> dict[str, Any]:
        """The executor's bookkeeping (sequence numbers, tick times, statistics) for a checkpoint."""
        return {
            "seq_out": self.seq_out.snapshot(),
            "seq_in": self.seq_in.snapshot(),
            "next_tick": dict(self.next_tick),
            "stats": copy.deepcopy(self.stats),
            "latency": copy.deepcopy(self.latency),
            "e2e": copy.deepcopy(self.e2e),
            "dropped_after_end": self.dropped_after_end,
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Resume the bookkeeping saved by :meth:`checkpoint`."""
        self.seq_out.load(state["seq_out"])
        self.seq_in.load(state["seq_in"])
        self.next_tick = dict(state["next_tick"])
        self.stats = copy.deepcopy(state["stats"])
        self.latency = copy.deepcopy(state["latency"])
        self.e2e = copy.deepcopy(state["e2e"])
        self.dropped_after_end = int(state["dropped_after_end"])

    def counters(self) -> dict[str, dict[str, int]]:
        return {name: node.counters() for name, node in self.nodes.items()}

    def reports(self) -> dict[str, dict[str, Any]]:
        return {name: node.report() for name, node in self.nodes.items()}

    def close(self) -> None:
        for node in self.nodes.values():
            node.close()
