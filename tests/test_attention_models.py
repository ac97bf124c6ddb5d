"""Decoders with ``attention: asa``: the numpy kernels (runtime) reproduce the snntorch models spike
for spike, the causal ASA state lives in the kernel's/node's ``state()``, and model files record it."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from nodes.decoders.attention import attention_metadata
from nodes.decoders.features import FeatureSpec, features
from nodes.decoders.kernels import make_kernel
from nodes.decoders.specs import base_metadata
from nodes.decoders.torch_models import build, from_arrays
from pipeline.modelfile import load_model, save_model
from tests.decoder_helpers import one_torch_thread, poisson_counts, random_chunks, run_in_chunks  # noqa: F401 (fixture)

C = 24


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _asa_model_file(kind: str, seed: int = 0, reduction: int = 1, bias: bool = False) -> tuple[dict, dict]:
    torch.manual_seed(seed)
    meta = base_metadata(kind, C)
    if kind == "snn_streaming":  # one β/θ per layer keeps this random network lively (per-neuron
        meta["architecture"]["per_neuron"] = False  # β/θ are checked in test_decoders_exact.py)
    meta["attention"] = attention_metadata(kind, "asa", ratio=0.5, reduction=reduction,
                                           steps=int(meta["features"].get("steps", 1)), bias=bias)
    model = build(kind, meta)
    g = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for layer in model.layers:
            layer.fc.weight.mul_(3.0)  # lively: every layer spikes often even after the gains
            if getattr(layer, "asa", None) is not None:
                for p in layer.asa.parameters():
                    p.copy_(torch.randn(p.shape, generator=g) * 0.8)  # "trained" attention
    arrays = model.export()
    arrays["target_scale"] = np.array([120.0, 80.0], dtype=np.float32)
    arrays["target_mean"] = np.array([1.0, -2.0], dtype=np.float32)
    return arrays, meta


@pytest.mark.parametrize("reduction,bias", [(1, False), (2, False), (1, True)])
def test_snn_streaming_asa_spike_exact(reduction: int, bias: bool, tmp_path) -> None:
    arrays, meta = _asa_model_file("snn_streaming", seed=reduction + 7 * bias, reduction=reduction, bias=bias)
    path = save_model(tmp_path / "m.npz", arrays, meta)  # through a real model file (data only)
    arrays, meta = load_model(path)
    assert meta["attention"]["kind"] == "asa" and meta["attention"]["form"] == "causal"
    assert ("asa0.bias" in arrays) == bias and meta["attention"]["bias"] == bias
    if bias:
        assert np.all(arrays["asa0.bias"] != 0)  # the offsets are in play
    counts = poisson_counts(3000, C, seed=reduction)
    model = from_arrays(arrays, meta)
    assert all(model.layers[l].asa is not None for l in (0, 1)) and getattr(model.layers[2], "asa", None) is None
    x = torch.from_numpy(features(FeatureSpec("binary"), counts))[:, None, :]
    with torch.no_grad():
        y_t, _, spk_t = model(x, record=True)
    y_ref = y_t[:, 0].numpy() * arrays["target_scale"] + arrays["target_mean"]
    kernel = make_kernel(arrays, meta)
    assert kernel.compiled_asa  # the compiled (numba) ASA loop is what runs, and what is checked here
    y, spikes = run_in_chunks(kernel, counts, random_chunks(len(counts), reduction))
    for l, s in enumerate(spikes):
        ref = spk_t[l][:, 0].numpy() > 0
        assert 0.01 < ref.mean() < 0.9, f"layer {l} firing rate {ref.mean()} makes the test weak"
        mismatch = np.argwhere(s != ref)
        assert mismatch.size == 0, f"layer {l}: first spike mismatch at step {mismatch[0][0]}"
    np.testing.assert_allclose(y, y_ref, rtol=0, atol=1e-5 * np.abs(y_ref).max())


def test_snn_streaming_asa_batch_and_state() -> None:
    """Batch of 3 streams in torch = each stream alone in numpy; kernel state() carries the ASA window."""
    arrays, meta = _asa_model_file("snn_streaming", seed=4)
    model = from_arrays(arrays, meta)
    streams = [features(FeatureSpec("binary"), poisson_counts(800, C, seed=s)) for s in (10, 11, 12)]
    with torch.no_grad():
        _, _, spk_b = model(torch.from_numpy(np.stack(streams, axis=1)), record=True)
    for i, xs in enumerate(streams):
        kernel = make_kernel(arrays, meta)
        _, spikes = run_in_chunks(kernel, xs, [(0, 400)])
        saved = kernel.state()
        assert "transform0.hist" in saved and saved["transform0.hist"].shape == (1, 3, 32)
        resumed = make_kernel(arrays, meta)
        resumed.restore(saved)
        _, rest = run_in_chunks(resumed, xs, [(400, 800)])
        for l in range(3):
            got = np.concatenate([spikes[l], rest[l]])
            assert np.array_equal(got, spk_b[l][:, i].numpy() > 0), f"stream {i} layer {l}"
    # a fresh kernel (no restored window) diverges somewhere: the state matters
    fresh = make_kernel(arrays, meta)
    _, cold = run_in_chunks(fresh, streams[0], [(400, 800)])
    assert any(not np.array_equal(cold[l], spk_b[l][400:, 0].numpy() > 0) for l in range(3))


def test_snn_3d_asa_spike_exact_and_per_sample() -> None:
    arrays, meta = _asa_model_file("snn_3d", seed=7)
    assert meta["attention"]["form"] == "clip"
    counts = poisson_counts(2500, C, seed=3)
    spec = FeatureSpec.from_dict(meta["features"])
    model = from_arrays(arrays, meta)
    X = torch.from_numpy(features(spec, counts))
    with torch.no_grad():
        y_t, spk_t = model(X, record=True)
        y_one, _ = model(X[1234:1235])  # batch 1
    assert torch.equal(y_one, y_t[1234:1235])
    y_ref = y_t.numpy() * arrays["target_scale"] + arrays["target_mean"]
    y, spikes = run_in_chunks(make_kernel(arrays, meta), counts, random_chunks(len(counts), 2))
    for l, s in enumerate(spikes):
        ref = spk_t[l].numpy() > 0
        assert 0.01 < ref.mean() < 0.9, f"layer {l} firing rate {ref.mean()}"
        assert np.array_equal(s, ref), f"layer {l}: {np.sum(s != ref)} spike mismatches"
    np.testing.assert_allclose(y, y_ref, rtol=0, atol=1e-5 * np.abs(y_ref).max())
    # the attention is really applied (same weights without it fire differently), on both sides
    plain_meta = {**meta, "attention": {"kind": "none"}}
    plain_arrays = {k: v for k, v in arrays.items() if not k.startswith("asa")}
    _, plain = run_in_chunks(make_kernel(plain_arrays, plain_meta), counts, [(0, len(counts))])
    assert not np.array_equal(plain[0], spikes[0])
    with torch.no_grad():
        _, spk_plain_t = from_arrays(plain_arrays, plain_meta)(X, record=True)
    assert np.array_equal(spk_plain_t[0].numpy() > 0, plain[0])


def test_attention_metadata_checks_options() -> None:
    assert attention_metadata("snn_streaming", "none") == {"kind": "none"}
    with pytest.raises(ValueError, match="asa_ratio"):
        attention_metadata("snn_streaming", "asa", ratio=0.0)
    with pytest.raises(ValueError, match="not 'lstm'"):
        attention_metadata("lstm", "asa")
    with pytest.raises(ValueError, match="attention must be"):
        attention_metadata("snn_3d", "transformer")
    with pytest.raises(ValueError, match="causal form"):
        attention_metadata("snn_3d", "asa", bias=True)
    assert attention_metadata("snn_streaming", "asa", bias=True)["bias"] is True


def test_attention_plots_and_layer_activity(tmp_path) -> None:
    from nodes.decoders.attention_report import attention_trace, layer_activity, plot_attention, plot_front

    arrays, meta = _asa_model_file("snn_streaming", seed=5)
    counts = poisson_counts(300, C, seed=9)
    trace = attention_trace(arrays, meta, counts)
    assert set(trace) == {0, 1} and trace[0].shape == (300, 32) and trace[1].shape == (300, 48)
    assert 0.0 < trace[0].min() and trace[0].max() < 1.0 and trace[0].std() > 0.01
    act = layer_activity(arrays, meta, counts)
    assert len(act["rate_per_layer"]) == 3
    assert act["spikes_per_step"] == pytest.approx(sum(act["spikes_per_step_per_layer"]))
    assert act["rate_overall"] == pytest.approx(act["spikes_per_step"] / 82)
    png = plot_attention(trace, 250.0, tmp_path / "att.png")
    front = plot_front([{"label": "a", "spikes_per_step": act["spikes_per_step"], "r2": 0.5, "group": "snn_streaming",
                         "attention": "asa"}, {"label": "b", "spikes_per_step": 9.0, "r2": 0.4}], tmp_path / "f.png")
    assert png.stat().st_size > 10_000 and front.stat().st_size > 10_000


@pytest.mark.parametrize("reduction,bias", [(1, False), (2, False), (1, True)])
def test_compiled_asa_equals_numpy_asa_and_shares_its_state(reduction: int, bias: bool) -> None:
    """Issue 16: the compiled ASA step gives the numpy CausalASA path's spikes and outputs bit for bit,
    and a state() saved by either path resumes exactly in the other (also with learned offsets)."""
    arrays, meta = _asa_model_file("snn_streaming", seed=20 + reduction + 7 * bias, reduction=reduction, bias=bias)
    counts = poisson_counts(2500, C, seed=30 + reduction)
    fast, slow = make_kernel(arrays, meta), make_kernel(arrays, meta)
    slow.compiled_asa = False
    assert fast.compiled_asa and fast._asa["layers"] == [0, 1]
    chunks = random_chunks(len(counts), 40 + reduction)
    y_f, s_f = run_in_chunks(fast, counts, chunks)
    y_s, s_s = run_in_chunks(slow, counts, chunks)
    for l in range(3):
        assert 0.01 < s_s[l].mean() < 0.9, f"layer {l} firing rate {s_s[l].mean()} makes the test weak"
        mismatch = np.argwhere(s_f[l] != s_s[l])
        assert mismatch.size == 0, f"layer {l}: first spike mismatch at step {mismatch[0][0]}"
    assert np.array_equal(y_f, y_s)
    # the ASA really acts: the gains are not all equal, so the spikes differ from the model without it
    plain_meta = {**meta, "attention": {"kind": "none"}}
    plain_arrays = {k: v for k, v in arrays.items() if not k.startswith("asa")}
    _, plain = run_in_chunks(make_kernel(plain_arrays, plain_meta), counts, [(0, len(counts))])
    assert not np.array_equal(plain[0], s_f[0])
    # state interchange: the compiled ring is saved in the numpy CausalASA's format
    st_f, st_s = fast.state(), slow.state()
    assert set(st_f) == set(st_s)
    for k in st_f:
        assert np.array_equal(st_f[k], st_s[k]), k
    more = poisson_counts(600, C, seed=50 + reduction)
    a, b = make_kernel(arrays, meta), make_kernel(arrays, meta)
    b.compiled_asa = False
    a.restore(st_s)  # numpy-path state → compiled kernel
    b.restore(st_f)  # compiled state → numpy-path kernel
    y_a, sp_a = run_in_chunks(a, more, random_chunks(len(more), 7))
    y_b, sp_b = run_in_chunks(b, more, [(0, len(more))])
    assert np.array_equal(y_a, y_b) and all(np.array_equal(p, q) for p, q in zip(sp_a, sp_b))
    cold = make_kernel(arrays, meta)  # without the restored state the run differs: the state matters
    y_c, _ = run_in_chunks(cold, more, [(0, len(more))])
    assert not np.array_equal(y_c, y_a)


@pytest.mark.parametrize("bias", [False, True])
def test_asa_arm_fine_tuned_from_a_plain_model_starts_as_that_model(bias: bool) -> None:
    """``--init plain.npz --attention asa``: gains 0.5 and doubled attended weights give the plain
    model's spikes bit for bit before any training step (a fair start for the sweep's ASA arm)."""
    from nodes.decoders.training import start_from

    torch.manual_seed(3)
    meta = base_metadata("snn_streaming", C)
    plain = build("snn_streaming", meta)
    with torch.no_grad():
        for layer in plain.layers:
            layer.fc.weight.mul_(3.0)
    arrays = {**plain.export(), "target_scale": np.ones(2, np.float32), "target_mean": np.zeros(2, np.float32)}
    meta_asa = {**meta, "attention": attention_metadata("snn_streaming", "asa", bias=bias)}
    model = build("snn_streaming", meta_asa)
    how = start_from(model, arrays, meta_asa)
    assert "doubled" in how
    arrays_asa = {**model.export(), "target_scale": arrays["target_scale"], "target_mean": arrays["target_mean"]}
    assert np.array_equal(arrays_asa["W0"], 2 * arrays["W0"]) and not np.any(arrays_asa["asa0.conv_im"])
    assert ("asa0.bias" in arrays_asa) == bias and not np.any(arrays_asa.get("asa0.bias", 0.0))  # offsets start at 0
    counts = poisson_counts(1500, C, seed=4)
    y_p, s_p = run_in_chunks(make_kernel(arrays, meta), counts, [(0, len(counts))])
    y_a, s_a = run_in_chunks(make_kernel(arrays_asa, meta_asa), counts, [(0, len(counts))])
    assert s_p[0].mean() > 0.01
    assert np.array_equal(y_p, y_a) and all(np.array_equal(p, q) for p, q in zip(s_p, s_a))


def test_rate_fronts_summary_and_plot(tmp_path) -> None:
    """The sweep's reading of the target: the best plain mean R² is the reference; each arm's point
    with the fewest spikes within 0.005 R² of it, and its spike reduction."""
    from benchmarks.attention import fronts
    from nodes.decoders.attention_report import plot_rate_fronts

    rows = []
    table = {("none", 0.0): (0.630, 0.140), ("none", 1.0): (0.628, 0.110), ("none", 3.0): (0.600, 0.060),
             ("asa", 0.0): (0.629, 0.150), ("asa", 1.0): (0.627, 0.090), ("asa", 3.0): (0.610, 0.050)}
    for (att, w), (r2, rate) in table.items():
        for seed, jitter in enumerate((-0.001, 0.0, 0.001)):
            rows.append({"kind": "snn_streaming", "attention": att, "rate_penalty": w, "seed": seed,
                         "r2": r2 + jitter, "rate_overall": rate + jitter / 10})
    (f,) = fronts(rows)
    assert f["reference"]["rate_penalty"] == 0.0 and f["reference"]["r2"] == pytest.approx(0.630)
    assert f["best_none"]["rate_penalty"] == 1.0 and f["best_none"]["spike_reduction"] == pytest.approx(1 - 0.11 / 0.14)
    assert f["best_asa"]["rate_penalty"] == 1.0 and f["best_asa"]["spike_reduction"] == pytest.approx(1 - 0.09 / 0.14)
    assert f["met_spikes"] is True  # 36 % fewer
    rows_bad = [r for r in rows if not (r["attention"] == "asa" and r["rate_penalty"] == 1.0)]
    (g,) = fronts(rows_bad)
    assert g["best_asa"]["rate_penalty"] == 0.0 and g["met_spikes"] is False  # ASA at w=0 spikes more
    png = plot_rate_fronts(rows, tmp_path / "fronts.png")
    assert png.stat().st_size > 10_000


def test_compiled_top_k_selection_equals_a_stable_sort() -> None:
    """The compiled O(n) top-k (quickselect + ties to the lower index) selects exactly the first k
    of a stable descending sort, on scores with many exact ties, in every part of a larger array."""
    from nodes.decoders.lif_loop import _top_k_mask

    rng = np.random.default_rng(5)
    for trial in range(400):
        n = int(rng.integers(2, 60))
        a = int(rng.integers(0, 5))
        kk = int(rng.integers(1, n))
        levels = int(rng.integers(1, 6)) if trial % 2 else 10**6  # few distinct values: many ties
        score = np.full(a + n + 3, 99.0)  # values outside [a, a + n) must not take part
        score[a:a + n] = rng.integers(0, levels, n) / 4.0
        want = np.zeros(n, dtype=bool)
        order = np.argsort(-score[a:a + n], kind="stable")
        want[order[:kk]] = True
        # no hint, and first pivots (the previous step's threshold) inside, between and outside the values
        for hint in (np.nan, score[a + int(rng.integers(0, n))], rng.normal(), -1e9, 1e9):
            imp = np.ones(a + n + 3, dtype=np.bool_)
            v = _top_k_mask(score, a, a + n, kk, np.empty(2 * n), imp, hint)  # scratch: 2 values per score
            assert np.array_equal(imp[a:a + n], want), (trial, hint, score[a:a + n], kk)
            assert v == score[a + order[kk - 1]]  # the kk-th largest value
            assert imp[:a].all() and imp[a + n:].all()  # untouched outside the layer
