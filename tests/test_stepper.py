"""The one runner core without Ray: several stepper groups wired in one process behave as the
local runner (same SHA-256 of every captured stream), whatever order the groups step in, through
restarts from checkpoints; node errors are one line naming the node."""
from __future__ import annotations

import pytest

from pipeline.errors import ConfigError
from pipeline.graph import load_graph
from pipeline.runners.inprocess import run_inprocess
from pipeline.runners.local import run as run_local
from pipeline.runners.plan import plan_groups
from pipeline.runners.stepper import Batch, Stepper
from tests import runner_graphs as graphs


@pytest.fixture(scope="module")
def events(tmp_path_factory):
    return graphs.event_recording(tmp_path_factory.mktemp("ev") / "events.xdf")


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    return graphs.synth_recording(tmp_path_factory.mktemp("syn") / "syn.xdf")


def digests(summary: dict) -> dict:
    return {k: v for k, v in summary["reports"]["cap"].items()}


def local_and_groups(write_config, text: str, **kwargs) -> tuple[dict, dict]:
    path = write_config(text)
    return run_local(load_graph(path), progress=False), run_inprocess(load_graph(path), **kwargs)


@pytest.mark.parametrize("schedule,seed", [("rounds", 0), ("random", 1), ("random", 2)])
def test_ticking_binner_at_speed_max_matches_local(write_config, events, schedule, seed):
    local, groups = local_and_groups(write_config, graphs.ticking(events), schedule=schedule, seed=seed)
    ref = digests(local)
    assert ref["samples"] > 350  # 4 s of 10 ms bins, silent stretches included (closed by ticks)
    assert digests(groups) == ref
    assert groups["nodes"]["bin"]["counters"] == local["nodes"]["bin"]["counters"]
    assert local["nodes"]["bin"]["counters"]["late_events"] == 0


@pytest.mark.parametrize("schedule,seed", [("rounds", 0), ("random", 3)])
def test_node_fed_from_two_groups_matches_local(write_config, recording, schedule, seed):
    local, groups = local_and_groups(write_config, graphs.two_inputs(recording), schedule=schedule, seed=seed)
    assert digests(groups) == digests(local)
    assert local["reports"]["cap"]["a.samples"] == local["reports"]["cap"]["b.samples"] == 1500
    for name, node in local["nodes"].items():
        for key in ("packets_in", "samples_in", "packets_out", "samples_out", "gaps"):
            assert groups["nodes"][name][key] == node[key], (name, key)


@pytest.mark.parametrize("schedule,seed", [("rounds", 0), ("random", 4)])
def test_closed_loop_matches_local(write_config, tmp_path, schedule, seed):
    text = graphs.loop(tmp_path, episode_s=2.0)
    spec = load_graph(write_config(text))
    plans, _ = plan_groups(spec)
    assert {p.name: p.feedback_from for p in plans}["sim"] == {"controller"}
    local, groups = local_and_groups(write_config, text, schedule=schedule, seed=seed)
    ref = loop_digests(local)
    assert ref["cmd.samples"] == ref["scan.samples"] == 40  # 20 Hz for 2 s
    assert loop_digests(groups) == ref
    assert groups["reports"]["sim"] == local["reports"]["sim"]


def loop_digests(summary: dict) -> dict:
    """The simulator stamps scans on the wall clock from its start: compare the data only."""
    return {k: v for k, v in summary["reports"]["cap"].items() if "samples" in k or "data_sha256" in k}


@pytest.mark.parametrize("group,at", [("fa", 3), ("pick", 45), ("replay", 25), ("cap", 30)])
def test_restart_from_checkpoint_gives_identical_outputs(write_config, recording, group, at):
    local, groups = local_and_groups(write_config, graphs.two_inputs(recording), schedule="random", seed=7,
                                     checkpoint_every=10, restart_at={group: at})
    if group == "cap":  # the capture node keeps no state: its own restart loses what it held
        assert groups["restarts"] == {"cap": 1}
        return
    assert groups["restarts"] == {group: 1}
    assert digests(groups) == digests(local)
    assert groups["duplicates_dropped"] > 0 or at < 10  # re-sent packets it had seen are dropped


def test_restart_before_any_checkpoint_starts_the_group_over(write_config, recording):
    local, groups = local_and_groups(write_config, graphs.two_inputs(recording), schedule="rounds",
                                     checkpoint_every=0, restart_at={"pick": 30})
    assert digests(groups) == digests(local)
    assert groups["nodes"]["pick"]["gaps"] == 0


def test_duplicate_packets_are_dropped_and_counted(write_config, recording):
    spec = load_graph(write_config(graphs.two_inputs(recording)))
    plans, group_of = plan_groups(spec)
    fa = next(p for p in plans if p.name == "fa")
    from pipeline.runners.opening import open_in_process

    open_in_process(spec, spec.instances)
    st = Stepper(fa, {"fa": spec.instances["fa"]}, spec.routes(), spec.sinks(), group_of)
    import numpy as np

    from pipeline.packet import Packet

    pkt = Packet(np.ones((4, 2)), np.arange(4.0), 0.0, seq=0)
    out1 = st.step([Batch("pick", (1.0, True), [("fa", "in", pkt)])])
    out2 = st.step([Batch("pick", (1.0, True), [("fa", "in", pkt)])])
    assert len(out1) == 1 and out2 == [] and st.duplicates == 1


def test_open_and_constructor_errors_are_one_line_naming_the_node(write_config, recording):
    bad_open = graphs.two_inputs(recording).replace("channels: [0, 3]", "channels: [0, 30]")
    with pytest.raises(ConfigError) as err:
        run_inprocess(load_graph(write_config(bad_open)))
    text = str(err.value)
    assert "node 'pick'" in text and "\n" not in text and text.startswith(str(write_config(bad_open)))
    from pipeline.runners.opening import construct_node

    with pytest.raises(ConfigError) as err:
        construct_node("g.yaml", "fa", "bessel", {"order": "four"})
    assert str(err.value).startswith("g.yaml: node 'fa': ") and "\n" not in str(err.value)
