"""``spikeloop record``: record LSL streams to an XDF file (replayable with ``spikeloop play`` or a replay node).

Each stream is resolved by name (or ``type=...`` / ``source_id=...``) and read with the same LSL
inlet node graphs use (``nodes/sources/lsl_inlet.py``), so the raw LSL timestamps are kept and
losses are counted (reconnections, discontinuities, estimated lost samples; printed at the end).
As XDF recorders do, timestamps are stored as sent and the clock offset of each stream
(``time_correction``, seconds to add to get this machine's clock) is written every 5 s as
ClockOffset chunks; XDF readers apply them. Data is written incrementally (the recordings
package's ``XdfWriter``), so a crash loses at most the last moments; ``.xdfz`` compresses.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Callable

from pipeline.clock import local_clock
from pipeline.errors import UserError

OFFSET_EVERY_S = 5.0
BOUNDARY_EVERY_S = 10.0


def parse_stream_spec(spec: str) -> dict[str, str]:
    """``name`` or ``type=EEG`` / ``source_id=abc`` / ``name=x`` -> lsl_inlet query params."""
    spec = spec.strip()
    if "=" not in spec:
        return {"name": spec}
    key, _, value = spec.partition("=")
    key = key.strip()
    if key not in ("name", "type", "source_id") or not value.strip():
        raise UserError(f"record: cannot read stream {spec!r}; use NAME, name=NAME, type=TYPE or source_id=ID")
    return {key: value.strip()}


def record(specs: list[str], out: str | Path, *, duration_s: float | None = None, resolve_timeout_s: float = 5.0,
           progress: bool = False, stop: Callable[[], bool] | None = None) -> dict[str, Any]:
    """Record the streams named by ``specs`` into ``out`` until ``duration_s``, ``stop()`` or Ctrl-C.

    Returns ``{"streams": {name: samples}, "counters": {name: inlet counters}, "stopped_by": str}``.
    """
    from nodes.sources.lsl_inlet import LslInlet
    from pipeline.recordings.xdf_writer import XdfWriter

    if not specs:
        raise UserError("record: --streams needs at least one stream")
    inlets = []
    for spec in specs:
        node = LslInlet(**parse_stream_spec(spec), resolve_timeout_s=resolve_timeout_s, clock_sync=False,
                        max_block_s=0.0)
        node.name = spec
        inlets.append((node, node.open({})["out"]))
    names = [info.name for _, info in inlets]
    if len(set(names)) != len(names):
        raise UserError(f"record: two of the streams have the same name ({', '.join(names)}); "
                        "pick them by source_id=...")
    counts = {info.name: 0 for _, info in inlets}
    stopped_by = "end"
    writer = XdfWriter(out, metadata={"recorded_by": "spikeloop record", "streams": names,
                                      "started_local_clock": local_clock()})
    bar = None
    try:
        ids = [writer.add_stream(info) for _, info in inlets]
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=duration_s, unit="s", desc="record", leave=False)
        start = last_offset = last_boundary = time.monotonic()
        last_offset -= OFFSET_EVERY_S  # an offset right away
        while True:
            now = time.monotonic()
            if duration_s is not None and now - start >= duration_s:
                stopped_by = f"duration {duration_s:g} s"
                break
            if stop is not None and stop():
                stopped_by = "stopped"
                break
            got = 0
            for (node, info), sid in zip(inlets, ids):
                out_ = node.read()
                if out_:
                    packet = out_["out"]
                    writer.write_samples(sid, packet.data, packet.timestamps)
                    counts[info.name] += packet.n_samples
                    got += packet.n_samples
            if now - last_offset >= OFFSET_EVERY_S:
                last_offset = now
                for (node, _), sid in zip(inlets, ids):
                    try:
                        offset = node.time_correction(0.2)
                    except Exception:  # noqa: BLE001 - a stream that is away: skip this offset
                        continue
                    writer.write_clock_offset(sid, local_clock(), offset)
            if now - last_boundary >= BOUNDARY_EVERY_S:
                last_boundary = now
                writer.write_boundary()
            if bar is not None:
                bar.n = round(min(now - start, duration_s or 0.0), 1)
                bar.refresh()
            if not got:
                time.sleep(0.002)
    except KeyboardInterrupt:
        stopped_by = "interrupted (Ctrl-C)"
    finally:
        if bar is not None:
            bar.close()
        writer.close()
        for node, _ in inlets:
            node.close()
    return {"streams": counts, "counters": {info.name: node.counters() for node, info in inlets},
            "stopped_by": stopped_by, "path": str(out)}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "record",
        help="record LSL streams to an XDF file",
        description=(
            "Record one or more LSL streams to XDF (.xdf, or .xdfz compressed), keeping their "
            "descriptions (labels, units), raw timestamps and clock offsets; losses are counted. "
            "Example: spikeloop record --streams spikes,velocity_pred --out session.xdfz --duration 60"
        ),
    )
    p.add_argument("--streams", required=True,
                   help="comma-separated streams: NAME, or type=TYPE / source_id=ID to pick by those")
    p.add_argument("--out", required=True, metavar="FILE", help="output file (.xdf or .xdfz)")
    p.add_argument("--duration", type=float, metavar="S", help="stop after S seconds (default: until Ctrl-C)")
    p.add_argument("--resolve-timeout", type=float, default=5.0, metavar="S", help="seconds to find each stream (default 5)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.duration is not None and args.duration <= 0:
        raise UserError(f"record: --duration must be > 0 s, got {args.duration}")
    specs = [s for s in args.streams.split(",") if s.strip()]
    result = record(specs, args.out, duration_s=args.duration, resolve_timeout_s=args.resolve_timeout,
                    progress=not args.no_progress and sys.stderr.isatty() and args.duration is not None)
    print(f"{result['stopped_by']}; wrote {result['path']}")
    for name, n in result["streams"].items():
        events = ", ".join(f"{k}={v}" for k, v in result["counters"][name].items() if v) or "no losses"
        print(f"  {name}: {n:,} samples ({events})")
    return 0
