"""Bessel low-pass filter node (kind ``bessel``): causal SOS filtering or the paper's block-bidirectional filter.

Design (coefficients) is separate from application (state), as in ``scipy.signal``:
``scipy.signal.bessel(order, cutoff_hz, fs=rate, output="sos")`` with scipy's default ``norm="phase"``.
The iBMI paper's ``scipy.signal.bessel(4, 0.05)`` (0.05 × Nyquist) is ``order: 4, cutoff_hz: 6.25``
at 250 Hz.

Modes
-----
``causal``
    A second-order-sections IIR filter whose state (``zi``, shape ``(sections, 2, channels)``)
    is carried across packets, applied by the compiled loop of :mod:`nodes.filters.sos_loop`
    (``sosfilt``'s arithmetic without its per-call overhead). The filter starts at rest (zero state), so its output equals one-shot
    ``scipy.signal.sosfilt(sos, x, axis=0)`` over the whole stream, for any chunking (to 1e-12).
    No delay is declared (the group delay of a 4th-order 6.25 Hz Bessel is about 40 ms).

``block`` (the paper's "block-bidirectional" filter)
    For every input sample t the node takes the block of the last ``block`` inputs
    ``x[t-block+1 .. t]`` and runs ``scipy.signal.sosfiltfilt(sos, block, axis=0)`` on it (scipy's
    defaults: odd padding, ``padlen = 3·(2·sections+1)``, 15 for order 4).

    * ``take: last`` emits the filtered block's last sample, stamped with sample t's timestamp:
      no added delay.
    * ``take: middle`` emits the filtered sample at block index ``block-1-block//2``, i.e. the
      smoothed value of input sample ``t - block//2``, stamped with THAT sample's timestamp, so
      outputs stay aligned with their labels. The output stream declares
      ``metadata["delay_s"] = (block//2) / rate`` (0.064 s for 32 samples at 250 Hz). The first
      ``block//2`` inputs produce no output; ``flush()`` (end of the stream) emits the last
      ``block//2`` outputs by repeating the final input sample, so the output has exactly as many
      samples as the input.

    Start of the stream (the first ``block-1`` samples): the block is pre-filled with copies of the
    first input sample, as if the signal had been constant at that value before the stream began.
    Every block therefore has exactly ``block`` samples and the filter is defined from the first
    sample on (no transient from zero, no special-cased short blocks).

Non-finite input (NaN, ±inf) would poison a recursive filter's state forever: such values are
replaced by the channel's previous finite input value (0.0 before any) and counted in
``counters()["nonfinite"]``.

Input: a regular stream, shape ``(samples, channels)``, any units. Output: same shape, units and
labels, ``float64``.
"""
from __future__ import annotations

from typing import Any, Literal

import numpy as np

from pipeline.node import Node, require
from pipeline.packet import Packet, StreamInfo

MODES = ("causal", "block")
TAKES = ("last", "middle")


_COMPILED_DTYPES = frozenset(np.dtype(t) for t in ("float32", "float64", "int8", "int16", "int32", "int64",
                                                   "uint8", "uint16", "uint32", "uint64"))
"""Input dtypes the one-call causal path takes (numba has no float16; others go through ``_clean``)."""


def design_bessel(order: int, cutoff_hz: float, rate_hz: float) -> np.ndarray:
    """Low-pass Bessel design as second-order sections, shape ``(sections, 6)``.

    Args:
        order: filter order (>= 1).
        cutoff_hz: cutoff frequency in Hz (scipy's ``norm="phase"`` definition), below ``rate_hz / 2``.
        rate_hz: sampling rate in Hz.
    """
    if not (isinstance(order, int) and order >= 1):
        raise ValueError(f"bessel: order must be an integer >= 1, got {order!r}")
    if rate_hz <= 0:
        raise ValueError(f"bessel: needs a regular input stream (rate > 0 Hz), got {rate_hz}")
    if not (0 < cutoff_hz < rate_hz / 2):
        raise ValueError(f"bessel: cutoff_hz must be in (0, {rate_hz / 2}) Hz for a {rate_hz} Hz stream, got {cutoff_hz}")
    import scipy.signal  # here, not at module level: loading a graph (the driver) needs no scipy (0.85 s CPU)

    return scipy.signal.bessel(order, cutoff_hz, btype="low", output="sos", fs=rate_hz)


