"""Recordings: the in-memory form, XDF read/write, NeuroBench primate-reaching ``.mat`` files.

Use :func:`load_recording` to read any supported file by its extension.
"""
from pipeline.recordings.base import RecordedStream, Recording

__all__ = ["RecordedStream", "Recording"]
