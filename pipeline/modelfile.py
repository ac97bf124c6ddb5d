"""Model files: data, never code.

A model file is an ``.npz`` archive of named numpy arrays plus one JSON metadata entry
(``__metadata__``): family, kind, architecture, channels, rate, normalisation, training details.
It is read with ``allow_pickle=False``, so a model file from elsewhere cannot run code.
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import UserError, one_line

METADATA_KEY = "__metadata__"


def save_model(path: str | Path, arrays: dict[str, np.ndarray], metadata: dict[str, Any]) -> Path:
    """Write ``arrays`` and ``metadata`` (must include ``family`` and ``kind``) to ``path`` (.npz)."""
    for key in ("family", "kind"):
        if key not in metadata:
            raise ValueError(f"model metadata needs {key!r}")
    if METADATA_KEY in arrays:
        raise ValueError(f"array name {METADATA_KEY!r} is reserved")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = np.frombuffer(json.dumps(metadata, sort_keys=True).encode("utf-8"), dtype=np.uint8)
    with open(path, "wb") as f:  # an open file keeps numpy from appending ".npz" to the name
        np.savez(f, **{k: np.asarray(v) for k, v in arrays.items()}, **{METADATA_KEY: meta})
    return path


REQUIRED_METADATA: dict[str, dict[str, type | tuple[type, ...]]] = {
    "": {"family": str, "kind": str},
    "decoder": {"channels": int, "rate_hz": (int, float)},
}
"""Metadata keys every model file needs (``""``) and those of each family, with their JSON types."""

_RECORDING_SUFFIXES = (".xdf", ".xdfz", ".gz", ".mat", ".nwb", ".h5", ".edf", ".fif")


def file_sha256(path: str | Path) -> str:
    """SHA-256 (hex) of a file's bytes, read in 1 MiB blocks: how a model's metadata names the
    files it was made from (teachers, extra data)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _not_a_model(path: Path, why: str) -> UserError:
    hint = ""
    if path.name.lower().endswith(_RECORDING_SUFFIXES):
        hint = "; this looks like a recording: pass it as --recording (or a replay's path), and a model file as --model"
    return UserError(f"{path}: not a spikeloop model file ({why}){hint}")


def load_model(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a model file; return ``(arrays, metadata)``. Never unpickles anything.

    Every problem is a one-line :class:`UserError` naming the file: missing, not an ``.npz``
    archive (a recording given as a model says so), pickled (object) arrays (refused, never
    loaded), no metadata entry, metadata that is not UTF-8 JSON or not a JSON object, or that
    lacks a key of :data:`REQUIRED_METADATA` (``rate_hz`` ...).
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"model file not found: {path}" + (" (it is a directory)" if path.is_dir() else ""))
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic.startswith(b"\x93NUMPY"):
        raise _not_a_model(path, "a single .npy array, not an .npz archive with metadata")
    if not magic.startswith(b"PK"):
        what = "gzip data" if magic.startswith(b"\x1f\x8b") else "an empty file" if not magic else f"it starts with {magic!r}"
        raise _not_a_model(path, f"not an .npz (zip) archive: {what}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except ValueError as exc:
        if "pickle" in str(exc) or "Object arrays" in str(exc):
            raise _not_a_model(path, "it holds pickled (object) arrays; model files are plain numeric "
                                     "arrays and spikeloop never loads pickles") from None
        raise _not_a_model(path, "not an .npz archive") from None
    except (zipfile.BadZipFile, OSError, EOFError, KeyError) as exc:
        raise _not_a_model(path, f"a damaged or non-.npz archive: {one_line(str(exc)) or type(exc).__name__}") from None
    if METADATA_KEY not in arrays:
        raise _not_a_model(path, f"no {METADATA_KEY} entry")
    raw = arrays.pop(METADATA_KEY)
    try:
        metadata = json.loads(raw.tobytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: model metadata is not UTF-8 text (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: model metadata is not valid JSON ({exc.msg} at line {exc.lineno}, "
                        f"column {exc.colno})") from None
    if not isinstance(metadata, dict):
        raise UserError(f"{path}: model metadata must be a JSON object, got a JSON {type(metadata).__name__}")
    check_metadata(path, metadata)
    return arrays, metadata


def check_metadata(path: str | Path, metadata: dict[str, Any]) -> None:
    """Raise a one-line :class:`UserError` if ``metadata`` lacks a required key or has the wrong type."""
    family = metadata.get("family")
    for group in ("", family if isinstance(family, str) else ""):
        for key, types_ in REQUIRED_METADATA.get(group, {}).items():
            if key not in metadata:
                what = f"{family} model" if group else "model"
                raise UserError(f"{path}: {what} metadata lacks {key!r}")
            value = metadata[key]
            if isinstance(value, bool) or not isinstance(value, types_):
                raise UserError(f"{path}: model metadata {key!r} must be a JSON "
                                f"{'number' if types_ == (int, float) else getattr(types_, '__name__', 'value')}, got {value!r}")
    rate = metadata.get("rate_hz")
    if rate is not None and not (isinstance(rate, (int, float)) and rate > 0):
        raise UserError(f"{path}: model metadata 'rate_hz' must be > 0, got {rate!r}")


def read_family(path: str | Path) -> str:
    """The ``family`` recorded in a model file's metadata (e.g. ``"decoder"``, ``"controller"``)."""
    return load_model(path)[1]["family"]


def check_model_fits(path: str | Path, channels: int, rate_hz: float, source: str) -> None:
    """Refuse (one-line :class:`UserError`) a decoder model whose input differs from the data's.

    Args:
        path: the model file.
        channels: channels of the neural input it would be fed.
        rate_hz: that input's rate (bins per second).
        source: what the input is, for the message (a recording's path).
    """
    metadata = load_model(path)[1]
    want_ch, want_rate = metadata.get("channels"), metadata.get("rate_hz")
    if want_ch is not None and int(want_ch) != int(channels):
        raise UserError(f"{path}: the model takes {want_ch} input channels but {source} has {channels}; "
                        "use a model trained on this recording's channels")
    if want_rate is not None and abs(float(want_rate) - float(rate_hz)) > 1e-9 * max(1.0, float(rate_hz)):
        raise UserError(f"{path}: the model takes input at {float(want_rate):g} Hz but {source} is at {float(rate_hz):g} Hz")
