"""Read XDF files (``.xdf``, gzip ``.xdfz`` / ``.xdf.gz``) into a :class:`Recording` with pyxdf.

pyxdf is tolerant by design: on a chopped-off or corrupt file it logs an error, skips ahead and
returns what it could read. A recording that silently lost its tail is worse than an error here,
so :func:`read_xdf` first walks the chunk structure itself (magic bytes, every chunk's length and
tag, one StreamHeader per stream id, a StreamFooter per stream whose sample count matches) and
raises :class:`~pipeline.errors.RecordingError` naming the file, the byte offset and what is wrong.
Any error pyxdf logs while parsing is turned into a RecordingError too.

Timestamps are returned raw (no clock synchronisation, no dejittering) in seconds; clock offsets
are returned per stream as rows ``(collection time s, offset s)``, so a caller can apply them.
"""
from __future__ import annotations

import io
import json
import logging
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import RecordingError
from pipeline.packet import StreamInfo
from pipeline.recordings.base import RecordedStream, Recording
from pipeline.recordings.xdf_writer import (
    DTYPES, MAGIC, METADATA_TAG, TAG_BOUNDARY, TAG_CLOCK_OFFSET, TAG_FILE_HEADER, TAG_SAMPLES,
    TAG_STREAM_FOOTER, TAG_STREAM_HEADER,
)

_TAG_NAMES = {TAG_FILE_HEADER: "FileHeader", TAG_STREAM_HEADER: "StreamHeader", TAG_SAMPLES: "Samples",
              TAG_CLOCK_OFFSET: "ClockOffset", TAG_BOUNDARY: "Boundary", TAG_STREAM_FOOTER: "StreamFooter"}


def _gunzip(raw: bytes, name: str, allow_incomplete: bool) -> bytes:
    """Decompress concatenated gzip members; with ``allow_incomplete`` a cut-off last member is dropped."""
    out: list[bytes] = []
    pos = 0
    while pos < len(raw):
        if raw[pos:pos + 2] != b"\x1f\x8b":
            if not raw[pos:].strip(b"\x00"):  # zero padding after the last member is allowed
                break
            raise RecordingError(f"{name}: corrupt gzip data at byte {pos} (not the start of a gzip member)")
        d = zlib.decompressobj(31)
        try:
            data = d.decompress(raw[pos:])
        except zlib.error as exc:
            raise RecordingError(f"{name}: corrupt gzip data in the member at byte {pos} ({exc})") from None
        if not d.eof:
            if allow_incomplete:
                break  # a recorder killed while writing its last member: keep the members before it
            raise RecordingError(f"{name}: truncated gzip data (the member at byte {pos} is cut off)")
        out.append(data)
        pos = len(raw) - len(d.unused_data)
    return b"".join(out)


def read_bytes(path: str | Path, *, allow_incomplete: bool = False) -> bytes:
    """The decompressed bytes of an XDF file (gzip detected by its magic number, not its name).

    With ``allow_incomplete`` a gzip member cut off at the end of the file (a recorder killed
    while writing) is left out instead of being an error.
    """
    path = Path(path)
    if not path.is_file():
        raise RecordingError(f"recording not found: {path}")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        return _gunzip(raw, str(path), allow_incomplete)
    return raw


