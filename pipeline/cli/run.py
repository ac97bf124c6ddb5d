"""``spikeloop run CONFIG``: run a graph and print its summary (``spikeloop check`` is in ``check.py``)."""
from __future__ import annotations

import argparse
import sys

from pipeline.graph import load_graph
from pipeline.log import LEVELS, runner_logger, setup_logging
from pipeline.metrics import print_summary, write_json
from pipeline.runners import get_runner


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="run a graph config (replay, live or closed loop) and print a summary",
        description=(
            "Load a graph config (YAML), validate it, run it on a runner and print a summary: per "
            "node packets and samples in/out, gaps and other counted events, processing time "
            "p50/p99; for the whole graph the in-graph latency (source read -> sink) and the "
            "end-to-end latency (input sample timestamp -> output pushed, LSL clock; live and paced "
            "runs), wall time, samples per second and actor restarts. A replay stops at the end of "
            "its recording; a live graph runs until --duration, Ctrl-C, SIGTERM or SIGHUP (each "
            "ends the run cleanly: summary, --json, files closed; a second one forces the exit). "
            "On a terminal a live run shows a status line once a second. Runner events (Ray "
            "starting, waiting for a stream, restarts, why the run stopped) are logged to stderr "
            "with timestamps. Ray runners checkpoint every group every runtime.checkpoint_s "
            "(default 5 s, 0 = off) and restart a dead actor from its checkpoint up to "
            "runtime.max_restarts times (default 3)."
        ),
        epilog="example: spikeloop run configs/replay_decode.yaml --runner ray --set runtime.checkpoint_s=2 --json out.json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("config", help="graph config file, e.g. configs/replay_decode.yaml")
    p.add_argument("--runner", choices=("local", "ray", "ray-compiled"),
                   help="override the config's runtime.runner (default: the config's, else local)")
    p.add_argument("--address", help="Ray cluster address to join (ray runners); default: start a local Ray on loopback")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="NODE.PARAM=VALUE",
                   help="override a node param or runtime key, e.g. --set replay.speed=1 (repeatable)")
    p.add_argument("--duration", type=float, metavar="S", help="stop after S seconds of wall time")
    p.add_argument("--json", dest="json_path", metavar="PATH", help="also write the summary as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bar or status line")
    p.add_argument("--log-level", choices=LEVELS, default="INFO", type=str.upper,
                   help="runner and node log messages shown on stderr (default: INFO)")
    p.add_argument("--quiet", action="store_true", help="only warnings and errors on stderr (= --log-level WARNING)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    setup_logging(args.log_level, quiet=args.quiet)
    spec = load_graph(args.config, args.overrides)
    runner = args.runner or spec.runtime["runner"]
    address = args.address or spec.runtime.get("address")
    runner_logger().info("running %s on runner %r", spec.file, runner)
    summary = get_runner(runner)(
        spec, progress=not args.no_progress and sys.stderr.isatty() or False, duration_s=args.duration,
        **({"address": address} if address else {}),
    )
    print_summary(summary)
    if args.json_path:
        write_json(summary, args.json_path)
        print(f"summary written to {args.json_path}")
    if summary.get("failure"):
        print(f"spikeloop run: error: {summary['failure']}", file=sys.stderr)
        return 1
    return 0
