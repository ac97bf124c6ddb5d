"""``spikeloop run CONFIG``: run a graph and print its summary (``spikeloop check`` is in ``check.py``)."""
from __future__ import annotations

import argparse
import sys

from pipeline.graph import load_graph
from pipeline.metrics import print_summary, write_json
from pipeline.runners import get_runner


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="run a graph config (replay, live or closed loop) and print a summary",
        description=(
            "Load a graph config (YAML), validate it, run it on a runner and print a summary: per "
            "node packets and samples in/out, gaps and other counted events, processing time "
            "p50/p99; for the whole graph end-to-end latency p50/p99/max, wall time and samples "
            "per second. A replay stops at the end of its recording; a live graph runs until "
            "--duration or Ctrl-C."
        ),
    )
    p.add_argument("config", help="graph config file, e.g. configs/replay_decode.yaml")
    p.add_argument("--runner", choices=("local", "ray", "ray-compiled"),
                   help="override the config's runtime.runner (default: the config's, else local)")
    p.add_argument("--address", help="Ray cluster address to join (ray runners); default: start a local Ray on loopback")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="NODE.PARAM=VALUE",
                   help="override a node param or runtime key, e.g. --set replay.speed=1 (repeatable)")
    p.add_argument("--duration", type=float, metavar="S", help="stop after S seconds of wall time")
    p.add_argument("--json", dest="json_path", metavar="PATH", help="also write the summary as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    spec = load_graph(args.config, args.overrides)
    runner = args.runner or spec.runtime["runner"]
    address = args.address or spec.runtime.get("address")
    summary = get_runner(runner)(
        spec, progress=not args.no_progress and sys.stderr.isatty() or False, duration_s=args.duration,
        **({"address": address} if address else {}),
    )
    print_summary(summary)
    if args.json_path:
        write_json(summary, args.json_path)
        print(f"summary written to {args.json_path}")
    return 0
