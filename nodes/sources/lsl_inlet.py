"""LSL inlet source (kind ``lsl_inlet``): a live LSL stream enters the graph.

The stream is resolved by ``name``, ``type`` and/or ``source_id`` when the graph opens (within
``resolve_timeout_s``; on failure the error names the query and lists the visible streams). Its
description (channel count, rate, dtype, channel labels and units from the LSL ``desc``) becomes
the output StreamInfo.

Reading: each ``read()`` waits at most ``max_block_s`` for the first sample, then takes whatever
else is already buffered (up to ``max_chunk`` samples) without waiting, so a runner stays
responsive and a chain fused behind the inlet sees every sample as soon as it arrives.

Waiting (``wait``, see :mod:`nodes.sources.lsl_wait`): ``auto`` (default) predicts when the next
sample of a regular stream will arrive (from the sender's push schedule, learnt from the stamps:
:mod:`nodes.sources.lsl_schedule`), blocks in liblsl until just before it and polls briefly
around it: the busy-poll's latency at a small fraction of a core. ``block`` always waits in liblsl
(no CPU while idle, about 0.2 ms more latency); ``spin`` busy-polls for up to ``spin_s`` (default
all of ``max_block_s``) before blocking: one core busy per inlet. Irregular streams always block.
Numeric samples are pulled with one liblsl call into buffers made once
(:mod:`nodes.sources.lsl_pull`; no allocation per pull) and **copied** out (the next pull reuses
the buffers; a packet must own its data).

Timestamps (seconds on this machine's LSL clock):

* ``clock_sync: true`` (default) adds liblsl's clock offset estimate to every timestamp
  (``proc_clocksync``), so streams from other machines line up with ``local_clock()``. On one
  machine the estimate is a few tens of µs of noise; turn it off to keep the sender's stamps
  bit-exact.
* ``dejitter: true`` smooths timestamps of regular streams with liblsl's online regression
  (``proc_dejitter``); off by default because it changes the sender's stamps.

Faults (nothing silent; see ``counters()`` and the ``spikeloop.node.<name>`` log):

* **Ambiguous streams**: when two streams match the query (same name, say, from a leftover
  ``spikeloop play`` beside the amplifier), opening fails with an error listing each match's name,
  source_id and host, unless ``source_id`` is given or ``pick: newest`` takes the newest
  (``created_at``). Opening waits ``ambiguity_wait_s`` after the first match to see a second one.
* **Stalls**: silence longer than ``stall_periods`` sample periods (at least 0.2 s) on a regular
  stream, or ``irregular_stall_s`` seconds on an irregular one (off by default: markers may be
  silent for minutes), is a stall: logged at INFO with the time *when it begins* and counted
  (``stalls``), logged again every 10 s while it lasts, and its end logged with its length.
  ``stall_timeout_s`` (default None: wait for ever) stops the run with a one-line error naming
  the stream once a silence lasts that long. ``recover=True`` inlets reconnect by themselves when
  the outlet comes back; a new uid behind the query when data resumes counts a ``reconnections``.
* **Losses, backwards time, wrong rate** (:mod:`nodes.sources.lsl_health`): losses are estimated
  from the lag of the timestamps behind a gap-free schedule, so jitter, bursts after a delayed
  sender and backwards steps count nothing (``lost_samples_est``, ``discontinuities``); each step
  back in time counts in ``ts_backwards``; an effective rate more than 5 % off the nominal over a
  5 s window counts in ``rate_off_windows`` and is warned about once.
* String (marker) streams arrive as object arrays of ``str``.
"""
from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import pylsl

from nodes.sources.lsl_health import TimestampHealth
from pipeline.clock import local_clock
from pipeline.errors import UserError
from pipeline.lsl import PICKS, StreamQuery, describe, from_lsl_info, resolve_one, warm_up
from pipeline.node import Outputs, Source
from pipeline.packet import Packet, StreamInfo
from nodes.sources.lsl_pull import ChunkPuller, make_puller
from nodes.sources.lsl_wait import WAIT_MODES, InletWait, WaitMode

