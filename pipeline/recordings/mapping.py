"""Recording → decoding dataset: which stream is the neural input, which the kinematics, how they align.

A :class:`StreamMapping` names the streams (defaults: today's ``spikes`` / ``velocity`` /
``target``, so the bundled recordings need no options) and :func:`build_dataset` turns a
recording into aligned arrays on the neural bins. The rules (the README repeats them):

1. **Clock offsets.** Every stream's timestamps are first moved onto the recording computer's
   clock with its XDF clock offsets, as pyxdf's ``synchronize_clocks`` does: ``t + a + b·t`` with
   ``(a, b)`` a least-squares line through the (collection time, offset) pairs; one pair: a
   constant; none: unchanged.
2. **Neural stream** (``neural``): a regular stream (``nominal_rate > 0``) is taken as spike counts
   per bin, one bin per sample, at its own timestamps. An irregular stream of spike events (one
   row per spike, columns ``channel, unit`` by label, else columns 0 and 1) is binned on the grid
   of the ``event_binner`` node: bins of ``bin_s`` (4 ms) anchored at 0 on the clock,
   ``k = floor(t / bin_s)``, each bin stamped with its end ``(k + 1)·bin_s``; the units of a
   channel are ORed (0/1 per channel per bin, as NeuroBench); channels = the largest channel
   index + 1.
3. **Kinematics** (``kinematics``): two channels (labelled ``…x`` / ``…y``, else the first two).
   Whether they are a *position* or a *velocity* comes from ``kinematics_kind`` or, when
   ``auto``, from the units (``…/s`` = velocity, ``mm``/``m``/``cm``/``px`` = position), then the
   stream type and channel labels (``Velocity``/``vx`` vs ``Position``/``x``), then its name.
   Samples with NaN are left out (counted). Values are linearly interpolated onto the neural bin
   timestamps; a position becomes a velocity by NeuroBench's gradient along the bins
   (``np.gradient`` over the bin times: central differences, one-sided at the ends), in
   units per second. Neural bins outside the kinematics' time range are dropped (counted). When
   the kinematics are sampled exactly at the bin timestamps their values are used as they are.
4. **Alignment error** (:class:`Alignment`): the largest and median distance from a bin to the
   nearest kinematics sample, and the leave-one-out residual of linear interpolation on the
   kinematics themselves (each sample predicted from its two neighbours; RMS, also as a fraction
   of the signal's standard deviation) — an upper bound on what interpolation onto the bins adds.
5. **Reach segments** (for the NeuroBench split): from ``markers`` if given (a new segment starts
   at the first bin at or after each marker; the stretch before the first marker is a segment
   too); else from a ``target`` stream if the recording has one (zero-order hold onto the bins; a
   new segment after each target change, NeuroBench's rule); else fixed chunks of ``segment_s``
   seconds. Segments are split chronologically 50/25/25 % (``reaching.split_segments``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from pipeline.errors import RecordingError, UserError
from pipeline.recordings.base import RecordedStream, Recording

DEFAULT_NEURAL = "spikes"
DEFAULT_KINEMATICS = "velocity"
DEFAULT_TARGET = "target"
BIN_S = 0.004
"""Bin width (s) for spike-event streams: NeuroBench's 4 ms."""
SEGMENT_S = 2.0
"""Length (s) of the fixed chunks used as segments when there are neither markers nor targets."""
KINEMATICS_KINDS = ("auto", "position", "velocity")

_POSITION_UNITS = ("mm", "m", "cm", "px", "pixel", "pixels", "deg", "rad", "a.u.")


