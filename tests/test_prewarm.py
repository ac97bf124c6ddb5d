"""Warming a live group's nodes before a sample is due (``Node.warm``, the inlet's ``prewarm``).

What is asserted is that warming changes nothing a user can see: outputs, state and counters of a
node warmed before every sample equal a never-warmed twin's, bit for bit; the runner installs the
prewarm on a group's sources (and ``SPIKELOOP_PREWARM=0`` does not); an ``auto`` inlet calls it once
per arrival it polls for, a ``block`` inlet never. What it buys is measured by
``spikeloop bench latency-path --variant SPIKELOOP_PREWARM=0`` (docs/RESULTS.md), not here.
"""
from __future__ import annotations

import uuid

import numpy as np
import pylsl
import pytest

from nodes.sources.lsl_inlet import LslInlet
from pipeline.packet import Packet, StreamInfo
from pipeline.registry import make_node
from pipeline.runners.executor import GroupExecutor, NodeFailure
from tests.test_lsl_wait import _pusher

RATE = 250.0


def _assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], dict):
            _assert_same_state(a[key], b[key])
        else:
            np.testing.assert_array_equal(np.asarray(a[key]), np.asarray(b[key]), err_msg=key)


def _bessel(dtype: str = "float32"):
    node = make_node("bessel", order=4, cutoff_hz=6.25, mode="causal")
    node.open({"in": StreamInfo("raw", "SpikeCounts", 96, RATE, dtype)})
    return node


def _decoder(model: str = "models/snn_streaming_sample.npz"):
    node = make_node("decoder", model=model)
    node.open({"in": StreamInfo("smooth", "SpikeCounts", 96, RATE, "float64")})
    return node


@pytest.mark.parametrize("dtype", ["float32", "float64", "int16"])
def test_bessel_warmed_before_every_sample_equals_a_twin_never_warmed(dtype):
    rng = np.random.default_rng(1)
    x = (rng.poisson(2.0, (300, 96)) * 3).astype(dtype)
    if x.dtype.kind == "f":
        x[20:23, 5] = np.nan  # held and counted: the warm pass must not touch the count or the hold
        x[100, 7] = np.inf
    warmed, twin = _bessel(dtype), _bessel(dtype)
    for t in range(len(x)):
        warmed.warm()
        warmed.warm()  # twice: still nothing changes
        a = warmed.process("in", Packet(x[t:t + 1], np.array([t / RATE]), 0.0))["out"].data
        b = twin.process("in", Packet(x[t:t + 1], np.array([t / RATE]), 0.0))["out"].data
        np.testing.assert_array_equal(a, b)
    _assert_same_state(warmed.state(), twin.state())
    assert warmed.counters() == twin.counters()
    warmed.warm()  # it ran the filter on a copy of the state: the copy moved by one zero sample
    zi, last = warmed._zi.copy(), warmed._last_finite.copy()
    warmed._sos_filter_hold(warmed.sos, np.zeros((1, 96), dtype=dtype), zi, last)
    np.testing.assert_array_equal(warmed._warm_zi, zi)
    _assert_same_state(warmed.state(), twin.state())


def test_bessel_block_mode_warm_is_a_no_op():
    node = make_node("bessel", order=4, cutoff_hz=6.25, mode="block", block=32)
    node.open({"in": StreamInfo("raw", "SpikeCounts", 4, RATE, "float32")})
    before = node.state()
    node.warm()
    _assert_same_state(before, node.state())


@pytest.mark.parametrize("model", ["models/snn_streaming_sample.npz", "models/ann_sample.npz"])
def test_decoder_warmed_before_every_sample_equals_a_twin_never_warmed(model):
    rng = np.random.default_rng(2)
    x = rng.poisson(0.3, (300, 96)).astype(np.float64) * 0.7  # non-integer, as after the Bessel filter
    x[50, 3] = np.nan
    warmed, twin = _decoder(model), _decoder(model)
    for t in range(len(x)):
        warmed.warm()
        a = warmed.process("in", Packet(x[t:t + 1], np.array([t / RATE]), 0.0))["out"].data
        b = twin.process("in", Packet(x[t:t + 1], np.array([t / RATE]), 0.0))["out"].data
        np.testing.assert_array_equal(a, b)
    _assert_same_state(warmed.state(), twin.state())
    assert warmed.counters() == twin.counters()
    # the SNN's one-call path ran on scratch state; the ANN has no warm pass (nothing to check there)
    assert (warmed.kernel.__dict__.get("_warm_state") is not None) == ("snn_streaming" in model)


def test_the_runner_gives_sources_a_prewarm_that_warms_the_group(monkeypatch):
    inlet = LslInlet(source_id="never_opened")
    bessel, decoder = _bessel("float64"), _decoder()
    bessel.process("in", Packet(np.ones((1, 96)), np.array([0.0]), 0.0))
    ex = GroupExecutor({"inlet": inlet, "smooth": bessel, "decoder": decoder}, {}, [])
    assert callable(inlet.prewarm)
    states = (bessel.state(), decoder.state())
    inlet.prewarm()
    _assert_same_state(states[0], bessel.state())
    _assert_same_state(states[1], decoder.state())

    def broken() -> None:
        raise RuntimeError("scratch buffer gone")

    decoder.warm = broken
    ex = GroupExecutor({"inlet": inlet, "smooth": bessel, "decoder": decoder}, {}, [])
    with pytest.raises(NodeFailure, match=r"node 'decoder' failed in warm\(\): RuntimeError: scratch buffer gone"):
        inlet.prewarm()

    monkeypatch.setenv("SPIKELOOP_PREWARM", "0")
    off = LslInlet(source_id="never_opened")
    GroupExecutor({"inlet": off, "smooth": _bessel("float64")}, {}, [])
    assert off.prewarm is None
    alone = LslInlet(source_id="never_opened")
    monkeypatch.delenv("SPIKELOOP_PREWARM")
    GroupExecutor({"inlet": alone}, {}, [])  # nothing to warm in the group: nothing installed
    assert alone.prewarm is None


@pytest.mark.parametrize("wait", ["auto", "block"])
def test_an_auto_inlet_prewarms_once_per_arrival_it_polls_for(wait):
    name = f"prewarm_{uuid.uuid4().hex[:10]}"
    outlet = pylsl.StreamOutlet(pylsl.StreamInfo(name, "Test", 2, RATE, "float32", name))
    inlet = LslInlet(source_id=name, wait=wait, clock_sync=False, resolve_timeout_s=5.0)
    inlet.name = "inlet"
    inlet.open({})
    calls = []
    inlet.prewarm = lambda: calls.append(1)
    pusher = _pusher(outlet, RATE, 250)
    pusher.start()
    got, reads = 0, 0
    while got < 250 and reads < 5000:
        out = inlet.read()
        reads += 1
        if out:
            got += out["out"].data.shape[0]
    pusher.join(5.0)
    inlet.close()
    del outlet
    assert got == 250
    assert len(calls) == inlet._waiter.prewarms
    if wait == "auto":
        # after the schedule is learnt (8 pulls), reads that wait poll for a predicted arrival
        assert 0 < len(calls) <= reads
    else:
        assert calls == []
