"""``spikeloop evaluate``: score models offline (iBMI decoders on a recording, controllers on data and in closed loop).

Model families register here; the heavy code (torch, snntorch) is imported only when a model is
evaluated, never on the runtime path.
"""
from __future__ import annotations

import argparse
import importlib

from pipeline.cli.options import family_options
from pipeline.errors import UserError

# model family (the model file's metadata 'family') -> "module:function" taking the parsed args and returning an exit code
EVALUATORS: dict[str, str] = {
    # iBMI decoders (issue 3/5): nodes.decoders
    "decoder": "nodes.decoders.evaluation:run_cli",
    # collision-avoidance controllers (issue 4): nodes.control
    "controller": "nodes.control.evaluation:evaluate_controllers",
}


def _add_decoder_options(p: argparse.ArgumentParser) -> None:
    """Options of the iBMI decoder family (owned by nodes.decoders)."""
    opt = family_options(p, "iBMI decoders (model family 'decoder')")

    opt("--recording", default=None, metavar="PATH", help="reaching recording; its test part (last 25 %% of reaches) is decoded")
    opt("--filter", default=None, metavar="LIST",
        help="decoders: comma-separated Bessel variants to score besides 'none': causal, block-last, block-middle (default: all)")
    opt("--plot", default=None, metavar="PNG", help="write a plot of true vs decoded velocity over a stretch of the test part")
    opt("--plot-seconds", type=float, default=None, metavar="S", help="decoders: seconds shown in the plot (default 10)")
    opt("--chunk", type=int, default=None, metavar="N", help="decoders: samples per packet in the offline pass (default 250 = 1 s)")


def _add_control_options(p: argparse.ArgumentParser) -> None:
    """Options of the collision-avoidance family (owned by nodes.control)."""
    opt = family_options(p, "collision-avoidance controllers (model family 'controller')")

    opt("--dataset", default=None, metavar="PATH", help="ICRA 2020 LiDAR traces: score float/quantised/spiking test MSE")
    opt("--split", choices=("standard", "keras-ncp"), default=None,
        help="controllers: real-trace test split to score (default: both, side by side)")
    opt("--timesteps", type=int, nargs="+", default=None, metavar="T",
        help="spiking time steps per scan to sweep (default 1 2 4 6 8 10 12 16 24 32); the closed loop uses the largest "
             "given, else the model file's stored T (its lossless T; 16 if it has none)")
    opt("--plot", default=None, metavar="PNG", help="plot of test MSE versus T (default evaluate_controller_mse_vs_T.png)")
    opt("--closed-loop", action="store_true", default=None,  # e.g. --model models/crnn_driver_q8.npz --closed-loop --worlds 200 --episode-s 20
        help="drive the simulated robot in N test worlds of every world family (float, quantised, spiking, follow-the-gap; "
             "paired McNemar tests, Wilson intervals)")
    opt("--worlds", type=int, default=None, metavar="N", help="test worlds per family for --closed-loop (default 200)")
    opt("--world", nargs="+", default=None, metavar="YAML",
        help="world family files (default the four in configs/worlds: default, dense, corridor, rooms)")
    opt("--episode-s", type=float, default=None, metavar="S", help="episode length in seconds (default: the world's, 60)")
    opt("--no-sensor-noise", action="store_true", default=None,
        help="ideal LiDAR (no range noise, no zero returns); default: noise and 1.27 %% zero returns as measured")
    opt("--pictures", default=None, metavar="DIR", help="write a PNG of the first world per controller and family here")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="score models offline: R2, spikes, synaptic ops, timing; or closed-loop driving",
        description="Evaluate one or several model files and write a JSON report, a table and plots.",
    )
    p.add_argument("--model", required=True, nargs="+", help="model file(s) (.npz) to evaluate")
    p.add_argument("--json", dest="json_path", help="write the report as JSON to this path")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    _add_decoder_options(p)
    _add_control_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Dispatch on the model file's ``family`` metadata (every model file records its family)."""
    from pipeline.modelfile import read_family

    families = {read_family(path) for path in args.model}
    if len(families) != 1:
        raise UserError(f"evaluate one model family at a time; got {sorted(families)}")
    family = families.pop()
    if family not in EVALUATORS:
        raise UserError(f"no evaluator for model family {family!r}; known: {', '.join(EVALUATORS)}")
    module_name, _, func_name = EVALUATORS[family].partition(":")
    return getattr(importlib.import_module(module_name), func_name)(args)
