"""``spikeloop inspect RECORDING``: every stream of a recording, and whether it can be decoded.

Lists each stream (name, type, channels, nominal and effective rate, duration, format, gaps,
clock offsets, the role it could play), suggests a mapping, and tries it (or the one given with
``--neural/--kinematics/--markers``): the alignment report or the reason it does not fit.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from pipeline.cli.mapping_options import add_mapping_options, mapping_from_args
from pipeline.errors import UserError

EXAMPLE = """examples:
  spikeloop inspect recordings/reaching_sample.xdfz
  spikeloop inspect session.xdf --neural Amp_counts --kinematics Cursor --markers Trial_markers
  spikeloop inspect sub-Indy_ses-1.nwb --kinematics cursor_pos --markers trials --json inspect.json"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "inspect",
        help="list a recording's streams and check which can be the neural input and the kinematics",
        description=__doc__.split("\n\n", 1)[1].strip(),
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("recording", metavar="RECORDING", help="a .xdf/.xdfz/.xdf.gz, NeuroBench .mat or .nwb file")
    p.add_argument("--json", dest="json_path", metavar="PATH", default=None,
                   help="also write the facts as JSON (default: none)")
    add_mapping_options(p)
    p.set_defaults(func=run)


def _rate(f) -> str:
    nom = "irreg." if f.nominal_rate == 0 else f"{f.nominal_rate:g}"
    e = f.effective_rate
    eff = "-" if not e else (f"{e:.0f}" if e >= 100 else (f"{e:.1f}" if e >= 10 else f"{e:.3g}"))
    return f"{nom}/{eff}"


def render(path: str, fmt: str, facts, suggestion: dict, checked: dict, console) -> None:
    """Print the stream table, the suggested mapping and the check on ``console`` (fits 100 columns)."""
    from rich.table import Table

    console.print(f"[bold]{path}[/bold]: {fmt}, {len(facts)} streams")
    table = Table(show_lines=False, pad_edge=False, box=None, header_style="bold", collapse_padding=True)
    for col, just in (("stream", "left"), ("type", "left"), ("ch", "right"), ("Hz nom/eff", "right"),
                      ("dur s", "right"), ("format", "left"), ("gaps", "right"), ("clock off.", "right"),
                      ("could be", "left")):
        table.add_column(col, justify=just, overflow="fold", no_wrap=col in ("could be", "stream"))
    for f in facts:
        gaps = "-" if f.gaps is None else (f"{f.gaps} ({f.gap_s:.2f} s)" if f.gaps else "0")
        if f.backwards:
            gaps += f", {f.backwards} back"
        off = f"{f.mean_offset_s * 1e3:+.4g} ms" if f.clock_offsets else "-"  # the count is in --json
        ch = str(f.channels) if f.event_channels is None else f"{f.event_channels} ev."
        table.add_row(f.name, f.type, ch, _rate(f), f"{f.duration_s:.1f}", f.dtype, gaps, off, f.role)
    console.print(table)
    names = {k: v for k, v in suggestion.items() if v}
    if names:
        console.print("suggested: " + " ".join(f"--{k} {v}" for k, v in names.items()))
    m = checked["mapping"]
    console.print(f"mapping checked: --neural {m['neural']} --kinematics {m['kinematics']}"
                  + (f" --markers {m['markers']}" if m.get("markers") else ""))
    if checked.get("error"):
        console.print(f"  [red]does not fit[/red]: {checked['error']}")
    else:
        for line in checked["lines"]:
            console.print(f"  {line}")
        sp = checked["split"]
        console.print(f"  split (bins): train {sp['train']}, val {sp['val']}, test {sp['test']}")


def run(args: argparse.Namespace) -> int:
    from pipeline.console import console
    from pipeline.recordings import load_recording
    from pipeline.recordings.inspect import inspect_recording, suggest_mapping
    from pipeline.recordings.reaching import reaching_from_recording

    path = Path(args.recording)
    rec = load_recording(path)
    facts = inspect_recording(rec)
    fmt = {"xdf": "XDF", "mat": "NeuroBench .mat (MATLAB v7.3)", "nwb": "NWB"}.get(rec.metadata.get("source", ""), "")
    if not fmt:
        fmt = "NWB" if path.suffix == ".nwb" else ("NeuroBench .mat" if path.suffix == ".mat" else "XDF")
    suggestion = suggest_mapping(facts)
    given = any(getattr(args, k, None) for k in ("neural", "kinematics", "markers", "kinematics_kind"))
    if not given:  # check the defaults when they exist, else the suggestion
        names = {f.name for f in facts}
        args.neural = None if "spikes" in names else suggestion["neural"]
        args.kinematics = None if "velocity" in names else suggestion["kinematics"]
        args.markers = None if "target" in names else suggestion["markers"]
    mapping = mapping_from_args(args)
    checked: dict = {"mapping": mapping.to_dict()}
    try:
        d = reaching_from_recording(rec, name=str(path), mapping=mapping)
        checked["lines"] = d.alignment.lines() if d.alignment else []
        checked["alignment"] = d.alignment.to_dict() if d.alignment else None
        checked["split"] = {k: [v.start, v.stop] for k, v in d.split.items()}
    except UserError as exc:
        checked["error"] = str(exc)
    render(str(path), fmt, facts, suggestion, checked, console())
    if args.json_path:
        out = {"recording": str(path), "format": fmt, "streams": [f.to_dict() for f in facts],
               "suggested": suggestion, "checked": checked}
        Path(args.json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_path).write_text(json.dumps(out, indent=2, default=float))
        print(f"wrote {args.json_path}")
    return 0 if "error" not in checked else 1
