"""Recordings: the in-memory form, XDF read/write, NeuroBench primate-reaching ``.mat`` files.

Use :func:`load_recording` to read any supported file by its extension.
"""
from __future__ import annotations

from pathlib import Path

from pipeline.errors import RecordingError
from pipeline.recordings.base import RecordedStream, Recording

__all__ = ["RecordedStream", "Recording", "load_recording", "RECORDING_SUFFIXES"]

RECORDING_SUFFIXES = (".xdf", ".xdfz", ".xdf.gz", ".mat")
"""File names :func:`load_recording` understands."""


def load_recording(path: str | Path) -> Recording:
    """Read a recording by its extension: ``.xdf``/``.xdfz``/``.xdf.gz`` (XDF) or ``.mat`` (NeuroBench).

    Raises RecordingError for a missing file, an unknown extension, or a truncated/corrupt file.
    """
    p = Path(path)
    name = p.name.lower()
    if not p.exists():
        raise RecordingError(f"recording not found: {p}")
    if name.endswith((".xdf", ".xdfz", ".xdf.gz")):
        from pipeline.recordings.xdf_reader import read_xdf

        return read_xdf(p)
    if name.endswith(".mat"):
        from pipeline.recordings.neurobench_mat import read_neurobench_mat

        return read_neurobench_mat(p)
    raise RecordingError(f"{p}: unknown recording format; expected one of {', '.join(RECORDING_SUFFIXES)}")
