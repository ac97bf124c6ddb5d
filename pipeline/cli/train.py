"""``spikeloop train``: train a decoder (iBMI) or a collision-avoidance controller.

Model families register here; the heavy code (torch, snntorch) is imported only when a model is
trained, never on the runtime path.
"""
from __future__ import annotations

import argparse
import importlib

from pipeline.cli.mapping_options import add_mapping_options
from pipeline.cli.options import family_options
from pipeline.errors import UserError

# model name -> "module:function" taking the parsed args and returning an exit code
TRAINERS: dict[str, str] = {
    # iBMI decoders (issue 3/5): nodes.decoders
    "snn_streaming": "nodes.decoders.training:run_cli",
    "snn_3d": "nodes.decoders.training:run_cli",
    "ann": "nodes.decoders.training:run_cli",
    "ann_3d": "nodes.decoders.training:run_cli",
    "lstm": "nodes.decoders.training:run_cli",
    # collision-avoidance controllers (issue 4): nodes.control
    "crnn": "nodes.control.training:train_crnn",
    "crnn_driver": "nodes.control.driving:train_driver",
    "reflex": "nodes.control.reflex:add_reflex_cli",
    "timesteps": "nodes.control.driving:check_timesteps_cli",
    "ensemble": "nodes.control.ensemble:ensemble_cli",
}


def _add_decoder_options(p: argparse.ArgumentParser) -> None:
    """Options of the iBMI decoder family (owned by nodes.decoders)."""
    opt = family_options(p, "iBMI decoders (--model snn_streaming | snn_3d | ann | ann_3d | lstm)")

    opt("--recording", default=None, metavar="PATH", help="reaching recording to train on (.xdfz/.xdf, NeuroBench .mat, .nwb); train/val split as NeuroBench")
    opt("--epochs", type=int, default=None, metavar="N", help="maximum epochs, early stopping on the validation part (decoders: default 40; crnn: default 60)")
    opt("--patience", type=int, default=None, metavar="N", help="decoders: stop after N epochs without a better validation R2 (default 6)")
    opt("--batch-size", type=int, default=None, metavar="B", help="decoders: windows per batch (default 32)")
    opt("--lr", type=float, default=None, help="decoders: Adam learning rate (default 0.003)")
    opt("--window", type=int, default=None, metavar="STEPS", help="decoders: truncated-BPTT window in 4 ms steps for snn_streaming/lstm (default 160)")
    opt("--max-minutes", type=float, default=None, metavar="M", help="stop training after M minutes (default 4)")
    opt("--threads", type=int, default=None, metavar="N", help="decoders: torch threads (default 1; tiny tensors gain nothing from more)")
    opt("--attention", choices=("none", "asa"), default=None, help="decoders: 'asa' adds Advance Spatial Attention to the hidden layers of snn_streaming (causal) or snn_3d (per window); default none")
    opt("--asa-ratio", type=float, default=None, metavar="LAMBDA", help="decoders: ASA ratio λ, fraction of channels in the important part (default 0.5)")
    opt("--asa-reduction", type=int, default=None, metavar="R", help="decoders: ASA reduction of the scoring fc over time (default 1)")
    opt("--asa-window", type=int, default=None, metavar="STEPS", help="decoders: causal ASA window in 4 ms steps, current + past (snn_streaming; default 4)")
    opt("--asa-bias", action="store_true", default=None,
        help="decoders: the causal ASA also learns an offset per part (important / rest) before its sigmoid, "
             "starting at 0, so a part's gain can go to ~0 and silence those neurons (snn_streaming; default off)")
    opt("--asa-bias-lr", type=float, default=None, metavar="LR",
        help="decoders: Adam step size of the ASA offsets (--asa-bias), e.g. 0.05 so they can reach the ~-4 that "
             "silences a part within a few epochs (default: the same as --lr)")
    opt("--weight-decay", type=float, default=None, metavar="L2",
        help="decoders: Adam weight decay (L2) on every parameter (default 0); crnn / crnn_driver: the same (default 1e-4)")
    opt("--dropout", type=float, default=None, metavar="P",
        help="decoders: dropout on the normalised input and hidden activity of snn_3d/lstm while training (default 0); "
             "crnn: dropout on the features entering the RNN and on its read-out (default 0)")
    opt("--input-noise", type=float, default=None, metavar="STD",
        help="decoders: Gaussian noise of this std on the normalised input of snn_3d/lstm while training (default 0); "
             "crnn / crnn_driver: std in metres added to every range (default 0)")
    opt("--hidden", type=int, default=None, metavar="N", help="decoders: lstm hidden units (default 32); crnn: RNN units, from scratch only (default 32); "
             "crnn_driver: RNN units (default 32; with --init, a new network, as --conv-channels)")
    opt("--input-norm", choices=("layernorm", "zscore"), default=None,
        help="decoders: lstm input normalisation: LayerNorm over channels (default) or a per-channel z-score with the training part's mean/std")
    opt("--forget-bias", type=float, default=None, metavar="B",
        help="decoders: lstm's initial forget-gate bias (default: torch's init, a memory of ~1 step; "
             "3 starts each cell at 0.95 per 4 ms step, ~80 ms)")
    opt("--feature-width", type=int, default=None, metavar="BINS",
        help="decoders: lstm input = spike counts over the last BINS 4 ms bins, every 4 ms (default 8 = 32 ms)")
    opt("--learn-neurons", action="store_true", default=None,
        help="decoders: snn_3d learns one β and one θ per layer (default: fixed β 0.5, θ 0.5 as in the paper)")
    opt("--rate-penalty", type=float, default=None, metavar="W",
        help="decoders: add W x (spikes per neuron per step) to the MSE loss of snn_streaming/snn_3d (default 0: MSE only)")


