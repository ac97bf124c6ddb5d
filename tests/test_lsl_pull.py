"""The inlet's direct liblsl pull (:mod:`nodes.sources.lsl_pull`) against pylsl's own, on loopback.

Same samples, same timestamps, in the same order, for every chunking a sender may use, with and
without waiting; and a pull never returns more than the buffer holds. Timing is a benchmark
(``spikeloop bench latency-path --pull-cost``), not asserted here.
"""
from __future__ import annotations

import time
import uuid

import numpy as np
import pylsl
import pytest

from nodes.sources.lsl_pull import ChunkPuller, make_puller


def _pair(channels: int, dtype: str, maxlen: int = 10) -> tuple[pylsl.StreamOutlet, pylsl.StreamInlet]:
    name = f"pull_{uuid.uuid4().hex[:10]}"
    outlet = pylsl.StreamOutlet(pylsl.StreamInfo(name, "Test", channels, 250.0, dtype, name))
    found = pylsl.resolve_byprop("source_id", name, 1, 5.0)
    assert found, "own outlet not visible on loopback"
    inlet = pylsl.StreamInlet(found[0], max_buflen=maxlen, processing_flags=0)
    inlet.open_stream(5.0)
    return outlet, inlet


def _wait_available(inlet: pylsl.StreamInlet, n: int, timeout: float = 3.0) -> None:
    end = time.monotonic() + timeout
    while inlet.samples_available() < n and time.monotonic() < end:
        time.sleep(0.002)


@pytest.mark.parametrize("dtype,np_dtype", [("float32", np.float32), ("double64", np.float64), ("int16", np.int16)])
def test_direct_pull_equals_pylsl_pull_for_every_chunking(dtype, np_dtype):
    channels = 5
    outlet, inlet = _pair(channels, dtype)
    puller = make_puller(inlet, channels, np_dtype, 16)
    assert isinstance(puller, ChunkPuller)
    rng = np.random.default_rng(1)
    sent = rng.integers(-1000, 1000, size=(60, channels)).astype(np_dtype)
    stamps = 1000.0 + np.arange(60) / 250.0
    got_data, got_ts = [], []
    i = 0
    for k, chunk in enumerate([1, 3, 16, 20, 1, 7, 12]):  # 20 > the buffer: two pulls must take it
        block = sent[i:i + chunk]
        outlet.push_chunk(block, stamps[i:i + chunk].tolist())
        i += chunk
        _wait_available(inlet, 1)
        taken = 0
        while taken < chunk:
            data, ts = puller.pull(0.5 if k % 2 else 0.0)  # waiting and non-waiting pulls alike
            assert data.shape == (len(ts), channels) and len(ts) <= 16
            if not len(ts):
                _wait_available(inlet, 1)
                continue
            got_data.append(data.copy())
            got_ts.append(ts.copy())
            taken += len(ts)
    np.testing.assert_array_equal(np.concatenate(got_data), sent)
    np.testing.assert_array_equal(np.concatenate(got_ts), stamps)
    # what pylsl's own pull gives for the same stream, sent the same way
    outlet.push_chunk(sent[:8], stamps[:8].tolist())
    _wait_available(inlet, 8)
    ref_data, ref_ts = inlet.pull_chunk(timeout=0.0, max_samples=16, as_numpy=True)
    outlet.push_chunk(sent[:8], stamps[:8].tolist())
    _wait_available(inlet, 8)
    data, ts = puller.pull(0.0)
    np.testing.assert_array_equal(data, ref_data)
    np.testing.assert_array_equal(ts, ref_ts)
    assert data.dtype == ref_data.dtype


def test_empty_pull_returns_nothing_and_waiting_pull_waits_at_most_its_timeout():
    outlet, inlet = _pair(3, "float32")
    puller = make_puller(inlet, 3, np.float32, 8)
    data, ts = puller.pull(0.0)
    assert data.shape == (0, 3) and ts.shape == (0,)
    t0 = time.monotonic()
    data, ts = puller.pull(0.05)
    assert ts.shape == (0,) and time.monotonic() - t0 < 2.0  # bounded by the timeout (generous margin)
    outlet.push_sample([1.0, 2.0, 3.0], 5.0)
    data, ts = puller.pull(2.0)  # the waiting pull returns as soon as the sample is there
    np.testing.assert_array_equal(data, [[1.0, 2.0, 3.0]])
    assert ts.tolist() == [5.0]


def test_string_streams_keep_pylsl_pull():
    name = f"pull_{uuid.uuid4().hex[:10]}"
    outlet = pylsl.StreamOutlet(pylsl.StreamInfo(name, "Markers", 1, 0.0, "string", name))
    found = pylsl.resolve_byprop("source_id", name, 1, 5.0)
    inlet = pylsl.StreamInlet(found[0])
    assert make_puller(inlet, 1, object, 8) is None
    del outlet