@dataclass(frozen=True)
class StreamMapping:
    """Which streams of a recording form the decoding dataset.

    Attributes:
        neural: name of the neural stream (regular counts or irregular spike events).
        kinematics: name of the kinematics stream (position or velocity, 2 channels used).
        markers: name of a marker stream whose events start reach segments (None: none).
        kinematics_kind: ``auto``, ``position`` or ``velocity``.
        bin_s: bin width for spike events, s.
        segment_s: fixed segment length, s, when there are neither markers nor a target stream.
    """

    neural: str = DEFAULT_NEURAL
    kinematics: str = DEFAULT_KINEMATICS
    markers: str | None = None
    kinematics_kind: str = "auto"
    bin_s: float = BIN_S
    segment_s: float = SEGMENT_S

    def __post_init__(self) -> None:
        if self.kinematics_kind not in KINEMATICS_KINDS:
            raise UserError(f"kinematics_kind must be one of {', '.join(KINEMATICS_KINDS)}, got {self.kinematics_kind!r}")
        if not self.bin_s > 0:
            raise UserError(f"bin_s must be > 0 s, got {self.bin_s!r}")
        if not self.segment_s > 0:
            raise UserError(f"segment_s must be > 0 s, got {self.segment_s!r}")

    @classmethod
    def from_params(cls, neural: str | None = None, kinematics: str | None = None, markers: str | None = None,
                    kinematics_kind: str | None = None) -> "StreamMapping":
        """A mapping from optional CLI options / node params (None = the default)."""
        return cls(neural=neural or DEFAULT_NEURAL, kinematics=kinematics or DEFAULT_KINEMATICS,
                   markers=markers or None, kinematics_kind=kinematics_kind or "auto")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Alignment:
    """How the dataset was built and how well the kinematics fit the neural bins.

    Times in seconds; residuals in the kinematics' own units (velocity: units/s).
    """

    neural: str
    neural_kind: str  # "counts" or "events"
    kinematics: str
    kinematics_kind: str  # "position" or "velocity"
    kinematics_channels: tuple[int, int]
    kind_reason: str
    bins: int
    bins_dropped: int
    kinematics_nan: int
    exact: bool
    max_dt_s: float
    median_dt_s: float
    interp_rms: float
    interp_rel: float
    clock_offsets_s: dict[str, float] = field(default_factory=dict)
    segments_from: str = ""
    segments: int = 0

    def lines(self) -> list[str]:
        """A short human report, one fact per line."""
        out = [
            f"neural: {self.neural!r} ({self.neural_kind}) -> {self.bins} bins"
            + (f", {self.bins_dropped} outside the kinematics' time range dropped" if self.bins_dropped else ""),
            f"kinematics: {self.kinematics!r} as {self.kinematics_kind} ({self.kind_reason}), "
            f"channels {self.kinematics_channels[0]},{self.kinematics_channels[1]}"
            + (f", {self.kinematics_nan} NaN samples left out" if self.kinematics_nan else ""),
        ]
        if self.exact:
            out.append("alignment: kinematics sampled at the bin timestamps (no interpolation)")
        else:
            out.append(f"alignment: |dt| to the nearest kinematics sample max {self.max_dt_s * 1e3:.3f} ms, "
                       f"median {self.median_dt_s * 1e3:.3f} ms")
            out.append(f"interpolation residual (leave-one-out): RMS {self.interp_rms:.4g} "
                       f"= {100 * self.interp_rel:.2f} % of the signal's std")
        offs = {k: v for k, v in self.clock_offsets_s.items() if v}
        if offs:
            out.append("clock offsets applied: " + ", ".join(f"{k} {v * 1e3:+.3f} ms" for k, v in offs.items()))
        out.append(f"segments: {self.segments} from {self.segments_from}")
        return out

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["kinematics_channels"] = list(self.kinematics_channels)
        return d


