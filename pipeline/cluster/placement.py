"""Can a graph's actors be placed on this Ray cluster? Checked per node before any actor starts.

Ray places an actor only on one node that has every resource it asks for; an actor nothing can
take waits forever (Ray logs a warning, the run just hangs while it opens nodes). The totals
check of the ray runner (:func:`pipeline.runners.ray_runner.check_resources`) catches a resource
that exists nowhere; this module adds the two cases totals hide:

* a group (one actor: a node, or a fused group, whose ``resources`` are summed) that asks for
  resources no single node has together, e.g. ``{rig: 1, gpu_box: 1}`` on a cluster where the
  rig and the GPU box are two machines;
* groups that together ask for more of a custom resource than the cluster has, e.g. two nodes
  each with ``{rig: 1}`` on a cluster with one ``rig``: the second would wait for the first to end.

Both are refused with one line that names the config file, the nodes and what each machine has.
The checks are necessary conditions, not a full packing: CPU, GPU and memory are not summed
(actors ask for no CPU unless told, and Ray queues CPU demands rather than deadlocking on them).
An autoscaling cluster that adds nodes on demand is not considered (nodes must be up).
"""
from __future__ import annotations

from typing import Any

from pipeline.errors import ConfigError

_RAY_NAMES = {"num_cpus": "CPU", "num_gpus": "GPU", "memory": "memory"}


def demand(resources: dict[str, float]) -> dict[str, float]:
    """A group's summed ``resources`` as Ray resource names (``CPU``, ``GPU``, ``memory``, custom)."""
    from pipeline.runners.ray_runner import actor_options

    opts = actor_options(resources)
    wanted = {_RAY_NAMES[k]: float(v) for k, v in opts.items() if k in _RAY_NAMES and v}
    wanted.update({k: float(v) for k, v in opts.get("resources", {}).items()})
    return wanted


def _shown(resources: dict[str, float]) -> str:
    keep = {k: v for k, v in resources.items()
            if not k.startswith(("node:", "accelerator_type")) and k not in ("memory", "object_store_memory")}
    return ", ".join(f"{k}={v:g}" for k, v in sorted(keep.items())) or "nothing"


def _who(nodes: list[str]) -> str:
    return f"node {nodes[0]} asks" if len(nodes) == 1 else f"nodes {', '.join(nodes)} (fused) ask"


def check_placement(spec: Any, plans: list, nodes: list[dict[str, Any]]) -> None:
    """Refuse groups no single alive node can host, or custom resources over-asked in total.

    Args:
        spec: the :class:`~pipeline.graph.GraphSpec` (for ``spec.file`` in messages).
        plans: the run's :class:`~pipeline.runners.plan.GroupPlan` list (``nodes``, ``resources``).
        nodes: ``ray.nodes()``: dicts with ``NodeID``, ``Alive``, ``Resources`` (and
            ``NodeManagerAddress``), one per machine of the cluster.

    Raises:
        ConfigError: one line naming the file, the first node of the group and ``resources``.
    """
    alive = [n for n in nodes if n.get("Alive", True)]
    machines = "; ".join(f"node {str(n.get('NodeID', '?'))[:8]} ({n.get('NodeManagerAddress', '?')}): "
                         f"{_shown(n.get('Resources', {}))}" for n in alive)
    totals: dict[str, float] = {}
    asked_by: dict[str, list[str]] = {}
    groups: dict[str, int] = {}
    for plan in plans:
        wanted = demand(plan.resources)
        if not wanted:
            continue
        fits = [n for n in alive if all(n.get("Resources", {}).get(k, 0.0) >= v for k, v in wanted.items())]
        if not fits:
            ask = ", ".join(f"{k}={v:g}" for k, v in sorted(wanted.items()))
            raise ConfigError(spec.file, f"{_who(plan.nodes)} for {ask} on one machine, but no "
                              f"node of the Ray cluster has all of it ({machines})",
                              node=plan.nodes[0], key="resources")
        for key, value in wanted.items():
            if key not in _RAY_NAMES.values():
                totals[key] = totals.get(key, 0.0) + value
                asked_by.setdefault(key, []).extend(plan.nodes)
                groups[key] = groups.get(key, 0) + 1
    for key, value in sorted(totals.items()):
        have = sum(n.get("Resources", {}).get(key, 0.0) for n in alive)
        if value > have + 1e-9:
            raise ConfigError(spec.file, f"nodes {', '.join(asked_by[key])} together ask for {key}={value:g} but "
                              f"the Ray cluster has {key}={have:g}: the actors would wait for each other forever "
                              f"(give each a share, e.g. {key}: {have / groups[key]:g})",
                              node=asked_by[key][0], key="resources")
