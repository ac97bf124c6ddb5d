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

Gzip output (``.xdfz`` or ``.xdf.gz``, the names ``pyxdf.load_xdf`` decompresses) is a series of
complete gzip *members* (concatenated members are one valid gzip stream, RFC 1952 §2.2), each
written with zero modification time and no file name, so the same content gives the same bytes.

Crash safety (``flush_every_s``, used by ``spikeloop record`` and the ``recorder`` node): whole
chunks are collected in memory and written to the file with one ``write`` every ``flush_every_s``
seconds by a background thread (and every ``fsync_every_s`` seconds ``fsync``-ed). For ``.xdfz``
every flush *closes the gzip member*, so the file on disk always ends with a complete member
that ends at a chunk boundary. A process killed at any moment (SIGKILL, power kept) therefore
leaves a file that ``pyxdf.load_xdf`` reads up to the last flush: without StreamFooters, with
nothing lost before the last ``flush_every_s`` seconds. (Why not ``Z_FULL_FLUSH`` in one long
member: pyxdf reads ``.xdfz`` with :mod:`gzip`, which raises ``EOFError`` on a member without
its trailer and loses the file; a truncated *last member* is read as far as it goes only when the
cut falls between chunks, which closed members guarantee.) The only window left is a kill during
the ``write`` system call itself (microseconds per second): Linux may then leave a torn last
member or chunk; :func:`~pipeline.recordings.xdf_reader.read_xdf` with ``allow_incomplete``
drops such a tail. Without ``flush_every_s`` members are closed every ``member_bytes`` of
uncompressed data only, so offline writers (``write_xdf``, ``spikeloop synth``) stay byte-for-byte
reproducible.

