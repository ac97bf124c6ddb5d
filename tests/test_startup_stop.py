"""A stop (SIGTERM, as systemd or ``docker stop`` sends) while a Ray run is still starting.

The graph's live source waits (up to 60 s) for an LSL stream that never appears, so the run is
held in its start-up (actors started, nodes opening). SIGTERM then must end it promptly, with the
summary and ``--json`` of what ran (nothing), not after the start-up has ended.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest

from tests.conftest import REPO


@pytest.mark.parametrize("runner", ["ray", "ray-compiled"])
def test_sigterm_during_startup_ends_the_run_promptly_with_a_summary(tmp_path, write_config, runner):
    stream = f"never_{uuid.uuid4().hex[:8]}"
    path = write_config(f"""
name: startup_stop
nodes:
  inlet:  {{kind: lsl_inlet, params: {{name: {stream}, resolve_timeout_s: 60}}}}
  smooth: {{kind: bessel, params: {{order: 2, cutoff_hz: 20}}}}
  cap:    {{kind: capture}}
edges:
  - inlet -> smooth -> cap
runtime: {{num_cpus: 2}}
""")
    out = tmp_path / "summary.json"
    # its own local Ray: not the session's shared one (ray.init exports RAY_ADDRESS to children)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(PYTHONPATH=str(REPO), RAY_USAGE_STATS_ENABLED="0")
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "run", str(path), "--runner", runner, "--no-progress",
                             "--json", str(out)], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    waiting = threading.Event()

    def read() -> None:
        for line in proc.stderr:  # type: ignore[union-attr]
            lines.append(line)
            if f"waiting for LSL stream name={stream!r}" in line:
                waiting.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert waiting.wait(90), "the run never reached its start-up wait:\n" + "".join(lines[-20:])
        time.sleep(0.5)  # well inside the 60 s the inlet would wait
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        stdout, rest = proc.communicate(timeout=45)  # reads the rest of stderr alongside the reader
        lines.append(rest or "")
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    reader.join(5)
    print(f"{runner}: SIGTERM during start-up -> exit in {took:.2f} s (rc {proc.returncode})")
    assert proc.returncode == 0, "".join(lines[-20:]) + stdout
    summary = json.loads(out.read_text())
    assert summary["stopped_by"] == "terminated (SIGTERM) (during start-up)"
    assert summary["runner"] == runner
    assert "stopped during start-up" in "".join(lines)
    # promptly: far less than the 60 s the inlet would still have waited (Ray's shutdown included)
    assert took < 30, f"the stop took {took:.1f} s"
    assert "stopped_by" in stdout or "terminated" in stdout  # the summary was printed
