"""Decoder node (kind ``decoder``, alias ``snn_decoder``): any decoder model file, numpy inference.

Loads a model file written by ``spikeloop train`` (family ``decoder``: SNN_Streaming, SNN_3D, ANN,
ANN_3D, LSTM) and runs its numpy kernel (``nodes.decoders.kernels``); torch is never imported.

Input ``in``: spike counts per 4 ms bin, shape ``(samples, channels)``; the channel count and the
rate must match the model's (checked in ``open``). Output ``out``: decoded velocity, shape
``(samples, 2)`` float32 (``vx``, ``vy``, in the training target's units, mm/s), one row per input
row, with the input rows' timestamps.

Non-finite counts (NaN, ±inf) are replaced by 0 (no spike) and counted in ``counters()["nonfinite"]``.
State (``state()``/``restore()``): membranes and last spikes (SNNs), ``(h, c)`` (LSTM) and the
bins of history the input features need.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.errors import UserError
from pipeline.modelfile import load_model
from pipeline.node import Node, require
from pipeline.packet import Packet, StreamInfo

if TYPE_CHECKING:
    from nodes.decoders.kernels import Kernel


class Decoder(Node):
    """Velocity decoder from spike counts (see module docs).

    Params:
        model: path of a decoder model file (``.npz``).
        output_name: name of the output stream (default ``velocity_pred``).
        count_activity: count spikes, zero activations and synaptic operations (small cost; the
            totals appear in ``report()``).
    """

    kind = "decoder"

    def __init__(self, model: str, output_name: str = "velocity_pred", count_activity: bool = False) -> None:
        # the kernels (numba, compiled loops) are imported where the node is constructed, i.e. where it
        # runs: a driver that only loads the graph (param checks, layout) does not pay for them
        from nodes.decoders.kernels import Activity, make_kernel

        self.model_path = str(model)
        arrays, meta = load_model(model)
        if meta.get("family") != "decoder":
            raise UserError(f"{model}: model family is {meta.get('family')!r}, the decoder node needs 'decoder'")
        try:
            self.kernel: Kernel = make_kernel(arrays, meta)
        except (KeyError, ValueError) as exc:
            raise UserError(f"{model}: not a usable decoder model ({exc})") from None
        self.meta = meta
        self.output_name = output_name
        self.activity = Activity() if count_activity else None
        self._nonfinite = 0
        self._steps = 0
        self._warm_row: np.ndarray | None = None  # warm(): a zero sample of the input's dtype (set by open)

    @classmethod
    def prepare_process(cls) -> None:
        """Import the numpy/numba kernels (the constructor imports them; see Node.prepare_process)."""
        from nodes.decoders.kernels import make_kernel  # noqa: F401

    def open(self, inputs: dict[str, StreamInfo]) -> dict[str, StreamInfo]:
        rate = float(self.meta["rate_hz"])
        info = require(inputs, "in", channel_count=self.kernel.channels, nominal_rate=rate, regular=True)
        dtype = np.dtype(info.dtype)
        self._warm_row = np.zeros((1, self.kernel.channels), dtype=dtype) if dtype.kind in "fiu" else None
        labels = tuple(self.meta.get("output_labels", ("vx", "vy")))
        return {"out": StreamInfo(
            name=self.output_name, type="Velocity", channel_count=self.kernel.outputs, nominal_rate=rate,
            dtype="float32", channel_labels=labels, units=("mm/s",) * self.kernel.outputs,
            source_id=info.source_id,
            metadata={"model": Path(self.model_path).name, "model_kind": self.meta["kind"],
                      "delay_s": float(info.metadata.get("delay_s", 0.0))},
        )}

    def process(self, port: str, packet: Packet) -> dict[str, Packet]:
        y, bad = self.kernel.run_counts(packet.data, self.activity)  # non-finite counts read as 0, counted
        self._nonfinite += bad
        self._steps += y.shape[0]
        return {"out": packet.derive(y)}

    def warm(self) -> None:
        """Decode a zero sample of the input's dtype on scratch state (the kernel's :meth:`warm`):
        the weights and the compiled loop come into the caches before a live sample; no state changes."""
        if self._warm_row is not None:
            self.kernel.warm(self._warm_row, self.activity)

    def state(self) -> dict[str, Any]:
        return {"kernel": self.kernel.state(), "nonfinite": self._nonfinite, "steps": self._steps}

    def restore(self, state: dict[str, Any]) -> None:
        self.kernel.restore(state["kernel"])
        self._nonfinite = int(state["nonfinite"])
        self._steps = int(state["steps"])

    def counters(self) -> dict[str, int]:
        return {"nonfinite": self._nonfinite, "steps": self._steps}

    def report(self) -> dict[str, Any]:
        out: dict[str, Any] = {"model_kind": self.meta["kind"], "footprint_bytes": self.kernel.footprint_bytes()}
        if self.activity is not None:
            out.update(self.activity.summary())
        return out
