"""Runner logs: one ``spikeloop`` logger with timestamps, a child per node; the live status line."""
from __future__ import annotations

import io
import logging
import re

from pipeline.graph import load_graph
from pipeline.log import node_logger, runner_logger, setup_logging
from pipeline.runners.local import run
from pipeline.runners.status import Snapshot, StatusLine, format_status

GRAPH = """
name: paced
nodes:
  gen: {kind: signal_generator, params: {channels: 2, rate_hz: 250, duration_s: 1.3, chunk: 5, speed: 1}}
  cap: {kind: capture}
edges:
  - gen -> cap
"""


def test_runner_events_are_logged_with_timestamps(write_config):
    stream = io.StringIO()
    setup_logging("INFO", stream=stream)
    try:
        node_logger("decoder").info("model loaded")
        run(load_graph(write_config(GRAPH)), progress=False)
        text = stream.getvalue()
        assert re.search(r"^\d\d:\d\d:\d\d\.\d{3} INFO  spikeloop\.node\.decoder: model loaded$", text, re.M)
        assert re.search(r"spikeloop\.runner: graph running", text)
        assert re.search(r"spikeloop\.runner: run stopped: end of data", text)
        stream.truncate(0)
        setup_logging("INFO", quiet=True, stream=stream)
        runner_logger().info("not shown")
        runner_logger().warning("shown")
        assert "not shown" not in stream.getvalue() and "shown" in stream.getvalue()
    finally:
        logger = logging.getLogger("spikeloop")
        logger.handlers.clear()
        logger.propagate = True
        logger.setLevel(logging.NOTSET)


def test_status_line_shows_rates_latency_and_nonzero_counters():
    prev = Snapshot(source_samples=0, sink_samples=0)
    snap = Snapshot(source_samples=500, sink_samples=250, in_graph_p50_ms=0.21, e2e_p50_ms=1.5,
                    counters={"inlet.stalls": 2, "gaps": 0})
    line = format_status(snap, prev, 2.0)
    assert line == "in 250/s  out 125/s  in-graph p50 0.21 ms  end-to-end p50 1.50 ms  inlet.stalls=2"
    out = io.StringIO()
    status = StatusLine(True, interval_s=0.0, stream=out)
    status.update(lambda: snap)
    status.close()
    assert "in-graph p50 0.21 ms" in out.getvalue()


def test_live_local_run_draws_a_status_line_once_a_second(write_config, monkeypatch):
    import pipeline.runners.local as local

    drawn: list[str] = []
    monkeypatch.setattr(local.StatusLine, "message", lambda self, text: drawn.append(text))
    endless = load_graph(write_config(GRAPH), ["gen.duration_s=null"])  # live-like: no progress bar
    summary = local.run(endless, progress=True, duration_s=1.5)
    assert summary["source_samples"] > 0
    assert 1 <= len(drawn) <= 2 and drawn[0].startswith("in ")  # 1.5 s: one redraw a second