def scan_chunks(buf: bytes, name: str = "<bytes>", *, allow_incomplete: bool = False) -> list[tuple[int, int, int]]:
    """Validate the chunk structure of XDF bytes; return ``(tag, content offset, content length)``.

    Raises RecordingError for a wrong magic, an invalid length field, an unknown tag, a chunk that
    runs past the end of the data (a truncated file; with ``allow_incomplete`` that last chunk is
    left out instead) or a stream id used before its header.
    """
    if buf[:4] != MAGIC:
        raise RecordingError(f"{name}: not an XDF file (starts with {buf[:4]!r}, expected {MAGIC!r})")
    chunks: list[tuple[int, int, int]] = []
    pos, end = 4, len(buf)
    headers: set[int] = set()
    while pos < end:
        nbytes = buf[pos]
        if nbytes not in (1, 4, 8):
            raise RecordingError(f"{name}: corrupt chunk length field at byte {pos} (size byte {nbytes}, expected 1, 4 or 8)")
        if pos + 1 + nbytes > end:
            if allow_incomplete:
                break
            raise RecordingError(f"{name}: truncated at byte {end} (inside a chunk length field at byte {pos})")
        length = int.from_bytes(buf[pos + 1:pos + 1 + nbytes], "little")
        start = pos + 1 + nbytes
        if length < 2:
            raise RecordingError(f"{name}: corrupt chunk at byte {pos} (length {length} < 2)")
        if start + length > end:
            if allow_incomplete:
                break
            raise RecordingError(
                f"{name}: truncated: the chunk at byte {pos} needs {length} bytes but only {end - start} remain"
            )
        tag = struct.unpack_from("<H", buf, start)[0]
        if tag not in _TAG_NAMES:
            raise RecordingError(f"{name}: corrupt chunk at byte {pos} (unknown tag {tag})")
        if tag in (TAG_STREAM_HEADER, TAG_SAMPLES, TAG_CLOCK_OFFSET, TAG_STREAM_FOOTER):
            if length < 6:
                raise RecordingError(f"{name}: corrupt {_TAG_NAMES[tag]} chunk at byte {pos} (no stream id)")
            sid = struct.unpack_from("<I", buf, start + 2)[0]
            if tag == TAG_STREAM_HEADER:
                headers.add(sid)
            elif sid not in headers:
                raise RecordingError(
                    f"{name}: corrupt {_TAG_NAMES[tag]} chunk at byte {pos} (stream id {sid} has no StreamHeader)"
                )
        if tag == TAG_CLOCK_OFFSET and length != 2 + 4 + 16:
            raise RecordingError(f"{name}: corrupt ClockOffset chunk at byte {pos} (length {length}, expected 22)")
        chunks.append((tag, start + 2, length - 2))
        pos = start + length
    if not chunks or chunks[0][0] != TAG_FILE_HEADER:
        raise RecordingError(f"{name}: corrupt XDF file (no FileHeader chunk first)")
    return chunks


class _ErrorLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _first(d: Any, key: str, default: Any = None) -> Any:
    """pyxdf's XML dicts hold lists: ``{"name": ["spikes"]}``."""
    if not isinstance(d, dict) or key not in d or not d[key]:
        return default
    return d[key][0]


def _stream_info(hdr: dict[str, Any], name: str) -> StreamInfo:
    info = hdr["info"]
    count = int(_first(info, "channel_count", 0))
    fmt = _first(info, "channel_format", "float32")
    if fmt not in DTYPES:
        raise RecordingError(f"{name}: stream {_first(info, 'name')!r} has unknown channel_format {fmt!r}")
    desc = _first(info, "desc")
    labels: list[str] = []
    units: list[str] = []
    metadata: dict[str, Any] = {}
    if isinstance(desc, dict):
        channels = _first(desc, "channels")
        if isinstance(channels, dict):
            for ch in channels.get("channel", []):
                labels.append(_first(ch, "label", "") or "")
                units.append(_first(ch, "unit", "") or "")
        raw_meta = _first(desc, METADATA_TAG)
        if raw_meta:
            metadata = json.loads(raw_meta)
    if len(labels) != count:
        labels = []
    if len(units) != count or not any(units):
        units = []
    return StreamInfo(
        name=_first(info, "name", "") or "",
        type=_first(info, "type", "") or "",
        channel_count=count,
        nominal_rate=float(_first(info, "nominal_srate", 0.0)),
        dtype=DTYPES[fmt],
        channel_labels=tuple(labels),
        units=tuple(units),
        source_id=_first(info, "source_id", "") or "",
        metadata=metadata,
    )


