"""Stop requests: Ctrl-C, SIGTERM and SIGHUP end a run cleanly; a second one forces the exit.

What systemd, ``docker stop`` or a job scheduler sends (SIGTERM), a closed terminal (SIGHUP) and
Ctrl-C (SIGINT) all set a flag the runner polls between steps: the run then stops reading its
sources, flushes, closes every node (recorder files included), prints its summary and writes
``--json``. A second signal while stopping raises KeyboardInterrupt (the forced exit).

Handlers are installed only in the main thread (elsewhere, e.g. a runner started in a test's
thread, the flag can still be set with :meth:`StopRequest.request`).
"""
from __future__ import annotations

import signal
import threading
from types import TracebackType
from typing import Any

from pipeline.log import runner_logger

REASONS = {
    signal.SIGINT: "interrupted (Ctrl-C)",
    signal.SIGTERM: "terminated (SIGTERM)",
    signal.SIGHUP: "hangup (SIGHUP)",
}


class StopRequest:
    """A context manager that turns SIGINT/SIGTERM/SIGHUP into ``reason`` (None until asked)."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "StopRequest":
        self.install()
        return self

    def install(self) -> None:
        """(Re)install the handlers: call again after ``ray.init``, which installs Ray's own
        SIGTERM handler (a stack dump and an abort) over ours. The first handlers seen are the
        ones restored at the end."""
        if threading.current_thread() is threading.main_thread():
            for signum in REASONS:
                old = signal.signal(signum, self._handle)
                self._old.setdefault(signum, old)

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.restore()

    def restore(self) -> None:
        for signum, old in self._old.items():
            signal.signal(signum, old)
        self._old.clear()

    def request(self, reason: str) -> None:
        """Ask the run to stop (as a signal would)."""
        if self.reason is None:
            self.reason = reason
            runner_logger().info("stop requested: %s; finishing (send it again to force)", reason)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.reason is not None:
            self.restore()
            raise KeyboardInterrupt(f"forced exit ({REASONS.get(signum, signum)} twice)")
        self.request(REASONS.get(signum, f"signal {signum}"))

    def __bool__(self) -> bool:
        return self.reason is not None
