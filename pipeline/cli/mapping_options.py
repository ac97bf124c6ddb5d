"""The stream-mapping options shared by ``train``, ``evaluate`` and ``inspect``.

``--neural NAME --kinematics NAME [--markers NAME] [--kinematics-kind auto|position|velocity]``;
the rules are in :mod:`pipeline.recordings.mapping`.
"""
from __future__ import annotations

import argparse

from pipeline.recordings.mapping import DEFAULT_KINEMATICS, DEFAULT_NEURAL, KINEMATICS_KINDS, StreamMapping


def add_mapping_options(p: argparse.ArgumentParser) -> None:
    """Add the mapping options to ``p`` (in their own group)."""
    g = p.add_argument_group("stream mapping (which streams of --recording are used; see `spikeloop inspect`)")
    g.add_argument("--neural", default=None, metavar="NAME",
                   help=f"neural stream: spike counts per bin, or irregular spike events (channel, unit) "
                        f"binned at 4 ms (default: {DEFAULT_NEURAL})")
    g.add_argument("--kinematics", default=None, metavar="NAME",
                   help=f"kinematics stream, interpolated onto the neural bins (default: {DEFAULT_KINEMATICS})")
    g.add_argument("--kinematics-kind", choices=KINEMATICS_KINDS, default=None,
                   help="position (turned into velocity by NeuroBench's gradient) or velocity (used as is); "
                        "auto decides from units, type, labels, name (default: auto)")
    g.add_argument("--markers", default=None, metavar="NAME",
                   help="marker stream: each marker starts a reach segment (default: target changes if the "
                        "recording has a 'target' stream, else 2 s chunks)")


def mapping_from_args(args: argparse.Namespace) -> StreamMapping:
    """The mapping the parsed options ask for (defaults where not given)."""
    return StreamMapping.from_params(getattr(args, "neural", None), getattr(args, "kinematics", None),
                                     getattr(args, "markers", None), getattr(args, "kinematics_kind", None))
