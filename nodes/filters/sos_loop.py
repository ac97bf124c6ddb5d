"""The compiled loop of a second-order-sections IIR filter with carried state (numba).

``scipy.signal`` designs the filter; this applies it. ``scipy.signal.sosfilt`` spends about 100 µs
validating and reshaping per call, which dominates a live graph that filters one 4 ms sample at a
time; this loop does the same arithmetic (transposed direct form II, as scipy) in about 1 µs.
Results equal ``sosfilt`` to rounding (the tests require 1e-12).
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, inline="always")
def _cascade(sos: np.ndarray, zi: np.ndarray, ch: int, v: float) -> float:
    """One input value ``v`` of channel ``ch`` through every section (transposed direct form II,
    as scipy); ``zi[:, :, ch]`` updated in place; returns the output value."""
    for s in range(sos.shape[0]):
        out = sos[s, 0] * v + zi[s, 0, ch]
        zi[s, 0, ch] = sos[s, 1] * v - sos[s, 4] * out + zi[s, 1, ch]
        zi[s, 1, ch] = sos[s, 2] * v - sos[s, 5] * out
        v = out
    return v


@njit(cache=True, nogil=True)
def sos_filter(sos: np.ndarray, x: np.ndarray, zi: np.ndarray) -> np.ndarray:
    """Filter ``x`` along its first axis, updating ``zi`` in place; return the output.

    Args:
        sos: ``(sections, 6)`` float64, rows ``[b0, b1, b2, a0, a1, a2]`` with ``a0 == 1``
            (as ``scipy.signal`` designs them).
        x: ``(samples, channels)`` float64 input, any units.
        zi: ``(sections, 2, channels)`` float64 filter state, carried across calls.

    Returns:
        ``(samples, channels)`` float64 output, same units as ``x``.
    """
    n, c = x.shape
    y = np.empty((n, c))
    for t in range(n):
        for ch in range(c):
            v = x[t, ch]
            y[t, ch] = _cascade(sos, zi, ch, v)
    return y


@njit(cache=True, nogil=True)
def sos_filter_hold(sos: np.ndarray, x: np.ndarray, zi: np.ndarray, last: np.ndarray) -> tuple[np.ndarray, int]:
    """:func:`sos_filter` of ``x`` with every non-finite input replaced by its channel's last finite
    value, in one compiled call (a live graph filters one 4 ms sample at a time, where the half-dozen
    numpy calls of a separate clean-up pass cost more than the filter).

    Args:
        sos, zi: as :func:`sos_filter` (``zi`` updated in place).
        x: ``(samples, channels)`` input of any real dtype, any units (converted to float64).
        last: ``(channels,)`` float64, each channel's last finite input (0 before the first), updated
            in place.

    Returns:
        ``(y, nonfinite)``: the ``(samples, channels)`` float64 output and how many inputs were
        replaced.
    """
    n, c = x.shape
    y = np.empty((n, c))
    bad = 0
    for t in range(n):
        for ch in range(c):
            v = np.float64(x[t, ch])
            if np.isfinite(v):
                last[ch] = v
            else:
                v = last[ch]
                bad += 1
            y[t, ch] = _cascade(sos, zi, ch, v)
    return y, bad
