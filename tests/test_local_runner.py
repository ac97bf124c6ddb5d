"""The local runner: runs graphs to the end, deterministic, counts everything, paces on the clock."""
from __future__ import annotations

import json

import numpy as np

from pipeline.cli import main
from pipeline.graph import load_graph
from pipeline.runners.local import run

GRAPH = """
name: gen_pick
nodes:
  gen: {kind: signal_generator, params: {channels: 3, rate_hz: 250, duration_s: 2, chunk: 5, seed: 7}}
  pick: {kind: select_channels, params: {channels: [2, 0]}}
  cap: {kind: capture}
edges:
  - gen -> pick -> cap
"""


def test_runs_to_the_end_and_counts(write_config):
    spec = load_graph(write_config(GRAPH))
    summary = run(spec, progress=False)
    assert summary["stopped_by"] == "end of data"
    assert summary["source_samples"] == 500
    nodes = summary["nodes"]
    assert nodes["gen"]["packets_out"] == 100 and nodes["gen"]["samples_out"] == 500
    assert nodes["pick"]["packets_in"] == 100 and nodes["pick"]["samples_out"] == 500
    assert nodes["cap"]["samples_in"] == 500 and nodes["cap"]["gaps"] == 0
    assert summary["latency"]["count"] == 100 and summary["latency"]["p50_ms"] >= 0
    data, stamps = spec.instances["cap"].arrays()
    assert data.shape == (500, 2)
    np.testing.assert_allclose(stamps, np.arange(500) / 250.0)
    # the selected channels are the generator's channels 2 and 0, in that order
    expected = np.sin(2 * np.pi * 1.0 * stamps[:, None] * np.array([3.0, 1.0]))
    assert np.max(np.abs(data - expected)) < 1.0  # noise sd 0.1: far below 1 everywhere


def test_repeat_runs_are_identical(write_config):
    digests = []
    for _ in range(2):
        spec = load_graph(write_config(GRAPH))
        digests.append(run(spec, progress=False)["reports"]["cap"]["sha256"])
    assert digests[0] == digests[1]
    spec = load_graph(write_config(GRAPH), ["gen.seed=8"])
    assert run(spec, progress=False)["reports"]["cap"]["sha256"] != digests[0]


def test_paced_run_keeps_real_time_and_never_stamps_ahead(write_config):
    spec = load_graph(write_config(GRAPH), ["gen.speed=1", "gen.duration_s=0.6"])
    summary = run(spec, progress=False)
    # 0.6 s of data at speed 1 takes about 0.6 s of wall time (not less)
    assert summary["wall_s"] >= 0.58
    data, stamps = spec.instances["cap"].arrays()
    assert data.shape[0] == 150
    np.testing.assert_allclose(np.diff(stamps), 1 / 250.0, atol=1e-9)


def test_end_to_end_latency_counts_from_the_sample_timestamp(write_config):
    """Paced (live clock): end-to-end runs from each packet's newest sample timestamp, so it
    includes the wait before the source read the sample; in-graph starts at the read."""
    spec = load_graph(write_config(GRAPH), ["gen.speed=1", "gen.duration_s=0.4"])
    summary = run(spec, progress=False)
    e2e, in_graph = summary["latency_end_to_end"], summary["latency"]
    assert e2e["count"] == in_graph["count"] == 20
    assert e2e["p50_ms"] >= in_graph["p50_ms"] and e2e["max_ms"] >= in_graph["max_ms"]
    assert summary["latency_name"].startswith("in-graph")
    # a replay at speed: max has no live clock: no end-to-end figure, the in-graph one stays
    fast = run(load_graph(write_config(GRAPH)), progress=False)
    assert fast["latency_end_to_end"]["count"] == 0 and fast["latency"]["count"] == 100


def test_duration_stops_an_endless_source(write_config):
    spec = load_graph(write_config(GRAPH), ["gen.duration_s=null", "gen.speed=1"])
    summary = run(spec, progress=False, duration_s=0.3)
    assert summary["stopped_by"] == "duration 0.3 s"
    assert 0 < summary["source_samples"] < 250


def test_cli_run_prints_summary_and_writes_json(write_config, tmp_path, capsys):
    out = tmp_path / "summary.json"
    assert main(["run", str(write_config(GRAPH)), "--json", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "in-graph latency" in printed and "end-to-end latency" in printed and "gen" in printed and "pick" in printed
    summary = json.loads(out.read_text())
    assert summary["nodes"]["cap"]["samples_in"] == 500


def test_cli_check_and_config_error_exit_code(write_config, capsys):
    assert main(["check", str(write_config(GRAPH))]) == 0
    assert "pick.out" in capsys.readouterr().out
    bad = write_config(GRAPH.replace("select_channels", "selectchannels"), "bad.yaml")
    assert main(["check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "did you mean 'select_channels'" in err


def test_a_node_that_raises_ends_the_run_with_one_line_and_the_summary(write_config, tmp_path, capsys):
    bad = GRAPH.replace("pick: {kind: select_channels, params: {channels: [2, 0]}}",
                        "pick: {kind: bessel, params: {order: 2, cutoff_hz: 10}}")
    spec = load_graph(write_config(bad))
    spec.instances["pick"].process = lambda port, packet: 1 / 0  # a bug inside a node
    summary = run(spec, progress=False)
    assert summary["failure"].endswith("node 'pick' failed in process(): ZeroDivisionError: division by zero")
    assert summary["stopped_by"].startswith("failure") and summary["nodes"]["gen"]["packets_out"] == 1
