"""Weight averaging for controller training: an exponential moving average (EMA) or stochastic
weight averaging (SWA, an equal-weight mean of the end-of-epoch weights from a given epoch on).

Both keep a shadow copy of every parameter of a torch module (the quantisers' learned steps
included: a QCRNN's average is a QCRNN) and can swap it into the module to score or export it.

* EMA (``decay`` d in (0, 1)): after every optimiser step, ``avg = d * avg + (1 - d) * w``,
  starting from the weights at the first step. Its memory is about 1 / (1 - d) optimiser steps
  (d = 0.999 with ~170 batches per epoch: ~6 epochs).
* SWA (``swa_from`` E >= 1, 1-based epoch): after epoch E and every later epoch,
  ``avg = (n * avg + w) / (n + 1)``; before epoch E it holds nothing (:attr:`ready` False).

Used by :func:`nodes.control.training.fit` (``FitConfig.ema`` / ``FitConfig.swa_from``); the
shadow is saved in a training state under ``avg.<name>`` so a resumed run continues it exactly.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np


class WeightAverage:
    """Shadow average of ``module``'s parameters: EMA if ``decay`` > 0, else SWA from ``swa_from``."""

    def __init__(self, module: Any, decay: float = 0.0, swa_from: int = 0) -> None:
        if (decay > 0) == (swa_from > 0):
            raise ValueError("WeightAverage: give exactly one of decay > 0 (EMA) or swa_from >= 1 (SWA)")
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"WeightAverage: decay must be in [0, 1), got {decay}")
        self.module, self.decay, self.swa_from = module, float(decay), int(swa_from)
        self.avg: dict[str, Any] = {}
        self.count = 0  # SWA: epochs averaged; EMA: optimiser steps seen

    @property
    def ready(self) -> bool:
        """True once the average holds something (EMA: one step taken; SWA: epoch ``swa_from`` done)."""
        return self.count > 0

    def after_step(self) -> None:
        """Call after every optimiser step (EMA update; nothing for SWA)."""
        if self.decay > 0:
            self._blend(self.decay)

    def after_epoch(self, epoch: int) -> None:
        """Call after every epoch, ``epoch`` 1-based (SWA update from ``swa_from`` on; nothing for EMA)."""
        if self.swa_from > 0 and epoch >= self.swa_from:
            self._blend(self.count / (self.count + 1))

    def _blend(self, keep: float) -> None:
        """``avg = keep * avg + (1 - keep) * w`` for every parameter (the first call copies ``w``)."""
        import torch

        with torch.no_grad():
            for name, p in self.module.named_parameters():
                if name not in self.avg:
                    self.avg[name] = p.detach().clone()
                else:
                    self.avg[name].mul_(keep).add_(p.detach(), alpha=1.0 - keep)
        self.count += 1

    @contextmanager
    def swapped_in(self) -> Iterator[None]:
        """Within the block the module holds the averaged weights (unchanged if not :attr:`ready`)."""
        if not self.ready:
            yield
            return
        import torch

        params = dict(self.module.named_parameters())
        saved = {n: p.detach().clone() for n, p in params.items()}
        with torch.no_grad():
            for n, p in params.items():
                p.copy_(self.avg[n])
        try:
            yield
        finally:
            with torch.no_grad():
                for n, p in params.items():
                    p.copy_(saved[n])

    def state_arrays(self) -> dict[str, np.ndarray]:
        """The shadow as arrays ``avg.<name>`` (for a training state)."""
        return {f"avg.{n}": v.detach().cpu().numpy().copy() for n, v in self.avg.items()}

    def load_state(self, arrays: dict[str, np.ndarray], count: int) -> None:
        """Put back a shadow saved by :meth:`state_arrays` (other keys are ignored)."""
        import torch

        self.avg = {k[4:]: torch.from_numpy(np.array(v)) for k, v in arrays.items() if k.startswith("avg.")}
        self.count = int(count)

    def describe(self) -> dict[str, Any]:
        """Metadata: what was averaged and how much."""
        if self.decay > 0:
            return {"kind": "ema", "decay": self.decay, "steps": self.count}
        return {"kind": "swa", "from_epoch": self.swa_from, "epochs_averaged": self.count}
