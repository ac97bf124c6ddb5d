"""Small reaching sessions written in other people's layouts, for the own-recordings tests.

One session (spike times per channel and unit, a cursor position, piecewise-constant targets) is
written as:

* a LabRecorder-style XDF: a neural counts stream at 250 Hz, a cursor position stream at 100 Hz
  with its own timestamps and a clock offset, a string marker stream at each reach start — none
  of them with spikeloop's default names;
* an XDF with the spikes as irregular events ``(channel, unit)``;
* an NWB file (pynwb) in the layout of DANDI 000128/000129 (Neural Latents Benchmark): electrodes,
  a units table with spike times and electrodes, ``processing/behavior`` TimeSeries at 1 kHz
  (``cursor_pos``, ``finger_vel``) and a ``Position`` with a ``SpatialSeries`` (``hand``), trials;
* a NeuroBench ``.mat`` (MATLAB v7.3 via h5py).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from pipeline.packet import StreamInfo
from pipeline.recordings.base import RecordedStream, Recording
from pipeline.recordings.xdf_writer import write_xdf

BIN = 0.004


@dataclass
class Session:
    """A synthetic reaching session. Times in s on one clock, positions in mm."""

    t0: float
    seconds: float
    channels: int
    units: int
    unit_times: list[list[np.ndarray]]  # [unit][channel] -> spike times (s)
    reach_starts: np.ndarray  # (R,) s
    targets: np.ndarray  # (R, 2) mm

    def position(self, t: np.ndarray) -> np.ndarray:
        """Cursor position (len(t), 2) mm: a minimum-jerk reach to each target within 0.6 s."""
        out = np.zeros((t.size, 2))
        prev = np.zeros(2)
        for start, stop, tgt in zip(self.reach_starts, [*self.reach_starts[1:], np.inf], self.targets):
            m = (t >= start) & (t < stop)
            s = np.clip((t[m] - start) / 0.6, 0, 1)
            shape = 10 * s**3 - 15 * s**4 + 6 * s**5
            out[m] = prev + shape[:, None] * (tgt - prev)
            prev = tgt
        return out

    def target_at(self, t: np.ndarray) -> np.ndarray:
        i = np.clip(np.searchsorted(self.reach_starts, t, side="right") - 1, 0, len(self.targets) - 1)
        return self.targets[i]

    def events(self) -> tuple[np.ndarray, np.ndarray]:
        """All spikes sorted by time: times (n,), data (n, 2) int32 columns channel, unit."""
        t, d = [], []
        for u in range(self.units):
            for c in range(self.channels):
                ts = self.unit_times[u][c]
                t.append(ts)
                d.append(np.column_stack([np.full(ts.size, c), np.full(ts.size, u)]))
        times = np.concatenate(t)
        data = np.concatenate(d).astype(np.int32)
        order = np.argsort(times, kind="stable")
        return times[order], data[order]


def make_session(seconds: float = 60.0, channels: int = 12, units: int = 2, seed: int = 0,
                 t0: float = 1000.0) -> Session:
    """Cosine-tuned Poisson units driven by the cursor velocity; spikes placed at 4 ms bin centres
    ± 1.2 ms (so no spike sits on a bin edge and every binning agrees on its bin)."""
    rng = np.random.default_rng(seed)
    starts = t0 + np.cumsum(rng.uniform(0.9, 1.6, int(seconds / 0.9) + 2)) - 0.5
    starts = starts[starts < t0 + seconds - 0.5]
    targets = rng.uniform(-80, 80, (starts.size, 2))
    sess = Session(t0, seconds, channels, units, [], starts, targets)
    n_bins = int(round(seconds / BIN))
    centres = t0 + BIN * np.arange(n_bins) + BIN / 2
    vel = np.gradient(sess.position(centres), BIN, axis=0)
    pref = rng.uniform(0, 2 * np.pi, (units, channels))
    for u in range(units):
        row = []
        for c in range(channels):
            rate = 15 + 0.15 * np.clip(vel @ [np.cos(pref[u, c]), np.sin(pref[u, c])], 0, None)
            fired = rng.random(n_bins) < np.minimum(rate * BIN, 0.9)
            k = np.flatnonzero(fired)
            row.append(centres[k] + rng.uniform(-0.0012, 0.0012, k.size))
        sess.unit_times.append(row)
    return sess


def write_labrecorder_xdf(path: Path, s: Session, *, kin_rate: float = 100.0, kin_lag: float = 0.0013,
                          kin_clock_offset: float = -0.25) -> Path:
    """A LabRecorder-like XDF: ``Amp_counts`` (250 Hz, summed units per channel), ``Cursor`` (position,
    ``kin_rate`` Hz, stamped on a clock ``kin_clock_offset`` s off, with clock offsets that correct
    it), ``Trial_markers`` (strings at reach starts)."""
    n = int(round(s.seconds / BIN))
    tb = s.t0 + BIN * (np.arange(n) + 1)  # bin end times
    counts = np.zeros((n, s.channels), dtype=np.float32)
    for u in range(s.units):
        for c in range(s.channels):
            k = np.floor((s.unit_times[u][c] - s.t0) / BIN).astype(int)
            np.add.at(counts[:, c], k[(k >= 0) & (k < n)], 1.0)
    tk_true = s.t0 + kin_lag + np.arange(int(s.seconds * kin_rate)) / kin_rate
    pos = s.position(tk_true)
    tk_stamped = tk_true - kin_clock_offset  # the cursor PC's clock; offset back to ours = kin_clock_offset
    offsets = np.column_stack([tk_stamped[::500], np.full(tk_stamped[::500].size, kin_clock_offset)])
    ch = s.channels
    streams = {
        "Amp_counts": RecordedStream(
            StreamInfo("Amp_counts", "SpikeCounts", ch, 250.0, "float32", tuple(f"e{c}" for c in range(ch)),
                       ("counts",) * ch, "amp-1"), counts, tb),
        "Cursor": RecordedStream(
            StreamInfo("Cursor", "Mocap", 2, kin_rate, "float32", ("cursor_x", "cursor_y"), ("mm", "mm"), "cursor-1"),
            pos.astype(np.float32), tk_stamped, offsets),
        "Trial_markers": RecordedStream(
            StreamInfo("Trial_markers", "Markers", 1, 0.0, "object", ("label",), (), "task-1"),
            np.array([f"reach_start {i}" for i in range(s.reach_starts.size)], dtype=object).reshape(-1, 1),
            s.reach_starts.copy()),
    }
    return write_xdf(path, Recording(streams, {"session": "labrecorder-style test"}))


def write_events_xdf(path: Path, s: Session, kin_times: np.ndarray) -> Path:
    """XDF with the spikes as an irregular ``(channel, unit)`` event stream and the cursor position
    sampled at ``kin_times``."""
    times, data = s.events()
    streams = {
        "spike_events": RecordedStream(
            StreamInfo("spike_events", "SpikeEvents", 2, 0.0, "int32", ("channel", "unit"), ("index", "index"), "amp",
                       {"channels": s.channels}), data, times),
        "cursor": RecordedStream(
            StreamInfo("cursor", "Position", 2, 250.0, "float64", ("x", "y"), ("mm", "mm"), "cursor"),
            s.position(kin_times), kin_times.copy()),
    }
    return write_xdf(path, Recording(streams, {}))


def write_nwb(path: Path, s: Session, *, rate: float = 1000.0) -> Path:
    """NWB in the Neural Latents Benchmark layout (see module docs), written with pynwb."""
    from pynwb import NWBHDF5IO, NWBFile, TimeSeries
    from pynwb.behavior import Position

    nwb = NWBFile(session_description="spikeloop test reaching session", identifier="spikeloop-test",
                  session_start_time=datetime(2026, 1, 1, tzinfo=timezone.utc))
    dev = nwb.create_device(name="Utah array")
    grp = nwb.create_electrode_group(name="M1", description="96-ch array", location="M1", device=dev)
    for c in range(s.channels):
        nwb.add_electrode(group=grp, location="M1")
    nwb.add_unit_column(name="obs_intervals_note", description="unused text column")
    for c in range(s.channels):  # units in electrode order, as the NLB files list them
        for u in range(s.units):
            nwb.add_unit(spike_times=s.unit_times[u][c], electrodes=[c], obs_intervals=[[s.t0, s.t0 + s.seconds]],
                         obs_intervals_note="")
    t = s.t0 + np.arange(int(s.seconds * rate)) / rate
    pos = s.position(t)
    beh = nwb.create_processing_module(name="behavior", description="cursor and finger")
    beh.add(TimeSeries(name="cursor_pos", data=pos, unit="mm", starting_time=float(s.t0), rate=rate))
    beh.add(TimeSeries(name="finger_vel", data=np.gradient(pos, 1 / rate, axis=0) / 10.0, unit="cm/s",
                       timestamps=t))
    position = Position(name="Position")
    position.create_spatial_series(name="hand", data=pos / 1000.0, reference_frame="screen centre",
                                   unit="meters", timestamps=t)
    beh.add(position)
    for a, b in zip(s.reach_starts, [*s.reach_starts[1:], s.t0 + s.seconds]):
        nwb.add_trial(start_time=float(a), stop_time=float(b))
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return path


def write_neurobench_mat(path: Path, s: Session) -> np.ndarray:
    """NeuroBench ``.mat`` (v7.3) of the session on the 250 Hz grid ``t = t0 + 4 ms·k``; returns t."""
    import h5py

    n = int(round(s.seconds / BIN))
    t = s.t0 + BIN * np.arange(n)
    with h5py.File(path, "w") as f:
        refs = np.empty((s.units, s.channels), dtype=h5py.ref_dtype)
        grp = f.create_group("#refs#")
        for u in range(s.units):
            for c in range(s.channels):
                refs[u, c] = grp.create_dataset(f"u{u}c{c}", data=s.unit_times[u][c][None, :]).ref
        f.create_dataset("spikes", data=refs)
        f.create_dataset("cursor_pos", data=s.position(t).T)
        f.create_dataset("target_pos", data=s.target_at(t).T)
        f.create_dataset("t", data=t[None, :])
    return t
