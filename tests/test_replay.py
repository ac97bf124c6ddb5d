"""Replay source: timing, order, identity, loops, offsets, errors; recorder and synthetic source."""
from __future__ import annotations

import numpy as np
import pytest
import pyxdf

from pipeline.clock import local_clock
from pipeline.errors import RecordingError, UserError
from pipeline.packet import StreamInfo
from pipeline.recordings import load_recording
from pipeline.recordings.base import RecordedStream, Recording
from pipeline.recordings.synth import SynthParams, generate
from pipeline.recordings.xdf_writer import write_xdf
from pipeline.registry import make_node


@pytest.fixture(scope="module")
def rec_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("rec") / "short.xdfz"
    generate(path, SynthParams(channels=8, seed=2), 6.0, progress=False)
    return path


@pytest.fixture(scope="module")
def mixed_path(tmp_path_factory):
    """A 250 Hz stream, a 100 Hz stream and an irregular event stream with offset start times."""
    rng = np.random.default_rng(0)
    a = StreamInfo("a", "A", 2, 250.0, "float32")
    b = StreamInfo("b", "B", 1, 100.0, "float64")
    e = StreamInfo("ev", "Events", 1, 0.0, "int32")
    rec = Recording({
        "a": RecordedStream(a, rng.normal(size=(500, 2)).astype(np.float32), 50.0 + np.arange(500) / 250.0),
        "b": RecordedStream(b, rng.normal(size=(180, 1)), 50.3 + np.arange(180) / 100.0),
        "ev": RecordedStream(e, np.arange(12, dtype=np.int32)[:, None], np.sort(rng.uniform(50.0, 52.0, 12))),
    })
    path = tmp_path_factory.mktemp("mixed") / "mixed.xdf"
    write_xdf(path, rec)
    return path


def _drain(node, limit=100000):
    """Read until exhausted; return [(port, packet, clock reading right after read returned)]."""
    out = []
    for _ in range(limit):
        got = node.read()
        now = local_clock()
        if got is None:
            return out
        out.extend((port, pkt, now) for port, pkt in got.items())
    raise AssertionError("replay did not end")


def test_speed_max_is_identity_in_time_order(mixed_path):
    node = make_node("replay", path=str(mixed_path), speed="max", chunk_s=0.01)
    infos = node.open({})
    assert node.outputs == ("a", "b", "ev") and infos["b"].nominal_rate == 100.0
    got = _drain(node)
    rec = load_recording(mixed_path)
    for name in ("a", "b", "ev"):
        pk = [p for port, p, _ in got if port == name]
        np.testing.assert_array_equal(np.concatenate([p.data for p in pk]), rec.stream(name).data)
        np.testing.assert_array_equal(np.concatenate([p.timestamps for p in pk]), rec.stream(name).timestamps)
    # merged in time order: no packet starts before the newest sample of an earlier read
    newest = -np.inf
    reads = {}
    for port, p, now in got:
        reads.setdefault(now, []).append(p)
    for now in sorted(reads):
        assert min(p.timestamps[0] for p in reads[now]) >= newest - 0.01  # within one window
        newest = max(newest, max(p.timestamps[-1] for p in reads[now]))
    assert node.virtual_time == pytest.approx(rec.stream("b").timestamps[-1])
    assert node.counters()["packets.a"] == len([1 for port, _, _ in got if port == "a"])


def test_paced_keeps_relative_timing_and_never_stamps_ahead(rec_path):
    node = make_node("replay", path=str(rec_path), speed=1.0, start_s=4.5)  # 1.5 s of data
    node.open({})
    got = _drain(node)
    rec = load_recording(rec_path)
    orig = rec.stream("spikes").timestamps
    first = int(np.searchsorted(orig, orig[0] + 4.5 - 1e-6))
    for name in ("spikes", "velocity", "target"):
        pk = [(p, now) for port, p, now in got if port == name]
        stamps = np.concatenate([p.timestamps for p, _ in pk])
        want = rec.stream(name).timestamps[first:]
        assert stamps.shape == want.shape
        # relative timing kept (to well within 1 ms) and on the live clock
        np.testing.assert_allclose(stamps - stamps[0], want - want[0], atol=1e-3)
        assert np.max(np.abs((stamps - stamps[0]) - (want - want[0]))) < 1e-9
        np.testing.assert_array_equal(np.concatenate([p.data for p, _ in pk]), rec.stream(name).data[first:])
        for p, now in pk:  # never ahead of the clock when emitted
            assert p.timestamps[-1] <= now
            assert p.t_enter <= now
    # the three streams of one sample share its live timestamp
    s = np.concatenate([p.timestamps for port, p, _ in got if port == "spikes"])
    v = np.concatenate([p.timestamps for port, p, _ in got if port == "velocity"])
    np.testing.assert_array_equal(s, v)
    assert node.progress()[0] == pytest.approx(node.progress()[1] - 0.004, abs=1e-6)


