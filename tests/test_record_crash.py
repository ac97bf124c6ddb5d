"""`spikeloop record` killed with SIGKILL: pyxdf reads everything but the last second, exactly.

A counter stream (250 Hz, value = sample number, with a ``desc`` extra) and a string marker stream
are pushed from this process on loopback for 3 s; ``spikeloop record`` runs in a subprocess and is
killed with SIGKILL 1.5 s after the last push (more than the recorder's 0.5 s flush interval plus
a margin for a busy machine: the recorder must have *received* data before it can save it). The
file must load in ``pyxdf.load_xdf`` without an error and hold every pushed sample from the start
of the recording to the last one, values and timestamps bit for bit, every marker of that time,
the clock offset measured when recording began, and the sender's whole header.
"""
from __future__ import annotations

import logging
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pylsl
import pytest
import pyxdf

REPO = Path(__file__).resolve().parents[1]


class Pusher(threading.Thread):
    """Pushes a 250 Hz counter (4 samples every 16 ms, stamped on the LSL clock) and a marker every 0.25 s."""

    def __init__(self, tag: str) -> None:
        super().__init__(daemon=True)
        counter = pylsl.StreamInfo(f"count_{tag}", "Counter", 1, 250.0, pylsl.cf_double64, f"count-src-{tag}")
        counter.desc().append_child("filtering").append_child_value("highpass", "0.1 Hz")
        ch = counter.desc().append_child("channels").append_child("channel")
        ch.append_child_value("label", "n")
        ch.append_child_value("type", "MISC")
        self.counter = pylsl.StreamOutlet(counter)
        self.markers = pylsl.StreamOutlet(
            pylsl.StreamInfo(f"marks_{tag}", "Markers", 1, 0.0, pylsl.cf_string, f"marks-src-{tag}"))
        self.stamps: list[float] = []
        self.marks: list[tuple[str, float]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        t0 = pylsl.local_clock()
        k = 0
        next_mark = t0
        while not self.stop.is_set():
            now = pylsl.local_clock()
            due = int((now - t0) * 250.0)
            if due > k:
                stamps = t0 + np.arange(k, due) / 250.0
                self.counter.push_chunk(np.arange(k, due, dtype=np.float64).reshape(-1, 1), stamps.tolist())
                self.stamps.extend(stamps.tolist())
                k = due
            if now >= next_mark:
                text = f"mark {len(self.marks)}"
                self.markers.push_sample([text], now)
                self.marks.append((text, now))
                next_mark += 0.25
            time.sleep(0.016)


def _wait_for_line(proc: subprocess.Popen, prefix: str, timeout_s: float) -> str:
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if sel.select(timeout=0.2):
            line = proc.stdout.readline()
            if line.startswith(prefix):
                return line
            if not line and proc.poll() is not None:
                break
    proc.kill()
    raise AssertionError(f"no {prefix!r} line from spikeloop record; stderr: {proc.stderr.read()[-2000:]}")


@pytest.mark.parametrize("suffix", [".xdfz", ".xdf"])
def test_sigkilled_recording_loads_in_pyxdf_up_to_the_last_second(tmp_path, suffix, caplog):
    tag = uuid.uuid4().hex[:8]
    pusher = Pusher(tag)
    pusher.start()
    out = tmp_path / f"session{suffix}"
    env = dict(os.environ, PYTHONPATH=str(REPO), SPIKELOOP_LSL_LOCAL="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "record", "--streams",
         f"source_id=count-src-{tag},source_id=marks-src-{tag}", "--out", str(out), "--no-progress"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_line(proc, "recording ", 30.0)
        t_ready = pylsl.local_clock()
        time.sleep(3.0)
        pusher.stop.set()
        pusher.join(timeout=5)
        time.sleep(1.5)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        pusher.stop.set()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL

    with caplog.at_level(logging.ERROR, logger="pyxdf"):
        streams, _ = pyxdf.load_xdf(str(out), synchronize_clocks=False, dejitter_timestamps=False)
        pyxdf.load_xdf(str(out))  # the default load (clock sync, dejitter) works too
    assert not [r for r in caplog.records if r.name.startswith("pyxdf")], [r.getMessage() for r in caplog.records]
    by_name = {s["info"]["name"][0]: s for s in streams}
    counter, marks = by_name[f"count_{tag}"], by_name[f"marks_{tag}"]
    assert "footer" not in counter  # the recorder never closed the file

    values = counter["time_series"][:, 0]
    stamps = counter["time_stamps"]
    first = int(values[0])
    n = values.size
    np.testing.assert_array_equal(values, np.arange(first, first + n, dtype=np.float64))  # nothing missing
    assert first + n == len(pusher.stamps), f"{len(pusher.stamps) - first - n} samples lost before the kill"
    np.testing.assert_array_equal(stamps, np.array(pusher.stamps[first:]))  # bit for bit
    assert stamps[0] <= t_ready  # the inlet was open before the recorder said so

    pushed = [(text, t) for text, t in pusher.marks if t >= marks["time_stamps"][0]]
    assert [row[0] for row in marks["time_series"]] == [text for text, _ in pushed]  # to the last one
    np.testing.assert_array_equal(marks["time_stamps"], [t for _, t in pushed])
    first_mark_after_ready = min(t for _, t in pusher.marks if t >= t_ready)
    assert marks["time_stamps"][0] <= first_mark_after_ready  # the marker inlet was open too

    assert len(counter["clock_times"]) >= 1 and abs(counter["clock_values"][0]) < 0.01  # measured at once
    info = counter["info"]
    assert info["desc"][0]["filtering"][0]["highpass"] == ["0.1 Hz"]
    assert info["desc"][0]["channels"][0]["channel"][0]["type"] == ["MISC"]
    sent = pusher.counter.get_info()
    assert info["uid"] == [sent.uid()] and info["hostname"] == [sent.hostname()]
    assert float(info["created_at"][0]) == pytest.approx(sent.created_at()) and info["session_id"][0]
