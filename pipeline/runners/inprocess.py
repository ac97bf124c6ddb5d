"""Several steppers in one process, wired by a tiny transport: the multi-group semantics of the
Ray runners (mailboxes, clocks in batches, end marks, quiet loops, checkpoints and restarts)
without Ray, for tests and debugging.

Each group is a :class:`~pipeline.runners.stepper.Stepper` over its own freshly constructed
nodes. Batches go into per-receiver queues (one FIFO per sender, as Ray's numbered batches give).
``schedule="rounds"`` steps the groups in topological order, as ``ray-compiled`` does;
``schedule="random"`` steps a random group with a random number of its queued batches each time,
as asynchronous actors might (seeded, so a failure repeats). ``restart_at={group: step}`` throws
that group away at its ``step``-th step and resumes it from its last checkpoint (taken every
``checkpoint_every`` steps), with the batches sent to it since re-queued: what the Ray runner does
after an actor dies.
"""
from __future__ import annotations

import random
from collections import deque
from typing import Any

from pipeline.graph import GraphSpec
from pipeline.runners.opening import construct_node, incoming_edges, open_all, open_feedback, open_node
from pipeline.runners.plan import GroupPlan, plan_groups
from pipeline.runners.stepper import Batch, Stepper
from pipeline.runners.summary import group_result, merge_summary


