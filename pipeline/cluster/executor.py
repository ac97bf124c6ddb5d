"""Run independent work items in-process or as Ray tasks, results in submission order.

``Executor(jobs=None, address=None)`` runs every task in this process, one after another (the
serial reference). ``Executor(jobs=N)`` starts a local Ray on loopback with ``num_cpus=N``
(:func:`pipeline.runners.ray_runner.ensure_ray`) and runs each task as a Ray task needing one
CPU; ``Executor(address=ADDR)`` joins a running cluster instead (``ray start --head`` on one
machine, ``ray start --address=HEAD:6379`` on the others), with at most ``jobs`` tasks in flight
when ``jobs`` is also given.

A task is ``Task(label, target, args)``: ``target`` is ``"module:function"`` (imported in the
worker, so nothing but plain data and the function's name travels), ``args`` its positional
arguments. Large inputs shared by many tasks go in once with :meth:`Executor.put` (an object
store reference on Ray, the object itself in-process); Ray hands each task the object, not the
reference.

Nothing waits forever: results are polled every ``poll_s`` (0.5 s), and after ``timeout_s`` the
remaining tasks are cancelled and a :class:`~pipeline.errors.UserError` names them. A task that
raises fails the whole map with one line naming the task (its label) and the error. Ctrl-C
cancels what is still queued or running. Paths in task arguments are read where the task runs:
on a multi-machine cluster they must exist on every node (a shared filesystem); the local Ray
workers start in the driver's working directory.
"""
from __future__ import annotations

import importlib
import os
import time
from dataclasses import dataclass, field
from typing import Any

from pipeline.errors import UserError


@dataclass
class Task:
    """One unit of work: ``target(*args)``; ``label`` names it in errors and progress."""

    label: str
    target: str
    args: tuple = ()


@dataclass
class MapStats:
    """How a map ran: wall time (s), tasks, where, and the Ray start-up time if this map started Ray."""

    tasks: int = 0
    wall_s: float = 0.0
    mode: str = "serial"
    ray_start_s: float | None = None
    task_s: list[float] = field(default_factory=list)  # per task, in submission order (worker-side wall time)


def call(target: str, *args: Any) -> Any:
    """Import ``module:function`` and call it with ``args``."""
    module_name, _, func_name = target.partition(":")
    return getattr(importlib.import_module(module_name), func_name)(*args)


def _timed_call(target: str, *args: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = call(target, *args)
    return out, time.perf_counter() - t0


def _worker_call(target: str, *args: Any) -> tuple[Any, float]:
    """:func:`_timed_call` in a Ray worker: no progress bars there (the driver shows one for all tasks).
    tqdm reads ``TQDM_*`` when it is first imported, which in a fresh worker is after this line."""
    os.environ["TQDM_DISABLE"] = "1"
    try:
        return _timed_call(target, *args)
    except UserError as exc:  # subclasses may not pickle (extra constructor arguments): send the message
        raise UserError(str(exc)) from None


def _one_line(exc: BaseException) -> str:
    """The last line of an exception's message (Ray wraps a task's error in a long traceback)."""
    cause = getattr(exc, "cause", None)  # ray.exceptions.RayTaskError keeps the original exception
    if isinstance(cause, BaseException):
        exc = cause
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[-1] if text else ''}".rstrip(": ")


