"""Health of a live stream from its timestamps alone: losses, backwards time, wrong rate.

Pure numpy, no LSL, so the rules can be tested with made-up timestamps. The LSL inlet feeds every
packet's timestamps to :meth:`TimestampHealth.update` and reports :meth:`counters`.

**Losses** (regular streams). Timestamps of a live stream carry jitter: a sender that stamps at
push time and is delayed by the CPU stamps late and then pushes a burst, so one long step between
two samples is *not* evidence of a loss. What a loss does, and jitter does not, is shift the stream
for good: after ``m`` lost samples every later sample is ``m`` periods later than its place in a
gap-free schedule. So the estimator follows each sample's *lag* behind the schedule,
``lag_k = t_k - t_anchor - (k + lost) / rate`` (``k`` counts received samples), takes the lowest
lag in each ``window_s`` second of stream time (jitter only ever adds delay, so the floor is the
schedule), and counts ``round(Δ × rate)`` lost samples when the floor of two consecutive windows
has risen by more than ``min_periods`` periods over the previous floor. A burst that catches up
within the next window lowers the floor again and is not counted; a slow clock drift moves the
floor by the same amount every window: the median of the last 9 changes is taken as drift and
only a rise beyond it counts (during the first three decisions, before the drift is known, a
rise must also exceed 1 % of a window: a lost 10 ms there goes uncounted). A loss is known one to
three windows after it happened; one in the last window or two of a run stays uncounted.

**Backwards timestamps** (any stream): each step back in time counts once in ``ts_backwards``
and never as a loss (a clock that jumps back lowers the floor, which is followed, not counted).

**Rate**: over every ``rate_window_s`` seconds (≥ 5 s) of arrival time the effective rate, both
from the timestamps and from arrivals (samples per second of this machine's clock), is compared
with the nominal rate; a window more than ``rate_tolerance`` off counts in ``rate_off_windows``
and the first one is reported (the caller logs a warning once).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

FLOOR_PERCENTILE = 10.0
"""Percentile of a window's lags taken as its floor."""
DRIFT_WINDOWS = 9
"""Floor changes of this many recent windows give the drift (their median)."""
SMALL_PACKET = 16
"""Packets of at most this many samples take the plain-Python path."""
WARMUP_DRIFT = 0.01
"""Until 3 floor changes are known, a rise of up to 1 % of the window (a clock 1 % off) is not a loss."""


@dataclass
class RateReport:
    """One rate window that was off: rates in Hz over ``span_s`` seconds."""

    nominal_hz: float
    from_timestamps_hz: float
    from_arrivals_hz: float
    span_s: float


