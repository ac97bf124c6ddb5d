"""``spikeloop evaluate``: score models offline (iBMI decoders on a recording, controllers on data and in closed loop).

Model families register here; the heavy code (torch, snntorch) is imported only when a model is
evaluated, never on the runtime path.
"""
from __future__ import annotations

import argparse
import importlib

from pipeline.cli.mapping_options import add_mapping_options
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

    opt("--recording", default=None, nargs="+", metavar="PATH",
        help="reaching recording(s) (.xdfz/.xdf, NeuroBench .mat, .nwb); the test part (last 25 %% of reaches) "
             "of each is decoded")
    opt("--filter", default=None, metavar="LIST",
        help="decoders: comma-separated Bessel variants to score besides 'none': causal, block-last, block-middle (default: all)")
    opt("--plot", default=None, metavar="PNG", help="write a plot of true vs decoded velocity over a stretch of the test part")
    opt("--plot-seconds", type=float, default=None, metavar="S", help="decoders: seconds shown in the plot (default 10)")
    opt("--chunk", type=int, default=None, metavar="N", help="decoders: samples per packet in the offline pass (default 250 = 1 s)")
    opt("--no-baseline", action="store_true", default=None,
        help="decoders: leave out the linear baseline row (ridge on 256 ms of counts, fitted on the train part; shown by default)")


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
    opt("--baselines", choices=("both", "filled", "none"), default=None,
        help="follow-the-gap baselines driven beside the model in closed loop: both (classic and invalid returns "
             "filled), filled, none (their results do not depend on the model: same seeds, same worlds) (default both)")
    opt("--pictures", default=None, metavar="DIR", help="write a PNG of the first world per controller and family here")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="score models offline: R2, spikes, synaptic ops, timing; or closed-loop driving",
        description="Evaluate one or several model files and write a JSON report, a table and plots.",
    )
    p.add_argument("--model", required=True, nargs="+", help="model file(s) (.npz) to evaluate")
    p.add_argument("--json", dest="json_path", help="write the report as JSON to this path")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    _add_decoder_options(p)
    add_mapping_options(p)
    _add_control_options(p)
    _add_fanout_options(p)
    p.set_defaults(func=run)


def _add_fanout_options(p: argparse.ArgumentParser) -> None:
    """Options of the fan-out (issue 15, pipeline.cluster): each (model, recording) pair as a Ray task."""
    g = p.add_argument_group(
        "fan-out (Ray tasks; the same table and JSON as the serial run)",
        "decoders: one task per model x recording; controllers: one per model x split offline, "
        "one per world family x controller in closed loop")
    g.add_argument("--jobs", type=int, default=None, metavar="N",
                   help="run the pairs as tasks on a local Ray (loopback only) with N CPUs (default: serial, in this process)")
    g.add_argument("--address", default=None, metavar="ADDR",
                   help="run the pairs as tasks on a running Ray cluster (e.g. 10.0.0.5:6379 after `ray start --head`); "
                        "model paths must exist on every node; with --jobs N at most N tasks at once")
    g.add_argument("--task-timeout", type=float, default=None, metavar="S",
                   help="cancel what is still running after S seconds in all (default 86400)")


def run(args: argparse.Namespace) -> int:
    """Dispatch on the model file's ``family`` metadata (every model file records its family)."""
    from pipeline.modelfile import read_family

    families = {read_family(path) for path in args.model}
    if len(families) != 1:
        raise UserError(f"evaluate one model family at a time; got {sorted(families)}")
    family = families.pop()
    if family not in EVALUATORS:
        raise UserError(f"no evaluator for model family {family!r}; known: {', '.join(EVALUATORS)}")
    if family == "decoder":
        _mapping_from_models(args)
    recordings = args.recording or []
    if args.jobs is not None or args.address or len(recordings) > 1:  # issue 15: pairs as (Ray) tasks
        from pipeline.cluster.evaluate import run_fanout

        return run_fanout(args, family)
    args.recording = recordings[0] if recordings else None
    module_name, _, func_name = EVALUATORS[family].partition(":")
    return getattr(importlib.import_module(module_name), func_name)(args)


def _mapping_from_models(args: argparse.Namespace) -> None:
    """No mapping option given: use the one the models were trained with (``metadata.mapping``),
    when they all agree; say so."""
    from pipeline.modelfile import load_model

    keys = ("neural", "kinematics", "markers", "kinematics_kind")
    if any(getattr(args, k, None) for k in keys):
        return
    found = {tuple(sorted((load_model(p)[1].get("mapping") or {}).items())) for p in args.model}
    if len(found) != 1 or not found.copy().pop():
        return
    mapping = dict(found.pop())
    for k in keys:
        setattr(args, k, mapping.get(k))
    shown = " ".join(f"--{k.replace('_', '-')} {mapping[k]}" for k in keys if mapping.get(k))
    print(f"using the stream mapping the model{'s were' if len(args.model) > 1 else ' was'} trained with: {shown}")
