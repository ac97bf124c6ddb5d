"""The numpy kernels reproduce the snntorch/PyTorch models: identical spikes, outputs to 1e-5."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from nodes.decoders.features import FeatureSpec, features
from nodes.decoders.kernels import make_kernel
from nodes.decoders.specs import base_metadata
from nodes.decoders.torch_models import build, from_arrays
from tests.decoder_helpers import poisson_counts, random_chunks, run_in_chunks

C = 24


def _model_file(kind: str, seed: int = 0) -> tuple[dict, dict]:
    torch.manual_seed(seed)
    meta = base_metadata(kind, C)
    model = build(kind, meta)
    if kind in ("snn_streaming", "snn_3d"):
        with torch.no_grad():  # livelier than the default init, so every layer spikes often
            for layer in model.layers:
                layer.fc.weight.mul_(2.5)
    arrays = model.export()
    if kind in ("ann", "ann_3d"):
        arrays["in_mean"] = np.full_like(arrays["in_mean"], 0.5)
        arrays["in_std"] = np.full_like(arrays["in_std"], 1.5)
    arrays["target_scale"] = np.array([120.0, 80.0], dtype=np.float32)
    arrays["target_mean"] = np.array([1.0, -2.0], dtype=np.float32)
    return arrays, meta


def test_snn_streaming_spike_exact_over_4000_steps():
    arrays, meta = _model_file("snn_streaming")
    counts = poisson_counts(4000, C)
    model = from_arrays(arrays, meta)
    x = torch.from_numpy(features(FeatureSpec("binary"), counts))[:, None, :]
    with torch.no_grad():
        y_t, _, spk_t = model(x, record=True)
    y_ref = y_t[:, 0].numpy() * arrays["target_scale"] + arrays["target_mean"]
    for seed in (0, 1):  # two different random chunkings, including 1-sample packets
        y, spikes = run_in_chunks(make_kernel(arrays, meta), counts, random_chunks(len(counts), seed))
        for l, s in enumerate(spikes):
            ref = spk_t[l][:, 0].numpy() > 0
            assert 0.01 < ref.mean() < 0.9, f"layer {l} firing rate {ref.mean()} makes the test weak"
            mismatch = np.argwhere(s != ref)
            assert mismatch.size == 0, f"layer {l}: first spike mismatch at step {mismatch[0][0]}"
        np.testing.assert_allclose(y, y_ref, rtol=0, atol=1e-5 * np.abs(y_ref).max())


def test_snn_streaming_plain_path_with_identity_transform_matches_fast_path():
    arrays, meta = _model_file("snn_streaming", seed=3)
    counts = poisson_counts(600, C, seed=3)
    y_fast, s_fast = run_in_chunks(make_kernel(arrays, meta), counts, [(0, 600)])
    kernel = make_kernel(arrays, meta)
    kernel.record = True
    kernel.transforms = [lambda c: c, None, None]
    y_plain = kernel.run(counts)
    np.testing.assert_array_equal(y_plain, y_fast)
    for a, b in zip(kernel.last_record["spikes"], s_fast):
        np.testing.assert_array_equal(a, b)


def test_snn_3d_spike_exact_over_3000_windows():
    arrays, meta = _model_file("snn_3d")
    counts = poisson_counts(3000, C, seed=1)
    spec = FeatureSpec.from_dict(meta["features"])
    model = from_arrays(arrays, meta)
    with torch.no_grad():
        y_t, spk_t = model(torch.from_numpy(features(spec, counts)), record=True)
    y_ref = y_t.numpy() * arrays["target_scale"] + arrays["target_mean"]
    y, spikes = run_in_chunks(make_kernel(arrays, meta), counts, random_chunks(len(counts), 5))
    for l, s in enumerate(spikes):
        ref = spk_t[l].numpy() > 0
        assert 0.01 < ref.mean() < 0.9, f"layer {l} firing rate {ref.mean()}"
        assert np.array_equal(s, ref), f"layer {l}: {np.sum(s != ref)} spike mismatches"
    np.testing.assert_allclose(y, y_ref, rtol=0, atol=1e-5 * np.abs(y_ref).max())


@pytest.mark.parametrize("kind", ["ann", "ann_3d"])
def test_ann_matches_torch(kind):
    arrays, meta = _model_file(kind)
    counts = poisson_counts(1500, C, seed=2)
    spec = FeatureSpec.from_dict(meta["features"])
    model = from_arrays(arrays, meta)
    with torch.no_grad():
        y_t = model(torch.from_numpy(features(spec, counts))).numpy()
    y_ref = y_t * arrays["target_scale"] + arrays["target_mean"]
    y, _ = run_in_chunks(make_kernel(arrays, meta), counts, random_chunks(len(counts), 7))
    np.testing.assert_allclose(y, y_ref, rtol=0, atol=1e-5 * np.abs(y_ref).max())


def test_lstm_matches_torch_with_state_carried():
    arrays, meta = _model_file("lstm")
    counts = poisson_counts(3000, C, seed=4)
    spec = FeatureSpec.from_dict(meta["features"])
    model = from_arrays(arrays, meta)
    with torch.no_grad():
        y_t, _ = model(torch.from_numpy(features(spec, counts))[:, None, :])
    y_ref = y_t[:, 0].numpy() * arrays["target_scale"] + arrays["target_mean"]
    y, _ = run_in_chunks(make_kernel(arrays, meta), counts, random_chunks(len(counts), 9))
    np.testing.assert_allclose(y, y_ref, rtol=0, atol=1e-5 * np.abs(y_ref).max())


def test_lstm_with_zscore_input_matches_torch():
    """``--input-norm zscore``: per-channel train mean/std instead of LayerNorm, same in both."""
    torch.manual_seed(5)
    meta = base_metadata("lstm", C)
    meta["architecture"]["norm"] = "z-score (train mean/std)"
    model = build("lstm", meta)
    with torch.no_grad():
        model.in_mean.copy_(torch.linspace(0.5, 2.0, C))
        model.in_std.copy_(torch.linspace(0.8, 1.6, C))
    arrays = {**model.export(), "target_scale": np.array([120.0, 80.0], np.float32),
              "target_mean": np.array([1.0, -2.0], np.float32)}
    assert "in_mean" in arrays and "ln_g" not in arrays
    counts = poisson_counts(2000, C, seed=6)
    with torch.no_grad():
        y_t, _ = from_arrays(arrays, meta)(torch.from_numpy(features(FeatureSpec.from_dict(meta["features"]), counts))[:, None, :])
    y_ref = y_t[:, 0].numpy() * arrays["target_scale"] + arrays["target_mean"]
    kernel = make_kernel(arrays, meta)
    assert kernel.zscore
    y, _ = run_in_chunks(kernel, counts, random_chunks(len(counts), 3))
    np.testing.assert_allclose(y, y_ref, rtol=0, atol=1e-5 * np.abs(y_ref).max())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_snn_streaming_one_call_live_path_equals_general_path(dtype):
    """A live decoder's one-sample packets decode in one compiled call (nothing recorded or counted):
    outputs, state and the count of non-finite inputs identical to the general numpy path's."""
    arrays, meta = _model_file("snn_streaming", seed=5)
    counts = poisson_counts(800, C, seed=5).astype(dtype)
    counts[::97] *= np.asarray(0.3, dtype=dtype)  # non-integer values, as after a filter
    counts[10, 3], counts[400, 0], counts[401, 7] = np.nan, np.inf, -np.inf
    fast, general = make_kernel(arrays, meta), make_kernel(arrays, meta)
    general.record = True  # recording takes the general path

    def general_path(*_args, **_kwargs):
        raise AssertionError("the live path fell back to the general one")

    fast.run = general_path  # the one-call path never goes through Kernel.run
    ys_fast, ys_general, bad_fast, bad_general = [], [], 0, 0
    for t in range(len(counts)):
        y, bad = fast.run_counts(counts[t:t + 1])
        ys_fast.append(y)
        bad_fast += bad
        y, bad = general.run_counts(counts[t:t + 1])
        ys_general.append(y)
        bad_general += bad
    np.testing.assert_array_equal(np.concatenate(ys_fast), np.concatenate(ys_general))
    assert bad_fast == bad_general == 3
    for key, value in general.state().items():
        np.testing.assert_array_equal(fast.state()[key], value)
    assert np.concatenate(ys_fast).dtype == np.float32
