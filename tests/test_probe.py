"""The latency probe (``SPIKELOOP_PROBE``): one row per live sample, stage by stage, off by default.

A real LSL outlet on loopback feeds ``lsl_inlet -> bessel -> lsl_outlet`` on the local runner with
the probe on; every pushed sample must show up in the probe's rows, with its moments in order
(pushed, pull returned, output pushed) and a CPU time for every stage. Timings themselves are a
benchmark (``spikeloop bench latency-path``), not asserted.
"""
from __future__ import annotations

import json
import threading
import time
import uuid

import numpy as np
import pylsl

from benchmarks.latency_path import summarize_probe
from pipeline.graph import load_graph
from pipeline.runners import probe
from pipeline.runners.local import run

N = 150
RATE = 250.0

GRAPH = """
name: probed
nodes:
  inlet:  {{kind: lsl_inlet, params: {{source_id: {sid}, clock_sync: false, resolve_timeout_s: 5}}}}
  smooth: {{kind: bessel, params: {{order: 2, cutoff_hz: 10, mode: causal}}}}
  out:    {{kind: lsl_outlet, params: {{name: {sid}_out}}}}
edges:
  - inlet -> smooth -> out
"""


def _push(outlet: pylsl.StreamOutlet, pushed: list) -> None:
    outlet.wait_for_consumers(10.0)
    time.sleep(0.2)
    t0 = pylsl.local_clock()
    for i in range(N):
        delay = t0 + i / RATE - pylsl.local_clock()
        if delay > 0:
            time.sleep(delay)
        stamp = pylsl.local_clock()
        outlet.push_sample(np.full(3, float(i), dtype=np.float32), stamp)
        pushed.append(stamp)


def test_probe_records_every_live_sample_stage_by_stage(write_config, tmp_path, monkeypatch):
    sid = f"probe_{uuid.uuid4().hex[:10]}"
    outlet = pylsl.StreamOutlet(pylsl.StreamInfo(sid, "Test", 3, RATE, "float32", sid))
    where = tmp_path / "probe"
    monkeypatch.setenv(probe.ENV, str(where))
    pushed: list[float] = []
    pusher = threading.Thread(target=_push, args=(outlet, pushed), daemon=True)
    pusher.start()
    summary = run(load_graph(write_config(GRAPH.format(sid=sid))), progress=False, duration_s=5.0)  # generous: a loaded CI machine
    pusher.join(5.0)
    assert len(pushed) == N and summary["nodes"]["out"]["samples_in"] == N

    files = sorted(where.glob("probe_*.npz"))
    assert len(files) == 1
    z = np.load(files[0], allow_pickle=False)
    meta = json.loads(str(z["meta"]))
    assert meta["nodes"] == ["inlet", "smooth", "out"] and meta["sinks"] == ["out"]
    assert int(z["n"].sum()) == N and meta["rows"] == len(z["n"]) and meta["rows_dropped"] == 0
    # every pushed sample's stamp is the newest of some row (the pusher sends one at a time)
    assert set(np.round(z["stamp"], 9)) <= set(np.round(pushed, 9))
    assert np.all(z["t_wake"] >= z["stamp"]) and np.all(z["t_out"] >= z["t_wake"])
    assert np.all(z["t_read0"] <= z["t_wake"])
    cpu = z["node_cpu_ns"]
    assert np.all(cpu[:, 1] > 0) and np.all(cpu[:, 2] > 0) and np.all(cpu[:, 0] == 0)  # sources: in read
    assert np.all(z["pulls"] >= 1) and set(np.unique(z["phase"])) <= {0, 1, 2}
    assert np.all(z["pull_cpu_ns"] > 0) and np.all(z["read_cpu_ns"] >= z["pull_cpu_ns"] + z["wait_cpu_ns"])
    # nested CPU readings: the step holds the read and every node's process
    assert np.all(z["step_cpu_ns"] >= z["read_cpu_ns"] + cpu.sum(axis=1))
    assert meta["steps"] == meta["idle_steps"] + meta["rows"]

    s = summarize_probe(files[0], skip_s=0.0)
    assert s["rows"] == meta["rows"] and s["samples"] == N
    assert {"node smooth: process", "node out: process", "whole step"} <= set(s["cpu_us"])
    assert s["wall_us"]["in-graph total (stamp -> pushed)"]["p50"] > 0
    assert abs(sum(v for v in s["phase_share"].values() if v) - 1.0) < 1e-9
    # the auto inlet's predicted arrival is recorded for reads that waited with a prediction
    due = z["t_due"]
    assert np.all((due == 0) | (z["phase"] > 0)) and np.any(due > 0)
    assert s["predicted_share"] == float(np.mean(due > 0))


def test_probe_is_off_unless_asked_for(monkeypatch):
    monkeypatch.delenv(probe.ENV, raising=False)
    assert probe.install(object()) is None
