"""Event binning: fixed-rate frames that close on the clock, late events counted."""
from __future__ import annotations

import numpy as np
import pytest

from nodes.filters.binning import EventBinner
from pipeline.errors import ConfigError
from pipeline.graph import parse_graph
from pipeline.packet import Packet, StreamInfo

SPIKE_EVENTS = StreamInfo("spike_events", "SpikeEvents", 2, 0.0, "int32", ("channel", "unit"), ("index", "index"))
DVS_EVENTS = StreamInfo("dvs", "DVS", 3, 0.0, "int16", ("x", "y", "polarity"), ("px", "px", "sign"))


def events(rows, stamps) -> Packet:
    return Packet(np.asarray(rows, dtype=np.float64).reshape(-1, len(rows[0]) if rows else 2),
                  np.asarray(stamps, dtype=np.float64), 0.0)


def opened(**params) -> EventBinner:
    node = EventBinner(**params)
    node.name = "bin"
    return node


def test_spike_events_become_counts_at_bin_ends():
    node = opened(bin_s=0.004, channels=4, lateness_s=0.0)
    out = node.open({"in": SPIKE_EVENTS})["out"]
    assert out.nominal_rate == 250.0 and out.channel_count == 4 and out.units == ("counts",) * 4
    # bin 0 = [0, 4) ms, bin 1 = [4, 8) ms
    r = node.process("in", events([[1, 0], [1, 1], [3, 0], [0, 0]], [0.0005, 0.0010, 0.0039, 0.0041]))
    frames = r["out"]  # the event at 4.1 ms closes bin 0
    np.testing.assert_array_equal(frames.data, [[0, 2, 0, 1]])
    np.testing.assert_allclose(frames.timestamps, [0.004])
    r = node.tick(0.0125)  # closes bins 1 ([4, 8) ms) and 2 ([8, 12) ms)
    np.testing.assert_array_equal(r["out"].data, [[1, 0, 0, 0], [0, 0, 0, 0]])
    np.testing.assert_allclose(r["out"].timestamps, [0.008, 0.012])


def test_bins_close_on_tick_when_no_event_arrives():
    node = opened(bin_s=0.01, channels=2, lateness_s=0.002)
    node.open({"in": SPIKE_EVENTS})
    assert node.tick(1.0005) == {}  # opens bin [1.00, 1.01)
    assert node.tick(1.0110) == {}  # bin end 1.01 + lateness 0.002 not yet passed
    r = node.tick(1.0125)
    np.testing.assert_array_equal(r["out"].data, np.zeros((1, 2)))
    np.testing.assert_allclose(r["out"].timestamps, [1.01])
    r = node.tick(1.0525)  # four more empty bins, one packet, fixed rate
    np.testing.assert_allclose(r["out"].timestamps, [1.02, 1.03, 1.04, 1.05])
    assert r["out"].data.shape == (4, 2) and not r["out"].data.any()


def test_late_events_are_counted_never_silently_dropped():
    node = opened(bin_s=0.01, channels=2, lateness_s=0.0)
    node.open({"in": SPIKE_EVENTS})
    node.tick(0.0)
    node.tick(0.0201)  # bins [0, .01) and [.01, .02) closed
    r = node.process("in", events([[0, 0], [1, 0]], [0.005, 0.0205]))  # first is late
    assert r == {}
    assert node.counters()["late_events"] == 1
    r = node.tick(0.0301)
    np.testing.assert_array_equal(r["out"].data, [[0, 1]])  # only the on-time event counted

    keep = opened(bin_s=0.01, channels=2, lateness_s=0.0, late_policy="oldest_open")
    keep.open({"in": SPIKE_EVENTS})
    keep.tick(0.0)
    keep.tick(0.0201)
    keep.process("in", events([[0, 0], [1, 0]], [0.005, 0.0205]))
    np.testing.assert_array_equal(keep.tick(0.0301)["out"].data, [[1, 1]])  # moved to the open bin
    assert keep.counters()["late_events"] == 1


def test_lateness_lets_stragglers_in():
    node = opened(bin_s=0.01, channels=1, lateness_s=0.005)
    node.open({"in": SPIKE_EVENTS})
    node.tick(0.0)
    assert node.tick(0.0140) == {}
    node.process("in", events([[0, 0]], [0.0095]))  # 4.5 ms after its bin ended: still on time
    r = node.tick(0.0151)
    np.testing.assert_array_equal(r["out"].data, [[1]])
    assert node.counters()["late_events"] == 0


def test_out_of_range_and_bad_events_are_counted():
    node = opened(bin_s=0.01, channels=2, lateness_s=0.0)
    node.open({"in": SPIKE_EVENTS})
    node.process("in", events([[5, 0], [-1, 0], [1, 0], [np.nan, 0]], [0.001, 0.002, 0.003, 0.004]))
    c = node.counters()
    assert c["out_of_range"] == 2 and c["bad_events"] == 1
    np.testing.assert_array_equal(node.tick(0.011)["out"].data, [[0, 1]])


def test_dvs_frames_are_polarity_planes_flattened():
    node = opened(bin_s=0.005, events="dvs", width=4, height=3, lateness_s=0.0)
    out = node.open({"in": DVS_EVENTS})["out"]
    assert out.channel_count == 2 * 3 * 4 and out.metadata["frame_shape"] == [2, 3, 4]
    node.process("in", events([[1, 2, 1], [1, 2, 1], [3, 0, 0], [0, 1, -1]], [0.001, 0.002, 0.003, 0.004]))
    frame = node.tick(0.0051)["out"].data.reshape(2, 3, 4)
    assert frame[1, 2, 1] == 2 and frame[0, 0, 3] == 1 and frame[0, 1, 0] == 1
    assert frame.sum() == 4


def test_binner_refuses_a_regular_stream_with_a_clear_error():
    doc = {
        "nodes": {
            "gen": {"kind": "signal_generator", "params": {"channels": 2, "duration_s": 0.1}},
            "bin": {"kind": "event_binner", "params": {"channels": 2}},
            "cap": {"kind": "capture"},
        },
        "edges": ["gen -> bin -> cap"],
    }
    from pipeline.graph import open_graph

    spec = parse_graph(doc, "inline.yaml")
    with pytest.raises(ConfigError, match=r"node 'bin'.*irregular event stream"):
        open_graph(spec)


def test_bad_params_are_refused():
    with pytest.raises(ValueError, match="channels"):
        EventBinner(events="spikes")
    with pytest.raises(ValueError, match="width and height"):
        EventBinner(events="dvs", width=4)
    with pytest.raises(ValueError, match="late_policy"):
        EventBinner(channels=2, late_policy="ignore")