def read_xdf(path: str | Path, *, allow_incomplete: bool = False) -> Recording:
    """Read every stream of an XDF file into a :class:`Recording`.

    Args:
        path: ``.xdf``, ``.xdfz`` or ``.xdf.gz`` file.
        allow_incomplete: accept a file whose streams have no StreamFooter (a recorder that did not
            close: killed, or the machine lost power) and drop a torn last chunk or gzip member;
            otherwise that is an error.

    Returns:
        A Recording whose streams hold ``data`` (samples, channels) in the stream's dtype,
        ``timestamps`` (samples,) s as recorded, and ``clock_offsets`` (k, 2) s. File metadata
        written by :class:`~pipeline.recordings.xdf_writer.XdfWriter` is in ``metadata``.
    """
    import pyxdf

    path = Path(path)
    buf = read_bytes(path, allow_incomplete=allow_incomplete)
    chunks = scan_chunks(buf, str(path), allow_incomplete=allow_incomplete)
    if chunks:
        last = chunks[-1]
        buf = buf[:last[1] + last[2]]  # a torn last chunk (allow_incomplete) is not passed to pyxdf
    footers = {struct.unpack_from("<I", buf, off)[0] for tag, off, _ in chunks if tag == TAG_STREAM_FOOTER}
    headers = [struct.unpack_from("<I", buf, off)[0] for tag, off, _ in chunks if tag == TAG_STREAM_HEADER]
    missing = [sid for sid in headers if sid not in footers]
    if missing and not allow_incomplete:
        raise RecordingError(
            f"{path}: truncated or not closed properly: no StreamFooter for stream id(s) "
            f"{', '.join(map(str, missing))} (pass allow_incomplete=True to read what is there)"
        )
    log = logging.getLogger("pyxdf.pyxdf")
    handler = _ErrorLog()
    log.addHandler(handler)
    try:
        streams, fileheader = pyxdf.load_xdf(io.BytesIO(buf), synchronize_clocks=False,
                                             dejitter_timestamps=False, handle_clock_resets=False)
    except Exception as exc:  # pyxdf raises assorted errors on malformed content
        raise RecordingError(f"{path}: corrupt XDF content ({type(exc).__name__}: {exc})") from None
    finally:
        log.removeHandler(handler)
    if handler.messages:
        raise RecordingError(f"{path}: corrupt XDF content ({handler.messages[0]})")

    metadata: dict[str, Any] = {}
    raw_meta = _first((fileheader or {}).get("info", {}), METADATA_TAG)
    if raw_meta:
        metadata = json.loads(raw_meta)
    out: dict[str, RecordedStream] = {}
    for s in streams:
        info = _stream_info(s, str(path))
        name = info.name
        k = 2
        while name in out:  # two streams with the same name: keep both, the later one suffixed
            name = f"{info.name}_{k}"
            k += 1
        if name != info.name:
            info = info.with_(name=name)
        series = s["time_series"]
        if info.dtype == "object":
            data = np.array(series, dtype=object).reshape(-1, info.channel_count)
        else:
            data = np.asarray(series, dtype=info.dtype).reshape(-1, info.channel_count)
        stamps = np.asarray(s["time_stamps"], dtype=np.float64)
        footer = s.get("footer")
        count = _first(footer.get("info"), "sample_count") if isinstance(footer, dict) else None
        if count is not None and int(count) != data.shape[0]:
            raise RecordingError(
                f"{path}: stream {name!r} has {data.shape[0]} samples but its footer says {count} (corrupt file)"
            )
        offsets = np.column_stack([np.asarray(s["clock_times"], dtype=np.float64),
                                   np.asarray(s["clock_values"], dtype=np.float64)]).reshape(-1, 2)
        out[name] = RecordedStream(info, data, stamps, offsets)
    return Recording(out, metadata)


def _element_dict(el) -> dict[str, Any]:
    """An XML element as pyxdf's nested dict-of-lists form."""
    children = list(el)
    if not children:
        return {el.tag: el.text}
    dd: dict[str, list] = {}
    for child in children:
        for k, v in _element_dict(child).items():
            dd.setdefault(k, []).append(v)
    return {el.tag: dd}


def read_xdf_infos(path: str | Path) -> dict[str, StreamInfo]:
    """The stream descriptions of an XDF file, by name, without decoding its samples (fast).

    Raises RecordingError for a missing, truncated or corrupt file (the chunk structure is checked).
    """
    import xml.etree.ElementTree as ET

    path = Path(path)
    buf = read_bytes(path)
    infos: dict[str, StreamInfo] = {}
    for tag, off, length in scan_chunks(buf, str(path)):
        if tag != TAG_STREAM_HEADER:
            continue
        try:
            root = ET.fromstring(buf[off + 4:off + length])
        except ET.ParseError as exc:
            raise RecordingError(f"{path}: corrupt StreamHeader XML at byte {off} ({exc})") from None
        info = _stream_info(_element_dict(root), str(path))
        name, k = info.name, 2
        while name in infos:
            name, k = f"{info.name}_{k}", k + 1
        infos[name] = info if name == info.name else info.with_(name=name)
    return infos
