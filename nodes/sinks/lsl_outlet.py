"""LSL outlet sink (kind ``lsl_outlet``): publish a graph stream on LSL.

The outlet is created when the graph opens, from the input stream's description: channel count,
nominal rate, dtype, and channel labels and units in the LSL ``desc`` (``channels/channel/label``,
``unit``), so LabRecorder, mne-lsl or pylsl show them. ``name``, ``type`` and ``source_id`` default
to the input stream's name and type and to ``spikeloop:<name>``; a stable ``source_id`` lets LSL
clients reconnect by themselves if the graph restarts.

Network: an outlet answers discovery and serves its data over TCP without authentication.
``SPIKELOOP_LSL_LOCAL=1`` keeps discovery on this machine (:mod:`pipeline.lsl_scope`; the TCP
data port still binds to every interface, liblsl has no setting for it).

Timestamps: every sample is pushed with the timestamp it carries in the graph, which is the
timestamp of the newest input sample that produced it (DESIGN.md §1). Any LSL client therefore
measures end-to-end latency as ``pylsl.local_clock() - timestamp``. Packets are pushed through
at once (no buffering in liblsl).

A one-sample packet of a numeric stream (every packet of a live graph fed sample by sample) is
copied into a one-row buffer made once and pushed with one liblsl call whose arguments are made
once too: pylsl's ``push_chunk`` spends several µs per call on conversions and checks, and on a
live graph every µs of Python costs several times that with cold caches. Longer packets, and
string streams, go through ``push_chunk``; the samples and timestamps sent are the same.
"""
from __future__ import annotations

import ctypes
from typing import Any

import numpy as np
import pylsl
from pylsl.util import handle_error

from pipeline.lsl import to_lsl_info, warm_up
from pipeline.node import Sink, require
from pipeline.packet import Packet, StreamInfo


class LslOutlet(Sink):
    """Publish the input stream (regular or irregular) as an LSL outlet.

    Params:
        name: LSL stream name (default: the input stream's name).
        type: LSL content type (default: the input stream's type).
        source_id: LSL source id (default ``spikeloop:<name>``).
        buffer_s: seconds of data liblsl keeps for slow clients (default 30).

    Input port ``in``: shape ``(samples, channels)``, a dtype LSL supports (float32/64, int8..64,
    or ``object`` arrays of ``str`` for marker streams); timestamps (samples,) in seconds on the
    LSL clock.
    """

    kind = "lsl_outlet"
    inputs = ("in",)

    def __init__(self, name: str | None = None, type: str | None = None, source_id: str | None = None,
                 buffer_s: float = 30.0) -> None:
        if buffer_s <= 0:
            raise ValueError(f"lsl_outlet: buffer_s must be > 0 s, got {buffer_s}")
        self.stream_name, self.stream_type, self.source_id = name, type, source_id
        self.buffer_s = float(buffer_s)
        self._outlet: pylsl.StreamOutlet | None = None
        self._info: StreamInfo | None = None
        self._dtype: np.dtype | None = None
        self._pushed = 0
        self._one: np.ndarray | None = None  # the one-sample push buffer (numeric streams)

    @classmethod
    def prepare_process(cls) -> None:
        """Start liblsl in this process (:func:`pipeline.lsl.warm_up`)."""
        warm_up()

    def open(self, inputs: dict[str, StreamInfo]) -> dict[str, StreamInfo]:
        info = require(inputs, "in")
        name = self.stream_name or info.name
        lsl_info = to_lsl_info(info, name=name, type=self.stream_type,
                               source_id=self.source_id if self.source_id is not None else f"spikeloop:{name}")
        self._outlet = pylsl.StreamOutlet(lsl_info, chunk_size=0, max_buffered=max(1, int(np.ceil(self.buffer_s))))
        self._info = info
        self._dtype = np.dtype(info.dtype)
        self._one = None
        fn, obj = getattr(self._outlet, "do_push_chunk", None), getattr(self._outlet, "obj", None)
        if self._dtype.kind != "O" and fn is not None and obj is not None:
            self._one = np.zeros((1, info.channel_count), dtype=self._dtype)
            self._one_call = (fn, obj, ctypes.c_void_p(self._one.ctypes.data), ctypes.c_long(info.channel_count),
                              ctypes.c_int(1))
        self.published = {"name": name, "type": lsl_info.type(), "source_id": lsl_info.source_id()}
        return super().open(inputs)

    def process(self, port: str, packet: Packet) -> dict[str, Packet]:
        outlet = self._outlet
        if outlet is None:
            raise RuntimeError(f"lsl_outlet {self.name!r}: process() before open()")
        one = self._one
        if one is not None and packet.data.shape[0] == 1:
            one[0] = packet.data[0]  # cast to the stream's dtype as push_chunk would
            fn, obj, ptr, values, pushthrough = self._one_call
            err = fn(obj, ptr, values, ctypes.c_double(float(packet.timestamps[0])), pushthrough)
            if err:
                handle_error(err)
            self._pushed += 1
            return {}
        if self._dtype.kind == "O":  # a string (marker) stream: liblsl takes lists of str
            data = [[str(v) for v in row] for row in packet.data]
        else:
            data = np.ascontiguousarray(packet.data, dtype=self._dtype)
        n = len(data)
        if n == 1:
            outlet.push_chunk(data, float(packet.timestamps[0]), True)
        elif n:
            outlet.push_chunk(data, packet.timestamps.tolist(), True)
        self._pushed += n
        return {}

    def report(self) -> dict[str, Any]:
        if self._info is None:
            return {}
        return {"lsl_name": self.published["name"], "lsl_source_id": self.published["source_id"],
                "samples_pushed": self._pushed}

    def close(self) -> None:
        self._one = None
        self._outlet = None  # liblsl destroys the outlet when the last reference goes
