"""``spikeloop bench sessions`` end to end: a real loopback Ray cluster (ray start), two live
sessions (spikeloop run --runner ray --address), real LSL pusher/receiver processes."""
from __future__ import annotations

import argparse
import json

import pytest

from benchmarks import sessions


@pytest.mark.slow
@pytest.mark.parametrize("clients", ["shared", "per-session"])
def test_two_sessions_on_one_cluster_report_matched_outputs_and_losses(tmp_path, clients):
    """Both client set-ups: one pusher and one receiver process for all sessions (default), or a
    pair per session; the same scoring from each session's files."""
    out = tmp_path / "sessions.json"
    args = argparse.Namespace(sessions=[2], duration=5.0, wait="block", model=str(sessions.DEFAULT_MODEL),
                              startup_timeout=150.0, startup_parallel=1, resolve_timeout=60.0, worker_niceness=0,
                              clients=clients, settle=1.0, json_path=str(out), graph_kind="spikeloop", keep=None)
    code = sessions.run(args)
    report = json.loads(out.read_text())
    (res,) = report["results"]
    assert res["sessions_requested"] == 2
    assert code == 0, [r.get("error") for r in res["sessions"]]
    assert len(res["sessions"]) == 2 and res["sessions_ok"] == 2
    for row in res["sessions"]:
        # 5 s at 250 Hz pushed, and (nearly) every one matched to an output by its timestamp
        assert 1200 <= row["samples"] <= 1300
        assert row["received"] > 0.9 * row["samples"]
        assert row["lost"] == row["samples"] - row["received"]
        assert 0.0 < row["p50_ms"] <= row["p99_ms"] <= row["max_ms"]
        assert row["cpu_actor_pct"] > 0.0  # the session's actor was found in the cluster's process tree
    # start-up in phases, one session at a time: the second started only once the first produced output
    first, second = sorted(res["sessions"], key=lambda r: r["started_at_s"])
    assert second["started_at_s"] >= first["up_at_s"] > first["started_at_s"]
    assert all(0.0 < r["graph_startup_s"] <= r["startup_s"] for r in res["sessions"])
    assert res["startup_parallel"] == 1 and res["resolve_timeout_s"] == 60.0
    assert res["actor_niceness"] == [0]  # the cluster's workers run at the niceness asked for, not Ray's 15
    assert res["lost"] == sum(r["lost"] for r in res["sessions"])
    assert res["worst_p99_ms"] == max(r["p99_ms"] for r in res["sessions"])
    assert res["cpu"]["cpu_pct"] > 0.0
    assert res["clients"] == clients and res["cpu_clients"]["cpu_pct"] > 0.0
    assert all("push_err_p99_ms" in r for r in res["sessions"])  # each stream's push schedule error is reported


def test_cluster_is_stopped_and_its_directory_removed():
    """The benchmark's cluster ends with exactly its own processes; no other Ray is touched."""
    import psutil

    cluster = sessions.LocalCluster(num_cpus=1, startup_s=120.0)
    pids = cluster.pids()
    assert len(pids) >= 3  # ray start, gcs_server, raylet at least
    cluster.stop()
    assert not cluster.temp_dir.exists()
    assert not [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]


def test_relay_floor_keeps_each_sessions_files(tmp_path):
    """``--graph relay``: the same clients and scoring around bare pylsl relays (no Ray); ``--keep``
    leaves every session's push and arrival records, and refuses a directory already in use."""
    import numpy as np

    from pipeline.errors import UserError

    keep, out = tmp_path / "keep", tmp_path / "relay.json"
    args = argparse.Namespace(sessions=[2], duration=3.0, wait="block", model=str(sessions.DEFAULT_MODEL),
                              startup_timeout=60.0, startup_parallel=2, resolve_timeout=30.0, worker_niceness=0,
                              clients="shared", settle=1.0, json_path=str(out), graph_kind="relay", keep=str(keep))
    code = sessions.run(args)
    report = json.loads(out.read_text())
    (res,) = report["results"]
    assert code == 0 and report["graph"] == "relay", [r.get("error") for r in res["sessions"]]
    assert res["sessions_ok"] == 2 and "actor_niceness" not in res  # no cluster was started
    for row in res["sessions"]:
        assert 700 <= row["samples"] <= 800 and row["received"] > 0.9 * row["samples"]
        assert 0.0 < row["p50_ms"] <= row["p99_ms"] and row["cpu_pct"] > 0.0
        kept = np.load(keep / f"n2_s{row['session']}" / "received.npz")
        assert kept["arrivals"].size >= row["received"]  # warm-up included; the window is scored from it
    with pytest.raises(UserError, match="not empty"):
        sessions.run(args)


def test_machine_meter_sees_a_niced_busy_process():
    """The machine-wide meter counts CPU of processes at a positive niceness apart (a background job the
    load average hides), and the warning names it; a quiet window gives no warning."""
    import subprocess
    import sys
    import time

    from benchmarks.latency import MachineMeter, not_quiet_warning

    hog = subprocess.Popen([sys.executable, "-c", "import os, time\nos.nice(19)\nt = time.time() + 1.5\n"
                            "while time.time() < t: pass"])
    try:
        meter = MachineMeter()
        meter.begin()
        time.sleep(1.0)
        got = meter.end()
    finally:
        hog.wait(10)
    assert got["nice_cpu_pct"] > 20.0  # the niced spinner held most of a core for the window
    assert got["machine_cpu_pct"] >= got["nice_cpu_pct"]
    assert "not quiet" in not_quiet_warning([got])
    assert not_quiet_warning([{"nice_cpu_pct": 0.0}]) is None
