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


@njit(cache=True, nogil=True, inline="always")
def _synaptic_current(cur: np.ndarray, x: np.ndarray, t: int, w_in_t: np.ndarray, bias: np.ndarray,
                      spk: np.ndarray, offsets: np.ndarray, l: int) -> None:
    """``cur[a:b] = b + W·input`` of layer ``l`` at step ``t`` (event-driven: silent inputs skipped;
    layer ``l − 1`` already holds its spikes of step ``t``). Shapes as in :func:`lif_stack_run`."""
    c = x.shape[1]
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


@njit(cache=True, nogil=True, inline="always")
def _membrane_step(cur: np.ndarray, beta: np.ndarray, thr: np.ndarray, mem: np.ndarray, spk: np.ndarray,
                   spikes_out: np.ndarray, t: int, a: int, b: int) -> None:
    """Neurons ``a:b``: reset by subtraction of step ``t − 1``'s spike, leak, integrate (torch's two
    float32 roundings), fire; ``mem``, ``spk`` and ``spikes_out[t]`` updated in place."""
    for i in range(a, b):
        current = cur[i] - thr[i] * spk[i]
        m = np.float32(beta[i] * mem[i])
        m = np.float32(m + current)
        mem[i] = m
        fired = m > thr[i]
        spk[i] = np.float32(1.0) if fired else np.float32(0.0)
        spikes_out[t, i] = fired


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
            _synaptic_current(cur, x, t, w_in_t, bias, spk, offsets, l)
            _membrane_step(cur, beta, thr, mem, spk, spikes_out, t, offsets[l], offsets[l + 1])
        last = offsets[n_layers - 1]
        for i in range(last, offsets[n_layers]):
            mem_out[t, i - last] = mem[i]



@njit(cache=True, nogil=True)
def lif_stack_decode_binary(counts: np.ndarray, w_in_t: np.ndarray, bias: np.ndarray, beta: np.ndarray,
                            thr: np.ndarray, offsets: np.ndarray, mem: np.ndarray, spk: np.ndarray,
                            out_scale: np.ndarray, target_scale: np.ndarray,
                            target_mean: np.ndarray) -> tuple[np.ndarray, int]:
    """SNN_Streaming's whole decode of a chunk in one compiled call (a live decoder gets one 4 ms bin
    at a time, where the dozen numpy calls around :func:`lif_stack_run` cost more than the network).

    The same arithmetic as the general path, step by step: ``counts`` converted to float32 (as
    ``np.asarray(counts, float32)``), a non-finite count read as 0 (and counted), binarised
    (``count > 0``), the LIF stack, then ``((mem · out_scale) · target_scale) + target_mean`` with a
    float32 rounding after each operation, as numpy does.

    Args:
        counts: ``(n, C)`` spike counts per 4 ms bin, any real dtype.
        w_in_t … spk: as :func:`lif_stack_run` (``mem``, ``spk`` updated in place).
        out_scale, target_scale, target_mean: ``(outputs,)`` float32 readout scale and the
            training target's de-normalisation (mm/s).

    Returns:
        ``(y, nonfinite)``: ``(n, outputs)`` float32 velocity (mm/s) and the non-finite counts seen.
    """
    n, c = counts.shape
    x = np.empty((n, c), dtype=np.float32)
    bad = 0
    for t in range(n):
        for j in range(c):
            v = np.float32(counts[t, j])
            if not np.isfinite(v):
                bad += 1
                x[t, j] = np.float32(0.0)
            else:
                x[t, j] = np.float32(1.0) if v > 0 else np.float32(0.0)
    n_layers = offsets.shape[0] - 1
    outputs = offsets[n_layers] - offsets[n_layers - 1]
    spikes = np.empty((n, mem.shape[0]), dtype=np.bool_)
    mem_out = np.empty((n, outputs), dtype=np.float32)
    lif_stack_run(x, w_in_t, bias, beta, thr, offsets, mem, spk, spikes, mem_out)
    y = np.empty((n, outputs), dtype=np.float32)
    for t in range(n):
        for i in range(outputs):
            scaled = np.float32(mem_out[t, i] * out_scale[i])
            y[t, i] = np.float32(np.float32(scaled * target_scale[i]) + target_mean[i])
    return y, bad


