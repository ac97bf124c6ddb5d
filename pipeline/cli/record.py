"""``spikeloop record``: record LSL streams to an XDF file (replayable with ``spikeloop play`` or a replay node).

Each stream is resolved by name (or ``type=...`` / ``source_id=...``) and read with the same LSL
inlet node graphs use (``nodes/sources/lsl_inlet.py``), so the raw LSL timestamps are kept and
faults are counted (stalls, reconnections, estimated lost samples, backwards timestamps, a rate
off the nominal; printed at the end). Numeric and string (marker) streams, regular or irregular,
are recorded alike. Each stream header is the sender's whole LSL header (per-channel types,
``desc`` extras such as filters and locations, ``created_at``, ``uid``, ``session_id``,
``hostname``), as LabRecorder writes it.

Clock offsets, as XDF recorders write them: a background thread measures each stream's
``time_correction`` (seconds to add to the sender's clock to get this machine's) right after
opening and then every 5 s, and writes ClockOffset chunks (collection time on the sender's clock,
offset); pyxdf applies them when it loads the file.

Crash safety: data goes to the file every 0.5 s (``.xdfz``: as a closed gzip member) and is
``fsync``-ed every 5 s, so a killed recorder (even SIGKILL) leaves a file that ``pyxdf.load_xdf``
reads up to its last half second (no StreamFooters: spikeloop's own reader needs
``allow_incomplete=True``).
"""
from __future__ import annotations

import argparse
import queue
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

from pipeline.clock import local_clock
from pipeline.errors import UserError

OFFSET_EVERY_S = 5.0
"""Seconds between clock-offset measurements of each stream."""
OFFSET_TIMEOUT_S = 2.0
"""Longest wait for one offset measurement (the first takes about half a second)."""
BOUNDARY_EVERY_S = 10.0
FLUSH_EVERY_S = 0.5
"""Seconds between writes to the file: a crash loses at most this much."""
REDRAW_EVERY_S = 0.1
"""Progress bars redraw at most 10 times a second."""


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


class _OffsetProbe(threading.Thread):
    """Measures one inlet's clock offset at once, then every ``OFFSET_EVERY_S`` s, into ``results``.

    A first measurement that times out (a busy machine) is retried at once rather than 5 s later.
    """

    def __init__(self, index: int, node: Any, results: "queue.Queue[tuple[int, float, float]]",
                 stop_event: threading.Event) -> None:
        super().__init__(name=f"record-clock-offset-{index}", daemon=True)
        self.index, self.node, self.results, self.stop_event = index, node, results, stop_event
        self.failures = 0

    def run(self) -> None:
        measured = False
        while not self.stop_event.is_set():
            started = time.monotonic()
            try:
                offset = self.node.time_correction(OFFSET_TIMEOUT_S)
            except Exception:  # noqa: BLE001 - a stream that is away or a busy machine: try again
                self.failures += 1
                if not measured:
                    continue
            else:
                measured = True
                self.results.put((self.index, local_clock(), offset))
            self.stop_event.wait(max(0.0, OFFSET_EVERY_S - (time.monotonic() - started)))


