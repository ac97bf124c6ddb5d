"""The ``ray`` and ``ray-compiled`` runners on a real local Ray (started once, on loopback)."""
from __future__ import annotations

import time
import uuid

import numpy as np
import pylsl
import pytest

from pipeline.errors import ConfigError
from pipeline.graph import load_graph
from pipeline.lsl import to_lsl_info
from pipeline.packet import StreamInfo
from pipeline.runners import get_runner
from pipeline.runners.ray_runner import actor_options, check_resources, ensure_ray, plan_groups

CHAIN = """
name: chain
nodes:
  gen: {kind: signal_generator, params: {channels: 3, rate_hz: 250, duration_s: 1, chunk: 5, seed: 3}}
  pick: {kind: select_channels, params: {channels: [0, 2]}, resources: {CPU: 0.5}}
  smooth: {kind: bessel, params: {order: 2, cutoff_hz: 10}, resources: {CPU: 0.25}}
  cap: {kind: capture}
edges:
  - gen -> pick -> smooth -> cap
runtime:
  fuse: [[pick, smooth]]
"""



def test_local_ray_listens_on_loopback_only(ray_local):
    nodes = [n for n in ray_local.nodes() if n["Alive"]]
    assert nodes and all(n["NodeManagerAddress"] == "127.0.0.1" for n in nodes), nodes
    gcs_host = ray_local.get_runtime_context().gcs_address.rsplit(":", 1)[0]
    assert gcs_host == "127.0.0.1"


def test_plan_groups_fuses_and_sums_resources(write_config):
    spec = load_graph(write_config(CHAIN))
    plans, group_of = plan_groups(spec)
    assert [p.nodes for p in plans] == [["gen"], ["pick", "smooth"], ["cap"]]
    assert group_of["smooth"] == "pick+smooth"
    fused = plans[1]
    assert fused.resources == {"CPU": 0.75}
    assert fused.upstream == {"gen"} and fused.downstream == {"cap"}
    assert actor_options({"CPU": 0.75, "probe": 1}) == {"num_cpus": 0.75, "resources": {"probe": 1}}
    assert actor_options({}) == {"num_cpus": 0.0}


def test_resources_the_cluster_lacks_are_refused_up_front(write_config):
    spec = load_graph(write_config(CHAIN.replace("resources: {CPU: 0.25}", "resources: {CPU: 0.25, probe: 1}")))
    plans, _ = plan_groups(spec)
    with pytest.raises(ConfigError, match=r"node 'pick'.*ask for probe=1 but the Ray cluster has probe=0"):
        check_resources(spec, plans, {"CPU": 2.0, "memory": 1e9})
    check_resources(spec, plans, {"CPU": 2.0, "probe": 1.0})  # enough: no error


def test_fusing_around_a_node_is_refused(write_config):
    spec = load_graph(write_config(CHAIN.replace("fuse: [[pick, smooth]]", "fuse: [[gen, smooth]]")))
    with pytest.raises(ConfigError, match=r"runtime.fuse.*cycle between actors"):
        plan_groups(spec)


def test_runs_in_separate_actor_processes_with_local_counts(ray_local, write_config):
    runner = "ray"  # ray-compiled: see test_runners_equivalence.py
    spec = load_graph(write_config(CHAIN))
    summary = get_runner(runner)(spec, progress=False)
    assert summary["runner"] == runner and summary["stopped_by"] == "end of data"
    pids = {g: v["pid"] for g, v in summary["groups"].items()}
    assert set(pids) == {"gen", "pick+smooth", "cap"} and len(set(pids.values())) == 3
    nodes = summary["nodes"]
    assert list(nodes) == ["gen", "pick", "smooth", "cap"]  # config order, as the local runner
    assert nodes["gen"]["samples_out"] == 250 and nodes["cap"]["samples_in"] == 250
    assert all(n["gaps"] == 0 for n in nodes.values())
    assert summary["latency"]["count"] == 50
    assert summary["reports"]["cap"]["samples"] == 250


def test_open_errors_name_the_node_and_port(ray_local, write_config):
    bad = CHAIN.replace("pick: {kind: select_channels, params: {channels: [0, 2]}",
                        "pick: {kind: select_channels, params: {channels: [0, 7]}")
    spec = load_graph(write_config(bad))
    with pytest.raises(ConfigError) as err:
        get_runner("ray")(spec, progress=False)
    assert "node 'pick'" in str(err.value)


