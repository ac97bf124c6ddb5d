"""Bessel filter node: chunking invariance against one-shot scipy, block modes, delay, state."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.signal

from pipeline.node import StreamMismatch
from pipeline.packet import Packet, StreamInfo
from pipeline.registry import make_node

RATE = 250.0


def _info(channels: int = 2, rate: float = RATE) -> StreamInfo:
    return StreamInfo("velocity_pred", "Velocity", channels, rate, "float32", units=("mm/s",) * channels)


def _signal(n: int, channels: int = 2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / RATE
    x = np.sin(2 * np.pi * 0.7 * t)[:, None] * np.arange(1, channels + 1) + rng.normal(0, 0.5, (n, channels))
    return x, 1000.0 + t


def _random_chunks(n: int, rng: np.random.Generator, max_chunk: int) -> list[tuple[int, int]]:
    bounds, i = [], 0
    while i < n:
        k = int(rng.integers(1, max_chunk + 1))
        bounds.append((i, min(n, i + k)))
        i += k
    return bounds


def _feed(node, x, stamps, bounds, flush=True):
    ys, ts = [], []
    for a, b in bounds:
        out = node.process("in", Packet(x[a:b], stamps[a:b], 0.0))
        if "out" in out:
            ys.append(out["out"].data)
            ts.append(out["out"].timestamps)
    if flush:
        out = node.flush()
        if "out" in out:
            ys.append(out["out"].data)
            ts.append(out["out"].timestamps)
    return np.concatenate(ys), np.concatenate(ts)


def _block_reference(x: np.ndarray, sos: np.ndarray, block: int, index: int) -> np.ndarray:
    """Straightforward per-sample definition: constant pre-history, sosfiltfilt per block."""
    padded = np.concatenate([np.repeat(x[:1], block - 1, axis=0), x])
    out = np.empty_like(x)
    for t in range(x.shape[0]):
        out[t] = scipy.signal.sosfiltfilt(sos, padded[t:t + block], axis=0)[index]
    return out


def test_design_matches_paper_bessel_4_005():
    node = make_node("bessel", order=4, cutoff_hz=6.25)
    node.open({"in": _info()})
    b, a = scipy.signal.bessel(4, 0.05)
    b2, a2 = scipy.signal.sos2tf(node.sos)
    np.testing.assert_allclose(b2, b, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(a2, a, rtol=1e-9)


@pytest.mark.parametrize("max_chunk", [1, 7, 300])
def test_causal_equals_one_shot_sosfilt_for_any_chunking(max_chunk):
    x, stamps = _signal(1500, channels=3)
    node = make_node("bessel", order=4, cutoff_hz=6.25, mode="causal")
    out_info = node.open({"in": _info(3)})["out"]
    assert out_info.metadata["delay_s"] == 0.0
    ref = scipy.signal.sosfilt(node.sos, x, axis=0)
    rng = np.random.default_rng(max_chunk)
    y, ts = _feed(node, x, stamps, _random_chunks(len(x), rng, max_chunk))
    assert y.shape == x.shape
    np.testing.assert_allclose(y, ref, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(ts, stamps)


def test_block_last_matches_per_sample_definition_and_chunking():
    x, stamps = _signal(300)
    node = make_node("bessel", mode="block", block=32, take="last")
    info = node.open({"in": _info()})["out"]
    assert info.metadata["delay_s"] == 0.0
    ref = _block_reference(x, node.sos, 32, 31)
    for max_chunk in (1, 50):
        node.restore(make_node("bessel", mode="block").state())  # fresh state (empty)
        y, ts = _feed(node, x, stamps, _random_chunks(len(x), np.random.default_rng(max_chunk), max_chunk))
        np.testing.assert_allclose(y, ref, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(ts, stamps)


def test_block_middle_declares_delay_and_shifts_timestamps():
    x, stamps = _signal(300)
    node = make_node("bessel", mode="block", block=32, take="middle")
    info = node.open({"in": _info()})["out"]
    assert info.metadata["delay_s"] == pytest.approx(16 / RATE)  # 64 ms
    ref = _block_reference(np.concatenate([x, np.repeat(x[-1:], 16, axis=0)]), node.sos, 32, 15)[16:]
    first = node.process("in", Packet(x[:10], stamps[:10], 0.0))
    assert first == {}  # the first block//2 inputs produce no output yet
    node2 = make_node("bessel", mode="block", block=32, take="middle")
    node2.open({"in": _info()})
    y, ts = _feed(node2, x, stamps, _random_chunks(len(x), np.random.default_rng(3), 13))
    assert y.shape == x.shape  # flush emits the held-back tail
    np.testing.assert_array_equal(ts, stamps)  # output i is aligned with input i
    np.testing.assert_allclose(y, ref, rtol=0, atol=1e-12)


def test_block_filter_smooths_noise():
    rng = np.random.default_rng(1)
    clean = np.sin(2 * np.pi * 0.2 * np.arange(2000) / RATE)[:, None]  # slow enough that the lag is small
    noisy = clean + rng.normal(0, 0.5, clean.shape)
    for mode, take in (("causal", "last"), ("block", "last"), ("block", "middle")):
        node = make_node("bessel", mode=mode, take=take)
        node.open({"in": _info(1)})
        y, _ = _feed(node, noisy, np.arange(2000.0), [(0, 2000)])
        delay = node.delay_samples
        err_raw = np.mean((noisy - clean) ** 2)
        err = np.mean((y[200:] - clean[200:]) ** 2)
        assert err < 0.5 * err_raw, (mode, take, err, err_raw)
        assert delay in (0, 16)


@pytest.mark.parametrize("mode,take", [("causal", "last"), ("block", "last"), ("block", "middle")])
def test_state_restore_resumes_exactly(mode, take):
    x, stamps = _signal(400)
    a = make_node("bessel", mode=mode, take=take)
    a.open({"in": _info()})
    y_full, t_full = _feed(a, x, stamps, [(0, 150), (150, 400)])
    b = make_node("bessel", mode=mode, take=take)
    b.open({"in": _info()})
    head = b.process("in", Packet(x[:150], stamps[:150], 0.0))
    saved = b.state()
    b.process("in", Packet(x[150:200] * 5, stamps[150:200], 0.0))  # diverge, then roll back
    c = make_node("bessel", mode=mode, take=take)
    c.open({"in": _info()})
    c.restore(saved)
    tail, tail_t = _feed(c, x, stamps, [(150, 400)])
    y = np.concatenate([head["out"].data, tail]) if head else tail
    np.testing.assert_array_equal(y, y_full)


def test_nonfinite_inputs_are_held_and_counted():
    x, stamps = _signal(100)
    x[10, 0] = np.nan
    x[11, 1] = np.inf
    node = make_node("bessel")
    node.open({"in": _info()})
    y, _ = _feed(node, x, stamps, [(0, 100)])
    assert np.isfinite(y).all()
    assert node.counters()["nonfinite"] == 2
    fixed = x.copy()
    fixed[10, 0], fixed[11, 1] = x[9, 0], x[10, 1]
    np.testing.assert_allclose(y, scipy.signal.sosfilt(node.sos, fixed, axis=0), atol=1e-12)


def test_bad_params_and_streams_are_refused():
    with pytest.raises(ValueError, match="mode"):
        make_node("bessel", mode="acausal")
    with pytest.raises(ValueError, match="take"):
        make_node("bessel", take="first")
    node = make_node("bessel", cutoff_hz=200.0)
    with pytest.raises(ValueError, match="cutoff_hz"):
        node.open({"in": _info()})
    with pytest.raises(StreamMismatch):
        make_node("bessel").open({"in": _info(rate=0.0)})


@pytest.mark.parametrize("dtype", ["float32", "float64", "int16", "float16"])
def test_one_call_live_path_equals_clean_then_filter(dtype):
    """Live packets (one sample each) go through one compiled call that holds non-finite inputs and
    filters; it gives exactly what the separate clean-up then filter gives (float16, which numba lacks,
    takes that path itself)."""
    x, stamps = _signal(400, channels=3, seed=3)
    x = (x * 100).astype(dtype)
    if x.dtype.kind == "f":
        x[0:3, 2] = np.nan  # non-finite before any finite value: held at 0
        x[50:55, 0] = np.inf
        x[200, 1] = -np.inf
    node = make_node("bessel", order=4, cutoff_hz=6.25, mode="causal")
    node.open({"in": StreamInfo("raw", "EEG", 3, RATE, dtype)})
    y, _ = _feed(node, x, stamps, [(i, i + 1) for i in range(len(x))], flush=False)

    ref = make_node("bessel", order=4, cutoff_hz=6.25, mode="causal")
    ref.open({"in": StreamInfo("raw", "EEG", 3, RATE, dtype)})
    want = ref._sos_filter(ref.sos, ref._clean(x), ref._zi)  # the two-step path on the whole signal
    np.testing.assert_array_equal(y, want)
    assert node.counters()["nonfinite"] == ref.counters()["nonfinite"] == (9 if x.dtype.kind == "f" else 0)
    np.testing.assert_array_equal(node.state()["last_finite"], ref.state()["last_finite"])
