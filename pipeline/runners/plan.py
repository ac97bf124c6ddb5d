"""Planning a run: which nodes share a process (a *group*) and how groups feed each other.

Ray-free on purpose: ``spikeloop check`` and the in-process tests plan groups without Ray. The
``ray`` and ``ray-compiled`` runners make one actor per group; the ``local`` runner runs the whole
graph as one group (:func:`single_group`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.errors import ConfigError
from pipeline.graph import GraphSpec


@dataclass
class GroupPlan:
    """One group's share of a graph (one actor on the Ray runners).

    Attributes:
        name: the group's name (its nodes joined by ``+``).
        nodes: node names in topological order.
        upstream: groups that feed this one over forward (non-feedback) edges; the group ends only
            after each of them has ended.
        feedback_from: groups that feed this one over feedback edges (a closed loop); the group
            ends only once the loop is quiet (no packet in flight anywhere).
        downstream: groups this one sends packets to (feedback edges included).
        clock_to: downstream groups that need this group's graph clock even when no packet goes
            to them (they, or a group after them, tick).
        resources: summed Ray resources of the nodes.
    """

    name: str
    nodes: list[str]
    upstream: set[str] = field(default_factory=set)
    feedback_from: set[str] = field(default_factory=set)
    downstream: set[str] = field(default_factory=set)
    clock_to: set[str] = field(default_factory=set)
    resources: dict[str, float] = field(default_factory=dict)


def plan_groups(spec: GraphSpec) -> tuple[list[GroupPlan], dict[str, str]]:
    """Groups (fused ones from ``runtime.fuse``, every other node alone) and node -> group name.

    Groups come in topological order of their first node. Refuses fuse groups that would make
    two actors wait on each other (a cycle between groups over forward edges).
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
    _link(spec, plans, group_of)
    _refuse_group_cycles(spec, plans)
    _clock_targets(spec, plans, group_of)
    return plans, group_of


def single_group(spec: GraphSpec) -> tuple[GroupPlan, dict[str, str]]:
    """The whole graph as one group (the ``local`` runner)."""
    plan = GroupPlan("graph", spec.order())
    return plan, {n: plan.name for n in plan.nodes}


def _link(spec: GraphSpec, plans: list[GroupPlan], group_of: dict[str, str]) -> None:
    by_name = {p.name: p for p in plans}
    for e in spec.edges:
        src, dst = group_of[e.src], group_of[e.dst]
        if src == dst:
            continue
        by_name[src].downstream.add(dst)
        if e.feedback:
            by_name[dst].feedback_from.add(src)
        else:
            by_name[dst].upstream.add(src)


def _clock_targets(spec: GraphSpec, plans: list[GroupPlan], group_of: dict[str, str]) -> None:
    """``clock_to``: downstream groups from which a ticking group can be reached."""
    ticking = {group_of[n] for n, layout in spec.layouts.items() if layout.tick_interval}
    by_name = {p.name: p for p in plans}
    needs: dict[str, bool] = {}

    def need(group: str, seen: frozenset = frozenset()) -> bool:
        if group in needs:
            return needs[group]
        result = group in ticking or any(need(d, seen | {group}) for d in by_name[group].downstream
                                         if d not in seen and d != group)
        needs[group] = result
        return result

    for p in plans:
        p.clock_to = {d for d in p.downstream if need(d)}


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
