"""The project's own XDF 1.0 writer (plain ``.xdf`` or gzip-compressed ``.xdfz``).

XDF (https://github.com/sccn/xdf, specification 1.0) is a sequence of chunks after the magic bytes
``XDF:``. Each chunk is ``[NumLengthBytes u8 (1, 4 or 8)] [Length] [Tag u16] [Content]`` where
``Length`` counts the tag and the content. Tags used here:

=====  ==============  =====================================================================
tag    chunk           content
=====  ==============  =====================================================================
1      FileHeader      XML ``<info><version>1.0</version>...</info>``
2      StreamHeader    ``StreamId u32`` + XML ``<info>`` with name, type, channel_count,
                       nominal_srate, channel_format, source_id and ``<desc><channels>``
3      Samples         ``StreamId u32``, ``[NumSampleBytes][NumSamples]`` then per sample
                       ``[TimeStampBytes u8 (0|8)] [TimeStamp f64]? [values]``
4      ClockOffset     ``StreamId u32``, ``CollectionTime f64``, ``OffsetValue f64``
5      Boundary        a fixed 16-byte UUID (lets readers resynchronise after corruption)
6      StreamFooter    ``StreamId u32`` + XML with first/last timestamp, sample count, offsets
=====  ==============  =====================================================================

All numbers are little-endian. Numeric values are stored in the stream's ``channel_format``
(``float32``, ``double64``, ``int8``, ``int16``, ``int32``, ``int64``); ``string`` values as a
variable-length byte count plus UTF-8 bytes.

Timestamps (seconds) are exact: a sample's timestamp is omitted only when it equals, bit for bit,
the previous timestamp plus ``1 / nominal_srate`` (which is exactly how readers such as pyxdf
reconstruct omitted timestamps), and the first sample of every Samples chunk always carries its
own. Regularly stamped streams therefore cost one byte per sample for timestamps.

Gzip output (``.xdfz`` or ``.xdf.gz``, the names ``pyxdf.load_xdf`` decompresses) is written with
a zero modification time and no embedded file name, so the same content gives the same bytes.

Use :class:`XdfWriter` incrementally (the recorder sink, ``spikeloop record``), or
:func:`write_xdf` for a whole :class:`~pipeline.recordings.base.Recording`.
"""
from __future__ import annotations

import gzip
import json
import struct
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from pipeline.errors import RecordingError
from pipeline.packet import StreamInfo
from pipeline.recordings.base import Recording

MAGIC = b"XDF:"
TAG_FILE_HEADER, TAG_STREAM_HEADER, TAG_SAMPLES, TAG_CLOCK_OFFSET, TAG_BOUNDARY, TAG_STREAM_FOOTER = 1, 2, 3, 4, 5, 6
BOUNDARY_UUID = bytes([0x43, 0xA5, 0x46, 0xDC, 0xCB, 0xF5, 0x41, 0x0F,
                       0xB3, 0x0E, 0xD5, 0x46, 0x73, 0x83, 0xCB, 0xE4])
"""Content of every Boundary chunk (fixed by the XDF specification)."""

CHANNEL_FORMATS: dict[str, str] = {
    "float32": "float32",
    "float64": "double64",
    "int8": "int8",
    "int16": "int16",
    "int32": "int32",
    "int64": "int64",
}
"""numpy dtype name -> XDF ``channel_format`` for numeric streams (plus ``"string"`` for text)."""
DTYPES: dict[str, str] = {v: k for k, v in CHANNEL_FORMATS.items()}
"""XDF ``channel_format`` -> numpy dtype name (``"string"`` maps to ``"object"``)."""
DTYPES["string"] = "object"

METADATA_TAG = "spikeloop_metadata"
"""XML element holding JSON metadata (file header: recording metadata; stream desc: StreamInfo.metadata)."""

MAX_CHUNK_SAMPLES = 1024
"""Samples per Samples chunk at most (larger writes are split)."""
BOUNDARY_EVERY_BYTES = 1 << 20
"""A Boundary chunk is written after about this many bytes of samples."""


def is_gzip_name(path: str | Path) -> bool:
    """True for names that ``pyxdf.load_xdf`` opens with gzip (``.xdfz``, ``.xdf.gz``)."""
    p = Path(path)
    return p.suffix == ".xdfz" or p.suffixes[-2:] == [".xdf", ".gz"]