def corrected_timestamps(s: RecordedStream) -> tuple[np.ndarray, float]:
    """Timestamps (s) of ``s`` on the recording computer's clock, and the mean offset applied (s).

    XDF clock offsets are (collection time, offset) pairs with ``local = remote + offset``; as in
    pyxdf, a least-squares line through them is applied (a constant for one pair).
    """
    ts = np.asarray(s.timestamps, dtype=np.float64)
    off = np.asarray(s.clock_offsets, dtype=np.float64).reshape(-1, 2)
    off = off[np.all(np.isfinite(off), axis=1)]
    if off.shape[0] == 0 or ts.size == 0:
        return ts, 0.0
    if off.shape[0] == 1 or np.ptp(off[:, 0]) == 0:
        a, b = float(np.mean(off[:, 1])), 0.0
    else:
        b, a = np.polyfit(off[:, 0], off[:, 1], 1)
    corr = a + b * ts
    return ts + corr, float(np.mean(corr))


def _check_increasing(name: str, ts: np.ndarray) -> None:
    if ts.size > 1:
        d = np.diff(ts)
        if np.any(d < 0):
            raise RecordingError(f"stream {name!r}: timestamps go backwards at sample {int(np.flatnonzero(d < 0)[0]) + 1}")


def event_columns(labels: tuple[str, ...], names: tuple[str, ...] = ("channel", "unit")) -> tuple[int, ...]:
    """Column indices of ``names`` by (case-insensitive) label, else 0, 1, ..."""
    low = [label.lower() for label in labels]
    if low and all(n in low for n in names):
        return tuple(low.index(n) for n in names)
    return tuple(range(len(names)))


def bin_events(times: np.ndarray, channels: np.ndarray, n_channels: int, k0: int, n_bins: int,
               bin_s: float = BIN_S) -> np.ndarray:
    """Spike events → 0/1 per channel per bin on the ``event_binner`` grid.

    Args:
        times: shape ``(events,)`` s. channels: shape ``(events,)`` integer channel index.
        n_channels: frame width. k0: index of the first bin (``floor(t / bin_s)``). n_bins: bins.

    Returns:
        shape ``(n_bins, n_channels)`` float32; bin ``i`` covers ``[(k0+i)·bin_s, (k0+i+1)·bin_s)``.
    """
    out = np.zeros((n_bins, n_channels), dtype=np.float32)
    if times.size:
        k = np.floor(times / bin_s).astype(np.int64) - k0
        ok = (k >= 0) & (k < n_bins) & (channels >= 0) & (channels < n_channels)
        out[k[ok], channels[ok].astype(np.int64)] = 1.0
    return out


def _kinematics_kind(s: RecordedStream, forced: str) -> tuple[str, str]:
    """(``position``|``velocity``, reason)."""
    if forced != "auto":
        return forced, "as asked"
    units = [u.lower().strip() for u in s.info.units if u]
    if units:
        if all("/s" in u or "per s" in u for u in units[:2]):
            return "velocity", f"units {s.info.units[0]!r}"
        if all(u in _POSITION_UNITS for u in units[:2]):
            return "position", f"units {s.info.units[0]!r}"
    for what, text in (("type", s.info.type), ("name", s.info.name)):
        t = text.lower()
        if "vel" in t:
            return "velocity", f"{what} {text!r}"
        if any(w in t for w in ("pos", "cursor", "hand", "finger", "mocap", "marker")):
            return "position", f"{what} {text!r}"
    labels = [label.lower() for label in s.info.channel_labels[:2]]
    if labels and all(label.startswith("v") for label in labels):
        return "velocity", f"labels {', '.join(s.info.channel_labels[:2])}"
    if labels and all(label[-1:] in ("x", "y") for label in labels):
        return "position", f"labels {', '.join(s.info.channel_labels[:2])}"
    raise RecordingError(
        f"stream {s.info.name!r}: cannot tell whether it holds positions or velocities (type "
        f"{s.info.type!r}, units {list(s.info.units[:2])}); pass --kinematics-kind position|velocity"
    )


def _xy_channels(s: RecordedStream) -> tuple[int, int]:
    n = s.info.channel_count
    if n < 2:
        raise RecordingError(f"stream {s.info.name!r} has {n} channel(s); kinematics need 2 (x, y)")
    low = [label.lower() for label in s.info.channel_labels]
    if low:
        xs = [i for i, label in enumerate(low) if label.endswith("x")]
        ys = [i for i, label in enumerate(low) if label.endswith("y")]
        if xs and ys:
            return xs[0], ys[0]
    return 0, 1


