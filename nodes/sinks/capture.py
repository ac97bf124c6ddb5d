"""Capture sink: keeps every packet it receives, for tests, notebooks and runner comparisons."""
from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from pipeline.node import Sink
from pipeline.packet import Packet, StreamInfo


class Capture(Sink):
    """Keep all received samples in memory; report their count and a SHA-256 digest per port.

    Params:
        streams: input port names (default ``["in"]``), one per stream to capture.

    ``report()`` gives, per port, the sample count, the first and last timestamp (s), a digest
    of the data and timestamps bytes (``sha256``) and of the data alone (``data_sha256``), so two
    runs (or two runners) can be compared exactly.
    """

    kind = "capture"

    def __init__(self, streams: list[str] | None = None) -> None:
        self.inputs = tuple(streams or ["in"])
        self._data: dict[str, list[np.ndarray]] = {p: [] for p in self.inputs}
        self._stamps: dict[str, list[np.ndarray]] = {p: [] for p in self.inputs}

    def open(self, inputs: dict[str, StreamInfo]) -> dict[str, StreamInfo]:
        return super().open(inputs)

    def process(self, port: str, packet: Packet) -> dict[str, Packet]:
        self._data[port].append(np.array(packet.data, copy=True))
        self._stamps[port].append(np.array(packet.timestamps, copy=True))
        return {}

    def arrays(self, port: str = "in") -> tuple[np.ndarray, np.ndarray]:
        """All captured ``(data (samples, channels), timestamps (samples,))`` of ``port``."""
        if not self._data[port]:
            width = self.input_infos[port].channel_count if hasattr(self, "input_infos") and port in self.input_infos else 0
            return np.zeros((0, width)), np.zeros(0)
        return np.concatenate(self._data[port]), np.concatenate(self._stamps[port])

    def report(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for port in self.inputs:
            data, stamps = self.arrays(port)
            digest = hashlib.sha256(np.ascontiguousarray(data).tobytes() + np.ascontiguousarray(stamps).tobytes())
            prefix = "" if len(self.inputs) == 1 else f"{port}."
            out[f"{prefix}samples"] = int(data.shape[0])
            out[f"{prefix}first_t"] = float(stamps[0]) if stamps.size else None
            out[f"{prefix}last_t"] = float(stamps[-1]) if stamps.size else None
            out[f"{prefix}sha256"] = digest.hexdigest()[:16]
            # the data alone: equal across runs whose sources stamp on the wall clock (a simulator)
            out[f"{prefix}data_sha256"] = hashlib.sha256(np.ascontiguousarray(data).tobytes()).hexdigest()[:16]
        return out
