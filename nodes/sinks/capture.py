"""Capture sink: digests every packet it receives and keeps them (all, or the newest N samples).

For tests, notebooks and runner comparisons. The digest is computed as packets arrive, so a long
run can be compared exactly while keeping only a bounded tail (``keep``) in memory.
"""
from __future__ import annotations

import hashlib
from collections import deque
from typing import Any

import numpy as np

from pipeline.errors import UserError
from pipeline.node import Layout, Sink
from pipeline.packet import Packet, StreamInfo


class Capture(Sink):
    """Report each port's sample count, first/last timestamp and a running SHA-256; keep samples.

    Params:
        streams: input port names (default ``["in"]``), one per stream to capture.
        keep: samples kept per port for :meth:`arrays`: None (default) keeps every sample, ``N``
            keeps the newest N (older ones are let go and counted in ``report()`` as
            ``not_kept``), 0 keeps none. The digest always covers every sample.

    ``report()`` gives, per port, the sample count, the first and last timestamp (s) and a digest:
    ``sha256(sha256(data bytes) + sha256(timestamp bytes))`` over all samples in arrival order,
    which depends only on the samples, not on how they were chunked into packets; and
    ``data_sha256``, the data bytes' alone (equal across runs whose source stamps on the wall
    clock from its start, as the robot simulator does).
    """

    kind = "capture"

    @classmethod
    def layout(cls, params: dict[str, Any]) -> Layout:
        """One input port per name in ``streams`` (default: ``in``)."""
        return Layout(tuple(params.get("streams") or ["in"]), ())

    def __init__(self, streams: list[str] | None = None, keep: int | None = None) -> None:
        if keep is not None and (not isinstance(keep, int) or keep < 0):
            raise UserError(f"capture: keep must be a number of samples >= 0 or null (all), got {keep!r}")
        self.inputs = tuple(streams or ["in"])
        self.keep = keep
        self._data: dict[str, deque[np.ndarray]] = {p: deque() for p in self.inputs}
        self._stamps: dict[str, deque[np.ndarray]] = {p: deque() for p in self.inputs}
        self._kept = {p: 0 for p in self.inputs}
        self._count = {p: 0 for p in self.inputs}
        self._first: dict[str, float | None] = {p: None for p in self.inputs}
        self._last: dict[str, float | None] = {p: None for p in self.inputs}
        self._hash_data = {p: hashlib.sha256() for p in self.inputs}
        self._hash_stamps = {p: hashlib.sha256() for p in self.inputs}

    def open(self, inputs: dict[str, StreamInfo]) -> dict[str, StreamInfo]:
        return super().open(inputs)

    def process(self, port: str, packet: Packet) -> dict[str, Packet]:
        data = np.ascontiguousarray(packet.data)
        stamps = np.ascontiguousarray(packet.timestamps)
        n = int(stamps.shape[0])
        self._hash_data[port].update(data.tobytes())
        self._hash_stamps[port].update(stamps.tobytes())
        if n:
            self._count[port] += n
            if self._first[port] is None:
                self._first[port] = float(stamps[0])
            self._last[port] = float(stamps[-1])
        if self.keep != 0 and n:
            self._data[port].append(np.array(data, copy=True))
            self._stamps[port].append(np.array(stamps, copy=True))
            self._kept[port] += n
            if self.keep is not None:
                self._trim(port)
        return {}

    def _trim(self, port: str) -> None:
        data, stamps, keep = self._data[port], self._stamps[port], int(self.keep or 0)
        while self._kept[port] > keep:
            extra = self._kept[port] - keep
            if data[0].shape[0] <= extra:
                self._kept[port] -= data.popleft().shape[0]
                stamps.popleft()
            else:
                data[0], stamps[0] = data[0][extra:], stamps[0][extra:]
                self._kept[port] -= extra

    def arrays(self, port: str = "in") -> tuple[np.ndarray, np.ndarray]:
        """Kept ``(data (samples, channels), timestamps (samples,))`` of ``port``, oldest first."""
        if not self._data[port]:
            width = self.input_infos[port].channel_count if hasattr(self, "input_infos") and port in self.input_infos else 0
            return np.zeros((0, width)), np.zeros(0)
        return np.concatenate(list(self._data[port])), np.concatenate(list(self._stamps[port]))

    def report(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for port in self.inputs:
            digest = hashlib.sha256(self._hash_data[port].digest() + self._hash_stamps[port].digest())
            prefix = "" if len(self.inputs) == 1 else f"{port}."
            out[f"{prefix}samples"] = self._count[port]
            out[f"{prefix}first_t"] = self._first[port]
            out[f"{prefix}last_t"] = self._last[port]
            out[f"{prefix}sha256"] = digest.hexdigest()[:16]
            # the data alone: equal across runs whose sources stamp on the wall clock (a simulator)
            out[f"{prefix}data_sha256"] = self._hash_data[port].hexdigest()[:16]
            if self.keep is not None:
                out[f"{prefix}not_kept"] = self._count[port] - self._kept[port]
        return out
