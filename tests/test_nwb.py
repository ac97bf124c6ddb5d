"""NWB reader (pynwb-written files in the DANDI / Neural Latents Benchmark layout) and the same
spikes giving the same bins from NeuroBench ``.mat``, XDF spike events and NWB."""
from __future__ import annotations

import numpy as np
import pytest

from pipeline.errors import RecordingError
from pipeline.recordings import load_recording
from pipeline.recordings.mapping import StreamMapping
from pipeline.recordings.reaching import load_reaching
from tests.recording_helpers import make_session, write_events_xdf, write_neurobench_mat, write_nwb


@pytest.fixture(scope="module")
def session():
    return make_session(20.0, channels=7, units=3, seed=11)


@pytest.fixture(scope="module")
def files(session, tmp_path_factory):
    d = tmp_path_factory.mktemp("same")
    t = write_neurobench_mat(d / "indy_test.mat", session)
    write_nwb(d / "sub-test.nwb", session)
    write_events_xdf(d / "events.xdf", session, t)
    return d, t


def test_nwb_streams_hold_units_behaviour_and_trials(session, files):
    d, _ = files
    rec = load_recording(d / "sub-test.nwb")
    assert set(rec.streams) == {"spikes", "cursor_pos", "finger_vel", "hand", "trials"}
    sp = rec.stream("spikes")
    assert sp.info.irregular and sp.info.channel_labels == ("channel", "unit")
    assert sp.info.metadata["channels"] == 7 and sp.info.metadata["units"] == 21
    times, data = session.events()
    assert sp.data.shape == data.shape
    # same multiset of (time, channel, unit); units numbered per channel in table order = the session's
    got = sorted(zip(sp.timestamps.tolist(), sp.data[:, 0].tolist(), sp.data[:, 1].tolist()))
    want = sorted(zip(times.tolist(), data[:, 0].tolist(), data[:, 1].tolist()))
    assert got == want
    assert np.all(np.diff(sp.timestamps) >= 0)
    cur = rec.stream("cursor_pos")
    assert cur.info.nominal_rate == 1000.0 and cur.info.units == ("mm", "mm") and cur.info.type == "Position"
    np.testing.assert_allclose(cur.data, session.position(cur.timestamps), atol=1e-9)
    hand = rec.stream("hand")  # SpatialSeries inside Position, in metres
    assert hand.info.units[0] == "meters"
    np.testing.assert_allclose(hand.data * 1000.0, cur.data, atol=1e-9)
    vel = rec.stream("finger_vel")
    assert vel.info.type == "Velocity" and vel.info.channel_labels == ("vx", "vy")
    tr = rec.stream("trials")
    np.testing.assert_allclose(tr.timestamps, session.reach_starts)
    assert tr.data[0, 0] == "trial 0"


def test_same_spikes_give_the_same_bins_from_mat_xdf_and_nwb(files):
    """XDF events and NWB: identical bins and timestamps (the event_binner grid). NeuroBench .mat:
    identical bins, labelled one 4 ms sample later (its loader marks the bin's *next* sample)."""
    d, t = files
    mat = load_reaching(d / "indy_test.mat")
    nwb = load_reaching(d / "sub-test.nwb", StreamMapping(kinematics="cursor_pos"))
    xdf = load_reaching(d / "events.xdf", StreamMapping(neural="spike_events", kinematics="cursor"))
    np.testing.assert_array_equal(nwb.spikes, xdf.spikes)
    np.testing.assert_array_equal(nwb.timestamps, xdf.timestamps)
    assert nwb.spikes.shape == mat.spikes.shape == (t.size, 7)
    np.testing.assert_allclose(xdf.timestamps, t, atol=1e-9)
    np.testing.assert_array_equal(mat.spikes[1:], xdf.spikes[:-1])
    assert mat.spikes[1:].sum() > 1000  # not vacuous
    # the kinematics agree too: the same cursor, differentiated on the same grid (mm/s)
    np.testing.assert_allclose(xdf.velocity, mat.velocity, rtol=1e-4, atol=1e-2)


def test_events_binned_like_the_event_binner_node(files):
    """The mapping's binning equals the event_binner node fed the same events (binarize: true)."""
    from pipeline.packet import Packet
    from pipeline.registry import make_node

    d, t = files
    rec = load_recording(d / "events.xdf")
    ev = rec.stream("spike_events")
    node = make_node("event_binner", channels=7, binarize=True, lateness_s=0.0)
    node.open({"in": ev.info})
    frames, stamps = [], []
    for a in range(0, ev.data.shape[0], 500):
        out = node.process("in", Packet(ev.data[a:a + 500], ev.timestamps[a:a + 500], 0.0))
        if "out" in out:
            frames.append(out["out"].data)
            stamps.append(out["out"].timestamps)
    out = node.tick(float(t[-1]) + 1.0)
    frames.append(out["out"].data)
    stamps.append(out["out"].timestamps)
    frames, stamps = np.concatenate(frames), np.concatenate(stamps)
    xdf = load_reaching(d / "events.xdf", StreamMapping(neural="spike_events", kinematics="cursor"))
    idx = np.searchsorted(stamps, xdf.timestamps - 1e-9)
    ok = np.abs(stamps[np.minimum(idx, stamps.size - 1)] - xdf.timestamps) < 1e-9
    assert ok.sum() > 0.99 * ok.size  # the node starts at the first event's bin
    np.testing.assert_array_equal(frames[idx[ok]], xdf.spikes[ok])


def test_bad_nwb_is_a_one_line_error(tmp_path):
    bad = tmp_path / "broken.nwb"
    bad.write_bytes(b"not an hdf5 file at all")
    with pytest.raises(RecordingError, match="broken.nwb: not a readable NWB file"):
        load_recording(bad)
