"""Recordings: the in-memory form, XDF read/write, NeuroBench primate-reaching ``.mat`` files, NWB.

Use :func:`load_recording` to read any supported file by its extension.
"""
from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

from pipeline.errors import RecordingError
from pipeline.packet import StreamInfo
from pipeline.recordings.base import RecordedStream, Recording

__all__ = ["RecordedStream", "Recording", "load_recording", "recording_infos", "RECORDING_SUFFIXES"]

_CACHE: "OrderedDict[tuple, Recording]" = OrderedDict()
_CACHE_SIZE = 2

RECORDING_SUFFIXES = (".xdf", ".xdfz", ".xdf.gz", ".mat", ".nwb")
"""File names :func:`load_recording` understands."""


def _kind(p: Path) -> str:
    name = p.name.lower()
    if not p.is_file():
        raise RecordingError(f"recording not found: {p}")
    if name.endswith((".xdf", ".xdfz", ".xdf.gz")):
        return "xdf"
    if name.endswith(".mat"):
        return "mat"
    if name.endswith(".nwb"):
        return "nwb"
    raise RecordingError(f"{p}: unknown recording format; expected one of {', '.join(RECORDING_SUFFIXES)}")


def recording_infos(path: str | Path) -> dict[str, StreamInfo]:
    """The stream descriptions of a recording by name, read quickly (no sample decoding for XDF)."""
    p = Path(path)
    if _kind(p) == "xdf":
        from pipeline.recordings.xdf_reader import read_xdf_infos

        return read_xdf_infos(p)
    return {name: s.info for name, s in load_recording(p).streams.items()}


def load_recording(path: str | Path, *, cache: bool = True) -> Recording:
    """Read a recording by its extension: ``.xdf``/``.xdfz``/``.xdf.gz`` (XDF), ``.mat`` (NeuroBench), ``.nwb``.

    The last two recordings read are kept in memory (keyed by path, size and modification time),
    so a graph whose replay, decoder fit and scorer name the same file reads it once: treat the
    returned arrays as read-only. Raises RecordingError for a missing file, an unknown extension,
    or a truncated/corrupt file.
    """
    p = Path(path)
    kind = _kind(p)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if cache and key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    rec = _read(p, kind)
    if cache:
        _CACHE[key] = rec
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return rec


def _read(p: Path, kind: str) -> Recording:
    if kind == "xdf":
        from pipeline.recordings.xdf_reader import read_xdf

        return read_xdf(p)
    if kind == "nwb":
        from pipeline.recordings.nwb import read_nwb

        return read_nwb(p)
    from pipeline.recordings.neurobench_mat import read_neurobench_mat

    return read_neurobench_mat(p)
