"""Placement by ``resources:`` on a real multi-node Ray cluster started on this machine.

Three Ray nodes (each its own ``ray start``): a head with 1 CPU, a "rig" node (``rig: 1``) and a
"GPU box" (``gpu_box: 1``). ``spikeloop run CONFIG --runner ray --address ADDR`` runs a graph whose
replay asks for ``rig`` and whose filter asks for ``gpu_box``; each actor's node (Ray's actor table:
the actor's pid and node id) must be the node carrying the resource, and the outputs must equal
the ``local`` runner's (SHA-256 in the capture node's report). A resource no node has, or two
resources no single node has together, is refused before any actor starts, in one line.
One cluster for the module (they are heavy on 2 cores).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.graph import load_graph
from pipeline.runners import get_runner
from tests import runner_graphs as graphs
from tests.multinode import REPO, MultiNodeCluster, where

pytestmark = pytest.mark.slow

GRAPH = """
name: placement
nodes:
  replay: {{kind: replay, params: {{path: {rec}, streams: [spikes, velocity], speed: max, chunk_s: 0.02}}, resources: {{{replay_res}}}}}
  pick:   {{kind: select_channels, params: {{channels: [0, 3]}}}}
  fa:     {{kind: bessel, params: {{order: 2, cutoff_hz: 20}}, resources: {{gpu_box: 1}}}}
  cap:    {{kind: capture, params: {{streams: [a, b]}}}}
edges:
  - replay.spikes -> pick -> fa -> cap.a
  - replay.velocity -> cap.b
runtime: {{checkpoint_s: 0}}
"""


@pytest.fixture(scope="module")
def cluster():
    c = MultiNodeCluster(head_cpus=1, workers=[{"num_cpus": 0, "resources": {"rig": 1}},
                                               {"num_cpus": 0, "resources": {"gpu_box": 1}}])
    try:
        yield c
    finally:
        c.stop()


def _run(cluster: MultiNodeCluster, config: Path, *extra: str, timeout: float = 120.0) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline", "run", str(config), "--runner", "ray",
                           "--address", cluster.address, "--no-progress", "--log-level", "WARNING", *extra],
                          cwd=REPO, env=cluster.env, capture_output=True, text=True, timeout=timeout)


def test_actors_land_on_the_nodes_with_their_resources_and_outputs_equal_local(cluster, tmp_path):
    rec = graphs.synth_recording(tmp_path / "rec.xdf", seconds=4.0)
    config = tmp_path / "placement.yaml"
    config.write_text(GRAPH.format(rec=rec, replay_res="rig: 1"))
    local = get_runner("local")(load_graph(config), progress=False)

    out = tmp_path / "summary.json"
    done = _run(cluster, config, "--json", str(out))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    summary = json.loads(out.read_text())
    assert summary["reports"]["cap"] == local["reports"]["cap"]  # SHA-256 of data and timestamps, per port
    assert local["reports"]["cap"]["a.samples"] > 0 and local["reports"]["cap"]["b.samples"] > 0

    found = where(cluster.address, cluster.env)
    node_with = {key: [n["id"] for n in found["nodes"] if n["alive"] and n["resources"].get(key)]
                 for key in ("rig", "gpu_box")}
    assert len(node_with["rig"]) == 1 and len(node_with["gpu_box"]) == 1 and node_with["rig"] != node_with["gpu_box"]
    by_pid = {a["pid"]: a for a in found["actors"] if "GroupActor" in a["cls"]}
    groups = summary["groups"]
    assert set(groups) == {"replay", "pick", "fa", "cap"}
    assert {g["pid"] for g in groups.values()} <= set(by_pid), (groups, list(by_pid))
    assert by_pid[groups["replay"]["pid"]]["node"] == node_with["rig"][0]
    assert by_pid[groups["fa"]["pid"]]["node"] == node_with["gpu_box"][0]
    # and the run's actors are gone once it ended (the driver kills them)
    assert all(by_pid[g["pid"]]["state"] == "DEAD" for g in groups.values())


def test_resources_no_node_has_are_refused_in_one_line(cluster, tmp_path):
    rec = graphs.synth_recording(tmp_path / "rec.xdf", seconds=1.0)
    nowhere = tmp_path / "nowhere.yaml"
    nowhere.write_text(GRAPH.format(rec=rec, replay_res="lab_robot: 1"))
    done = _run(cluster, nowhere, timeout=90.0)
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    lines = [x for x in done.stderr.splitlines() if "lab_robot" in x]
    assert len(lines) == 1 and "node 'replay'" in lines[0] and "lab_robot=1 but the Ray cluster has lab_robot=0" in lines[0]
    assert "Traceback" not in done.stderr

    apart = tmp_path / "apart.yaml"  # both exist, but on two different machines: Ray would wait forever
    apart.write_text(GRAPH.format(rec=rec, replay_res="rig: 1, gpu_box: 1").replace(", resources: {gpu_box: 1}", ""))
    done = _run(cluster, apart, timeout=90.0)
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    lines = [x for x in done.stderr.splitlines() if "no node of the Ray cluster has all of it" in x]
    assert len(lines) == 1 and "asks for gpu_box=1, rig=1 on one machine" in lines[0] and "node 'replay'" in lines[0], done.stderr
