"""A trainer's full state between two epochs, saved as data (``.npz`` + JSON), to continue training exactly.

``spikeloop sweep`` checkpoints it with every epoch's model, so a trial cut off by Ctrl-C continues
after ``--resume`` from its last finished epoch instead of from epoch 1. It holds everything the
next epoch depends on:

* the torch module's ``state_dict`` (parameters and buffers), the optimizer's ``state_dict``
  (Adam's moment tensors and step counts; its hyperparameters as JSON), the learning-rate
  scheduler's ``state_dict`` (plain numbers, JSON);
* torch's CPU random generator state and the numpy ``Generator``'s bit-generator state;
* the trainer's own loop variables (``loop``: next epoch, best score and epoch, epochs without
  improvement, history, seconds spent) and the best export so far (``best`` arrays).

With one torch thread on a CPU, a run continued from this state repeats the uninterrupted run's
epochs bit for bit (the sweep test checks it). Files: ``train_state.npz`` (arrays only, read with
``allow_pickle=False``) and ``train_state.json``; nothing is unpickled, so a checkpoint from
elsewhere cannot run code.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import UserError

ARRAYS_FILE = "train_state.npz"
JSON_FILE = "train_state.json"
VERSION = 1


@dataclass
class TrainState:
    """Arrays by name (``model.*``, ``optim.*``, ``torch_rng``, ``best.*``) and a JSON-able dict."""

    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def loop(self) -> dict[str, Any]:
        """The trainer's loop variables (``epoch`` = the next epoch to run, 0-based)."""
        return self.info.get("loop", {})

    @property
    def best(self) -> dict[str, np.ndarray]:
        """The best export so far (the arrays a model file would hold)."""
        return {k[5:]: v for k, v in self.arrays.items() if k.startswith("best.")}

    def save(self, directory: str | Path) -> None:
        """Write ``train_state.npz`` and ``train_state.json`` into ``directory``."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        with open(d / ARRAYS_FILE, "wb") as f:
            np.savez(f, **self.arrays)
        (d / JSON_FILE).write_text(json.dumps({"version": VERSION, **self.info}))

    @classmethod
    def load(cls, directory: str | Path) -> "TrainState | None":
        """The state saved in ``directory``, or None if it holds none. Never unpickles."""
        d = Path(directory)
        if not (d / ARRAYS_FILE).is_file() or not (d / JSON_FILE).is_file():
            return None
        try:
            with np.load(d / ARRAYS_FILE, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            info = json.loads((d / JSON_FILE).read_text())
        except (OSError, ValueError) as exc:
            raise UserError(f"{d}: unreadable training state ({' '.join(str(exc).split())[:200]})") from None
        if info.get("version") != VERSION:
            raise UserError(f"{d / JSON_FILE}: training state version {info.get('version')!r}, expected {VERSION}")
        return cls(arrays, info)


def capture(model: Any, optimizer: Any, scheduler: Any, rng: np.random.Generator, loop: dict[str, Any],
            best: dict[str, np.ndarray]) -> TrainState:
    """Copy the state of a training run between two epochs (see the module docs)."""
    import torch

    arrays: dict[str, np.ndarray] = {f"model.{k}": v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    opt_scalars: dict[str, dict[str, Any]] = {}
    for idx, per_param in opt["state"].items():
        for key, value in per_param.items():
            if torch.is_tensor(value):
                arrays[f"optim.{idx}.{key}"] = value.detach().cpu().numpy().copy()
            else:
                opt_scalars.setdefault(str(idx), {})[key] = value
    arrays["torch_rng"] = torch.get_rng_state().numpy().copy()
    for k, v in best.items():
        arrays[f"best.{k}"] = np.asarray(v).copy()
    info = {"optimizer": {"param_groups": opt["param_groups"], "scalars": opt_scalars,
                          "tensor_keys": sorted({(str(i), k) for i, p in opt["state"].items()
                                                 for k, v in p.items() if torch.is_tensor(v)})},
            "scheduler": _plain(scheduler.state_dict()) if scheduler is not None else None,
            "numpy_rng": rng.bit_generator.state, "loop": _plain(loop)}
    return TrainState(arrays, json.loads(json.dumps(info)))


def restore(state: TrainState, model: Any, optimizer: Any, scheduler: Any, rng: np.random.Generator) -> dict[str, Any]:
    """Put ``state`` back into the model, optimizer, scheduler and generators; return its loop variables."""
    import torch

    model.load_state_dict({k[6:]: torch.from_numpy(np.array(v)) for k, v in state.arrays.items() if k.startswith("model.")})
    info = state.info["optimizer"]
    per_param: dict[int, dict[str, Any]] = {}
    for idx, key in info["tensor_keys"]:
        per_param.setdefault(int(idx), {})[key] = torch.from_numpy(np.array(state.arrays[f"optim.{idx}.{key}"]))
    for idx, scalars in info["scalars"].items():
        per_param.setdefault(int(idx), {}).update(scalars)
    groups = [dict(g, betas=tuple(g["betas"])) if "betas" in g else dict(g) for g in info["param_groups"]]
    optimizer.load_state_dict({"state": per_param, "param_groups": groups})
    if scheduler is not None and state.info.get("scheduler") is not None:
        scheduler.load_state_dict(state.info["scheduler"])
    torch.set_rng_state(torch.from_numpy(np.array(state.arrays["torch_rng"])))
    rng.bit_generator.state = state.info["numpy_rng"]
    return dict(state.loop)


def _plain(value: Any) -> Any:
    """JSON-able copy: numpy and torch scalars to Python numbers, tuples to lists."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if hasattr(value, "item") and hasattr(value, "dim") and value.dim() == 0:  # a 0-d torch tensor
        return value.item()
    return value
