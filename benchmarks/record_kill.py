"""How much a SIGKILLed ``spikeloop record`` loses: ``python benchmarks/record_kill.py``.

For each format (``.xdfz``, ``.xdf``) and trial: this process pushes a 250 Hz counter stream
(value = sample number, stamped on the LSL clock at push) on loopback; ``spikeloop record`` runs
in a child process and is killed with SIGKILL at a different moment each trial (2 s + 0.37 s per
trial after it said "recording"). The file is then read with ``pyxdf.load_xdf``; reported per
trial: whether the samples read are a contiguous run equal (values and timestamps, bit for bit) to
what was pushed, how many, and how long before the kill the last one was pushed (what the kill
cost). The recorder writes every 0.5 s, so that figure should stay under about 0.5 s plus the time
the recorder needs to pull the data from liblsl.

Example::

    SPIKELOOP_LSL_LOCAL=1 python benchmarks/record_kill.py --trials 3
"""
from __future__ import annotations

import argparse
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _push(outlet, stamps_out: list[float], stop: threading.Event) -> None:
    import pylsl

    t0 = pylsl.local_clock()
    k = 0
    while not stop.is_set():
        due = int((pylsl.local_clock() - t0) * 250.0)
        if due > k:
            stamps = t0 + np.arange(k, due) / 250.0
            outlet.push_chunk(np.arange(k, due, dtype=np.float64).reshape(-1, 1), stamps.tolist())
            stamps_out.extend(stamps.tolist())
            k = due
        time.sleep(0.016)


def _wait_ready(proc: subprocess.Popen, timeout_s: float) -> None:
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if sel.select(timeout=0.2) and proc.stdout.readline().startswith("recording "):
            return
        if proc.poll() is not None:
            break
    proc.kill()
    raise SystemExit(f"spikeloop record did not start: {proc.stderr.read()[-1000:]}")


def trial(suffix: str, kill_after_s: float, folder: Path) -> tuple[bool, int, float]:
    """One recording killed after ``kill_after_s``: (exact, samples read, seconds lost before the kill)."""
    import pylsl
    import pyxdf

    tag = uuid.uuid4().hex[:8]
    outlet = pylsl.StreamOutlet(pylsl.StreamInfo(f"count_{tag}", "Counter", 1, 250.0, pylsl.cf_double64,
                                                 f"count-src-{tag}"))
    pushed: list[float] = []
    stop = threading.Event()
    pusher = threading.Thread(target=_push, args=(outlet, pushed, stop), daemon=True)
    pusher.start()
    out = folder / f"killed_{tag}{suffix}"
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "record", "--streams", f"source_id=count-src-{tag}",
                             "--out", str(out), "--no-progress"], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)))
    try:
        _wait_ready(proc, 60.0)
        time.sleep(kill_after_s)
        t_kill = pylsl.local_clock()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        stop.set()
        pusher.join(timeout=5)
        if proc.poll() is None:
            proc.kill()
    streams, _ = pyxdf.load_xdf(str(out), synchronize_clocks=False, dejitter_timestamps=False)
    values, stamps = streams[0]["time_series"][:, 0], streams[0]["time_stamps"]
    first = int(values[0])
    exact = bool(np.array_equal(values, np.arange(first, first + values.size))
                 and np.array_equal(stamps, np.array(pushed[first:first + values.size])))
    return exact, int(values.size), float(t_kill - stamps[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog="example: SPIKELOOP_LSL_LOCAL=1 python benchmarks/record_kill.py --trials 3")
    p.add_argument("--trials", type=int, default=3, help="kills per format (default 3)")
    args = p.parse_args(argv)
    sys.path.insert(0, str(REPO))
    import pipeline  # noqa: F401  - applies SPIKELOOP_LSL_LOCAL before liblsl starts

    print(f"load average {os.getloadavg()[0]:.1f} (1 min) on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as folder:
        for suffix in (".xdfz", ".xdf"):
            lost = []
            for k in range(args.trials):
                exact, n, before = trial(suffix, 2.0 + 0.37 * k, Path(folder))
                lost.append(before)
                print(f"{suffix:6s} trial {k + 1}: exact={exact} samples={n} last sample {before:.3f} s before the kill",
                      flush=True)
            print(f"{suffix:6s} lost before the kill: median {np.median(lost):.3f} s, max {max(lost):.3f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