class Executor:
    """Serial in-process execution, or Ray tasks on a local Ray (``jobs``) or a cluster (``address``)."""

    def __init__(self, jobs: int | None = None, address: str | None = None, *, timeout_s: float = 24 * 3600.0,
                 poll_s: float = 0.5, progress: bool = True) -> None:
        if jobs is not None and jobs < 1:
            raise UserError(f"--jobs must be >= 1, got {jobs}")
        if timeout_s <= 0:
            raise UserError(f"task timeout must be > 0 s, got {timeout_s}")
        self.jobs, self.address = jobs, address
        self.timeout_s, self.poll_s, self.progress = timeout_s, poll_s, progress
        self.use_ray = jobs is not None or address is not None
        self._started_ray = False
        self._ray_start_s: float | None = None
        self.last = MapStats()

    # --- lifecycle ---------------------------------------------------------------------------------
    def __enter__(self) -> "Executor":
        if self.use_ray:
            from pipeline.runners.ray_runner import ensure_ray

            t0 = time.perf_counter()
            self._started_ray = ensure_ray({"num_cpus": self.jobs} if self.jobs else {}, self.address)
            self._ray_start_s = time.perf_counter() - t0 if self._started_ray else None
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._started_ray:
            import ray

            ray.shutdown()
            self._started_ray = False

    @property
    def mode(self) -> str:
        if not self.use_ray:
            return "serial"
        return f"ray tasks on {self.address}" if self.address else f"ray tasks on a local Ray, {self.jobs} CPUs"

    # --- work --------------------------------------------------------------------------------------
    def put(self, obj: Any) -> Any:
        """Share ``obj`` among tasks: an object-store reference on Ray, ``obj`` itself in-process."""
        if not self.use_ray:
            return obj
        import ray

        return ray.put(obj)

    def map(self, tasks: list[Task], desc: str = "tasks") -> list[Any]:
        """Run ``tasks``; return their results in the order given. Stats of the run in :attr:`last`."""
        t0 = time.perf_counter()
        if self.use_ray:
            timed = self._map_ray(tasks, desc)
        else:
            timed = self._map_serial(tasks, desc)
        self.last = MapStats(tasks=len(tasks), wall_s=time.perf_counter() - t0, mode=self.mode,
                             ray_start_s=self._ray_start_s, task_s=[s for _, s in timed])
        self._ray_start_s = None  # counted once, on the first map after start-up
        return [r for r, _ in timed]

    def _map_serial(self, tasks: list[Task], desc: str) -> list[tuple[Any, float]]:
        from tqdm import tqdm

        out = []
        for task in tqdm(tasks, desc=desc, unit="task", leave=False, disable=not self.progress or len(tasks) < 2,
                         mininterval=0.1):
            try:
                out.append(_timed_call(task.target, *task.args))
            except UserError as exc:
                raise UserError(f"{task.label}: {exc}") from None
        return out

    def _map_ray(self, tasks: list[Task], desc: str) -> list[tuple[Any, float]]:
        import ray
        from tqdm import tqdm

        remote = ray.remote(num_cpus=1, max_retries=0)(_worker_call)
        limit = self.jobs or len(tasks)  # tasks in flight at once (all of them: Ray queues by CPUs)
        results: dict[int, tuple[Any, float]] = {}
        pending: dict[Any, int] = {}
        next_i = 0
        deadline = time.monotonic() + self.timeout_s
        bar = tqdm(total=len(tasks), desc=desc, unit="task", leave=False, disable=not self.progress, mininterval=0.1)
        try:
            while len(results) < len(tasks):
                while next_i < len(tasks) and len(pending) < limit:
                    task = tasks[next_i]
                    pending[remote.remote(task.target, *task.args)] = next_i
                    next_i += 1
                if time.monotonic() > deadline:
                    names = ", ".join(tasks[i].label for i in sorted(pending.values()))
                    raise UserError(f"tasks still running after {self.timeout_s:g} s, cancelled: {names}")
                done, _ = ray.wait(list(pending), num_returns=1, timeout=self.poll_s)
                for ref in done:
                    i = pending.pop(ref)
                    try:
                        results[i] = ray.get(ref, timeout=self.timeout_s)
                    except Exception as exc:  # a task's own error, or a lost worker or node
                        raise UserError(f"{tasks[i].label}: {_one_line(exc)}") from None
                    bar.update(1)
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
        finally:
            bar.close()
        return [results[i] for i in range(len(tasks))]
