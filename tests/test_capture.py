"""Capture sink: running digest independent of chunking; a bounded keep."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

from nodes.sinks.capture import Capture
from pipeline.errors import UserError
from pipeline.packet import Packet, StreamInfo

INFO = StreamInfo("x", "Test", 3, 100.0)


def run(capture: Capture, data: np.ndarray, stamps: np.ndarray, sizes: list[int]) -> dict:
    capture.open({"in": INFO})
    i = 0
    for seq, k in enumerate(sizes):
        capture.process("in", Packet(data=data[i:i + k], timestamps=stamps[i:i + k], seq=seq, t_enter=0.0))
        i += k
    assert i == data.shape[0]
    return capture.report()


def test_digest_covers_every_sample_whatever_the_chunking_and_keep():
    rng = np.random.default_rng(0)
    data, stamps = rng.normal(size=(1000, 3)), np.arange(1000) / 100.0
    a = run(Capture(), data, stamps, [1000])
    b = run(Capture(keep=10), data, stamps, [1] * 500 + [7] * 50 + [150])
    expected = hashlib.sha256(hashlib.sha256(data.tobytes()).digest() + hashlib.sha256(stamps.tobytes()).digest())
    assert a["sha256"] == b["sha256"] == expected.hexdigest()[:16]
    assert a["samples"] == b["samples"] == 1000 and b["not_kept"] == 990
    assert (a["first_t"], a["last_t"]) == (0.0, 9.99)
    other = data.copy()
    other[500, 1] += 1e-12
    assert run(Capture(keep=0), other, stamps, [1000])["sha256"] != a["sha256"]


def test_bounded_keep_holds_the_newest_samples():
    data, stamps = np.arange(3000.0).reshape(1000, 3), np.arange(1000) / 100.0
    cap = Capture(keep=64)
    run(cap, data, stamps, [3] * 333 + [1])
    kept, kept_t = cap.arrays()
    np.testing.assert_array_equal(kept, data[-64:])
    np.testing.assert_array_equal(kept_t, stamps[-64:])
    assert sum(a.shape[0] for a in cap._data["in"]) == 64
    whole = Capture()
    run(whole, data, stamps, [5] * 200)
    np.testing.assert_array_equal(whole.arrays()[0], data)
    with pytest.raises(UserError, match="keep"):
        Capture(keep=-1)
