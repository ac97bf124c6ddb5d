"""Training sweeps with Ray Tune (``spikeloop sweep SWEEP.yaml``).

A sweep file names a model kind, its data, fixed ``spikeloop train`` options and a search space
over more of them (seeds included)::

    model: ann                      # spikeloop train --model
    recording: recordings/reaching_sample.xdfz   # decoders; controllers: dataset: PATH
    options: {epochs: 8, max_minutes: 3}         # every trial
    space:                          # sampled per trial
      lr: {loguniform: [1.0e-4, 1.0e-2]}
      seed: {choice: [0, 1, 2]}
    samples: 6                      # trials (times every grid point)
    scheduler: {asha: {grace_period: 2, reduction_factor: 2}}   # or asha, or fifo
    metric: val_r2                  # default: val_r2 (decoders, max) or val_mse (controllers, min)

``model: crnn_driver`` trains in the simulator (no ``dataset:``): Tune's time axis is its DAgger
rounds (``options.rounds`` + 1 reports, the expert round first) and the default metric
``val_collision_free``, the worst world family's collision-free rate on the validation worlds
(maximised); ``val_mse`` (the last fine-tuning's validation MSE) is reported beside it.
A resumed ``crnn_driver`` trial starts again from its first round (its trainer keeps no state).

Each trial runs exactly ``spikeloop train --model KIND --recording R --<option> VALUE ...``: the
options are parsed by the train command's own parser (a misspelled option is refused before any
trial starts, with the nearest valid name), then the family's trainer runs with an ``on_epoch``
callback. After every epoch the trial reports the epoch's validation score to Tune (ASHA stops
poor trials at its rungs, counted in epochs) and checkpoints the exported model as a normal model
file (``model.npz`` in a Tune checkpoint). The best checkpoint of the best trial (over all of its
epochs) is exported as a model file (``out:``, default ``<storage>/<name>/best.npz``) with the
sweep recorded in its metadata under ``training.sweep``.

Resuming: Ctrl-C (SIGINT, or SIGUSR1) stops the sweep after Tune saves its state in
``<storage>/<name>``; ``spikeloop sweep SWEEP.yaml --resume`` continues it with
``Tuner.restore``: finished trials are kept, trials not yet started run, and a trial that was cut
off continues from its last checkpoint: each epoch's checkpoint also holds the trainer's full state
(:mod:`pipeline.trainstate`: weights, optimizer moments, learning-rate schedule, random generators,
best-so-far and early-stopping counters, as ``.npz`` + JSON), so the resumed trial runs only the
epochs it had not finished, and they are the epochs an uninterrupted trial would have run. Tune
keeps its experiment state as pickles: resume only from a sweep directory this machine's user wrote.

Ray: a local Ray on loopback with ``cpus`` CPUs (default: all), or ``--address`` of a cluster;
each trial asks for ``resources`` (default ``{cpu: 1}``) and uses one torch thread unless
``options: {threads: N}`` says otherwise.
"""
from __future__ import annotations

import argparse
import difflib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import UserError

DOMAINS = ("loguniform", "uniform", "randint", "choice", "grid")
RESERVED = ("model", "out", "recording", "dataset")  # given at the top level of the sweep file, not as options
SIMULATED = {"crnn_driver": "val_collision_free"}
"""Model kinds trained in the simulator (no data file), with their default metric: the worst world
family's validation collision-free rate after each DAgger round (maximised)."""
NOT_SWEPT = {"reflex": "it selects a reflex for a trained driver among candidates (no training loop to "
                       "report on); sweep crnn_driver, then run spikeloop train --model reflex --init BEST.npz"}
KEYS = ("name", "model", "recording", "dataset", "options", "space", "samples", "metric", "mode", "scheduler",
        "resources", "max_concurrent", "cpus", "storage", "out", "seed")


@dataclass
class SweepSpec:
    """A parsed, validated sweep file (see the module docs). Paths are absolute."""

    file: str
    name: str
    model: str
    family: str  # "decoder" or "controller"
    data_option: str  # "--recording" or "--dataset"
    data_path: str
    options: dict[str, Any]
    space: dict[str, dict[str, Any]]
    samples: int
    metric: str
    mode: str
    scheduler: dict[str, Any] | None  # {"grace_period": .., "reduction_factor": ..} for ASHA, None for FIFO
    max_epochs: int
    resources: dict[str, float] = field(default_factory=lambda: {"cpu": 1})
    max_concurrent: int | None = None
    cpus: int | None = None
    storage: str = ""
    out: str = ""
    seed: int = 0

    @property
    def path(self) -> str:
        """The experiment directory (Tune's state, trials, checkpoints)."""
        return str(Path(self.storage) / self.name)


