"""Learn a regular LSL sender's push schedule, to predict when its next chunk will arrive.

A regular stream's sender (an amplifier's driver, ``spikeloop play``, a lab's own pusher) pushes
on a clock: every ``m`` sample periods it pushes ``m`` samples, the newest stamped at (or just
after) a slot of a fixed grid ``phase + k · m / rate``. The push itself is sometimes late — the
sender's thread was not running when its timer fired — and its stamp then sits *after* its slot,
never before. So the *on-time* pushes mark the grid, and the low end of the stamps' residuals
modulo the arrival period gives its phase; the late ones are outliers on one side.

Predicting the next arrival as ``last stamp + period`` (what ``wait: auto`` did before) carries
every late push into the next prediction: the next, on-time sample then arrives before the inlet
starts polling for it and is found by a blocking pull (slow wake-up). Predicting from the grid
does not: after a late push the next slot is still where the sender's clock puts it.

:class:`SenderSchedule` keeps the newest stamp of the last ``window`` pulls (seconds, the inlet's
clock after clock sync), and every ``refit_every`` pulls fits:

* ``per_arrival`` ``m``: the median number of samples per waited-for arrival (the last 16),
  rounded to a whole number;
* ``phase``: with ``P = m / rate`` and residuals ``(stamp − newest stamp) mod P`` on the circle,
  the on-time pushes are the arc of width ``max_spread · P`` that holds the most residuals;
  counting round the circle from its start, ``phase`` is the 10th percentile of the residuals
  (late pushes, however spread, come after the on-time ones; an early outlier goes last);
* ``spread``: median − 10th percentile of those residuals (s). A spread above ``max_spread · P``
  means the sender keeps no usable schedule (a jittery network sender, a rate far from the
  nominal one, a sender pushing whenever it likes): the schedule is then *irregular* and
  :meth:`next_arrival` answers None (the inlet blocks, as ``wait: block`` does);
* ``transit``: the 10th percentile of ``arrival − newest stamp`` (s) over the last 64 arrivals
  that came while the inlet waited (arrivals already buffered say nothing about transit). On one
  machine this is the LSL hop, about 0.1 ms; across machines it also absorbs a clock offset.

A rate a little off the nominal one (crystal error, tens of ppm) drifts the phase by far less than
a refit's window; a rate off by more than about ``max_spread · P / (window · P)`` (≈ 0.8 % with the
defaults) smears the residuals and the schedule reads as irregular (the inlet's rate check also
warns). A gap in the stream leaves the grid where it was; a sender restarted on a new grid is
re-learnt within one window (``window`` pulls).

Everything here is plain Python on at most 64 floats: a pull costs a few µs to note and a refit
(every ``refit_every`` pulls) a few tens of µs, no numpy call on the data path.
"""
from __future__ import annotations

import math
from collections import deque


class SenderSchedule:
    """The push grid of one regular stream, learnt from its timestamps.

    Args:
        nominal_rate: the stream's nominal rate in Hz (> 0).
        window: pulls whose newest stamps the phase is fitted on (default 32).
        refit_every: refit after this many pulls (default 8).
        max_spread: largest residual spread (median − 10th percentile) that still counts as a
            schedule, as a fraction of the arrival period (default 0.25).
    """

    def __init__(self, nominal_rate: float, window: int = 32, refit_every: int = 8, max_spread: float = 0.25) -> None:
        if not nominal_rate > 0:
            raise ValueError(f"SenderSchedule needs a nominal rate > 0 Hz, got {nominal_rate}")
        self.period = 1.0 / float(nominal_rate)
        self.window, self.refit_every, self.max_spread = int(window), int(refit_every), float(max_spread)
        self._stamps: deque[float] = deque(maxlen=self.window)
        self._sizes: deque[int] = deque(maxlen=16)
        self._transit: deque[float] = deque(maxlen=64)
        self._since_fit = 0
        self._since_transit = 0
        self.per_arrival = 1.0  # samples per waited-for arrival (median of the last 16)
        self.phase: float | None = None  # stamp of one on-time slot (s)
        self.spread = math.inf  # residual spread of the last fit (s)
        self.transit = 0.0  # low quantile of arrival - newest stamp (s)
        self.regular = False  # the last fit found a schedule
        self.fits = 0
        self.irregular_fits = 0

    @property
    def arrival_period(self) -> float:
        """Seconds between two pushes of the sender (``per_arrival`` sample periods)."""
        return self.per_arrival * self.period

    def note(self, newest: float, n: int, arrival: float | None) -> None:
        """Learn from one pull: its newest stamp (s), its sample count and, when the inlet was waiting
        for it, its arrival time on the LSL clock (s; None if it was already buffered)."""
        if not math.isfinite(newest):
            return
        self._stamps.append(newest)
        if arrival is not None:
            self._sizes.append(n)
            transit = arrival - newest
            if math.isfinite(transit):
                self._transit.append(transit)
                self._since_transit += 1
                if self._since_transit >= 8 or len(self._transit) < 8:
                    self.transit = _quantile(sorted(self._transit), 0.1)
                    self._since_transit = 0
        self._since_fit += 1
        if self._since_fit >= self.refit_every and len(self._stamps) >= min(8, self.window):
            self.refit()

    def refit(self) -> None:
        """Fit ``per_arrival``, ``phase``, ``spread`` and ``regular`` to the stamps kept."""
        self._since_fit = 0
        self.fits += 1
        if self._sizes:
            self.per_arrival = float(max(1, round(_quantile(sorted(self._sizes), 0.5))))
        period = self.arrival_period
        ref = self._stamps[-1]
        res = sorted((s - ref) % period for s in self._stamps)
        # the on-time pushes: the arc of width max_spread * period holding the most residuals
        n, width = len(res), self.max_spread * period
        ext = res + [r + period for r in res]
        start, most, j = 0, 0, 0
        for i in range(n):
            j = max(j, i)
            while j + 1 < i + n and ext[j + 1] - ext[i] <= width:
                j += 1
            if j - i + 1 > most:
                start, most = i, j - i + 1
        unwrapped = ext[start:start + n]
        lo = _quantile(unwrapped, 0.1)
        self.spread = _quantile(unwrapped, 0.5) - lo
        self.phase = ref + lo
        self.regular = self.spread <= self.max_spread * period
        if not self.regular:
            self.irregular_fits += 1

    def next_arrival(self, last_stamp: float) -> float | None:
        """Predicted arrival (s, LSL clock) of the chunk after the one stamped ``last_stamp``, or None
        when no schedule is known (not yet fitted, or irregular)."""
        if not self.regular or self.phase is None:
            return None
        period = self.arrival_period
        # the slot of the last push: a push up to 0.9 periods late still belongs to its slot
        k = math.floor((last_stamp - self.phase) / period + 0.1)
        return self.phase + (k + 1) * period + self.transit


def _quantile(ordered: list[float], q: float) -> float:
    """``q``-quantile of an ascending list with linear interpolation (numpy's default method)."""
    pos = q * (len(ordered) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)
