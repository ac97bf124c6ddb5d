"""The graph clock and real-time pacing.

All times are seconds on the LSL clock (``pylsl.local_clock()``, a monotonic clock shared by every
LSL application on the machine).
"""
from __future__ import annotations

import time

try:  # pylsl is a runtime dependency, but keep the clock usable if liblsl is missing
    from pylsl import local_clock as _lsl_clock
except Exception:  # pragma: no cover - exercised only on machines without liblsl
    _lsl_clock = time.monotonic


def local_clock() -> float:
    """Seconds on the LSL clock (monotonic, shared with every LSL application on this machine)."""
    return _lsl_clock()


try:  # the same reading without two Python frames around it: liblsl's own function (a live graph
    # reads the clock several times per sample); pylsl.local_clock is exactly ``lib.lsl_local_clock()``
    from pylsl.util import lib as _liblsl

    if getattr(_liblsl.lsl_local_clock, "restype", None) is not None:
        local_clock = _liblsl.lsl_local_clock  # noqa: F811 - returns a float (restype c_double)
except Exception:  # pragma: no cover - a pylsl without pylsl.util.lib: keep the wrapper above
    pass


SPIN_S = 0.0015
"""How long before a deadline :func:`wait_until` stops sleeping and spins (seconds)."""


def wait_until(deadline: float) -> float:
    """Block until ``local_clock() >= deadline`` (seconds); return the clock reading then.

    Sleeps while more than :data:`SPIN_S` remains, then spins: ~50 µs accuracy without burning a
    core for long waits. Deadlines are absolute, so a long paced run does not drift.
    """
    now = local_clock()
    while now < deadline:
        remaining = deadline - now
        if remaining > SPIN_S:
            time.sleep(remaining - SPIN_S)
        now = local_clock()
    return now