# --- the train command's options ----------------------------------------------------------------
def train_parser() -> argparse.ArgumentParser:
    """The parser of ``spikeloop train`` (the same one the command line uses)."""
    from pipeline.cli import train as train_cli

    root = argparse.ArgumentParser(prog="spikeloop", exit_on_error=False)
    sub = root.add_subparsers(dest="command")
    train_cli.register(sub)
    return sub.choices["train"]


def option_argv(options: dict[str, Any]) -> list[str]:
    """``{"lr": 0.01, "max_minutes": 2, "closed_loop": True}`` → ``["--lr", "0.01", "--max-minutes", "2", ...]``."""
    argv: list[str] = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            if value:
                argv.append(flag)
        elif isinstance(value, (list, tuple)):
            argv += [flag, *map(str, value)]
        elif value is not None:
            argv += [flag, repr(value) if isinstance(value, float) else str(value)]
    return argv


def train_argv(spec: SweepSpec, config: dict[str, Any], out: str) -> list[str]:
    """The ``spikeloop train`` command line of one trial (``config``: the sampled options)."""
    data = [spec.data_option, spec.data_path] if spec.data_path else []
    return ["--model", spec.model, *data, "--out", out, *option_argv({**spec.options, **config})]


def parse_train_args(argv: list[str], where: str) -> argparse.Namespace:
    """Parse a train command line; a bad value is a one-line :class:`UserError` naming ``where``."""
    parser = train_parser()
    try:
        args, extra = parser.parse_known_args(argv)
    except (argparse.ArgumentError, SystemExit) as exc:
        raise UserError(f"{where}: spikeloop train refuses these options: {exc}") from None
    if extra:
        raise UserError(f"{where}: spikeloop train refuses {' '.join(extra)}")
    return args


# --- the sweep file -----------------------------------------------------------------------------
def _nearest(name: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.5)
    if not close:  # a lengthened or shortened name ('lrate' for 'lr'): the longest valid prefix match
        close = sorted((v for v in valid if len(v) >= 2 and (name.startswith(v) or v.startswith(name))),
                       key=len, reverse=True)[:1]
    return f" (did you mean {close[0]!r}?)" if close else ""


def _first_value(domain: dict[str, Any]) -> Any:
    (kind, arg), = domain.items()
    return arg[0]


