"""A session whose driver is killed (SIGKILL) is marked dead in ``spikeloop sessions``, not left running;
one whose driver is frozen (SIGSTOP) is shown stale, and running again once it resumes.

Real parts: a loopback Ray cluster (``ray start``), a ``spikeloop run --address --session`` subprocess
killed with SIGKILL once it moves data, ``spikeloop sessions --json`` polled until the entry says
``dead: driver gone`` with the time it was last seen; the run's actors end (Ray's actor table), and
``--prune`` forgets the entry.
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from benchmarks.sessions import REPO, LocalCluster
from pipeline.sessions import HEARTBEAT_S, STALE_AFTER_S
from tests.multinode import where

pytestmark = pytest.mark.slow


def _sessions(cluster: LocalCluster, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline", "sessions", "--address", cluster.address, *args],
                          cwd=REPO, env=dict(cluster.env, COLUMNS="250"), capture_output=True, text=True, timeout=90.0)


def _entry(cluster: LocalCluster, name: str) -> dict | None:
    done = _sessions(cluster, "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    return next((s for s in json.loads(done.stdout.strip().splitlines()[-1]) if s["name"] == name), None)


def test_killed_session_is_marked_dead_with_last_seen_and_pruned(tmp_path):
    cluster = LocalCluster(num_cpus=2, startup_s=120.0)
    run = None
    try:
        log = open(tmp_path / "run.log", "w")
        run = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "run", "configs/replay_decode.yaml", "--runner", "ray",
             "--address", cluster.address, "--session", "rig9", "--no-progress",
             "--set", "replay.loop=true", "--set", "replay.speed=1"],
            cwd=REPO, env=cluster.env, stdout=log, stderr=subprocess.STDOUT)
        entry = None
        end = time.monotonic() + 120.0
        while time.monotonic() < end and run.poll() is None:  # registered and moving data
            entry = _entry(cluster, "rig9")
            if entry and not entry.get("ended") and entry.get("stats", {}).get("sink_samples", 0) > 0:
                break
            time.sleep(1.0)
        assert entry and entry.get("stats", {}).get("sink_samples", 0) > 0, (tmp_path / "run.log").read_text()[-3000:]
        job = entry["job_id"]
        alive = [a for a in where(cluster.address, cluster.env)["actors"]
                 if a["job"] == job and "GroupActor" in a["cls"] and a["state"] == "ALIVE"]
        assert alive, "the run's actors should be running before the kill"

        # a driver that stops answering (SIGSTOP) but whose job Ray still counts alive: shown stale, with
        # when it was last seen; once it runs again (SIGCONT) its heartbeats make it "running" again
        run.send_signal(signal.SIGSTOP)
        time.sleep(STALE_AFTER_S + 2 * HEARTBEAT_S)
        stale = _sessions(cluster)
        assert "stale (running, no heartbeat; last seen" in stale.stdout, stale.stdout
        frozen = _entry(cluster, "rig9")
        assert not frozen.get("ended")
        run.send_signal(signal.SIGCONT)
        end = time.monotonic() + 60.0
        while time.monotonic() < end:
            entry = _entry(cluster, "rig9")
            if entry["last_seen"] > frozen["last_seen"]:
                break
            time.sleep(1.0)
        assert entry["last_seen"] > frozen["last_seen"] and not entry.get("ended"), entry

        run.send_signal(signal.SIGKILL)
        run.wait(10)
        killed_at = time.time()
        end = time.monotonic() + 60.0
        while time.monotonic() < end:
            entry = _entry(cluster, "rig9")
            if entry and entry.get("dead"):
                break
            time.sleep(1.0)
        assert entry and entry.get("dead"), entry
        assert entry["stopped_by"].startswith("dead: driver gone")
        assert entry["last_seen"] <= killed_at and killed_at - entry["last_seen"] < 30.0
        assert entry["stats"]["sink_samples"] > 0  # its last figures are kept

        # Ray ends the actors of a dead driver: nothing of the run is left running on the cluster
        end = time.monotonic() + 30.0
        while time.monotonic() < end:
            left = [a for a in where(cluster.address, cluster.env)["actors"]
                    if a["job"] == job and "GroupActor" in a["cls"] and a["state"] != "DEAD"]
            if not left:
                break
            time.sleep(1.0)
        assert not left, left

        stop = _sessions(cluster, "--stop", "rig9")  # then the table: dead, with the clock time it was last seen
        assert stop.returncode == 0 and "had already ended" in stop.stdout, stop.stdout + stop.stderr
        assert "dead: driver gone" in stop.stdout
        assert time.strftime("%H:%M", time.localtime(entry["last_seen"])) in stop.stdout, stop.stdout
        pruned = _sessions(cluster, "--prune", "--json")
        assert "forgot 1 ended session(s): rig9" in pruned.stdout
        assert json.loads(pruned.stdout.strip().splitlines()[-1]) == []
    finally:
        if run is not None and run.poll() is None:
            run.kill()
            run.wait(10)
        cluster.stop()
