"""The ``local`` runner: the whole graph as one group in this process, deterministic.

It loops :meth:`~pipeline.runners.stepper.Stepper.step` over one group: each step reads every
active source once (after each read, every packet it produced travels through the graph, FIFO,
before the next read), then ticks on the graph clock, so the same graph fed the same recording
gives the same outputs on every run. The graph clock is the sources' ``virtual_time`` while all of
them replay at ``speed: max``, else ``pylsl.local_clock()`` (one policy for every runner, in the
stepper). Checkpoints are not taken here: a crash of this process ends the run.
"""
from __future__ import annotations

import time
from typing import Any

from pipeline.graph import GraphSpec
from pipeline.log import runner_logger
from pipeline.runners.realtime import freeze_setup_objects, request_short_slice
from pipeline.runners.executor import NodeFailure
from pipeline.runners.opening import open_in_process
from pipeline.runners.plan import LIVE_SOURCE_KINDS, single_group
from pipeline.runners.progress import ReplayProgress, sources_progress
from pipeline.runners.signals import StopRequest
from pipeline.runners.status import StatusLine, snapshot_from
from pipeline.runners.stepper import Stepper
from pipeline.runners.summary import group_result, merge_summary

log = runner_logger()


def run(spec: GraphSpec, *, progress: bool = True, duration_s: float | None = None,
        address: str | None = None) -> dict[str, Any]:
    """Run ``spec`` to completion (sources exhausted and graph quiet), ``duration_s``, Ctrl-C,
    SIGTERM or SIGHUP. Returns the run summary (see :mod:`pipeline.runners.summary`)."""
    if address:
        raise ValueError("the local runner runs in this process; --address is for the ray runners")
    nodes = spec.instances
    with StopRequest() as stop:
        freeze_setup_objects()  # before a paced source's clock starts: no full GC pass on the data path
        if any(n.kind in LIVE_SOURCE_KINDS for n in spec.nodes.values()):
            request_short_slice()  # opt-in (SPIKELOOP_SCHED_SLICE_US); before the nodes' threads exist
        open_in_process(spec, nodes)
        plan, group_of = single_group(spec)
        stepper = Stepper(plan, nodes, spec.routes(), spec.sinks(), group_of)
        sources = list(stepper.sources.values())
        bar = ReplayProgress(progress)
        live = sources_progress(sources) is None
        status = StatusLine(progress and live)
        read_progress = lambda: sources_progress(sources)  # noqa: E731 (called by the bar at 10 Hz)
        stopped_by, failure = "end of data", None
        log.info("graph running (%d nodes in this process)", len(nodes))
        t_start = time.perf_counter()
        deadline = None if duration_s is None else t_start + duration_s
        try:
            stopping = False
            while not stepper.done:
                if not stopping:
                    if stop:
                        stopping, stopped_by = True, stop.reason or stopped_by
                    elif deadline is not None and time.perf_counter() >= deadline:
                        stopping, stopped_by = True, f"duration {duration_s:g} s"
                stepper.step(stop=stopping, quiet=True)
                bar.update(read_progress)
                status.update(lambda: snapshot_from([stepper.executor]))
        except KeyboardInterrupt:
            stopped_by = "forced exit (second stop signal)"
        except NodeFailure as exc:
            failure = f"{spec.file}: {exc}"
            stopped_by = "failure: " + failure
            log.error(failure)
        finally:
            bar.close()
            status.close()
            wall_s = time.perf_counter() - t_start
            counters, reports = stepper.executor.counters(), stepper.executor.reports()
            stepper.executor.close()
    log.info("run stopped: %s (%.2f s)", stopped_by, wall_s)
    return merge_summary(spec, "local", [group_result(stepper, wall_s, counters, reports)], wall_s, stopped_by,
                         failure=failure)
