"""The compiled time loop of a stack of LIF layers (SNN_Streaming's fast path), with numba.

A step of SNN_Streaming is a few hundred additions; in plain numpy its cost is the per-call overhead
of the dozen small array operations it takes (about 1 µs each here), which caps offline replay near
500× real time. This loop runs the same arithmetic compiled, skipping silent inputs (event-driven,
as an accumulate-only SNN is meant to run).

Bit-exactness with snntorch's ``Leaky`` (see :mod:`nodes.decoders.kernels`): weights, biases and
thresholds are multiples of 2**-14 and inputs are 0/1, so the synaptic sum
``W·s + b − θ·s_prev`` is exact in float32 in any order; the membrane update keeps torch's two
roundings, ``mem = float32(β·mem)`` then ``float32(mem + cur)`` (numba does not fuse them into an
FMA without fastmath).
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def lif_stack_run(x: np.ndarray, w_in_t: np.ndarray, bias: np.ndarray, beta: np.ndarray,
                  thr: np.ndarray, offsets: np.ndarray, mem: np.ndarray, spk: np.ndarray,
                  spikes_out: np.ndarray, mem_out: np.ndarray) -> None:
    """Run ``n`` steps of a stack of LIF layers, updating ``mem`` and ``spk`` in place.

    Shapes (C inputs, N neurons over all layers, layer ``l`` is ``offsets[l]:offsets[l+1]``):
        x: ``(n, C)`` float32 inputs per 4 ms step (0/1 for SNN_Streaming).
        w_in_t: ``(C + N, N)`` float32, transposed weights: row ``j`` holds the weights from input
            ``j`` (``j < C``: layer 0's inputs; else neuron ``j − C``) to every neuron.
        bias, beta, thr: ``(N,)`` float32.
        offsets: ``(L + 1,)`` int64 layer boundaries.
        mem, spk: ``(N,)`` float32 state (membranes, last spikes as 0/1), updated in place.
        spikes_out: ``(n, N)`` bool, written: spikes of every neuron at every step.
        mem_out: ``(n, N_last)`` float32, written: the last layer's membrane at every step.
    """
    n, c = x.shape
    n_layers = offsets.shape[0] - 1
    cur = np.empty(mem.shape[0], dtype=np.float32)
    for t in range(n):
        for l in range(n_layers):
            a, b = offsets[l], offsets[l + 1]
            for i in range(a, b):
                cur[i] = bias[i]
            if l == 0:
                for j in range(c):
                    v = x[t, j]
                    if v != 0:
                        for i in range(a, b):
                            cur[i] += w_in_t[j, i] * v
            else:
                for j in range(offsets[l - 1], offsets[l]):
                    if spk[j] != 0:  # layer l−1 already holds its spikes of step t
                        for i in range(a, b):
                            cur[i] += w_in_t[c + j, i]
            for i in range(a, b):
                current = cur[i] - thr[i] * spk[i]  # reset by subtraction of step t−1's spike
                m = np.float32(beta[i] * mem[i])
                m = np.float32(m + current)
                mem[i] = m
                fired = m > thr[i]
                spk[i] = np.float32(1.0) if fired else np.float32(0.0)
                spikes_out[t, i] = fired
        last = offsets[n_layers - 1]
        for i in range(last, offsets[n_layers]):
            mem_out[t, i - last] = mem[i]


@njit(cache=True, nogil=True)
def lif_stack_asa_run(x: np.ndarray, w_in_t: np.ndarray, bias: np.ndarray, beta: np.ndarray,
                      thr: np.ndarray, offsets: np.ndarray, mem: np.ndarray, spk: np.ndarray,
                      spikes_out: np.ndarray, mem_out: np.ndarray,
                      attended: np.ndarray, fc1: np.ndarray, fc2: np.ndarray, has_fc2: bool,
                      conv_im: np.ndarray, conv_rest: np.ndarray, ratio: np.ndarray, top_k: np.ndarray,
                      ring: np.ndarray, pos: np.ndarray, gain_out: np.ndarray) -> None:
    """:func:`lif_stack_run` with the causal ASA (``nodes.decoders.attention.CausalASA``, batch 1)
    rescaling the synaptic current of the ``attended`` layers, compiled.

    The attention arithmetic runs in float64 and the gain is rounded to float32 before the product
    ``float32(cur · gain)``, as in the torch and numpy twins (same spikes; see
    :mod:`nodes.decoders.attention_torch`). Per attended layer and step: the current enters a ring
    of the last ``K`` currents; score = ``fc1`` (or ``fc2·relu(fc1·)``) over the time-ordered window;
    the ``top_k`` largest scores are "important" (ties → lower index); mean and max over the window
    of each part (mean ÷ λ or ÷ (1 − λ)) → ``Conv1d(2 → 1, zero padding)`` over the layer's neurons
    → sigmoid → that part's gain.

    Extra shapes (L layers, N neurons over all layers, K window, H scorer width, k conv kernel):
        attended: ``(L,)`` bool.
        fc1: ``(L, H, K)`` float64 (row 0 only if not ``has_fc2``); fc2: ``(L, H)`` float64.
        conv_im, conv_rest: ``(L, 2, k)`` float64 (input maps: 0 = mean, 1 = max).
        ratio: ``(L,)`` float64 λ; top_k: ``(L,)`` int64 ``int(λ·units)``.
        ring: ``(K, N)`` float64, the last K currents of every attended neuron; slot ``pos[0]`` is
            written next (updated in place with ``pos``).
        gain_out: ``(N,)`` float32, written: the gains of the last step (1 for unattended layers).
    """
    n, c = x.shape
    n_layers = offsets.shape[0] - 1
    K = ring.shape[0]
    H = fc1.shape[1]
    ks = conv_im.shape[2]
    pad = ks // 2
    cur = np.empty(mem.shape[0], dtype=np.float32)
    score = np.empty(mem.shape[0], dtype=np.float64)
    mean = np.empty(mem.shape[0], dtype=np.float64)
    mx = np.empty(mem.shape[0], dtype=np.float64)
    imp = np.zeros(mem.shape[0], dtype=np.bool_)
    hid = np.empty(H, dtype=np.float64)
    for t in range(n):
        p = pos[0]
        for l in range(n_layers):
            a, b = offsets[l], offsets[l + 1]
            for i in range(a, b):
                cur[i] = bias[i]
            if l == 0:
                for j in range(c):
                    v = x[t, j]
                    if v != 0:
                        for i in range(a, b):
                            cur[i] += w_in_t[j, i] * v
            else:
                for j in range(offsets[l - 1], offsets[l]):
                    if spk[j] != 0:
                        for i in range(a, b):
                            cur[i] += w_in_t[c + j, i]
            if attended[l]:
                for i in range(a, b):
                    ring[p, i] = np.float64(cur[i])
                # score, mean and max over the time-ordered window (oldest = slot p + 1)
                for i in range(a, b):
                    s = 0.0
                    tot = 0.0
                    m = -np.inf
                    if has_fc2:
                        for h in range(H):
                            hid[h] = 0.0
                    for j in range(K):
                        v = ring[(p + 1 + j) % K, i]
                        tot += v
                        if v > m:
                            m = v
                        if has_fc2:
                            for h in range(H):
                                hid[h] += fc1[l, h, j] * v
                        else:
                            s += fc1[l, 0, j] * v
                    if has_fc2:
                        for h in range(H):
                            if hid[h] > 0.0:
                                s += fc2[l, h] * hid[h]
                    score[i] = s
                    mean[i] = tot / K
                    mx[i] = m
                kk = top_k[l]
                for i in range(a, b):  # rank by score, ties to the lower index (a stable descending sort)
                    r = 0
                    si = score[i]
                    for j in range(a, b):
                        sj = score[j]
                        if sj > si or (sj == si and j < i):
                            r += 1
                    imp[i] = r < kk
                lam = ratio[l]
                for i in range(a, b):
                    part = imp[i]
                    z = 0.0
                    for q in range(ks):
                        src = i + q - pad
                        if src < a or src >= b or imp[src] != part:
                            continue  # zero padding; the other part's positions are 0 in this part's maps
                        if part:
                            z += conv_im[l, 0, q] * (mean[src] / lam) + conv_im[l, 1, q] * mx[src]
                        else:
                            z += conv_rest[l, 0, q] * (mean[src] / (1.0 - lam)) + conv_rest[l, 1, q] * mx[src]
                    g = np.float32(1.0 / (1.0 + np.exp(-z)))
                    gain_out[i] = g
                    cur[i] = np.float32(cur[i] * g)
            for i in range(a, b):
                current = cur[i] - thr[i] * spk[i]
                m32 = np.float32(beta[i] * mem[i])
                m32 = np.float32(m32 + current)
                mem[i] = m32
                fired = m32 > thr[i]
                spk[i] = np.float32(1.0) if fired else np.float32(0.0)
                spikes_out[t, i] = fired
        pos[0] = (p + 1) % K
        last = offsets[n_layers - 1]
        for i in range(last, offsets[n_layers]):
            mem_out[t, i - last] = mem[i]
