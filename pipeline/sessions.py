"""Named sessions on a Ray cluster: a small registry actor that runs list and stop.

``spikeloop run CONFIG --runner ray --address ADDR [--session NAME]`` registers the run in one
named, detached registry actor (``spikeloop_sessions`` in namespace ``spikeloop``, no CPU
reserved): config path, runner, host and pid, start time, and every :data:`HEARTBEAT_S` seconds
the run's samples in/out, rate (samples/s at the sinks over the last interval), in-graph and
end-to-end p50 latency (ms) and counters. ``spikeloop sessions --address ADDR`` lists them;
``--stop NAME`` sets a stop flag the run reads at its next heartbeat, and the run then ends as
on Ctrl-C (its summary printed and written as usual); its entry is kept, marked ended, with the
reason and its final counts.

A run whose driver dies without unregistering (SIGKILL, a crash, a lost machine) does not stay
listed as running: every time the registry is listed or a session registers, it checks each running
entry against Ray's job table (a driver's job is marked dead by Ray as soon as its process is gone;
Ray then also ends the run's actors, which the driver owns). Such an entry is marked ended,
``dead: driver gone``, with the time it was last seen and its last figures; its name is free again.
An entry whose driver Ray still counts alive but which has sent no heartbeat for
:data:`STALE_AFTER_S` is shown as stale (with when it was last seen); after :data:`LOST_AFTER_S`
(or the session's own ``lost_after_s``, see :func:`lost_limit`) it is marked ended, ``lost: no
heartbeat``, with its last figures kept, and revived (running again) if a heartbeat comes after all.
``spikeloop sessions --prune`` forgets every ended entry.
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
"""Seconds between a session's updates to the registry."""
STALE_AFTER_S = 10.0
"""A running entry without a heartbeat for this long is shown as stale."""
LOST_AFTER_S = 120.0
"""A running entry without a heartbeat for this long is marked ended (lost), even if its job lives
(default; a session may declare its own: ``SPIKELOOP_SESSION_LOST_S`` in the environment of its
``spikeloop run``, or :class:`SessionHandle`'s ``lost_after_s``)."""
LOST_ENV = "SPIKELOOP_SESSION_LOST_S"


def lost_limit(value: float | None = None) -> float:
    """Seconds without a heartbeat after which a session is marked lost: ``value``, else
    ``$SPIKELOOP_SESSION_LOST_S``, else :data:`LOST_AFTER_S`. Refuses a value <= 0 or one shorter
    than two heartbeats (a healthy session would be marked lost between its own updates)."""
    from pipeline.errors import UserError

    if value is None:
        raw = os.environ.get(LOST_ENV, "").strip()
        if not raw:
            return LOST_AFTER_S
        try:
            value = float(raw)
        except ValueError:
            raise UserError(f"{LOST_ENV}={raw!r}: give seconds (a number), e.g. {LOST_AFTER_S:g}") from None
    if not value >= 2 * HEARTBEAT_S:
        raise UserError(f"{LOST_ENV} (lost_after_s) = {value:g} s: must be at least two heartbeats "
                        f"({2 * HEARTBEAT_S:g} s)")
    return float(value)
KEEP_ENDED = 50
"""Ended entries kept (oldest forgotten first)."""


def dead_jobs() -> dict[str, float]:
    """Ray jobs (drivers) the cluster knows as dead: job id (hex) -> end time (s since the epoch, 0 if unknown).

    Read from the GCS job table (``ray._private.state.jobs()``, the table behind ``ray list jobs``);
    an empty dict when it cannot be read (the entries then age by heartbeat only)."""
    try:
        from ray._private import state

        return {str(j["JobID"]): float(j.get("EndTime") or 0) / 1000.0 for j in state.jobs() if j.get("IsDead")}
    except Exception:  # noqa: BLE001 - an unknown layout (another Ray version): heartbeats still age entries
        return {}


def _registry_class():
    import ray

    @ray.remote(num_cpus=0, max_restarts=-1)
    class SessionRegistry:
        """Sessions by name: info, latest stats, stop flags (plain dicts; no pickled user objects)."""

        def __init__(self) -> None:
            self.sessions: dict[str, dict[str, Any]] = {}

        def reap(self) -> list[str]:
            """Mark ended the running entries whose driver is dead (Ray's job table) or silent too long."""
            now, marked = time.time(), []
            running = [s for s in self.sessions.values() if not s.get("ended")]
            dead = dead_jobs() if any(s.get("job_id") for s in running) else {}
            for s in running:
                job = s.get("job_id")
                if job and job in dead:
                    s.update(ended=dead[job] or now, stopped_by="dead: driver gone (Ray marked its job dead)",
                             dead=True, final=dict(s.get("stats") or {}))
                elif now - s["last_seen"] > (limit := float(s.get("lost_after_s") or LOST_AFTER_S)):
                    s.update(ended=now, stopped_by=f"lost: no heartbeat for {limit:g} s", lost=True,
                             final=dict(s.get("stats") or {}))
                else:
                    continue
                marked.append(s["name"])
            return marked

        def prune(self) -> list[str]:
            """Forget every ended entry; return their names."""
            gone = [n for n, s in self.sessions.items() if s.get("ended")]
            for n in gone:
                del self.sessions[n]
            return gone

        def register(self, name: str, info: dict[str, Any]) -> str:
            self.reap()
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
            if s.get("lost"):  # silent for a while, but alive after all: running again
                for key in ("lost", "ended", "stopped_by", "final"):
                    s.pop(key, None)
            s["stats"], s["last_seen"] = stats, time.time()
            return bool(s["stop"])

        def end(self, name: str, stopped_by: str, final: dict[str, Any]) -> None:
            s = self.sessions.get(name)
            if s is not None:
                s.update(ended=time.time(), stopped_by=stopped_by, final=final, last_seen=time.time())

        def request_stop(self, name: str) -> str:
            self.reap()
            s = self.sessions.get(name)
            if s is None:
                return "unknown"
            if s.get("ended"):
                return "ended"
            s["stop"] = True
            return "requested"

        def list(self) -> list[dict[str, Any]]:
            self.reap()
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

    def __init__(self, name: str | None, config: str, runner: str, lost_after_s: float | None = None) -> None:
        """Register on the connected cluster as ``name`` (made unique by the registry).

        ``lost_after_s``: seconds of silence after which the registry marks this session lost while
        its driver's job is alive (default: :func:`lost_limit`, i.e. ``$SPIKELOOP_SESSION_LOST_S``
        or :data:`LOST_AFTER_S`)."""
        import ray

        lost = lost_limit(lost_after_s)
        self.ray = ray
        self.reg = registry(create=True)
        wanted = name or f"{Path(config).stem}-{uuid.uuid4().hex[:4]}"
        ctx = ray.get_runtime_context()
        info = {"config": str(config), "runner": runner, "host": socket.gethostname(), "pid": os.getpid(),
                "started": time.time(), "job_id": str(ctx.get_job_id()), "node_id": str(ctx.get_node_id()),
                "lost_after_s": lost}
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