def load_spec(path: str, *, storage: str | None = None, out: str | None = None) -> SweepSpec:
    """Read and check a sweep file; every error names the file and the key."""
    import yaml

    from pipeline.cli.train import TRAINERS

    p = Path(path)
    if not p.is_file():
        raise UserError(f"sweep file not found: {path}")
    try:
        raw = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path}: a sweep file is a mapping (model:, recording:, space: ...)")
    for key in raw:
        if key not in KEYS:
            raise UserError(f"{path}: unknown key {key!r}{_nearest(str(key), list(KEYS))}")
    model = raw.get("model")
    if model not in TRAINERS:
        raise UserError(f"{path}: key 'model': {model!r} is not a trainable model; choose one of {', '.join(TRAINERS)}")
    if model in NOT_SWEPT:
        raise UserError(f"{path}: key 'model': {model!r} cannot be swept: {NOT_SWEPT[model]}")
    family = "decoder" if TRAINERS[model].startswith("nodes.decoders") else "controller"
    data_key = "recording" if family == "decoder" else "dataset"
    if model in SIMULATED:  # trains in the simulator: no recording or traces
        if raw.get(data_key):
            raise UserError(f"{path}: key {data_key!r}: model {model!r} trains in the simulator and reads no "
                            f"{data_key}; remove the key (its worlds are options.worlds_files)")
        data_path = None
    else:
        if not raw.get(data_key):
            raise UserError(f"{path}: key {data_key!r} is required for model {model!r}")
        data_path = Path(str(raw[data_key])).expanduser()
        if not data_path.exists():
            raise UserError(f"{path}: key {data_key!r}: {data_path} does not exist")

    valid = sorted({a.dest for a in train_parser()._actions if a.option_strings} - {"help", *RESERVED})
    options = dict(raw.get("options") or {})
    space = dict(raw.get("space") or {})
    for section, entries in (("options", options), ("space", space)):
        for key in entries:
            name = str(key).replace("-", "_")
            if name in RESERVED:
                raise UserError(f"{path}: {section}.{key}: give {name!r} at the top level of the sweep file")
            if name not in valid:
                raise UserError(f"{path}: {section}.{key}: not an option of spikeloop train{_nearest(name, valid)}")
    options = {str(k).replace("-", "_"): v for k, v in options.items()}
    space = {str(k).replace("-", "_"): v for k, v in space.items()}
    for key, domain in space.items():
        if not (isinstance(domain, dict) and len(domain) == 1 and next(iter(domain)) in DOMAINS):
            raise UserError(f"{path}: space.{key}: write one of {', '.join(f'{{{d}: [...]}}' for d in DOMAINS)}")
        (kind, arg), = domain.items()
        if not isinstance(arg, list) or not arg or (kind in ("loguniform", "uniform", "randint") and len(arg) != 2):
            raise UserError(f"{path}: space.{key}.{kind}: needs a list "
                            f"({'[low, high]' if kind in ('loguniform', 'uniform', 'randint') else '[value, ...]'})")
        if kind == "loguniform" and not 0 < float(arg[0]) < float(arg[1]):
            raise UserError(f"{path}: space.{key}.loguniform: needs 0 < low < high, got {arg}")

    samples = int(raw.get("samples", 1))
    if samples < 1:
        raise UserError(f"{path}: key 'samples': must be >= 1, got {samples}")
    metric = str(raw.get("metric") or ("val_r2" if family == "decoder" else SIMULATED.get(model, "val_mse")))
    mode = str(raw.get("mode") or ("max" if metric.endswith("r2") or "collision_free" in metric else "min"))
    if mode not in ("min", "max"):
        raise UserError(f"{path}: key 'mode': min or max, got {mode!r}")
    # Tune's time axis: epochs, or for a DAgger driver its rounds (one report per round, the expert round first)
    unit, default_units, extra = ("rounds", 4, 1) if model in SIMULATED else ("epochs", 40, 0)
    try:
        epochs = int(options.get(unit, default_units))
        if unit in space:
            (kind, arg), = space[unit].items()
            epochs = max(int(v) for v in arg)
        epochs += extra
    except (TypeError, ValueError):
        raise UserError(f"{path}: {unit} must be whole numbers, got {options.get(unit, space.get(unit))!r}") from None
    sched = raw.get("scheduler", "asha")
    if sched in (None, "fifo", "none"):
        scheduler = None
    elif sched == "asha" or (isinstance(sched, dict) and set(sched) == {"asha"}):
        scheduler = {"grace_period": 1, "reduction_factor": 2, **((sched or {}).get("asha") or {} if isinstance(sched, dict) else {})}
        bad = set(scheduler) - {"grace_period", "reduction_factor", "brackets"}
        if bad:
            raise UserError(f"{path}: scheduler.asha: unknown {sorted(bad)}; known: grace_period, reduction_factor, brackets")
        if not 1 <= int(scheduler["grace_period"]) <= int(epochs):
            raise UserError(f"{path}: scheduler.asha.grace_period must be in 1..epochs ({epochs}), got {scheduler['grace_period']}")
        if float(scheduler["reduction_factor"]) <= 1:
            raise UserError(f"{path}: scheduler.asha.reduction_factor must be > 1")
    else:
        raise UserError(f"{path}: key 'scheduler': asha, {{asha: {{grace_period: G, reduction_factor: R}}}} or fifo; got {sched!r}")
    resources = {str(k): float(v) for k, v in (raw.get("resources") or {"cpu": 1}).items()}
    name = str(raw.get("name") or p.stem)
    storage_dir = Path(storage or raw.get("storage") or "sweeps").expanduser().resolve()
    out_path = out or raw.get("out") or str(storage_dir / name / "best.npz")
    spec = SweepSpec(
        file=str(path), name=name, model=model, family=family, data_option=f"--{data_key}",
        data_path=str(data_path.resolve()) if data_path is not None else "", options=options, space=space, samples=samples, metric=metric, mode=mode,
        scheduler=scheduler, max_epochs=int(epochs), resources=resources,
        max_concurrent=raw.get("max_concurrent"), cpus=raw.get("cpus"), storage=str(storage_dir),
        out=str(Path(out_path).expanduser().resolve()), seed=int(raw.get("seed", 0)),
    )
    # the train command's parser checks every value's type now, not in a trial an hour from now
    parse_train_args(train_argv(spec, {k: _first_value(d) for k, d in space.items()}, "/dev/null"), path)
    return spec


