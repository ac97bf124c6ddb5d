"""The sender-schedule predictor behind ``wait: auto`` (pure arithmetic on timestamps, no clock).

Each case feeds stamps as an inlet would see them (newest stamp per pull, arrival when waited
for) and checks what is predicted for the next arrival.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from nodes.sources.lsl_schedule import SenderSchedule

RATE = 250.0
P = 1.0 / RATE
TRANSIT = 0.0001


def _feed(sched: SenderSchedule, stamps: list[float], transit: float = TRANSIT) -> None:
    for s in stamps:
        sched.note(s, 1, s + transit)


def _slot_offset(t: float, phase: float, period: float) -> float:
    """Distance of ``t`` from the nearest slot of the grid, in periods (0 = on the grid)."""
    x = (t - phase) / period
    return abs(x - round(x))


def test_a_late_push_does_not_make_the_next_prediction_late():
    t0 = 1000.0123
    rng = np.random.default_rng(0)
    late = np.where(rng.random(200) < 0.15, rng.uniform(0.0005, 0.0025, 200), rng.uniform(0.0, 0.00003, 200))
    stamps = [t0 + k * P + late[k] for k in range(200)]
    sched = SenderSchedule(RATE)
    _feed(sched, stamps[:100])
    assert sched.regular
    late_push = stamps[0] + 100 * P + 0.0018  # pushed 1.8 ms after its slot
    sched.note(late_push, 1, late_push + TRANSIT)
    due = sched.next_arrival(late_push)
    assert due is not None
    # the next on-time slot (101) plus the transit, not late stamp + period
    assert due == pytest.approx(t0 + 101 * P + TRANSIT, abs=3e-5)
    assert abs((late_push + P + TRANSIT) - due) > 0.0015


def test_phase_is_found_across_the_wrap_of_the_circle():
    # slots sit right at the reference's residual 0: jitter of a few µs either side wraps around
    t0 = 50.0
    rng = np.random.default_rng(1)
    stamps = [t0 + k * P + rng.normal(0, 5e-6) for k in range(64)]
    sched = SenderSchedule(RATE)
    _feed(sched, stamps)
    assert sched.regular
    assert _slot_offset(sched.phase, t0, P) < 0.01
    due = sched.next_arrival(stamps[-1])
    assert due == pytest.approx(t0 + 64 * P + TRANSIT, abs=2e-5)


def test_chunked_sender_learns_chunk_period():
    t0, m = 7.0, 10
    sched = SenderSchedule(1000.0)
    for j in range(40):
        newest = t0 + (j * m + m - 1) / 1000.0
        sched.note(newest, m, newest + TRANSIT)
    assert sched.per_arrival == m
    assert sched.arrival_period == pytest.approx(0.01)
    last = t0 + (39 * m + m - 1) / 1000.0
    assert sched.next_arrival(last) == pytest.approx(last + 0.01 + TRANSIT, abs=1e-6)


def test_sender_without_schedule_reads_as_irregular():
    rng = np.random.default_rng(2)
    stamps = list(np.cumsum(rng.uniform(0.0, 2 * P, 64)) + 3.0)
    sched = SenderSchedule(RATE)
    _feed(sched, stamps)
    assert not sched.regular
    assert sched.irregular_fits > 0
    assert sched.next_arrival(stamps[-1]) is None


def test_gap_keeps_the_grid_and_a_new_grid_is_relearnt_within_a_window():
    t0 = 20.0
    sched = SenderSchedule(RATE)
    _feed(sched, [t0 + k * P for k in range(40)])
    _feed(sched, [t0 + k * P for k in range(300, 310)])  # 1 s gap, same grid
    assert sched.regular and _slot_offset(sched.phase, t0, P) < 0.01
    t1 = t0 + 400 * P + 0.4 * P  # the sender restarts on a grid shifted by 0.4 periods
    _feed(sched, [t1 + k * P for k in range(sched.window)])
    assert sched.regular and _slot_offset(sched.phase, t1, P) < 0.01


def test_transit_is_learnt_only_from_waited_arrivals():
    sched = SenderSchedule(RATE)
    for k in range(64):
        s = 5.0 + k * P
        sched.note(s, 1, s + 0.0002 if k % 2 else None)
    assert sched.transit == pytest.approx(0.0002)


def test_refuses_irregular_nominal_rate_and_ignores_non_finite_stamps():
    with pytest.raises(ValueError, match="nominal rate"):
        SenderSchedule(0.0)
    sched = SenderSchedule(RATE)
    sched.note(math.nan, 1, 1.0)
    assert sched.next_arrival(1.0) is None and not sched._stamps


def test_replay_of_recorded_arrivals_catches_more_with_the_schedule(tmp_path):
    """``bench latency-path --replay-probe``: the same arrivals through both of auto's rules."""
    from benchmarks.latency_path import replay_predictions

    n, t0 = 2000, 100.0
    rng = np.random.default_rng(3)
    late = np.where(rng.random(n) < 0.1, rng.uniform(0.0012, 0.003, n), rng.uniform(0.0, 0.00005, n))
    stamp = t0 + np.arange(n) * P + late  # stamped at the (sometimes late) push
    wake = stamp + 0.00012 + rng.uniform(0.0, 0.00003, n)
    np.savez(tmp_path / "probe_g_1.npz", stamp=stamp, t_wake=wake, t_out=wake + 0.0003, n=np.ones(n, dtype=np.int64))
    r = replay_predictions(tmp_path / "probe_g_1.npz", RATE)
    sched, last = r["schedule"], r["last"]
    for rule in (sched, last):
        assert sum(rule[k] for k in ("caught", "early", "late", "buffered", "unpredicted")) == pytest.approx(1.0)
    # after each late push the last-stamp rule predicts late: the next (on-time) sample comes early
    assert last["early"] > 0.05
    assert sched["early"] < 0.01 and sched["caught"] > last["caught"] + 0.05
