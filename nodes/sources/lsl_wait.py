"""How a live LSL inlet waits for its next sample: ``block``, ``spin`` or ``auto``.

Waiting costs either latency or CPU:

* ``block``: wait inside liblsl (a condition variable) until data comes. No CPU while idle, but the
  wake-up after the sample arrives adds about 0.2–0.25 ms at the median on a 2-core machine.
* ``spin``: poll liblsl with a zero timeout until data comes (up to ``spin_s`` per read). Lowest
  latency, one whole core busy per inlet, and worse than blocking when the machine is busy.
* ``auto`` (default): *predict* when the next sample will arrive and spin only around that moment.
  Block until ``guard_s`` before the predicted arrival (a block returns at once if data comes
  earlier), poll until ``spin_window_s`` after it, and block again if nothing came. On a regular
  stream this gives spin's median at a small fraction of a core (about guard + arrival jitter per
  sample period: roughly 10 % of a core at 250 Hz).

The prediction (regular streams only; irregular streams always block) comes from the sender's
*schedule* (:class:`nodes.sources.lsl_schedule.SenderSchedule`): the grid its on-time pushes
fall on, learnt from the newest timestamp of each pull, plus the transit (the low end of
``arrival − stamp`` for arrivals the inlet waited for):

    due = the grid slot after the last push + transit

A push that came late does not move the grid, so it does not make the *next* prediction late
(predicting ``last_timestamp + m · period + transit``, as ``auto`` did before, carried every
late push into the next window: the next, on-time sample came before the inlet polled and was
found by a slow blocking pull). When the stamps keep no schedule (residual spread above a
quarter of the arrival period: a jittery sender, a rate far off its nominal one) ``auto`` blocks
until they do again; while the schedule is first learnt (8 pulls) it predicts
``last_timestamp + m · period + transit``.

``SPIKELOOP_AUTO_PREDICT=last`` (a diagnostic for A/B runs) makes ``auto`` always predict
``last_timestamp + m · period + transit``, the rule before the schedule.

A wrong prediction costs at most ``guard_s + spin_window_s`` of polling per read; after that the
inlet blocks as in ``block`` mode, so no sample waits longer than a blocking read would.

**A busy machine.** Polling pays only while the core is ours: with CPU-bound processes on every
core, each yield between two polls hands the core to one of them for a scheduler slice, and the
sample that arrives meanwhile waits for the slice to end (``spikeloop bench latency --load 2``:
p50 1.3–2.6 ms polling against 0.26 ms for a blocking relay). So ``auto`` watches its yields: a
yield that comes back more than ``BUSY_GAP_S`` later means another task held the core; when
``BUSY_TRIP`` of the last ``BUSY_WINDOW`` polled reads had one, ``auto`` blocks (exactly as
``block``) for a back-off of 2 s, doubled up to 30 s while the machine stays busy, then tries
polling again (``busy_backoffs`` counts the switches; the inlet logs each with its time). Late
yields that come alone or in short bursts (the hypervisor taking the virtual CPU for a few ms,
about 0.3 % of reads on a quiet VM here) do not trip it: with a looser rule (4 late yields of 0.5 ms
in 16 reads) one quiet 15 s run of ``ray-compiled`` tripped once and blocked for 2 s.

What a pull teaches (the schedule, the transit) is learnt at the start of the next pull: a sample
goes through the graph first (a refit costs tens of µs with cold caches).

When ``auto`` starts polling it first calls the ``prewarm`` the runner gave the inlet: the nodes
after it run their code on scratch state (:meth:`pipeline.node.Node.warm`), so the sample about to
arrive finds their code and parameters in the caches instead of evicted by the 4 ms of sleep
(``SPIKELOOP_PREWARM=0`` turns it off, a diagnostic for A/B runs).
"""
from __future__ import annotations

import os
import time
from collections import deque
from typing import Any, Callable, Literal

from nodes.sources.lsl_schedule import SenderSchedule


WaitMode = Literal["auto", "block", "spin"]
WAIT_MODES: tuple[str, ...] = ("auto", "block", "spin")
BUSY_GAP_S = 0.001
"""A yield between two polls that returns later than this (s) means another task held the core."""
BUSY_WINDOW, BUSY_TRIP = 16, 8
"""``auto`` blocks when ``BUSY_TRIP`` of the last ``BUSY_WINDOW`` polled reads had a late yield."""
BUSY_BACKOFF_S = (2.0, 30.0)
"""First and longest back-off (s) of ``auto`` on a busy machine (doubled while it stays busy)."""


