"""A simulated monkey reaching to random targets, with cosine-tuned Poisson units (seeded).

The task (random-target, like O'Doherty et al.'s self-paced reaching): a target appears somewhere
in a disc of ``workspace_mm`` radius, at least ``min_reach_mm`` from the hand; after a reaction
time the hand moves there along a slightly curved minimum-jerk path (bell-shaped speed profile),
ends a few millimetres off, and holds; then the next target appears. With the defaults, reaches
cover 40–190 mm in about 0.8–1.8 s at peak speeds of about 100–300 mm/s. A small smooth hand
jitter (≈ 0.5 mm) runs throughout.

Units (one multi-unit per channel) fire as inhomogeneous Poisson processes with log-linear
(exponential cosine) tuning to the hand velocity a little in the future (neurons lead movement by
``lag_s``, drawn per channel):

    rate_c(t) = b_c · exp(k_c · (d_c · v(t + lag_c)) / 100 + s_c · |v(t + lag_c)| / 100 + g(t) + e_c(t))

with ``v`` in mm/s, a baseline ``b_c`` (spikes/s, log-uniform in ``baseline_hz``), a preferred
direction ``d_c``, a depth ``k_c`` per 100 mm/s (0 for the ``untuned_fraction`` of channels), a
speed term ``s_c``, a slow gain ``g`` shared by all channels and a slow private fluctuation
``e_c`` (both Ornstein–Uhlenbeck-like, standard deviations ``shared_gain_sd`` / ``private_gain_sd``).
Counts are drawn per 4 ms bin. With the defaults a least-squares linear decoder on 96 channels
reaches R² ≈ 0.5–0.75, as on real recordings — not ≈ 1.

Everything is seeded: the kinematics, the tuning and the spikes use separate generators spawned
from ``seed``, and the session does not depend on how it is cut into blocks, so the live source
(:mod:`nodes.sources.synthetic`) and ``spikeloop synth`` produce the same samples.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.signal import butter, lfilter, lfilter_zi

from pipeline.packet import StreamInfo

GENERATOR = "spikeloop.synth/1"
"""Name and version of this generator (a change of the model bumps the version)."""


@dataclass(frozen=True)
class SynthParams:
    """Parameters of a simulated session (units in the names; ranges are (low, high))."""

    channels: int = 96
    seed: int = 0
    rate_hz: float = 250.0
    workspace_mm: float = 100.0
    min_reach_mm: float = 40.0
    reaction_s: tuple[float, float] = (0.2, 0.4)
    hold_s: tuple[float, float] = (0.3, 0.8)
    reach_base_s: float = 0.5
    reach_mm_per_s: float = 150.0
    endpoint_sd_mm: float = 3.0
    curvature_sd: float = 0.08
    jitter_mm: float = 0.5
    baseline_hz: tuple[float, float] = (5.0, 30.0)
    untuned_fraction: float = 0.2
    depth: tuple[float, float] = (0.1, 0.4)
    speed_depth: tuple[float, float] = (0.0, 0.3)
    lag_s: tuple[float, float] = (0.05, 0.1)
    shared_gain_sd: float = 0.2
    shared_gain_tau_s: float = 2.0
    private_gain_sd: float = 0.4
    private_gain_tau_s: float = 0.5
    max_rate_hz: float = 300.0

    def __post_init__(self) -> None:
        if self.channels < 1:
            raise ValueError(f"channels must be >= 1, got {self.channels}")
        if self.rate_hz <= 0:
            raise ValueError(f"rate_hz must be > 0, got {self.rate_hz}")
        if not 0 <= self.untuned_fraction <= 1:
            raise ValueError(f"untuned_fraction must be in [0, 1], got {self.untuned_fraction}")
        if self.min_reach_mm >= 2 * self.workspace_mm:
            raise ValueError("min_reach_mm must be smaller than the workspace diameter")

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def stream_infos(channels: int, rate_hz: float = 250.0, source_id: str = "") -> dict[str, StreamInfo]:
    """The three standard reaching streams: spikes (int16 counts), velocity (mm/s), target (mm)."""
    return {
        "spikes": StreamInfo("spikes", "SpikeCounts", channels, rate_hz, "int16",
                             tuple(f"ch{c:03d}" for c in range(channels)), ("counts",) * channels, source_id,
                             {"bin_s": 1.0 / rate_hz}),
        "velocity": StreamInfo("velocity", "Velocity", 2, rate_hz, "float32", ("vx", "vy"), ("mm/s", "mm/s"), source_id),
        "target": StreamInfo("target", "Target", 2, rate_hz, "float32", ("tx", "ty"), ("mm", "mm"), source_id),
    }


class _SlowNoise:
    """Unit-variance low-pass (1st-order) Gaussian noise with its filter state carried across calls."""

    def __init__(self, tau_s: float, rate_hz: float, width: int, rng: np.random.Generator) -> None:
        self.a = math.exp(-1.0 / (tau_s * rate_hz))
        self.scale = math.sqrt(1.0 - self.a ** 2)
        self.rng = rng
        self.zi = rng.standard_normal(width) * self.a  # start in the stationary distribution

    def draw(self, n: int) -> np.ndarray:
        x = self.rng.standard_normal((n, self.zi.shape[0])) * self.scale
        y, zf = lfilter([1.0], [1.0, -self.a], x, axis=0, zi=self.zi[None, :])
        self.zi = zf[0]
        return y


class ReachingSimulator:
    """Generates a reaching session block by block (blocks of any size give the same samples).

    Use :meth:`next_block` to get the next ``n`` samples of every stream.
    """

    def __init__(self, params: SynthParams) -> None:
        self.p = p = params
        self.dt = 1.0 / p.rate_hz
        kin_seq, tune_seq, spike_seq, shared_seq, private_seq = np.random.SeedSequence(p.seed).spawn(5)
        self.rng_kin = np.random.default_rng(kin_seq)
        self.rng_spk = np.random.default_rng(spike_seq)
        tune = np.random.default_rng(tune_seq)
        C = p.channels
        angles = tune.uniform(0, 2 * np.pi, C)
        self.pref = np.stack([np.cos(angles), np.sin(angles)], axis=1)  # (C, 2)
        lo, hi = p.baseline_hz
        self.baseline = np.exp(tune.uniform(math.log(lo), math.log(hi), C))  # spikes/s
        tuned = tune.uniform(size=C) >= p.untuned_fraction
        self.depth = np.where(tuned, tune.uniform(*p.depth, C), 0.0)
        self.speed_depth = np.where(tuned, tune.uniform(*p.speed_depth, C), 0.0)
        self.lag = np.round(tune.uniform(*p.lag_s, C) * p.rate_hz).astype(int)  # samples
        self.max_lag = int(self.lag.max())
        self.shared = _SlowNoise(p.shared_gain_tau_s, p.rate_hz, 1, np.random.default_rng(shared_seq))
        self.private = _SlowNoise(p.private_gain_tau_s, p.rate_hz, C, np.random.default_rng(private_seq))
        b, a = butter(2, 2.0 / (p.rate_hz / 2))  # hand jitter: 2 Hz low-pass white noise
        self._jb, self._ja = b, a
        self._jzi = lfilter_zi(b, a)[:, None] * np.zeros((1, 2))
        self._jscale = p.jitter_mm / math.sqrt(np.sum(np.square(_impulse(b, a, 2000))))
        # kinematics buffers (absolute sample index of pos[0] is self._pos_start)
        self._hand = np.zeros(2)
        self._target = np.zeros(2)
        self._pos = np.zeros((0, 2))
        self._tgt = np.zeros((0, 2))
        self._pos_start = 0
        self.n = 0  # samples emitted so far
        self._last_ts = -self.dt  # so the first timestamp is exactly 0.0
        self.trials = 0

    # --- kinematics ------------------------------------------------------------------------
    def _trial(self) -> None:
        """Plan one trial (target onset, reaction, reach, hold) and append its samples."""
        p, rng, r = self.p, self.rng_kin, self.p.rate_hz
        start = self._hand.copy()
        while True:
            ang, rad = rng.uniform(0, 2 * np.pi), p.workspace_mm * math.sqrt(rng.uniform())
            target = np.array([rad * math.cos(ang), rad * math.sin(ang)])
            dist = float(np.linalg.norm(target - start))
            if dist >= p.min_reach_mm:
                break
        n_react = int(round(rng.uniform(*p.reaction_s) * r))
        dur = float(np.clip(p.reach_base_s + dist / p.reach_mm_per_s + rng.normal(0, 0.1), 0.6, 2.2))
        n_reach = max(2, int(round(dur * r)))
        n_hold = int(round(rng.uniform(*p.hold_s) * r))
        end = target + rng.normal(0, p.endpoint_sd_mm, 2)
        bend = rng.normal(0, p.curvature_sd) * dist
        s = np.arange(1, n_reach + 1) / n_reach
        along = 10 * s ** 3 - 15 * s ** 4 + 6 * s ** 5  # minimum jerk: bell-shaped speed
        bump = 16 * s ** 2 * (1 - s) ** 2  # zero velocity at both ends
        axis = end - start
        normal = np.array([-axis[1], axis[0]]) / max(np.linalg.norm(axis), 1e-9)
        reach = start + along[:, None] * axis + bump[:, None] * bend * normal
        pos = np.concatenate([np.repeat(start[None], n_react, 0), reach, np.repeat(end[None], n_hold, 0)])
        jitter, self._jzi = lfilter(self._jb, self._ja, rng.standard_normal((len(pos), 2)), axis=0, zi=self._jzi)
        pos = pos + jitter * self._jscale
        self._pos = np.concatenate([self._pos, pos])
        self._tgt = np.concatenate([self._tgt, np.repeat(target[None], len(pos), 0)])
        self._hand = end
        self.trials += 1

    def _velocity(self, a: int, b: int) -> np.ndarray:
        """Velocity (mm/s) of absolute samples ``a..b-1``: central differences (one-sided at 0)."""
        while self._pos_start + len(self._pos) < b + 1:
            self._trial()
        i0 = a - self._pos_start
        idx = np.arange(i0, i0 + (b - a))
        lo = np.maximum(idx - 1, 0)
        hi = idx + 1
        span = (hi - lo).astype(float)[:, None] * self.dt
        return (self._pos[hi] - self._pos[lo]) / span

    # --- blocks ----------------------------------------------------------------------------
    def next_block(self, n: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """The next ``n`` samples: ``{stream: (data (n, channels), timestamps (n,) s)}``.

        Streams: ``spikes`` int16 counts per bin, ``velocity`` float32 mm/s, ``target`` float32 mm.
        Timestamps start at 0 s and advance by exactly ``1 / rate_hz`` (accumulated, so an XDF
        writer can omit them losslessly).
        """
        a, b = self.n, self.n + n
        vel_ahead = self._velocity(a, b + self.max_lag)  # (n + max_lag, 2)
        speed = np.linalg.norm(vel_ahead, axis=1)
        C = self.p.channels
        log_rate = np.empty((n, C))
        for lag in np.unique(self.lag):
            cols = np.flatnonzero(self.lag == lag)
            v = vel_ahead[lag:lag + n]
            sp = speed[lag:lag + n]
            log_rate[:, cols] = (v @ self.pref[cols].T) * (self.depth[cols] / 100.0) \
                + sp[:, None] * (self.speed_depth[cols] / 100.0)
        log_rate += self.shared.draw(n) * self.p.shared_gain_sd
        log_rate += self.private.draw(n) * self.p.private_gain_sd
        rate = np.minimum(self.baseline * np.exp(log_rate), self.p.max_rate_hz)
        counts = self.rng_spk.poisson(rate * self.dt).astype(np.int16)
        i0 = a - self._pos_start
        target = self._tgt[i0:i0 + n].astype(np.float32)
        velocity = vel_ahead[:n].astype(np.float32)
        steps = np.full(n + 1, self.dt)
        steps[0] = self._last_ts
        stamps = np.cumsum(steps)[1:]  # sequential sums: t[k] = t[k-1] + dt exactly
        self._last_ts = float(stamps[-1])
        self.n = b
        keep = max(0, (b - 1) - self._pos_start)  # keep one sample before the next block
        self._pos, self._tgt = self._pos[keep:], self._tgt[keep:]
        self._pos_start += keep
        return {"spikes": (counts, stamps), "velocity": (velocity, stamps.copy()), "target": (target, stamps.copy())}


def _impulse(b: np.ndarray, a: np.ndarray, n: int) -> np.ndarray:
    x = np.zeros(n)
    x[0] = 1.0
    return lfilter(b, a, x)


def synth_metadata(params: SynthParams, duration_s: float) -> dict[str, Any]:
    """File-level metadata stored in a synthetic recording (generator, parameters, seed)."""
    return {"generator": GENERATOR, "seed": params.seed, "duration_s": duration_s, "params": params.to_dict(),
            "task": "random-target reaching, minimum-jerk reaches, log-linear cosine-tuned Poisson units"}


def generate(path: str | Path, params: SynthParams, duration_s: float, *, block_s: float = 10.0,
             progress: bool = True) -> Path:
    """Simulate ``duration_s`` seconds and write them to an XDF file (``.xdf`` or ``.xdfz``).

    Args:
        path: output file.
        params: session parameters (channels, seed, tuning...).
        duration_s: seconds of data (rounded to whole 4 ms bins).
        block_s: seconds generated per step (does not change the result).
        progress: show a tqdm progress bar.
    """
    from tqdm import tqdm

    from pipeline.recordings.xdf_writer import XdfWriter

    if duration_s <= 0:
        raise ValueError(f"duration must be > 0 s, got {duration_s}")
    sim = ReachingSimulator(params)
    total = int(round(duration_s * params.rate_hz))
    infos = stream_infos(params.channels, params.rate_hz, source_id=f"spikeloop-synth-seed{params.seed}")
    block = max(1, int(round(block_s * params.rate_hz)))
    with XdfWriter(path, synth_metadata(params, total / params.rate_hz), compresslevel=9) as w, \
            tqdm(total=round(total / params.rate_hz, 1), unit="s", desc="synth", disable=not progress,
                 bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s data [{elapsed}<{remaining}]") as bar:
        ids = {name: w.add_stream(info) for name, info in infos.items()}
        done = 0
        while done < total:
            n = min(block, total - done)
            for name, (data, stamps) in sim.next_block(n).items():
                w.write_samples(ids[name], data, stamps)
            done += n
            bar.update(n / params.rate_hz)
    return Path(path)
