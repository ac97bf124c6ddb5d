"""LSL inlet and outlet nodes against the real liblsl on loopback (unique names per test)."""
from __future__ import annotations

import time
import uuid

import numpy as np
import pylsl
import pytest

from nodes.sinks.lsl_outlet import LslOutlet
from nodes.sources.lsl_inlet import LslInlet
from pipeline.errors import UserError
from pipeline.lsl import StreamQuery, from_lsl_info, resolve_one, to_lsl_info
from pipeline.packet import Packet, StreamInfo


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def make_outlet(name: str, source_id: str, channels: int = 3, rate: float = 100.0,
                dtype: str = "float32", labels: tuple[str, ...] = ()) -> pylsl.StreamOutlet:
    info = StreamInfo(name, "Test", channels, rate, dtype, labels or tuple(f"c{k}" for k in range(channels)),
                      ("mm",) * channels, source_id=source_id, metadata={"origin": "test"})
    return pylsl.StreamOutlet(to_lsl_info(info))


def pull_until(inlet: LslInlet, n: int, timeout: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    data, stamps = [], []
    deadline = time.monotonic() + timeout
    while sum(len(s) for s in stamps) < n and time.monotonic() < deadline:
        out = inlet.read()
        assert out is not None  # a live source never ends
        if out:
            data.append(out["out"].data)
            stamps.append(out["out"].timestamps)
    if not data:
        return np.zeros((0, 0)), np.zeros(0)
    return np.concatenate(data), np.concatenate(stamps)


def test_stream_info_round_trip_keeps_labels_units_metadata():
    info = StreamInfo("rt", "Velocity", 2, 250.0, "float64", ("vx", "vy"), ("mm/s", "mm/s"),
                      source_id="sid", metadata={"delay_s": 0.064})
    back = from_lsl_info(pylsl.StreamInfo("hdr", "Velocity", 2, 250.0, "double64", "sid"))  # no desc
    assert back.channel_labels == ()  # no desc: no labels rather than made-up ones
    sid = unique("sid")
    outlet = pylsl.StreamOutlet(to_lsl_info(info, name=unique("rt"), source_id=sid))
    found = resolve_one(StreamQuery(source_id=sid), 3.0)
    inlet = pylsl.StreamInlet(found)
    full = from_lsl_info(inlet.info(3.0))
    assert full.channel_labels == ("vx", "vy") and full.units == ("mm/s", "mm/s")
    assert full.type == "Velocity" and full.nominal_rate == 250.0 and full.dtype == "float64"
    assert full.metadata["delay_s"] == 0.064
    del inlet, outlet


def test_resolve_error_names_query_and_lists_visible_streams():
    present = unique("present")
    outlet = make_outlet(present, unique("sid"))
    missing = unique("missing")
    node = LslInlet(name=missing, type="EEG", resolve_timeout_s=0.3)
    with pytest.raises(UserError) as err:
        node.open({})
    msg = str(err.value)
    assert f"name='{missing}'" in msg and "type='EEG'" in msg
    assert present in msg  # the visible stream is listed
    del outlet


def test_query_needs_something_to_look_for():
    with pytest.raises(UserError, match="at least one of name, type, source_id"):
        LslInlet()


def test_outlet_to_inlet_round_trip_preserves_samples_timestamps_labels():
    name, sid = unique("rtrip"), unique("sid")
    out_node = LslOutlet(name=name, source_id=sid)
    out_node.name = "out"
    src_info = StreamInfo("decoded", "Velocity", 2, 250.0, "float64", ("vx", "vy"), ("mm/s", "mm/s"))
    out_node.open({"in": src_info})
    in_node = LslInlet(source_id=sid, clock_sync=False, resolve_timeout_s=3.0)
    info = in_node.open({})["out"]
    assert info.name == name and info.channel_labels == ("vx", "vy") and info.units == ("mm/s", "mm/s")
    assert info.nominal_rate == 250.0 and info.dtype == "float64"
    time.sleep(0.2)  # let the inlet's connection settle before pushing
    rng = np.random.default_rng(0)
    data = rng.standard_normal((50, 2))
    t0 = pylsl.local_clock()
    stamps = t0 + np.arange(50) / 250.0
    # chunks of 1, 7 and the rest: both push paths (single stamp, per-sample stamps)
    for lo, hi in ((0, 1), (1, 8), (8, 50)):
        out_node.process("in", Packet(data[lo:hi], stamps[lo:hi], t0))
    got, got_t = pull_until(in_node, 50)
    np.testing.assert_array_equal(got, data)
    np.testing.assert_array_equal(got_t, stamps)
    assert in_node.counters()["discontinuities"] == 0 and in_node.counters()["lost_samples_est"] == 0
    assert in_node.counters()["ts_backwards"] == 0
    assert out_node.report()["samples_pushed"] == 50
    in_node.close()
    out_node.close()


def test_inlet_copies_what_it_keeps():
    name, sid = unique("copy"), unique("sid")
    outlet = make_outlet(name, sid)
    node = LslInlet(source_id=sid, clock_sync=False)
    node.open({})
    time.sleep(0.2)
    outlet.push_chunk(np.ones((4, 3), dtype=np.float32))
    first, _ = pull_until(node, 4)
    outlet.push_chunk(np.full((4, 3), 2.0, dtype=np.float32))
    second, _ = pull_until(node, 4)
    assert np.all(first == 1.0) and np.all(second == 2.0)  # the first packet was not overwritten
    node.close()


def test_loss_estimate_counts_a_real_gap_and_nothing_for_jitter_or_backwards_steps():
    """Through real LSL: 8 s of 250 Hz stamps with pusher-like delays and bursts, three samples
    out of order, and (in a second stream) 37 samples never sent: 37 lost, 0 for the rest."""
    rng = np.random.default_rng(3)
    n = 2000
    ideal = 1000.0 + np.arange(n) / 250.0
    # a pusher that stamps at push time: delays of up to 5 periods, then bursts that catch up
    delay = np.maximum.accumulate(ideal + rng.exponential(0.004, n) * (rng.random(n) < 0.2)) - ideal
    jittered = ideal + np.minimum(delay, 0.02)
    jittered = np.maximum.accumulate(jittered)
    swapped = jittered.copy()
    for k in (300, 900, 1500):  # out of order: three steps back in time
        swapped[k], swapped[k + 1] = swapped[k + 1], swapped[k]
    keep = np.r_[0:1000, 1037:n]
    results = {}
    for what, stamps in (("jitter", swapped), ("gap", jittered[keep])):
        name, sid = unique(what), unique("sid")
        outlet = make_outlet(name, sid, channels=1, rate=250.0)
        node = LslInlet(source_id=sid, clock_sync=False, max_chunk=64)
        node.open({})
        time.sleep(0.2)
        outlet.push_chunk(np.zeros((stamps.size, 1), dtype=np.float32), stamps.tolist())
        _, got = pull_until(node, stamps.size, timeout=5.0)
        np.testing.assert_array_equal(got, stamps)
        node.close()
        results[what] = node.counters()
    assert results["jitter"]["lost_samples_est"] == 0 and results["jitter"]["discontinuities"] == 0
    assert results["jitter"]["ts_backwards"] == 3
    assert results["gap"]["lost_samples_est"] == 37 and results["gap"]["discontinuities"] == 1
    assert results["gap"]["ts_backwards"] == 0


def test_reconnection_after_outlet_restart_is_counted():
    name, sid = unique("recon"), unique("sid")
    outlet = make_outlet(name, sid, rate=100.0)
    node = LslInlet(source_id=sid, clock_sync=False, stall_periods=20)
    node.open({})
    time.sleep(0.2)
    t0 = pylsl.local_clock()
    outlet.push_chunk(np.zeros((5, 3), dtype=np.float32), (t0 + np.arange(5) / 100.0).tolist())
    assert pull_until(node, 5)[1].size == 5
    del outlet  # the sender goes away ...
    time.sleep(0.3)
    assert node.read() == {}
    outlet = make_outlet(name, sid, rate=100.0)  # ... and comes back with the same source_id
    got = 0
    deadline = time.monotonic() + 8.0
    while got == 0 and time.monotonic() < deadline:  # liblsl re-connects within about a second
        outlet.push_sample([1.0, 1.0, 1.0])
        out = node.read()
        got += out["out"].n_samples if out else 0
        time.sleep(0.01)
    assert got > 0, "inlet did not recover"
    c = node.counters()
    assert c["reconnections"] == 1
    assert c["stalls"] == 1 and c["stalled_ms"] >= 200  # the silence was a stall while it lasted
    node.close()
    del outlet


def test_irregular_stream_passes_events_through():
    name, sid = unique("events"), unique("sid")
    info = StreamInfo(name, "SpikeEvents", 2, 0.0, "int32", ("channel", "unit"), ("index", "index"), sid)
    outlet = pylsl.StreamOutlet(to_lsl_info(info))
    node = LslInlet(name=name, clock_sync=False)
    out_info = node.open({})["out"]
    assert out_info.irregular and out_info.channel_labels == ("channel", "unit")
    time.sleep(0.2)
    ev = np.array([[3, 0], [1, 1], [3, 2]], dtype=np.int32)
    t0 = pylsl.local_clock()
    outlet.push_chunk(ev, [t0, t0 + 0.0013, t0 + 0.0101])
    data, stamps = pull_until(node, 3)
    np.testing.assert_array_equal(data, ev)
    np.testing.assert_allclose(stamps, [t0, t0 + 0.0013, t0 + 0.0101], atol=1e-9)
    assert data.dtype == np.int32
    node.close()


def test_restarted_inlet_reopens_the_stream_it_had_by_uid():
    """After a restart (``reopen_from`` its checkpointed state) the inlet opens the very stream it
    had, by uid, even when a second stream with the same name has appeared since (a fresh open
    would find two); if that stream is gone, it resolves by its query again."""
    name = unique("pinned")
    first = make_outlet(name, unique("sid_a"))
    node = LslInlet(name=name, clock_sync=False, ambiguity_wait_s=0.5)
    node.name = "inlet"
    node.open({})
    state = node.state()
    uid_a = first.get_info().uid()
    assert state["uid"] == uid_a
    node.close()
    second = make_outlet(name, unique("sid_b"))
    deadline = time.monotonic() + 10.0  # both answer by name now (a fresh open would be ambiguous)
    while len({s.uid() for s in pylsl.resolve_bypred(f"name='{name}'", 2, 1.0)}) < 2:
        assert time.monotonic() < deadline, "the second stream never became visible"
    again = LslInlet(name=name, clock_sync=False, ambiguity_wait_s=0.5)
    again.name = "inlet"
    again.reopen_from(state)
    again.open({})
    again.restore(state)
    assert again.state()["uid"] == uid_a
    again.close()
    del first  # the stream it had goes away: a restart resolves by the query (now unambiguous)
    deadline = time.monotonic() + 10.0
    while uid_a in {s.uid() for s in pylsl.resolve_bypred(f"name='{name}'", 2, 1.0)}:
        assert time.monotonic() < deadline, "the first stream is still visible"
    later = LslInlet(name=name, clock_sync=False, ambiguity_wait_s=0.5)
    later.name = "inlet"
    later.reopen_from(state)
    later.open({})
    assert later.state()["uid"] == second.get_info().uid()
    later.close()
    del second
