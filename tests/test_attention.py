"""Advance Spatial Attention: torch (training) and numpy (runtime) twins, causal and clip forms.

Checks: identical outputs and identical spikes (in a real snntorch Leaky layer) over thousands of
steps at batch 1 and 4; no statistic crosses samples of a batch; the causal form never looks at
future input; state()/restore() resumes exactly; the clip form runs at batch 1 and is per-sample.
"""
from __future__ import annotations

import numpy as np
import pytest
import snntorch as snn
import torch

from nodes.decoders.attention import CausalASA as NpCausal, ClipASA as NpClip
from nodes.decoders.attention_torch import CausalASA, ClipASA
from tests.decoder_helpers import one_torch_thread  # noqa: F401 (fixture)

GRID = 2.0 ** -14


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _grid(a: np.ndarray) -> np.ndarray:
    return (np.round(a / GRID) * GRID).astype(np.float32)


def _trained_like(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Give every parameter a random, non-trivial value (as after training)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.8)
    return module


def _run_torch_causal(t: CausalASA, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x (steps, B, C) -> outputs and gains (steps, B, C)."""
    hist = t.initial_state(x.shape[1])
    ys, gs = [], []
    with torch.no_grad():
        for step in x:
            y, hist, g = t(torch.from_numpy(step), hist)
            ys.append(y.numpy())
            gs.append(g.numpy())
    return np.stack(ys), np.stack(gs)


def _run_np_causal(n: NpCausal, x: np.ndarray) -> np.ndarray:
    return np.stack([n(step if n.batch > 1 else step[0]).reshape(step.shape) for step in x])


@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("reduction", [1, 2])
def test_causal_numpy_equals_torch(batch: int, reduction: int) -> None:
    C, steps = 32, 3000
    t = _trained_like(CausalASA(C, ratio=0.5, reduction=reduction, window=4), seed=reduction)
    n = NpCausal(t.export("asa."), C, 0.5, batch=batch, prefix="asa.")
    rng = np.random.default_rng(batch)
    x = rng.normal(size=(steps, batch, C)).astype(np.float32)
    x[::5, :, :6] = 0.5  # exact ties in the score, resolved to the lower index on both sides
    y_t, g_t = _run_torch_causal(t, x)
    y_n = _run_np_causal(n, x)
    assert np.max(np.abs(y_t - y_n)) <= 1e-6
    assert np.array_equal(y_t, y_n)  # in fact bit for bit
    # the attention does something: gains spread inside (0, 1) and differ between the two parts
    assert 0.0 < g_t.min() and g_t.max() < 1.0 and g_t.std() > 0.05


def _lif_numpy(cur: np.ndarray, mem: np.ndarray, beta: float, thr: float) -> tuple[np.ndarray, np.ndarray]:
    """snntorch Leaky (reset by subtraction) in its own operation order, float32."""
    reset = (mem - np.float32(thr) > 0).astype(np.float32)
    mem = np.float32(beta) * mem + cur - reset * np.float32(thr)
    return (mem - np.float32(thr) > 0).astype(np.float32), mem


@pytest.mark.parametrize("batch", [1, 4])
def test_causal_identical_spikes_in_a_lif_layer(batch: int) -> None:
    C_in, C, steps, beta, thr = 96, 32, 3000, 0.9, 0.5
    rng = np.random.default_rng(7)
    W = _grid(rng.normal(size=(C, C_in)) * 0.25)
    b = _grid(rng.normal(size=C) * 0.05)
    spikes_in = (rng.random((steps, batch, C_in)) < 0.08).astype(np.float32)
    t = _trained_like(CausalASA(C, ratio=0.5, reduction=1, window=4), seed=3)
    n = NpCausal(t.export(), C, 0.5, batch=batch)
    lif = snn.Leaky(beta=beta, threshold=thr)
    mem_t = torch.zeros(batch, C)
    hist = t.initial_state(batch)
    mem_n = np.zeros((batch, C), dtype=np.float32)
    Wt, bt = torch.from_numpy(W), torch.from_numpy(b)
    spk_t_all, spk_n_all = [], []
    with torch.no_grad():
        for s in spikes_in:
            cur = torch.nn.functional.linear(torch.from_numpy(s), Wt, bt)
            cur, hist, _ = t(cur, hist)
            spk_t, mem_t = lif(cur, mem_t)
            cur_n = s @ W.T + b
            cur_n = n(cur_n if batch > 1 else cur_n[0]).reshape(batch, C)
            spk_n, mem_n = _lif_numpy(cur_n, mem_n, beta, thr)
            spk_t_all.append(spk_t.numpy())
            spk_n_all.append(spk_n)
            assert np.max(np.abs(mem_t.numpy() - mem_n)) <= 1e-6
    spk_t_all, spk_n_all = np.stack(spk_t_all), np.stack(spk_n_all)
    assert np.array_equal(spk_t_all, spk_n_all)
    assert 0.01 < spk_t_all.mean() < 0.9  # the layer fires, and not always


def test_causal_samples_do_not_influence_each_other() -> None:
    C, steps = 32, 400
    t = _trained_like(CausalASA(C, window=4), seed=5)
    n = NpCausal(t.export(), C, 0.5, batch=3)
    x = np.random.default_rng(1).normal(size=(steps, 3, C)).astype(np.float32)
    x2 = x.copy()
    x2[:, 1] = np.random.default_rng(2).normal(size=(steps, C)) * 5.0  # another stream in slot 1
    y_t, _ = _run_torch_causal(t, x)
    y2_t, _ = _run_torch_causal(t, x2)
    n.reset()
    y_n = _run_np_causal(n, x)
    n.reset()
    y2_n = _run_np_causal(n, x2)
    for a, b in ((y_t, y2_t), (y_n, y2_n)):
        assert np.array_equal(a[:, [0, 2]], b[:, [0, 2]])
        assert not np.allclose(a[:, 1], b[:, 1])
    # and a sample alone (batch 1) gives what it gives inside the batch
    alone = NpCausal(t.export(), C, 0.5, batch=1)
    assert np.array_equal(_run_np_causal(alone, x[:, :1]), y_n[:, :1])


def test_causal_uses_no_future_input() -> None:
    C, steps, t0 = 32, 600, 300
    t = _trained_like(CausalASA(C, window=6), seed=9)
    x = np.random.default_rng(3).normal(size=(steps, 1, C)).astype(np.float32)
    x2 = x.copy()
    x2[t0:] += np.random.default_rng(4).normal(size=(steps - t0, 1, C)).astype(np.float32)
    y_t, g_t = _run_torch_causal(t, x)
    y2_t, g2_t = _run_torch_causal(t, x2)
    assert np.array_equal(y_t[:t0], y2_t[:t0]) and np.array_equal(g_t[:t0], g2_t[:t0])
    assert not np.allclose(g_t[t0:], g2_t[t0:])
    n = NpCausal(t.export(), C, 0.5)
    y_n = _run_np_causal(n, x)
    n.reset()
    y2_n = _run_np_causal(n, x2)
    assert np.array_equal(y_n[:t0], y2_n[:t0]) and not np.allclose(y_n[t0:], y2_n[t0:])


def test_causal_state_restore_resumes_exactly() -> None:
    C = 48
    t = _trained_like(CausalASA(C, ratio=0.25, reduction=2, window=5), seed=11)
    x = np.random.default_rng(5).normal(size=(500, 2, C)).astype(np.float32)
    whole = NpCausal(t.export(), C, 0.25, batch=2)
    y_whole = _run_np_causal(whole, x)
    first = NpCausal(t.export(), C, 0.25, batch=2)
    _run_np_causal(first, x[:237])
    saved = first.state()
    assert saved["hist"].shape == (2, 4, C)
    # the saved history is the last window−1 currents, oldest first (what the torch side carries)
    assert np.array_equal(saved["hist"], x[237 - 4:237].transpose(1, 0, 2))
    second = NpCausal(t.export(), C, 0.25, batch=2)
    second.restore(saved)
    assert np.array_equal(_run_np_causal(second, x[237:]), y_whole[237:])


def test_causal_is_trainable_and_checks_options() -> None:
    t = CausalASA(32)
    cur = torch.randn(1, 32, requires_grad=True)
    y, _, _ = t(cur, t.initial_state(1))
    y.sum().backward()
    assert t.conv_im.weight.grad is not None and t.conv_im.weight.grad.abs().sum() > 0
    assert t.conv_rest.weight.grad.abs().sum() > 0 and cur.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="asa_ratio"):
        CausalASA(32, ratio=1.5)
    with pytest.raises(ValueError, match="asa_ratio"):
        CausalASA(4, ratio=0.1)  # no important channel at all
    n = NpCausal(t.export(), 32, 0.5)
    with pytest.raises(ValueError, match=r"expected \(1, 32\)"):
        n(np.zeros(31, dtype=np.float32))
    with pytest.raises(ValueError, match="fc1"):
        NpCausal({}, 32, 0.5)


# ---------------------------------------------------------------- clip form (SNN_3D windows)

@pytest.mark.parametrize("reduction", [1, 2])
def test_clip_batch_one_and_per_sample(reduction: int) -> None:
    T, C = 7, 32
    t = _trained_like(ClipASA(T, C, ratio=0.5, reduction=reduction), seed=13)
    x = torch.from_numpy(np.random.default_rng(6).normal(size=(5, T, C)).astype(np.float32))
    with torch.no_grad():
        y_batch, g_batch = t(x)
        singles = [t(x[i:i + 1])[0] for i in range(5)]  # fix 1: batch size 1 works
        x2 = x.clone()
        x2[3] = x2[3] * -3.0 + 1.0  # fix 2: another sample does not change this one's mask/gains
        y2, _ = t(x2)
    assert all(s.shape == (1, T, C) for s in singles)
    assert torch.equal(torch.cat(singles), y_batch)
    assert torch.equal(y2[[0, 1, 2, 4]], y_batch[[0, 1, 2, 4]])
    assert not torch.allclose(y2[3], y_batch[3])
    # masks are per sample: each selects exactly k channels per step before the time split
    assert 0.0 < g_batch.min() and g_batch.max() < 1.0
    # numpy twin, same numbers (float64 internals, float32 gains)
    n = NpClip(t.export("l0."), T, C, 0.5, prefix="l0.")
    assert np.array_equal(n(x.numpy()), y_batch.numpy())
    assert np.array_equal(n(x.numpy()[:1]), y_batch.numpy()[:1])


def test_clip_spatial_frames_batch_one_and_per_sample() -> None:
    T, C, H, W = 4, 6, 5, 5
    t = _trained_like(ClipASA(T, C, ratio=0.5, spatial=2), seed=17)
    x = torch.randn(3, T, C, H, W, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y, g = t(x)
        y0, _ = t(x[:1])
        x2 = x.clone()
        x2[2] = torch.randn(T, C, H, W) * 4.0
        y2, _ = t(x2)
    assert y0.shape == (1, T, C, H, W) and torch.equal(y0, y[:1])
    assert torch.equal(y2[:2], y[:2]) and not torch.allclose(y2[2], y[2])
    assert g.shape == x.shape and g.std() > 0.01
    with pytest.raises(ValueError, match=r"\(N, T, C, H, W\)"):
        t(torch.zeros(1, T, C))


def test_clip_mask_selects_per_sample_top_k() -> None:
    """With an identity score (reduction 1, untrained fc), the important part is exactly the
    positions in one but not both of: this sample's top-k channels of a step, its top-k steps of a channel."""
    T, C = 6, 10
    t = ClipASA(T, C, ratio=0.5)
    x = np.random.default_rng(8).normal(size=(2, T, C))
    m = t.mask(torch.from_numpy(x)).numpy().astype(bool)
    for i in range(2):
        top_c = np.zeros((T, C), bool)
        for s in range(T):
            top_c[s, np.argsort(-x[i, s], kind="stable")[:5]] = True
        top_t = np.zeros((T, C), bool)
        for c in range(C):
            top_t[np.argsort(-x[i, :, c], kind="stable")[:3], c] = True
        assert np.array_equal(m[i], top_c != top_t)


@pytest.mark.parametrize("bias", [False, True])
def test_causal_sequence_form_equals_step_by_step(bias: bool) -> None:
    """``forward_seq`` (all steps of a sequence at once, used in training) gives the step-by-step
    module's outputs and gains, and hands on the same history, across two consecutive chunks."""
    C = 32
    t = _trained_like(CausalASA(C, ratio=0.5, reduction=1, window=4, bias=bias), seed=21)
    x = np.random.default_rng(8).normal(size=(300, 3, C)).astype(np.float32)
    y_step, g_step = _run_torch_causal(t, x)
    hist = t.initial_state(3)
    ys, gs = [], []
    with torch.no_grad():
        for part in (x[:130], x[130:]):
            y, hist, g = t.forward_seq(torch.from_numpy(part), hist)
            ys.append(y.numpy())
            gs.append(g.numpy())
    assert np.array_equal(np.concatenate(gs), g_step)  # float64 arithmetic rounded to float32: same gains
    assert np.array_equal(np.concatenate(ys), y_step)
    assert np.array_equal(hist.numpy(), x[-3:].transpose(1, 0, 2))