@dataclass
class TimestampHealth:
    """Loss, backwards-time and rate accounting for one stream.

    Args:
        nominal_rate: Hz; 0 for irregular streams (only backwards steps are counted then).
        window_s: seconds of stream time per lag-floor window (losses are decided per window).
        min_periods: rise of the lag floor, in sample periods, counted as a loss (> 0.5).
        rate_window_s: seconds of arrival time per rate estimate (at least 5).
        rate_tolerance: relative rate error flagged (0.05 = 5 %).
    """

    nominal_rate: float
    window_s: float = 1.0
    min_periods: float = 0.6
    rate_window_s: float = 5.0
    rate_tolerance: float = 0.05
    lost: int = 0
    gaps: int = 0
    backwards: int = 0
    rate_off_windows: int = 0
    received: int = 0
    _last_t: float | None = None
    _anchor: float | None = None
    _k0: int = 0
    _win: int = 0
    _win_lags: list[float] = field(default_factory=list)
    _floors: list[float] = field(default_factory=list)
    _base: float | None = None
    _deltas: list[float] = field(default_factory=list)
    _rate_t0: float | None = None
    _rate_wall0: float = 0.0
    _rate_n: int = 0
    _rate_last_t: float = 0.0

    def __post_init__(self) -> None:
        if self.rate_window_s < 5.0:
            raise ValueError(f"rate_window_s must be >= 5 s, got {self.rate_window_s}")
        if self.min_periods <= 0.5:
            raise ValueError(f"min_periods must be > 0.5, got {self.min_periods}")

    @property
    def period(self) -> float:
        return 1.0 / self.nominal_rate if self.nominal_rate > 0 else 0.0

    def update(self, stamps: np.ndarray, wall: float) -> RateReport | None:
        """Account for one packet's timestamps (seconds, in arrival order) received at ``wall`` s.

        Returns a :class:`RateReport` when a rate window closed more than the tolerance off.
        Small packets take a plain-Python path (a few µs; numpy's per-call cost would dominate).
        """
        stamps = np.asarray(stamps, dtype=np.float64).reshape(-1)
        n = stamps.size
        if n == 0:
            return None
        if n <= SMALL_PACKET:
            ts = stamps.tolist()
            last = self._last_t
            for t in ts:
                if last is not None and t < last:
                    self.backwards += 1
                last = t
            first_t, last_t = ts[0], ts[-1]
        else:
            prev = self._last_t if self._last_t is not None else stamps[0]
            self.backwards += int(np.count_nonzero(np.diff(stamps, prepend=prev) < 0))
            first_t, last_t = float(stamps[0]), float(stamps[-1])
        self._last_t = last_t
        report = self._rate(first_t, last_t, n, wall)
        if self.nominal_rate > 0:
            if n <= SMALL_PACKET:
                self._lags_small(ts)
            else:
                self._lags(stamps)
        self.received += n
        return report

    def flush(self) -> None:
        """Decide on the windows still open (call when the stream ends)."""
        if self.nominal_rate > 0 and self._win_lags:
            self._close_window()

    # --- losses -------------------------------------------------------------------------------
    def _lags_small(self, ts: list[float]) -> None:
        p = self.period
        if self._anchor is None:
            self._anchor, self._k0 = ts[0], self.received
        anchor, k = self._anchor, self.received - self._k0
        for i, t in enumerate(ts):
            win = max(int((t - anchor) // self.window_s), self._win)
            if win != self._win and self._win_lags:
                self._close_window()
            self._win = win
            self._win_lags.append(t - anchor - (k + i + self.lost) * p)

    def _lags(self, stamps: np.ndarray) -> None:
        p = self.period
        if self._anchor is None:
            self._anchor, self._k0 = float(stamps[0]), self.received
        t = stamps
        k = self.received + np.arange(t.size) - self._k0
        wins = np.floor((t - self._anchor) / self.window_s).astype(np.int64)
        # windows follow arrival order: a sample out of order stays in the window it arrived in
        wins = np.maximum.accumulate(np.maximum(wins, self._win))
        cuts = (np.flatnonzero(np.diff(wins)) + 1).tolist()
        for a, b in zip([0, *cuts], [*cuts, wins.size]):
            win = int(wins[a])
            if win != self._win and self._win_lags:
                self._close_window()
            self._win = win
            self._win_lags.extend((t[a:b] - self._anchor - (k[a:b] + self.lost) * p).tolist())

    def _close_window(self) -> None:
        lags = np.asarray(self._win_lags)
        self._win_lags = []
        # a low percentile, not the minimum: a few samples far out of order do not move it
        self._floors.append(float(np.percentile(lags, FLOOR_PERCENTILE)))
        if len(self._floors) >= 2:
            self._decide(min(self._floors[-2:]))
        elif self._base is None:
            self._base = self._floors[0]
        del self._floors[:-2]

    def _decide(self, floor: float) -> None:
        if self._base is None:
            self._base = floor
            return
        p = self.period
        delta = floor - self._base
        if len(self._deltas) >= 3:
            drift, allowance = float(np.median(self._deltas)), 0.0
        else:  # warm-up: the drift is not known yet; allow a rate up to WARMUP_DRIFT off
            drift, allowance = 0.0, WARMUP_DRIFT * self.window_s
        rise = delta - drift  # a clock a little off the nominal rate moves the floor steadily
        if rise > self.min_periods * p + allowance:
            m = int(round(rise / p))
            if m >= 1:
                self.lost += m
                self.gaps += 1
                # the lags were computed with the old count: move the floors with the new one
                self._floors = [f - m * p for f in self._floors]
                self._win_lags = [x - m * p for x in self._win_lags]
                floor -= m * p
                delta -= m * p
        self._deltas.append(delta)
        del self._deltas[:-DRIFT_WINDOWS]
        self._base = floor  # follow slow drift and lower floors

    # --- rate ---------------------------------------------------------------------------------
    def _rate(self, first_t: float, last_t: float, n: int, wall: float) -> RateReport | None:
        if self.nominal_rate <= 0:
            return None
        if self._rate_t0 is None:
            self._rate_t0, self._rate_wall0, self._rate_n = first_t, wall, n - 1
            self._rate_last_t = last_t
            return None
        self._rate_n += n
        self._rate_last_t = last_t
        span_wall = wall - self._rate_wall0
        if span_wall < self.rate_window_s:
            return None
        span_t = self._rate_last_t - self._rate_t0
        from_ts = self._rate_n / span_t if span_t > 0 else math.inf
        from_wall = self._rate_n / span_wall
        self._rate_t0, self._rate_wall0, self._rate_n = self._rate_last_t, wall, 0
        tol = self.rate_tolerance * self.nominal_rate
        if abs(from_ts - self.nominal_rate) > tol or abs(from_wall - self.nominal_rate) > tol:
            self.rate_off_windows += 1
            return RateReport(self.nominal_rate, from_ts, from_wall, span_wall)
        return None

    def reset_rate(self) -> None:
        """Start a new rate window (after a stall: arrivals resumed, the silence is not a rate)."""
        self._rate_t0 = None

    def counters(self) -> dict[str, int]:
        return {"lost_samples_est": self.lost, "discontinuities": self.gaps, "ts_backwards": self.backwards,
                "rate_off_windows": self.rate_off_windows}
