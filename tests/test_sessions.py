"""Named sessions on a real loopback Ray cluster (``ray start``): ``spikeloop run --address
--session`` registers, ``spikeloop sessions`` lists it, ``--stop`` ends it like Ctrl-C."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pytest

from benchmarks.sessions import REPO, LocalCluster


def _cli(cluster: LocalCluster, *args: str, timeout: float = 90.0) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline", "sessions", "--address", cluster.address, *args],
                          cwd=REPO, env=dict(cluster.env, COLUMNS="250"), capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.slow
def test_session_is_listed_and_stopped_cleanly_with_its_summary(tmp_path):
    cluster = LocalCluster(num_cpus=2, startup_s=120.0)
    run = None
    try:
        summary = tmp_path / "summary.json"
        run = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "run", "configs/replay_decode.yaml", "--runner", "ray",
             "--address", cluster.address, "--session", "rig1", "--no-progress", "--json", str(summary),
             "--set", "replay.loop=true", "--set", "replay.speed=1"],
            cwd=REPO, env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        listed = ""
        end = time.monotonic() + 120.0
        while time.monotonic() < end and run.poll() is None:
            listed = _cli(cluster).stdout
            flowing = re.search(r"rig1 .*running.*│\s*[1-9][\d,]* / [\d,]+\s*│", listed)
            if flowing and "replay_decode" in listed:  # started and moving data, not still starting actors
                break
            time.sleep(2.0)
        assert "rig1" in listed and "running" in listed, listed
        time.sleep(3.0)  # a heartbeat or two with figures
        stopped = _cli(cluster, "--stop", "rig1", "--timeout", "60")
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert "session 'rig1' ended" in stopped.stdout, stopped.stdout
        assert "ended: stopped by spikeloop" in stopped.stdout, stopped.stdout  # the table keeps the entry
        out, _ = run.communicate(timeout=60)
        assert run.returncode == 0, out
        result = json.loads(summary.read_text())
        assert result["stopped_by"] == "stopped by spikeloop sessions --stop rig1"
        assert result["source_samples"] > 0
        unknown = _cli(cluster, "--stop", "nosuch")
        assert unknown.returncode == 2 and "no session 'nosuch'" in unknown.stderr
    finally:
        if run is not None and run.poll() is None:
            run.kill()
            run.wait(10)
        cluster.stop()
