"""Replay a recording (XDF or NeuroBench ``.mat``) as live streams, keeping inter-stream timing.

The replay walks a grid of windows of ``chunk_s`` seconds over the recording's time axis and, per
window, emits one packet per stream holding that stream's samples in the window, so streams stay
merged in time order (a packet of a later window never precedes one of an earlier window).

Paced mode (``speed`` a number): the recording is re-stamped onto the live clock,
``t_live = t_live0 + (t_orig - t0) / speed`` with ``t0`` the replay start in the recording and
``t_live0`` the clock when the first packet is read, and a packet is emitted only once its
newest sample's live time has come (``pipeline.clock.wait_until``), so no sample is ever stamped
ahead of the clock. Deadlines are absolute (no drift over long runs). When the graph falls behind,
every window already due is emitted at once as one bigger packet (counted as ``catchup``).

Mapping mode (params ``neural`` / ``kinematics`` / ``markers`` / ``kinematics_kind``): instead of
the recorded streams, the replay emits the decoding dataset that ``train`` and ``evaluate`` see
(:mod:`pipeline.recordings.mapping`): port ``spikes`` (the neural stream as counts per bin, spike
events binned at 4 ms) and port ``velocity`` (the kinematics aligned onto those bins, mm/s or the
recording's units per second), both at the bin timestamps. Any recording layout then feeds the
same graph as the bundled one.

``speed: max``: no waiting, timestamps stay the recording's own (shifted by whole loop periods
when looping, so they keep increasing) and ``virtual_time`` is the newest emitted time.
"""
from __future__ import annotations

import difflib
import math
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np

from pipeline.clock import SPIN_S, local_clock, wait_until
from pipeline.errors import RecordingError, UserError
from pipeline.node import Layout, Outputs, Source, param_value
from pipeline.packet import Packet, StreamInfo

_TOL = 1e-6
"""Timestamps within 1 µs of a window edge belong to the later window (float rounding of grids)."""
MAPPED_PORTS = ("spikes", "velocity")
"""Output ports of a replay in mapping mode."""
AUTO_CHUNK_MAX_S = 1.0
"""``chunk_s: auto`` at ``speed: max``: 1 s windows (throughput; outputs equal 4 ms packets')."""
AUTO_CHUNK_PACED_S = 0.004
"""``chunk_s: auto`` when paced: one 250 Hz sample per packet (latency)."""
MAX_CATCHUP_S = 1.0
"""A catch-up packet holds at most this much recording time (s)."""


