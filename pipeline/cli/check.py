"""``spikeloop check CONFIG``: validate a graph config without running it, live resources or side effects."""
from __future__ import annotations

import argparse

from pipeline.checking import check_graph
from pipeline.graph import load_graph
from pipeline.packet import StreamInfo


def register(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser(
        "check",
        help="validate a graph config and show its streams, without running it",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Load and validate a graph config without running it: every param checked against its\n"
            "type, every node constructed (model files and recordings read), channel counts and rates\n"
            "checked between connected nodes, and for the Ray runners the actor groups planned (fuse\n"
            "groups that would wait on each other are refused). Prints every stream.\n\n"
            "Nothing live is touched and nothing is written: LSL inlets are not resolved (their streams\n"
            "are 'unknown until --live'), LSL outlets and recorders are not opened. With --live the\n"
            "LSL inlets are resolved too (each within its resolve_timeout_s param).\n\n"
            "Exit status: 0 valid, 2 on any error (one line naming the file, node and param)."
        ),
        epilog="example: spikeloop check configs/live_decode.yaml --live --set inlet.resolve_timeout_s=2",
    )
    c.add_argument("config", help="graph config file, e.g. configs/replay_decode.yaml")
    c.add_argument("--set", dest="overrides", action="append", default=[], metavar="NODE.PARAM=VALUE",
                   help="override a node param or runtime key, as for `run` (repeatable)")
    c.add_argument("--live", action="store_true",
                   help="also resolve live LSL input streams (default: off; they are reported as unknown)")
    c.add_argument("--runner", choices=("local", "ray", "ray-compiled"),
                   help="check for this runner (default: the config's runtime.runner, else local)")
    c.set_defaults(func=check)


def check(args: argparse.Namespace) -> int:
    spec = load_graph(args.config, args.overrides)
    runner = args.runner or spec.runtime["runner"]
    report = check_graph(spec, live=args.live, runner=runner)
    print(f"{spec.file}: graph {spec.name!r} is valid ({len(spec.nodes)} nodes, {len(spec.edges)} edges, "
          f"runner {runner})")
    for (node, port), info in report.streams.items():
        if isinstance(info, StreamInfo):
            rate = "irregular" if info.irregular else f"{info.nominal_rate:g} Hz"
            print(f"  {node}.{port}: {info.name!r} type {info.type!r}, {info.channel_count} ch, {rate}, {info.dtype}")
        else:
            print(f"  {node}.{port}: {info}")
    for node, note in report.notes.items():
        print(f"  node {node}: {note}")
    for e in spec.edges:
        print(f"  edge {e}")
    if report.groups is not None:
        print(f"  actors ({runner}): " + "; ".join("+".join(g) for g in report.groups))
    for warning in report.warnings:
        print(f"  warning: {warning}")
    return 0
