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
    assert obs.scan.min() >= 0 and obs.scan.max() <= spec.max_range_m
    assert env.summary()["cells_visited"] >= 2
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


FAMILIES = ("default", "dense", "corridor", "rooms")


@pytest.mark.parametrize("family", FAMILIES)
def test_every_start_is_clear_of_every_wall(family):
    from nodes.control.simulator import point_clearance

    spec = WorldSpec.from_file(f"configs/worlds/{family}.yaml")
    for seed in range(1_000_000, 1_000_060):
        w = make_world(spec, seed)
        # the start keeps start_clearance_m from every obstacle, the family's walls included
        clear = point_clearance(w.start[None, :2], w.circles, w.segments)[0] - spec.robot_radius_m
        assert clear >= spec.start_clearance_m - 1e-9, (family, seed, clear)
    if family == "corridor":  # the corridor block and room walls are really there
        assert len(w.segments) == 8
    if family == "rooms":
        assert len(w.segments) >= 4 + 8


def test_a_fixed_start_inside_a_wall_is_refused():
    from pipeline.errors import UserError

    spec = WorldSpec(segments=[[2.0, 0.0, 2.0, 10.0]], start=[2.05, 5.0, 0.0])
    with pytest.raises(UserError, match="inside an obstacle"):
        make_world(spec, 0)


def test_sensor_noise_and_zero_returns_at_the_measured_rate():
    from nodes.control.dataset import ZERO_RETURN_RATE

    spec = WorldSpec(episode_s=10.0)
    env = RobotEnv(spec)
    zeros, n, dev = 0, 0, []
    obs = env.reset(5)
    while not env.done:
        clean = cast_rays(env.pose[:2], env.pose[2], env.world, spec.max_range_m)
        zeros += int((obs.scan == 0).sum())
        n += obs.scan.size
        ok = (obs.scan > 0) & (clean < spec.max_range_m - 0.1)
        dev.append(obs.scan[ok] - clean[ok])
        obs = env.step(0.3)
    rate = zeros / n  # 200 scans x 541 beams: binomial sd about 0.0003
    assert rate == pytest.approx(ZERO_RETURN_RATE, abs=0.0015)
    assert np.std(np.concatenate(dev)) == pytest.approx(spec.range_noise_m, rel=0.1)
    # the same seed gives the same noisy scans; the ideal sensor has none
    a = RobotEnv(spec).reset(5).scan
    np.testing.assert_array_equal(a, RobotEnv(spec).reset(5).scan)
    ideal = RobotEnv(WorldSpec(episode_s=10.0, range_noise_m=0.0, dropout_rate=0.0))
    o = ideal.reset(5)
    np.testing.assert_allclose(o.scan, cast_rays(ideal.pose[:2], ideal.pose[2], ideal.world, 7.7), atol=1e-6)


def test_progress_counts_cells_not_just_path():
    spec = WorldSpec(circles_per_m2=0, boxes_per_m2=0, start=[5.0, 5.0, 0.0], episode_s=10.0)
    env = RobotEnv(spec)
    env.reset(0)
    while not env.done:
        env.step(1.0)  # circling on the spot: radius 0.27 m
    circling = env.summary()
    env.reset(0)
    while not env.done:
        env.step(0.0)  # straight: 4 m
    straight = env.summary()
    assert circling["path_m"] == pytest.approx(straight["path_m"], rel=1e-3)  # chords of the arc
    assert circling["cells_visited"] <= 4 and straight["cells_visited"] >= 8


def test_gymnasium_style_env():
    from nodes.control.simulator import LidarNavEnv

    env = LidarNavEnv("configs/worlds/default.yaml")
    obs, info = env.reset(seed=1_000_000)
    assert obs.shape == (543,) and obs.dtype == np.float32 and info["steps"] == 0
    total, steps = 0.0, 0
    terminated = truncated = False
    while not (terminated or truncated):
        obs, reward, terminated, truncated, info = env.step(np.array([0.0]))
        total += reward
        steps += 1
    if terminated:  # driving straight ahead in a cluttered world: a collision ends the episode
        assert info["collisions"] == 1
    else:
        assert steps == 1200
    assert total == pytest.approx(info["path_m"] + info["cells_visited"] - 1 - 10 * info["collisions"], abs=1e-9)
    o2, _ = env.reset(seed=1_000_000)
    np.testing.assert_array_equal(o2, env.reset(seed=1_000_000)[0])