class InProcessGroups:
    """The groups of ``spec`` as steppers in this process (see the module docstring)."""

    def __init__(self, spec: GraphSpec, checkpoint_every: int = 0) -> None:
        self.spec = spec
        self.plans, self.group_of = plan_groups(spec)
        self.by_name = {p.name: p for p in self.plans}
        self.checkpoint_every = checkpoint_every
        self.nodes = {n: construct_node(spec.file, n, spec.nodes[n].kind, spec.nodes[n].params) for n in spec.nodes}
        self.infos = open_all(
            spec,
            lambda name, inputs, incoming: open_node(spec.file, name, self.nodes[name], inputs, incoming),
            lambda e, info: open_feedback(spec.file, e.dst, self.nodes[e.dst], e.dst_port, info, e.src),
        )
        self.steppers = {p.name: self._stepper(p, self.nodes) for p in self.plans}
        self.queues: dict[str, dict[str, deque]] = {p.name: {} for p in self.plans}
        self.kept: dict[str, list[tuple[int, Batch]]] = {p.name: [] for p in self.plans}  # receiver -> (n, batch)
        self.taken: dict[str, dict[str, int]] = {p.name: {} for p in self.plans}  # receiver -> sender -> count
        self.sent: dict[str, dict[str, int]] = {p.name: {} for p in self.plans}  # receiver -> sender -> count
        self.checkpoints: dict[str, dict] = {}
        self.steps = {p.name: 0 for p in self.plans}
        self.restarts: dict[str, int] = {}

    def _stepper(self, plan: GroupPlan, nodes: dict) -> Stepper:
        return Stepper(plan, {n: nodes[n] for n in plan.nodes}, self.spec.routes(), self.spec.sinks(), self.group_of)

    # --- transport -------------------------------------------------------------------------------
    def _send(self, sender: str, batches: dict[str, Batch]) -> None:
        for group, batch in batches.items():
            n = self.sent[group].get(sender, 0)
            self.sent[group][sender] = n + 1
            self.queues[group].setdefault(sender, deque()).append((n, batch))
            self.kept[group].append((n, batch))

    def _take(self, group: str, limit: int | None) -> list[Batch]:
        out: list[Batch] = []
        for sender, queue in sorted(self.queues[group].items()):
            k = len(queue) if limit is None else min(len(queue), limit)
            for _ in range(k):
                n, batch = queue.popleft()
                self.taken[group][sender] = n + 1
                out.append(batch)
        return out

    def quiet(self) -> bool:
        return all(not st.active for st in self.steppers.values()) and not any(
            q for queues in self.queues.values() for q in queues.values())

    def step(self, group: str, limit: int | None = None, stop: bool = False) -> None:
        st = self.steppers[group]
        quiet = self.quiet()
        inbound = self._take(group, limit)
        out = st.step(inbound, stop=stop, quiet=quiet)
        was_done_before = getattr(st, "_eos_sent", False)
        if not was_done_before:
            self._send(group, st.batches(out, eos=st.done))
            st._eos_sent = st.done  # type: ignore[attr-defined]
        self.steps[group] += 1
        if self.checkpoint_every and self.steps[group] % self.checkpoint_every == 0 and not st.done:
            self.checkpoints[group] = {"stepper": st.checkpoint(), "taken": dict(self.taken[group])}

    def restart(self, group: str) -> None:
        """Throw ``group`` away; rebuild and open its nodes, restore, re-queue what it had not covered."""
        plan = self.by_name[group]
        spec = self.spec
        nodes = {n: construct_node(spec.file, n, spec.nodes[n].kind, spec.nodes[n].params) for n in plan.nodes}
        incoming = incoming_edges(spec)
        for name in plan.nodes:
            inputs = {e.dst_port: self.infos[(e.src, e.src_port)] for e in incoming[name] if not e.feedback}
            open_node(spec.file, name, nodes[name], inputs, incoming[name])
        for e in spec.edges:
            if e.feedback and e.dst in plan.nodes:
                open_feedback(spec.file, e.dst, nodes[e.dst], e.dst_port, self.infos[(e.src, e.src_port)], e.src)
        for name in plan.nodes:
            self.nodes[name].close()
            self.nodes[name] = nodes[name]
        st = self._stepper(plan, nodes)
        ckpt = self.checkpoints.get(group)
        covered = ckpt["taken"] if ckpt else {}
        if ckpt:
            st.restore(ckpt["stepper"])
        self.steppers[group] = st
        # re-queue everything sent to it that the checkpoint does not cover, in each sender's order
        by_sender: dict[str, list] = {}
        for n, batch in self.kept[group]:
            if n >= covered.get(batch.sender, 0):
                by_sender.setdefault(batch.sender, []).append((n, batch))
        self.queues[group] = {s: deque(items) for s, items in by_sender.items()}
        self.taken[group] = dict(covered)
        self.restarts[group] = self.restarts.get(group, 0) + 1

    # --- a whole run -----------------------------------------------------------------------------
    def run(self, schedule: str = "rounds", seed: int = 0, restart_at: dict[str, int] | None = None,
            max_steps: int = 1_000_000) -> dict[str, Any]:
        rng = random.Random(seed)
        restart_at = dict(restart_at or {})
        names = [p.name for p in self.plans]
        for _ in range(max_steps):
            pending = [g for g in names if not self.steppers[g].done]
            if not pending:
                break
            if schedule == "rounds":
                order, limits = pending, [None] * len(pending)
            else:
                order, limits = [rng.choice(pending)], [rng.choice([None, 0, 1, 2])]
            for group, limit in zip(order, limits):
                if restart_at.get(group) == self.steps[group]:
                    del restart_at[group]
                    self.restart(group)
                self.step(group, limit)
        else:
            raise RuntimeError(f"{self.spec.file}: groups did not finish within {max_steps} steps")
        results = []
        for p in self.plans:
            st = self.steppers[p.name]
            counters, reports = st.executor.counters(), st.executor.reports()
            st.executor.close()
            results.append(group_result(st, 0.0, counters, reports))
        return merge_summary(self.spec, f"in-process {schedule}", results, 0.0, "end of data", self.restarts)


def run_inprocess(spec: GraphSpec, **kwargs: Any) -> dict[str, Any]:
    """Run ``spec``'s groups in this process; ``kwargs`` as :meth:`InProcessGroups.run` plus
    ``checkpoint_every`` (steps)."""
    every = kwargs.pop("checkpoint_every", 0)
    return InProcessGroups(spec, checkpoint_every=every).run(**kwargs)
