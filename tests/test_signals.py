"""SIGTERM and SIGHUP end a run as Ctrl-C does: summary printed, --json written, files closed."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pipeline.recordings import load_recording
from pipeline.runners.signals import StopRequest

REPO = Path(__file__).resolve().parents[1]

ENDLESS = """
name: endless
nodes:
  gen: {{kind: signal_generator, params: {{channels: 2, rate_hz: 250, duration_s: null, chunk: 5, speed: 1}}}}
  rec: {{kind: recorder, params: {{path: {path}}}}}
edges:
  - gen -> rec
"""


def start(config: Path, out: Path, runner: str) -> tuple[subprocess.Popen, list[str], threading.Thread]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "run", str(config), "--runner", runner, "--json", str(out), "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)  # type: ignore[arg-type]
    reader.start()
    return proc, lines, reader


@pytest.mark.parametrize("runner,signum", [("local", signal.SIGTERM), ("local", signal.SIGHUP), ("ray", signal.SIGTERM),
                                           ("ray-compiled", signal.SIGTERM)])
def test_signal_ends_the_run_with_summary_json_and_closed_files(tmp_path, runner, signum):
    rec = tmp_path / "out.xdf"
    config = tmp_path / "endless.yaml"
    config.write_text(ENDLESS.format(path=rec))
    out = tmp_path / "summary.json"
    proc, lines, reader = start(config, out, runner)
    deadline = time.monotonic() + 120
    while not any("graph running" in line for line in lines) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert any("graph running" in line for line in lines), "".join(lines)
    time.sleep(0.5)
    proc.send_signal(signum)
    proc.wait(timeout=120)
    reader.join(10)
    stdout = proc.stdout.read()  # type: ignore[union-attr]
    assert proc.returncode == 0, "".join(lines)
    name = {signal.SIGTERM: "SIGTERM", signal.SIGHUP: "SIGHUP"}[signum]
    summary = json.loads(out.read_text())
    assert name in summary["stopped_by"]
    assert "stopped by" in stdout and name in stdout
    assert summary["nodes"]["rec"]["samples_in"] > 0
    recording = load_recording(rec)  # closed properly: the file is complete and readable
    assert recording.stream("in").data.shape[0] == summary["nodes"]["rec"]["samples_in"]
    assert any("stop requested" in line for line in lines)


def test_second_signal_forces_the_exit():
    with StopRequest() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.reason == "terminated (SIGTERM)"
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL or callable(signal.getsignal(signal.SIGTERM))
