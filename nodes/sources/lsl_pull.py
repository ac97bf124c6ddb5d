"""Pull a numeric LSL chunk into buffers allocated once: one liblsl call per pull, no allocation.

``pylsl.StreamInlet.pull_chunk(dest_obj=..., min_samples=1)`` costs tens of µs of Python per call
on the live data path: every call allocates a fresh timestamp array of ``max_samples`` doubles,
builds a ctypes view of the destination, and with ``min_samples=1`` makes a second pull through a
``memoryview`` plus an ``np.concatenate`` of the timestamps. An inlet that reads one 4 ms sample at
a time (and, waiting with ``auto``, polls a few times per sample) pays that on every call.
:class:`ChunkPuller` calls liblsl's ``lsl_pull_chunk_<type>`` directly with pointers into a data
buffer ``(max_samples, channels)`` and a timestamp buffer ``(max_samples,)`` made once, and with
the ctypes arguments made once. What it returns are *views* of those buffers (the next pull
overwrites them: copy what you keep, as :class:`nodes.sources.lsl_inlet.LslInlet` does).

liblsl's chunk pull with a timeout waits until the *whole* buffer is full (or the timeout passes);
so a waiting pull asks for one sample (waiting up to ``timeout``), then takes whatever else is
already buffered without waiting, into the rest of the buffers: the same semantics as pylsl's
``min_samples=1``, with the same liblsl calls.

It relies on two attributes every pylsl release since 1.10 has had on a ``StreamInlet``: ``obj``
(the liblsl handle) and ``do_pull_chunk`` (the typed liblsl function). :func:`make_puller` returns
None when they are missing (or the stream carries strings), and the inlet then uses
``pull_chunk``.
"""
from __future__ import annotations

import ctypes
from typing import Any

import numpy as np
from pylsl.util import handle_error


class ChunkPuller:
    """Pull from one numeric ``pylsl.StreamInlet`` into preallocated buffers.

    Args:
        inlet: an open ``pylsl.StreamInlet`` of a numeric stream.
        channels: the stream's channel count.
        dtype: the stream's numpy dtype (float32, float64, int8..64).
        max_samples: the buffers' length in samples (most samples per pull).
    """

    def __init__(self, inlet: Any, channels: int, dtype: Any, max_samples: int) -> None:
        self._fn = inlet.do_pull_chunk
        self._obj = inlet.obj
        self._inlet = inlet  # the handle must outlive every call
        self.channels, self.max_samples = int(channels), int(max_samples)
        self.data = np.empty((self.max_samples, self.channels), dtype=dtype)
        self.stamps = np.empty(self.max_samples, dtype=np.float64)
        row = self.data.itemsize * self.channels
        base, tbase = self.data.ctypes.data, self.stamps.ctypes.data
        c = self.channels
        self._all = (ctypes.c_void_p(base), ctypes.c_void_p(tbase), ctypes.c_size_t(self.max_samples * c),
                     ctypes.c_size_t(self.max_samples))
        self._first = (ctypes.c_void_p(base), ctypes.c_void_p(tbase), ctypes.c_size_t(c), ctypes.c_size_t(1))
        rest = max(self.max_samples - 1, 1)
        self._rest = (ctypes.c_void_p(base + row), ctypes.c_void_p(tbase + 8), ctypes.c_size_t(rest * c),
                      ctypes.c_size_t(rest))
        self._multi = self.max_samples > 1
        self._zero = ctypes.c_double(0.0)
        self._err = ctypes.c_int(0)
        self._err_ref = ctypes.byref(self._err)

    def pull(self, timeout: float) -> tuple[np.ndarray, np.ndarray]:
        """``(data, stamps)`` views of the samples pulled: ``(n, channels)`` and ``(n,)``, n ≥ 0.

        ``timeout == 0``: what is buffered now, without waiting. ``timeout > 0``: wait at most that
        many seconds for the first sample, then take what else is buffered without waiting.
        """
        fn, obj, err, c = self._fn, self._obj, self._err, self.channels
        if timeout > 0:
            d, t, nv, ns = self._first
            got = fn(obj, d, t, nv, ns, ctypes.c_double(timeout), self._err_ref)
            if err.value:
                handle_error(err.value)
            n = got // c
            if n and self._multi:
                d, t, nv, ns = self._rest
                more = fn(obj, d, t, nv, ns, self._zero, self._err_ref)
                if err.value:
                    handle_error(err.value)
                n += more // c
        else:
            d, t, nv, ns = self._all
            got = fn(obj, d, t, nv, ns, self._zero, self._err_ref)
            if err.value:
                handle_error(err.value)
            n = got // c
        return self.data[:n], self.stamps[:n]


def make_puller(inlet: Any, channels: int, dtype: Any, max_samples: int) -> ChunkPuller | None:
    """A :class:`ChunkPuller` for a numeric stream, or None (strings, or a pylsl without the internals)."""
    if np.dtype(dtype).kind == "O" or not hasattr(inlet, "do_pull_chunk") or not hasattr(inlet, "obj"):
        return None
    if getattr(inlet, "channel_format", None) == 3:  # cf_string (pylsl's code): strings never come here
        return None
    return ChunkPuller(inlet, channels, dtype, max_samples)
