"""Named sessions on a Ray cluster: a small registry actor that runs list and stop.

``spikeloop run CONFIG --runner ray --address ADDR [--session NAME]`` registers the run in one
named, detached registry actor (``spikeloop_sessions`` in namespace ``spikeloop``, no CPU
reserved): config path, runner, host and pid, start time, and every :data:`HEARTBEAT_S` seconds
the run's samples in/out, rate (samples/s at the sinks over the last interval), in-graph and
end-to-end p50 latency (ms) and counters. ``spikeloop sessions --address ADDR`` lists them;
``--stop NAME`` sets a stop flag the run reads at its next heartbeat, and the run then ends as
on Ctrl-C (its summary printed and written as usual); its entry is kept, marked ended, with the
reason and its final counts.

A run that dies without unregistering shows how long ago it was last seen.
"""
from __future__ import annotations

import os
import socket
import time
import uuid
from pathlib import Path
from typing import Any, Callable

NAMESPACE = "spikeloop"
REGISTRY = "spikeloop_sessions"
HEARTBEAT_S = 2.0
KEEP_ENDED = 50


def _registry_class():
    import ray

    @ray.remote(num_cpus=0, max_restarts=-1)
    class SessionRegistry:
        """Sessions by name: info, latest stats, stop flags (plain dicts; no pickled user objects)."""

        def __init__(self) -> None:
            self.sessions: dict[str, dict[str, Any]] = {}

        def register(self, name: str, info: dict[str, Any]) -> str:
            base, k = name, 1
            while name in self.sessions and not self.sessions[name].get("ended"):
                k += 1
                name = f"{base}-{k}"
            self.sessions[name] = dict(info, name=name, last_seen=time.time(), stop=False, stats={})
            ended = [n for n, s in self.sessions.items() if s.get("ended")]
            for n in ended[:-KEEP_ENDED]:
                del self.sessions[n]
            return name

        def heartbeat(self, name: str, stats: dict[str, Any]) -> bool:
            """Store ``stats``; return True when the session was asked to stop."""
            s = self.sessions.get(name)
            if s is None:
                return False
            s["stats"], s["last_seen"] = stats, time.time()
            return bool(s["stop"])

        def end(self, name: str, stopped_by: str, final: dict[str, Any]) -> None:
            s = self.sessions.get(name)
            if s is not None:
                s.update(ended=time.time(), stopped_by=stopped_by, final=final, last_seen=time.time())

        def request_stop(self, name: str) -> str:
            s = self.sessions.get(name)
            if s is None:
                return "unknown"
            if s.get("ended"):
                return "ended"
            s["stop"] = True
            return "requested"

        def list(self) -> list[dict[str, Any]]:
            return [dict(s) for s in self.sessions.values()]

    return SessionRegistry


def registry(create: bool):
    """The registry actor handle on the connected cluster (created if ``create``), or None."""
    import ray

    if create:
        return _registry_class().options(name=REGISTRY, namespace=NAMESPACE, lifetime="detached",
                                         get_if_exists=True).remote()
    try:
        return ray.get_actor(REGISTRY, namespace=NAMESPACE)
    except ValueError:
        return None


class SessionHandle:
    """A running session's side: register, heartbeat with stats (non-blocking), see the stop flag, end."""

    def __init__(self, name: str | None, config: str, runner: str) -> None:
        import ray

        self.ray = ray
        self.reg = registry(create=True)
        wanted = name or f"{Path(config).stem}-{uuid.uuid4().hex[:4]}"
        info = {"config": str(config), "runner": runner, "host": socket.gethostname(), "pid": os.getpid(),
                "started": time.time()}
        self.name: str = ray.get(self.reg.register.remote(wanted, info), timeout=30.0)
        self._pending = None
        self._next = time.monotonic()
        self._last: tuple[float, int] | None = None

    def poll(self, stop: Any, snapshot: Callable[[], Any]) -> None:
        """Every :data:`HEARTBEAT_S`: read the answer of the last heartbeat (stop flag), send a new one.

        ``stop`` is the run's :class:`~pipeline.runners.signals.StopRequest`; ``snapshot()`` returns
        the status line's :class:`~pipeline.runners.status.Snapshot`. Never blocks on the registry.
        """
        if time.monotonic() < self._next:
            return
        self._next = time.monotonic() + HEARTBEAT_S
        if self._pending is not None:
            ready, _ = self.ray.wait([self._pending], timeout=0)
            if not ready:
                return  # the registry is slow: skip this beat, never wait for it
            try:
                if self.ray.get(self._pending) and not stop:
                    stop.request(f"stopped by spikeloop sessions --stop {self.name}")
            except self.ray.exceptions.RayError:
                pass  # the registry restarted: the next heartbeat re-creates nothing, the list just lacks us
            self._pending = None
        snap = snapshot()
        now = time.monotonic()
        stats: dict[str, Any] = {"source_samples": snap.source_samples, "sink_samples": snap.sink_samples,
                                 "in_graph_p50_ms": snap.in_graph_p50_ms, "e2e_p50_ms": snap.e2e_p50_ms,
                                 "counters": {k: v for k, v in snap.counters.items() if v}}
        if self._last is not None and now > self._last[0]:
            stats["rate_hz"] = (snap.sink_samples - self._last[1]) / (now - self._last[0])
        self._last = (now, snap.sink_samples)
        self._pending = self.reg.heartbeat.remote(self.name, stats)

    def close(self, stopped_by: str, summary: dict[str, Any] | None) -> None:
        final: dict[str, Any] = {}
        if summary:
            final = {k: summary.get(k) for k in ("wall_s", "source_samples", "sink_samples") if k in summary}
        try:
            self.ray.get(self.reg.end.remote(self.name, stopped_by, final), timeout=5.0)
        except Exception:  # noqa: BLE001 - the registry is gone: nothing left to tell
            pass
