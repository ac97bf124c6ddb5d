"""Checkpoint schedule and restart budget, shared by the ``ray`` and ``ray-compiled`` runners.

Both Ray runners take each group's checkpoint (:meth:`~pipeline.runners.stepper.Stepper.checkpoint`)
every ``runtime.checkpoint_s`` seconds (default 5 s; 0 = no checkpoints and no restarts) and, when
a group's actor dies, recreate it from its last checkpoint (:meth:`Driver.recreate
<pipeline.runners.ray_runner.Driver.recreate>`) at most ``runtime.max_restarts`` times per group
(default 3). What differs is how the lost packets come back: the ``ray`` runner's senders re-send
the batches they kept; the ``ray-compiled`` runner replays the dead group's rounds from its
upstream groups' kept round outputs. This module holds what is common: when a checkpoint is due,
counting restarts, and the one-line messages.
"""
from __future__ import annotations

import time
from typing import Any

from pipeline.log import runner_logger
from pipeline.runners.plan import LIVE_SOURCE_KINDS

log = runner_logger()

DEFAULT_CHECKPOINT_S = 5.0
"""Seconds between checkpoints when ``runtime.checkpoint_s`` is not given."""
DEFAULT_MAX_RESTARTS = 3
"""Restarts per group when ``runtime.max_restarts`` is not given."""


def checkpoint_interval(runtime: dict[str, Any]) -> float:
    """``runtime.checkpoint_s`` in seconds (0.0 = off)."""
    return float(runtime.get("checkpoint_s", DEFAULT_CHECKPOINT_S) or 0.0)


def max_restarts(runtime: dict[str, Any]) -> int:
    """``runtime.max_restarts``."""
    return int(runtime.get("max_restarts", DEFAULT_MAX_RESTARTS))


def restarts_enabled(runtime: dict[str, Any]) -> bool:
    """True when dead actors are restarted: checkpoints on and at least one restart allowed."""
    return checkpoint_interval(runtime) > 0 and max_restarts(runtime) > 0


class CheckpointSchedule:
    """When the next checkpoint is due (monotonic clock; never when the interval is 0)."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.next = time.monotonic() + interval_s if interval_s > 0 else None

    def due(self) -> bool:
        """True (and the next one scheduled) when a checkpoint is due now."""
        if self.next is None or time.monotonic() < self.next:
            return False
        self.next = time.monotonic() + self.interval_s
        return True

    def describe(self) -> str:
        return f"every {self.interval_s:g} s" if self.interval_s > 0 else "off"


def nodes_text(members: list[str]) -> str:
    """``node 'a'`` or ``nodes 'a', 'b'``."""
    return ("node " if len(members) == 1 else "nodes ") + ", ".join(repr(x) for x in members)


class RestartBudget:
    """Counts restarts per group against ``runtime.max_restarts``; times the downtime.

    Attributes:
        restarts: group -> restarts so far (the summary's ``restarts``).
        downtime: group -> seconds the driver spent restarting it (the summary's ``restart_s``).
    """

    def __init__(self, file: str, runtime: dict[str, Any]) -> None:
        self.file = file
        self.limit = max_restarts(runtime)
        self.restarts: dict[str, int] = {}
        self.downtime: dict[str, float] = {}

    def death(self, group: str, members: list[str], why: str = "actor died") -> str | None:
        """Count one death of ``group``; the failure line if past the budget, else None (restart it)."""
        n = self.restarts.get(group, 0) + 1
        self.restarts[group] = n
        if n > self.limit:
            failure = (f"{self.file}: {nodes_text(members)} died {n} times (runtime.max_restarts is {self.limit});"
                       " the run stopped")
            log.error(failure)
            return failure
        log.warning("%s: %s (restart %d of at most %d)", nodes_text(members), why, n, self.limit)
        return None

    def restarted(self, group: str, seconds: float, members: list[str], kinds: dict[str, str]) -> None:
        """Note ``seconds`` of downtime; warn that live sources among ``members`` lost that time."""
        self.downtime[group] = self.downtime.get(group, 0.0) + seconds
        live = [x for x in members if kinds[x] in LIVE_SOURCE_KINDS]
        if live:
            log.warning("live source(s) %s were down about %.2f s (plus the time Ray took to report the "
                        "death): what arrived then is lost; live sources cannot rewind", ", ".join(live), seconds)

    def summary_fields(self) -> dict[str, Any]:
        """``restart_s``: driver seconds spent restarting, per group."""
        return {"restart_s": {g: round(t, 3) for g, t in self.downtime.items()}}


class CheckpointStats:
    """What checkpoints cost, counted as work (not wall time, which is noisy on a shared machine).

    Attributes:
        count: checkpoints taken (one per group each time).
        bytes: their pickled size, summed (about what Ray serialised to bring them to the driver).
        state_s: seconds the groups spent taking them (``Stepper.checkpoint``: every node's
            ``state()`` and a deep copy), summed over groups.
    """

    def __init__(self) -> None:
        self.count = 0
        self.bytes = 0
        self.state_s = 0.0

    def add(self, state: dict[str, Any]) -> None:
        import pickle  # dumps only, to measure the size: checkpoints are never loaded from bytes

        self.count += 1
        self.state_s += float(state.get("cost_s", 0.0))
        self.bytes += len(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))

    def summary(self, wall_s: float) -> dict[str, Any]:
        """The summary's ``checkpoints``: totals and per second of the run."""
        per_s = (lambda x: round(x / wall_s, 6)) if wall_s > 0 else (lambda x: None)
        return {"count": self.count, "bytes": self.bytes, "state_s": round(self.state_s, 6),
                "bytes_per_s": per_s(self.bytes), "state_s_per_s": per_s(self.state_s)}
