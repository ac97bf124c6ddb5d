"""Shared outside clients of ``spikeloop bench sessions --clients shared``: ONE pusher process for the
N sessions' input streams and ONE receiver process for their N output streams.

Why: a lab's rigs are other machines. With a pusher and a receiver process per session on the same
2-core machine, 16 sessions bring 32 client processes whose own CPU (measured 3.5-5 % of a core
each at 250 Hz, ``python -m benchmarks.latency_clients``) is as large as the sessions' and starves
them; sharing one process per role leaves the CPU to what is measured.

* :func:`push_many`: N LSL outlets (96 channels of Poisson counts, ``rate`` Hz each). Stream ``i``
  pushes at ``t0 + k / rate + i / (N * rate)`` (staggered, as unsynchronised rigs are, not N pushes
  in one burst), one sample per push stamped with ``local_clock()`` at the push. It warms up until
  ``go`` appears in its own work directory, then measures ``duration_s`` after ``settle_s``, and
  writes ``pushed.npz`` (scheduled times, stamps, window) and ``pushed`` into EACH session's
  work directory, exactly as :func:`benchmarks.latency_clients.pusher` does for one, so the same
  scoring applies. Each session's directory gets ``outlet`` once its stream exists.
* :func:`receive_many`: one thread per output stream (a blocking ``pull_chunk`` in liblsl, which
  releases the GIL): it resolves its stream (in 1 s attempts, so it sees ``stop``), records every
  sample's timestamp and arrival time (``local_clock()``), creates ``ready`` in its session's
  directory at the first output and writes ``received.npz`` there when its ``stop`` appears.

Run as ``python -m benchmarks.session_clients ROLE --workdir DIR --sessions DIR1 DIR2 ... --names A B ...``.
Every wait is bounded.
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np

from benchmarks.latency_clients import CHANNELS, _outlet, record_arrivals


def push_many(names: list[str], dirs: list[Path], workdir: Path, rate: float, duration_s: float,
              startup_s: float, settle_s: float, seed: int) -> int:
    """Push to ``len(names)`` streams from one thread, staggered; see the module docstring."""
    import pylsl

    n = len(names)
    rng = np.random.default_rng(seed)
    outlets = []
    for name, d in zip(names, dirs):
        outlets.append(_outlet(name, rate, False))
        (d / "outlet").touch()
    period = 1.0 / rate
    offsets = [i * period / n for i in range(n)]
    scheduled: list[list[float]] = [[] for _ in range(n)]
    stamps: list[list[float]] = [[] for _ in range(n)]
    sample = np.zeros(CHANNELS, dtype=np.float32)
    go = workdir / "go"
    t0 = pylsl.local_clock()
    measure_from: float | None = None
    measure_to: float | None = None
    hard_end = t0 + startup_s + settle_s + duration_s + 5.0
    k = 0  # push round
    while True:
        now = pylsl.local_clock()
        if measure_from is None and go.exists():
            measure_from = now + settle_s
            measure_to = measure_from + duration_s
        base = t0 + k * period
        if measure_to is not None and base >= measure_to:
            break
        if (measure_from is None and now - t0 > startup_s) or now > hard_end:
            break
        for i in range(n):
            due = base + offsets[i]
            delay = due - pylsl.local_clock()
            if delay > 0:
                time.sleep(delay)
            sample[:] = rng.poisson(0.08, CHANNELS)
            ts = pylsl.local_clock()
            outlets[i].push_sample(sample, ts)
            if measure_from is not None and due >= measure_from and due < measure_to:
                scheduled[i].append(due)
                stamps[i].append(ts)
        k += 1
    for i, d in enumerate(dirs):
        np.savez(d / "pushed.npz", scheduled=np.array(scheduled[i]), stamps=np.array(stamps[i]),
                 measure_from=measure_from if measure_from is not None else np.nan,
                 measure_to=measure_to if measure_to is not None else np.nan, events_pushed=0)
        (d / "pushed").touch()
    time.sleep(1.0)  # let the last samples leave before the outlets go away
    return 0 if measure_from is not None else 3


def _receive_one(name: str, d: Path, startup_s: float, max_s: float) -> None:
    import pylsl

    stop = d / "stop"
    end = time.monotonic() + startup_s
    found = []
    while not found and not stop.exists() and time.monotonic() < end:
        found = pylsl.resolve_byprop("name", name, 1, 1.0)
    if not found:
        (d / "receiver_error").write_text(f"stream {name!r} not found within {startup_s:g} s")
        return
    inlet = pylsl.StreamInlet(found[0], max_buflen=60, processing_flags=0)
    inlet.open_stream(min(startup_s, 60.0))
    stamps, arrivals = record_arrivals(inlet, stop, d / "ready", time.monotonic() + max_s)
    np.savez(d / "received.npz", timestamps=stamps, arrivals=arrivals)


def receive_many(names: list[str], dirs: list[Path], startup_s: float, max_s: float) -> int:
    """One receiving thread per stream; returns when every thread has written its results."""
    threads = [threading.Thread(target=_receive_one, args=(name, d, startup_s, max_s), name=f"recv-{name}", daemon=True)
               for name, d in zip(names, dirs)]
    for t in threads:
        t.start()
    end = time.monotonic() + startup_s + max_s + 30.0
    for t in threads:
        t.join(max(0.1, end - time.monotonic()))
    return 0 if not any(t.is_alive() for t in threads) else 4


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.session_clients")
    p.add_argument("role", choices=("push-many", "receive-many"))
    p.add_argument("--names", nargs="+", required=True)
    p.add_argument("--sessions", nargs="+", type=Path, required=True, help="each stream's session work directory")
    p.add_argument("--workdir", type=Path, default=Path("."))
    p.add_argument("--rate", type=float, default=250.0)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--startup", type=float, default=120.0)
    p.add_argument("--settle", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    if len(a.names) != len(a.sessions):
        p.error("--names and --sessions must have the same length")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if a.role == "push-many":
        return push_many(a.names, a.sessions, a.workdir, a.rate, a.duration, a.startup, a.settle, a.seed)
    return receive_many(a.names, a.sessions, a.startup, a.duration + a.startup)


if __name__ == "__main__":
    sys.exit(main())
