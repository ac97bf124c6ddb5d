"""Linear decoder (fit, model file, streaming node), R² scoring and the velocity scorer sink."""
from __future__ import annotations

import numpy as np
import pytest

from nodes.decoders.linear import LinearModel, fit_linear, history_features
from pipeline.errors import UserError
from pipeline.node import StreamMismatch
from pipeline.packet import Packet, StreamInfo
from pipeline.recordings.base import RecordedStream, Recording
from pipeline.recordings.reaching import reaching_from_recording
from pipeline.recordings.synth import ReachingSimulator, SynthParams, generate, stream_infos
from pipeline.registry import make_node
from pipeline.scoring import r2_per_axis, r2_score


@pytest.fixture(scope="module")
def data():
    """3 minutes of simulated reaching, 48 channels, in memory."""
    p = SynthParams(channels=48, seed=21)
    block = ReachingSimulator(p).next_block(250 * 180)
    infos = stream_infos(48)
    rec = Recording({k: RecordedStream(infos[k], *block[k]) for k in block})
    return reaching_from_recording(rec, name="sim")


def test_r2_definition():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(500, 2))
    assert r2_score(y, y) == 1.0
    assert r2_score(y, np.tile(y.mean(axis=0), (500, 1))) == pytest.approx(0.0, abs=1e-12)
    p = y + rng.normal(scale=0.5, size=y.shape)
    manual = [1 - np.sum((y[:, k] - p[:, k]) ** 2) / (500 * np.var(y[:, k])) for k in range(2)]
    np.testing.assert_allclose(r2_per_axis(y, p), manual)
    assert np.isnan(r2_per_axis(np.ones((5, 1)), np.zeros((5, 1)))[0])
    with pytest.raises(ValueError, match="differ"):
        r2_score(y, y[:, :1])


def test_history_features_match_direct_sums():
    rng = np.random.default_rng(1)
    x = rng.poisson(0.5, size=(50, 3)).astype(float)
    f = history_features(x, 6, 2)
    for t in (0, 1, 5, 49):
        for g in range(3):
            rows = [t - g * 2 - j for j in range(2)]
            want = sum(x[r] for r in rows if r >= 0)
            np.testing.assert_array_equal(f[t, g * 3:(g + 1) * 3], want)
    # chunked with carried history equals one shot
    f2 = np.vstack([history_features(x[:17], 6, 2), history_features(x[17:], 6, 2, previous=x[12:17])])
    np.testing.assert_array_equal(f, f2)


def test_fit_gives_realistic_r2(data):
    model = fit_linear(data)
    pred = model.predict(data.spikes)
    test = data.split["test"]
    r2_test = r2_score(data.velocity[test], pred[test])
    assert 0.3 < r2_test < 0.9, r2_test  # a real decoder on noisy units: far from 0 and from 1
    assert r2_test < model.train_r2 + 0.1
    tr = data.split["train"]
    assert model.train_r2 == pytest.approx(r2_score(data.velocity[tr], pred[tr]), abs=1e-9)
    # shuffled spikes carry no information about velocity
    rng = np.random.default_rng(0)
    shuffled = data.spikes[rng.permutation(data.spikes.shape[0])]
    assert r2_score(data.velocity[test], model.predict(shuffled)[test]) < 0.1


def test_streaming_node_equals_offline_and_model_file(data, tmp_path):
    model = fit_linear(data, history_bins=32, group_bins=8, alpha=10.0)
    path = model.save(tmp_path / "linear.npz")
    node = make_node("linear_decoder", model=str(path))
    info = StreamInfo("spikes", "SpikeCounts", 48, 250.0, "int16")
    out_info = node.open({"in": info})["out"]
    assert out_info.channel_labels == ("vx", "vy") and out_info.units == ("mm/s", "mm/s")
    n = 3000
    ts = np.arange(n) / 250.0
    rows, stamps = [], []
    sizes = [1, 5, 1, 250, 3]
    a = 0
    while a < n:
        b = min(n, a + sizes[len(rows) % len(sizes)])
        out = node.process("in", Packet(data.spikes[a:b].astype(np.int16), ts[a:b], 0.0))["out"]
        rows.append(out.data)
        stamps.append(out.timestamps)
        a = b
    np.testing.assert_allclose(np.vstack(rows), model.predict(data.spikes[:n]).astype(np.float32), rtol=1e-5, atol=1e-3)
    np.testing.assert_array_equal(np.concatenate(stamps), ts)
    with pytest.raises(StreamMismatch, match="channel count"):
        make_node("linear_decoder", model=str(path)).open({"in": info.with_(channel_count=96)})
    with pytest.raises(StreamMismatch, match="rate"):
        make_node("linear_decoder", model=str(path)).open({"in": info.with_(nominal_rate=1000.0)})
    with pytest.raises(UserError, match="exactly one"):
        make_node("linear_decoder")
    bad = np.array(data.spikes[:2], dtype=float)
    bad[0, 0] = np.nan
    node.process("in", Packet(bad, ts[:2], 0.0))
    assert node.counters()["nonfinite"] == 1


def test_fit_recording_node_and_scorer_split(tmp_path):
    path = tmp_path / "s.xdfz"
    generate(path, SynthParams(channels=24, seed=5), 150.0, progress=False)
    replay = make_node("replay", path=str(path), streams=["spikes", "velocity"], speed="max", chunk_s=0.2)
    infos = replay.open({})
    decoder = make_node("linear_decoder", fit_recording=str(path), save_to=str(tmp_path / "m.npz"))
    dec_info = decoder.open({"in": infos["spikes"]})["out"]
    scorer = make_node("velocity_scorer", split="test", recording=str(path))
    scorer.open({"pred": dec_info, "true": infos["velocity"]})
    whole = make_node("velocity_scorer")
    whole.open({"pred": dec_info, "true": infos["velocity"]})
    preds, trues = [], []
    while (got := replay.read()) is not None:
        pred = decoder.process("in", got["spikes"])["out"]
        for s in (scorer, whole):
            s.process("true", got["velocity"])
            s.process("pred", pred)
        preds.append(pred.data)
        trues.append(got["velocity"].data)
    from pipeline.recordings.reaching import load_reaching

    d = load_reaching(path)
    test = d.split["test"]
    report = scorer.report()
    assert report["n"] == test.stop - test.start and report["unmatched"] == 0
    assert report["r2"] == pytest.approx(r2_score(np.vstack(trues)[test], np.vstack(preds)[test]), abs=1e-5)
    assert report["r2"] == pytest.approx((report["r2_x"] + report["r2_y"]) / 2, abs=1e-5)
    assert 0.2 < report["r2"] < 0.9
    assert whole.report()["n"] == d.spikes.shape[0]
    assert LinearModel.load(tmp_path / "m.npz").channels == 24
    # a time window relative to the first sample
    win = make_node("velocity_scorer", from_s=10.0, to_s=20.0)
    win.open({"pred": dec_info, "true": infos["velocity"]})
    win.process("true", Packet(np.vstack(trues), d.timestamps, 0.0))
    win.process("pred", Packet(np.vstack(preds), d.timestamps, 0.0))
    assert win.report()["n"] == 2501
    # a prediction without a matching true sample is counted
    win.process("pred", Packet(np.zeros((1, 2)), np.array([1e6]), 0.0))
    assert win.report()["unmatched"] == 1
    with pytest.raises(UserError, match="recording"):
        make_node("velocity_scorer", split="test")