def param_space(spec: SweepSpec) -> dict[str, Any]:
    """The Tune search space of ``spec.space``."""
    from ray import tune

    make = {"loguniform": lambda a: tune.loguniform(float(a[0]), float(a[1])),
            "uniform": lambda a: tune.uniform(float(a[0]), float(a[1])),
            "randint": lambda a: tune.randint(int(a[0]), int(a[1])),
            "choice": tune.choice, "grid": tune.grid_search}
    return {key: make[kind](arg) for key, d in spec.space.items() for kind, arg in d.items()}


# --- one trial (runs in a Ray worker) -----------------------------------------------------------
def run_trial(config: dict[str, Any], spec: SweepSpec) -> None:
    """One trial: ``spikeloop train`` with ``config``'s options, reporting and checkpointing each epoch."""
    from ray import tune

    from pipeline.cli.train import TRAINERS
    from pipeline.cluster.executor import call
    from pipeline.modelfile import load_model, save_model
    from pipeline.trainstate import TrainState

    options = dict(config)
    if "threads" not in options and "threads" not in spec.options:
        options["threads"] = 1
    scratch = tempfile.TemporaryDirectory(prefix="spikeloop-trial-")  # the trainer's own --out; checkpoints are what counts
    args = parse_train_args(train_argv(spec, options, str(Path(scratch.name) / "final.npz")), spec.file)
    args.command = "train"
    args.progress = False  # no progress bars from inside workers (Tune reports progress)
    history: list[dict[str, Any]] = []
    args.resume_state = None
    resumed_from = tune.get_checkpoint()  # set when Tune resumes this trial (spikeloop sweep --resume)
    if resumed_from is not None:
        with resumed_from.as_directory() as d:
            args.resume_state = TrainState.load(d)
            if args.resume_state is not None and (Path(d) / "model.npz").is_file():
                _, last_meta = load_model(Path(d) / "model.npz")
                history = list(((last_meta.get("training") or {}).get("history")) or [])

    start_epoch = int(args.resume_state.loop.get("epoch", 0)) if args.resume_state is not None else 0

    def on_epoch(record: dict[str, Any], arrays: dict, meta: dict[str, Any], state: TrainState | None = None) -> None:
        epoch = int(record["epoch"]) + 1  # epochs done
        metrics = {k: float(v) for k, v in record.items() if isinstance(v, (int, float))} | {"epoch": epoch}
        metrics["resumed_from_epoch"] = start_epoch  # 0: this run of the trial started it; k: continued after epoch k
        history.append(metrics)
        m = dict(meta)
        m["training"] = {**(meta.get("training") or {}), "seed": getattr(args, "seed", 0), "epochs_run": epoch,
                         spec.metric: metrics.get(spec.metric), "history": list(history),
                         "sweep": {"file": spec.file, "name": spec.name, "trial": tune.get_context().get_trial_id(),
                                   "config": config, "epoch": epoch, "argv": train_argv(spec, options, "OUT")}}
        with tempfile.TemporaryDirectory() as tmp:
            save_model(Path(tmp) / "model.npz", arrays, m)
            if state is not None:  # what --resume continues from (not part of the exported model)
                state.save(tmp)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))

    with scratch:
        call(TRAINERS[spec.model], args, on_epoch)
    if history:  # the trainer ran to its own end (epochs, patience or time): mark it, so the table can tell ASHA's stops apart
        tune.report({**history[-1], "finished": 1})


# --- the sweep ----------------------------------------------------------------------------------
@dataclass
class SweepOutcome:
    """What a sweep run produced: rows of the results table, the best trial, the exported file."""

    rows: list[dict[str, Any]]
    best: dict[str, Any] | None
    exported: str | None
    interrupted: bool
    wall_s: float


