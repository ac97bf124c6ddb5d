"""Issue 16: scoring as a live user gets it, the linear baseline row, NeuroBench's LSTM MACs, the bit
budget, and SNN_Streaming's trained neuron parameters in the shipped model file."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nodes.decoders.evaluation import _as_emitted, bit_budget, evaluate_model, linear_baseline
from nodes.decoders.kernels import Activity, make_kernel
from nodes.decoders.metrics import r2
from pipeline.modelfile import load_model

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_SNN = ROOT / "models" / "snn_streaming_sample.npz"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from nodes.decoders.data import load_data
    from pipeline.recordings.synth import SynthParams, generate

    path = tmp_path_factory.mktemp("rec") / "reach.xdfz"
    generate(path, SynthParams(channels=16, seed=4), 60.0, progress=False)
    return load_data(str(path))


def test_as_emitted_is_the_newest_output_a_live_user_holds():
    y = np.arange(10, dtype=float)[:, None] * np.ones((1, 2))
    e = _as_emitted(y, 3)
    # at input t the newest block-middle output smooths sample t-3 (the first 3 hold the first output)
    np.testing.assert_array_equal(e[3:, 0], np.arange(7))
    np.testing.assert_array_equal(e[:3, 0], [0, 0, 0])
    assert _as_emitted(y, 0) is y


def test_block_middle_scored_as_emitted_and_aligned(data, tmp_path):
    """'block-middle' has 16 samples (64 ms) of look-ahead when re-aligned; as emitted it has none."""
    from nodes.decoders.linear import fit_linear
    from nodes.filters.bessel import BesselFilter
    from nodes.decoders.evaluation import FILTERS

    path = tmp_path / "lin.npz"
    fit_linear(data).save(path)
    res = evaluate_model(str(path), data, ["none", "causal", "block-last", "block-middle"], latency_steps=50)
    for f in ("none", "causal", "block-last"):  # no delay: both scores are the same number
        assert res["r2"][f] == res["r2_aligned"][f]
    # independent recomputation of both block-middle scores
    sl = data.split["test"]
    y = fit_linear(data).predict(data.spikes[sl])
    f = BesselFilter(**FILTERS["block-middle"])
    assert f.delay_samples == 16
    from scipy.signal import bessel, sosfiltfilt

    sos = bessel(4, 6.25, fs=250.0, output="sos")
    n = y.shape[0]
    blocks = np.concatenate([np.repeat(y[:1], 31, 0), y, np.repeat(y[-1:], 16, 0)])
    mid = np.stack([sosfiltfilt(sos, blocks[i:i + 32], axis=0)[15] for i in range(16, 16 + n)])
    truth = data.velocity[sl]
    assert res["r2_aligned"]["block-middle"] == pytest.approx(r2(truth, mid), abs=1e-6)
    emitted = np.concatenate([np.repeat(mid[:1], 16, 0), mid[:-16]])
    assert res["r2"]["block-middle"] == pytest.approx(r2(truth, emitted), abs=1e-6)
    assert res["r2"]["block-middle"] < res["r2_aligned"]["block-middle"]  # look-ahead flatters it


def test_linear_baseline_row_is_the_ridge_fit(data):
    from nodes.decoders.linear import fit_linear

    res = linear_baseline(data, ["none"])
    sl = data.split["test"]
    want = r2(data.velocity[sl], fit_linear(data).predict(data.spikes[sl]))
    assert res["model"].startswith("linear baseline") and res["kind"] == "linear"
    assert res["r2"]["none"] == pytest.approx(want, abs=1e-5)
    assert res["macs_per_step"] > 0 and res["acs_per_step"] == 0


def test_lstm_macs_count_the_cell_products_as_neurobench():
    """96 → LSTM 32 → 2 with every input nonzero: (96 + 32)·4·32 + 3·32 + 32·2 = 16,544 MACs per step."""
    import torch

    from nodes.decoders.specs import base_metadata
    from nodes.decoders.torch_models import build

    torch.manual_seed(0)
    meta = base_metadata("lstm", 96)
    model = build("lstm", meta)
    arrays = {**model.export(), "target_scale": np.ones(2, np.float32), "target_mean": np.zeros(2, np.float32)}
    k = make_kernel(arrays, meta)
    act = Activity()
    x = np.random.default_rng(0).uniform(0.5, 3.0, (400, 96)).astype(np.float32)  # no input equals its row mean
    k.run(x, act)
    per_step = act.macs / 400
    # the first step sees h = 0 (32·4·32 fewer); every later step counts all 16,544
    assert per_step == pytest.approx(16544 - 32 * 4 * 32 / 400, abs=1e-9)


def test_bit_budget_counts_weights_and_activations():
    arrays, meta = load_model(SAMPLE_SNN)
    bb = bit_budget(meta, arrays)
    n_w = sum(a.size for k, a in arrays.items() if k not in ("target_scale", "target_mean"))
    assert bb["weight_bits"] == 32 * n_w
    assert bb["activation_bits"] == 32 + 48 + 2  # one bit per neuron, one step per output
    assert bb["total_bits"] == bb["weight_bits"] + bb["activation_bits"]


def test_shipped_snn_streaming_records_trained_neuron_parameters():
    """The metadata holds the TRAINED β/θ (one per neuron), equal to the arrays the kernel runs, in range."""
    arrays, meta = load_model(SAMPLE_SNN)
    arch = meta["architecture"]
    assert arch["per_neuron"] is True and arch["beta_init"] == [0.9, 0.7, 0.8]
    for layer, size in enumerate(arch["layers"]):
        beta = np.asarray(arch["beta"][layer], dtype=np.float32)
        thr = np.asarray(arch["threshold"][layer], dtype=np.float32)
        assert beta.shape == (size,) and thr.shape == (size,)
        np.testing.assert_allclose(beta, arrays[f"beta{layer}"], atol=1e-6)
        np.testing.assert_allclose(thr, arrays[f"thr{layer}"], atol=0)
        assert np.all((beta >= 0) & (beta <= 0.995)) and np.all(thr >= 0.02 - 1e-4)
    # memory the task needs: some hidden neurons integrate over ≥ 100 ms (β ≥ exp(−4/100))
    hidden = np.concatenate([np.asarray(b) for b in arch["beta"][:-1]])
    assert np.mean(hidden >= np.exp(-4 / 100)) > 0.1
