"""The per-machine placement check (no Ray): its input is ``ray.nodes()``'s shape, as plain data."""
from __future__ import annotations

import pytest

from pipeline.cluster.placement import check_placement
from pipeline.errors import ConfigError
from pipeline.runners.plan import GroupPlan


class _Spec:
    file = "graph.yaml"


NODES = [
    {"NodeID": "a1b2c3d4e5", "Alive": True, "NodeManagerAddress": "127.0.0.1",
     "Resources": {"CPU": 1.0, "memory": 1e9, "object_store_memory": 8e7, "node:127.0.0.1": 1.0}},
    {"NodeID": "f1f2f3f4f5", "Alive": True, "NodeManagerAddress": "127.0.0.1", "Resources": {"rig": 1.0, "CPU": 2.0}},
    {"NodeID": "9988776655", "Alive": True, "NodeManagerAddress": "127.0.0.1", "Resources": {"gpu_box": 1.0}},
    {"NodeID": "deaddeadde", "Alive": False, "NodeManagerAddress": "127.0.0.1", "Resources": {"rig": 1.0, "gpu_box": 1.0}},
]


def test_groups_that_fit_pass():
    check_placement(_Spec, [GroupPlan("a", ["a"], resources={"rig": 0.5, "CPU": 2}),
                            GroupPlan("b", ["b"], resources={"rig": 0.5}),
                            GroupPlan("c", ["c"], resources={"gpu_box": 1}), GroupPlan("d", ["d"])], NODES)


def test_resources_on_two_machines_for_one_group_are_refused_naming_the_machines():
    with pytest.raises(ConfigError) as err:  # the dead node had both: it does not count
        check_placement(_Spec, [GroupPlan("replay", ["replay"], resources={"rig": 1, "gpu_box": 1})], NODES)
    msg = str(err.value)
    assert msg.startswith("graph.yaml: node 'replay': key 'resources': node replay asks for gpu_box=1, rig=1 on one machine")
    assert "node a1b2c3d4 (127.0.0.1): CPU=1; node f1f2f3f4 (127.0.0.1): CPU=2, rig=1; node 99887766 (127.0.0.1): gpu_box=1)" in msg
    assert "\n" not in msg


def test_a_custom_resource_over_asked_in_total_is_refused():
    plans = [GroupPlan("a", ["a"], resources={"rig": 1}), GroupPlan("b+c", ["b", "c"], resources={"rig": 1})]
    with pytest.raises(ConfigError, match=r"nodes a, b, c together ask for rig=2 but the Ray cluster has rig=1: the "
                                          r"actors would wait for each other forever \(give each a share, e.g. rig: 0.5\)"):
        check_placement(_Spec, plans, NODES)


def test_cpu_beyond_any_single_machine_is_refused():
    with pytest.raises(ConfigError, match="node big asks for CPU=3 on one machine"):
        check_placement(_Spec, [GroupPlan("big", ["big"], resources={"CPU": 3})], NODES)
