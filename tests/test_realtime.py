"""The live data path's garbage-collector setting: set-up objects frozen, new cycles still collected."""
from __future__ import annotations

import gc

from pipeline.runners.realtime import freeze_setup_objects


def test_setup_objects_are_frozen_and_new_cycles_are_still_collected():
    try:
        frozen = freeze_setup_objects()
        assert frozen > 1000  # pytest, numpy and friends: everything alive now is frozen
        assert gc.isenabled()

        class Node:
            pass

        a, b = Node(), Node()
        a.other, b.other = b, a  # a reference cycle made after set-up
        del a, b
        assert gc.collect() >= 2  # still found and freed
    finally:
        gc.unfreeze()


def _sched_slice_ns(tid: int) -> int | None:
    """The thread's ``se.slice`` as the kernel reports it (ns), or None if not shown."""
    try:
        text = open(f"/proc/self/task/{tid}/sched").read()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("se.slice"):
            return int(line.split(":")[1])
    return None


def test_short_slice_is_opt_in_and_applies_to_the_calling_thread(monkeypatch):
    import threading

    import pytest

    from pipeline.runners.realtime import SLICE_ENV, request_short_slice

    got: dict[str, object] = {}

    def in_thread(value: str) -> None:
        monkeypatch.setenv(SLICE_ENV, value)
        got[value] = (request_short_slice(), _sched_slice_ns(threading.get_native_id()))

    for value in ("0", "200"):  # a thread of its own: the test session's threads keep their slice
        t = threading.Thread(target=in_thread, args=(value,))
        t.start()
        t.join(10)
    off, kernel_before = got["0"]
    assert off is None
    on, kernel_after = got["200"]
    if on is None or kernel_before is None:
        pytest.skip("this kernel has no per-thread slice (EEVDF custom slices need Linux >= 6.12)")
    assert on == 200_000 and kernel_after == 200_000  # read back by the call and by /proc alike


def test_actor_switch_interval_override(monkeypatch):
    """Group actors set a 0.2 ms interpreter switch interval; SPIKELOOP_SWITCH_INTERVAL_US overrides it
    (A/B diagnostic), and a malformed value keeps the default."""
    from pipeline.runners import ray_runner

    monkeypatch.delenv("SPIKELOOP_SWITCH_INTERVAL_US", raising=False)
    assert ray_runner._switch_interval_s() == ray_runner.SWITCH_INTERVAL_S == 0.0002
    monkeypatch.setenv("SPIKELOOP_SWITCH_INTERVAL_US", "5000")
    assert ray_runner._switch_interval_s() == 0.005
    monkeypatch.setenv("SPIKELOOP_SWITCH_INTERVAL_US", "fast")
    assert ray_runner._switch_interval_s() == 0.0002
