"""Velocity scorer: R² (NeuroBench definition) of a decoded velocity against the true one.

The scorer keeps sufficient statistics (:class:`pipeline.scoring.R2Accumulator`), not packets, so
its memory does not grow with the length of a session: only samples not yet paired wait, in two
bounded buffers.
"""
from __future__ import annotations

import logging
from collections import deque
from typing import Any, Literal

import numpy as np

from pipeline.errors import UserError
from pipeline.node import Sink, require
from pipeline.packet import Packet, StreamInfo
from pipeline.scoring import R2Accumulator


class VelocityScorer(Sink):
    """Score decoded velocity (port ``pred``) against the true velocity (port ``true``).

    Samples are paired by timestamp, exactly (both streams come from one replay, so a decoded
    sample carries the timestamp of the spikes bin it was decoded from, equal to the true
    sample's); with repeated true timestamps the first true sample received is used. A prediction
    whose timestamp has no true sample is counted (``unmatched``), never silently dropped.

    Streaming and bounded memory: true samples wait in a ring buffer (at most ``max_pending``
    samples) until a prediction with the same timestamp arrives; true samples older than the
    newest prediction already paired are let go (predictions arrive in timestamp order). A
    prediction newer than every true sample received so far waits (at most ``max_pending``
    samples) for its true sample. What these bounds push out is counted: ``true_evicted`` (true
    samples pushed out of a full buffer unpaired) and ``dropped`` (predictions that could not be
    paired because their true sample was let go, or that overflowed the waiting buffer). True
    samples must come in non-decreasing timestamp order (a replay's and LSL's); one that goes
    backwards is counted (``true_backwards``) and not scored. With these counters at zero the
    result equals pairing all samples at once (R² to rounding, about 1e-12). Packets are staged
    and paired in batches of about ``STAGE`` samples (one numpy pass per batch, not per packet);
    ``report()``, ``counters()`` and ``state()`` pair what is staged first. Fixed memory: about
    ``max_pending × (8 + 8 × axes + 8)`` bytes of buffers (2.1 MB for the default and 2 axes).

    NaN or infinite values: a true or predicted sample with a NaN/Inf in any axis is counted on
    arrival (``nan_true``, ``nan_pred``), excluded from R² (its partner too), and the first of each
    kind is logged with its timestamp (logger ``spikeloop.node.NAME``).

    Params:
        from_s, to_s: score only true samples whose timestamps lie in ``[first + from_s,
            first + to_s]`` (s, relative to the first true sample); default: everything.
        split: ``"train"``, ``"val"`` or ``"test"``: score only that part of the NeuroBench split of
            ``recording`` (by sample index of the true stream: the replay must start at the
            beginning of the recording, without looping). Excludes ``from_s``/``to_s``.
        recording: the replayed recording (needed with ``split``).
        neural, kinematics, markers, kinematics_kind: the stream mapping of ``recording`` (as the
            replay's; ``pipeline.recordings.mapping``), so ``split`` cuts the same segments.
        max_pending: bound of each waiting buffer, in samples (default 65,536: 262 s at 250 Hz).

    ``report()``: ``{"r2", "r2_x", "r2_y", "n", "unmatched", "nan_true", "nan_pred", "dropped"}``
    (R² per NeuroBench: 1 − SSE/(N·var) per axis with population variance, averaged over x and y;
    None where undefined: fewer than 2 pairs or constant true values).
    """

    kind = "velocity_scorer"
    inputs = ("pred", "true")
    STAGE = 4096
    """Packets plus samples staged before they are paired (bounds the staging memory)."""

    def __init__(self, from_s: float | None = None, to_s: float | None = None,
                 split: Literal["train", "val", "test"] | None = None, recording: str | None = None,
                 neural: str | None = None, kinematics: str | None = None, markers: str | None = None,
                 kinematics_kind: Literal["auto", "position", "velocity"] | None = None,
                 max_pending: int = 65536) -> None:
        if split is not None:
            if split not in ("train", "val", "test"):
                raise UserError(f"velocity_scorer: split must be 'train', 'val' or 'test', got {split!r}")
            if recording is None:
                raise UserError("velocity_scorer: split needs 'recording' (the replayed recording's path)")
            if from_s is not None or to_s is not None:
                raise UserError("velocity_scorer: give either split or from_s/to_s, not both")
        if int(max_pending) < 1:
            raise UserError(f"velocity_scorer: max_pending must be >= 1 sample, got {max_pending!r}")
        self.from_s, self.to_s, self.split, self.recording = from_s, to_s, split, recording
        from pipeline.recordings.mapping import StreamMapping

        self.mapping = StreamMapping.from_params(neural, kinematics, markers, kinematics_kind)
        self.max_pending = int(max_pending)
        self._slice: slice | None = None
        self._width = 0
        self._counts = {"unmatched": 0, "dropped": 0, "true_evicted": 0, "true_backwards": 0,
                        "nan_true": 0, "nan_pred": 0}
        self._logged: set[str] = set()

    # --- set-up ----------------------------------------------------------------------------------
    def open(self, inputs: dict[str, StreamInfo]) -> dict[str, StreamInfo]:
        pred = require(inputs, "pred")
        true = require(inputs, "true", channel_count=pred.channel_count)
        if true.channel_count < 1:
            raise UserError("velocity_scorer: the streams have no channels")
        if self.split is not None:
            from pipeline.recordings.reaching import load_reaching

            self._slice = load_reaching(self.recording, self.mapping).split[self.split]
        self._reset(true.channel_count)
        return super().open(inputs)

    def _reset(self, width: int) -> None:
        cap = self.max_pending
        self._width = width
        self._acc = R2Accumulator(width)
        # true samples waiting for their prediction: ring rows [_r0, _r1) of these arrays
        self._rt = np.zeros(cap)
        self._rv = np.zeros((cap, width))
        self._ri = np.zeros(cap, dtype=np.int64)
        self._r0 = self._r1 = 0
        self._n_true = 0                  # true samples received (index of the next one)
        self._t_first: float | None = None  # timestamp of the first true sample (s)
        self._t_newest = -np.inf          # newest true timestamp received (s)
        self._t_let_go = -np.inf          # newest true timestamp no longer held (s)
        self._t_paired = -np.inf          # newest prediction timestamp resolved (s)
        self._pending: deque[tuple[np.ndarray, np.ndarray]] = deque()  # predictions waiting
        self._n_pending = 0
        self._stage: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {"pred": [], "true": []}
        self._staged = 0

    @property
    def _log(self) -> logging.Logger:
        return logging.getLogger(f"spikeloop.node.{self.name or self.kind}")

    # --- streaming -------------------------------------------------------------------------------
    def process(self, port: str, packet: Packet) -> dict[str, Packet]:
        # Staged, then paired in batches: one numpy pass per ~STAGE samples, not per packet (a
        # replay sends one-sample packets). Packets are not modified once emitted (sources copy
        # reused buffers), so references are staged and the batch is copied when it is paired.
        n = packet.timestamps.shape[0]
        if n:
            self._stage[port].append((packet.data, packet.timestamps))
            self._staged += 1 + n
            if self._staged >= self.STAGE:
                self._flush_stage()
        return {}

    def _flush_stage(self) -> None:
        """Pair what is staged: every staged true sample first, then the predictions.

        Within each stream the order is kept. Taking the true samples of a batch before its
        predictions only ever finds more pairs, as pairing everything at once would.
        """
        self._staged = 0
        for port in ("true", "pred"):
            staged = self._stage[port]
            if not staged:
                continue
            values = np.concatenate([v for v, _ in staged]).astype(np.float64, copy=False)
            stamps = np.concatenate([t for _, t in staged]).astype(np.float64, copy=False)
            values = values.reshape(-1, self._width)
            staged.clear()
            self._count_nonfinite(port, values, stamps)
            if port == "pred":
                self._take_pred(stamps, values)
            else:
                self._take_true(stamps, values)

    def _count_nonfinite(self, port: str, values: np.ndarray, stamps: np.ndarray) -> None:
        bad = ~np.isfinite(values).all(axis=1)
        nbad = int(bad.sum())
        if not nbad:
            return
        key = "nan_pred" if port == "pred" else "nan_true"
        self._counts[key] += nbad
        if key not in self._logged:
            self._logged.add(key)
            t = float(stamps[int(np.argmax(bad))])
            self._log.warning("NaN/Inf in %s velocity at t=%.6f s (LSL clock): such samples are counted "
                              "(%s) and excluded from R2", "decoded" if port == "pred" else "true", t, key)

    def _take_true(self, ts: np.ndarray, y: np.ndarray) -> None:
        n = ts.shape[0]
        idx = self._n_true + np.arange(n, dtype=np.int64)
        self._n_true += n
        if self._t_first is None:
            self._t_first = float(ts[0])
        before = np.maximum.accumulate(np.concatenate([[self._t_newest], ts]))[:-1]
        ok = ts >= before
        if not ok.all():
            nback = int((~ok).sum())
            self._counts["true_backwards"] += nback
            if "true_backwards" not in self._logged:
                self._logged.add("true_backwards")
                self._log.warning("true velocity timestamp went backwards at t=%.6f s (LSL clock): such "
                                  "samples are counted (true_backwards) and not scored", float(ts[~ok][0]))
            ts, y, idx = ts[ok], y[ok], idx[ok]
        if ts.size:
            self._t_newest = float(ts[-1])
            self._ring_append(ts, y, idx)
        self._resolve_pending()

    def _ring_append(self, ts: np.ndarray, y: np.ndarray, idx: np.ndarray) -> None:
        cap, k = self.max_pending, ts.shape[0]
        if k > cap:  # more than the buffer holds: the oldest new rows are pushed out at once
            self._evict_rows(ts[: k - cap])
            ts, y, idx, k = ts[k - cap:], y[k - cap:], idx[k - cap:], cap
        live = self._r1 - self._r0
        if live + k > cap:
            drop = live + k - cap
            self._evict_rows(self._rt[self._r0:self._r0 + drop])
            self._r0 += drop
            live -= drop
        if self._r1 + k > cap:  # compact: move the live rows to the front
            sl = slice(self._r0, self._r1)
            self._rt[:live], self._rv[:live], self._ri[:live] = self._rt[sl], self._rv[sl], self._ri[sl]
            self._r0, self._r1 = 0, live
        sl = slice(self._r1, self._r1 + k)
        self._rt[sl], self._rv[sl], self._ri[sl] = ts, y, idx
        self._r1 += k

    def _evict_rows(self, ts: np.ndarray) -> None:
        if ts.size:
            self._counts["true_evicted"] += int(ts.size)
            self._t_let_go = max(self._t_let_go, float(ts.max()))
            if "true_evicted" not in self._logged:
                self._logged.add("true_evicted")
                self._log.warning("true samples waiting for predictions exceed max_pending=%d at t=%.6f s "
                                  "(LSL clock): the oldest are let go (counted: true_evicted)",
                                  self.max_pending, float(ts[-1]))

    def _take_pred(self, ts: np.ndarray, p: np.ndarray) -> None:
        if self._n_pending:  # keep arrival order behind predictions already waiting
            self._wait(ts, p)
            self._resolve_pending()
            return
        ready = ts <= self._t_newest
        if ready.all():
            self._resolve(ts, p)
        else:
            self._resolve(ts[ready], p[ready])
            self._wait(ts[~ready], p[~ready])

    def _wait(self, ts: np.ndarray, p: np.ndarray) -> None:
        if ts.size == 0:
            return
        self._pending.append((ts, p))
        self._n_pending += ts.size
        over = self._n_pending - self.max_pending
        while over > 0:
            t0, p0 = self._pending[0]
            k = min(over, t0.size)
            if k == t0.size:
                self._pending.popleft()
            else:
                self._pending[0] = (t0[k:], p0[k:])
            self._n_pending -= k
            over -= k
            self._counts["dropped"] += k
            if "pending_overflow" not in self._logged:
                self._logged.add("pending_overflow")
                self._log.warning("predictions waiting for true samples exceed max_pending=%d at t=%.6f s "
                                  "(LSL clock): the oldest are dropped (counted: dropped)",
                                  self.max_pending, float(t0[0]))

    def _resolve_pending(self) -> None:
        while self._pending:
            ts, p = self._pending[0]
            ready = ts <= self._t_newest
            if not ready.any():
                return
            if ready.all():
                self._pending.popleft()
                self._n_pending -= ts.size
                self._resolve(ts, p)
                continue
            # predictions are in timestamp order in practice; handle any order all the same
            self._pending[0] = (ts[~ready], p[~ready])
            self._n_pending -= int(ready.sum())
            self._resolve(ts[ready], p[ready])
            return

    def _resolve(self, tp: np.ndarray, p: np.ndarray) -> None:
        """Pair predictions (all with a timestamp <= the newest true one) and score the pairs."""
        if tp.size == 0:
            return
        rt = self._rt[self._r0:self._r1]
        pos = np.searchsorted(rt, tp, side="left")
        inb = pos < rt.size
        found = np.zeros(tp.size, dtype=bool)
        found[inb] = rt[pos[inb]] == tp[inb]
        if not found.all():
            missing = tp[~found]
            let_go = missing <= self._t_let_go
            self._counts["dropped"] += int(let_go.sum())
            self._counts["unmatched"] += int((~let_go).sum())
        if found.any():
            rows = self._r0 + pos[found]
            y, pf = self._rv[rows], p[found]
            keep = np.ones(rows.size, dtype=bool)
            if self._slice is not None:
                idx = self._ri[rows]
                keep &= (idx >= self._slice.start) & (idx < self._slice.stop)
            elif self.from_s is not None or self.to_s is not None:
                rel = self._rt[rows] - self._t_first
                if self.from_s is not None:
                    keep &= rel >= self.from_s - 1e-9
                if self.to_s is not None:
                    keep &= rel <= self.to_s + 1e-9
            keep &= np.isfinite(y).all(axis=1) & np.isfinite(pf).all(axis=1)
            self._acc.add(y[keep], pf[keep])
        # true samples older than the newest paired prediction will not be asked for again
        self._t_paired = max(self._t_paired, float(tp.max()))
        cut = int(np.searchsorted(rt, self._t_paired, side="left"))
        if cut:
            self._t_let_go = max(self._t_let_go, float(rt[cut - 1]))
            self._r0 += cut

    # --- results ---------------------------------------------------------------------------------
    def counters(self) -> dict[str, int]:
        if not hasattr(self, "input_infos"):
            return {}
        self._flush_stage()
        out = dict(self._counts)
        out["unmatched"] += self._n_pending  # waiting predictions have no true sample (yet)
        return out

    def r2_per_axis(self) -> np.ndarray:
        """Unrounded R² per axis of the pairs scored so far, ``(axes,)`` (NaN where undefined)."""
        self._flush_stage()
        return self._acc.r2_per_axis()

    def report(self) -> dict[str, Any]:
        if not hasattr(self, "input_infos"):
            return {}
        counts = self.counters()  # pairs what is staged
        extra = {"unmatched": counts["unmatched"], "nan_true": counts["nan_true"], "nan_pred": counts["nan_pred"],
                 "dropped": counts["dropped"]}
        n = self._acc.n
        if n < 2:
            return {"r2": None, "n": n, **extra}
        per_axis = self._acc.r2_per_axis()
        labels = self.input_infos["true"].channel_labels or tuple(str(k) for k in range(self._width))
        out: dict[str, Any] = {"r2": _rounded(np.mean(per_axis))}
        for label, v in zip(labels, per_axis):
            out[f"r2_{label[-1] if label in ('vx', 'vy') else label}"] = _rounded(v)
        out["n"] = n
        out.update(extra)
        return out

    # --- checkpoints -------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        self._flush_stage()
        sl = slice(self._r0, self._r1)
        pend_t = np.concatenate([t for t, _ in self._pending]) if self._pending else np.zeros(0)
        pend_p = np.concatenate([p for _, p in self._pending]) if self._pending else np.zeros((0, self._width))
        return {
            "acc": self._acc.state(), "counts": dict(self._counts),
            "ring_t": self._rt[sl].copy(), "ring_v": self._rv[sl].copy(), "ring_i": self._ri[sl].copy(),
            "n_true": self._n_true, "t_first": self._t_first, "t_newest": self._t_newest,
            "t_let_go": self._t_let_go, "t_paired": self._t_paired, "pending_t": pend_t, "pending_p": pend_p,
        }

    def restore(self, state: dict[str, Any]) -> None:
        self._reset(self._width)
        self._acc.restore(state["acc"])
        self._counts.update(state["counts"])
        k = int(np.asarray(state["ring_t"]).shape[0])
        self._rt[:k], self._rv[:k], self._ri[:k] = state["ring_t"], state["ring_v"], state["ring_i"]
        self._r0, self._r1 = 0, k
        self._n_true, self._t_first = int(state["n_true"]), state["t_first"]
        self._t_newest, self._t_let_go, self._t_paired = state["t_newest"], state["t_let_go"], state["t_paired"]
        pt = np.asarray(state["pending_t"], dtype=np.float64)
        if pt.size:
            self._pending.append((pt, np.asarray(state["pending_p"], dtype=np.float64)))
        self._n_pending = int(pt.size)


def _rounded(value: Any) -> float | None:
    v = float(value)
    return round(v, 6) if np.isfinite(v) else None