def test_paced_speed_factor_scales_time(mixed_path):
    node = make_node("replay", path=str(mixed_path), speed=4.0, chunk_s=0.02)
    node.open({})
    got = _drain(node)
    rec = load_recording(mixed_path)
    stamps = np.concatenate([p.timestamps for port, p, _ in got if port == "a"])
    want = rec.stream("a").timestamps
    assert np.max(np.abs((stamps - stamps[0]) * 4.0 - (want - want[0]))) < 1e-9
    for _, p, now in got:
        assert p.timestamps[-1] <= now


def test_loop_and_state_restore(rec_path):
    rec = load_recording(rec_path)
    n = rec.stream("velocity").data.shape[0]
    node = make_node("replay", path=str(rec_path), streams=["velocity"], speed="max", loop=True, chunk_s=0.1)
    node.open({})
    parts = []
    while sum(p.n_samples for p in parts) < 2 * n + 10:
        parts.append(node.read()["velocity"])
    data = np.concatenate([p.data for p in parts])
    stamps = np.concatenate([p.timestamps for p in parts])
    np.testing.assert_array_equal(data[:n], rec.stream("velocity").data)
    np.testing.assert_array_equal(data[n:2 * n], rec.stream("velocity").data)
    assert np.all(np.diff(stamps) > 0)  # timestamps keep increasing across loops
    assert node.counters()["loops"] == 2
    assert node.progress() is None
    # checkpoint, read on, restore: the same packets again
    state = node.state()
    after = [node.read()["velocity"] for _ in range(5)]
    node.restore(state)
    again = [node.read()["velocity"] for _ in range(5)]
    for x, y in zip(after, again):
        np.testing.assert_array_equal(x.data, y.data)
        np.testing.assert_array_equal(x.timestamps, y.timestamps)


def test_start_offset_and_stream_selection(rec_path):
    rec = load_recording(rec_path)
    node = make_node("replay", path=str(rec_path), streams=["target"], speed="max", start_s=2.0)
    assert node.outputs == ("target",)
    node.open({})
    first = node.read()["target"]
    assert first.timestamps[0] == pytest.approx(rec.stream("target").timestamps[0] + 2.0, abs=1e-9)


def test_bad_params_are_clear(rec_path, tmp_path):
    with pytest.raises(RecordingError, match="did you mean 'velocity'"):
        make_node("replay", path=str(rec_path), streams=["velocty"])
    with pytest.raises(RecordingError, match="not found"):
        make_node("replay", path=str(tmp_path / "none.xdfz"))
    with pytest.raises(UserError, match="speed"):
        make_node("replay", path=str(rec_path), speed="fast")
    node = make_node("replay", path=str(rec_path), start_s=60.0)
    with pytest.raises(UserError, match="past the end"):
        node.open({})


def test_recorder_writes_what_it_receives(rec_path, tmp_path):
    replay = make_node("replay", path=str(rec_path), speed="max", chunk_s=0.05)
    infos = replay.open({})
    out = tmp_path / "rec" / "copy.xdfz"
    recorder = make_node("recorder", path=str(out), streams=["spikes", "velocity"])
    recorder.open({"spikes": infos["spikes"], "velocity": infos["velocity"]})
    while (got := replay.read()) is not None:
        for port in ("spikes", "velocity"):
            recorder.process(port, got[port])
    recorder.close()
    back = load_recording(out, cache=False)
    src = load_recording(rec_path)
    for name in ("spikes", "velocity"):
        np.testing.assert_array_equal(back.stream(name).data, src.stream(name).data)
        np.testing.assert_array_equal(back.stream(name).timestamps, src.stream(name).timestamps)
        assert back.stream(name).info.channel_labels == src.stream(name).info.channel_labels
        offsets = back.stream(name).clock_offsets  # 0 s at the first sample, every 5 s, at the last
        assert offsets.shape[0] >= 2 and np.all(offsets[:, 1] == 0.0)
    streams, _ = pyxdf.load_xdf(str(out), synchronize_clocks=False, dejitter_timestamps=False)
    assert sorted(s["info"]["name"][0] for s in streams) == ["spikes", "velocity"]
    assert recorder.report()["samples.spikes"] == src.stream("spikes").data.shape[0]
    with pytest.raises(UserError, match="exists"):
        make_node("recorder", path=str(out))


