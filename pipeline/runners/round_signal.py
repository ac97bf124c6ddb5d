"""Let the ``ray-compiled`` driver sleep while a live round runs, instead of spinning in Ray.

Why: a Ray Compiled Graph reader waits for a channel by *polling* — Ray's
``PlasmaObjectHeader::ReadAcquire`` loops over ``sem_post``/``sched_yield``/``sem_trywait`` until
the writer seals the next version (its own source comment: "Wouldn't a futex be better here than
polling?"), and Ray 2.x offers no setting to block instead (``DAGContext`` has timeouts, buffer
sizes and in-flight limits only). On a live graph each round spends most of its time in the LSL
inlet, waiting for the next sample (up to ``max_block_s``), so the driver, blocked in ``ray.get``
on the round's result, burns a whole core polling for it.

What: the driver makes a FIFO (a named pipe in a private temporary directory) and each group
actor writes one byte to it at the end of every step, tagged with the step's number. The driver
blocks in ``select`` until every actor's byte for the current round has come (or ``timeout``
passes), and only then calls ``ray.get``, which by then finds the result (almost) ready. Stale
bytes (of a round whose wait timed out) are recognised by their tag and dropped, so one late
round never shifts the next. If an actor cannot open the FIFO (it runs on another machine), the
driver does not use it: every wait falls back to Ray's own.

Only the wait changes: rounds, their order and their results are untouched.
"""
from __future__ import annotations

import os
import select
import shutil
import tempfile
import time


def tag(round_index: int) -> int:
    """The byte that marks round ``round_index`` (1..251; 0 never used)."""
    return round_index % 251 + 1


class RoundSignal:
    """The driver's end: a FIFO that ``writers`` group actors write one tagged byte per round to."""

    def __init__(self, writers: int) -> None:
        self.writers = int(writers)
        self._dir = tempfile.mkdtemp(prefix="spikeloop_rounds_")
        self.path = os.path.join(self._dir, "rounds")
        os.mkfifo(self.path, 0o600)
        self._fd: int | None = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        self.timeouts = 0  # rounds whose bytes did not all come within the timeout (Ray's wait took over)

    def wait(self, round_index: int, timeout: float) -> bool:
        """Block until every writer's byte for ``round_index`` came; False after ``timeout`` s."""
        fd = self._fd
        if fd is None:
            return False
        want, need = tag(round_index), self.writers
        end = time.monotonic() + timeout
        while need > 0:
            left = end - time.monotonic()
            if left <= 0:
                self.timeouts += 1
                return False
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            try:
                got = os.read(fd, 4096)
            except BlockingIOError:
                continue
            if not got:  # every writer closed (actors gone): nothing more will come
                self.timeouts += 1
                return False
            need -= got.count(want)
        return True

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        shutil.rmtree(self._dir, ignore_errors=True)


class RoundNotifier:
    """An actor's end: write one tagged byte per step to the driver's FIFO (if it can be opened)."""

    def __init__(self) -> None:
        self._fd: int | None = None
        self.rounds = 0

    def open(self, path: str) -> bool:
        """Open the driver's FIFO for writing; False if it is not on this machine."""
        try:
            self._fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            self._fd = None
        return self._fd is not None

    def notify(self) -> None:
        """Mark the end of this actor's current step (one byte, never blocking)."""
        index = self.rounds
        self.rounds += 1
        if self._fd is not None:
            try:
                os.write(self._fd, bytes((tag(index),)))
            except OSError:  # the driver went away or the pipe is full: its own wait takes over
                pass

    def close(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None