def _nearest(name: str, names: list[str]) -> str:
    close = difflib.get_close_matches(name, names, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _select_streams(path: Path, streams: list[str] | None, neural: str | None, kinematics: str | None,
                    markers: str | None, kinematics_kind: str | None) -> tuple[list[str], dict, Any]:
    """The output port names, the recording's stream descriptions and the mapping (or None)."""
    from pipeline.recordings import recording_infos
    from pipeline.recordings.mapping import StreamMapping

    infos = recording_infos(path)  # checks the file exists and is well-formed
    names = list(infos)
    mapping: StreamMapping | None = None
    if neural is not None or kinematics is not None:
        if streams is not None and (isinstance(streams, str) or not set(streams) <= set(MAPPED_PORTS)):
            raise UserError(f"replay: with a mapping ('neural'/'kinematics') the ports are "
                            f"{list(MAPPED_PORTS)}; 'streams' may only choose among them, got {streams!r}")
        mapping = StreamMapping.from_params(neural, kinematics, markers, kinematics_kind)
        for s in (mapping.neural, mapping.kinematics, mapping.markers):
            if s is not None and s not in infos:
                raise RecordingError(
                    f"{path}: no stream {s!r}{_nearest(str(s), names)} (streams: {', '.join(names)})"
                )
        names = list(dict.fromkeys(streams)) if streams else list(MAPPED_PORTS)
        streams = None
    elif markers is not None or kinematics_kind is not None:
        raise UserError("replay: 'markers'/'kinematics_kind' need a mapping: give 'neural' and/or 'kinematics'")
    if streams is not None:
        if isinstance(streams, str) or not streams:
            raise UserError(f"replay: streams must be a non-empty list of names, got {streams!r}")
        for s in streams:
            if s not in infos:
                raise RecordingError(
                    f"{path}: no stream {s!r}{_nearest(str(s), names)} (streams: {', '.join(names)})"
                )
        names = list(dict.fromkeys(streams))
    return names, infos, mapping


class Replay(Source):
    """Replay streams of a recording.

    Params:
        path: recording file (``.xdf``, ``.xdfz``, ``.xdf.gz``, NeuroBench ``.mat``).
        streams: names of the streams to replay, one output port each (default: all streams).
        speed: ``"max"`` (as fast as the graph consumes) or a real-time factor > 0 (1.0 = live).
        loop: start again at the beginning when the recording ends (never exhausts).
        start_s: seconds to skip from the start of the recording (the earliest selected sample).
        chunk_s: seconds of recording per window/packet (0.004 = one 250 Hz sample per packet:
            lowest latency; larger windows mean fewer, bigger packets), or ``"auto"`` (default):
            1 s at ``speed: max`` (throughput: nodes carry their state across packets, so the
            outputs are the same as with 4 ms packets, about 20x sooner), 4 ms when paced.
        neural, kinematics, markers, kinematics_kind: mapping mode (see the module docs): names
            of the neural, kinematics and marker streams, and ``auto``/``position``/``velocity``.
            Giving ``neural`` or ``kinematics`` turns it on (the other defaults to ``spikes`` /
            ``velocity``); ``streams`` may then only choose among the ports ``spikes``, ``velocity``.

    Output ports: one per stream name, carrying the recording's stream description; in mapping
    mode ``spikes`` and ``velocity``.
    """

    kind = "replay"

    @classmethod
    def layout(cls, params: dict[str, Any]) -> Layout:
        """One output port per selected stream (read from the recording's header)."""
        path = params.get("path")
        if not path:
            raise UserError("replay: param 'path' (a recording file) is required")
        names, _, _ = _select_streams(Path(path), *(param_value(cls, params, k) for k in
                                                    ("streams", "neural", "kinematics", "markers", "kinematics_kind")))
        return Layout((), tuple(names))

    def __init__(self, path: str, streams: list[str] | None = None, speed: float | Literal["max"] = 1.0,
                 loop: bool = False, start_s: float = 0.0, chunk_s: float | Literal["auto"] = "auto",
                 neural: str | None = None, kinematics: str | None = None, markers: str | None = None,
                 kinematics_kind: Literal["auto", "position", "velocity"] | None = None) -> None:
        if not path:
            raise UserError("replay: param 'path' (a recording file) is required")
        if speed != "max" and not (isinstance(speed, (int, float)) and not isinstance(speed, bool) and speed > 0):
            raise UserError(f"replay: speed must be 'max' or a number > 0, got {speed!r}")
        if chunk_s == "auto":
            chunk_s = AUTO_CHUNK_MAX_S if speed == "max" else AUTO_CHUNK_PACED_S
        if not (isinstance(chunk_s, (int, float)) and not isinstance(chunk_s, bool) and chunk_s > 0):
            raise UserError(f"replay: chunk_s must be 'auto' or a number > 0 s, got {chunk_s!r}")
        if start_s < 0:
            raise UserError(f"replay: start_s must be >= 0 s, got {start_s!r}")
        self.path = Path(path)
        names, infos, self.mapping = _select_streams(self.path, streams, neural, kinematics, markers, kinematics_kind)
        self.stream_names = names
        self.outputs = tuple(names)
        self.speed = speed
        self.loop = bool(loop)
        self.start_s = float(start_s)
        self.chunk_s = float(chunk_s)
        self._infos = {n: infos[n] for n in names} if self.mapping is None else {}
        self._data: dict[str, np.ndarray] = {}
        self._stamps: dict[str, np.ndarray] = {}
        self._pos: dict[str, int] = {}
        self._first: dict[str, int] = {}
        self._packets = {n: 0 for n in names}
        self._loops = 0
        self._catchup = 0
        self._k = 0  # next window index on the replay axis u (s since t0, loops included)
        self._live0: float | None = None
        self._u_done = 0.0
        self._opened = False

    # --- opening ---------------------------------------------------------------------------
    def open(self, inputs: dict[str, StreamInfo]) -> dict[str, StreamInfo]:
        from pipeline.recordings import load_recording

        rec = self._mapped() if self.mapping is not None else load_recording(self.path)
        firsts = []
        for n in self.stream_names:
            s = rec.stream(n)
            ts = np.asarray(s.timestamps, dtype=np.float64)
            if ts.size > 1 and np.any(np.diff(ts) < 0):
                bad = int(np.flatnonzero(np.diff(ts) < 0)[0]) + 1
                raise RecordingError(f"{self.path}: stream {n!r} timestamps go backwards at sample {bad}")
            self._data[n], self._stamps[n] = s.data, ts
            if ts.size:
                firsts.append(ts[0])
        if not firsts:
            raise RecordingError(f"{self.path}: the selected streams hold no samples")
        t_first = float(min(firsts))
        last = max(float(self._stamps[n][-1]) for n in self.stream_names if self._stamps[n].size)
        self.t0 = t_first + self.start_s
        if self.t0 > last:
            raise UserError(
                f"replay {self.path}: start_s {self.start_s:g} s is past the end of the recording "
                f"({last - t_first:.3f} s long)"
            )
        rates = [i.nominal_rate for i in self._infos.values() if i.nominal_rate > 0]
        step = 1.0 / max(rates) if rates else self.chunk_s
        self.period = (last - self.t0) + step  # one pass, so loops keep the sample spacing
        for n in self.stream_names:
            self._first[n] = int(np.searchsorted(self._stamps[n], self.t0 - _TOL, side="left"))
            self._pos[n] = self._first[n]
        self._opened = True
        out = {}
        for n, info in self._infos.items():
            meta = dict(info.metadata)
            meta.update({"replay_of": str(self.path), "speed": self.speed})
            out[n] = info.with_(metadata=meta)
        return out

    def _mapped(self):
        """The decoding dataset of the recording as a two-stream Recording (ports spikes, velocity)."""
        from pipeline.recordings import load_recording
        from pipeline.recordings.base import RecordedStream, Recording
        from pipeline.recordings.mapping import build_dataset

        try:  # no train/val/test split needed here, so no minimum number of segments
            d = build_dataset(load_recording(self.path), self.mapping)
        except RecordingError as exc:
            raise RecordingError(f"{self.path}: {exc}") from None
        n_ch, rate, stamps = d["spikes"].shape[1], float(d["rate_hz"]), d["timestamps"]
        src = self.path.stem
        spikes = StreamInfo("spikes", "SpikeCounts", n_ch, rate, "float32", tuple(f"ch{c}" for c in range(n_ch)),
                            ("counts",) * n_ch, src, {"mapped_from": self.mapping.neural,
                                                      "alignment": d["alignment"].to_dict()})
        unit = d["velocity_unit"]
        vel = StreamInfo("velocity", "Velocity", 2, rate, "float32", ("vx", "vy"), (unit, unit) if unit else (), src,
                         {"mapped_from": self.mapping.kinematics})
        self._infos = {n: i for n, i in (("spikes", spikes), ("velocity", vel)) if n in self.stream_names}
        return Recording({"spikes": RecordedStream(spikes, d["spikes"], stamps),
                          "velocity": RecordedStream(vel, d["velocity"], stamps)})

    # --- reading ---------------------------------------------------------------------------
    def _u(self, n: str, i: int) -> float:
        """Replay-axis time (s since t0, loops included) of sample ``i`` of stream ``n``."""
        return float(self._stamps[n][i]) - self.t0 + self._loops * self.period

    def _next_u(self) -> float | None:
        pending = [self._u(n, self._pos[n]) for n in self.stream_names if self._pos[n] < self._stamps[n].size]
        return min(pending) if pending else None

    def _wrap(self) -> bool:
        """At the end of a pass: start the next loop (True) or report exhaustion (False)."""
        if not self.loop:
            return False
        self._loops += 1
        for n in self.stream_names:
            self._pos[n] = self._first[n]
        return True

    def read(self) -> Outputs | None:
        if not self._opened:
            raise RuntimeError("replay: open() must be called before read()")
        u_next = self._next_u()
        if u_next is None:
            if not self._wrap():
                return None
            u_next = self._next_u()
            assert u_next is not None
        c = self.chunk_s
        k = max(self._k, int(math.floor((u_next + _TOL) / c)))  # skip empty windows
        k_end = k + 1
        paced = self.speed != "max"
        if paced:
            now = local_clock()
            if self._live0 is None:
                self._live0 = now - u_next / float(self.speed)
            due_u = (now - self._live0) * float(self.speed)
            k_due = int(math.floor((due_u + _TOL) / c))
            k_end = max(k_end, min(k_due, k + max(1, int(MAX_CATCHUP_S / c))))
        u_end = k_end * c - _TOL
        # the samples of every stream in windows [k, k_end)
        spans: dict[str, tuple[int, int]] = {}
        newest_u = -math.inf
        for n in self.stream_names:
            i = self._pos[n]
            ts = self._stamps[n]
            j = int(np.searchsorted(ts, u_end + self.t0 - self._loops * self.period, side="left"))
            if j > i:
                spans[n] = (i, j)
                newest_u = max(newest_u, self._u(n, j - 1))
        if paced:
            deadline = self._live0 + newest_u / float(self.speed)
            now = local_clock()
            if deadline - now > self.max_block_s:  # not due yet: block briefly, let others run
                time.sleep(min(self.max_block_s, deadline - now - 2 * SPIN_S))  # wake early, spin later
                self._k = k
                return {}
            now = wait_until(deadline)
            if k_end > k + 1:
                self._catchup += 1
        out: Outputs = {}
        t_enter = local_clock()
        for n, (i, j) in spans.items():
            stamps = self._stamps[n][i:j] - self.t0 + self._loops * self.period  # u
            stamps = self._live0 + stamps / float(self.speed) if paced else stamps + self.t0
            out[n] = Packet(np.array(self._data[n][i:j], copy=True), stamps, t_enter)
            self._pos[n] = j
            self._packets[n] += 1
        self._k = k_end
        self._u_done = newest_u
        if not paced:
            self.virtual_time = float(newest_u + self.t0)
        return out

    # --- bookkeeping -----------------------------------------------------------------------
    def progress(self) -> tuple[float, float] | None:
        if self.loop or not self._opened:
            return None
        return (max(0.0, self._u_done), self.period)

    def counters(self) -> dict[str, int]:
        out = {f"packets.{n}": c for n, c in self._packets.items()}
        out["loops"] = self._loops
        out["catchup"] = self._catchup
        return out

    def state(self) -> dict[str, Any]:
        return {"pos": dict(self._pos), "k": self._k, "loops": self._loops, "u_done": self._u_done,
                "packets": dict(self._packets), "catchup": self._catchup}

    def restore(self, state: dict[str, Any]) -> None:
        """Resume at the saved position; a paced replay re-anchors its live clock at the next read."""
        self._pos = {n: int(state["pos"][n]) for n in self.stream_names}
        self._k = int(state["k"])
        self._loops = int(state["loops"])
        self._u_done = float(state["u_done"])
        self._packets = {n: int(state["packets"].get(n, 0)) for n in self.stream_names}
        self._catchup = int(state.get("catchup", 0))
        self._live0 = None