def _grid_points(spec: SweepSpec) -> int:
    """Trials per sample: the product of the grid domains' sizes (1 without grids)."""
    n = 1
    for domain in spec.space.values():
        if "grid" in domain:
            n *= len(domain["grid"])
    return n


def _tuner(spec: SweepSpec, resume: bool):
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    from ray.tune.search.basic_variant import BasicVariantGenerator

    trainable = tune.with_resources(tune.with_parameters(run_trial, spec=spec), spec.resources)
    if resume:
        if not tune.Tuner.can_restore(spec.path):
            raise UserError(f"--resume: no sweep to resume in {spec.path}")
        return tune.Tuner.restore(spec.path, trainable, resume_unfinished=True, restart_errored=True)
    if tune.Tuner.can_restore(spec.path):
        raise UserError(f"{spec.path} already holds this sweep: add --resume to continue it, "
                        f"or --fresh to delete it and start again")
    if spec.scheduler is None:
        scheduler = FIFOScheduler()
    else:
        scheduler = ASHAScheduler(time_attr="epoch", max_t=spec.max_epochs,
                                  grace_period=int(spec.scheduler["grace_period"]),
                                  reduction_factor=float(spec.scheduler["reduction_factor"]),
                                  brackets=int(spec.scheduler.get("brackets", 1)))
    return tune.Tuner(
        trainable,
        param_space=param_space(spec),
        tune_config=tune.TuneConfig(metric=spec.metric, mode=spec.mode, scheduler=scheduler, num_samples=spec.samples,
                                    # the limit goes to the search algorithm: Tune ignores
                                    # max_concurrent_trials when a search_alg instance is given
                                    search_alg=BasicVariantGenerator(random_state=spec.seed,
                                                                     max_concurrent=spec.max_concurrent or 0),
                                    reuse_actors=True),
        run_config=tune.RunConfig(name=spec.name, storage_path=spec.storage, verbose=1,
                                  checkpoint_config=tune.CheckpointConfig(num_to_keep=None),
                                  failure_config=tune.FailureConfig(max_failures=0)),
    )


def _trial_status(spec: SweepSpec, results) -> dict[str, str]:
    """Tune's status of every trial, by id (``TERMINATED``, ``ERROR``, ``RUNNING``, ``PENDING`` ...).

    Read from the experiment state Tune saved last (JSON), because after an interruption Tune
    marks the in-memory trials it cleans up as TERMINATED although the saved state, the one
    ``--resume`` continues from, has them unfinished. Falls back to the in-memory status."""
    status = {t.trial_id: str(t.status) for t in getattr(getattr(results, "_experiment_analysis", None), "trials", []) or []}
    # one file per run (start time in its name, sortable); a resumed run touches the older ones too, so not by mtime
    states = sorted(Path(spec.path).glob("experiment_state-*.json"))
    if states:
        try:
            for entry in json.loads(states[-1].read_text())["trial_data"]:
                trial = json.loads(entry[0])
                status[str(trial["trial_id"])] = str(trial["status"])
        except (ValueError, KeyError, TypeError, IndexError, OSError):
            pass  # an unknown layout (another Tune version): keep the in-memory status
    return status


