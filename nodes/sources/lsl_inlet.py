"""LSL inlet source (kind ``lsl_inlet``): a live LSL stream enters the graph.

The stream is resolved by ``name``, ``type`` and/or ``source_id`` when the graph opens (within
``resolve_timeout_s``; on failure the error names the query and lists the visible streams). Its
description (channel count, rate, dtype, channel labels and units from the LSL ``desc``) becomes
the output StreamInfo.

Reading: each ``read()`` waits at most ``max_block_s`` for the first sample, then takes whatever
else is already buffered (up to ``max_chunk`` samples) without waiting, so a runner stays
responsive and a chain fused behind the inlet sees every sample as soon as it arrives.

Waiting (``wait``, see :mod:`nodes.sources.lsl_wait`): ``auto`` (default) predicts when the next
sample of a regular stream will arrive, blocks in liblsl until just before it and polls briefly
around it: the busy-poll's latency at a small fraction of a core. ``block`` always waits in liblsl
(no CPU while idle, about 0.2 ms more latency); ``spin`` busy-polls for up to ``spin_s`` (default
all of ``max_block_s``) before blocking: one core busy per inlet. Irregular streams always block. Samples are
pulled into a preallocated buffer and **copied** out (pylsl may reuse buffers; a packet must own
its data).

Timestamps (seconds on this machine's LSL clock):

* ``clock_sync: true`` (default) adds liblsl's clock offset estimate to every timestamp
  (``proc_clocksync``), so streams from other machines line up with ``local_clock()``. On one
  machine the estimate is a few tens of µs of noise; turn it off to keep the sender's stamps
  bit-exact.
* ``dejitter: true`` smooths timestamps of regular streams with liblsl's online regression
  (``proc_dejitter``); off by default because it changes the sender's stamps.

Losses and reconnections (nothing silent; see ``counters()``):

* ``recover=True`` inlets reconnect by themselves when the outlet goes away and comes back (same
  ``source_id``, or same name/type/host). When data resumes after more than ``stall_s`` seconds of
  silence the node re-resolves the stream: a new uid means the outlet was restarted
  (``reconnections``), otherwise the sender only paused (``stalls``).
* Regular streams: a jump between consecutive timestamps larger than ``gap_periods`` sample
  periods is a discontinuity (``discontinuities``); ``round(jump × rate) − 1`` samples are
  estimated lost (``lost_samples_est``). Timestamps that go backwards are passed on and counted
  (``backwards_timestamps``).
* Irregular (event) streams have no nominal period: only reconnections and stalls are counted.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np
import pylsl

from pipeline.clock import local_clock
from pipeline.errors import UserError
from pipeline.lsl import StreamQuery, from_lsl_info, resolve_one
from pipeline.node import Outputs, Source
from pipeline.packet import Packet, StreamInfo
from nodes.sources.lsl_wait import WAIT_MODES, InletWait, WaitMode


class LslInlet(Source):
    """Receive one LSL stream (regular or irregular) as packets of shape ``(samples, channels)``.

    Params:
        name, type, source_id: what to resolve (at least one; all given must match).
        resolve_timeout_s: seconds to wait for the stream when the graph opens (default 5).
        clock_sync: add liblsl's clock-offset estimate to timestamps (default true).
        dejitter: smooth timestamps of regular streams (default false).
        max_block_s: longest wait for data in one ``read()``, seconds (default 0.005).
        max_chunk: most samples per packet (default 1024).
        buffer_s: seconds of data liblsl buffers while the graph is busy (default 30).
        stall_s: silence (s) after which resumed data triggers a reconnection check (default 0.5).
        gap_periods: timestamp jump, in sample periods, counted as a discontinuity (default 2.5).
        wait: ``auto`` (default), ``block`` or ``spin`` (see above).
        spin_s: ``spin`` mode: seconds to busy-poll before blocking in each read (default: all of
            ``max_block_s``). Setting ``spin_s > 0`` alone selects ``spin`` (older configs).

    Output port ``out``: the stream, dtype as sent, timestamps (samples,) in seconds on the LSL clock.
    """

    kind = "lsl_inlet"
    outputs = ("out",)

    def __init__(self, name: str | None = None, type: str | None = None, source_id: str | None = None,
                 resolve_timeout_s: float = 5.0, clock_sync: bool = True, dejitter: bool = False,
                 max_block_s: float = 0.005, max_chunk: int = 1024, buffer_s: float = 30.0,
                 stall_s: float = 0.5, gap_periods: float = 2.5, spin_s: float = 0.0,
                 wait: WaitMode = "auto") -> None:
        self.query = StreamQuery(name=name, type=type, source_id=source_id)
        if resolve_timeout_s <= 0 or max_block_s < 0 or max_chunk < 1 or buffer_s <= 0 or stall_s <= 0:
            raise ValueError("lsl_inlet: resolve_timeout_s, buffer_s, stall_s must be > 0, "
                             "max_block_s >= 0 and max_chunk >= 1")
        if spin_s < 0:
            raise ValueError(f"lsl_inlet: spin_s must be >= 0 s, got {spin_s}")
        if wait not in WAIT_MODES:
            raise ValueError(f"lsl_inlet: wait must be one of {', '.join(WAIT_MODES)}, got {wait!r}")
        self.spin_s = float(spin_s)
        self.wait = "spin" if (spin_s > 0 and wait == "auto") else wait
        self._waiter: InletWait | None = None
        if gap_periods <= 1:
            raise ValueError(f"lsl_inlet: gap_periods must be > 1 sample period, got {gap_periods}")
        self.resolve_timeout_s = float(resolve_timeout_s)
        self.clock_sync, self.dejitter = bool(clock_sync), bool(dejitter)
        self.max_block_s, self.max_chunk = float(max_block_s), int(max_chunk)
        self.buffer_s, self.stall_s, self.gap_periods = float(buffer_s), float(stall_s), float(gap_periods)
        self._inlet: pylsl.StreamInlet | None = None
        self._info: StreamInfo | None = None
        self._uid = ""
        self._buf: np.ndarray | None = None
        self._last_ts: float | None = None
        self._last_data_wall: float | None = None
        self._counts = {"reconnections": 0, "stalls": 0, "discontinuities": 0,
                        "lost_samples_est": 0, "backwards_timestamps": 0}

    # --- lifecycle -------------------------------------------------------------------------------
    def open(self, inputs: dict[str, StreamInfo]) -> dict[str, StreamInfo]:
        found = resolve_one(self.query, self.resolve_timeout_s)
        flags = (pylsl.proc_clocksync if self.clock_sync else 0) | (pylsl.proc_dejitter if self.dejitter else 0)
        rate = found.nominal_srate()
        # liblsl's max_buflen is in seconds for regular streams, in hundreds of samples otherwise
        buflen = max(1, int(np.ceil(self.buffer_s))) if rate > 0 else max(1, int(np.ceil(self.buffer_s * 10)))
        self._inlet = pylsl.StreamInlet(found, max_buflen=buflen, recover=True, processing_flags=flags)
        try:
            full = self._inlet.info(timeout=self.resolve_timeout_s)
            self._inlet.open_stream(timeout=self.resolve_timeout_s)
        except pylsl.TimeoutError:
            raise UserError(f"LSL stream with {self.query} was found but did not answer within "
                            f"{self.resolve_timeout_s:g} s") from None
        self._info = from_lsl_info(full)
        self._uid = full.uid()
        self._buf = np.empty((self.max_chunk, self._info.channel_count), dtype=self._info.dtype)
        self._waiter = InletWait(self.wait, self.max_block_s, self._info.nominal_rate,
                                 spin_s=self.spin_s if self.spin_s > 0 else None)
        return {"out": self._info}

    def read(self) -> Outputs | None:
        inlet, buf = self._inlet, self._buf
        if inlet is None or buf is None or self._waiter is None:
            raise RuntimeError(f"lsl_inlet {self.name!r}: read() before open()")
        data, stamps, n = self._waiter.pull(inlet, buf, self.max_chunk, local_clock)
        if n == 0:
            return {}
        t_enter = local_clock()
        data = np.array(data[:n], copy=True)  # the buffer is reused by the next pull
        stamps = np.array(stamps, dtype=np.float64, copy=True)
        self._check_continuity(stamps)
        return {"out": Packet(data, stamps, t_enter)}

    def close(self) -> None:
        if self._inlet is not None:
            try:
                self._inlet.close_stream()
            except Exception:  # noqa: BLE001 - closing a lost stream may fail; nothing to do then
                pass
            self._inlet = None

    # --- losses ----------------------------------------------------------------------------------
    def _check_continuity(self, stamps: np.ndarray) -> None:
        now = time.monotonic()
        stalled = self._last_data_wall is not None and now - self._last_data_wall > self.stall_s
        self._last_data_wall = now
        if stalled:
            self._check_reconnection()
        info = self._info
        if info is not None and not info.irregular:
            prev = self._last_ts
            steps = np.diff(stamps) if prev is None else np.diff(stamps, prepend=prev)
            period = 1.0 / info.nominal_rate
            jumps = steps[steps > self.gap_periods * period]
            if jumps.size:
                self._counts["discontinuities"] += int(jumps.size)
                self._counts["lost_samples_est"] += int(np.sum(np.maximum(np.round(jumps / period) - 1, 0)))
            self._counts["backwards_timestamps"] += int(np.sum(steps < 0))
        elif stamps.size > 1 or self._last_ts is not None:
            prev = stamps[0] if self._last_ts is None else self._last_ts
            self._counts["backwards_timestamps"] += int(np.sum(np.diff(stamps, prepend=prev) < 0))
        self._last_ts = float(stamps[-1])

    def _check_reconnection(self) -> None:
        """After a silence: a different uid behind the query means the outlet was restarted."""
        try:
            current = pylsl.resolve_bypred(self.query.predicate(), 1, min(0.5, self.resolve_timeout_s))
        except Exception:  # noqa: BLE001 - a failed check must not stop a live session
            current = []
        uids = {s.uid() for s in current if self.query.matches(s)}
        if uids and self._uid not in uids:
            self._counts["reconnections"] += 1
            self._uid = sorted(uids)[0]
        else:
            self._counts["stalls"] += 1

    def time_correction(self, timeout_s: float = 0.2) -> float:
        """Seconds to add to the sender's timestamps to get this machine's clock (liblsl's estimate)."""
        if self._inlet is None:
            raise RuntimeError(f"lsl_inlet {self.name!r}: time_correction() before open()")
        return float(self._inlet.time_correction(timeout=timeout_s))

    def counters(self) -> dict[str, int]:
        return dict(self._counts)

    def report(self) -> dict[str, Any]:
        if self._info is None:
            return {}
        return {"stream": self._info.name, "source_id": self._info.source_id,
                "host": self._info.metadata.get("lsl_hostname", "")}

    def state(self) -> dict[str, Any]:
        return {"last_ts": self._last_ts, "counts": dict(self._counts)}

    def restore(self, state: dict[str, Any]) -> None:
        self._last_ts = state.get("last_ts")
        self._counts.update(state.get("counts", {}))
