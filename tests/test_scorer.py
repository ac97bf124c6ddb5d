"""Velocity scorer: streaming sufficient statistics equal the old keep-every-packet method.

The reference below is the scorer's pairing and R² as they were before the scorer became
streaming (``nodes/sinks/scorer.py`` and ``pipeline/scoring.py`` at commit 6294113), copied
verbatim in substance: concatenate every packet, pair each prediction with the true sample of
equal timestamp (first received among equals), select by split index or time window, R² per axis
``1 - SSE / (N var)``.
"""
from __future__ import annotations

import json
import logging
import math

import numpy as np
import pytest

from nodes.sinks.scorer import VelocityScorer
from pipeline.packet import Packet, StreamInfo
from pipeline.scoring import R2Accumulator

SAMPLE = "recordings/reaching_sample.xdfz"
INFO = StreamInfo("velocity", "Velocity", 2, 250.0, channel_labels=("vx", "vy"))


# --- the old method (reference) ------------------------------------------------------------------
def old_r2_per_axis(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    sse = np.sum((y - p) ** 2, axis=0)
    denom = y.shape[0] * np.var(y, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denom > 0, 1.0 - sse / np.where(denom > 0, denom, 1.0), np.nan)


def old_pairs(true_pk, pred_pk, width, sl=None, from_s=None, to_s=None):
    def cat(packets):
        if not packets:
            return np.zeros((0, width)), np.zeros(0)
        return (np.concatenate([np.asarray(d, dtype=np.float64) for d, _ in packets]),
                np.concatenate([t for _, t in packets]))

    y, ty = cat(true_pk)
    p, tp = cat(pred_pk)
    keep = np.ones(ty.shape[0], dtype=bool)
    if sl is not None:
        idx = np.arange(ty.shape[0])
        keep &= (idx >= sl.start) & (idx < sl.stop)
    elif ty.size and (from_s is not None or to_s is not None):
        rel = ty - ty[0]
        if from_s is not None:
            keep &= rel >= from_s - 1e-9
        if to_s is not None:
            keep &= rel <= to_s + 1e-9
    if ty.size == 0:
        return np.zeros((0, width)), np.zeros((0, width)), int(tp.size)
    order = np.argsort(ty, kind="stable")
    sorted_ty = ty[order]
    pos = np.minimum(np.searchsorted(sorted_ty, tp), ty.size - 1)
    matched = sorted_ty[pos] == tp
    unmatched = int((~matched).sum())
    true_idx = order[pos[matched]]
    sel = keep[true_idx]
    return y[true_idx[sel]], p[matched][sel], unmatched


# --- helpers ---------------------------------------------------------------------------------------
def chunks(rng, data, stamps, lo=1, hi=40):
    out, i = [], 0
    while i < len(stamps):
        k = int(rng.integers(lo, hi))
        out.append((data[i:i + k], stamps[i:i + k]))
        i += k
    return out


def interleave(rng, true_pk, pred_pk):
    """Arrival order: each prediction packet some packets after (or before) the true ones."""
    events = [(i + 0.0, "true", pk) for i, pk in enumerate(true_pk)]
    # each stream stays in order (FIFO); the prediction stream leads or lags by a random amount
    at = np.maximum.accumulate(np.arange(len(pred_pk)) + rng.integers(-3, 12, len(pred_pk)) + 0.5)
    events += [(float(a), "pred", pk) for a, pk in zip(at, pred_pk)]
    events.sort(key=lambda e: e[0])
    return [(port, pk) for _, port, pk in events]


def feed(scorer, arrivals, t_enter=0.0):
    for seq, (port, (data, stamps)) in enumerate(arrivals):
        scorer.process(port, Packet(data=data, timestamps=stamps, seq=seq, t_enter=t_enter))


def synthetic(seed, n=6000):
    """True velocity on a 4 ms grid; predictions for most samples, some off-grid, some after the end."""
    rng = np.random.default_rng(seed)
    t = 1000.0 + np.arange(n) * 0.004
    y = np.cumsum(rng.normal(size=(n, 2)), axis=0) * 0.01 + rng.normal(size=(n, 2))
    keep = rng.random(n) > 0.1                      # 10 % of true samples get no prediction
    tp = t[keep].copy()
    off = rng.random(tp.size) < 0.02                # 2 % of predictions have no true sample
    tp[off] += 0.001
    tp = np.concatenate([tp, t[-1] + 0.004 * np.arange(1, 6)])  # 5 past the last true sample
    p = np.concatenate([y[keep], rng.normal(size=(5, 2))]) * 0.8 + rng.normal(size=(tp.size, 2)) * 0.5
    return rng, (y, t), (p, tp)


def scorer_with(**params) -> VelocityScorer:
    s = VelocityScorer(**params)
    s.name = "score"
    s.open({"pred": INFO, "true": INFO})
    return s


# --- tests -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("window", [{}, {"from_s": 5.0}, {"from_s": 3.0, "to_s": 17.5}, {"to_s": 9.0}])
def test_r2_equals_old_method_on_random_chunking(window):
    for seed in range(3):
        rng, (y, t), (p, tp) = synthetic(seed)
        true_pk, pred_pk = chunks(rng, y, t), chunks(rng, p, tp)
        scorer = scorer_with(**window)
        feed(scorer, interleave(rng, true_pk, pred_pk))
        ry, rp, unmatched = old_pairs(true_pk, pred_pk, 2, **window)
        ref = old_r2_per_axis(ry, rp)
        np.testing.assert_allclose(scorer.r2_per_axis(), ref, rtol=0, atol=1e-9)
        rep = scorer.report()
        assert rep["n"] == ry.shape[0] > 100
        assert rep["unmatched"] == unmatched > 0
        assert rep["dropped"] == 0 and rep["nan_true"] == 0
        assert abs(rep["r2"] - round(float(np.mean(ref)), 6)) <= 1.0000001e-6
        assert abs(rep["r2_x"] - round(float(ref[0]), 6)) <= 1.0000001e-6


def test_split_r2_equals_old_method_on_the_bundled_recording():
    from pipeline.recordings.reaching import load_reaching

    data = load_reaching(SAMPLE)
    y = np.asarray(data.velocity, dtype=np.float64)
    t = np.asarray(data.timestamps, dtype=np.float64)
    rng = np.random.default_rng(7)
    p = y * 0.7 + rng.normal(size=y.shape) * 0.05
    true_pk, pred_pk = chunks(rng, y, t), chunks(rng, p, t)
    arrivals = interleave(rng, true_pk, pred_pk)
    for part in ("train", "val", "test"):
        scorer = scorer_with(split=part, recording=SAMPLE)
        feed(scorer, arrivals)
        ry, rp, unmatched = old_pairs(true_pk, pred_pk, 2, sl=data.split[part])
        np.testing.assert_allclose(scorer.r2_per_axis(), old_r2_per_axis(ry, rp), rtol=0, atol=1e-9)
        assert scorer.report()["n"] == ry.shape[0] == data.split[part].stop - data.split[part].start
        assert unmatched == 0 == scorer.report()["unmatched"]


def test_memory_stays_bounded_over_a_long_session():
    """1e6 pairs (over an hour at 250 Hz): the scorer's arrays keep their size (counts, not time)."""
    rng = np.random.default_rng(1)
    scorer = scorer_with()
    sizes = None
    t0, n_packets, k = 0.0, 0, 250
    acc_ref = R2Accumulator(2)
    for i in range(4_002):
        t = t0 + np.arange(k) * 0.004
        t0 = t[-1] + 0.004
        y = rng.normal(size=(k, 2))
        p = y + rng.normal(size=(k, 2)) * 0.3
        scorer.process("true", Packet(data=y, timestamps=t, seq=i, t_enter=0.0))
        if i >= 2:  # predictions lag the true stream by two packets
            scorer.process("pred", Packet(data=prev2[0], timestamps=prev2[1], seq=i, t_enter=0.0))
            acc_ref.add(prev2[2], prev2[0])
            n_packets += 1
        prev2, prev1 = (prev1 if i >= 1 else None), (p, t, y)
        if i == 100:
            scorer.counters()  # pairs what is staged
            sizes = {key: np.asarray(v).nbytes for key, v in vars(scorer).items() if isinstance(v, np.ndarray)}
            waiting = scorer._r1 - scorer._r0
    counts = scorer.counters()  # pairs what is staged
    assert scorer._acc.n == n_packets * k == 1_000_000
    assert counts == {"unmatched": 0, "dropped": 0, "true_evicted": 0, "true_backwards": 0, "nan_true": 0,
                      "nan_pred": 0}
    after = {key: np.asarray(v).nbytes for key, v in vars(scorer).items() if isinstance(v, np.ndarray)}
    assert after == sizes
    assert scorer._r1 - scorer._r0 == waiting <= 3 * k + scorer.STAGE  # only the lag waits
    assert len(scorer._pending) == 0
    np.testing.assert_allclose(scorer.r2_per_axis(), acc_ref.r2_per_axis(), rtol=0, atol=1e-9)


def test_nan_and_inf_are_counted_excluded_and_logged_once(caplog):
    rng, (y, t), (p, tp) = synthetic(5, n=2000)
    y = y.copy()
    p = p.copy()
    y[[10, 20, 30], 0] = np.nan
    y[40, 1] = np.inf
    p[[50, 60], 1] = np.nan
    true_pk, pred_pk = chunks(rng, y, t), chunks(rng, p, tp)
    scorer = scorer_with()
    with caplog.at_level(logging.WARNING, logger="spikeloop.node.score"):
        feed(scorer, interleave(rng, true_pk, pred_pk))
    rep = scorer.report()
    assert rep["nan_true"] == 4 and rep["nan_pred"] == 2
    # reference: the old method on the pairs with every NaN/Inf pair removed
    ry, rp, _ = old_pairs(true_pk, pred_pk, 2)
    ok = np.isfinite(ry).all(axis=1) & np.isfinite(rp).all(axis=1)
    assert (~ok).sum() >= 1
    np.testing.assert_allclose(scorer.r2_per_axis(), old_r2_per_axis(ry[ok], rp[ok]), rtol=0, atol=1e-9)
    assert rep["n"] == int(ok.sum())
    assert all(math.isfinite(rep[k]) for k in ("r2", "r2_x", "r2_y"))
    msgs = [r.getMessage() for r in caplog.records if r.name == "spikeloop.node.score"]
    assert len([m for m in msgs if "nan_true" in m]) == 1 and len([m for m in msgs if "nan_pred" in m]) == 1
    assert f"t={t[10]:.6f}" in " ".join(msgs)


def test_bounded_buffers_count_what_they_push_out():
    scorer = scorer_with(max_pending=100)
    t = np.arange(500) * 0.004
    y = np.random.default_rng(0).normal(size=(500, 2))
    scorer.process("true", Packet(data=y, timestamps=t, seq=0, t_enter=0.0))      # 400 pushed out of the ring
    scorer.process("pred", Packet(data=y, timestamps=t, seq=0, t_enter=0.0))      # their predictions: dropped
    rep = scorer.report()
    assert scorer.counters()["true_evicted"] == 400
    assert rep["dropped"] == 400 and rep["n"] == 100 and rep["unmatched"] == 0
    later = 10.0 + np.arange(300) * 0.004                              # no true sample yet: they wait
    scorer.process("pred", Packet(data=y[:300], timestamps=later, seq=1, t_enter=0.0))
    counts = scorer.counters()
    assert counts["dropped"] == 400 + 200 and counts["unmatched"] == 100  # 100 still waiting


def test_constant_truth_gives_none_and_strict_json():
    scorer = scorer_with()
    t = np.arange(10) * 0.004
    scorer.process("true", Packet(data=np.ones((10, 2)), timestamps=t, seq=0, t_enter=0.0))
    scorer.process("pred", Packet(data=np.zeros((10, 2)), timestamps=t, seq=0, t_enter=0.0))
    rep = scorer.report()
    assert rep["r2"] is None and rep["r2_x"] is None and rep["n"] == 10
    json.dumps(rep, allow_nan=False)


def test_state_restore_resumes_identically():
    rng, (y, t), (p, tp) = synthetic(3)
    arrivals = interleave(rng, chunks(rng, y, t), chunks(rng, p, tp))
    whole = scorer_with()
    feed(whole, arrivals)
    first = scorer_with()
    feed(first, arrivals[: len(arrivals) // 2])
    second = scorer_with()
    second.restore(first.state())
    feed(second, arrivals[len(arrivals) // 2:])
    assert second.counters() == whole.counters() and second.report()["n"] == whole.report()["n"] > 100
    np.testing.assert_allclose(second.r2_per_axis(), whole.r2_per_axis(), rtol=0, atol=1e-12)


def test_nan_in_recorded_true_velocity_end_to_end_gives_strict_json(tmp_path, caplog):
    """The issue's case: NaN in the true velocity of a replayed recording, scored, --json written."""
    from pipeline.graph import load_graph
    from pipeline.metrics import write_json
    from pipeline.recordings import load_recording
    from pipeline.recordings.base import RecordedStream, Recording
    from pipeline.recordings.xdf_writer import write_xdf
    from pipeline.runners import get_runner

    rec = load_recording(SAMPLE)
    n = 2500  # 10 s
    streams = {}
    for name in ("spikes", "velocity"):
        s = rec.streams[name]
        data = np.array(s.data[:n], copy=True)
        if name == "velocity":
            data[[100, 200, 300], 0] = np.nan
            data[400, 1] = np.inf
        streams[name] = RecordedStream(s.info, data, np.array(s.timestamps[:n]))
    path = write_xdf(tmp_path / "nan.xdfz", Recording(streams, dict(rec.metadata)))
    spec = load_graph("configs/replay_decode.yaml", [f"replay.path={path}"])
    with caplog.at_level(logging.WARNING, logger="spikeloop.node.score"):
        summary = get_runner("local")(spec, progress=False)
    write_json(summary, tmp_path / "s.json")
    back = json.loads((tmp_path / "s.json").read_text(), parse_constant=_reject)
    score = back["reports"]["score"]
    assert score["nan_true"] == 4 and score["n"] == n - 4
    assert math.isfinite(score["r2"])
    assert back["nodes"]["score"]["counters"]["nan_true"] == 4
    assert any("nan_true" in r.getMessage() for r in caplog.records)


def _reject(const: str):
    raise ValueError(f"invalid JSON constant {const}")