def varlen(n: int) -> bytes:
    """XDF variable-length unsigned integer: a byte count (1, 4 or 8) then the value."""
    if n < 0:
        raise ValueError(f"varlen: negative length {n}")
    if n < 1 << 8:
        return b"\x01" + struct.pack("<B", n)
    if n < 1 << 32:
        return b"\x04" + struct.pack("<I", n)
    return b"\x08" + struct.pack("<Q", n)


def chunk(tag: int, content: bytes) -> bytes:
    """One XDF chunk: ``[NumLengthBytes][Length][Tag][Content]`` (Length counts tag + content)."""
    return varlen(len(content) + 2) + struct.pack("<H", tag) + content


def channel_format(dtype: str) -> str:
    """XDF ``channel_format`` for a numpy dtype name; RecordingError if XDF cannot store it."""
    dt = np.dtype(dtype)
    if dt.kind in ("U", "S", "O"):
        return "string"
    if dt.name not in CHANNEL_FORMATS:
        raise RecordingError(
            f"XDF cannot store dtype {dt.name!r}; use one of {', '.join(CHANNEL_FORMATS)} or str"
        )
    return CHANNEL_FORMATS[dt.name]


def _xml(root: ET.Element) -> bytes:
    return b'<?xml version="1.0"?>' + ET.tostring(root, encoding="utf-8", short_empty_elements=False).replace(
        b"<?xml version='1.0' encoding='utf-8'?>\n", b"")


def _sub(parent: ET.Element, tag: str, text: Any = None) -> ET.Element:
    el = ET.SubElement(parent, tag)
    if text is not None:
        el.text = str(text)
    return el


def _fmt_float(x: float) -> str:
    """Shortest text that reads back as the same double."""
    return repr(float(x))


def stream_header_xml(info: StreamInfo) -> bytes:
    """The StreamHeader XML of ``info`` (labels, units and channel types under ``desc/channels``)."""
    root = ET.Element("info")
    _sub(root, "name", info.name)
    _sub(root, "type", info.type)
    _sub(root, "channel_count", info.channel_count)
    _sub(root, "nominal_srate", _fmt_float(info.nominal_rate))
    _sub(root, "channel_format", channel_format(info.dtype))
    _sub(root, "source_id", info.source_id)
    _sub(root, "version", "1.1")
    desc = _sub(root, "desc")
    if info.channel_labels or info.units:
        channels = _sub(desc, "channels")
        for k in range(info.channel_count):
            ch = _sub(channels, "channel")
            _sub(ch, "label", info.channel_labels[k] if info.channel_labels else f"ch{k}")
            if info.units:
                _sub(ch, "unit", info.units[k])
            _sub(ch, "type", info.type)
    if info.metadata:
        _sub(desc, METADATA_TAG, json.dumps(info.metadata, sort_keys=True))
    return _xml(root)


class _StreamState:
    __slots__ = ("info", "fmt", "dtype", "tdiff", "last_ts", "first_ts", "count", "offsets")

    def __init__(self, info: StreamInfo) -> None:
        self.info = info
        self.fmt = channel_format(info.dtype)
        self.dtype = None if self.fmt == "string" else np.dtype(DTYPES[self.fmt]).newbyteorder("<")
        self.tdiff = 1.0 / info.nominal_rate if info.nominal_rate > 0 else 0.0
        self.last_ts = 0.0
        self.first_ts: float | None = None
        self.count = 0
        self.offsets: list[tuple[float, float]] = []


