"""Help text for every command: defaults shown, examples kept as written.

:func:`polish` walks a parser tree after the subcommands registered themselves and gives each
parser a formatter that appends ``(default: X)`` to an option's help when it has a real default
and its text does not already state one, and keeps any text with explicit line breaks (examples,
hand-laid descriptions) as written while wrapping the rest. Subcommands without an epilog get
one from :data:`EXAMPLES`.
"""
from __future__ import annotations

import argparse
import textwrap

EXAMPLES: dict[str, str] = {
    "run": "examples:\n"
           "  spikeloop run configs/replay_decode.yaml\n"
           "  spikeloop run configs/replay_decode.yaml --runner ray --set replay.speed=1\n"
           "  spikeloop run configs/live_decode.yaml --duration 60 --json live.json",
    "check": "example:\n  spikeloop check configs/replay_decode.yaml --set replay.chunk_s=1.0",
    "train": "examples:\n"
             "  spikeloop train --model snn_streaming --recording recordings/reaching_sample.xdfz --out snn.npz\n"
             "  spikeloop train --model ann --recording session.xdf --neural Amp_counts \\\n"
             "      --kinematics Cursor --markers Trial_markers --epochs 10 --out ann.npz\n"
             "  spikeloop train --model crnn --dataset ../shared/datasets/icra2020-lidar --out crnn.npz",
    "evaluate": "examples:\n"
                "  spikeloop evaluate --model models/snn_streaming_sample.npz models/ann_sample.npz \\\n"
                "      --recording recordings/reaching_sample.xdfz --json eval.json\n"
                "  spikeloop evaluate --model ann.npz --recording sub-1.nwb --kinematics cursor_pos --markers trials\n"
                "  spikeloop evaluate --model models/crnn.npz --closed-loop --worlds 20",
    "bench": "examples:\n  spikeloop bench decoder\n  spikeloop bench latency --help",
    "bench decoder": "example:\n  spikeloop bench decoder --model models/snn_streaming_sample.npz models/ann_sample.npz "
                     "--json bench.json",
    "bench controller": "example:\n  spikeloop bench controller --timesteps 8 16 --decisions 300 --json controller.json",
    "bench attention": "examples:\n  spikeloop bench attention --kinds snn_streaming --seeds 0 --epochs 5 --max-minutes 1\n"
                       "  spikeloop bench attention --kinds snn_streaming --init models/snn_streaming_sample.npz "
                       "--rate-penalties 0,1,2 --seeds 0,1,2 --epochs 10 --patience 4 --lr 1e-3 --asa-bias "
                       "--max-minutes 12\n"
                       "  spikeloop bench attention ...same options... --reuse --report-only --json O/all.json",
}


class _Polished(argparse.HelpFormatter):
    """Mixin behaviour (combined with the parser's own formatter class in :func:`polish`)."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" not in text.strip():  # one paragraph: wrapped, whatever the parser's own formatter
            return argparse.HelpFormatter._fill_text(self, text, width, indent)
        # laid out by hand: kept line by line; only a line wider than the terminal is wrapped,
        # its continuation indented 4 more than the line itself
        out = []
        for line in text.splitlines():
            if len(indent + line) <= width or not line.strip():
                out.append(indent + line)
                continue
            lead = line[: len(line) - len(line.lstrip())]
            out.append(textwrap.fill(line.strip(), width, initial_indent=indent + lead,
                                     subsequent_indent=indent + lead + "    ", break_on_hyphens=False,
                                     break_long_words=False))
        return "\n".join(out) + ("\n" if text.endswith("\n") else "")

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        d = action.default
        if (action.option_strings and d is not None and d is not False and d != argparse.SUPPRESS
                and d != [] and "default" not in text.lower() and "%(default)" not in text):
            text += " (default: %(default)s)"
        return text


def polish(parser: argparse.ArgumentParser, name: str = "") -> None:
    """Give ``parser`` and its subparsers the defaults-showing formatter and missing examples."""
    base = parser.formatter_class
    if not (isinstance(base, type) and issubclass(base, _Polished)):
        parser.formatter_class = type(f"Polished{getattr(base, '__name__', '')}", (_Polished, base), {})
    if not parser.epilog and name in EXAMPLES:
        parser.epilog = EXAMPLES[name]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                polish(sub, sub_name if not name else f"{name} {sub_name}")
