"""``spikeloop train`` / ``spikeloop evaluate`` for decoders on a small generated recording."""
from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.signal

from pipeline.cli import main
from pipeline.modelfile import load_model

C = 16


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    from pipeline.recordings.synth import SynthParams, generate

    path = tmp_path_factory.mktemp("rec") / "reach.xdfz"
    generate(path, SynthParams(channels=C, seed=3), 90.0, progress=False)
    return str(path)


@pytest.fixture(scope="module")
def models(recording, tmp_path_factory):
    out = tmp_path_factory.mktemp("models")
    paths = {}
    for kind, extra in (("snn_streaming", ["--window", "40", "--batch-size", "8"]), ("ann", [])):
        paths[kind] = str(out / f"{kind}.npz")
        rc = main(["train", "--model", kind, "--recording", recording, "--out", paths[kind], "--epochs", "2", *extra])
        assert rc == 0
    return paths


def test_train_writes_data_only_model_with_metadata(models):
    arrays, meta = load_model(models["snn_streaming"])
    assert meta["family"] == "decoder" and meta["kind"] == "snn_streaming"
    assert meta["channels"] == C and meta["rate_hz"] == 250.0
    assert meta["architecture"]["layers"] == [32, 48, 2]
    assert meta["training"]["epochs_run"] == 2 and np.isfinite(meta["training"]["val_r2"])
    assert set(meta["normalisation"]) >= {"target_mean", "target_scale", "input"}
    assert arrays["W0"].shape == (32, C) and arrays["W0"].dtype == np.float32
    assert all(a.dtype != object for a in arrays.values())


def test_training_is_deterministic_for_a_seed(recording, models, tmp_path):
    again = tmp_path / "ann2.npz"
    assert main(["train", "--model", "ann", "--recording", recording, "--out", str(again), "--epochs", "2"]) == 0
    a, _ = load_model(models["ann"])
    b, _ = load_model(again)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_evaluate_reports_scores_through_the_node_code(recording, models, tmp_path):
    from nodes.decoders.data import load_data
    from nodes.decoders.kernels import make_kernel
    from nodes.decoders.metrics import r2

    out, png = tmp_path / "eval.json", tmp_path / "eval.png"
    rc = main(["evaluate", "--model", models["snn_streaming"], models["ann"], "--recording", recording,
               "--json", str(out), "--plot", str(png), "--plot-seconds", "5"])
    assert rc == 0
    report = json.loads(out.read_text())
    assert png.stat().st_size > 10_000
    base, snn, ann = report["models"]
    assert base["model"].startswith("linear baseline") and base["kind"] == "linear"  # issue 16: every table
    assert set(snn["r2"]) == {"none", "causal", "block-last", "block-middle"}
    # independent recomputation: kernel on the whole test part, one-shot scipy filter
    data = load_data(recording)
    sl = data.split["test"]
    arrays, meta = load_model(models["snn_streaming"])
    y = make_kernel(arrays, meta).run(data.spikes[sl]).astype(np.float64)
    assert snn["r2"]["none"] == pytest.approx(r2(data.velocity[sl], y), abs=1e-9)
    sos = scipy.signal.bessel(4, 6.25, fs=250.0, output="sos")
    assert snn["r2"]["causal"] == pytest.approx(r2(data.velocity[sl], scipy.signal.sosfilt(sos, y, axis=0)), abs=1e-9)
    # activity: SNN_Streaming only accumulates (binary inputs, spikes); the ANN only multiplies
    assert snn["acs_per_step"] > 0 and snn["macs_per_step"] == 0
    assert ann["macs_per_step"] > 0 and ann["acs_per_step"] == 0
    assert 0 < snn["activation_sparsity"] < 1 and 0 < snn["spikes_per_neuron_per_step"] < 1
    assert snn["spikes_per_neuron_per_step"] == pytest.approx(1 - snn["activation_sparsity"])
    assert snn["footprint_bytes"] == sum(a.nbytes for a in arrays.values())
    assert snn["chunking_invariant"] is True
    assert 0 < snn["step_us_p50"] <= snn["step_us_p99"]
    assert report["test_bins"] == sl.stop - sl.start


def test_evaluate_refuses_unknown_filter(models, recording, capsys):
    rc = main(["evaluate", "--model", models["ann"], "--recording", recording, "--filter", "gaussian"])
    assert rc == 2
    assert "gaussian" in capsys.readouterr().err


def test_train_snn_streaming_with_causal_asa(recording, tmp_path):
    """The ASA window is part of the carried state in truncated BPTT (a third entry per layer)."""
    out = tmp_path / "asa.npz"
    rc = main(["train", "--model", "snn_streaming", "--attention", "asa", "--recording", recording, "--out", str(out),
               "--epochs", "1", "--window", "40", "--batch-size", "8"])
    assert rc == 0
    arrays, meta = load_model(out)
    assert meta["attention"]["kind"] == "asa" and meta["attention"]["form"] == "causal"
    assert any(k.startswith("asa") for k in arrays)
    assert np.isfinite(meta["training"]["val_r2"])
    # evaluate draws what the attention learned: gains per channel over a stretch of the test part
    plot = tmp_path / "eval.png"
    assert main(["evaluate", "--model", str(out), "--recording", recording, "--filter", "causal", "--plot", str(plot)]) == 0
    gains = tmp_path / "eval_attention_asa.png"
    assert gains.is_file() and gains.stat().st_size > 10_000
