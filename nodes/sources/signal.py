"""A seeded multichannel test signal: sines plus Gaussian noise at a fixed rate.

Useful to try a graph without a recording or an amplifier, and as a deterministic source in tests.
"""
from __future__ import annotations

from typing import Literal

import numpy as np

from pipeline.clock import local_clock, wait_until
from pipeline.node import Outputs, Source
from pipeline.packet import Packet, StreamInfo


class SignalGenerator(Source):
    """Sines (channel k at ``freq_hz * (k + 1)``) plus seeded Gaussian noise.

    Params:
        channels: number of channels.
        rate_hz: sampling rate in Hz.
        duration_s: seconds of signal to produce (None = endless).
        chunk: samples per packet.
        speed: ``"max"`` (as fast as the graph consumes; timestamps start at 0 s) or a real-time
            factor (1 = paced on the live clock; timestamps on the live clock, never ahead of it).
        amplitude: sine amplitude (arbitrary units); ``noise`` is the noise standard deviation.
        freq_hz: base sine frequency in Hz.
        seed: noise seed.
    """

    kind = "signal_generator"
    outputs = ("out",)

    def __init__(self, channels: int = 4, rate_hz: float = 250.0, duration_s: float | None = 10.0,
                 chunk: int = 1, speed: float | Literal["max"] = "max", amplitude: float = 1.0, noise: float = 0.1,
                 freq_hz: float = 1.0, seed: int = 0) -> None:
        if channels < 1 or rate_hz <= 0 or chunk < 1:
            raise ValueError("channels and chunk must be >= 1 and rate_hz > 0")
        if speed != "max" and not (isinstance(speed, (int, float)) and speed > 0):
            raise ValueError(f"speed must be 'max' or a positive number, got {speed!r}")
        self.channels, self.rate_hz, self.chunk, self.speed = channels, float(rate_hz), chunk, speed
        self.total = None if duration_s is None else int(round(duration_s * rate_hz))
        self.amplitude, self.noise, self.freq_hz, self.seed = amplitude, noise, freq_hz, seed
        self._rng = np.random.default_rng(seed)
        self._n = 0
        self._t0 = 0.0

    def open(self, inputs: dict[str, StreamInfo]) -> dict[str, StreamInfo]:
        self._t0 = 0.0 if self.speed == "max" else local_clock()
        labels = tuple(f"ch{k}" for k in range(self.channels))
        return {"out": StreamInfo("signal", "Test", self.channels, self.rate_hz, "float64", labels,
                                  ("a.u.",) * self.channels, source_id=f"signal-{self.seed}")}

    def read(self) -> Outputs | None:
        n = self.chunk if self.total is None else min(self.chunk, self.total - self._n)
        if n <= 0:
            return None
        idx = np.arange(self._n, self._n + n)
        rel = idx / self.rate_hz
        if self.speed != "max":
            wait_until(self._t0 + rel[-1] / float(self.speed))  # never stamp ahead of the clock
            stamps = self._t0 + rel / float(self.speed)
        else:
            stamps = rel
            self.virtual_time = float(rel[-1])
        k = np.arange(1, self.channels + 1)
        data = self.amplitude * np.sin(2 * np.pi * self.freq_hz * rel[:, None] * k[None, :])
        data += self.noise * self._rng.standard_normal((n, self.channels))
        self._n += n
        return {"out": Packet(data, stamps, local_clock())}

    def progress(self) -> tuple[float, float] | None:
        return None if self.total is None else (self._n / self.rate_hz, self.total / self.rate_hz)

    def state(self) -> dict:
        return {"n": self._n, "rng": self._rng.bit_generator.state}

    def restore(self, state: dict) -> None:
        self._n = int(state["n"])
        self._rng.bit_generator.state = state["rng"]
