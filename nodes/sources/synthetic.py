"""Live synthetic reaching source: the ``spikeloop synth`` session, generated on the fly."""
from __future__ import annotations

import time
from typing import Any, Literal

import numpy as np

from pipeline.clock import SPIN_S, local_clock, wait_until
from pipeline.errors import UserError
from pipeline.node import Outputs, Source
from pipeline.packet import Packet, StreamInfo
from pipeline.recordings.synth import ReachingSimulator, SynthParams, stream_infos

_BLOCK = 250  # samples simulated at a time (the session does not depend on it)


class SyntheticReaching(Source):
    """A simulated monkey reaching session (:mod:`pipeline.recordings.synth`), streamed live.

    Params:
        channels: recording channels (default 96).
        seed: random seed; the same seed gives the same samples as ``spikeloop synth --seed``.
        speed: real-time factor (1.0 = live, paced on the clock, samples never stamped ahead of
            it) or ``"max"`` (as fast as the graph consumes; timestamps from 0 s).
        duration_s: seconds of data before the source ends (None = endless).
        chunk_samples: 4 ms samples per packet (default 1).

    Output ports ``spikes`` (int16 counts per 4 ms bin), ``velocity`` (vx, vy mm/s) and
    ``target`` (tx, ty mm), all 250 Hz.
    """

    kind = "synthetic_reaching"
    outputs = ("spikes", "velocity", "target")

    def __init__(self, channels: int = 96, seed: int = 0, speed: float | Literal["max"] = 1.0,
                 duration_s: float | None = None, chunk_samples: int = 1) -> None:
        if speed != "max" and not (isinstance(speed, (int, float)) and not isinstance(speed, bool) and speed > 0):
            raise UserError(f"synthetic_reaching: speed must be 'max' or a number > 0, got {speed!r}")
        if chunk_samples < 1:
            raise UserError(f"synthetic_reaching: chunk_samples must be >= 1, got {chunk_samples}")
        try:
            self.params = SynthParams(channels=int(channels), seed=int(seed))
        except ValueError as exc:
            raise UserError(f"synthetic_reaching: {exc}") from None
        self.speed, self.chunk = speed, int(chunk_samples)
        self.rate = self.params.rate_hz
        self.total = None if duration_s is None else int(round(duration_s * self.rate))
        self._reset()

    def _reset(self) -> None:
        self._sim = ReachingSimulator(self.params)
        self._buf: dict[str, tuple[Any, Any]] = {}
        self._buf_pos = 0
        self._n = 0
        self._live0: float | None = None

    def open(self, inputs: dict[str, StreamInfo]) -> dict[str, StreamInfo]:
        return stream_infos(self.params.channels, self.rate, source_id=f"spikeloop-synth-seed{self.params.seed}")

    def _take(self, n: int) -> dict[str, tuple[Any, Any]]:
        out: dict[str, list] = {k: ([], []) for k in self.outputs}
        while n > 0:
            if not self._buf or self._buf_pos >= len(self._buf["spikes"][1]):
                self._buf, self._buf_pos = self._sim.next_block(_BLOCK), 0
            m = min(n, len(self._buf["spikes"][1]) - self._buf_pos)
            for k in self.outputs:
                d, t = self._buf[k]
                out[k][0].append(d[self._buf_pos:self._buf_pos + m])
                out[k][1].append(t[self._buf_pos:self._buf_pos + m])
            self._buf_pos += m
            n -= m
        return {k: (np.concatenate(d), np.concatenate(t)) for k, (d, t) in out.items()}

    def read(self) -> Outputs | None:
        n = self.chunk if self.total is None else min(self.chunk, self.total - self._n)
        if n <= 0:
            return None
        paced = self.speed != "max"
        if paced:
            now = local_clock()
            if self._live0 is None:
                self._live0 = now - self._n / self.rate / float(self.speed)
            deadline = self._live0 + (self._n + n - 1) / self.rate / float(self.speed)
            if deadline - now > self.max_block_s:
                time.sleep(min(self.max_block_s, deadline - now - 2 * SPIN_S))  # wake early, spin later
                return {}
            wait_until(deadline)
        blocks = self._take(n)
        t_enter = local_clock()
        out: Outputs = {}
        for k, (data, stamps) in blocks.items():
            if paced:
                stamps = self._live0 + stamps / float(self.speed)  # sim stamps start at 0 s
            out[k] = Packet(data, stamps, t_enter)
        if not paced:
            self.virtual_time = float(blocks["spikes"][1][-1])
        self._n += n
        return out

    def progress(self) -> tuple[float, float] | None:
        return None if self.total is None else (self._n / self.rate, self.total / self.rate)

    def state(self) -> dict[str, Any]:
        return {"n": self._n}

    def restore(self, state: dict[str, Any]) -> None:
        """Regenerate the session up to the saved sample (deterministic), then continue."""
        target = int(state["n"])
        self._reset()
        while self._n < target:
            step = min(10 * _BLOCK, target - self._n)
            self._take(step)
            self._n += step
