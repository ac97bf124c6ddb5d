"""Where a live group's time goes, sample by sample: a diagnostic, off unless asked for.

Set ``SPIKELOOP_PROBE=<directory>`` in the environment of ``spikeloop run`` (Ray's workers on a
local Ray inherit it) and every group's :class:`~pipeline.runners.stepper.Stepper` records, for
each step in which a live source read data, one row:

* ``stamp``: the newest sample's timestamp (s, LSL clock) and ``n`` samples read;
* ``t_read0`` / ``t_wake`` / ``t_out``: LSL-clock readings (s) when the read began, when the pull
  that returned the data came back, and when the last sink of the group had processed the packet
  (for an ``lsl_outlet``: pushed it). So ``t_wake - stamp`` is transit plus wake-up, ``t_out -
  t_wake`` the graph's own time;
* ``t_due``: the arrival an ``auto`` inlet predicted for this read (s, LSL clock; 0 when it made
  no prediction: the data was buffered, the schedule was irregular, or another wait mode), so
  ``t_wake - t_due`` is the prediction's error as the inlet saw it;
* ``phase``: how the data was found: 0 already buffered at the read's first zero-timeout pull,
  1 by a blocking pull (``timeout > 0``), 2 by a polling (zero-timeout) pull after waiting;
* ``pulls``: pull calls in the read; ``wait_cpu_ns``: CPU time of the pulls that found nothing
  (the price of polling); ``pull_cpu_ns`` / ``pull_wall_ns``: CPU and wall time of the pull that
  returned the data (for a blocking pull the wall time includes the wait);
* ``read_cpu_ns``: CPU time of the whole ``read()`` (pulls included);
* ``node_cpu_ns`` / ``node_wall_ns``: ``(rows, nodes)``: CPU and wall time of each node's
  ``process()`` for this sample (``nodes`` names the columns);
* ``step_cpu_ns`` / ``step_wall_ns``: the whole step (so the executor's and stepper's own
  bookkeeping is ``step - read - sum(nodes)``); ``gc_ns``: time spent in the garbage collector
  during the step.

Steps without data are summed (``idle_steps``, ``idle_cpu_ns``: the CPU cost of waiting), every
garbage collection from the first step on is logged (``gc_log_gen``, ``gc_log_ns``; at most :data:`MAX_GC` of them), and the run's
totals are kept. CPU times are the calling thread's (``time.thread_time_ns``): they do not grow
when other processes compete for the cores, unlike wall times. The probe itself costs a few µs per
step (about ten clock readings); compare probe runs with probe runs.

When the group's executor closes, the rows go to ``<directory>/probe_<group>_<pid>.npz`` (plain
arrays; ``meta`` is a JSON string). :mod:`benchmarks.latency_path` reads them.
"""
from __future__ import annotations

import gc
import json
import os
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from pipeline.clock import local_clock

ENV = "SPIKELOOP_PROBE"
"""Environment variable naming the directory probe files are written to (unset: no probe)."""
MAX_ROWS = 400_000
"""Rows kept per group (400 s at 1 kHz); later rows are counted in ``rows_dropped`` only."""
MAX_GC = 100_000
"""Garbage collections logged per group."""


def install(stepper: Any) -> "Probe | None":
    """A probe on ``stepper`` if ``SPIKELOOP_PROBE`` is set, else None (the default: nothing changes)."""
    where = os.environ.get(ENV)
    if not where:
        return None
    return Probe(stepper, Path(where))


