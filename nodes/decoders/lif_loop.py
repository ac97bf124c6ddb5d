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
