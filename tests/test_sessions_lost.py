"""A session that goes silent while Ray still counts its driver alive is marked ``lost`` (not dead),
with its last figures, and is running again once a heartbeat comes after all.

Real parts: the shared local Ray (loopback), the real registry actor and a real
:class:`~pipeline.sessions.SessionHandle` registered from this process (a live Ray job, as a
``spikeloop run`` driver is), with a short ``lost_after_s`` so the test takes seconds, not the
default two minutes. The silence is real: no heartbeat is sent, and the registry notices on its
own clock.
"""
from __future__ import annotations

import time
import uuid

import pytest

from pipeline.errors import UserError
from pipeline.runners.signals import StopRequest
from pipeline.runners.status import Snapshot
from pipeline.sessions import HEARTBEAT_S, SessionHandle, lost_limit, registry

LOST_S = 2 * HEARTBEAT_S  # the shortest a session may declare


def _entry(ray, name: str) -> dict:
    rows = ray.get(registry(create=False).list.remote(), timeout=30.0)
    (entry,) = [r for r in rows if r["name"] == name]
    return entry


def _beat(handle: SessionHandle, stop: StopRequest, snap: Snapshot, ray) -> None:
    """Send one heartbeat now and wait (bounded) until the registry has it."""
    handle._next = 0.0  # due now
    handle.poll(stop, lambda: snap)
    ray.get(handle._pending, timeout=30.0)


def test_silent_session_is_marked_lost_with_its_last_figures_then_revived(ray_local, capsys, monkeypatch):
    ray = ray_local
    name = f"lost-{uuid.uuid4().hex[:6]}"
    handle = SessionHandle(name, "configs/live_decode.yaml", "ray", lost_after_s=LOST_S)
    assert handle.name == name
    stop = StopRequest()
    first = Snapshot(source_samples=1000, sink_samples=990, in_graph_p50_ms=0.4, e2e_p50_ms=1.2,
                     counters={"inlet.stalls": 1})
    _beat(handle, stop, first, ray)
    entry = _entry(ray, name)
    assert not entry.get("ended") and entry["lost_after_s"] == LOST_S
    assert entry["stats"]["sink_samples"] == 990
    last_beat = entry["last_seen"]

    # silence: this driver (its Ray job alive) sends nothing; the registry marks it lost on its own
    end = time.monotonic() + LOST_S + 30.0
    while time.monotonic() < end:
        entry = _entry(ray, name)
        if entry.get("ended"):
            break
        time.sleep(0.5)
    assert entry.get("lost") and entry.get("ended"), entry
    assert not entry.get("dead")  # Ray still counts the driver's job alive: lost, not dead
    assert entry["stopped_by"] == f"lost: no heartbeat for {LOST_S:g} s"
    assert entry["ended"] - last_beat > LOST_S and entry["last_seen"] == last_beat
    assert entry["final"]["sink_samples"] == 990 and entry["final"]["counters"] == {"inlet.stalls": 1}

    # the table says lost, with the clock time it was last seen and its last figures
    from pipeline.cli.sessions import print_sessions

    monkeypatch.setenv("COLUMNS", "250")
    print_sessions([entry], "test")
    out = capsys.readouterr().out
    assert f"lost: no heartbeat for {LOST_S:g} s; last seen {time.strftime('%H:%M', time.localtime(last_beat))}" in out
    assert "1000 / 990" in out

    # alive after all: the next heartbeat makes it running again, with the new figures
    later = Snapshot(source_samples=2000, sink_samples=1985, in_graph_p50_ms=0.4, e2e_p50_ms=1.1)
    _beat(handle, stop, later, ray)
    entry = _entry(ray, name)
    assert not entry.get("ended") and not entry.get("lost") and "stopped_by" not in entry
    assert entry["stats"]["sink_samples"] == 1985 and entry["last_seen"] > last_beat

    handle.close("end of test", {"wall_s": 1.0, "source_samples": 2000, "sink_samples": 1985})
    entry = _entry(ray, name)
    assert entry["stopped_by"] == "end of test" and not entry.get("lost")
    ray.get(registry(create=False).prune.remote(), timeout=30.0)


def test_lost_limit_from_the_environment(monkeypatch):
    monkeypatch.delenv("SPIKELOOP_SESSION_LOST_S", raising=False)
    assert lost_limit() == 120.0
    monkeypatch.setenv("SPIKELOOP_SESSION_LOST_S", "600")
    assert lost_limit() == 600.0
    assert lost_limit(30.0) == 30.0  # an explicit value wins
    monkeypatch.setenv("SPIKELOOP_SESSION_LOST_S", "two minutes")
    with pytest.raises(UserError, match="SPIKELOOP_SESSION_LOST_S='two minutes': give seconds"):
        lost_limit()
    with pytest.raises(UserError, match="at least two heartbeats"):
        lost_limit(1.0)