class Probe:
    """Wraps a stepper's ``step``, its nodes' ``read``/``process`` and the LSL inlets' pulls (see the
    module docstring for what each row holds)."""

    def __init__(self, stepper: Any, directory: Path) -> None:
        self.stepper = stepper
        self.directory = directory
        ex = stepper.executor
        self.node_names = list(ex.nodes)
        self.col = {name: k for k, name in enumerate(self.node_names)}
        cap, k = MAX_ROWS, len(self.node_names)
        self.f8 = {key: np.zeros(cap) for key in ("stamp", "t_read0", "t_wake", "t_out", "t_due")}
        self.i8 = {key: np.zeros(cap, dtype=np.int64) for key in (
            "n", "phase", "pulls", "wait_cpu_ns", "pull_cpu_ns", "pull_wall_ns", "read_cpu_ns",
            "step_cpu_ns", "step_wall_ns", "gc_ns")}
        self.node_cpu = np.zeros((cap, k), dtype=np.int64)
        self.node_wall = np.zeros((cap, k), dtype=np.int64)
        self.rows = 0
        self.rows_dropped = 0
        self.idle_steps = 0
        self.idle_cpu_ns = 0
        self.steps = 0
        self.gc_gen = np.zeros(MAX_GC, dtype=np.int8)
        self.gc_dur = np.zeros(MAX_GC, dtype=np.int64)
        self.gcs = 0
        self._gc_t0 = 0
        self._gc_total = 0
        self._had_data = False
        self._sinks = [n for n in self.node_names if n in ex.sinks]
        self._t_cpu0, self._t_wall0 = time.thread_time_ns(), time.perf_counter_ns()
        self._saved = False
        self._wrap()
        gc.callbacks.append(self._on_gc)

    # --- wrapping -------------------------------------------------------------------------------
    def _wrap(self) -> None:
        st, ex = self.stepper, self.stepper.executor
        step = st.step

        def probed_step(*args: Any, **kwargs: Any) -> Any:
            return self._step(step, args, kwargs)

        st.step = probed_step
        for name, node in ex.nodes.items():
            if name in ex.sources:
                node.read = self._probed_read(node.read, node)
                if hasattr(node, "_pull"):  # an LSL inlet: see each pull
                    node._pull = self._probed_pull(node._pull)
            else:
                node.process = self._probed_process(name, node.process)
        close = ex.close

        def probed_close() -> None:
            self.save()
            close()

        ex.close = probed_close

    def _row(self) -> int | None:
        return self.rows if self.rows < MAX_ROWS else None

    def _step(self, step: Callable, args: tuple, kwargs: dict) -> Any:
        r = self._row()
        if r is not None:
            self.node_cpu[r] = 0
            self.node_wall[r] = 0
            for arr in self.i8.values():
                arr[r] = 0
        self._had_data = False
        gc0 = self._gc_total
        c0, w0 = time.thread_time_ns(), time.perf_counter_ns()
        out = step(*args, **kwargs)
        c1, w1 = time.thread_time_ns(), time.perf_counter_ns()
        self.steps += 1
        if not self._had_data:
            self.idle_steps += 1
            self.idle_cpu_ns += c1 - c0
            return out
        if r is None:
            self.rows_dropped += 1
            return out
        i8 = self.i8
        i8["step_cpu_ns"][r] = c1 - c0
        i8["step_wall_ns"][r] = w1 - w0
        i8["gc_ns"][r] = self._gc_total - gc0
        self.rows += 1
        return out

    def _probed_read(self, read: Callable, node: Any) -> Callable:
        def probed() -> Any:
            waiter = getattr(node, "_waiter", None)
            if waiter is not None and hasattr(waiter, "due"):
                waiter.due = 0.0
            r = self._row()
            t0 = local_clock()
            c0 = time.thread_time_ns()
            out = read()
            c1 = time.thread_time_ns()
            if out and r is not None:
                self._had_data = True
                packet = next(iter(out.values()))
                n = packet.data.shape[0]
                self.i8["n"][r] = n
                if n:
                    self.f8["stamp"][r] = float(packet.timestamps[-1])
                self.f8["t_read0"][r] = t0
                self.f8["t_due"][r] = getattr(waiter, "due", 0.0) if waiter is not None else 0.0
                self.i8["read_cpu_ns"][r] = c1 - c0
            elif out:
                self._had_data = True
            return out

        return probed

    def _probed_pull(self, pull: Callable) -> Callable:
        def probed(timeout: float) -> Any:
            r = self._row()
            c0, w0 = time.thread_time_ns(), time.perf_counter_ns()
            data, stamps = pull(timeout)
            c1, w1 = time.thread_time_ns(), time.perf_counter_ns()
            if r is None:
                return data, stamps
            i8 = self.i8
            pulls = i8["pulls"][r]
            i8["pulls"][r] = pulls + 1
            if len(stamps):
                self.f8["t_wake"][r] = local_clock()
                i8["phase"][r] = 0 if pulls == 0 else (1 if timeout > 0 else 2)
                i8["pull_cpu_ns"][r] = c1 - c0
                i8["pull_wall_ns"][r] = w1 - w0
            else:
                i8["wait_cpu_ns"][r] += c1 - c0
            return data, stamps

        return probed

    def _probed_process(self, name: str, process: Callable) -> Callable:
        k = self.col[name]
        sink = name in self._sinks

        def probed(port: str, packet: Any) -> Any:
            c0, w0 = time.thread_time_ns(), time.perf_counter_ns()
            out = process(port, packet)
            c1, w1 = time.thread_time_ns(), time.perf_counter_ns()
            r = self._row()
            if r is not None:
                self.node_cpu[r, k] += c1 - c0
                self.node_wall[r, k] += w1 - w0
                if sink:
                    self.f8["t_out"][r] = local_clock()
            return out

        return probed

    def _on_gc(self, phase: str, info: dict) -> None:
        if not self.steps:  # set-up (e.g. the collection before gc.freeze) is not the data path
            return
        if phase == "start":
            self._gc_t0 = time.perf_counter_ns()
            return
        dur = time.perf_counter_ns() - self._gc_t0
        self._gc_total += dur
        if self.gcs < MAX_GC:
            self.gc_gen[self.gcs] = info.get("generation", -1)
            self.gc_dur[self.gcs] = dur
        self.gcs += 1

    # --- output ---------------------------------------------------------------------------------
    def save(self) -> Path | None:
        """Write the rows (once); return the file, or None if already saved."""
        if self._saved:
            return None
        self._saved = True
        try:
            gc.callbacks.remove(self._on_gc)
        except ValueError:
            pass
        n, g = self.rows, min(self.gcs, MAX_GC)
        meta = {"group": self.stepper.plan.name, "pid": os.getpid(), "nodes": self.node_names,
                "sinks": self._sinks, "rows": n, "rows_dropped": self.rows_dropped, "steps": self.steps,
                "idle_steps": self.idle_steps, "idle_cpu_ns": self.idle_cpu_ns, "gcs": self.gcs,
                "gc_frozen": gc.get_freeze_count(), "thread_cpu_ns": time.thread_time_ns() - self._t_cpu0,
                "wall_ns": time.perf_counter_ns() - self._t_wall0}
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"probe_{self.stepper.plan.name}_{os.getpid()}.npz"
        arrays = {k: v[:n] for k, v in {**self.f8, **self.i8}.items()}
        np.savez(path, node_cpu_ns=self.node_cpu[:n], node_wall_ns=self.node_wall[:n], gc_log_gen=self.gc_gen[:g],
                 gc_log_ns=self.gc_dur[:g], meta=np.array(json.dumps(meta)), **arrays)
        return path
