"""The inlet's wait modes (block, spin, auto) against the real liblsl on loopback.

What is asserted is behaviour, not timing: every mode delivers every sample in order; ``auto``
learns the sender's rhythm and polls far less than ``spin`` (counted zero-timeout pulls, a proxy
for CPU), and a sender that pushes in chunks or pauses costs ``auto`` nothing but a bounded poll.
Latency itself is measured by ``spikeloop bench latency`` (benchmarks, never test assertions).
"""
from __future__ import annotations

import threading
import time
import uuid

import numpy as np
import pylsl
import pytest

from nodes.sources.lsl_inlet import LslInlet
from nodes.sources.lsl_wait import InletWait


def _pusher(outlet: pylsl.StreamOutlet, rate: float, n: int, chunk: int = 1) -> threading.Thread:
    def push() -> None:
        t0 = pylsl.local_clock()
        for i in range(0, n, chunk):
            delay = t0 + (i + chunk - 1) / rate - pylsl.local_clock()
            if delay > 0:
                time.sleep(delay)
            block = np.arange(i, i + chunk, dtype=np.float32)[:, None].repeat(2, axis=1)
            stamps = [t0 + (i + k) / rate for k in range(chunk)]
            outlet.push_chunk(block, stamps)

    thread = threading.Thread(target=push, daemon=True)
    return thread


def _receive(wait: str, rate: float, n: int, chunk: int = 1) -> tuple[np.ndarray, LslInlet]:
    name = f"wait_{uuid.uuid4().hex[:10]}"
    outlet = pylsl.StreamOutlet(pylsl.StreamInfo(name, "Test", 2, rate, "float32", name))
    inlet = LslInlet(source_id=name, wait=wait, clock_sync=False, resolve_timeout_s=5.0)
    inlet.name = "inlet"
    inlet.open({})
    pusher = _pusher(outlet, rate, n, chunk)
    pusher.start()
    got: list[np.ndarray] = []
    deadline = time.monotonic() + n / rate + 5.0
    while sum(len(g) for g in got) < n and time.monotonic() < deadline:
        out = inlet.read()
        if out:
            got.append(out["out"].data[:, 0])
    pusher.join(5.0)
    inlet.close()
    del outlet
    return (np.concatenate(got) if got else np.zeros(0)), inlet


@pytest.mark.parametrize("wait", ["block", "spin", "auto"])
def test_every_mode_delivers_every_sample_in_order(wait):
    values, _ = _receive(wait, 250.0, 250)
    assert np.array_equal(values, np.arange(250, dtype=np.float32))


def test_auto_polls_much_less_than_spin():
    _, spin = _receive("spin", 250.0, 250)
    _, auto = _receive("auto", 250.0, 250)
    spin_polls, auto_polls = spin._waiter.polls, auto._waiter.polls
    assert spin_polls > 0
    assert auto_polls < spin_polls / 3, (auto_polls, spin_polls)


def test_auto_with_chunked_sender_loses_nothing_and_learns_chunk_size():
    values, inlet = _receive("auto", 1000.0, 1000, chunk=10)
    assert np.array_equal(values, np.arange(1000, dtype=np.float32))
    assert inlet._waiter._samples_per_arrival() >= 5  # mostly 10-sample arrivals


def test_irregular_stream_auto_blocks():
    wait = InletWait("auto", 0.005, 0.0)
    assert wait.mode == "block"
    with pytest.raises(ValueError, match="wait mode"):
        InletWait("sometimes", 0.005, 250.0)


def test_spin_s_alone_selects_spin_for_older_configs():
    assert LslInlet(name="x", spin_s=0.005).wait == "spin"
    assert LslInlet(name="x").wait == "auto"


