"""Read Neurodata Without Borders (NWB 2.x) files as a :class:`~pipeline.recordings.base.Recording`.

Laid out as the public intracortical reaching sets are (DANDI 000128/000129 / Neural Latents
Benchmark, the Sabes-lab NWB conversions, DANDI 000127):

* ``units`` table → one irregular stream ``spikes`` (type ``SpikeEvents``): one row per spike,
  columns ``(channel, unit)``, timestamps = spike times in seconds (session time). ``channel``
  is the row of the unit's first electrode in the ``electrodes`` table when the units table has
  an ``electrodes`` column, else the unit's own index; ``unit`` numbers the units of a channel
  0, 1, ... in table order. The stream's metadata gives ``channels`` (the electrode count).
  Bin it with a mapping (``pipeline.recordings.mapping``) or the ``event_binner`` node.
* ``processing/behavior`` → one regular stream per ``TimeSeries`` / ``SpatialSeries``, also those
  inside ``Position``, ``BehavioralTimeSeries``, ``CompassDirection``, ``EyeTracking``
  containers, named by the series (``cursor_pos``, ``hand_vel``, ...): data times ``conversion``
  (plus ``offset``), in the series' unit; timestamps from ``timestamps`` or ``starting_time +
  i / rate``. Type ``Velocity`` when the name has "vel", else ``Position`` for spatial series
  and names with "pos", else ``TimeSeries``; channel labels ``x, y, z`` (``vx, vy, vz`` for
  velocities).
* ``intervals/trials`` → a string marker stream ``trials`` (``trial <id>`` at each start time),
  usable as ``--markers trials`` to cut reach segments.

Only data is read (pynwb/h5py, no code from the file runs). Errors name the file.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import RecordingError
from pipeline.packet import StreamInfo
from pipeline.recordings.base import RecordedStream, Recording

BEHAVIOR_MODULES = ("behavior", "Behavior", "behaviour")


def _series_of(obj: Any) -> list[Any]:
    """TimeSeries inside a behaviour data interface (the interface itself if it is one)."""
    from pynwb.base import TimeSeries

    if isinstance(obj, TimeSeries):
        return [obj]
    for attr in ("spatial_series", "time_series"):
        inner = getattr(obj, attr, None)
        if isinstance(inner, dict) or hasattr(inner, "values"):
            return [s for s in inner.values() if isinstance(s, TimeSeries)]
    return []


def _series_stream(ts: Any, name: str, source: str) -> RecordedStream:
    from pynwb.behavior import SpatialSeries

    data = np.asarray(ts.data[()], dtype=np.float64)
    if data.ndim == 1:
        data = data[:, None]
    if data.ndim != 2:
        raise RecordingError(f"{source}: behaviour series {name!r} has {data.ndim}-D data; expected (time, channels)")
    data = data * float(ts.conversion or 1.0) + float(getattr(ts, "offset", 0.0) or 0.0)
    n = data.shape[0]
    if ts.timestamps is not None:
        stamps = np.asarray(ts.timestamps[()], dtype=np.float64).reshape(-1)
        d = np.diff(stamps)
        rate = float(1.0 / np.median(d)) if d.size and np.median(d) > 0 else 0.0
    else:
        rate = float(ts.rate)
        stamps = float(ts.starting_time or 0.0) + np.arange(n) / rate
    if stamps.shape[0] != n:
        raise RecordingError(f"{source}: behaviour series {name!r} has {n} samples but {stamps.shape[0]} timestamps")
    low = name.lower()
    is_vel = "vel" in low
    typ = "Velocity" if is_vel else ("Position" if isinstance(ts, SpatialSeries) or "pos" in low else "TimeSeries")
    k = data.shape[1]
    axes = ("x", "y", "z")
    labels = tuple((("v" if is_vel else "") + axes[i]) if k <= 3 else f"{name}{i}" for i in range(k))
    unit = str(ts.unit or "")
    info = StreamInfo(name, typ, k, round(rate, 6), "float64", labels, (unit,) * k if unit else (), source_id=source,
                      metadata={"nwb_path": ts.data.name if hasattr(ts.data, "name") else name})
    return RecordedStream(info, data, stamps)


def _units_stream(units: Any, n_electrodes: int, source: str) -> RecordedStream | None:
    if units is None or len(units) == 0:
        return None
    cols = set(units.colnames)
    if "spike_times" not in cols:
        raise RecordingError(f"{source}: the units table has no spike_times column (columns: {', '.join(sorted(cols))})")
    col = {c.name: c for c in units.columns}  # units["x"] gives the VectorIndex of a ragged column
    electrodes = None
    if "electrodes" in col:
        flat = np.asarray(col["electrodes"].data[()], dtype=np.int64).reshape(-1)
        if "electrodes_index" in col:  # ragged: several electrodes per unit; take the first
            e_end = np.asarray(col["electrodes_index"].data[()], dtype=np.int64)
            e_start = np.concatenate([[0], e_end[:-1]])
            electrodes = np.where(e_end > e_start, flat[np.minimum(e_start, max(flat.size - 1, 0))], -1)
        else:
            electrodes = flat
    flat_t = np.asarray(col["spike_times"].data[()], dtype=np.float64).reshape(-1)
    if "spike_times_index" in col:
        ends = np.asarray(col["spike_times_index"].data[()], dtype=np.int64)
    else:  # one spike per unit (not ragged)
        ends = np.arange(1, flat_t.size + 1)
    starts = np.concatenate([[0], ends[:-1]])
    n_units = ends.size
    ch = electrodes if electrodes is not None else np.arange(n_units)
    seen: dict[int, int] = {}
    times, chans, unit_ids = [], [], []
    for u in range(n_units):
        c = int(ch[u])
        j = seen.get(c, 0)
        seen[c] = j + 1
        t = flat_t[starts[u]:ends[u]]
        times.append(t)
        chans.append(np.full(t.size, c, dtype=np.int32))
        unit_ids.append(np.full(t.size, j, dtype=np.int32))
    t_all = np.concatenate(times) if times else np.zeros(0)
    order = np.argsort(t_all, kind="stable")
    data = np.column_stack([np.concatenate(chans)[order], np.concatenate(unit_ids)[order]]).astype(np.int32)
    n_ch = max(n_electrodes if electrodes is not None else 0, int(ch.max()) + 1 if n_units else 0)
    info = StreamInfo("spikes", "SpikeEvents", 2, 0.0, "int32", ("channel", "unit"), ("index", "index"), source,
                      {"channels": n_ch, "units": n_units, "from": "NWB units table"})
    return RecordedStream(info, data.reshape(-1, 2), t_all[order])


def read_nwb(path: str | Path) -> Recording:
    """Read the units, behaviour series and trials of an NWB file (layout in the module docs)."""
    try:
        from pynwb import NWBHDF5IO
    except ImportError as exc:  # pragma: no cover - pynwb is a dependency
        raise RecordingError(f"{path}: reading NWB needs pynwb ({exc})") from None
    path = Path(path)
    if not path.is_file():
        raise RecordingError(f"recording not found: {path}")
    source = path.stem
    try:
        io = NWBHDF5IO(str(path), "r", load_namespaces=True)
        nwb = io.read()
    except Exception as exc:  # pynwb/hdmf/h5py raise assorted errors on a bad file
        raise RecordingError(f"{path}: not a readable NWB file ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from None
    streams: dict[str, RecordedStream] = {}
    try:
        n_el = len(nwb.electrodes) if nwb.electrodes is not None else 0
        s = _units_stream(nwb.units, n_el, source)
        if s is not None:
            streams["spikes"] = s
        for mod_name in BEHAVIOR_MODULES:
            if mod_name not in nwb.processing:
                continue
            for iface_name, iface in nwb.processing[mod_name].data_interfaces.items():
                for ts in _series_of(iface):
                    name = ts.name if ts.name not in streams else f"{iface_name}_{ts.name}"
                    streams[name] = _series_stream(ts, name, source)
        if nwb.trials is not None and len(nwb.trials):
            start = np.asarray(nwb.trials["start_time"].data[()], dtype=np.float64)
            ids = np.asarray(nwb.trials.id.data[()])
            order = np.argsort(start, kind="stable")
            info = StreamInfo("trials", "Markers", 1, 0.0, "object", ("trial",), (), source)
            marks = np.array([f"trial {i}" for i in ids[order]], dtype=object).reshape(-1, 1)
            streams["trials"] = RecordedStream(info, marks, start[order])
        meta = {"source": "nwb", "file": path.name, "session_description": str(nwb.session_description or ""),
                "identifier": str(nwb.identifier or "")}
    except RecordingError:
        raise
    except Exception as exc:
        raise RecordingError(f"{path}: unexpected NWB layout ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from None
    finally:
        io.close()
    if not streams:
        raise RecordingError(f"{path}: no units table and no processing/behavior series: nothing to replay")
    return Recording(streams, meta)
