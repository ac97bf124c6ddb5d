"""The outside clients of ``spikeloop bench latency``, each run as a process of its own.

An outside client is what a lab's own software is: another process, with its own interpreter.
A driver that pushed and pulled in one Python process would share one GIL between the two and
inflate the floor, so the benchmark runs:

* :func:`pusher`: an LSL outlet that pushes samples on a fixed schedule (one sample per push,
  stamped with ``local_clock()`` at the push) — warm-up until the receiver sees output, then the
  measured window — and saves the scheduled times and stamps (``.npz``);
* :func:`receiver`: an LSL inlet on the graph's output that records, for every sample, its
  timestamp and its arrival time on this machine's LSL clock (``.npz``);
* :func:`relay`: a bare pylsl relay (pull → push, stamps kept), the two-hop floor;
* :func:`busy`: one busy process for ``--load N``.

The processes talk through files in a work directory: the receiver creates ``go`` when the first
output arrives (the pusher then starts its measured window after ``settle_s``), the pusher creates
``outlet`` once its stream exists and ``pushed`` when done, the driver creates ``stop`` to end the receiver. Every wait is bounded.

Run as ``python -m benchmarks.latency_clients ROLE --arg value ...`` (the driver does this).
"""
from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

import numpy as np

CHANNELS = 96


def _wait_file(path: Path, timeout_s: float) -> bool:
    end = time.monotonic() + timeout_s
    while not path.exists():
        if time.monotonic() > end:
            return False
        time.sleep(0.01)
    return True


def _outlet(name: str, rate: float, events: bool):
    import pylsl

    if events:
        info = pylsl.StreamInfo(name, "SpikeEvents", 2, 0.0, "float32", name)
        chans = info.desc().append_child("channels")
        for label in ("channel", "unit"):
            chans.append_child("channel").append_child_value("label", label)
    else:
        info = pylsl.StreamInfo(name, "SpikeCounts", CHANNELS, rate, "float32", name)
    return pylsl.StreamOutlet(info)


def pusher(name: str, rate: float, duration_s: float, workdir: Path, startup_s: float, settle_s: float,
           events: bool, event_rate_hz: float, seed: int) -> int:
    """Push until ``go`` (warm-up), settle, then ``duration_s`` measured; save ``pushed.npz``.

    Regular stream: one 96-channel sample of Poisson counts every ``1/rate`` s. Event stream
    (``events``): every ``1/rate`` s, the spike events ``(channel, unit)`` that a population of 96
    channels firing at ``event_rate_hz`` each produced in that interval, pushed as one chunk with
    every event stamped at the push (an empty interval pushes nothing).
    """
    import pylsl

    rng = np.random.default_rng(seed)
    outlet = _outlet(name, rate, events)
    (workdir / "outlet").touch()  # the stream exists (a driver may start the graph that resolves it now)
    period = 1.0 / rate
    go, done = workdir / "go", workdir / "pushed"
    scheduled: list[float] = []
    stamps: list[float] = []
    events_pushed = 0
    sample = np.zeros(CHANNELS, dtype=np.float32)
    t0 = pylsl.local_clock()
    i = 0
    measure_from: float | None = None
    measure_to: float | None = None
    hard_end = t0 + startup_s + settle_s + duration_s + 5.0
    while True:
        due = t0 + i * period
        now = pylsl.local_clock()
        if measure_from is None and go.exists():
            measure_from = now + settle_s
            measure_to = measure_from + duration_s
        if measure_to is not None and due >= measure_to:
            break
        if measure_from is None and now - t0 > startup_s:
            break
        if now > hard_end:
            break
        delay = due - pylsl.local_clock()
        if delay > 0:
            time.sleep(delay)
        if events:
            k = rng.poisson(event_rate_hz * CHANNELS * period)
            ts = pylsl.local_clock()
            if k:
                chunk = np.stack([rng.integers(0, CHANNELS, k), np.zeros(k)], axis=1).astype(np.float32)
                outlet.push_chunk(chunk, ts)
                if measure_from is not None and due >= measure_from:
                    events_pushed += int(k)
        else:
            sample[:] = rng.poisson(0.08, CHANNELS)
            ts = pylsl.local_clock()
            outlet.push_sample(sample, ts)
        if measure_from is not None and due >= measure_from:
            scheduled.append(due)
            stamps.append(ts)
        i += 1
    np.savez(workdir / "pushed.npz", scheduled=np.array(scheduled), stamps=np.array(stamps),
             measure_from=measure_from if measure_from is not None else np.nan,
             measure_to=measure_to if measure_to is not None else np.nan, events_pushed=events_pushed)
    done.touch()
    time.sleep(1.0)  # let the last samples leave before the outlet goes away
    return 0 if measure_from is not None else 3


