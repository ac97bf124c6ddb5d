"""``spikeloop play RECORDING``: serve every stream of a recording as live LSL streams.

Each stream gets an LSL outlet with its recorded description (name, type, channel count, rate,
dtype, channel labels and units in the LSL ``desc``, and spikeloop metadata). String (marker)
streams are served as LSL string streams. Samples are re-stamped
onto the live clock keeping their original timing across all streams::

    t_live = t_start + (t_recorded - t0) / speed          (t0: the earliest selected sample)

and each sample is pushed once its live time has come, with that time as its LSL timestamp, so no
sample is ever stamped ahead of the clock (an LSL client can measure latency against it). With
``--loop`` the recording starts over after its last sample, shifted by its length plus one sample
period, so timestamps keep increasing.

This is the way to try a live session without an amplifier: ``spikeloop play`` in one terminal,
``spikeloop run configs/live_decode.yaml`` in another.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from pipeline.clock import local_clock, wait_until
from pipeline.errors import UserError

MAX_PUSH_S = 0.05
"""A push holds at most this much (live) time of one stream, so a late wake-up never sends huge chunks."""
REDRAW_EVERY_S = 0.1
"""The progress bar redraws at most 10 times a second."""


@dataclass
class PlayStats:
    """What a play session pushed: samples per stream, loops started, whether it was stopped early."""

    samples: dict[str, int] = field(default_factory=dict)
    loops: int = 0
    stopped_by: str = "end of recording"


def serve(path: str | Path, *, speed: float = 1.0, loop: bool = False, streams: list[str] | None = None,
          duration_s: float | None = None, source_prefix: str = "spikeloop-play", progress: bool = False,
          on_ready: Callable[[dict[str, str]], None] | None = None,
          stop: Callable[[], bool] | None = None) -> PlayStats:
    """Serve a recording's streams on LSL (blocks until done, ``duration_s``, ``stop()`` or Ctrl-C).

    Args:
        path: recording file (``.xdf``, ``.xdfz``, NeuroBench ``.mat``).
        speed: real-time factor (> 0; 2 = twice as fast).
        loop: start over at the end (never ends by itself).
        streams: names of the streams to serve (default: all).
        duration_s: stop after this many seconds of wall time.
        source_prefix: LSL source ids are ``<prefix>:<file stem>:<stream>`` unless the recording has
            one (``<source_id>:<stream>`` when several streams of the recording share it).
        progress: show a tqdm bar over the recording's seconds.
        on_ready: called with ``{stream name: source_id}`` once every outlet exists.
        stop: polled between pushes; return True to stop.
    """
    import pylsl

    from pipeline.lsl import to_lsl_info
    from pipeline.recordings import load_recording

    if not (isinstance(speed, (int, float)) and speed > 0):
        raise UserError(f"play: --speed must be a number > 0, got {speed!r}")
    rec = load_recording(path)
    names = list(rec.streams) if not streams else streams
    for name in names:
        rec.stream(name)  # a clear error listing the recording's streams
    selected = {n: rec.streams[n] for n in names if rec.streams[n].data.shape[0] > 0}
    if not selected:
        raise UserError(f"play: {path}: the selected streams hold no samples")
    stem = Path(path).name.split(".")[0]
    outlets, ids = {}, {}
    shared = [s.info.source_id for s in selected.values()]
    for name, s in selected.items():
        sid = s.info.source_id or f"{source_prefix}:{stem}:{name}"
        if s.info.source_id and shared.count(s.info.source_id) > 1:
            # one source_id per LSL stream: liblsl finds a restarted outlet by it, and a client
            # picking by source_id must not match several streams
            sid = f"{s.info.source_id}:{name}"
        outlets[name] = pylsl.StreamOutlet(to_lsl_info(s.info, source_id=sid))
        ids[name] = sid
    t0 = min(float(s.timestamps[0]) for s in selected.values())
    t_last = max(float(s.timestamps[-1]) for s in selected.values())
    max_rate = max((s.info.nominal_rate for s in selected.values()), default=0.0)
    span = t_last - t0 + (1.0 / max_rate if max_rate > 0 else 0.0)  # one loop, in recording seconds
    stats = PlayStats(samples={n: 0 for n in selected})
    if on_ready is not None:
        on_ready(ids)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=round(span, 1), unit="s", desc="play", leave=False,
                   bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} s [{elapsed}<{remaining}]",
                   mininterval=REDRAW_EVERY_S)
    last_draw = 0.0
    rel = {n: (s.timestamps - t0) / speed for n, s in selected.items()}  # live offsets, seconds
    start = local_clock()
    deadline = None if duration_s is None else start + duration_s
    try:
        while True:
            base = start + stats.loops * span / speed
            pos = {n: 0 for n in selected}
            while any(pos[n] < rel[n].size for n in selected):
                due = min(rel[n][pos[n]] for n in selected if pos[n] < rel[n].size) + base
                if deadline is not None and due > deadline:
                    stats.stopped_by = f"duration {duration_s:g} s"
                    return stats
                now = wait_until(due)
                if stop is not None and stop():
                    stats.stopped_by = "stopped"
                    return stats
                for n, s in selected.items():
                    i = pos[n]
                    if i >= rel[n].size:
                        continue
                    j = int(np.searchsorted(rel[n], min(now - base, rel[n][i] + MAX_PUSH_S), side="right"))
                    if j > i:
                        stamps = base + rel[n][i:j]
                        chunk = s.data[i:j]
                        # strings go to liblsl as lists of str; numbers as one contiguous array
                        chunk = [[str(v) for v in row] for row in chunk] if chunk.dtype == object \
                            else np.ascontiguousarray(chunk)
                        if j - i == 1:
                            outlets[n].push_chunk(chunk, float(stamps[0]))
                        else:
                            outlets[n].push_chunk(chunk, stamps.tolist())
                        stats.samples[n] += j - i
                        pos[n] = j
                if bar is not None and now - last_draw >= REDRAW_EVERY_S:
                    last_draw = now
                    bar.n = round(min((now - base) * speed, span), 1)
                    bar.refresh()
            if not loop:
                return stats
            stats.loops += 1
    except KeyboardInterrupt:
        stats.stopped_by = "interrupted (Ctrl-C)"
        return stats
    finally:
        if bar is not None:
            bar.close()


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "play",
        help="serve every stream of a recording as live LSL streams, with original timing and metadata",
        description=(
            "Serve the streams of a recording (XDF or NeuroBench .mat) as live LSL outlets, keeping "
            "their relative timing and descriptions (channel labels, units). Samples are re-stamped "
            "on the live clock and pushed when their time comes (never ahead of it). Stop with Ctrl-C. "
            "Example: spikeloop play recordings/reaching_sample.xdfz --loop, then in another terminal "
            "spikeloop run configs/live_decode.yaml."
        ),
    )
    p.add_argument("recording", help="recording file (.xdf, .xdfz, .xdf.gz, .mat)")
    p.add_argument("--speed", type=float, default=1.0, help="real-time factor (default 1 = live; 2 = twice as fast)")
    p.add_argument("--loop", action="store_true", help="start over at the end (runs until Ctrl-C)")
    p.add_argument("--streams", help="comma-separated stream names to serve (default: all)")
    p.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    streams = [s.strip() for s in args.streams.split(",") if s.strip()] if args.streams else None

    def ready(ids: dict[str, str]) -> None:
        for name, sid in ids.items():
            print(f"serving {name!r} (source_id {sid!r})", flush=True)

    stats = serve(args.recording, speed=args.speed, loop=args.loop, streams=streams, duration_s=args.duration,
                  progress=not args.no_progress and sys.stderr.isatty(), on_ready=ready)
    pushed = ", ".join(f"{n}: {c:,}" for n, c in stats.samples.items())
    print(f"{stats.stopped_by}; samples pushed: {pushed}" + (f"; loops: {stats.loops}" if stats.loops else ""))
    return 0
