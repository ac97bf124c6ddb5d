"""The ray-compiled driver's round signal (a FIFO the actors write one tagged byte per step to).

Behaviour, not timing: the driver's wait returns once every writer marked the round, times out
(bounded) when one did not, drops a late round's bytes instead of counting them for the next
round, and a writer that cannot reach the FIFO makes the driver fall back.
"""
from __future__ import annotations

import threading
import time

from pipeline.runners.round_signal import RoundNotifier, RoundSignal


def test_wait_returns_when_every_writer_marked_the_round_and_drops_stale_bytes():
    signal = RoundSignal(writers=2)
    a, b = RoundNotifier(), RoundNotifier()
    try:
        assert a.open(signal.path) and b.open(signal.path)
        a.notify(), b.notify()  # round 0 (the warm-up)
        assert signal.wait(0, 2.0)
        a.notify()  # round 1: only one writer so far
        t0 = time.monotonic()
        assert not signal.wait(1, 0.1)  # bounded: times out, counted
        assert 0.05 < time.monotonic() - t0 < 2.0 and signal.timeouts == 1
        b.notify()  # round 1's late byte arrives after the driver gave up on it
        later = threading.Timer(0.05, lambda: (a.notify(), b.notify()))  # round 2, a moment later
        later.start()
        assert signal.wait(2, 2.0)  # the stale round-1 byte did not count for round 2
        later.join()
        assert a.rounds == b.rounds == 3
    finally:
        a.close(), b.close()
        signal.close()


def test_a_writer_elsewhere_cannot_open_and_the_driver_falls_back(tmp_path):
    notifier = RoundNotifier()
    assert not notifier.open(str(tmp_path / "no_such_fifo"))
    notifier.notify()  # harmless without a FIFO
    signal = RoundSignal(writers=1)
    signal.close()
    assert not signal.wait(1, 0.01)  # closed: never blocks
