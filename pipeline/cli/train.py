"""``spikeloop train``: train a decoder (iBMI) or a collision-avoidance controller.

Model families register here; the heavy code (torch, snntorch) is imported only when a model is
trained, never on the runtime path.
"""
from __future__ import annotations

import argparse
import importlib

from pipeline.errors import UserError

# model name -> "module:function" taking the parsed args and returning an exit code
TRAINERS: dict[str, str] = {
    # iBMI decoders (issue 3/5): nodes.decoders
    # collision-avoidance controllers (issue 4): nodes.control
}


def _add_decoder_options(p: argparse.ArgumentParser) -> None:
    """Options of the iBMI decoder family (owned by nodes.decoders)."""


def _add_control_options(p: argparse.ArgumentParser) -> None:
    """Options of the collision-avoidance family (owned by nodes.control)."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a decoder or controller and save it as a data-only model file",
        description="Train a model and save it as .npz/safetensors with its metadata (never a pickle).",
    )
    p.add_argument("--model", required=True, help="model kind: " + ", ".join(TRAINERS) if TRAINERS else "model kind")
    p.add_argument("--out", required=True, help="output model file (.npz)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    _add_decoder_options(p)
    _add_control_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.model not in TRAINERS:
        raise UserError(f"unknown model {args.model!r}; choose one of: {', '.join(TRAINERS)}")
    module_name, _, func_name = TRAINERS[args.model].partition(":")
    return getattr(importlib.import_module(module_name), func_name)(args)