class InletWait:
    """Pull the next chunk from a ``pylsl.StreamInlet`` with one of the wait modes above.

    Args:
        mode: ``auto``, ``block`` or ``spin``.
        max_block_s: longest wait of one ``pull`` in seconds (the runner's responsiveness bound).
        nominal_rate: the stream's nominal rate in Hz (0 = irregular: ``auto`` blocks).
        spin_s: ``spin`` mode: seconds to poll before blocking (default: all of ``max_block_s``).
        guard_s: ``auto``: seconds before the predicted arrival at which polling starts.
        spin_window_s: ``auto``: seconds after the predicted arrival that polling continues.
    """

    def __init__(self, mode: str, max_block_s: float, nominal_rate: float, spin_s: float | None = None,
                 guard_s: float = 0.0003, spin_window_s: float = 0.001) -> None:
        if mode not in WAIT_MODES:
            raise ValueError(f"wait mode must be one of {', '.join(WAIT_MODES)}, got {mode!r}")
        self.mode = mode if (mode != "auto" or nominal_rate > 0) else "block"
        self.max_block_s = float(max_block_s)
        self.period = 1.0 / nominal_rate if nominal_rate > 0 else 0.0
        self.spin_s = self.max_block_s if spin_s is None else min(float(spin_s), self.max_block_s)
        self.guard_s, self.spin_window_s = float(guard_s), float(spin_window_s)
        self._last_ts: float | None = None
        self.schedule = SenderSchedule(nominal_rate) if nominal_rate > 0 else None
        self.by_schedule = os.environ.get("SPIKELOOP_AUTO_PREDICT", "schedule") != "last"
        self.due = 0.0  # the last read's predicted arrival (s, LSL clock; 0: none), for the probe
        self.polls = 0  # zero-timeout pulls that found nothing (a measure of the CPU spent polling)
        self.prewarms = 0  # prewarm calls made (one per polled-for arrival)
        self._pending: tuple[float, int, float | None] | None = None  # the last pull, learnt from at the next
        self._late_yields: deque[bool] = deque(maxlen=BUSY_WINDOW)  # per polled read: a yield came back late
        self._busy_until = 0.0  # perf_counter s: auto blocks until then (a busy machine)
        self._backoff_s = BUSY_BACKOFF_S[0]
        self.busy_backoffs = 0  # times auto switched to blocking on a busy machine
        self.busy_for_s = 0.0  # the last back-off's length (s)
        self._late = False  # the last poll had a late yield
        self._polled = False  # the last pull polled (judge its yields at the next)
        # yield the CPU between empty polls: on by default for auto (its polling window sits exactly on
        # the sender's push time), off for spin; SPIKELOOP_POLL_YIELD=0/1 forces it off/on for both
        forced = os.environ.get("SPIKELOOP_POLL_YIELD", "")
        self.polite = hasattr(os, "sched_yield") and (forced == "1" or (forced == "" and self.mode == "auto"))

    def pull(self, pull_chunk: Callable[[float], tuple[Any, Any]], clock: Callable[[], float],
             prewarm: Callable[[], None] | None = None) -> tuple[Any, Any, int]:
        """Return ``(data, stamps, n)`` (``n == 0``: nothing came within ``max_block_s``).

        ``pull_chunk(timeout)`` pulls what is buffered: with ``timeout == 0`` without waiting, with
        ``timeout > 0`` waiting at most that long (s) for the first sample. ``clock`` is the LSL clock
        (``pylsl.local_clock``). ``prewarm``: called once when ``auto`` has slept until just before a
        predicted arrival and starts polling for it (the nodes after the inlet warm their caches then).
        """
        pending = self._pending
        if pending is not None:  # learn from the previous pull now, after its data went through the graph
            self._pending = None
            self._note(*pending)
        if self._polled:
            self._polled = False
            self._watch_busy()
        data, stamps = pull_chunk(0.0)
        n = len(stamps)
        if n:
            self._pending = (float(stamps[n - 1]), n, None)  # already buffered: catching up, not a waited-for arrival
            return data, stamps, n
        if self.max_block_s <= 0:
            return data, stamps, 0
        start = time.perf_counter()
        deadline = start + self.max_block_s
        if self.mode == "spin":
            data, stamps, n = self._poll(pull_chunk, start + self.spin_s)
        elif self.mode == "auto" and self._last_ts is not None and start >= self._busy_until:
            due = self._predict(self._last_ts)
            self.due = 0.0 if due is None else due
            if due is not None:
                due_in = due - clock()
                spin_from = start + due_in - self.guard_s
                if spin_from > start:
                    data, stamps, n = self._block(pull_chunk, min(spin_from, deadline) - time.perf_counter())
                    if n == 0 and prewarm is not None:  # slept: the caches went cold (not when the read
                        prewarm()                       # began inside the window, straight after a step)
                        self.prewarms += 1
                if n == 0:
                    data, stamps, n = self._poll(pull_chunk, min(start + due_in + self.spin_window_s, deadline))
                    self._polled = True  # its yields are judged at the next pull (off the sample's path)
        if n == 0:
            data, stamps, n = self._block(pull_chunk, deadline - time.perf_counter())
        if n:
            self._pending = (float(stamps[n - 1]), n, clock())  # the arrival time is taken now
        return data, stamps, n

    # --- internals -----------------------------------------------------------------------------------
    @staticmethod
    def _block(pull_chunk: Callable[[float], tuple[Any, Any]], timeout: float) -> tuple[Any, Any, int]:
        if timeout <= 0:
            return None, (), 0
        data, stamps = pull_chunk(timeout)
        return data, stamps, len(stamps)

    def _poll(self, pull_chunk: Callable[[float], tuple[Any, Any]], until: float) -> tuple[Any, Any, int]:
        """Pull with a zero timeout until data comes or ``until`` (``perf_counter`` s).

        Between two empty pulls the thread yields the CPU (``sched_yield``) in ``auto`` mode (default;
        ``SPIKELOOP_POLL_YIELD=0`` turns it off, ``=1`` turns it on for ``spin`` too). ``auto`` sleeps
        until just before the sender's next push and then polls: without the yield it wakes with a
        sleeper's scheduling credit exactly when the sender wants a core, and on a 2-core machine
        the sender then pushed 1.25-1.38 ms late at p99 (0.29-0.34 ms with ``block``). With the yield,
        on the quiet machine (1 Dec 04:31-04:42 UTC, 3 x 20 s interleaved): the pusher 0.27-0.31 ms
        late at p99, the graph's p99 1.05 ms (local) and 1.34 ms (ray) instead of 1.99 and 1.83 ms
        (docs/RESULTS.md, "Live latency"). Under load a yield can hand the core to a CPU-bound
        process for a scheduler slice; an earlier A/B at load 9 showed no latency change either way.
        """
        data, stamps, n = None, (), 0
        polite, late = self.polite, False
        now = time.perf_counter()
        while now < until:
            data, stamps = pull_chunk(0.0)
            n = len(stamps)
            if n:
                break
            self.polls += 1
            if polite:
                before = time.perf_counter()
                os.sched_yield()
                now = time.perf_counter()
                late = late or now - before > BUSY_GAP_S
            else:
                now = time.perf_counter()
        self._late = late
        return data, stamps, n

    def _watch_busy(self) -> None:
        """After a polled read: block for a back-off when the yields keep coming back late."""
        late, window = self._late, self._late_yields
        window.append(late)
        if late and sum(window) >= BUSY_TRIP:
            self._busy_until = time.perf_counter() + self._backoff_s
            self.busy_backoffs += 1
            self.busy_for_s = self._backoff_s
            self._backoff_s = min(2 * self._backoff_s, BUSY_BACKOFF_S[1])
            window.clear()
        elif not late and len(window) == BUSY_WINDOW and not any(window):
            self._backoff_s = BUSY_BACKOFF_S[0]  # a quiet spell: the next back-off starts short again

    def _note(self, newest: float, n: int, arrival: float | None) -> None:
        """Learn from a pull: its newest stamp (s), sample count and, if waited for, its arrival (s,
        LSL clock). Plain Python on at most 64 numbers; called at the start of the next pull, so a
        refit never delays the sample it learns from."""
        if self.schedule is not None:
            self.schedule.note(newest, n, arrival)
        self._last_ts = newest

    def _predict(self, last_ts: float) -> float | None:
        """The next arrival (s, LSL clock), or None: block (no schedule in the stamps)."""
        sched = self.schedule
        if sched is None:
            return None
        if self.by_schedule and sched.fits:
            return sched.next_arrival(last_ts)
        return last_ts + sched.arrival_period + sched.transit  # learning, or SPIKELOOP_AUTO_PREDICT=last

    def _samples_per_arrival(self) -> float:
        return self.schedule.per_arrival if self.schedule is not None else 1.0

    def state(self) -> dict[str, Any]:
        return {"polls": self.polls}

