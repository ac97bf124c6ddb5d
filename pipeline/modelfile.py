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

from pipeline.errors import UserError

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


def load_model(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a model file; return ``(arrays, metadata)``. Never unpickles anything."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"model file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise UserError(f"{path}: not a spikeloop model file ({exc})") from None
    if METADATA_KEY not in arrays:
        raise UserError(f"{path}: not a spikeloop model file (no {METADATA_KEY} entry)")
    metadata = json.loads(arrays.pop(METADATA_KEY).tobytes().decode("utf-8"))
    return arrays, metadata


def read_family(path: str | Path) -> str:
    """The ``family`` recorded in a model file's metadata (e.g. ``"decoder"``, ``"controller"``)."""
    return load_model(path)[1]["family"]
