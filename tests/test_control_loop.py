"""Closed loop through the graph: simulator node <-> controller node with a feedback edge."""
from __future__ import annotations

import numpy as np
import pytest

from nodes.control.nodes import SCAN_CHANNELS, RobotSim
from nodes.control.planners import FollowTheGap
from nodes.control.simulator import RobotEnv, WorldSpec
from pipeline.graph import load_graph
from pipeline.node import StreamMismatch
from pipeline.packet import Packet, StreamInfo
from pipeline.runners.local import run
from tests.conftest import REPO

SHIPPED = REPO / "models" / "crnn_sim_q8.npz"

LOOP = """
name: loop
nodes:
  sim: {{kind: robot_sim, params: {{world: {world}, seed: 4, episode_s: 5, picture: {picture}}}}}
  ctl: {{kind: {kind}, params: {params}}}
edges:
  - sim.scan -> ctl
  - ctl ~> sim.command
"""


def test_sim_node_protocol_by_hand():
    sim = RobotSim(world=str(REPO / "configs/worlds/default.yaml"), seed=1, episode_s=0.2)
    outs = sim.open({})
    assert outs["scan"].channel_count == SCAN_CHANNELS == 543 and outs["scan"].nominal_rate == 20.0
    with pytest.raises(StreamMismatch, match="channel count"):
        sim.open_feedback("command", StreamInfo("x", "Control", 2, 20.0))
    first = sim.start()["scan"]  # the first observation comes from start()
    assert first.data.shape == (1, 543) and np.all(first.data[0, :541] >= 0) and np.mean(first.data[0, :541] > 0) > 0.9
    cmd = lambda u: Packet(np.array([[u]]), first.timestamps, first.t_enter)  # noqa: E731
    stamps = [first.timestamps[0]]
    for _ in range(3):  # one observation per command ...
        stamps.append(sim.process("command", cmd(0.2))["scan"].timestamps[0])
    np.testing.assert_allclose(np.diff(stamps), 0.05)
    assert sim.process("command", cmd(np.nan)) == {}  # ... until the episode (4 steps) ends: then nothing
    assert sim.process("command", cmd(0.0)) == {}
    c = sim.counters()
    assert c["commands"] == 4 and c["bad_commands"] == 1 and c["late_commands"] == 1
    assert sim.report()["episode_done"] is True and sim.report()["steps"] == 4


def test_graph_episode_equals_direct_episode(write_config, tmp_path):
    world = REPO / "configs/worlds/default.yaml"
    picture = tmp_path / "loop.png"
    spec = load_graph(write_config(LOOP.format(world=world, picture=picture, kind="gap_controller", params="{}")))
    summary = run(spec, progress=False)
    rep = summary["reports"]["sim"]
    assert rep["episode_done"] and rep["steps"] == 100
    assert summary["nodes"]["ctl"]["packets_in"] == 100 and summary["nodes"]["sim"]["packets_in"] == 100
    assert picture.read_bytes()[:4] == b"\x89PNG" and rep["picture"] == str(picture)
    # the same controller driving the environment directly: the identical trajectory
    env = RobotEnv(WorldSpec.from_file(world))
    env.spec.episode_s, env.n_steps = 5, 100
    obs, gap = env.reset(4), FollowTheGap()
    while not env.done:
        obs = env.step(gap(obs.scan, obs.state))
    np.testing.assert_allclose(spec.instances["sim"].env.trajectory, env.trajectory, atol=1e-12)
    assert rep["path_m"] == pytest.approx(env.summary()["path_m"], abs=1e-12)


@pytest.mark.skipif(not SHIPPED.is_file(), reason=f"shipped model {SHIPPED} not built yet")
def test_spiking_controller_closes_the_loop(write_config, tmp_path):
    world = REPO / "configs/worlds/default.yaml"
    params = "{model: " + str(SHIPPED) + ", timesteps: 12}"
    spec = load_graph(write_config(LOOP.format(world=world, picture=tmp_path / "p.png", kind="bif_controller", params=params)))
    summary = run(spec, progress=False)
    assert summary["reports"]["sim"]["steps"] == 100
    assert summary["reports"]["ctl"]["spikes_per_decision"] > 0
    assert summary["nodes"]["ctl"]["counters"] == {"decisions": 100, "bad_scans": 0}


DRIVER = REPO / "models" / "crnn_driver_q8.npz"


@pytest.mark.skipif(not DRIVER.is_file(), reason=f"shipped driving controller {DRIVER} not built yet")
def test_shipped_collision_sim_config_runs_the_driver_at_its_stored_T(tmp_path, monkeypatch):
    from nodes.control.kernels import load_params

    monkeypatch.chdir(REPO)
    picture = tmp_path / "sim.png"
    spec = load_graph(REPO / "configs/collision_sim.yaml", [f"sim.episode_s=2", f"sim.picture={picture}"])
    summary = run(spec, progress=False)
    assert summary["reports"]["sim"]["steps"] == 40
    assert summary["nodes"]["controller"]["counters"] == {"decisions": 40, "bad_scans": 0}
    T = load_params(str(DRIVER)).meta["timesteps"]
    assert summary["reports"]["controller"]["timesteps"] == T
    assert picture.read_bytes()[:4] == b"\x89PNG"
