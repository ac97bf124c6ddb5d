"""A simulated monkey doing continuous self-paced reaching to grid targets, with ORed multi-unit channels.

Calibrated against the O'Doherty et al. sessions NeuroBench uses (targets and their sources in
``recordings/README.md``; ``spikeloop synth --describe FILE`` prints a recording's statistics beside
them).

**Task.** Targets sit on an ``grid_n`` × ``grid_n`` grid of ``grid_pitch_mm`` pitch; each new target
is drawn uniformly from the other grid cells. There is no inter-trial interval and no hold: the
target counts as acquired when the planned hand path enters a ``window_mm`` radius around it, the
next target appears at that moment, and the next reach starts a reaction time later
(``reaction_s``) while the previous one is still decelerating. Each reach is a minimum-jerk
submovement (bell-shaped speed) from the previous reach's end point to the target plus an end-point
error, slightly curved; submovements are superposed (Flash & Henis 1991), so the hand rarely stops.
A small smooth hand tremor (``jitter_mm``) runs throughout. Velocity is the central difference of
the cursor position, in mm/s.

**Neurons.** Each channel holds ``units_per_channel`` sorted units plus one unsorted multi-unit
"hash" (mostly untuned). Unit ``u`` fires as an inhomogeneous Poisson process

    rate_u(t) = b_u · exp( k_u · (d_u · v(t + lag_u)) / 100 + s_u · |v(t + lag_u)| / 100
                           + drift_u(t) + g(t) )

with ``v`` in mm/s, baseline ``b_u`` (spikes/s), preferred direction ``d_u``, direction depth
``k_u`` and speed depth ``s_u`` per 100 mm/s (both 0 for untuned units), a lead ``lag_u`` (M1
activity precedes movement), a slow private drift (Ornstein–Uhlenbeck, ``drift_sd`` over
``drift_tau_s``) and a shared population fluctuation ``g`` (``shared_sd`` over ``shared_tau_s``).
A channel reports 1 in a 4 ms bin when any of its units fired in it (NeuroBench ORs the units of
a channel): ``P(1) = 1 − exp(−Σ_u rate_u · 4 ms)``. The spikes stream therefore holds 0/1 (int16).

Everything is seeded: kinematics, tuning, drift and spikes use separate generators spawned from
``seed``, and the session does not depend on how it is cut into blocks, so the live source
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

GENERATOR = "spikeloop.synth/2"
"""Name and version of this generator (a change of the model bumps the version)."""


@dataclass(frozen=True)
class SynthParams:
    """Parameters of a simulated session (units in the names; ranges are (low, high))."""

    channels: int = 96
    seed: int = 0
    rate_hz: float = 250.0
    # task
    grid_n: int = 8
    grid_pitch_mm: float = 15.0
    window_mm: float = 7.5
    reaction_s: tuple[float, float] = (0.10, 0.25)
    reach_base_s: float = 0.35
    reach_mm_per_s: float = 160.0
    reach_sd_s: float = 0.08
    endpoint_sd_mm: float = 2.0
    curvature_sd: float = 0.1
    jitter_mm: float = 0.3
    # neurons
    units_per_channel: tuple[int, int] = (1, 3)
    unit_hz: tuple[float, float] = (2.0, 20.0)
    hash_hz: tuple[float, float] = (2.0, 25.0)
    untuned_fraction: float = 0.3
    depth: tuple[float, float] = (0.05, 0.35)
    speed_depth: tuple[float, float] = (-0.2, 0.8)
    hash_depth_scale: float = 0.25
    lag_s: tuple[float, float] = (0.1, 0.04)  # (mean, sd) of the neural lead, clipped to lag_clip_s
    lag_clip_s: tuple[float, float] = (0.02, 0.2)
    drift_sd: float = 0.15
    drift_tau_s: float = 120.0
    shared_sd: float = 0.3
    shared_tau_s: float = 0.5
    max_rate_hz: float = 200.0

    def __post_init__(self) -> None:
        if self.channels < 1:
            raise ValueError(f"channels must be >= 1, got {self.channels}")
        if self.rate_hz <= 0:
            raise ValueError(f"rate_hz must be > 0, got {self.rate_hz}")
        if not 0 <= self.untuned_fraction <= 1:
            raise ValueError(f"untuned_fraction must be in [0, 1], got {self.untuned_fraction}")
        if self.grid_n < 2:
            raise ValueError(f"grid_n must be >= 2, got {self.grid_n}")
        if not 0 < self.window_mm < self.grid_pitch_mm:
            raise ValueError(f"window_mm must be in (0, grid_pitch_mm), got {self.window_mm}")
        lo, hi = self.units_per_channel
        if lo < 0 or hi < lo:
            raise ValueError(f"units_per_channel must be (lo, hi) with 0 <= lo <= hi, got {self.units_per_channel}")
        if not 0 <= self.lag_clip_s[0] <= self.lag_clip_s[1] <= 0.5:
            raise ValueError(f"lag_clip_s must satisfy 0 <= lo <= hi <= 0.5 s, got {self.lag_clip_s}")

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def stream_infos(channels: int, rate_hz: float = 250.0, source_id: str = "") -> dict[str, StreamInfo]:
    """The three standard reaching streams: spikes (int16, 0/1 per bin), velocity (mm/s), target (mm)."""
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
        self.zi = rng.standard_normal(width)  # start in the stationary distribution (variance 1)

    def draw(self, n: int) -> np.ndarray:
        x = self.rng.standard_normal((n, self.zi.shape[0])) * self.scale
        y, zf = lfilter([1.0], [1.0, -self.a], x, axis=0, zi=(self.zi * self.a)[None, :])
        self.zi = y[-1]
        return y


def _min_jerk(s: np.ndarray) -> np.ndarray:
    return 10 * s ** 3 - 15 * s ** 4 + 6 * s ** 5


class ReachingSimulator:
    """Generates a reaching session block by block (blocks of any size give the same samples).

    Use :meth:`next_block` to get the next ``n`` samples of every stream.
    """

    def __init__(self, params: SynthParams) -> None:
        self.p = p = params
        self.dt = 1.0 / p.rate_hz
        kin_seq, tune_seq, spike_seq, shared_seq, drift_seq = np.random.SeedSequence(p.seed).spawn(5)
        self.rng_kin = np.random.default_rng(kin_seq)
        self.rng_spk = np.random.default_rng(spike_seq)
        self._build_units(np.random.default_rng(tune_seq))
        self.shared = _SlowNoise(p.shared_tau_s, p.rate_hz, 1, np.random.default_rng(shared_seq))
        self.drift = _SlowNoise(p.drift_tau_s, p.rate_hz, self.n_units, np.random.default_rng(drift_seq))
        b, a = butter(2, 4.0 / (p.rate_hz / 2))  # hand tremor: 4 Hz low-pass white noise
        self._jb, self._ja = b, a
        self._jzi = lfilter_zi(b, a)[:, None] * np.zeros((1, 2))
        self._jscale = p.jitter_mm / math.sqrt(np.sum(np.square(_impulse(b, a, 2000))))
        # kinematics: positions of absolute samples [_pos_start, _pos_start + len(_pos)); samples
        # before _final are complete (no later reach touches them) and carry their tremor
        half = (p.grid_n - 1) / 2
        self.grid = np.array([[(i - half) * p.grid_pitch_mm, (j - half) * p.grid_pitch_mm]
                              for i in range(p.grid_n) for j in range(p.grid_n)])
        self._cell = int(self.rng_kin.integers(len(self.grid)))
        self._end = self.grid[self._cell].copy()  # planned end point of the latest reach
        self._pos = np.repeat(self._end[None], 1, 0)
        self._tgt = np.zeros((0, 2))
        self._pos_start = 0
        self._final = 0
        self._next_start = int(round(self.rng_kin.uniform(*p.reaction_s) * p.rate_hz))
        self._target = self._draw_target()
        self.n = 0
        self._last_ts = -self.dt  # so the first timestamp is exactly 0.0
        self.trials = 0

    # --- tuning --------------------------------------------------------------------------------
    def _build_units(self, rng: np.random.Generator) -> None:
        p, C = self.p, self.p.channels
        lo, hi = p.units_per_channel
        sorted_n = rng.integers(lo, hi + 1, C)
        channel = np.concatenate([np.repeat(np.arange(C), sorted_n), np.arange(C)])  # sorted units, then hashes
        U = channel.size
        is_hash = np.arange(U) >= U - C
        angles = rng.uniform(0, 2 * np.pi, U)
        self.pref = np.stack([np.cos(angles), np.sin(angles)], axis=1)
        log_u = rng.uniform(math.log(p.unit_hz[0]), math.log(p.unit_hz[1]), U)
        log_h = rng.uniform(math.log(p.hash_hz[0]), math.log(p.hash_hz[1]), U)
        self.baseline = np.exp(np.where(is_hash, log_h, log_u))
        tuned = rng.uniform(size=U) >= p.untuned_fraction
        scale = np.where(is_hash, p.hash_depth_scale, 1.0) * tuned
        self.depth = rng.uniform(*p.depth, U) * scale
        self.speed_depth = rng.uniform(*p.speed_depth, U) * scale
        lag = np.clip(rng.normal(p.lag_s[0], p.lag_s[1], U), *p.lag_clip_s)
        self.lag = np.round(lag * p.rate_hz).astype(int)
        self.max_lag = int(self.lag.max())
        self.channel_of_unit = channel
        self.is_hash = is_hash
        self.tuned = tuned
        self.n_units = U
        self._u2c = np.zeros((U, C))
        self._u2c[np.arange(U), channel] = 1.0

    # --- kinematics ------------------------------------------------------------------------
    def _draw_target(self) -> np.ndarray:
        cell = int(self.rng_kin.integers(len(self.grid) - 1))
        self._cell = cell + (cell >= self._cell)  # any cell but the current one
        return self.grid[self._cell].copy()

    def _ensure(self, abs_index: int) -> None:
        """Plan reaches until positions and targets of samples ``< abs_index`` are final."""
        p, rng, r = self.p, self.rng_kin, self.p.rate_hz
        while self._final < abs_index:
            start, target = self._next_start, self._target
            end = target + rng.normal(0, p.endpoint_sd_mm, 2)
            disp = end - self._end
            dist = float(np.linalg.norm(disp))
            dur = max(0.25, p.reach_base_s + dist / p.reach_mm_per_s + rng.normal(0, p.reach_sd_s))
            n = max(2, int(round(dur * r)))
            s = np.arange(1, n + 1) / n
            along = _min_jerk(s)
            normal = np.array([-disp[1], disp[0]]) / max(dist, 1e-9)
            path = along[:, None] * disp + (16 * s ** 2 * (1 - s) ** 2 * rng.normal(0, p.curvature_sd) * dist)[:, None] * normal
            # acquisition: first sample whose planned position is within the window of the target
            planned = self._end + path
            inside = np.flatnonzero(np.linalg.norm(planned - target, axis=1) <= p.window_mm)
            acq = start + (int(inside[0]) + 1 if inside.size else n)
            react = int(round(rng.uniform(*p.reaction_s) * r))
            # superpose the reach on the position buffer
            rel = start - self._pos_start
            need = rel + n
            if need > len(self._pos):
                self._pos = np.concatenate([self._pos, np.repeat(self._pos[-1:], need - len(self._pos), 0)])
            self._pos[rel:rel + n] += path
            self._pos[rel + n:] += disp
            self._end = self._end + disp
            # targets: this one until acquisition, then the next one (drawn now)
            nxt = self._draw_target()
            new_final = acq + react
            self._tgt = np.concatenate([self._tgt, np.repeat(target[None], acq - self._final, 0),
                                        np.repeat(nxt[None], react, 0)])
            # newly final samples get their tremor
            if new_final - self._pos_start > len(self._pos):
                self._pos = np.concatenate([self._pos, np.repeat(self._pos[-1:], new_final - self._pos_start - len(self._pos), 0)])
            a0, a1 = self._final - self._pos_start, new_final - self._pos_start
            jit, self._jzi = lfilter(self._jb, self._ja, rng.standard_normal((a1 - a0, 2)), axis=0, zi=self._jzi)
            self._pos[a0:a1] += jit * self._jscale
            self._final = new_final
            self._next_start = new_final
            self._target = nxt
            self.trials += 1

    def _velocity(self, a: int, b: int) -> np.ndarray:
        """Velocity (mm/s) of absolute samples ``a..b-1``: central differences (one-sided at 0)."""
        self._ensure(b + 1)
        i0 = a - self._pos_start
        idx = np.arange(i0, i0 + (b - a))
        lo = np.maximum(idx - 1, 0) if self._pos_start == 0 else idx - 1
        hi = idx + 1
        span = (hi - lo).astype(float)[:, None] * self.dt
        return (self._pos[hi] - self._pos[lo]) / span

    # --- blocks ----------------------------------------------------------------------------
    def next_block(self, n: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """The next ``n`` samples: ``{stream: (data (n, channels), timestamps (n,) s)}``.

        Streams: ``spikes`` int16 0/1 per 4 ms bin and channel, ``velocity`` float32 mm/s,
        ``target`` float32 mm. Timestamps start at 0 s and advance by exactly ``1 / rate_hz``
        (accumulated, so an XDF writer can omit them losslessly).
        """
        a, b = self.n, self.n + n
        vel_ahead = self._velocity(a, b + self.max_lag)  # (n + max_lag, 2)
        rows = np.arange(n)[:, None] + self.lag[None, :]  # (n, U): sample each unit listens to
        v = vel_ahead[rows]  # (n, U, 2)
        sp = np.sqrt(np.sum(v * v, axis=2))
        log_rate = np.einsum("nuk,uk->nu", v, self.pref) * (self.depth / 100.0) + sp * (self.speed_depth / 100.0)
        log_rate += self.drift.draw(n) * self.p.drift_sd
        log_rate += self.shared.draw(n) * self.p.shared_sd
        rate = np.minimum(self.baseline * np.exp(log_rate), self.p.max_rate_hz)  # (n, U) spikes/s
        lam = (rate * self.dt) @ self._u2c  # (n, C) expected spikes per bin, all units of a channel
        p_fire = -np.expm1(-lam)
        spikes = (self.rng_spk.random((n, self.p.channels)) < p_fire).astype(np.int16)
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
        return {"spikes": (spikes, stamps), "velocity": (velocity, stamps.copy()), "target": (target, stamps.copy())}


def _impulse(b: np.ndarray, a: np.ndarray, n: int) -> np.ndarray:
    x = np.zeros(n)
    x[0] = 1.0
    return lfilter(b, a, x)


def synth_metadata(params: SynthParams, duration_s: float) -> dict[str, Any]:
    """File-level metadata stored in a synthetic recording (generator, parameters, seed)."""
    return {"generator": GENERATOR, "seed": params.seed, "duration_s": duration_s, "params": params.to_dict(),
            "task": "continuous self-paced reaching to grid targets, superposed minimum-jerk reaches, "
                     "log-linear tuned Poisson units ORed per channel (0/1 per 4 ms bin)"}


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