class BesselFilter(Node):
    """Per-channel Bessel low-pass filter, causal or block-bidirectional (see module docs).

    Params:
        order: filter order (default 4).
        cutoff_hz: cutoff in Hz (default 6.25, the paper's 0.05 × Nyquist at 250 Hz).
        mode: ``causal`` (default) or ``block``.
        block: block length in samples for ``mode: block`` (default 32 = 128 ms at 250 Hz).
        take: ``last`` (default, no delay) or ``middle`` (``block//2`` samples of delay).
    """

    kind = "bessel"

    def __init__(self, order: int = 4, cutoff_hz: float = 6.25, mode: Literal["causal", "block"] = "causal",
                 block: int = 32, take: Literal["last", "middle"] = "last") -> None:
        if mode not in MODES:
            raise ValueError(f"bessel: mode must be one of {MODES}, got {mode!r}")
        if take not in TAKES:
            raise ValueError(f"bessel: take must be one of {TAKES}, got {take!r}")
        if not (isinstance(block, int) and block >= 2):
            raise ValueError(f"bessel: block must be an integer >= 2 samples, got {block!r}")
        if not (isinstance(order, int) and order >= 1):
            raise ValueError(f"bessel: order must be an integer >= 1, got {order!r}")
        # the compiled loop (numba) is imported where the node is constructed, i.e. where it runs: a
        # driver that only loads the graph (param checks, layout) imports neither numba nor scipy
        from nodes.filters.sos_loop import sos_filter, sos_filter_hold

        self._sos_filter, self._sos_filter_hold = sos_filter, sos_filter_hold
        self.order, self.cutoff_hz, self.mode, self.block, self.take = order, float(cutoff_hz), mode, block, take
        self.sos = np.zeros((0, 6))
        self.channels = 0
        self.rate_hz = 0.0
        self._nonfinite = 0
        self._t_enter = 0.0
        self._warm_row: np.ndarray | None = None  # warm(): a zero sample of the stream's dtype (causal, compiled)
        self._reset_state()

    # -- description ---------------------------------------------------------------------------
    @property
    def delay_samples(self) -> int:
        """Samples of delay this filter declares (``block//2`` for block/middle, else 0)."""
        return self.block // 2 if (self.mode == "block" and self.take == "middle") else 0

    @classmethod
    def prepare_process(cls) -> None:
        """Import scipy.signal and load the compiled filter loop (numba's cache; about 0.3 s in a
        new process)."""
        import scipy.signal  # noqa: F401 - what design_bessel needs

        from nodes.filters.sos_loop import sos_filter

        sos = np.array([[1.0, 0.0, 0.0, 1.0, 0.0, 0.0]])
        sos_filter(sos, np.zeros((0, 1)), np.zeros((1, 2, 1)))

    def open(self, inputs: dict[str, StreamInfo]) -> dict[str, StreamInfo]:
        info = require(inputs, "in", regular=True)
        self.rate_hz = info.nominal_rate
        self.channels = info.channel_count
        self.sos = design_bessel(self.order, self.cutoff_hz, self.rate_hz)
        if self.mode == "block":
            padlen = 3 * (2 * len(self.sos) + 1)
            if self.block <= padlen:
                raise ValueError(f"bessel: block ({self.block}) must exceed sosfiltfilt's padlen ({padlen}) for order {self.order}")
        self._reset_state()
        if self.mode == "causal":  # compile (or load the cache) now, not on the first live sample
            self._sos_filter(self.sos, np.zeros((0, self.channels)), self._zi)
            if np.dtype(info.dtype) in _COMPILED_DTYPES:  # the one-call path for the stream's own dtype
                self._sos_filter_hold(self.sos, np.zeros((0, self.channels), dtype=info.dtype), self._zi,
                                      self._last_finite)
                self._warm_row = np.zeros((1, self.channels), dtype=info.dtype)
        metadata = dict(info.metadata)
        prior = float(metadata.get("delay_s", 0.0))
        metadata["delay_s"] = prior + self.delay_samples / self.rate_hz
        metadata["filter"] = {"kind": "bessel", "order": self.order, "cutoff_hz": self.cutoff_hz,
                              "mode": self.mode, "block": self.block, "take": self.take}
        return {"out": info.with_(dtype="float64", metadata=metadata)}

    def _reset_state(self) -> None:
        c = self.channels
        self._zi = np.zeros((len(self.sos), 2, c))
        self._last_finite = np.zeros(c)
        self._warm_zi, self._warm_last = np.zeros_like(self._zi), np.zeros(c)  # warm()'s scratch state
        self._hist = np.zeros((0, c))  # block mode: the last block-1 inputs
        self._hist_t = np.zeros(0)  # block/middle: timestamps of the last block//2 inputs

    # -- processing ----------------------------------------------------------------------------
    def _clean(self, data: np.ndarray) -> np.ndarray:
        x = np.asarray(data, dtype=np.float64)
        bad = ~np.isfinite(x)
        if bad.any():
            self._nonfinite += int(bad.sum())
            x = x.copy()
            for ch in np.flatnonzero(bad.any(axis=0)):
                col = x[:, ch]
                prev = self._last_finite[ch]
                for i in range(col.shape[0]):  # hold the previous finite value
                    if np.isfinite(col[i]):
                        prev = col[i]
                    else:
                        col[i] = prev
        if x.shape[0]:
            self._last_finite = x[-1].copy()
        return x

    def process(self, port: str, packet: Packet) -> dict[str, Packet]:
        if packet.n_samples == 0:
            return {}
        self._t_enter = packet.t_enter
        if self.mode == "causal":
            data = packet.data
            if data.dtype in _COMPILED_DTYPES:  # clean-up and scipy.signal.sosfilt's arithmetic, one compiled call
                y, bad = self._sos_filter_hold(self.sos, data, self._zi, self._last_finite)
                self._nonfinite += bad
            else:
                y = self._sos_filter(self.sos, self._clean(data), self._zi)
            return {"out": packet.derive(y)}
        return self._block(self._clean(packet.data), packet.timestamps, packet)

    def warm(self) -> None:
        """Run the one-call causal path on a zero sample with a scratch copy of the state (the real
        coefficients, the state's values, the compiled loop): the next sample finds them in the
        caches. Changes no state (see :meth:`pipeline.node.Node.warm`); nothing in block mode."""
        if self._warm_row is None:
            return
        np.copyto(self._warm_zi, self._zi)
        np.copyto(self._warm_last, self._last_finite)
        self._sos_filter_hold(self.sos, self._warm_row, self._warm_zi, self._warm_last)

    def _block(self, x: np.ndarray, stamps: np.ndarray, packet: Packet | None) -> dict[str, Packet]:
        n, width = x.shape[0], self.block
        if self._hist.shape[0] == 0:  # first sample of the stream: constant pre-history
            self._hist = np.repeat(x[:1], width - 1, axis=0)
        joined = np.concatenate([self._hist, x], axis=0)  # (width-1+n, C)
        blocks = np.lib.stride_tricks.sliding_window_view(joined, width, axis=0)  # (n, C, width)
        import scipy.signal

        filtered = scipy.signal.sosfiltfilt(self.sos, blocks, axis=-1)
        self._hist = joined[-(width - 1):].copy()
        if self.take == "last":
            y = filtered[:, :, -1]
            out_t = stamps
        else:
            d = self.delay_samples
            y = filtered[:, :, width - 1 - d]  # smoothed value of input sample t - d
            all_t = np.concatenate([self._hist_t, stamps])
            # output i (input t) belongs to input t-d; the first d outputs of the stream belong to
            # the constant pre-history and are dropped
            pending = self._hist_t.shape[0]
            skip = max(0, d - pending)
            y = y[skip:]
            out_t = all_t[: all_t.shape[0] - d] if all_t.shape[0] > d else all_t[:0]
            self._hist_t = all_t[-d:].copy() if all_t.shape[0] >= d else all_t.copy()
            if y.shape[0] == 0:
                return {}
        y = np.ascontiguousarray(y)
        if packet is None:
            return {"out": Packet(y, np.asarray(out_t, dtype=np.float64), 0.0)}
        return {"out": Packet(y, np.asarray(out_t, dtype=np.float64), packet.t_enter)}

    def flush(self) -> dict[str, Packet]:
        """For ``take: middle``: emit the last ``block//2`` outputs by repeating the final input."""
        d = self.delay_samples
        if d == 0 or self._hist.shape[0] == 0 or self._hist_t.shape[0] == 0:
            return {}
        pad = np.repeat(self._hist[-1:], d, axis=0)
        # the pad samples' own timestamps are never emitted: the outputs carry the pending stamps
        out = self._block(pad, np.full(d, np.nan), None)
        self._hist_t = np.zeros(0)
        if "out" in out:
            out["out"].t_enter = self._t_enter
        return out

    # -- checkpointing -------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"zi": self._zi.copy(), "hist": self._hist.copy(), "hist_t": self._hist_t.copy(),
                "last_finite": self._last_finite.copy(), "nonfinite": self._nonfinite}

    def restore(self, state: dict[str, Any]) -> None:
        self._zi = np.array(state["zi"], dtype=np.float64)
        self._hist = np.array(state["hist"], dtype=np.float64)
        self._hist_t = np.array(state["hist_t"], dtype=np.float64)
        self._last_finite = np.array(state["last_finite"], dtype=np.float64)
        self._nonfinite = int(state["nonfinite"])

    def counters(self) -> dict[str, int]:
        return {"nonfinite": self._nonfinite}
