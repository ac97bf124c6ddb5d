"""What keeping sent batches for re-sending costs a ``ray`` sender, without Ray (CPU time, one thread).

``PYTHONPATH=. python -m benchmarks.keep_cost --sends 60000 --trim-every 15000 --repeats 2``

Sends ``--sends`` batches of one 5 x 96 float64 packet (a 20 ms packet of the bundled recording's
spikes) through :class:`pipeline.runners.ray_runner.Outbox` with a push that does nothing, once
keeping the batches (restarts on; a checkpoint trims them every ``--trim-every`` sends, about 5 s
of this graph's traffic) and once not. Prints the CPU time per send (``time.thread_time``: this
thread only, so other processes' load matters less than for wall time, though caches are shared),
the part spent in Python's garbage collector and its collections per generation. Modes alternate.
"""
from __future__ import annotations

import argparse
import gc
import time

import numpy as np


def one(keep: bool, sends: int, trim_every: int) -> dict:
    from pipeline.packet import Packet
    from pipeline.runners.ray_runner import Outbox
    from pipeline.runners.stepper import Batch

    outbox = Outbox("replay", 0, lambda group, envelope: None, lambda refs, timeout: refs, keep=keep)
    rng = np.random.default_rng(0)
    spent = [0.0, 0.0]
    counts = [0, 0, 0]

    def on_gc(phase: str, info: dict) -> None:
        if phase == "start":
            spent[1] = time.thread_time()
        else:
            spent[0] += time.thread_time() - spent[1]
            counts[info["generation"]] += 1

    gc.callbacks.append(on_gc)
    t0 = time.thread_time()
    try:
        for i in range(sends):
            packet = Packet(rng.random((5, 96)), np.arange(5.0) + 5 * i, 0.0, i)
            outbox.send("decoder", Batch("replay", (0.02 * i, True), [("decoder", "in", packet)]))
            if keep and (i + 1) % trim_every == 0:  # the receiver's checkpoint covers what came so far
                outbox.trim("decoder", 0, i + 1)
    finally:
        gc.callbacks.remove(on_gc)
    cpu = time.thread_time() - t0
    return {"keep": keep, "us_per_send": 1e6 * cpu / sends, "gc_us_per_send": 1e6 * spent[0] / sends,
            "collections": counts}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sends", type=int, default=60000, help="batches sent per run (default 60000)")
    p.add_argument("--trim-every", type=int, default=15000, help="sends between trims when keeping (default 15000)")
    p.add_argument("--repeats", type=int, default=2, help="runs of each mode, alternated (default 2)")
    args = p.parse_args(argv)
    import os

    from pipeline.runners.realtime import freeze_setup_objects

    freeze_setup_objects()  # as in a group actor after set-up
    print(time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), f"load {os.getloadavg()[0]:.1f}", flush=True)
    for _ in range(args.repeats):
        for keep in (False, True):
            r = one(keep, args.sends, args.trim_every)
            print(f"keep={str(keep):5s}: {r['us_per_send']:.2f} us CPU per send, of which gc {r['gc_us_per_send']:.2f} us; "
                  f"collections per generation {r['collections']}", flush=True)
    print(f"load after {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