def test_auto_predicts_from_the_sender_grid_not_from_a_late_push():
    """Every 5th push is 1.5 ms late (stamped when pushed): auto's predictions stay on the grid."""
    rate, n, late_s = 250.0, 250, 0.0015
    name = f"grid_{uuid.uuid4().hex[:10]}"
    outlet = pylsl.StreamOutlet(pylsl.StreamInfo(name, "Test", 2, rate, "float32", name))
    inlet = LslInlet(source_id=name, wait="auto", clock_sync=False, resolve_timeout_s=5.0)
    inlet.name = "inlet"
    inlet.open({})
    t0 = pylsl.local_clock() + 0.1

    def push() -> None:
        for i in range(n):
            stamp = t0 + i / rate + (late_s if i % 5 == 3 else 0.0)
            delay = stamp - pylsl.local_clock()
            if delay > 0:
                time.sleep(delay)
            outlet.push_chunk(np.full((1, 2), i, dtype=np.float32), [stamp])

    thread = threading.Thread(target=push, daemon=True)
    thread.start()
    waiter = inlet._waiter
    got, predicted = [], []
    deadline = time.monotonic() + n / rate + 10.0
    while sum(len(g) for g in got) < n and time.monotonic() < deadline:
        waiter.due = 0.0
        transit = waiter.schedule.transit
        out = inlet.read()
        if out:
            got.append(out["out"].data[:, 0])
            if waiter.due and sum(len(g) for g in got) > 40:
                predicted.append(waiter.due - transit)
    thread.join(5.0)
    inlet.close()
    del outlet
    assert np.array_equal(np.concatenate(got), np.arange(n, dtype=np.float32))
    assert len(predicted) >= 20, len(predicted)  # most reads wait (a loaded machine buffers some)
    off = [abs((t - t0) * rate - round((t - t0) * rate)) for t in predicted]
    assert max(off) < 0.05, sorted(off)[-5:]  # on a grid slot; the old rule was 0.375 periods off after a late push


def test_auto_yields_between_polls_by_default_and_the_environment_overrides(monkeypatch):
    """auto's polling window sits on the sender's push time: it yields the CPU between empty polls
    unless SPIKELOOP_POLL_YIELD=0; spin keeps the core unless SPIKELOOP_POLL_YIELD=1."""
    from nodes.sources.lsl_wait import InletWait

    monkeypatch.delenv("SPIKELOOP_POLL_YIELD", raising=False)
    assert InletWait("auto", 0.005, 250.0).polite and not InletWait("spin", 0.005, 250.0).polite
    monkeypatch.setenv("SPIKELOOP_POLL_YIELD", "0")
    assert not InletWait("auto", 0.005, 250.0).polite
    monkeypatch.setenv("SPIKELOOP_POLL_YIELD", "1")
    assert InletWait("spin", 0.005, 250.0).polite


def test_busy_rule_trips_on_repeated_late_yields_only_and_backs_off_longer_while_busy():
    from nodes.sources.lsl_wait import BUSY_BACKOFF_S, BUSY_TRIP, BUSY_WINDOW

    wait = InletWait("auto", 0.005, 250.0)

    def polled(late: bool) -> None:
        wait._late = late
        wait._watch_busy()

    for i in range(5 * BUSY_WINDOW):  # a lone late yield now and then (a hypervisor hiccup): no switch
        polled(i % BUSY_WINDOW == 0)
    assert wait.busy_backoffs == 0
    for _ in range(BUSY_TRIP):  # the yields keep coming back late: block for the first back-off
        polled(True)
    assert wait.busy_backoffs == 1 and wait.busy_for_s == BUSY_BACKOFF_S[0]
    assert wait._busy_until > time.perf_counter() + 0.5 * BUSY_BACKOFF_S[0]
    for k in range(2, 8):  # still busy after each back-off: longer ones, up to the cap
        for _ in range(BUSY_TRIP):
            polled(True)
        assert wait.busy_backoffs == k
        assert wait.busy_for_s == min(BUSY_BACKOFF_S[0] * 2 ** (k - 1), BUSY_BACKOFF_S[1])
    for _ in range(BUSY_WINDOW):  # a quiet spell: the next back-off is short again
        polled(False)
    for _ in range(BUSY_TRIP):
        polled(True)
    assert wait.busy_for_s == BUSY_BACKOFF_S[0]


def test_auto_blocks_for_a_while_when_another_task_holds_its_core(caplog):
    """A CPU-bound process on the inlet's own core: each yield between polls hands it the core, the
    inlet notices, logs it and blocks (every sample still delivered, in order)."""
    import logging
    import os
    import subprocess
    import sys

    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("needs Linux CPU affinity")
    before = os.sched_getaffinity(0)
    cpu = min(before)
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        os.sched_setaffinity(hog.pid, {cpu})
        os.sched_setaffinity(0, {cpu})  # this thread (and the pusher thread it starts) share the hog's core
        with caplog.at_level(logging.INFO, logger="spikeloop.node.inlet"):
            values, inlet = _receive("auto", 250.0, 750)
    finally:
        os.sched_setaffinity(0, before)
        hog.kill()
        hog.wait(5.0)
    assert np.array_equal(values, np.arange(750, dtype=np.float32))
    assert inlet._waiter.busy_backoffs >= 1
    assert inlet.counters()["busy_switches"] == inlet._waiter.busy_backoffs
    assert any("the machine is busy at" in r.getMessage() for r in caplog.records)