def summarise(spec: SweepSpec, results) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Rows of the results table (one per trial) and the best row (best epoch of any trial)."""
    status = _trial_status(spec, results)
    rows = []
    for r in results:
        df = r.metrics_dataframe
        scores = [] if df is None or spec.metric not in df else [float(v) for v in df[spec.metric]]
        epochs = 0 if df is None or "epoch" not in df else int(df["epoch"].max())
        trial_id = (r.metrics or {}).get("trial_id") or Path(r.path).name
        best = (max if spec.mode == "max" else min)(scores) if scores else None
        st = status.get(trial_id, "?")
        if r.error is not None:
            how = f"error: {str(r.error).strip().splitlines()[-1][:80]}"
        elif st in ("RUNNING", "PENDING", "PAUSED"):
            how = f"interrupted ({st.lower()}; --resume continues it)"
        elif st != "TERMINATED":
            how = st.lower()
        elif epochs >= spec.max_epochs:
            how = "completed"
        elif (r.metrics or {}).get("finished"):
            how = "ended early (patience or time limit)"
        else:
            how = "stopped by ASHA" if spec.scheduler else "stopped"
        resumed = 0 if df is None or "resumed_from_epoch" not in df else int(df["resumed_from_epoch"].fillna(0).max())
        if resumed:
            how += f" (resumed after epoch {resumed})"
        rows.append({"trial": trial_id, "config": {k: (r.config or {}).get(k) for k in spec.space},
                     "epochs": epochs, "resumed_from_epoch": resumed, f"best_{spec.metric}": best,
                     f"last_{spec.metric}": scores[-1] if scores else None, "status": how, "path": r.path})
    scored = [row for row in rows if row[f"best_{spec.metric}"] is not None]
    best_row = None
    if scored:
        key = lambda row: row[f"best_{spec.metric}"]  # noqa: E731
        best_row = max(scored, key=key) if spec.mode == "max" else min(scored, key=key)
    rows.sort(key=lambda row: row["trial"])
    return rows, best_row


def export_best(spec: SweepSpec, results, best_row: dict[str, Any]) -> str:
    """Copy the best checkpoint's model file of the best trial to ``spec.out``; check it loads."""
    from pipeline.modelfile import load_model

    result = next(r for r in results if r.path == best_row["path"])
    checkpoint = result.get_best_checkpoint(spec.metric, spec.mode)
    if checkpoint is None:
        raise UserError(f"sweep {spec.name}: the best trial {best_row['trial']} has no checkpoint")
    with checkpoint.as_directory() as d:
        src = Path(d) / "model.npz"
        if not src.is_file():
            raise UserError(f"sweep {spec.name}: checkpoint {d} has no model.npz")
        Path(spec.out).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, spec.out)
    load_model(spec.out)  # a normal model file: data only, family and kind recorded
    return spec.out


def print_results(spec: SweepSpec, outcome: SweepOutcome) -> None:
    """The results table (rich), best first by the metric."""
    from rich.table import Table

    from pipeline.console import console

    table = Table(title=f"sweep {spec.name}: {spec.model}, {len(outcome.rows)} trials, metric {spec.metric} ({spec.mode})")
    table.add_column("trial")
    for key in spec.space:
        table.add_column(key, justify="right")
    for col in ("epochs", f"best {spec.metric}", f"last {spec.metric}"):
        table.add_column(col, justify="right")
    table.add_column("status")
    sign = -1 if spec.mode == "max" else 1
    order = sorted(outcome.rows, key=lambda r: (r[f"best_{spec.metric}"] is None, sign * (r[f"best_{spec.metric}"] or 0)))
    for r in order:
        cells = [f"{v:.3g}" if isinstance(v, float) else str(v) for v in r["config"].values()]
        fmt = lambda v: "–" if v is None else f"{v:.4f}"  # noqa: E731
        mark = " ★" if outcome.best and r["trial"] == outcome.best["trial"] else ""
        table.add_row(r["trial"] + mark, *cells, str(r["epochs"]), fmt(r[f"best_{spec.metric}"]),
                      fmt(r[f"last_{spec.metric}"]), r["status"])
    console().print(table)


def run_sweep(spec: SweepSpec, *, resume: bool = False, address: str | None = None, cpus: int | None = None,
              print_table: bool = True) -> SweepOutcome:
    """Run (or resume) the sweep; print the table; export the best model unless interrupted before any epoch."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    from pipeline.runners.ray_runner import ensure_ray

    started = ensure_ray({"num_cpus": cpus or spec.cpus}, address)
    t0 = time.perf_counter()
    try:
        results = _tuner(spec, resume).fit()
        status = _trial_status(spec, results)
        interrupted = any(s not in ("TERMINATED", "ERROR") for s in status.values()) or \
            len(status) < spec.samples * _grid_points(spec)
        rows, best = summarise(spec, results)
        exported = export_best(spec, results, best) if best else None
    finally:
        if started:
            import ray

            ray.shutdown()
    outcome = SweepOutcome(rows, best, exported, interrupted, time.perf_counter() - t0)
    Path(spec.path).mkdir(parents=True, exist_ok=True)
    (Path(spec.path) / "summary.json").write_text(json.dumps(
        {"sweep": spec.file, "model": spec.model, "metric": spec.metric, "mode": spec.mode, "trials": rows,
         "best": best, "exported": exported, "interrupted": interrupted, "wall_s": outcome.wall_s}, indent=2, default=str))
    if print_table:
        print_results(spec, outcome)
    return outcome