@pytest.mark.parametrize("runner", ["ray", "ray-compiled"])
def test_live_lsl_relay_fused_in_one_actor_keeps_timestamps(ray_local, write_config, runner):
    """LSL in -> Bessel -> LSL out in one actor; a client reads the output with the input's stamps."""
    tag = uuid.uuid4().hex[:8]
    src_name, out_name = f"relay_in_{tag}", f"relay_out_{tag}"
    info = StreamInfo(src_name, "Test", 4, 250.0, "float32", tuple("abcd"), ("uV",) * 4, f"sid-{tag}")
    outlet = pylsl.StreamOutlet(to_lsl_info(info))
    config = f"""
name: relay
nodes:
  inlet: {{kind: lsl_inlet, params: {{name: {src_name}, clock_sync: false, resolve_timeout_s: 5}}}}
  smooth: {{kind: bessel, params: {{order: 2, cutoff_hz: 20}}}}
  outlet: {{kind: lsl_outlet, params: {{name: {out_name}, type: Filtered}}}}
edges:
  - inlet -> smooth -> outlet
runtime:
  fuse: [[inlet, smooth, outlet]]
"""
    spec = load_graph(write_config(config))
    import threading

    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(get_runner(runner)(spec, progress=False, duration_s=3.0)))
    thread.start()
    found = pylsl.resolve_byprop("name", out_name, 1, 15.0)
    assert found, "the graph's outlet did not appear"
    client = pylsl.StreamInlet(found[0])
    client_info = client.info(5.0)
    assert client_info.get_channel_labels() == list("abcd") and client_info.get_channel_units() == ["uV"] * 4
    assert client_info.type() == "Filtered"
    client.open_stream(5.0)
    assert outlet.wait_for_consumers(20.0), "the graph's inlet did not connect"
    time.sleep(0.2)
    t0 = pylsl.local_clock()
    stamps = t0 + np.arange(100) / 250.0
    for k in range(0, 100, 10):
        outlet.push_chunk(np.ones((10, 4), dtype=np.float32), stamps[k:k + 10].tolist())
    got: list[float] = []
    deadline = time.monotonic() + 5.0
    while len(got) < 100 and time.monotonic() < deadline:
        _, ts = client.pull_chunk(timeout=0.1, max_samples=256)
        got.extend(ts)
    thread.join(20.0)
    assert not thread.is_alive()
    np.testing.assert_array_equal(np.array(got), stamps)  # output carries the input's timestamps
    summary = result
    assert summary["stopped_by"] == "duration 3 s"
    assert summary["nodes"]["outlet"]["samples_in"] == 100
    assert len(summary["groups"]) == 1
    assert summary["nodes"]["inlet"]["counters"]["lost_samples_est"] == 0
    if runner == "ray-compiled":  # one group: it steps on within a round, not one round trip per step
        assert 3 <= summary["rounds"] <= 25, summary["rounds"]  # 3 s / 0.2 s + the last; one per step: hundreds


@pytest.mark.parametrize("runner", ["local", "ray"])
def test_event_bins_close_on_time_across_actors_without_events(ray_local, write_config, runner):
    """LSL spike events -> event_binner (its own actor on ray) -> capture: frames keep coming in silence."""
    tag = uuid.uuid4().hex[:8]
    name = f"events_{tag}"
    info = StreamInfo(name, "SpikeEvents", 2, 0.0, "int32", ("channel", "unit"), ("index", "index"), f"sid-{tag}")
    outlet = pylsl.StreamOutlet(to_lsl_info(info))
    config = f"""
name: binning
nodes:
  inlet: {{kind: lsl_inlet, params: {{name: {name}, clock_sync: false}}}}
  bin:   {{kind: event_binner, params: {{bin_s: 0.01, channels: 4, lateness_s: 0.5}}}}
  cap:   {{kind: capture}}
edges:
  - inlet -> bin -> cap
"""
    spec = load_graph(write_config(config))
    import threading

    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(get_runner(runner)(spec, progress=False, duration_s=3.0)))
    thread.start()
    assert outlet.wait_for_consumers(20.0), "the graph's inlet did not connect"
    time.sleep(0.2)
    t0 = pylsl.local_clock()
    events = np.array([[0, 0], [3, 1], [3, 0], [1, 0]], dtype=np.int32)
    outlet.push_chunk(events, [t0, t0 + 0.001, t0 + 0.002, t0 + 0.0125])
    thread.join(30.0)
    assert not thread.is_alive()
    nodes = result["nodes"]
    assert nodes["inlet"]["samples_out"] == 4
    frames = nodes["cap"]["samples_in"]
    # every bin from the first tick to the end closed, events or not: about 100 per second (the
    # 0.5 s lateness keeps a slow hop between actors on a busy machine from making events late)
    assert frames >= 50, frames
    counters = nodes["bin"]["counters"]
    assert counters["late_events"] + counters["out_of_range"] == 0
    assert result["reports"]["cap"]["samples"] == frames
    if runner == "local":  # the frames themselves are in this process: every event counted once
        data, stamps = spec.instances["cap"].arrays()
        np.testing.assert_array_equal(data.sum(axis=0), [1, 1, 0, 2])
        np.testing.assert_allclose(np.diff(stamps), 0.01, atol=1e-9)  # fixed rate, no bin skipped


LIVE = """
name: live
nodes:
  inlet:  {kind: lsl_inlet, params: {name: spikes}}
  smooth: {kind: bessel}
  outlet: {kind: lsl_outlet, params: {name: out}}
edges:
  - inlet -> smooth -> outlet
runtime:
  fuse: [[inlet, smooth, outlet]]
"""


def test_unfused_live_source_is_warned_about(write_config):
    from pipeline.runners.ray_runner import unfused_live_warning

    fused = load_graph(write_config(LIVE))
    assert unfused_live_warning(fused, plan_groups(fused)[1]) is None
    split = load_graph(write_config(LIVE.replace("fuse: [[inlet, smooth, outlet]]", "fuse: [[smooth, outlet]]"), "split.yaml"))
    warning = unfused_live_warning(split, plan_groups(split)[1])
    assert warning is not None and "inlet" in warning and "runtime.fuse" in warning
