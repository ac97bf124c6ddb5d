"""Velocity scorer: R² (NeuroBench definition) of a decoded velocity against the true one."""
from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.errors import UserError
from pipeline.node import Sink, require
from pipeline.packet import Packet, StreamInfo
from pipeline.scoring import r2_per_axis


class VelocityScorer(Sink):
    """Score decoded velocity (port ``pred``) against the true velocity (port ``true``).

    Samples are paired by timestamp (both streams come from one replay, so a decoded sample carries
    the timestamp of the spikes bin it was decoded from, equal to the true sample's). A prediction
    whose timestamp has no true sample is counted (``unmatched``), never silently dropped.

    Params:
        from_s, to_s: score only true samples whose timestamps lie in ``[first + from_s,
            first + to_s]`` (s, relative to the first true sample); default: everything.
        split: ``"train"``, ``"val"`` or ``"test"``: score only that part of the NeuroBench split of
            ``recording`` (by sample index of the true stream: the replay must start at the
            beginning of the recording, without looping). Excludes ``from_s``/``to_s``.
        recording: the replayed recording (needed with ``split``).
        neural, kinematics, markers, kinematics_kind: the stream mapping of ``recording`` (as the
            replay's; ``pipeline.recordings.mapping``), so ``split`` cuts the same segments.

    ``report()``: ``{"r2", "r2_x", "r2_y", "n", "unmatched"}`` (R² per NeuroBench: 1 − SSE/(N·var)
    per axis with population variance, averaged over x and y).
    """

    kind = "velocity_scorer"
    inputs = ("pred", "true")

    def __init__(self, from_s: float | None = None, to_s: float | None = None, split: str | None = None,
                 recording: str | None = None, neural: str | None = None, kinematics: str | None = None,
                 markers: str | None = None, kinematics_kind: str | None = None) -> None:
        if split is not None:
            if split not in ("train", "val", "test"):
                raise UserError(f"velocity_scorer: split must be 'train', 'val' or 'test', got {split!r}")
            if recording is None:
                raise UserError("velocity_scorer: split needs 'recording' (the replayed recording's path)")
            if from_s is not None or to_s is not None:
                raise UserError("velocity_scorer: give either split or from_s/to_s, not both")
        self.from_s, self.to_s, self.split, self.recording = from_s, to_s, split, recording
        from pipeline.recordings.mapping import StreamMapping

        self.mapping = StreamMapping.from_params(neural, kinematics, markers, kinematics_kind)
        self._pred: list[Packet] = []
        self._true: list[Packet] = []
        self._slice: slice | None = None

    def open(self, inputs: dict[str, StreamInfo]) -> dict[str, StreamInfo]:
        pred = require(inputs, "pred")
        true = require(inputs, "true", channel_count=pred.channel_count)
        if true.channel_count < 1:
            raise UserError("velocity_scorer: the streams have no channels")
        if self.split is not None:
            from pipeline.recordings.reaching import load_reaching

            self._slice = load_reaching(self.recording, self.mapping).split[self.split]
        return super().open(inputs)

    def process(self, port: str, packet: Packet) -> dict[str, Packet]:
        (self._pred if port == "pred" else self._true).append(packet)
        return {}

    @staticmethod
    def _cat(packets: list[Packet], width: int) -> tuple[np.ndarray, np.ndarray]:
        if not packets:
            return np.zeros((0, width)), np.zeros(0)
        return (np.concatenate([np.asarray(p.data, dtype=np.float64) for p in packets]),
                np.concatenate([p.timestamps for p in packets]))

    def _pairs(self) -> tuple[np.ndarray, np.ndarray, int]:
        width = self.input_infos["true"].channel_count
        y, ty = self._cat(self._true, width)
        p, tp = self._cat(self._pred, width)
        keep = np.ones(ty.shape[0], dtype=bool)
        if self._slice is not None:
            idx = np.arange(ty.shape[0])
            keep &= (idx >= self._slice.start) & (idx < self._slice.stop)
        elif ty.size and (self.from_s is not None or self.to_s is not None):
            rel = ty - ty[0]
            if self.from_s is not None:
                keep &= rel >= self.from_s - 1e-9
            if self.to_s is not None:
                keep &= rel <= self.to_s + 1e-9
        if ty.size == 0:
            return np.zeros((0, width)), np.zeros((0, width)), int(tp.size)
        order = np.argsort(ty, kind="stable")
        sorted_ty = ty[order]
        pos = np.minimum(np.searchsorted(sorted_ty, tp), ty.size - 1)
        matched = sorted_ty[pos] == tp
        unmatched = int((~matched).sum())
        true_idx = order[pos[matched]]
        sel = keep[true_idx]
        return y[true_idx[sel]], p[matched][sel], unmatched

    def counters(self) -> dict[str, int]:
        if not hasattr(self, "input_infos"):
            return {}
        return {"unmatched": self._pairs()[2]}

    def report(self) -> dict[str, Any]:
        if not hasattr(self, "input_infos"):
            return {}
        y, p, unmatched = self._pairs()
        if y.shape[0] < 2:
            return {"r2": None, "n": int(y.shape[0]), "unmatched": unmatched}
        per_axis = r2_per_axis(y, p)
        labels = self.input_infos["true"].channel_labels or tuple(str(k) for k in range(y.shape[1]))
        out: dict[str, Any] = {"r2": round(float(np.mean(per_axis)), 6)}
        for label, v in zip(labels, per_axis):
            out[f"r2_{label[-1] if label in ('vx', 'vy') else label}"] = round(float(v), 6)
        out["n"] = int(y.shape[0])
        out["unmatched"] = unmatched
        return out
