"""``spikeloop bench latency`` end to end on a short run: outside-client processes, matched outputs."""
from __future__ import annotations

import json

import pytest

from pipeline.cli import main

pytestmark = pytest.mark.slow  # three rows of a few seconds each, plus process start-up


def test_short_run_matches_every_output_to_its_input_and_reports_cpu(tmp_path):
    out = tmp_path / "latency.json"
    rc = main(["bench", "latency", "--runner", "local", "--duration", "2", "--repeats", "1",
               "--variant", "SPIKELOOP_AUTO_PREDICT=last", "--json", str(out)])
    report = json.loads(out.read_text())
    rows = {r["path"]: r for r in report["runs"]}
    assert set(rows) == {"lsl hop (1 hop)", "lsl relay (2 hops)", "local, auto", "local, auto, SPIKELOOP_AUTO_PREDICT=last"}
    assert rc == 0, [r.get("error") for r in rows.values()]
    for row in rows.values():
        # every pushed sample is accounted for: matched by its timestamp at the output, or lost
        assert row["samples"] == row["received"] + row["lost"] and row["samples"] >= 400
        assert row["received"] > 0.9 * row["samples"]
        assert 0 < row["p50_ms"] <= row["p99_ms"] <= row["max_ms"]
        assert row["push_err_p50_ms"] is not None
    assert rows["local, auto"]["cpu_pct"] > 0  # the graph's process tree was measured
    summary = {s["path"]: s for s in report["summary"]}
    for path in ("local, auto", "local, auto, SPIKELOOP_AUTO_PREDICT=last"):  # the floor beside each row
        assert "p50_over_hop_ms" in summary[path] and "p99_over_hop_ms" in summary[path]