Clock offsets: a stream added with ``measured_offsets=False`` (the default; synthetic data and
graph streams, which are stamped on this machine's clock) gets ClockOffset chunks of 0 s at its
first sample, about every ``ZERO_OFFSET_EVERY_S`` seconds of its timestamps (at the first Samples
chunk that reaches that far) and at its last sample, so
pyxdf synchronises it without warnings. ``spikeloop record`` measures real offsets instead.

Stream headers: when a stream's ``metadata`` holds the full LSL header XML of the stream it came
from (``metadata["lsl_header_xml"]``, set by :func:`pipeline.lsl.from_lsl_info`), the header is
copied whole (per-channel types, ``desc`` extras such as filters and locations, ``created_at``,
``uid``, ``session_id``, ``hostname``), as LabRecorder does.

Use :class:`XdfWriter` incrementally (the recorder sink, ``spikeloop record``), or
:func:`write_xdf` for a whole :class:`~pipeline.recordings.base.Recording`.
"""
from __future__ import annotations

import json
import logging
import os
import struct
import threading
import time
import xml.etree.ElementTree as ET
import zlib
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
MEMBER_BYTES = 4 << 20
"""A gzip member (or, uncompressed, one write) holds at most about this many bytes of XDF."""
ZERO_OFFSET_EVERY_S = 5.0
"""Seconds of stream time between the 0 s ClockOffset chunks of streams without measured offsets."""
LSL_HEADER_KEY = "lsl_header_xml"
"""``StreamInfo.metadata`` key holding a stream's full LSL header XML (copied whole into the file)."""

_log = logging.getLogger("spikeloop.xdf_writer")


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


def _json_metadata(info: StreamInfo) -> dict[str, Any]:
    return {k: v for k, v in info.metadata.items() if k != LSL_HEADER_KEY}


def _header_from_lsl(info: StreamInfo, header_xml: str) -> ET.Element | None:
    """The LSL header ``header_xml`` as the StreamHeader of ``info``, or None if it does not fit.

    It fits when it parses and its channel count and format equal ``info``'s; name, type and
    source_id are then taken from ``info`` (a recorder may rename a stream), everything else kept.
    """
    try:
        root = ET.fromstring(header_xml)
    except ET.ParseError:
        return None
    if root.tag != "info" or root.findtext("channel_count", "").strip() != str(info.channel_count) \
            or root.findtext("channel_format", "").strip() != channel_format(info.dtype):
        return None
    for tag, value in (("name", info.name), ("type", info.type), ("source_id", info.source_id)):
        el = root.find(tag)
        if el is None:
            el = _sub(root, tag)
        el.text = value
    for tag in ("stream_id", "effective_srate"):  # reader-side fields, not part of a header
        for el in root.findall(tag):
            root.remove(el)
    return root


def stream_header_xml(info: StreamInfo, header_xml: str | None = None) -> bytes:
    """The StreamHeader XML of ``info``.

    Args:
        info: the stream (labels, units and channel types go under ``desc/channels``).
        header_xml: a full LSL header to copy whole (default: ``info.metadata["lsl_header_xml"]``
            when present); ignored when its channel count or format differs from ``info``.
    """
    header_xml = header_xml if header_xml is not None else info.metadata.get(LSL_HEADER_KEY)
    root = _header_from_lsl(info, header_xml) if isinstance(header_xml, str) and header_xml else None
    meta = _json_metadata(info)
    if root is None:
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
    else:
        desc = root.find("desc")
        if desc is None:
            desc = _sub(root, "desc")
        for el in desc.findall(METADATA_TAG):
            desc.remove(el)
    if meta:
        _sub(desc, METADATA_TAG, json.dumps(meta, sort_keys=True, default=str))
    return _xml(root)


class _StreamState:
    __slots__ = ("info", "fmt", "dtype", "tdiff", "last_ts", "first_ts", "count", "offsets", "zero_offsets",
                 "last_zero_t")

    def __init__(self, info: StreamInfo, zero_offsets: bool) -> None:
        self.info = info
        self.fmt = channel_format(info.dtype)
        self.dtype = None if self.fmt == "string" else np.dtype(DTYPES[self.fmt]).newbyteorder("<")
        self.tdiff = 1.0 / info.nominal_rate if info.nominal_rate > 0 else 0.0
        self.last_ts = 0.0
        self.first_ts: float | None = None
        self.count = 0
        self.offsets: list[tuple[float, float]] = []
        self.zero_offsets = zero_offsets
        self.last_zero_t: float | None = None


class XdfWriter:
    """Write an XDF file incrementally: open, add streams, write samples, close.

    Args:
        path: output file; ``.xdfz`` / ``.xdf.gz`` are gzip-compressed (unless ``compress`` says).
        metadata: JSON-serialisable file-level metadata (stored in the FileHeader).
        compress: force gzip on (True) or off (False); default from the file name.
        compresslevel: gzip level 1–9 (6: a good speed/size balance for live recording).
        flush_every_s: live recording: write what was collected to the file every this many
            seconds from a background thread (gzip: as a closed member), so a crash loses at most
            that much. None (default): write every ``member_bytes`` only (reproducible bytes).
        fsync_every_s: with ``flush_every_s``, also ``fsync`` the file this often (seconds;
            None: never), so an OS crash or power loss loses at most about this much.
        member_bytes: bytes of XDF collected before a write (a closed gzip member) at the latest.

    Example::

        with XdfWriter("out.xdfz", metadata={"subject": "sim"}, flush_every_s=0.5) as w:
            sid = w.add_stream(info)
            w.write_samples(sid, data, timestamps)      # data (n, channels), timestamps (n,) s
    """

    def __init__(self, path: str | Path, metadata: dict[str, Any] | None = None, *,
                 compress: bool | None = None, compresslevel: int = 6, flush_every_s: float | None = None,
                 fsync_every_s: float | None = 5.0, member_bytes: int = MEMBER_BYTES) -> None:
        if flush_every_s is not None and not flush_every_s > 0:
            raise ValueError(f"XdfWriter: flush_every_s must be > 0 s or None, got {flush_every_s}")
        if fsync_every_s is not None and not fsync_every_s > 0:
            raise ValueError(f"XdfWriter: fsync_every_s must be > 0 s or None, got {fsync_every_s}")
        self.path = Path(path)
        self.compress = is_gzip_name(self.path) if compress is None else bool(compress)
        self.compresslevel = int(compresslevel)
        self.member_bytes = int(member_bytes)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._raw: BinaryIO = open(self.path, "wb", buffering=0)
        self._lock = threading.Lock()
        self._pending = bytearray()       # bytes ready for the file (gzip: compressed)
        self._member_in = 0               # uncompressed bytes in the open gzip member (or pending)
        self._z = self._new_member() if self.compress else None
        self._streams: dict[int, _StreamState] = {}
        self._since_boundary = 0
        self.closed = False
        self.flushes = 0
        self.flush_error: BaseException | None = None
        self._emit(MAGIC)
        root = ET.Element("info")
        _sub(root, "version", "1.0")
        _sub(root, "writer", "spikeloop")
        if metadata:
            _sub(root, METADATA_TAG, json.dumps(metadata, sort_keys=True))
        self._emit(chunk(TAG_FILE_HEADER, _xml(root)))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.flush_every_s, self.fsync_every_s = flush_every_s, fsync_every_s
        if flush_every_s is not None:
            self.flush()
            self._thread = threading.Thread(target=self._flush_loop, name=f"xdf-flush:{self.path.name}",
                                            daemon=True)
            self._thread.start()

    # --- streams ---------------------------------------------------------------------------
    def add_stream(self, info: StreamInfo, stream_id: int | None = None, *, measured_offsets: bool = False,
                   header_xml: str | None = None) -> int:
        """Write a StreamHeader for ``info``; return its stream id (1, 2, ... unless given).

        Args:
            info: the stream's description.
            stream_id: the XDF stream id (default: the next free one).
            measured_offsets: the caller writes measured clock offsets with
                :meth:`write_clock_offset`; otherwise the writer adds 0 s offsets at intervals
                of the stream's timestamps (this machine's clock).
            header_xml: a full LSL stream header to copy (see :func:`stream_header_xml`).
        """
        self._check_open()
        sid = stream_id if stream_id is not None else max(self._streams, default=0) + 1
        if sid in self._streams:
            raise ValueError(f"{self.path}: stream id {sid} is already used")
        if not 0 <= sid < 1 << 32:
            raise ValueError(f"{self.path}: stream id {sid} out of range (u32)")
        state = _StreamState(info, zero_offsets=not measured_offsets)
        self._streams[sid] = state
        self._emit(chunk(TAG_STREAM_HEADER, struct.pack("<I", sid) + stream_header_xml(info, header_xml)))
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
        """Write a ClockOffset chunk: at ``collection_time`` (s, the stream's clock) it was ``offset`` s off."""
        self._check_open()
        st = self._stream(stream_id)
        st.offsets.append((float(collection_time), float(offset)))
        self._emit(chunk(TAG_CLOCK_OFFSET, struct.pack("<Idd", stream_id, collection_time, offset)))

    def write_boundary(self) -> None:
        """Write a Boundary chunk (readers resynchronise on it after a corrupt chunk)."""
        self._check_open()
        self._emit(chunk(TAG_BOUNDARY, BOUNDARY_UUID))
        self._since_boundary = 0

    def flush(self) -> None:
        """Write everything collected so far to the file (gzip: closes the current member)."""
        with self._lock:
            self._flush_locked()

    # --- closing ---------------------------------------------------------------------------
    def close(self) -> None:
        """Write every stream's StreamFooter, flush, fsync and close the file (idempotent)."""
        if self.closed:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10.0)
        try:
            for sid, st in self._streams.items():
                if st.zero_offsets and st.first_ts is not None and st.last_zero_t != st.last_ts:
                    self.write_clock_offset(sid, st.last_ts, 0.0)
                self._emit(chunk(TAG_STREAM_FOOTER, struct.pack("<I", sid) + self._footer_xml(st)))
            with self._lock:
                self._flush_locked()
                try:
                    os.fsync(self._raw.fileno())
                except OSError:  # not every file system can fsync; the data is written anyway
                    pass
        finally:
            self.closed = True
            self._raw.close()

    def __enter__(self) -> "XdfWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def sample_counts(self) -> dict[int, int]:
        """Samples written so far, per stream id."""
        return {sid: st.count for sid, st in self._streams.items()}

    # --- output ----------------------------------------------------------------------------
    def _new_member(self) -> Any:
        # wbits 31: a gzip wrapper (zero mtime, no name), one member per compressor
        return zlib.compressobj(self.compresslevel, zlib.DEFLATED, 31)

    def _emit(self, data: bytes) -> None:
        """Queue whole chunk bytes for the file (compressing them into the open gzip member)."""
        if self.flush_error is not None:
            raise RecordingError(f"{self.path}: writing failed ({self.flush_error})")
        with self._lock:
            if self._z is not None:
                self._pending += self._z.compress(data)
            else:
                self._pending += data
            self._member_in += len(data)
            if self._member_in >= self.member_bytes:
                self._flush_locked()

    def _flush_locked(self) -> None:
        if self._z is not None and self._member_in:
            self._pending += self._z.flush(zlib.Z_FINISH)
            self._z = self._new_member()
        self._member_in = 0
        if self._pending:
            view = memoryview(self._pending)
            while view:  # one write() normally; loop on short writes
                n = self._raw.write(view)
                view = view[n:]
            view.release()
            self._pending.clear()
            self.flushes += 1

    def _flush_loop(self) -> None:
        assert self.flush_every_s is not None
        last_sync = time.monotonic()
        while not self._stop.wait(self.flush_every_s):
            try:
                self.flush()
                if self.fsync_every_s is not None and time.monotonic() - last_sync >= self.fsync_every_s:
                    last_sync = time.monotonic()
                    os.fsync(self._raw.fileno())
            except (OSError, ValueError) as exc:  # disk full, file closed under us: report, stop
                self.flush_error = exc
                _log.error("%s: writing failed at local time %s: %s", self.path,
                           time.strftime("%H:%M:%S"), exc)
                return

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
        self._emit(chunk(TAG_SAMPLES, header + body))
        if st.first_ts is None:
            st.first_ts = float(stamps[0])
        st.last_ts = float(stamps[-1])
        st.count += n
        if st.zero_offsets:
            if st.last_zero_t is None:
                st.last_zero_t = st.first_ts
                self.write_clock_offset(sid, st.first_ts, 0.0)
            if st.last_ts - st.last_zero_t >= ZERO_OFFSET_EVERY_S:
                st.last_zero_t = st.last_ts
                self.write_clock_offset(sid, st.last_ts, 0.0)
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
    order (as a live recorder would), each stream's clock offsets after its samples (streams
    without any get 0 s offsets at intervals, see :class:`XdfWriter`).
    """
    streams = list(recording.streams.values())
    with XdfWriter(path, recording.metadata, compress=compress, compresslevel=compresslevel) as w:
        ids = [w.add_stream(s.info, measured_offsets=len(s.clock_offsets) > 0) for s in streams]
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