def pack_asa(n_layers: int, attended: np.ndarray, fc1: np.ndarray, fc2: np.ndarray, has_fc2: bool,
             conv_im: np.ndarray, conv_rest: np.ndarray, ratio: np.ndarray, top_k: np.ndarray,
             bias: np.ndarray | None = None, neurons: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The causal ASA's parameters, ring and scratch as the two flat arrays :func:`lif_stack_asa_run`
    takes (few arguments and no allocation per call: numba checks every argument's type on each
    call, and a live decoder calls once per bin).

    Args (L layers, H scorer width, K window, k conv kernel, N = ``neurons`` of all layers):
    attended ``(L,)`` bool; fc1 ``(L, H, K)``; fc2 ``(L, H)``; conv_im, conv_rest ``(L, 2, k)``
    (maps: 0 = mean, 1 = max); ratio ``(L,)`` λ; top_k ``(L,)`` ``int(λ·units)``; bias ``(L, 2)``
    offsets of the important / rest pre-activations (default zeros).

    Returns:
        ``asa_f`` float64: fc1, fc2, conv_im, conv_rest, ratio, bias (the parameters, read only),
        then the ring ``(K, N)`` of the last K currents of every neuron (state: see
        :func:`asa_ring`), then ``8 N + H + L`` scratch values (the last L: each layer's last
        top-k threshold, a pivot hint that does not change results);
        ``asa_i`` int64: ``[K, H, k, has_fc2, pos, attended × L, top_k × L, params_size]``
        (``pos``, the ring slot written next, is updated in place by the loop).
    """
    L = n_layers
    _, H, K = fc1.shape
    k = conv_im.shape[2]
    bias = np.zeros((L, 2)) if bias is None else bias
    params = np.concatenate([np.ascontiguousarray(a, dtype=np.float64).reshape(-1)
                             for a in (fc1, fc2, conv_im, conv_rest, ratio, bias)])
    asa_f = np.zeros(params.size + K * neurons + 8 * neurons + H + L, dtype=np.float64)
    asa_f[:params.size] = params
    asa_i = np.concatenate([np.array([K, H, k, int(has_fc2), 0], dtype=np.int64),
                            np.asarray(attended, dtype=np.int64).reshape(L), np.asarray(top_k, dtype=np.int64).reshape(L),
                            np.array([params.size], dtype=np.int64)])
    return asa_f, asa_i


def asa_ring(asa_f: np.ndarray, asa_i: np.ndarray, neurons: int) -> np.ndarray:
    """The ring ``(K, N)`` inside ``asa_f`` (a view: writing it sets the loop's state)."""
    K, L = int(asa_i[0]), (asa_i.shape[0] - 6) // 2
    o = int(asa_i[5 + 2 * L])
    return asa_f[o:o + K * neurons].reshape(K, neurons)


@njit(cache=True, nogil=True, inline="always")
def _top_k_mask(score: np.ndarray, a: int, b: int, kk: int, tmp: np.ndarray, imp: np.ndarray,
                hint: float = np.nan) -> float:
    """``imp[a:b]`` = the ``kk`` largest of ``score[a:b]``, ties to the lower index (exactly the
    first ``kk`` of a stable descending sort), in O(n) expected time; returns the ``kk``-th
    largest value.

    The ``kk``-th largest value ``v`` is found by quickselect (Hoare's selection) whose partition
    is branch-free (each value is written to both ends of a scratch buffer and only the matching
    end's index advances: comparisons of scores are unpredictable, and a mispredicted branch costs
    more than the extra write); ``tmp`` holds ``2 (b − a)`` scratch values. The first pivot is
    ``hint`` (the previous step's ``v``: the split moves little from one 4 ms step to the next, so
    one pass usually leaves a few values), the next ones the middle of the range; the result does
    not depend on the hint. Every score ``> v`` is taken (there are exactly ``lo`` of them when the
    search ends), then of the scores ``== v`` the lowest indices until ``kk`` (also branch-free).
    """
    n = b - a
    want = kk - 1  # index of the kk-th largest in descending order
    lo, hi = 0, n  # the answer is in tmp[lo:hi]; everything before lo is > it, from hi on < it
    pv = hint
    use_hint = hint == hint  # not NaN
    first = True  # the first pass reads the scores themselves (no copy)
    while first or hi - lo > 1:
        if not use_hint:
            mid = (lo + hi) // 2
            pv = score[a + mid] if first else tmp[mid]
        use_hint = False
        g = lo  # values > pv go to tmp[lo:], values < pv to the scratch half from its end
        e = n + hi  # exclusive end of the "< pv" values in tmp[n + lo: n + hi]
        eq = 0
        if first:
            for i in range(n):
                v = score[a + i]
                gt = v > pv
                lt = v < pv
                tmp[g] = v
                tmp[e - 1] = v
                g += gt
                e -= lt
                eq += (not gt) and (not lt)
        else:
            for i in range(lo, hi):
                v = tmp[i]
                gt = v > pv
                lt = v < pv
                tmp[g] = v  # g <= i: never overwrites an unread value
                tmp[e - 1] = v
                g += gt
                e -= lt
                eq += (not gt) and (not lt)
        first = False
        # tmp[lo:g] > pv; eq values == pv; the "< pv" values in tmp[e:n + hi]
        if want < g:
            hi = g  # (a hint above every value leaves the range as it was: the next pivot is an element)
        elif want < g + eq:
            lo, hi = g, g + eq
            tmp[want] = pv
            break
        else:
            n_lt = n + hi - e
            for i in range(n_lt):  # only the part the search goes on in is moved back
                tmp[g + eq + i] = tmp[e + i]
            lo = g + eq
    v = tmp[want]
    ties = kk - lo  # how many of the scores equal to v are taken, lowest index first
    for i in range(a, b):
        si = score[i]
        take = (si == v) and (ties > 0)
        imp[i] = (si > v) or take
        ties -= take
    return v


@njit(cache=True, nogil=True)
def lif_stack_asa_run(x: np.ndarray, w_in_t: np.ndarray, bias: np.ndarray, beta: np.ndarray,
                      thr: np.ndarray, offsets: np.ndarray, mem: np.ndarray, spk: np.ndarray,
                      spikes_out: np.ndarray, mem_out: np.ndarray, asa_f: np.ndarray, asa_i: np.ndarray) -> None:
    """:func:`lif_stack_run` with the causal ASA (``nodes.decoders.attention.CausalASA``, batch 1)
    rescaling the synaptic current of the attended layers, compiled.

    The attention arithmetic runs in float64 and the gain is rounded to float32 before the product
    ``float32(cur · gain)``, as in the torch and numpy twins (same spikes; see
    :mod:`nodes.decoders.attention_torch`). Per attended layer and step: the current enters a ring
    of the last ``K`` currents; score = ``fc1`` (or ``fc2·relu(fc1·)``) over the time-ordered window;
    the ``top_k`` largest scores are "important" (ties → lower index; O(n) selection,
    :func:`_top_k_mask`); mean and max over the window of each part (mean ÷ λ or ÷ (1 − λ)) →
    ``Conv1d(2 → 1, zero padding)`` over the layer's neurons + that part's offset → sigmoid →
    that part's gain.

    Extra arguments: ``asa_f``, ``asa_i`` from :func:`pack_asa`: the ring of the last K currents
    of every neuron inside ``asa_f`` (columns of unattended layers unused) and ``asa_i[4]``, the
    ring position, are updated in place; the rest of ``asa_f`` after the ring is scratch.
    """
    n, c = x.shape
    N = mem.shape[0]
    L = offsets.shape[0] - 1
    K, H, ks, has_fc2 = asa_i[0], asa_i[1], asa_i[2], asa_i[3] != 0
    pad = ks // 2
    o = 0
    fc1 = asa_f[o:o + L * H * K].reshape((L, H, K))
    o += L * H * K
    fc2 = asa_f[o:o + L * H].reshape((L, H))
    o += L * H
    conv_im = asa_f[o:o + L * 2 * ks].reshape((L, 2, ks))
    o += L * 2 * ks
    conv_rest = asa_f[o:o + L * 2 * ks].reshape((L, 2, ks))
    o += L * 2 * ks
    ratio = asa_f[o:o + L]
    o += L
    offs = asa_f[o:o + 2 * L].reshape((L, 2))
    o = asa_i[5 + 2 * L]
    ring = asa_f[o:o + K * N].reshape((K, N))
    o += K * N
    score = asa_f[o:o + N]  # scratch from here on (no allocation per call)
    tmp = asa_f[o + N:o + 3 * N]
    imp = asa_f[o + 3 * N:o + 4 * N]  # 1.0 = important
    m_im = asa_f[o + 4 * N:o + 6 * N].reshape((2, N))  # mean ÷ λ and max of the important part (0 elsewhere)
    m_re = asa_f[o + 6 * N:o + 8 * N].reshape((2, N))  # the same for the rest
    hid = asa_f[o + 8 * N:o + 8 * N + H]
    hints = asa_f[o + 8 * N + H:o + 8 * N + H + L]  # last threshold per layer: first pivot of the next step
    cur = np.empty(N, dtype=np.float32)
    for t in range(n):
        p = asa_i[4]
        for l in range(L):
            a, b = offsets[l], offsets[l + 1]
            _synaptic_current(cur, x, t, w_in_t, bias, spk, offsets, l)
            if asa_i[5 + l] != 0:
                # score, sum and max over the time-ordered window; loops over neurons innermost (each
                # neuron's sums keep the order of its window, oldest first, so results do not change)
                for i in range(a, b):
                    ring[p, i] = np.float64(cur[i])
                    score[i] = 0.0
                    m_im[0, i] = 0.0
                    m_im[1, i] = -np.inf
                for j in range(K):
                    q = p + 1 + j  # ring slots oldest first: slot p + 1 is the oldest after writing slot p
                    row = ring[q - K if q >= K else q]
                    w = fc1[l, 0, j]
                    for i in range(a, b):
                        v = row[i]
                        m_im[0, i] += v
                        m_im[1, i] = max(m_im[1, i], v)
                        if not has_fc2:
                            score[i] += w * v
                if has_fc2:
                    for i in range(a, b):
                        s = 0.0
                        for h in range(H):
                            acc = 0.0
                            for j in range(K):
                                q = p + 1 + j
                                acc += fc1[l, h, j] * ring[q - K if q >= K else q, i]
                            hid[h] = acc
                        for h in range(H):
                            if hid[h] > 0.0:
                                s += fc2[l, h] * hid[h]
                        score[i] = s
                hints[l] = _top_k_mask(score, a, b, asa_i[5 + L + l], tmp, imp, hints[l])
                lam = ratio[l]
                for i in range(a, b):  # split the maps: mean ÷ λ (or ÷ (1 − λ)) and max, 0 outside the part
                    mean = m_im[0, i] / K
                    mx = m_im[1, i]
                    im = imp[i]
                    m_im[0, i] = im * (mean / lam)
                    m_im[1, i] = im * mx
                    m_re[0, i] = (1.0 - im) * (mean / (1.0 - lam))
                    m_re[1, i] = (1.0 - im) * mx
                b_im, b_re = offs[l, 0], offs[l, 1]
                for i in range(a, b):  # Conv1d(2 → 1) over the layer's neurons, zero padding, offset, σ
                    z_im = 0.0
                    z_re = 0.0
                    for q in range(ks):
                        src = i + q - pad
                        if src >= a and src < b:
                            z_im += conv_im[l, 0, q] * m_im[0, src] + conv_im[l, 1, q] * m_im[1, src]
                            z_re += conv_rest[l, 0, q] * m_re[0, src] + conv_rest[l, 1, q] * m_re[1, src]
                    z = z_im + b_im if imp[i] != 0.0 else z_re + b_re
                    g = np.float32(1.0 / (1.0 + np.exp(-z)))
                    cur[i] = np.float32(cur[i] * g)
            _membrane_step(cur, beta, thr, mem, spk, spikes_out, t, a, b)
        asa_i[4] = p + 1 if p + 1 < K else 0
        last = offsets[L - 1]
        for i in range(last, offsets[L]):
            mem_out[t, i - last] = mem[i]