def test_synthetic_source_matches_synth_file(rec_path):
    node = make_node("synthetic_reaching", channels=8, seed=2, speed="max", duration_s=6.0, chunk_samples=7)
    node.open({})
    got = _drain(node)
    rec = load_recording(rec_path)
    for name in ("spikes", "velocity", "target"):
        np.testing.assert_array_equal(np.concatenate([p.data for port, p, _ in got if port == name]), rec.stream(name).data)
    live = make_node("synthetic_reaching", channels=8, seed=2, speed=1.0, duration_s=0.3)
    live.open({})
    got = _drain(live)
    stamps = np.concatenate([p.timestamps for port, p, _ in got if port == "spikes"])
    assert np.max(np.abs(np.diff(stamps) - 0.004)) < 1e-9
    for _, p, now in got:
        assert p.timestamps[-1] <= now


AUTO_GRAPH = """
name: auto_chunk
nodes:
  replay:  {{kind: replay, params: {{path: {recording}, streams: [spikes, velocity], speed: max{chunk}}}}}
  decoder: {{kind: decoder, params: {{model: {model}}}}}
  smooth:  {{kind: bessel, params: {{order: 4, cutoff_hz: 6.25, mode: causal}}}}
  cap:     {{kind: capture, params: {{streams: [pred, "true"]}}}}
edges:
  - replay.spikes -> decoder -> smooth -> cap.pred
  - replay.velocity -> cap.true
"""


def test_auto_chunk_is_1s_at_max_speed_with_outputs_identical_to_4ms_packets(tmp_path):
    """``chunk_s: auto`` (the default) replays 1 s packets at speed max, 4 ms when paced; the
    decoded and filtered outputs equal those of 4 ms packets, byte for byte (SHA-256)."""
    from pathlib import Path

    from pipeline.graph import load_graph
    from pipeline.runners import get_runner

    model = Path(__file__).resolve().parents[1] / "models" / "snn_streaming_sample.npz"
    rec = generate(tmp_path / "r96.xdf", SynthParams(channels=96, seed=4), 8.0, progress=False)
    reports = {}
    for tag, chunk in (("auto", ""), ("4ms", ", chunk_s: 0.004")):
        cfg = tmp_path / f"{tag}.yaml"
        cfg.write_text(AUTO_GRAPH.format(recording=rec, model=model, chunk=chunk))
        spec = load_graph(cfg)
        if tag == "auto":
            assert spec.instances["replay"].chunk_s == 1.0
        summary = get_runner("local")(spec, progress=False)
        reports[tag] = summary["reports"]["cap"]
        reports[tag + "_packets"] = summary["nodes"]["replay"]["counters"]["packets.spikes"]
    assert reports["auto"] == reports["4ms"] and reports["auto"]["pred.samples"] == 2000
    assert reports["auto_packets"] == 8 and reports["4ms_packets"] == 2000
    assert make_node("replay", path=str(rec), speed=1.0).chunk_s == 0.004


def test_mapping_mode_emits_the_training_view(tmp_path):
    """With neural/kinematics params the replay emits exactly what train/evaluate see."""
    from pipeline.recordings.mapping import StreamMapping
    from pipeline.recordings.reaching import load_reaching
    from tests.recording_helpers import make_session, write_labrecorder_xdf

    path = write_labrecorder_xdf(tmp_path / "lab.xdf", make_session(12.0, channels=5, seed=1))
    node = make_node("replay", path=str(path), speed="max", neural="Amp_counts", kinematics="Cursor",
                     markers="Trial_markers")
    infos = node.open({})
    assert node.outputs == ("spikes", "velocity") and infos["spikes"].channel_count == 5
    assert infos["velocity"].units == ("mm/s", "mm/s")  # the cursor position in mm, differentiated
    got = _drain(node)
    d = load_reaching(path, StreamMapping("Amp_counts", "Cursor", "Trial_markers"))
    for port, want in (("spikes", d.spikes), ("velocity", d.velocity)):
        data = np.concatenate([p.data for q, p, _ in got if q == port])
        stamps = np.concatenate([p.timestamps for q, p, _ in got if q == port])
        np.testing.assert_array_equal(data, want)
        np.testing.assert_array_equal(stamps, d.timestamps)
    with pytest.raises(UserError, match="may only choose among"):
        make_node("replay", path=str(path), streams=["Cursor"], neural="Amp_counts", kinematics="Cursor")
    with pytest.raises(RecordingError, match="no stream 'Cursr'; did you mean 'Cursor'"):
        make_node("replay", path=str(path), neural="Amp_counts", kinematics="Cursr")
