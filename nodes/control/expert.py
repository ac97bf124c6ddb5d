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

from typing import Callable

import numpy as np

from nodes.control.dataset import SEQ_LEN, SEQ_STRIDE, Sequences, Trace, cut_sequences
from nodes.control.planners import ArcPlanner
from nodes.control.simulator import Observation, RobotEnv, WorldSpec


Command = Callable[[float, Observation, int], float]
"""``command(u_expert, observation, step) -> steering`` the robot executes (the label stays ``u_expert``)."""


def labelled_episode(env: RobotEnv, seed: int, command: Command) -> Trace:
    """One episode in ``env``'s world ``seed``: at every step the expert's command is the label and
    ``command(...)`` (clipped to [-1, 1]) is what the robot executes; returned as a trace."""
    expert = ArcPlanner.for_env(env)
    obs = env.reset(seed)
    scans, states, labels = [], [], []
    while not env.done:
        u = expert(env)
        scans.append(obs.scan)
        states.append(obs.state)
        labels.append(u)
        obs = env.step(float(np.clip(command(u, obs, env.t), -1, 1)))
    return Trace(seed, np.array(scans, dtype=np.float32), np.array(states, dtype=np.float32),
                 np.array(labels, dtype=np.float32), env.spec.name)  # type: ignore[arg-type]


def expert_episode(env: RobotEnv, seed: int, rng: np.random.Generator) -> Trace:
    """Run one noisy expert episode in ``env``'s world ``seed``; return it as a trace."""
    seg = int(2.0 * env.spec.rate_hz)
    noise = {"now": 0.0, "target": 0.0}

    def noisy(u: float, obs: Observation, t: int) -> float:
        if t % seg == 0:
            noisy_segment = rng.random() < 0.4
            noise["target"] = rng.normal(0, 0.35) if noisy_segment else 0.0
        noise["now"] = 0.8 * noise["now"] + 0.2 * noise["target"]
        return u + noise["now"]

    return labelled_episode(env, seed, noisy)


def learner_episode(env: RobotEnv, seed: int, step, rng: np.random.Generator, expert_share: float = 0.25,
                    rescue: bool = True) -> Trace:
    """One episode in world ``seed`` driven by ``step(scan (541,), state (2,)) -> steering``,
    labelled by the expert; the expert drives instead on a random ``expert_share`` of the 2-second
    segments (so episodes do not all end in the learner's first bad habit).

    ``rescue``: when the learner runs into an obstacle, the expert takes over until the end of the
    next 2-second segment (the learner's own step still runs, so its recurrent state stays its
    own). Without it a learner pinned against a wall fills the rest of the episode with near-
    identical pinned states; with it the episode goes on to new approach states, the ones that
    decide whether a collision happens."""
    seg = int(2.0 * env.spec.rate_hz)
    expert_drives = [False]
    rescue_until = [-1]
    seen = [0]

    def learner_or_expert(u: float, obs: Observation, t: int) -> float:
        u_learner = float(step(obs.scan, obs.state))
        if rescue and env.collisions > seen[0]:
            seen[0] = env.collisions
            rescue_until[0] = (t // seg + 2) * seg
        if t % seg == 0:
            expert_drives[0] = rng.random() < expert_share
        return u if (expert_drives[0] or t < rescue_until[0]) else u_learner

    return labelled_episode(env, seed, learner_or_expert)


def _sequences(run_episode: Callable[[RobotEnv, int], Trace], episodes: int, seed: int, spec: WorldSpec | None,
               progress: bool, mirror: bool, desc: str) -> Sequences:
    """``episodes`` episodes in worlds ``seed``, ``seed+1``, ... cut into 32-step sequences (with
    mirrored copies when ``mirror``: scan reversed, steering and state[1] negated)."""
    from tqdm import tqdm

    env = RobotEnv(spec or WorldSpec())
    traces = []
    for i in tqdm(range(episodes), desc=desc, disable=not progress, leave=False):
        t = run_episode(env, seed + i)
        traces.append(t)
        if mirror:
            traces.append(t.mirrored(state_signs=(1.0, -1.0)))  # sim state = (speed, -turn rate)
    return cut_sequences(traces, SEQ_LEN, SEQ_STRIDE)


def expert_sequences(episodes: int, seed: int = 1000, spec: WorldSpec | None = None,
                     progress: bool = False, mirror: bool = True) -> Sequences:
    """``episodes`` noisy expert episodes in worlds ``seed``, ``seed+1``, ... as 32-step sequences."""
    rng = np.random.default_rng(seed)
    return _sequences(lambda env, world: expert_episode(env, world, rng), episodes, seed, spec, progress, mirror,
                      "expert episodes")


def dagger_sequences(model: str, episodes: int, seed: int = 2000, spec: WorldSpec | None = None,
                     progress: bool = False, mirror: bool = True) -> Sequences:
    """``episodes`` episodes driven by the controller in ``model`` (float, or quantised if the file
    is), in worlds ``seed``, ``seed+1``, ..., labelled by the expert; as 32-step sequences."""
    from nodes.control.kernels import CrnnKernel, load_params

    params = load_params(model)
    kernel = CrnnKernel(params, 1, "quant" if params.levels else "float")
    rng = np.random.default_rng(seed)

    def run_episode(env: RobotEnv, world: int) -> Trace:
        kernel.reset()
        return learner_episode(env, world, lambda scan, state: kernel.step(scan[None], state[None])[0], rng)

    return _sequences(run_episode, episodes, seed, spec, progress, mirror, "DAgger episodes")