def record(specs: list[str], out: str | Path, *, duration_s: float | None = None, resolve_timeout_s: float = 5.0,
           progress: bool = False, stop: Callable[[], bool] | None = None, pick: str = "only",
           on_ready: Callable[[list[str]], None] | None = None) -> dict[str, Any]:
    """Record the streams named by ``specs`` into ``out`` until ``duration_s``, ``stop()`` or Ctrl-C.

    Args:
        specs: ``NAME``, ``name=NAME``, ``type=TYPE`` or ``source_id=ID``, one per stream.
        out: ``.xdf`` or ``.xdfz`` file.
        duration_s: seconds to record (None: until ``stop()`` or Ctrl-C).
        resolve_timeout_s: seconds to find each stream.
        progress: show a progress bar (needs ``duration_s``).
        stop: polled in the loop; True stops the recording.
        pick: ``only`` (two matching streams are an error) or ``newest``.
        on_ready: called with the stream names once every stream is open and the file exists.

    Returns ``{"streams": {name: samples}, "counters": {name: inlet counters}, "stopped_by": str,
    "path": str, "offsets": {name: offsets written}}``.
    """
    from nodes.sources.lsl_inlet import LslInlet
    from pipeline.recordings.xdf_writer import XdfWriter

    if not specs:
        raise UserError("record: --streams needs at least one stream")
    inlets = []
    try:
        for spec in specs:
            node = LslInlet(**parse_stream_spec(spec), resolve_timeout_s=resolve_timeout_s, clock_sync=False,
                            max_block_s=0.0, pick=pick)
            node.name = spec
            inlets.append((node, node.open({})["out"]))
        names = [info.name for _, info in inlets]
        if len(set(names)) != len(names):
            raise UserError(f"record: two of the streams have the same name ({', '.join(names)}); "
                            "pick them by source_id=...")
    except BaseException:
        for node, _ in inlets:
            node.close()
        raise
    counts = {info.name: 0 for _, info in inlets}
    offsets_written = {info.name: 0 for _, info in inlets}
    stopped_by = "end"
    writer = XdfWriter(out, metadata={"recorded_by": "spikeloop record", "streams": names,
                                      "started_local_clock": local_clock()},
                       flush_every_s=FLUSH_EVERY_S, fsync_every_s=5.0)
    offsets_q: "queue.Queue[tuple[int, float, float]]" = queue.Queue()
    probes_stop = threading.Event()
    probes = [_OffsetProbe(k, node, offsets_q, probes_stop) for k, (node, _) in enumerate(inlets)]
    bar = None
    ids: list[int] = []
    try:
        ids = [writer.add_stream(info, measured_offsets=True) for _, info in inlets]
        for probe in probes:
            probe.start()
        if on_ready is not None:
            on_ready(names)
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=duration_s, unit="s", desc="record", leave=False, mininterval=REDRAW_EVERY_S,
                       bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} s [{elapsed}<{remaining}]")
        start = last_boundary = last_draw = time.monotonic()
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
            while not offsets_q.empty():
                k, collected, offset = offsets_q.get_nowait()
                # as LabRecorder: the collection time on the sender's clock, then the offset
                writer.write_clock_offset(ids[k], collected - offset, offset)
                offsets_written[inlets[k][1].name] += 1
            if now - last_boundary >= BOUNDARY_EVERY_S:
                last_boundary = now
                writer.write_boundary()
            if bar is not None and now - last_draw >= REDRAW_EVERY_S:
                last_draw = now
                bar.n = round(min(now - start, duration_s or 0.0), 1)
                bar.refresh()
            if not got:
                time.sleep(0.002)
    except KeyboardInterrupt:
        stopped_by = "interrupted (Ctrl-C)"
    finally:
        probes_stop.set()
        if bar is not None:
            bar.close()
        for probe in probes:
            if probe.is_alive():
                probe.join(timeout=OFFSET_TIMEOUT_S + 1.0)
        while not offsets_q.empty():  # offsets measured while stopping
            k, collected, offset = offsets_q.get_nowait()
            writer.write_clock_offset(ids[k], collected - offset, offset)
            offsets_written[inlets[k][1].name] += 1
        for k, (node, info) in enumerate(inlets):  # a short recording on a busy machine: one offset at least
            if not offsets_written[info.name] and k < len(ids):
                try:
                    offset = node.time_correction(OFFSET_TIMEOUT_S)
                except Exception:  # noqa: BLE001 - the stream is away: the file has no offset for it
                    continue
                writer.write_clock_offset(ids[k], local_clock() - offset, offset)
                offsets_written[info.name] += 1
        writer.close()
        for node, _ in inlets:
            node.close()
    return {"streams": counts, "counters": {info.name: node.counters() for node, info in inlets},
            "stopped_by": stopped_by, "path": str(out), "offsets": offsets_written}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "record",
        help="record LSL streams to an XDF file",
        description=(
            "Record one or more LSL streams (numeric or string markers, regular or irregular) to XDF "
            "(.xdf, or .xdfz compressed), keeping each sender's whole stream header, raw timestamps and "
            "clock offsets (measured at once, then every 5 s); stalls and losses are counted. Data reaches "
            "the file every 0.5 s, so a crash loses at most that much. "
            "Example (while `spikeloop play recordings/reaching_sample.xdfz` and "
            "`spikeloop run configs/live_decode.yaml` run): "
            "spikeloop record --streams spikes,velocity_decoded --out session.xdfz --duration 60"
        ),
    )
    p.add_argument("--streams", required=True,
                   help="comma-separated streams: NAME, or type=TYPE / source_id=ID to pick by those")
    p.add_argument("--out", required=True, metavar="FILE", help="output file (.xdf or .xdfz)")
    p.add_argument("--duration", type=float, metavar="S", help="stop after S seconds (default: until Ctrl-C)")
    p.add_argument("--resolve-timeout", type=float, default=5.0, metavar="S", help="seconds to find each stream (default 5)")
    p.add_argument("--pick", choices=("only", "newest"), default="only",
                   help="when two streams match a name: only = stop with an error listing them (default), "
                        "newest = take the newest")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.duration is not None and args.duration <= 0:
        raise UserError(f"record: --duration must be > 0 s, got {args.duration}")
    specs = [s for s in args.streams.split(",") if s.strip()]
    result = record(specs, args.out, duration_s=args.duration, resolve_timeout_s=args.resolve_timeout,
                    progress=not args.no_progress and sys.stderr.isatty() and args.duration is not None,
                    pick=args.pick,
                    on_ready=lambda names: print(f"recording {', '.join(names)} to {args.out}", flush=True))
    print(f"{result['stopped_by']}; wrote {result['path']}")
    for name, n in result["streams"].items():
        events = ", ".join(f"{k}={v}" for k, v in result["counters"][name].items() if v) or "no losses"
        print(f"  {name}: {n:,} samples, {result['offsets'][name]} clock offsets ({events})")
    return 0
