"""The ``spikeloop`` command line (also ``python -m pipeline``).

Each subcommand lives in its own module of this package and exposes
``register(subparsers) -> None``, which adds its parser and sets ``func`` (a callable taking the
parsed ``argparse.Namespace`` and returning an exit code). Add a subcommand by adding its module
name to :data:`SUBCOMMANDS`.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from pipeline.errors import UserError, one_line

SUBCOMMANDS = [
    "run",
    "check",
    "synth",
    "train",
    "evaluate",
    "bench",
    "play",
    "record",
    "inspect",
    "sweep",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spikeloop",
        description=(
            "Closed-loop BCI and robotics streaming runtime. Graphs of nodes (LSL or replay in, "
            "Bessel filters, spiking decoders and controllers, LSL or robot out) run locally or "
            "as Ray actors, live or replaying a recording."
        ),
        epilog="Run `spikeloop COMMAND --help` for the options of each command.",
    )
    parser.add_argument("--version", action="version", version="spikeloop 0.1.0")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"pipeline.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"pipeline.cli.{name}":
                continue  # subcommand not built yet
            raise
        module.register(sub)
    from pipeline.cli.helpfmt import polish

    polish(parser)  # defaults shown in every --help, an example in each
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status (0 ok, 2 a user error printed in one line, 130 Ctrl-C).

    Usable in-process (tests call ``main([...])``): a user error never raises, it returns 2.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except UserError as exc:
        print(f"spikeloop {args.command}: error: {one_line(str(exc), limit=2000)}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # a command that exits with a message (not a number) reports a user error
        if exc.code is None or isinstance(exc.code, int):
            raise
        message = one_line(str(exc.code), limit=2000)
        prefix = f"spikeloop {args.command}: "
        print(message if message.startswith(prefix) else f"{prefix}error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
