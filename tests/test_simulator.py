"""The 2-D robot simulator: LiDAR geometry against analytic cases, collisions, determinism."""
from __future__ import annotations

import numpy as np
import pytest

from nodes.control.simulator import BEAM_ANGLES, RobotEnv, World, WorldSpec, cast_rays, make_world


def _world(circles=(), segments=()):
    return World(np.array(circles, float).reshape(-1, 3), np.array(segments, float).reshape(-1, 4), np.zeros(3), 10, 10)


def test_lidar_geometry_matches_analytic_ranges():
    # robot at (1, 2) heading +90 deg; a circle of radius 0.5 centred 3 m ahead; a wall x = -1
    w = _world(circles=[[1.0, 5.0, 0.5]], segments=[[-1.0, -10.0, -1.0, 10.0]])
    r = cast_rays(np.array([1.0, 2.0]), np.pi / 2, w, 7.7)
    assert r.shape == (541,)
    assert r[270] == pytest.approx(2.5, abs=1e-9)  # front beam hits the circle's near side
    # a beam at angle a off the centre line hits the circle at d cos a - sqrt(R^2 - d^2 sin^2 a)
    a = BEAM_ANGLES[280]
    assert r[280] == pytest.approx(3 * np.cos(a) - np.sqrt(0.25 - 9 * np.sin(a) ** 2), abs=1e-9)
    # beam 540 points 135 deg left of north = towards (-x, -y): the wall x = -1 is 2 m away in x
    assert r[540] == pytest.approx(2.0 / np.cos(np.deg2rad(45)), abs=1e-9)
    # beam 0 (right-back) sees nothing within range
    assert r[0] == 7.7
    # the circle spans +-asin(0.5/3) around the front
    half = np.rad2deg(np.arcsin(0.5 / 3))
    hits = 200 + np.flatnonzero(r[200:341] < 3.0)  # the front sector (the wall is 2.8 m away at beam 540)
    assert abs(np.rad2deg(BEAM_ANGLES[hits.min()]) + half) <= 0.5 and abs(np.rad2deg(BEAM_ANGLES[hits.max()]) - half) <= 0.5


def test_collision_is_detected_counted_once_and_refused():
    spec = WorldSpec(circles_per_m2=0, boxes_per_m2=0, circles=[[5.0, 3.0, 0.3]], start=[5.0, 1.0, np.pi / 2], episode_s=8)
    env = RobotEnv(spec)
    env.reset(0)
    # drive straight at the post: 2 m - 0.3 - 0.2 = 1.5 m of free travel at 0.4 m/s = 3.75 s
    for _ in range(120):
        env.step(0.0)
    s = env.summary()
    assert s["collisions"] == 1 and s["blocked_steps"] > 40
    assert s["min_clearance_m"] >= 0 and s["min_clearance_m"] < 0.02
    assert s["path_m"] == pytest.approx(1.5, abs=0.021)  # never inside the post
    assert env.pose[1] < 3.0 - 0.5 + 1e-9
    assert env.done is False
    for _ in range(30):  # turn away (about 130 deg) and drive off: the contact was one event
        env.step(1.0)
    for _ in range(10):
        env.step(0.0)
    assert env.summary()["collisions"] == 1
    assert env.clearance() > 0.2
    assert env.done


def test_same_seed_same_world_and_episode_time(tmp_path):
    spec = WorldSpec()
    a, b = make_world(spec, 3), make_world(spec, 3)
    np.testing.assert_array_equal(a.circles, b.circles)
    np.testing.assert_array_equal(a.segments, b.segments)
    assert not np.array_equal(make_world(spec, 4).circles, a.circles)
    env = RobotEnv(spec)
    obs = env.reset(3)
    assert obs.scan.shape == (541,) and obs.scan.dtype == np.float32 and obs.state.shape == (2,)
    assert env.clearance() > spec.start_clearance_m - 1e-9  # the start is kept free
    n = 0
    while not env.done:
        obs = env.step(0.5)
        n += 1
    assert n == 1200 and env.summary()["duration_s"] == pytest.approx(60.0)
    assert obs.scan.min() > 0 and obs.scan.max() <= spec.max_range_m
    png = env.plot(tmp_path / "w.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_world_file_errors(tmp_path):
    from pipeline.errors import UserError

    bad = tmp_path / "w.yaml"
    bad.write_text("name: x\ncircles_per_m3: 0.1\n")
    with pytest.raises(UserError, match="unknown world key"):
        WorldSpec.from_file(bad)
    with pytest.raises(UserError, match="world file not found"):
        WorldSpec.from_file(tmp_path / "none.yaml")
    assert WorldSpec.from_file("configs/worlds/default.yaml").circles_per_m2 > 0


def test_dagger_episode_is_driven_by_the_learner_and_labelled_by_the_expert():
    from nodes.control.expert import ArcPlanner, learner_episode

    spec = WorldSpec(episode_s=4.0)
    env = RobotEnv(spec)
    # a "learner" that always steers hard left; the expert never takes over (expert_share 0)
    trace = learner_episode(env, 3, lambda scan, state: 1.0, np.random.default_rng(0), expert_share=0.0)
    assert trace.scans.shape == (env.n_steps, 541) and trace.steering.shape == (env.n_steps,)
    # the labels are what the expert would have commanded in each visited state, not the learner's +1
    replay = RobotEnv(spec)
    replay.reset(3)
    expert = ArcPlanner.for_env(replay)
    labels = []
    for _ in range(env.n_steps):
        labels.append(expert(replay))
        replay.step(1.0)
    np.testing.assert_allclose(trace.steering, np.array(labels, dtype=np.float32))
    assert not np.all(trace.steering == 1.0)
