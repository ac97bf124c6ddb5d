"""The NeuroBench primate-reaching .mat reader, on a small file written here in the same layout."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from pipeline.errors import RecordingError
from pipeline.recordings import load_recording
from pipeline.recordings.reaching import load_reaching

T, CHANNELS, UNITS = 600, 5, 3
T0 = 123.456


def _write_mat(path, rng):
    """MATLAB v7.3 layout as h5py sees it: spikes (units, channels) of object references."""
    t = T0 + 0.004 * np.arange(T)
    # spike times placed at bin centres +- 1.2 ms, so edge rounding cannot matter
    unit_times = [[None] * CHANNELS for _ in range(UNITS)]
    for u in range(UNITS):
        for c in range(CHANNELS):
            if (u, c) in ((2, 1), (0, 4)):
                unit_times[u][c] = np.zeros(0)  # a unit that never fired (MATLAB empty)
                continue
            k = np.sort(rng.choice(T + 5, size=rng.integers(5, 120), replace=False))
            unit_times[u][c] = t[0] - 0.004 + 0.004 * k + 0.002 + rng.uniform(-0.0012, 0.0012, k.size)
    # a few spikes outside the recording too
    unit_times[0][0] = np.concatenate([[T0 - 1.0], unit_times[0][0], [T0 + 10.0]])
    # piecewise-constant targets: 9 reaches
    changes = np.sort(rng.choice(np.arange(20, T - 20), size=8, replace=False))
    target = np.zeros((2, T))
    for i, start in enumerate([0, *changes]):
        target[:, start:] = rng.uniform(-80, 80, (2, 1))
    cursor = np.cumsum(rng.normal(0, 0.5, (2, T)), axis=1)
    with h5py.File(path, "w") as f:
        refs = np.empty((UNITS, CHANNELS), dtype=h5py.ref_dtype)
        grp = f.create_group("#refs#")
        for u in range(UNITS):
            for c in range(CHANNELS):
                times = unit_times[u][c]
                if times.size == 0:
                    ds = grp.create_dataset(f"u{u}c{c}", data=np.zeros(2, dtype=np.uint64))
                    ds.attrs["MATLAB_empty"] = np.uint8(1)
                else:
                    ds = grp.create_dataset(f"u{u}c{c}", data=times[None, :])  # MATLAB column -> (1, n)
                refs[u, c] = ds.ref
        f.create_dataset("spikes", data=refs)
        f.create_dataset("cursor_pos", data=cursor)
        f.create_dataset("target_pos", data=target)
        f.create_dataset("t", data=t[None, :])
    return t, unit_times, cursor, target, changes


def _expected_spikes(t, unit_times):
    """Independent: sample k >= 1 is 1 if any unit of the channel fired in [t0+(k-2)·4ms, t0+(k-1)·4ms)."""
    out = np.zeros((T, CHANNELS), dtype=np.float32)
    for k in range(1, T):
        lo, hi = t[0] + (k - 2) * 0.004, t[0] + (k - 1) * 0.004
        for c in range(CHANNELS):
            out[k, c] = float(any(np.any((ts >= lo) & (ts < hi)) for ts in (unit_times[u][c] for u in range(UNITS))))
    return out


def test_reader_matches_independent_binning(tmp_path):
    rng = np.random.default_rng(5)
    path = tmp_path / "indy_test.mat"
    t, unit_times, cursor, target, changes = _write_mat(path, rng)
    rec = load_recording(path)
    assert set(rec.streams) == {"spikes", "velocity", "target"}
    spikes = rec.stream("spikes")
    assert spikes.info.channel_count == CHANNELS and spikes.info.nominal_rate == 250.0
    np.testing.assert_array_equal(spikes.data, _expected_spikes(t, unit_times))
    assert spikes.data.max() == 1.0  # binarised: units ORed per channel
    np.testing.assert_array_equal(spikes.timestamps, t)
    # velocity: central differences per sample, one-sided at the ends, in mm/s
    v = np.empty((T, 2))
    v[1:-1] = (cursor[:, 2:] - cursor[:, :-2]).T / 2
    v[0], v[-1] = cursor[:, 1] - cursor[:, 0], cursor[:, -1] - cursor[:, -2]
    np.testing.assert_allclose(rec.stream("velocity").data, (v / 0.004).astype(np.float32), rtol=1e-6)
    assert rec.stream("velocity").info.units == ("mm/s", "mm/s")
    np.testing.assert_array_equal(rec.stream("target").data, target.T.astype(np.float32))

    data = load_reaching(path)
    # NeuroBench segments: boundaries at the last sample of each old target
    bounds = [0, *(changes - 1).tolist(), T]
    assert data.segments == list(zip(bounds[:-1], bounds[1:]))
    n = len(data.segments)  # 9 segments: 4 train, 2 val, 3 test
    assert n == 9
    assert data.split["train"] == slice(0, data.segments[4][0])
    assert data.split["val"] == slice(data.segments[4][0], data.segments[6][0])
    assert data.split["test"] == slice(data.segments[6][0], T)


def test_bad_mat_files(tmp_path):
    with pytest.raises(RecordingError, match="not found"):
        load_recording(tmp_path / "missing.mat")
    (tmp_path / "old.mat").write_bytes(b"MATLAB 5.0 MAT-file" + bytes(200))
    with pytest.raises(RecordingError, match="v7.3"):
        load_recording(tmp_path / "old.mat")
    with h5py.File(tmp_path / "other.mat", "w") as f:
        f.create_dataset("x", data=np.zeros(3))
    with pytest.raises(RecordingError, match="no 'spikes' variable"):
        load_recording(tmp_path / "other.mat")
