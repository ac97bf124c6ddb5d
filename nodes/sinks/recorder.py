"""Recorder sink: writes every input stream to an XDF file (``.xdf`` or gzip ``.xdfz``).

Crash-safe like ``spikeloop record``: data reaches the file every 0.5 s (``.xdfz``: as a closed gzip
member) and is ``fsync``-ed every 5 s, so a killed run leaves a file that ``pyxdf.load_xdf`` reads
up to its last half second. Numeric and string (marker) streams, regular or irregular.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.clock import local_clock
from pipeline.errors import UserError
from pipeline.node import Layout, Sink
from pipeline.packet import Packet, StreamInfo
from pipeline.recordings.xdf_writer import LSL_HEADER_KEY

FLUSH_EVERY_S = 0.5
"""Seconds between writes to the file: a crash loses at most this much."""


class Recorder(Sink):
    """Record streams to XDF with the project's writer; the file loads in ``pyxdf.load_xdf``.

    Params:
        path: output file (``.xdfz`` compressed, or ``.xdf``); its folder is created if needed.
        streams: input port names, one per stream (default ``["in"]``); each becomes a stream of
            that name in the file, with the connected stream's type, channels, labels, units,
            rate and dtype.
        overwrite: replace an existing file (default False: refuse, so a run never destroys data).

    Clock offsets: graph streams are stamped on this machine's LSL clock, so each stream gets
    ClockOffset chunks of 0 s at its first sample, every 5 s of its timestamps and at its last
    (pyxdf then loads the file without a "no clock offsets" warning). A stream that came straight
    from an ``lsl_inlet`` keeps the sender's whole LSL header (per-channel types, ``desc``
    extras, ``created_at``, ``uid``, ``session_id``, ``hostname``) under the port's name.
    """

    kind = "recorder"

    @classmethod
    def layout(cls, params: dict[str, Any]) -> Layout:
        """One input port per name in ``streams`` (default: ``in``)."""
        return Layout(tuple(params.get("streams") or ["in"]), ())

    def __init__(self, path: str, streams: list[str] | None = None, overwrite: bool = False) -> None:
        if not path:
            raise UserError("recorder: param 'path' (the output .xdfz/.xdf file) is required")
        p = Path(path)
        if not p.name.endswith((".xdf", ".xdfz", ".xdf.gz")):
            raise UserError(f"recorder: path {path!r} must end in .xdfz or .xdf")
        if p.exists() and not overwrite:
            raise UserError(f"recorder: {path} exists; set overwrite: true to replace it")
        if streams is not None and (isinstance(streams, str) or not streams):
            raise UserError(f"recorder: streams must be a non-empty list of names, got {streams!r}")
        self.path = p
        self.inputs = tuple(streams or ["in"])
        self._writer = None
        self._ids: dict[str, int] = {}
        self._samples = {port: 0 for port in self.inputs}

    def open(self, inputs: dict[str, StreamInfo]) -> dict[str, StreamInfo]:
        from pipeline.recordings.xdf_writer import XdfWriter

        super().open(inputs)
        missing = [p for p in self.inputs if p not in inputs]
        if missing:
            raise UserError(f"recorder: nothing connected to input port(s) {', '.join(missing)}")
        self._writer = XdfWriter(self.path, {"recorder": "spikeloop", "node": self.name or self.kind,
                                              "started_local_clock": local_clock()},
                                 flush_every_s=FLUSH_EVERY_S, fsync_every_s=5.0)
        for port in self.inputs:
            info = inputs[port]
            meta = dict(info.metadata)
            header = meta.pop(LSL_HEADER_KEY, None)
            if info.name != port:
                meta["original_name"] = info.name
            # the sender's header only when it describes this stream (not one derived from it)
            same = isinstance(header, str) and f"<name>{info.name}</name>" in header
            self._ids[port] = self._writer.add_stream(info.with_(name=port, metadata=meta),
                                                      header_xml=header if same else None)
        return {}

    def process(self, port: str, packet: Packet) -> dict[str, Packet]:
        assert self._writer is not None, "open() first"
        self._writer.write_samples(self._ids[port], packet.data, packet.timestamps)
        self._samples[port] += packet.n_samples
        return {}

    def report(self) -> dict[str, Any]:
        return {"path": str(self.path), **{f"samples.{p}": n for p, n in self._samples.items()}}

    def close(self) -> None:
        if self._writer is not None and not self._writer.closed:
            self._writer.close()
