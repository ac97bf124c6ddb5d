"""Simulator expert data: episodes driven by the arc planner, for fine-tuning the CRNN in the sim.

Two kinds of episode, both labelled with the expert's command at every step:

* :func:`expert_sequences` — the expert drives (with noise injected, below);
* :func:`dagger_sequences` — a trained controller drives (DAgger, Ross et al. 2011): the data then
  covers the states the controller's *own* mistakes lead to, which expert-driven data misses.

Noise injection (DART-style): the robot executes the expert's command plus noise (a slowly
varying N(0, 0.35) perturbation on 40 % of the episode's 2-second segments) so the data also shows
how to recover from the states a learned controller's mistakes lead to; the *label* is always the
expert's clean command. Episodes are cut into the same 32-step, 50 %-overlap sequences as the real
traces; the 2 state values are the simulator's (v, -omega/omega_max).
"""
from __future__ import annotations

import numpy as np

from nodes.control.dataset import SEQ_LEN, SEQ_STRIDE, Sequences, Trace, cut_sequences
from nodes.control.planners import ArcPlanner
from nodes.control.simulator import RobotEnv, WorldSpec


def expert_episode(env: RobotEnv, seed: int, rng: np.random.Generator) -> Trace:
    """Run one noisy expert episode in ``env``'s world ``seed``; return it as a trace."""
    expert = ArcPlanner.for_env(env)
    obs = env.reset(seed)
    scans, states, labels = [], [], []
    seg = int(2.0 * env.spec.rate_hz)
    noise = 0.0
    while not env.done:
        u = expert(env)
        scans.append(obs.scan)
        states.append(obs.state)
        labels.append(u)
        if env.t % seg == 0:
            noisy = rng.random() < 0.4
            target = rng.normal(0, 0.35) if noisy else 0.0
        noise = 0.8 * noise + 0.2 * target
        obs = env.step(float(np.clip(u + noise, -1, 1)))
    return Trace(seed, np.array(scans, dtype=np.float32), np.array(states, dtype=np.float32),
                 np.array(labels, dtype=np.float32), env.spec.name)  # type: ignore[arg-type]


def expert_sequences(episodes: int, seed: int = 1000, spec: WorldSpec | None = None,
                     progress: bool = False, mirror: bool = True) -> Sequences:
    """``episodes`` expert episodes in worlds ``seed``, ``seed+1``, ... as 32-step sequences
    (with mirrored copies when ``mirror``: scan reversed, steering and state[1] negated)."""
    from tqdm import tqdm

    env = RobotEnv(spec or WorldSpec())
    rng = np.random.default_rng(seed)
    traces = []
    for i in tqdm(range(episodes), desc="expert episodes", disable=not progress, leave=False):
        t = expert_episode(env, seed + i, rng)
        traces.append(t)
        if mirror:
            traces.append(t.mirrored())
    return cut_sequences(traces, SEQ_LEN, SEQ_STRIDE)


def learner_episode(env: RobotEnv, seed: int, step, rng: np.random.Generator, expert_share: float = 0.25) -> Trace:
    """One episode in world ``seed`` driven by ``step(scan (541,), state (2,)) -> steering``,
    labelled by the expert; the expert drives instead on a random ``expert_share`` of the 2-second
    segments (so episodes do not all end in the learner's first bad habit)."""
    expert = ArcPlanner.for_env(env)
    obs = env.reset(seed)
    scans, states, labels = [], [], []
    seg = int(2.0 * env.spec.rate_hz)
    expert_drives = False
    while not env.done:
        u_expert = expert(env)
        u_learner = float(step(obs.scan, obs.state))
        scans.append(obs.scan)
        states.append(obs.state)
        labels.append(u_expert)
        if env.t % seg == 0:
            expert_drives = rng.random() < expert_share
        obs = env.step(float(np.clip(u_expert if expert_drives else u_learner, -1, 1)))
    return Trace(seed, np.array(scans, dtype=np.float32), np.array(states, dtype=np.float32),
                 np.array(labels, dtype=np.float32), env.spec.name)  # type: ignore[arg-type]


def dagger_sequences(model: str, episodes: int, seed: int = 2000, spec: WorldSpec | None = None,
                     progress: bool = False, mirror: bool = True) -> Sequences:
    """``episodes`` episodes driven by the controller in ``model`` (float, or quantised if the file
    is), in worlds ``seed``, ``seed+1``, ..., labelled by the expert; as 32-step sequences."""
    from tqdm import tqdm

    from nodes.control.kernels import CrnnKernel, load_params

    params = load_params(model)
    kernel = CrnnKernel(params, 1, "quant" if params.levels else "float")
    env = RobotEnv(spec or WorldSpec())
    rng = np.random.default_rng(seed)
    traces = []
    for i in tqdm(range(episodes), desc="DAgger episodes", disable=not progress, leave=False):
        kernel.reset()
        t = learner_episode(env, seed + i, lambda scan, state: kernel.step(scan[None], state[None])[0], rng)
        traces.append(t)
        if mirror:
            traces.append(t.mirrored())
    return cut_sequences(traces, SEQ_LEN, SEQ_STRIDE)