class XdfWriter:
    """Write an XDF file incrementally: open, add streams, write samples, close.

    Args:
        path: output file; ``.xdfz`` / ``.xdf.gz`` are gzip-compressed (unless ``compress`` says).
        metadata: JSON-serialisable file-level metadata (stored in the FileHeader).
        compress: force gzip on (True) or off (False); default from the file name.
        compresslevel: gzip level 1–9 (6: a good speed/size balance for live recording).

    Example::

        with XdfWriter("out.xdfz", metadata={"subject": "sim"}) as w:
            sid = w.add_stream(info)
            w.write_samples(sid, data, timestamps)      # data (n, channels), timestamps (n,) s
            w.write_clock_offset(sid, 12.0, 0.0)        # collection time s, offset s
    """

    def __init__(self, path: str | Path, metadata: dict[str, Any] | None = None, *,
                 compress: bool | None = None, compresslevel: int = 6) -> None:
        self.path = Path(path)
        self.compress = is_gzip_name(self.path) if compress is None else bool(compress)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._raw: BinaryIO = open(self.path, "wb")
        self._f: BinaryIO = (
            gzip.GzipFile(filename="", mode="wb", fileobj=self._raw, compresslevel=compresslevel, mtime=0)
            if self.compress else self._raw
        )
        self._streams: dict[int, _StreamState] = {}
        self._since_boundary = 0
        self.closed = False
        self._f.write(MAGIC)
        root = ET.Element("info")
        _sub(root, "version", "1.0")
        _sub(root, "writer", "spikeloop")
        if metadata:
            _sub(root, METADATA_TAG, json.dumps(metadata, sort_keys=True))
        self._f.write(chunk(TAG_FILE_HEADER, _xml(root)))

    # --- streams ---------------------------------------------------------------------------
    def add_stream(self, info: StreamInfo, stream_id: int | None = None) -> int:
        """Write a StreamHeader for ``info``; return its stream id (1, 2, ... unless given)."""
        self._check_open()
        sid = stream_id if stream_id is not None else max(self._streams, default=0) + 1
        if sid in self._streams:
            raise ValueError(f"{self.path}: stream id {sid} is already used")
        if not 0 <= sid < 1 << 32:
            raise ValueError(f"{self.path}: stream id {sid} out of range (u32)")
        state = _StreamState(info)
        self._streams[sid] = state
        self._f.write(chunk(TAG_STREAM_HEADER, struct.pack("<I", sid) + stream_header_xml(info)))
        return sid

    def write_samples(self, stream_id: int, data: np.ndarray, timestamps: np.ndarray) -> None:
        """Append samples to a stream.

        Args:
            stream_id: from :meth:`add_stream`.
            data: shape ``(n, channels)`` (or ``(n,)`` for one channel), any dtype castable to
                the stream's ``dtype`` (numeric streams) or strings (string streams).
            timestamps: shape ``(n,)``, seconds.
        """
        self._check_open()
        st = self._stream(stream_id)
        stamps = np.asarray(timestamps, dtype=np.float64).reshape(-1)
        if st.fmt == "string":
            values = np.asarray(data, dtype=object)
        else:
            values = np.asarray(data)
            if values.dtype.kind == "f" and st.dtype.kind in "iu" and not np.all(np.isfinite(values)):
                raise RecordingError(f"stream {st.info.name!r}: NaN/inf values cannot be stored as {st.fmt}")
            values = values.astype(st.dtype, copy=False)
        if values.ndim == 1 and st.info.channel_count == 1:
            values = values.reshape(-1, 1)
        if values.ndim != 2 or values.shape != (stamps.shape[0], st.info.channel_count):
            raise RecordingError(
                f"stream {st.info.name!r}: data shape {np.shape(data)} and {stamps.shape[0]} timestamps "
                f"do not match (samples, {st.info.channel_count} channels)"
            )
        for start in range(0, stamps.shape[0], MAX_CHUNK_SAMPLES):
            stop = start + MAX_CHUNK_SAMPLES
            self._write_chunk(stream_id, st, values[start:stop], stamps[start:stop])

    def write_clock_offset(self, stream_id: int, collection_time: float, offset: float) -> None:
        """Write a ClockOffset chunk: at ``collection_time`` (s) the stream's clock was ``offset`` s off."""
        self._check_open()
        st = self._stream(stream_id)
        st.offsets.append((float(collection_time), float(offset)))
        self._f.write(chunk(TAG_CLOCK_OFFSET, struct.pack("<Idd", stream_id, collection_time, offset)))

    def write_boundary(self) -> None:
        """Write a Boundary chunk (readers resynchronise on it after a corrupt chunk)."""
        self._check_open()
        self._f.write(chunk(TAG_BOUNDARY, BOUNDARY_UUID))
        self._since_boundary = 0

    # --- closing ---------------------------------------------------------------------------
    def close(self) -> None:
        """Write every stream's StreamFooter and close the file (idempotent)."""
        if self.closed:
            return
        try:
            for sid, st in self._streams.items():
                self._f.write(chunk(TAG_STREAM_FOOTER, struct.pack("<I", sid) + self._footer_xml(st)))
        finally:
            self.closed = True
            if self._f is not self._raw:
                self._f.close()
            self._raw.close()

    def __enter__(self) -> "XdfWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def sample_counts(self) -> dict[int, int]:
        """Samples written so far, per stream id."""
        return {sid: st.count for sid, st in self._streams.items()}

    # --- internals -------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self.closed:
            raise ValueError(f"{self.path}: writer is closed")

    def _stream(self, stream_id: int) -> _StreamState:
        try:
            return self._streams[stream_id]
        except KeyError:
            raise ValueError(f"{self.path}: no stream with id {stream_id} (add_stream first)") from None

    def _write_chunk(self, sid: int, st: _StreamState, values: np.ndarray, stamps: np.ndarray) -> None:
        n = stamps.shape[0]
        if n == 0:
            return
        # A timestamp may be omitted when the reader's reconstruction (previous + 1/srate) is exact.
        prev = np.empty(n)
        prev[0] = st.last_ts
        prev[1:] = stamps[:-1]
        has_ts = np.ones(n, dtype=bool) if st.tdiff == 0.0 else (prev + st.tdiff != stamps)
        has_ts[0] = True
        if st.fmt == "string":
            body = self._string_rows(values, stamps, has_ts)
        else:
            body = self._numeric_rows(values, stamps, has_ts)
        header = struct.pack("<I", sid) + varlen(n)
        self._f.write(chunk(TAG_SAMPLES, header + body))
        if st.first_ts is None:
            st.first_ts = float(stamps[0])
        st.last_ts = float(stamps[-1])
        st.count += n
        self._since_boundary += len(body)
        if self._since_boundary >= BOUNDARY_EVERY_BYTES:
            self.write_boundary()

    @staticmethod
    def _numeric_rows(values: np.ndarray, stamps: np.ndarray, has_ts: np.ndarray) -> bytes:
        n = stamps.shape[0]
        vbytes = np.ascontiguousarray(values).view(np.uint8).reshape(n, -1)
        width = vbytes.shape[1]
        row_len = 1 + 8 * has_ts.astype(np.int64) + width
        starts = np.zeros(n, dtype=np.int64)
        np.cumsum(row_len[:-1], out=starts[1:])
        out = np.empty(int(row_len.sum()), dtype=np.uint8)
        out[starts] = np.where(has_ts, 8, 0)
        idx = np.flatnonzero(has_ts)
        if idx.size:
            tbytes = stamps[idx].astype("<f8").view(np.uint8).reshape(-1, 8)
            out[(starts[idx] + 1)[:, None] + np.arange(8)] = tbytes
        if width:
            vstart = starts + 1 + 8 * has_ts
            out[vstart[:, None] + np.arange(width)] = vbytes
        return out.tobytes()

    @staticmethod
    def _string_rows(values: np.ndarray, stamps: np.ndarray, has_ts: np.ndarray) -> bytes:
        parts: list[bytes] = []
        for k in range(stamps.shape[0]):
            parts.append(b"\x08" + struct.pack("<d", stamps[k]) if has_ts[k] else b"\x00")
            for v in values[k]:
                raw = str(v).encode("utf-8")
                parts.append(varlen(len(raw)) + raw)
        return b"".join(parts)

    @staticmethod
    def _footer_xml(st: _StreamState) -> bytes:
        root = ET.Element("info")
        _sub(root, "first_timestamp", _fmt_float(st.first_ts if st.first_ts is not None else 0.0))
        _sub(root, "last_timestamp", _fmt_float(st.last_ts))
        _sub(root, "sample_count", st.count)
        offsets = _sub(root, "clock_offsets")
        for t, v in st.offsets:
            off = _sub(offsets, "offset")
            _sub(off, "time", _fmt_float(t))
            _sub(off, "value", _fmt_float(v))
        return _xml(root)


