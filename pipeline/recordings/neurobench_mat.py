"""Read the O'Doherty / NeuroBench primate-reaching ``.mat`` files (MATLAB v7.3, HDF5, via h5py).

Layout, as h5py sees a file such as ``indy_20160622_01.mat`` (Zenodo record 583331):

* ``spikes``: object references, shape ``(units, channels)`` (MATLAB's channels × units cell
  array, transposed by HDF5); each reference points to one unit's spike times in seconds (an
  empty MATLAB array when the unit never fired);
* ``cursor_pos``, ``target_pos``: shape ``(2, T)``, millimetres;
* ``t``: shape ``(1, T)``, the 250 Hz sample times in seconds.

Binning follows NeuroBench's ``PrimateReaching`` loader with a 4 ms window (``bin_width =
stride = 0.004``), which is what the streaming decoders consume:

* edges ``np.arange(t[0] - 0.004, t[-1], 0.004)``; ``np.histogram`` of each unit's spike times
  over them; a bin that holds any spike marks the *next* sample index (NeuroBench shifts by one to
  the bin's upper edge), so sample ``k`` ≥ 1 sees the spikes in
  ``[t0 + (k - 2)·4 ms, t0 + (k - 1)·4 ms)`` and sample 0 sees none;
* the units of a channel are ORed: the result is binary (0/1) per channel per bin;
* velocity is the gradient of the cursor position along time (central differences, one-sided at
  the ends). NeuroBench keeps it in mm per sample; here it is divided by the 4 ms sample spacing
  to give mm/s (R² is unchanged by the scale);
* a reach segment runs between target changes; see :mod:`pipeline.recordings.reaching`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.errors import RecordingError
from pipeline.packet import StreamInfo
from pipeline.recordings.base import RecordedStream, Recording

BIN_S = 0.004
"""NeuroBench's sample interval and the bin width used here (s)."""
RATE_HZ = 250.0


def _unit_times(f, ref) -> np.ndarray:
    """Spike times (s) of one unit; empty for MATLAB empty arrays or null references."""
    if not ref:
        return np.zeros(0)
    ds = f[ref]
    if ds.attrs.get("MATLAB_empty", 0):
        return np.zeros(0)
    return np.asarray(ds[()], dtype=np.float64).reshape(-1)


def bin_spikes(unit_times: list[list[np.ndarray]], t: np.ndarray, bin_s: float = BIN_S) -> np.ndarray:
    """Binarised spikes per channel per bin, NeuroBench style.

    Args:
        unit_times: ``unit_times[u][c]`` = spike times (s) of unit ``u`` on channel ``c``.
        t: shape ``(T,)``, sample times (s).
        bin_s: bin width (s); NeuroBench's stride is always 4 ms.

    Returns:
        shape ``(T, channels)`` uint8 of 0/1.
    """
    n_ch = len(unit_times[0]) if unit_times else 0
    edges = np.arange(t[0] - bin_s, t[-1], BIN_S)
    out = np.zeros((len(edges), n_ch), dtype=np.uint8)
    for row in unit_times:
        for c, times in enumerate(row):
            if times.size == 0:
                continue
            counts, _ = np.histogram(times, bins=edges)
            out[np.flatnonzero(counts) + 1, c] = 1
    T = t.shape[0]
    if out.shape[0] < T:  # np.arange may give one edge less or more than T through rounding
        out = np.vstack([out, np.zeros((T - out.shape[0], n_ch), dtype=np.uint8)])
    return out[:T]


def read_neurobench_mat(path: str | Path) -> Recording:
    """Read a primate-reaching ``.mat`` file into a Recording with streams spikes, velocity, target.

    Streams (all 250 Hz, timestamps = the file's ``t`` in s):
        ``spikes``: (T, channels) float32 0/1 per 4 ms bin (units ORed per channel), "counts";
        ``velocity``: (T, 2) float32 cursor velocity ``vx, vy`` in mm/s;
        ``target``: (T, 2) float32 target position ``tx, ty`` in mm.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise RecordingError(f"recording not found: {path}")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise RecordingError(
            f"{path}: not a MATLAB v7.3 (HDF5) file ({exc}); NeuroBench's primate-reaching files are v7.3"
        ) from None
    with f:
        for key in ("spikes", "cursor_pos", "target_pos", "t"):
            if key not in f:
                raise RecordingError(
                    f"{path}: no {key!r} variable; expected the O'Doherty/NeuroBench layout "
                    f"(spikes, cursor_pos, target_pos, t), found {', '.join(sorted(f.keys()))}"
                )
        t = np.asarray(f["t"][()], dtype=np.float64).reshape(-1)
        cursor = np.asarray(f["cursor_pos"][()], dtype=np.float64)
        target = np.asarray(f["target_pos"][()], dtype=np.float64)
        for key, arr in (("cursor_pos", cursor), ("target_pos", target)):
            if arr.shape != (2, t.shape[0]):
                raise RecordingError(f"{path}: {key} has shape {arr.shape}, expected (2, {t.shape[0]}) like t")
        if t.shape[0] < 2:
            raise RecordingError(f"{path}: t has {t.shape[0]} samples; need at least 2")
        refs = f["spikes"][()]
        if refs.ndim != 2 or refs.dtype != h5py.ref_dtype:
            raise RecordingError(
                f"{path}: 'spikes' should be a 2-D array of object references (units x channels), "
                f"got shape {refs.shape} dtype {refs.dtype}"
            )
        units = [[_unit_times(f, ref) for ref in row] for row in refs]
    spikes = bin_spikes(units, t)
    velocity = np.gradient(cursor, axis=1).T / BIN_S
    n_ch = spikes.shape[1]
    name = path.stem
    streams = {
        "spikes": RecordedStream(
            StreamInfo("spikes", "SpikeCounts", n_ch, RATE_HZ, "float32",
                       tuple(f"ch{c}" for c in range(n_ch)), ("counts",) * n_ch, source_id=name),
            spikes.astype(np.float32), t.copy()),
        "velocity": RecordedStream(
            StreamInfo("velocity", "Velocity", 2, RATE_HZ, "float32", ("vx", "vy"), ("mm/s", "mm/s"), source_id=name),
            velocity.astype(np.float32), t.copy()),
        "target": RecordedStream(
            StreamInfo("target", "Target", 2, RATE_HZ, "float32", ("tx", "ty"), ("mm", "mm"), source_id=name),
            target.T.astype(np.float32), t.copy()),
    }
    meta = {"source": "neurobench_mat", "file": path.name, "units": len(units), "channels": n_ch,
            "binning": "NeuroBench PrimateReaching, 4 ms, units ORed per channel"}
    return Recording(streams, meta)