def _interp_residual(t: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Leave-one-out residual of linear interpolation: RMS and RMS / std (both channels pooled)."""
    if t.size < 3:
        return 0.0, 0.0
    t0, t1, t2 = t[:-2], t[1:-1], t[2:]
    w = np.where(t2 > t0, (t1 - t0) / np.where(t2 > t0, t2 - t0, 1.0), 0.5)[:, None]
    pred = y[:-2] + w * (y[2:] - y[:-2])
    rms = float(np.sqrt(np.mean((y[1:-1] - pred) ** 2)))
    sd = float(np.std(y))
    return rms, (rms / sd if sd > 0 else 0.0)


def _nearest_dt(tk: np.ndarray, tb: np.ndarray) -> np.ndarray:
    i = np.clip(np.searchsorted(tk, tb), 1, tk.size - 1)
    return np.minimum(np.abs(tb - tk[i - 1]), np.abs(tk[i] - tb))


def _neural(rec: Recording, m: StreamMapping, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray, float, str, int, float]:
    """(bins (T, C) float32, bin timestamps (T,), rate Hz, kind, bins dropped, mean clock offset)."""
    s = rec.stream(m.neural)
    ts, off = corrected_timestamps(s)
    _check_increasing(m.neural, ts)
    if s.info.nominal_rate > 0:
        keep = (ts >= lo - 1e-9) & (ts <= hi + 1e-9)
        data = np.asarray(s.data[keep], dtype=np.float32)
        return data, ts[keep], float(s.info.nominal_rate), "counts", int(np.sum(~keep)), off
    if s.info.dtype == "object":
        raise RecordingError(f"stream {m.neural!r} holds strings (a marker stream?); the neural input must be "
                             f"spike counts or spike events (channel, unit)")
    col = event_columns(s.info.channel_labels)[0]
    ch = np.asarray(s.data[:, col], dtype=np.float64)
    n_ch = int(s.info.metadata.get("channels", 0) or 0)
    if ch.size:
        n_ch = max(n_ch, int(np.nanmax(ch)) + 1)
    if n_ch < 1:
        raise RecordingError(f"stream {m.neural!r}: no spike events and no channel count in its metadata")
    b = m.bin_s
    k_lo = int(np.ceil(lo / b - 1e-9)) - 1  # first bin whose end (k+1)·b >= lo
    k_hi = int(np.floor(hi / b + 1e-9)) - 1  # last bin whose end <= hi
    n = max(0, k_hi - k_lo + 1)
    bins = bin_events(ts, ch, n_ch, k_lo, n, b)
    stamps = (np.arange(k_lo, k_lo + n) + 1) * b
    return bins, stamps, 1.0 / b, "events", 0, off


def build_dataset(rec: Recording, mapping: StreamMapping | None = None) -> dict[str, Any]:
    """Align a recording into a decoding dataset.

    Returns a dict: ``spikes`` (T, C) float32 per bin; ``velocity`` (T, 2) float32 (units/s);
    ``timestamps`` (T,) s (bin timestamps, clock offsets applied); ``velocity_unit`` (e.g.
    ``mm/s``; empty when the stream has no units); ``rate_hz``; ``segments``
    [(start, stop), ...] covering 0..T; ``target`` (T, 2) float32 or None; ``alignment``
    (:class:`Alignment`). Raises RecordingError naming the stream when something does not fit.
    """
    m = mapping or StreamMapping()
    for name in (m.neural, m.kinematics, m.markers):
        if name is not None:
            rec.stream(name)  # clear error listing the streams
    ks = rec.stream(m.kinematics)
    if ks.info.dtype == "object":
        raise RecordingError(f"stream {m.kinematics!r} holds strings; kinematics must be numbers")
    tk, off_k = corrected_timestamps(ks)
    _check_increasing(m.kinematics, tk)
    cx, cy = _xy_channels(ks)
    yk = np.asarray(ks.data[:, [cx, cy]], dtype=np.float64)
    good = np.all(np.isfinite(yk), axis=1) & np.isfinite(tk)
    n_nan = int(np.sum(~good))
    tk, yk = tk[good], yk[good]
    if tk.size < 2:
        raise RecordingError(f"stream {m.kinematics!r}: {tk.size} usable sample(s); need at least 2")
    kind, reason = _kinematics_kind(ks, m.kinematics_kind)
    unit = ks.info.units[cx] if ks.info.units else ""
    vel_unit = (f"{unit}/s" if unit else "") if kind == "position" else unit
    spikes, tb, rate, nkind, dropped, off_n = _neural(rec, m, float(tk[0]), float(tk[-1]))
    T = tb.size
    if T < 2:
        raise RecordingError(f"streams {m.neural!r} and {m.kinematics!r} overlap in {T} bin(s); they must share a time range")
    exact = tk.size == T and np.array_equal(tk, tb)
    if exact:
        yb = yk
        dt = np.zeros(T)
    else:
        yb = np.column_stack([np.interp(tb, tk, yk[:, 0]), np.interp(tb, tk, yk[:, 1])])
        dt = _nearest_dt(tk, tb)
    if kind == "position":
        vel = np.gradient(yb, tb, axis=0)
    else:
        vel = yb
    rms, rel = (0.0, 0.0) if exact else _interp_residual(tk, yk)
    offsets = {m.neural: off_n, m.kinematics: off_k}

    target = None
    if m.markers is not None:
        ms = rec.stream(m.markers)
        tm, offsets[m.markers] = corrected_timestamps(ms)
        starts = np.searchsorted(tb, tm - 1e-9, side="left")
        bounds = np.unique(np.concatenate([[0], starts[(starts > 0) & (starts < T)], [T]]))
        segments = [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]
        seg_from = f"markers {m.markers!r} ({tm.size} events)"
    elif DEFAULT_TARGET in rec.streams and rec.streams[DEFAULT_TARGET].info.channel_count >= 2 \
            and rec.streams[DEFAULT_TARGET].timestamps.size:
        from pipeline.recordings.reaching import segments_from_target

        tg = rec.streams[DEFAULT_TARGET]
        tt, offsets[DEFAULT_TARGET] = corrected_timestamps(tg)
        tdata = np.asarray(tg.data[:, :2], dtype=np.float64)
        if tt.size == T and np.array_equal(tt, tb):
            tgt = tdata
        else:
            tgt = tdata[np.clip(np.searchsorted(tt, tb + 1e-9, side="right") - 1, 0, tt.size - 1)]
        target = tgt.astype(np.float32)
        segments = segments_from_target(tgt)
        seg_from = f"target changes ({DEFAULT_TARGET!r} stream)"
    else:
        step = max(1, int(round(m.segment_s * rate)))
        bounds = list(range(0, T, step)) + [T]
        segments = [(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
        seg_from = f"fixed {m.segment_s:g} s chunks (no markers, no target stream)"
    align = Alignment(
        neural=m.neural, neural_kind=nkind, kinematics=m.kinematics, kinematics_kind=kind,
        kinematics_channels=(cx, cy), kind_reason=reason, bins=T, bins_dropped=dropped,
        kinematics_nan=n_nan, exact=bool(exact), max_dt_s=float(dt.max()), median_dt_s=float(np.median(dt)),
        interp_rms=rms, interp_rel=rel, clock_offsets_s=offsets, segments_from=seg_from, segments=len(segments),
    )
    return {"spikes": np.asarray(spikes, dtype=np.float32), "velocity": np.asarray(vel, dtype=np.float32),
            "timestamps": tb, "rate_hz": rate, "segments": segments, "target": target, "alignment": align,
            "velocity_unit": vel_unit}