def receiver(name: str, workdir: Path, startup_s: float, max_s: float, ready: str = "go") -> int:
    """Record ``(timestamp, arrival)`` of every sample of stream ``name`` until ``stop``; save ``received.npz``.

    The file ``ready`` (default ``go``, which starts the pusher's measured window) is created in
    ``workdir`` when the first output arrives; a driver that starts many pushers at once passes
    another name and creates ``go`` itself.
    """
    import pylsl

    found = pylsl.resolve_byprop("name", name, 1, startup_s)
    if not found:
        (workdir / "receiver_error").write_text(f"stream {name!r} not found within {startup_s:g} s")
        return 2
    inlet = pylsl.StreamInlet(found[0], max_buflen=60, processing_flags=0)
    inlet.open_stream(startup_s)
    stamps, arrivals = record_arrivals(inlet, workdir / "stop", workdir / ready, time.monotonic() + max_s)
    np.savez(workdir / "received.npz", timestamps=stamps, arrivals=arrivals)
    return 0


def record_arrivals(inlet, stop: Path, ready: Path, end: float) -> tuple[np.ndarray, np.ndarray]:
    """Pull ``inlet`` until the file ``stop`` exists or ``time.monotonic()`` passes ``end``; return
    every sample's LSL timestamp and its arrival time (``local_clock()`` when its pull returned), in
    seconds. ``ready`` is created at the first sample. Each pull returns at the first sample or after 50 ms."""
    import pylsl

    ts_out = np.empty(1 << 16)
    arrival = np.empty(1 << 16)
    n = 0
    while not stop.exists() and time.monotonic() < end:
        _, stamps = inlet.pull_chunk(timeout=0.05, max_samples=4096, min_samples=1)
        if stamps:
            now = pylsl.local_clock()
            k = len(stamps)
            if n + k > ts_out.size:
                ts_out = np.resize(ts_out, 2 * (n + k))
                arrival = np.resize(arrival, 2 * (n + k))
            ts_out[n:n + k] = stamps
            arrival[n:n + k] = now
            n += k
            if not ready.exists():
                ready.touch()
    return ts_out[:n], arrival[:n]


def relay(in_name: str, out_name: str, max_block_s: float = 0.005) -> int:
    """A bare pylsl relay (pull → push, stamps kept): the floor under any graph that reads and writes LSL."""
    import pylsl

    found = pylsl.resolve_byprop("name", in_name, 1, 30.0)
    if not found:
        return 2
    inlet = pylsl.StreamInlet(found[0], max_buflen=60)
    full = inlet.info(10.0)
    outlet = pylsl.StreamOutlet(pylsl.StreamInfo(out_name, full.type(), full.channel_count(), full.nominal_srate(),
                                                 full.channel_format(), out_name))
    inlet.open_stream(10.0)
    buf = np.empty((1024, full.channel_count()), dtype=np.float32)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        data, stamps = inlet.pull_chunk(timeout=max_block_s, max_samples=1024, dest_obj=buf, min_samples=1,
                                        as_numpy=True)
        n = len(stamps)
        if n == 1:
            outlet.push_chunk(np.array(data[:1]), float(stamps[0]))
        elif n:
            outlet.push_chunk(np.array(data[:n]), stamps.tolist())


def busy() -> int:
    """Burn one core until killed (``--load``)."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    x = 0
    while True:
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.latency_clients")
    p.add_argument("role", choices=("push", "receive", "relay", "busy"))
    p.add_argument("--name", default="")
    p.add_argument("--out-name", default="")
    p.add_argument("--rate", type=float, default=250.0)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--workdir", type=Path, default=Path("."))
    p.add_argument("--startup", type=float, default=120.0)
    p.add_argument("--settle", type=float, default=1.0)
    p.add_argument("--events", action="store_true")
    p.add_argument("--event-rate", type=float, default=20.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ready", default="go", help="receive: file created at the first output")
    a = p.parse_args(argv)
    if a.role == "push":
        return pusher(a.name, a.rate, a.duration, a.workdir, a.startup, a.settle, a.events, a.event_rate, a.seed)
    if a.role == "receive":
        return receiver(a.name, a.workdir, a.startup, a.startup + a.settle + a.duration + 30.0, a.ready)
    if a.role == "relay":
        return relay(a.name, a.out_name)
    return busy()


if __name__ == "__main__":
    raise SystemExit(main())
