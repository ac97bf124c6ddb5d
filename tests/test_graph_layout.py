"""Nodes are constructed only where they run: loading a graph constructs none.

The loader wires edges from each kind's :meth:`~pipeline.node.Node.layout` (ports and tick
interval from the type-checked params). These tests check that a layout equals what the
constructed node has, for every node of every shipped config and for the kinds whose ports
depend on their params; that ``load_graph`` constructs nothing; and that a ``ray`` run constructs
no node in the driver (only inside the actors).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from pipeline import graph as graph_module
from pipeline.errors import ConfigError
from pipeline.graph import load_graph
from pipeline.runners import opening
from tests.conftest import REPO

CONFIGS = sorted((REPO / "configs").glob("*.yaml"))


def _layout_of(node) -> tuple:
    return (tuple(node.inputs), tuple(node.outputs), tuple(node.feedback_inputs), node.tick_interval)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_layout_equals_the_constructed_node_for_every_shipped_config(config: Path, monkeypatch):
    monkeypatch.chdir(REPO)
    spec = load_graph(config)
    assert spec._instances is None, "load_graph constructed nodes"
    for name, node in spec.instances.items():
        layout = spec.layouts[name]
        assert (layout.inputs, layout.outputs, layout.feedback_inputs, layout.tick_interval) == _layout_of(node), name


PARAM_PORTS = """
name: ports
nodes:
  replay: {kind: replay, params: {path: recordings/reaching_sample.xdfz, streams: [velocity, spikes], speed: max}}
  events: {kind: replay, params: {path: recordings/reaching_sample.xdfz, neural: spikes, streams: [spikes]}}
  binner: {kind: event_binner, params: {channels: 4, bin_s: 0.01}}
  binner2: {kind: event_binner, params: {channels: 4, tick_s: 0.003}}
  cap: {kind: capture, params: {streams: [a, b, c]}}
  cap2: {kind: capture}
edges:
  - replay.spikes -> cap.a
  - replay.velocity -> cap.b
  - events.spikes -> cap.c
  - binner -> cap2
"""


def test_param_dependent_ports_and_ticks_match_the_constructed_nodes(write_config, monkeypatch):
    monkeypatch.chdir(REPO)
    spec = load_graph(write_config(PARAM_PORTS))
    assert spec.layouts["replay"].outputs == ("velocity", "spikes")
    assert spec.layouts["cap"].inputs == ("a", "b", "c") and spec.layouts["cap2"].inputs == ("in",)
    assert spec.layouts["binner"].tick_interval == pytest.approx(0.0025)
    assert spec.layouts["binner2"].tick_interval == pytest.approx(0.003)
    for name, node in spec.instances.items():
        layout = spec.layouts[name]
        assert (layout.inputs, layout.outputs, layout.feedback_inputs, layout.tick_interval) == _layout_of(node), name


def test_load_graph_constructs_no_node_and_still_names_a_bad_port(write_config, monkeypatch):
    monkeypatch.chdir(REPO)
    built: list[str] = []
    real = graph_module._construct
    monkeypatch.setattr(graph_module, "_construct", lambda file, spec: built.append(spec.name) or real(file, spec))
    spec = load_graph(write_config(PARAM_PORTS))
    assert built == []
    assert set(spec.instances) == set(spec.nodes) and sorted(built) == sorted(spec.nodes)  # on first use only
    bad = PARAM_PORTS.replace("replay.velocity -> cap.b", "replay.velocty -> cap.b")
    with pytest.raises(ConfigError, match=r"node 'replay'.*no output port 'velocty' \(did you mean 'velocity'\?\)"):
        load_graph(write_config(bad))
    missing = PARAM_PORTS.replace("streams: [velocity, spikes]", "streams: [velocity, spokes]")
    with pytest.raises(ConfigError, match=r"node 'replay'.*no stream 'spokes'"):
        load_graph(write_config(missing))


def test_a_ray_run_constructs_no_node_in_the_driver(ray_local, write_config, monkeypatch):
    from pipeline.runners import ray_runner

    built: list[str] = []
    real_graph, real_opening = graph_module._construct, opening.construct_node
    monkeypatch.setattr(graph_module, "_construct", lambda file, spec: built.append(spec.name) or real_graph(file, spec))
    monkeypatch.setattr(opening, "construct_node", lambda *a: built.append(a[1]) or real_opening(*a))
    monkeypatch.setattr(ray_runner, "construct_node", lambda *a: built.append(a[1]) or real_opening(*a))
    path = write_config("""
name: chain
nodes:
  gen: {kind: signal_generator, params: {channels: 3, rate_hz: 250, duration_s: 1, chunk: 5, seed: 3}}
  smooth: {kind: bessel, params: {order: 2, cutoff_hz: 10}}
  cap: {kind: capture}
edges:
  - gen -> smooth -> cap
runtime: {fuse: [[smooth, cap]], checkpoint_s: 0}
""")
    summary = ray_runner.run(load_graph(path), progress=False)
    assert summary["stopped_by"] == "end of data"
    assert summary["nodes"]["cap"]["samples_in"] == 250
    assert built == [], f"the driver constructed {built}"


