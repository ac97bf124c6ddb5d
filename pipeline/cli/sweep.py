"""``spikeloop sweep SWEEP.yaml``: search ``spikeloop train`` options with Ray Tune (ASHA, checkpoints, resume)."""
from __future__ import annotations

import argparse
import shutil

from pipeline.errors import UserError

EXAMPLE = """\
example sweep file (configs/sweeps/ann_lr.yaml):
  model: ann
  recording: recordings/reaching_sample.xdfz
  options: {epochs: 8, max_minutes: 3}
  space:
    lr: {loguniform: [1.0e-4, 1.0e-2]}
    seed: {choice: [0, 1, 2]}
  samples: 6
  scheduler: {asha: {grace_period: 2, reduction_factor: 2}}

space domains: loguniform/uniform/randint [low, high], choice/grid [values]; keys are
`spikeloop train` options (lr, epochs, batch_size, window, seed, levels, ...).
crnn_driver trains in the simulator (no dataset:); its trials report once per DAgger round
(options.rounds + 1 reports) with the worst family's validation collision-free rate.
other keys: metric (default val_r2 for decoders, val_mse for crnn, val_collision_free for
crnn_driver), mode (max/min; default max for *r2 and *collision_free),
scheduler (asha | {asha: {grace_period, reduction_factor, brackets}} | fifo), resources
(per trial, default {cpu: 1}), max_concurrent, cpus (local Ray), storage (default sweeps/),
name (default: the file's stem), out (default <storage>/<name>/best.npz), seed (of the sampler).

examples:
  spikeloop sweep configs/sweeps/ann_lr.yaml                 # local Ray on loopback, all CPUs
  spikeloop sweep configs/sweeps/ann_lr.yaml --resume        # continue after Ctrl-C
  spikeloop sweep configs/sweeps/driver_lr.yaml              # DAgger driver, metric val_collision_free
  spikeloop sweep configs/sweeps/ann_lr.yaml --address 10.0.0.5:6379   # on a cluster (ray start --head)
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep",
        help="search training options with Ray Tune (ASHA early stopping, checkpoints, resume); export the best model",
        description="Run a hyperparameter sweep of `spikeloop train` with Ray Tune: each trial trains with sampled "
                    "options, reports its validation score every epoch (ASHA stops poor trials) and checkpoints its "
                    "model; the best checkpoint is exported as a normal .npz model file.",
        epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("sweep", metavar="SWEEP.yaml", help="the sweep file (model, data, options, space, samples, scheduler)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted sweep from its directory (Tuner.restore)")
    p.add_argument("--fresh", action="store_true", help="delete the sweep's directory first and start again")
    p.add_argument("--address", default=None, metavar="ADDR", help="run on a running Ray cluster (default: a local Ray on loopback)")
    p.add_argument("--cpus", type=int, default=None, metavar="N", help="CPUs of the local Ray (default: the file's 'cpus', else all)")
    p.add_argument("--storage", default=None, metavar="DIR", help="where sweeps keep state, trials and checkpoints (default: the file's 'storage', else sweeps/)")
    p.add_argument("--out", default=None, metavar="MODEL", help="where to export the best model (default <storage>/<name>/best.npz)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pipeline.cluster.sweep import load_spec, run_sweep

    if args.resume and args.fresh:
        raise UserError("--resume and --fresh exclude each other")
    if args.cpus is not None and args.cpus < 1:
        raise UserError(f"--cpus must be >= 1, got {args.cpus}")
    spec = load_spec(args.sweep, storage=args.storage, out=args.out)
    if args.fresh and Path(spec.path).exists():
        shutil.rmtree(spec.path)
    print(f"sweep {spec.name}: {spec.model} on {spec.data_path or 'the simulator'}; state in {spec.path}")
    outcome = run_sweep(spec, resume=args.resume, address=args.address, cpus=args.cpus)
    if outcome.exported:
        b = outcome.best
        print(f"best: trial {b['trial']} {b['config']}, {spec.metric} {b['best_' + spec.metric]:.4f}; "
              f"model written to {outcome.exported}")
    if outcome.interrupted:
        print(f"interrupted: resume with  spikeloop sweep {args.sweep} --resume")
        return 130
    print(f"summary: {Path(spec.path) / 'summary.json'}; {outcome.wall_s:.0f} s")
    return 0
