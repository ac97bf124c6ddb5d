"""Keep a live data path clear: the garbage collector frozen, (opt-in) a short scheduler slice, and
standby work at a low priority.

A full (generation 2) collection scans every container object in the process. A runner process
holds hundreds of thousands of them once numpy, numba, scipy, the model and, in an actor, Ray's own
modules are imported, so a full pass stops the interpreter for tens of milliseconds: a p99 spike on
a 4 ms sample that has nothing to do with the graph. :func:`freeze_setup_objects` runs one
collection after the graph is set up and then moves every surviving object into the collector's
permanent generation (``gc.freeze()``), so later passes scan only what the run itself allocates
(packets, small dicts), and they stay short. Nothing is disabled: cycles created during the run are
still collected; objects alive at set-up are simply never scanned again (they live as long as the
run anyway).

``SPIKELOOP_GC_FREEZE=0`` in the environment skips the freeze (a diagnostic: it lets
``spikeloop bench latency-path --no-gc-freeze`` measure what the freeze buys).
"""
from __future__ import annotations

import gc
import os
from contextlib import contextmanager

ENV = "SPIKELOOP_GC_FREEZE"


def freeze_setup_objects() -> int:
    """Collect once, then freeze every object alive now; return how many objects were frozen.

    Returns 0 without doing anything when ``SPIKELOOP_GC_FREEZE=0`` (diagnostic switch)."""
    if os.environ.get(ENV, "1") == "0":
        return 0
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


# --- a scheduling hint for live graphs that needs no privilege -------------------------------------
SLICE_ENV = "SPIKELOOP_SCHED_SLICE_US"
"""Environment variable: the scheduler slice (µs) a live graph's threads ask for; ``0`` = leave it."""
DEFAULT_SLICE_US = 0
"""Default of :data:`SLICE_ENV` (see :func:`request_short_slice`)."""
_SYS_SCHED_SETATTR = {"x86_64": 314, "aarch64": 274}
_SYS_SCHED_GETATTR = {"x86_64": 315, "aarch64": 275}


def request_short_slice(all_threads: bool = False) -> int | None:
    """Ask Linux's EEVDF scheduler (kernel ≥ 6.12) for a short time slice; return it (ns) or None.

    A thread that asks for a shorter slice (``sched_setattr`` with ``SCHED_OTHER`` and
    ``sched_runtime`` = the slice, clamped by the kernel to 0.1–100 ms) gets an earlier virtual
    deadline when it wakes, so it may preempt a CPU-bound thread at once instead of waiting for
    that thread's slice to end (about 1.4 ms here by default). Its CPU share does not change (that
    is the niceness's job). This needs no privilege (checked as uid 65534 with no capabilities),
    unlike a lower niceness or a real-time policy. Threads created afterwards inherit it.

    Reads ``SPIKELOOP_SCHED_SLICE_US`` (default :data:`DEFAULT_SLICE_US`; 0 = do nothing).
    ``all_threads``: set every thread of this process (a Ray actor whose liblsl threads exist
    already), else only the calling thread (call it before the nodes open, so their threads
    inherit it). Returns None when off, not Linux, or refused (an older kernel ignores it; the
    value read back then shows it).
    """
    import ctypes
    import platform
    import struct

    try:
        slice_us = int(os.environ.get(SLICE_ENV, str(DEFAULT_SLICE_US)))
    except ValueError:
        return None
    machine = platform.machine()
    if slice_us <= 0 or not os.path.isdir("/proc/self/task") or machine not in _SYS_SCHED_SETATTR:
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    try:
        nice = os.getpriority(os.PRIO_PROCESS, 0)
    except OSError:
        return None
    attr = ctypes.create_string_buffer(struct.pack("IIQiIQQQII", 56, 0, 0, nice, 0, slice_us * 1000, 0, 0, 0, 0), 56)
    tids = [int(t) for t in os.listdir("/proc/self/task")] if all_threads else [0]
    ok = False
    for tid in tids:
        ok |= libc.syscall(_SYS_SCHED_SETATTR[machine], tid, attr, 0) == 0
    if not ok:
        return None
    out = ctypes.create_string_buffer(56)
    if libc.syscall(_SYS_SCHED_GETATTR[machine], 0, out, 56, 0) != 0:
        return None
    return int(struct.unpack("IIQiIQQQ", out.raw[:48])[5])


# --- a standby process's priority (a Ray runner's spare actor) -----------------------------------
STANDBY_NICENESS = 19
"""Niceness added while a spare actor prepares itself: it then gets the CPU only when the running
graph does not want it."""


@contextmanager
def standby_priority(niceness: int = 0):
    """Run the enclosed work at a lower CPU priority (``niceness`` added, default
    :data:`STANDBY_NICENESS`), then return to the priority before.

    Linux niceness is per thread: this changes the calling thread only, the one doing the work.
    It lowers the priority only if it may raise it back afterwards (root, or ``RLIMIT_NICE``
    allows the old value); otherwise the work runs at the normal priority. Yields the niceness
    the work ran at (the old one if unchanged)."""
    niceness = niceness or STANDBY_NICENESS
    try:
        old = os.getpriority(os.PRIO_PROCESS, 0)
    except (AttributeError, OSError):
        yield None
        return
    new = min(19, old + niceness)
    if new == old or not _may_lower_to(old):
        yield old
        return
    os.setpriority(os.PRIO_PROCESS, 0, new)
    try:
        yield new
    finally:
        os.setpriority(os.PRIO_PROCESS, 0, old)


def _may_lower_to(niceness: int) -> bool:
    """True if this process may set its niceness back down to ``niceness``."""
    if os.geteuid() == 0:
        return True
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_NICE)[0]
    except (ImportError, AttributeError, OSError):
        return False
    return soft == resource.RLIM_INFINITY or 20 - soft <= niceness