def _add_control_options(p: argparse.ArgumentParser) -> None:
    """Options of the collision-avoidance family (owned by nodes.control)."""
    opt = family_options(p, "collision-avoidance controllers (--model crnn)")

    opt("--dataset", default=None, metavar="PATH", help="directory of the ICRA 2020 LiDAR traces (trace_0001.csv.gz ...)")
    opt("--split", choices=("standard", "keras-ncp"), default=None,
        help="controllers: real-trace split: 'standard' (test traces 1,5,12,14,19,25,27) or 'keras-ncp' "
             "(test traces 7,8,10,19,23,25,27 with mirrors, the split later work reports on); default standard")
    opt("--augment", action="store_true", default=None,
        help="controllers: per-sequence range scaling x U(0.85, 1.15) and N(0, 3 cm) range noise while training")
    opt("--conv-channels", default=None, metavar="C1,C2,C3,C4",
        help="crnn: out-channels of the four conv layers, from scratch only (default 12,16,24,1; the last one "
             "times 28 positions is the number of features the RNN sees, e.g. 12,16,24,4 -> 112); "
             "crnn_driver: of its three conv layers (default 8,8,2; x 17 positions), with --init a NEW network "
             "of this size is trained on the --init file's aggregated DAgger data before its rounds continue")
    opt("--teachers", nargs="+", default=None, metavar="MODEL",
        help="crnn: ensemble distillation: train on the mean steering of these networks (crnn files of the same "
             "split, e.g. several seeds) blended with the recorded labels; validation and test keep the labels")
    opt("--members", nargs="+", default=None, metavar="MODEL",
        help="--model ensemble: quantised driving controllers (same levels and conv geometry) merged into ONE "
             "network whose steering is their mean plus the first file's reflex; spiking like any driver")
    opt("--teacher-weight", type=float, default=None, metavar="W",
        help="crnn: training target = (1 - W) x label + W x the teachers' mean (default 1)")
    opt("--levels", type=int, default=None, metavar="L", help="quantise with L levels and fine-tune (QCRNN); omit for the float CRNN")
    opt("--init", default=None, metavar="MODEL", help="start from this model file (e.g. the float CRNN before quantising; "
        "decoders: a model of the same kind, e.g. a plain SNN to fine-tune with ASA or a rate penalty)")
    opt("--sim-episodes", type=int, default=None, metavar="N", help="add N episodes of the simulator's expert planner to the training data")
    opt("--dagger-episodes", type=int, default=None, metavar="N",
        help="add N simulator episodes driven by the --init controller and labelled by the expert (DAgger)")
    opt("--epochs", type=int, default=None, metavar="N", help="maximum epochs (default 60; early stopping on the validation traces)")
    opt("--max-minutes", type=float, default=None, metavar="M", help="stop training after M minutes (default 4)")
    opt("--rounds", type=int, default=None, metavar="N", help="crnn_driver: DAgger rounds after the expert round (default 4)")
    opt("--episodes", type=int, default=None, metavar="N", help="crnn_driver: episodes per world family per round (default 6)")
    opt("--val-worlds", type=int, default=None, metavar="N", help="crnn_driver: validation worlds per family for model selection (default 20)")
    opt("--worlds-files", nargs="+", default=None, metavar="YAML",
        help="crnn_driver: world families to train in (default the 4 in configs/worlds)")
    opt("--episode-s", type=float, default=None, metavar="S", help="crnn_driver: episode length in seconds (default 30)")
    opt("--cache", default=None, metavar="DIR", help="crnn_driver: keep/reuse the expert episodes here (data-only .npz)")
    opt("--reflex", nargs="+", default=None, metavar="D0:GAIN[:FRONT[:TIE[:BEAMS]]]",
        help="--model reflex: near-obstacle reflex candidates, reach D0 metres : steering per metre of intrusion "
             "[: longer reach FRONT metres straight ahead, tapering as cos^2 to D0 at the sides "
             "[: TIE degrees, the sectors within +-TIE of the heading all push left (breaks the tie of a wall met "
             "square-on) [: BEAMS per reflex neuron, 10 = 5-degree sectors (default), 1 = one neuron per beam]]] (default 0.5:2; e.g. 0.6:2:0.9:10, 0.6:2:0.6:0:1); the best on validation worlds (or none) is kept. "
             "--model crnn_driver: ONE such value, the reflex in the DAgger loop (default: the --init file's reflex; "
             "0:0 = none)")
    opt("--val-offset", type=int, default=None, metavar="N",
        help="reflex: validation worlds start at seed 100000 + N (default 0), e.g. to choose a reflex on worlds the "
             "DAgger rounds were not selected on")
    opt("--val-episode-s", type=float, default=None, metavar="S",
        help="crnn_driver / reflex: validation episode length for model selection (default 60)")
    opt("--state-noise", type=float, default=None, metavar="STD",
        help="crnn / crnn_driver: Gaussian noise of this std on the turn-rate state input while training "
             "(default 0; it is in [-1, 1])")
    opt("--state-drop", type=float, default=None, metavar="P",
        help="crnn / crnn_driver: per training sequence, feed the turn-rate state input as 0 with probability P, "
             "so the network cannot use its own turn as a latch (default 0)")
    opt("--consistency", type=float, default=None, metavar="W",
        help="crnn (quantised) / crnn_driver: add W x MSE between the float path of the same weights and the "
             "quantised network's output (held fixed) on every training sequence, so the float network decides "
             "as the quantised = spiking one does (default 0)")
    opt("--ema", type=float, default=None, metavar="DECAY",
        help="crnn: score and keep an exponential moving average of the weights, DECAY per optimiser step "
             "(e.g. 0.999, a memory of ~1000 steps; default off)")
    opt("--swa-from", type=int, default=None, metavar="EPOCH",
        help="crnn: stochastic weight averaging: score and keep the mean of the weights after every epoch from "
             "EPOCH on (1-based; default off; not with --ema)")
    opt("--lr-schedule", choices=("plateau", "cosine"), default=None,
        help="crnn: learning-rate schedule: halve on a validation plateau (default) or cosine decay to 0 over --epochs")
    opt("--float-drive", type=float, default=None, metavar="F",
        help="crnn_driver: fraction of each round's DAgger episodes driven by the FLOAT path of the same "
             "weights instead of the quantised network (default 0), so the float network meets its own states")
    opt("--keep-rounds", action="store_true", default=None,
        help="crnn_driver: also save every DAgger round's network (with the reflex) as OUT.roundN.npz, "
             "its T unchecked (run --model timesteps on the one you keep); default: only the selected round")
    opt("--extra-data", nargs="+", default=None, metavar="NPZ",
        help="crnn_driver: more expert-labelled sequence files (data-only .npz with scans (N, 32, 541) m, "
             "state (N, 32, 2), steering (N, 32), as --cache writes them, e.g. other DAgger runs' rounds) "
             "added to the aggregated training data; each file's name and SHA-256 are stored in the model")
    opt("--fit-minutes", type=float, default=None, metavar="M",
        help="crnn_driver: time cap of each fine-tuning after a DAgger round (default 2.5) and of a new "
             "network's float fit (default 3) and quantised fit (default 2.5)")
    opt("--target-rate", type=float, default=None, metavar="F",
        help="crnn_driver: worst-family validation collision-free rate from which rounds are compared on progress "
             "(cells visited over follow-the-gap, filled) (default 0.95)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a decoder or controller and save it as a data-only model file",
        description="Train a model and save it as a data-only .npz with its metadata (never a pickle). "
                    "Decoders train on a reaching recording (any layout: see --neural/--kinematics and "
                    "`spikeloop inspect`); controllers on the ICRA 2020 LiDAR traces.",
    )
    p.add_argument("--model", required=True, help="model kind: " + ", ".join(TRAINERS) if TRAINERS else "model kind")
    p.add_argument("--out", required=True, help="output model file (.npz)")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    _add_decoder_options(p)
    add_mapping_options(p)
    _add_control_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.model not in TRAINERS:
        raise UserError(f"unknown model {args.model!r}; choose one of: {', '.join(TRAINERS)}")
    module_name, _, func_name = TRAINERS[args.model].partition(":")
    code = getattr(importlib.import_module(module_name), func_name)(args)
    if code == 0 and getattr(args, "recording", None) and args.model != "crnn":
        _record_mapping(args)
    return code


def _record_mapping(args: argparse.Namespace) -> None:
    """Write the stream mapping the decoder was trained with into its model file (``metadata.mapping``),
    so ``evaluate`` uses the same streams when no mapping option is given."""
    from pipeline.cli.mapping_options import mapping_from_args
    from pipeline.modelfile import load_model, save_model

    arrays, meta = load_model(args.out)
    meta["mapping"] = mapping_from_args(args).to_dict()
    save_model(args.out, arrays, meta)