MIN_STALL_S = 0.2
"""A regular stream's stall threshold is never shorter than this (s): senders push in chunks."""
PINNED_RESOLVE_S = 1.0
"""Seconds a restarted inlet looks for the stream it had (by uid) before resolving by its query."""
STALL_LOG_EVERY_S = 10.0
"""While a stall lasts it is logged again this often (s)."""
RECONNECT_CHECK_S = 2.0
"""Longest wait (s) for the stream's uid when data resumes after a stall (see ``_check_reconnection``)."""


class LslInlet(Source):
    """Receive one LSL stream (regular, irregular or string markers) as packets ``(samples, channels)``.

    Params:
        name, type, source_id: what to resolve (at least one; all given must match).
        pick: ``only`` (default: several matches are an error) or ``newest`` (newest ``created_at``).
        resolve_timeout_s: seconds to wait for the stream when the graph opens (default 5).
        ambiguity_wait_s: seconds to keep looking for a second match after the first (default
            1; liblsl answers come in waves about 0.5 s apart; not used when ``source_id`` is given).
        clock_sync: add liblsl's clock-offset estimate to timestamps (default true).
        dejitter: smooth timestamps of regular streams (default false).
        max_block_s: longest wait for data in one ``read()``, seconds (default 0.005).
        max_chunk: most samples per packet (default 1024).
        buffer_s: seconds of data liblsl buffers while the graph is busy (default 30).
        stall_periods: silence, in sample periods, that is a stall on a regular stream (default
            50, at least 0.2 s).
        irregular_stall_s: silence (s) that is a stall on an irregular stream (default None: none).
        stall_timeout_s: silence (s) after which the run stops with an error (default None: never).
        wait: ``auto`` (default), ``block`` or ``spin`` (see above).
        spin_s: ``spin`` mode: seconds to busy-poll before blocking in each read (default: all of
            ``max_block_s``). Setting ``spin_s > 0`` alone selects ``spin`` (older configs).

    Output port ``out``: the stream, dtype as sent (``object`` for strings), timestamps (samples,)
    in seconds on the LSL clock.
    """

    kind = "lsl_inlet"
    outputs = ("out",)

    def __init__(self, name: str | None = None, type: str | None = None, source_id: str | None = None,
                 pick: str = "only", resolve_timeout_s: float = 5.0, ambiguity_wait_s: float = 1.0,
                 clock_sync: bool = True, dejitter: bool = False, max_block_s: float = 0.005,
                 max_chunk: int = 1024, buffer_s: float = 30.0, stall_periods: float = 50.0,
                 irregular_stall_s: float | None = None, stall_timeout_s: float | None = None,
                 spin_s: float = 0.0, wait: WaitMode = "auto") -> None:
        self.query = StreamQuery(name=name, type=type, source_id=source_id)
        if pick not in PICKS:
            raise UserError(f"lsl_inlet: pick must be one of {', '.join(PICKS)}, got {pick!r}")
        if resolve_timeout_s <= 0 or max_block_s < 0 or max_chunk < 1 or buffer_s <= 0 or ambiguity_wait_s < 0:
            raise UserError("lsl_inlet: resolve_timeout_s and buffer_s must be > 0, max_block_s and "
                            "ambiguity_wait_s >= 0, max_chunk >= 1")
        if spin_s < 0:
            raise UserError(f"lsl_inlet: spin_s must be >= 0 s, got {spin_s}")
        if stall_periods <= 1:
            raise UserError(f"lsl_inlet: stall_periods must be > 1 sample period, got {stall_periods}")
        for what, v in (("irregular_stall_s", irregular_stall_s), ("stall_timeout_s", stall_timeout_s)):
            if v is not None and not v > 0:
                raise UserError(f"lsl_inlet: {what} must be > 0 s or null, got {v}")
        self.pick, self.ambiguity_wait_s = pick, float(ambiguity_wait_s)
        if wait not in WAIT_MODES:
            raise UserError(f"lsl_inlet: wait must be one of {', '.join(WAIT_MODES)}, got {wait!r}")
        self.spin_s = float(spin_s)
        self.wait = "spin" if (spin_s > 0 and wait == "auto") else wait
        self._waiter: InletWait | None = None
        self.resolve_timeout_s = float(resolve_timeout_s)
        self.clock_sync, self.dejitter = bool(clock_sync), bool(dejitter)
        self.max_block_s, self.max_chunk = float(max_block_s), int(max_chunk)
        self.buffer_s, self.stall_periods = float(buffer_s), float(stall_periods)
        self.irregular_stall_s, self.stall_timeout_s = irregular_stall_s, stall_timeout_s
        self._inlet: pylsl.StreamInlet | None = None
        self._info: StreamInfo | None = None
        self._strings = False
        self._uid = ""
        self._pinned_uid: str | None = None
        self._where = str(self.query)
        self._buf: np.ndarray | None = None
        self._puller: ChunkPuller | None = None
        self._health: TimestampHealth | None = None
        self._stall_after: float | None = None
        self._last_data_wall = 0.0
        self._stall_since: float | None = None
        self._stall_logged = 0.0
        self._rate_warned = False
        self._counts = {"reconnections": 0, "stalls": 0, "stalled_ms": 0, "busy_switches": 0}
        self._busy_seen = 0  # the wait's busy_backoffs when last counted
        self._unsettled: tuple[np.ndarray, float] | None = None  # the last packet's stamps and arrival (monotonic s)

    @property
    def log(self) -> logging.Logger:
        return logging.getLogger(f"spikeloop.node.{self.name or self.kind}")

    # --- lifecycle -------------------------------------------------------------------------------
    @classmethod
    def prepare_process(cls) -> None:
        """Start liblsl in this process (:func:`pipeline.lsl.warm_up`)."""
        warm_up()

    def reopen_from(self, state: dict[str, Any]) -> None:
        """After a restart: reopen the stream this inlet had (its uid, from the checkpoint)."""
        uid = state.get("uid")
        self._pinned_uid = uid if isinstance(uid, str) and uid and "'" not in uid else None

    def _resolve(self) -> pylsl.StreamInfo:
        """The stream to open: after a restart the one the inlet had, found by its uid (unique, so
        without the ambiguity wait of a first open, about 1 s); if it is gone (its sender was
        restarted too), resolved again by the query."""
        uid, self._pinned_uid = self._pinned_uid, None
        if uid:
            found = [s for s in pylsl.resolve_bypred(f"uid='{uid}'", 1, min(PINNED_RESOLVE_S, self.resolve_timeout_s))
                     if s.uid() == uid and self.query.matches(s)]
            if found:
                return found[0]
            self.log.info("%s: the stream it had (uid %s) is gone; resolving again", self._where, uid)
        return resolve_one(self.query, self.resolve_timeout_s, pick=self.pick,
                           ambiguity_wait_s=0.0 if self.query.source_id else self.ambiguity_wait_s)

    def open(self, inputs: dict[str, StreamInfo]) -> dict[str, StreamInfo]:
        found = self._resolve()
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
        self._where = describe(full)
        self._strings = self._info.dtype == "object"
        if not self._strings:
            self._buf = np.empty((self.max_chunk, self._info.channel_count), dtype=self._info.dtype)
            self._puller = make_puller(self._inlet, self._info.channel_count, self._info.dtype, self.max_chunk)
        self._health = TimestampHealth(self._info.nominal_rate)
        if self._info.irregular:
            self._stall_after = self.irregular_stall_s
        else:
            self._stall_after = max(MIN_STALL_S, self.stall_periods / self._info.nominal_rate)
        self._last_data_wall = time.monotonic()
        self._waiter = InletWait(self.wait, self.max_block_s, self._info.nominal_rate,
                                 spin_s=self.spin_s if self.spin_s > 0 else None)
        return {"out": self._info}

    def read(self) -> Outputs | None:
        inlet, waiter = self._inlet, self._waiter
        if inlet is None or waiter is None:
            raise RuntimeError(f"lsl_inlet {self.name!r}: read() before open()")
        if self._unsettled is not None:
            self._settle()
        if waiter.busy_backoffs != self._busy_seen:
            self._note_busy(waiter)
        data, stamps, n = waiter.pull(self._pull, local_clock, self.prewarm)
        if n == 0:
            self._check_silence()
            return {}
        t_enter = local_clock()
        if self._strings:
            data = np.array(data, dtype=object).reshape(n, -1)
        else:
            data = np.array(data[:n], copy=True)  # the buffer is reused by the next pull
        stamps = np.array(stamps, dtype=np.float64, copy=True)
        # the stream's health (losses, rate, stalls) is accounted at the next read, once this packet
        # has gone through the graph: with cold caches it costs tens of µs (counters() settles it too)
        self._unsettled = (stamps, time.monotonic())
        return {"out": Packet(data, stamps, t_enter)}

    def _note_busy(self, waiter: InletWait) -> None:
        """The ``auto`` wait found the machine busy (its yields came back late) and blocks for a while."""
        self._counts["busy_switches"] += waiter.busy_backoffs - self._busy_seen
        self._busy_seen = waiter.busy_backoffs
        self.log.info("%s: the machine is busy at %s (another task held the core between polls): wait 'auto' "
                      "blocks for %.0f s, then polls again (switch #%d; counted in busy_switches)", self._where,
                      _clock_text(), waiter.busy_for_s, self._counts["busy_switches"])

    def _settle(self) -> None:
        """Account for the packet read last (see :meth:`read`)."""
        unsettled, self._unsettled = self._unsettled, None
        if unsettled is not None:
            self._on_data(*unsettled)

    def _pull(self, timeout: float) -> tuple[Any, Any]:
        puller = self._puller
        if puller is not None:  # one liblsl call into buffers made once (nodes.sources.lsl_pull)
            return puller.pull(timeout)
        inlet = self._inlet
        assert inlet is not None
        if self._strings:
            data, stamps = inlet.pull_chunk(timeout=timeout, max_samples=self.max_chunk)
            return data, stamps
        if timeout > 0:
            return inlet.pull_chunk(timeout=timeout, max_samples=self.max_chunk, dest_obj=self._buf,
                                    min_samples=1, as_numpy=True)
        return inlet.pull_chunk(timeout=0.0, max_samples=self.max_chunk, dest_obj=self._buf, as_numpy=True)

    def close(self) -> None:
        self._settle()
        if self._health is not None:
            self._health.flush()
        if self._stall_since is not None:
            self._end_stall(time.monotonic(), resumed=False)
        if self._inlet is not None:
            try:
                self._inlet.close_stream()
            except Exception:  # noqa: BLE001 - closing a lost stream may fail; nothing to do then
                pass
            self._inlet = None
            self._puller = None

    # --- faults ----------------------------------------------------------------------------------
    def _check_silence(self) -> None:
        """No data in this read: start, log or end-with-an-error a stall."""
        now = time.monotonic()
        silent = now - self._last_data_wall
        if self._stall_since is None:
            if self._stall_after is not None and silent > self._stall_after:
                self._stall_since = self._stall_logged = now
                self._counts["stalls"] += 1
                if self._health is not None:
                    self._health.reset_rate()
                self.log.info("%s: stall #%d began at %s: no data for %.2f s (threshold %.2f s)",
                              self._where, self._counts["stalls"], _clock_text(), silent, self._stall_after)
        elif now - self._stall_logged >= STALL_LOG_EVERY_S:
            self._stall_logged = now
            self.log.info("%s: still no data at %s, %.0f s since the last sample", self._where, _clock_text(),
                          silent)
        if self.stall_timeout_s is not None and silent >= self.stall_timeout_s:
            raise UserError(f"lsl_inlet '{self.name or self.kind}': stream {self._where} sent nothing for "
                            f"{silent:.1f} s (stall_timeout_s {self.stall_timeout_s:g}); stopping")

    def _on_data(self, stamps: np.ndarray, now: float) -> None:
        """A packet with these timestamps (s) came at ``now`` (``time.monotonic()`` s): end a stall,
        update the stream's health."""
        if self._stall_since is not None:
            self._end_stall(now, resumed=True)
        self._last_data_wall = now
        health = self._health
        if health is None:
            return
        report = health.update(stamps, now)
        if report is not None and not self._rate_warned:
            self._rate_warned = True
            self.log.warning(
                "%s: effective rate %.1f Hz by timestamps, %.1f Hz by arrivals over %.1f s at %s; the "
                "stream declares %g Hz (more than 5 %% off; counted in rate_off_windows, warned once)",
                self._where, report.from_timestamps_hz, report.from_arrivals_hz, report.span_s, _clock_text(),
                report.nominal_hz)

    def _end_stall(self, now: float, *, resumed: bool) -> None:
        assert self._stall_since is not None
        length = now - self._last_data_wall
        self._counts["stalled_ms"] += int(round((now - self._stall_since) * 1000))
        self._stall_since = None
        if self._health is not None:
            self._health.reset_rate()
        if not resumed:
            self.log.info("%s: stream closed during a stall, %.1f s after its last sample", self._where, length)
            return
        reconnected = self._check_reconnection()
        self.log.info("%s: data again at %s after %.2f s of silence%s", self._where, _clock_text(), length,
                      " (the outlet was restarted: new uid)" if reconnected else "")

    def _check_reconnection(self) -> bool:
        """After a silence: a different uid behind the query means the outlet was restarted.

        The resolve returns as soon as the stream answers (milliseconds on a quiet machine); it waits
        its whole bound (:data:`RECONNECT_CHECK_S`) only if the stream is gone again. A bound of 0.5 s
        missed the restarted outlet on a loaded machine (a fresh-clone test run at load ~7), and the
        reconnection went uncounted."""
        try:
            current = pylsl.resolve_bypred(self.query.predicate(), 1, min(RECONNECT_CHECK_S, self.resolve_timeout_s))
        except Exception:  # noqa: BLE001 - a failed check must not stop a live session
            current = []
        uids = {s.uid() for s in current if self.query.matches(s)}
        if uids and self._uid not in uids:
            self._counts["reconnections"] += 1
            self._uid = sorted(uids)[0]
            return True
        return False

    def time_correction(self, timeout_s: float = 2.0) -> float:
        """Seconds to add to the sender's timestamps to get this machine's clock (liblsl's estimate).

        The first call measures for about half a second; call it from a thread that may block.
        """
        if self._inlet is None:
            raise RuntimeError(f"lsl_inlet {self.name!r}: time_correction() before open()")
        return float(self._inlet.time_correction(timeout=timeout_s))

    @property
    def header_xml(self) -> str:
        """The sender's full LSL header (XML), as received when the inlet opened."""
        return str(self._info.metadata.get("lsl_header_xml", "")) if self._info else ""

    def counters(self) -> dict[str, int]:
        self._settle()
        if self._waiter is not None and self._waiter.busy_backoffs != self._busy_seen:
            self._note_busy(self._waiter)
        out = dict(self._counts)
        if self._stall_since is not None:  # a stall that lasts counts now, not only when it ends
            out["stalled_ms"] += int(round((time.monotonic() - self._stall_since) * 1000))
        if self._health is not None:
            out.update(self._health.counters())
        return out

    def report(self) -> dict[str, Any]:
        if self._info is None:
            return {}
        return {"stream": self._info.name, "source_id": self._info.source_id,
                "host": self._info.metadata.get("lsl_hostname", "")}

    def state(self) -> dict[str, Any]:
        return {"counts": self.counters(), "uid": self._uid}

    def restore(self, state: dict[str, Any]) -> None:
        counts = dict(state.get("counts", {}))
        for key in self._counts:
            if key in counts:
                self._counts[key] = int(counts[key])
        if self._health is not None:
            h = self._health
            h.lost = int(counts.get("lost_samples_est", h.lost))
            h.gaps = int(counts.get("discontinuities", h.gaps))
            h.backwards = int(counts.get("ts_backwards", h.backwards))
            h.rate_off_windows = int(counts.get("rate_off_windows", h.rate_off_windows))


def _clock_text() -> str:
    """Wall-clock time for log lines, e.g. ``18:42:07.123``."""
    now = time.time()
    return time.strftime("%H:%M:%S", time.localtime(now)) + f".{int(now % 1 * 1000):03d}"