def write_xdf(path: str | Path, recording: Recording, *, compress: bool | None = None,
              compresslevel: int = 9, chunk_samples: int = MAX_CHUNK_SAMPLES) -> Path:
    """Write a whole :class:`~pipeline.recordings.base.Recording` to ``path`` (``.xdf`` or ``.xdfz``).

    Streams are written in the recording's order, their samples interleaved chunk by chunk in time
    order (as a live recorder would), each stream's clock offsets after its samples.
    """
    streams = list(recording.streams.values())
    with XdfWriter(path, recording.metadata, compress=compress, compresslevel=compresslevel) as w:
        ids = [w.add_stream(s.info) for s in streams]
        pos = [0] * len(streams)
        while True:
            pending = [(float(s.timestamps[pos[k]]), k) for k, s in enumerate(streams) if pos[k] < len(s.timestamps)]
            if not pending:
                break
            _, k = min(pending)
            s = streams[k]
            stop = min(pos[k] + chunk_samples, len(s.timestamps))
            w.write_samples(ids[k], s.data[pos[k]:stop], s.timestamps[pos[k]:stop])
            pos[k] = stop
        for sid, s in zip(ids, streams):
            for t, v in np.asarray(s.clock_offsets, dtype=np.float64).reshape(-1, 2):
                w.write_clock_offset(sid, t, v)
    return Path(path)
