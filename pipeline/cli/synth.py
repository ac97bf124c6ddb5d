"""``spikeloop synth``: write a simulated reaching session to an XDF file, or describe a recording."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from pipeline.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "synth",
        help="simulate a monkey reaching session (spikes, velocity, target) as XDF, or describe a recording",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Simulate continuous self-paced reaching to targets on an 8 x 8 grid (15 mm pitch; the next\n"
            "target appears when the hand reaches the current one, no inter-trial interval; superposed\n"
            "minimum-jerk reaches) with 1-3 sorted units plus an unsorted multi-unit per channel, tuned to\n"
            "velocity, direction and speed with a ~100 ms lead and slow drift, firing as Poisson processes\n"
            "and ORed per channel into 0/1 per 4 ms bin (as NeuroBench bins the O'Doherty sessions).\n"
            "Calibration targets and their sources: recordings/README.md.\n\n"
            "The file holds three 250 Hz streams: 'spikes' (CHANNELS int16 0/1 per 4 ms bin, labels\n"
            "ch000..), 'velocity' (vx, vy in mm/s) and 'target' (tx, ty in mm), plus the generator's\n"
            "parameters and seed in the file header. The same options give the same samples (and, with\n"
            "the same numpy/zlib, the same bytes).\n\n"
            "--describe RECORDING prints a recording's statistics (firing, stillness, time per target,\n"
            "speeds, neural lead, drift, ridge R2) beside the calibration targets."
        ),
        epilog=("examples:\n"
                "  spikeloop synth --out recordings/reaching_sample.xdfz --channels 96 --minutes 10 --seed 7\n"
                "  spikeloop synth --describe recordings/reaching_sample.xdfz"),
    )
    p.add_argument("--out", default=None, metavar="PATH",
                   help="output file: .xdfz (gzip, recommended) or .xdf")
    p.add_argument("--describe", default=None, metavar="RECORDING",
                   help="print a reaching recording's statistics beside the calibration targets (no file written)")
    p.add_argument("--json", dest="json_path", default=None, metavar="PATH", help="with --describe: also write the statistics as JSON")
    p.add_argument("--channels", type=int, default=96, help="number of recording channels (default 96)")
    p.add_argument("--minutes", type=float, default=10.0, help="session length in minutes (default 10)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--untuned-fraction", type=float, default=None, metavar="F",
                   help="fraction of units not tuned to movement (default 0.3)")
    p.add_argument("--lag-ms", type=float, nargs=2, default=None, metavar=("MEAN", "SD"),
                   help="neural lead over movement: mean and sd in ms, clipped to 20-200 (default 100 40)")
    p.add_argument("--unit-hz", type=float, nargs=2, default=None, metavar=("LO", "HI"),
                   help="range of sorted units' baseline rates in spikes/s (default 2 20)")
    p.add_argument("--force", action="store_true", help="overwrite an existing output file")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.describe:
        return _describe(args)
    from pipeline.recordings.synth import SynthParams, generate

    if not args.out:
        raise UserError("synth: give --out PATH to simulate a session, or --describe RECORDING")
    out = Path(args.out)
    if not (out.name.endswith((".xdf", ".xdfz", ".xdf.gz"))):
        raise UserError(f"--out {out}: use a .xdfz (compressed) or .xdf file name")
    if out.exists() and not args.force:
        raise UserError(f"--out {out} exists; pass --force to overwrite")
    if args.minutes <= 0:
        raise UserError(f"--minutes must be > 0, got {args.minutes}")
    if args.channels < 1:
        raise UserError(f"--channels must be >= 1, got {args.channels}")
    extra = {}
    if args.untuned_fraction is not None:
        extra["untuned_fraction"] = args.untuned_fraction
    if args.lag_ms is not None:
        extra["lag_s"] = (args.lag_ms[0] / 1000.0, args.lag_ms[1] / 1000.0)
    if args.unit_hz is not None:
        extra["unit_hz"] = tuple(args.unit_hz)
    try:
        params = SynthParams(channels=args.channels, seed=args.seed, **extra)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    generate(out, params, args.minutes * 60.0, progress=not args.no_progress)
    size = out.stat().st_size
    print(f"wrote {out} ({size / 1e6:.2f} MB): {args.minutes:g} min, {args.channels} channels, seed {args.seed}; "
          "streams spikes (0/1 per 4 ms bin), velocity (mm/s), target (mm) at 250 Hz")
    return 0


def _describe(args: argparse.Namespace) -> int:
    from pipeline.recordings.synth_describe import describe, print_description

    path = Path(args.describe)
    if not path.is_file():
        raise UserError(f"--describe {path}: no such file")
    stats = describe(path)
    print_description(stats)
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(stats, indent=2))
        print(f"wrote {args.json_path}")
    return 0
