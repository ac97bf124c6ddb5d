"""``spikeloop play`` and ``spikeloop record`` against the real liblsl on loopback."""
from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pylsl
import pytest

from pipeline.cli import main
from pipeline.cli.play import serve
from pipeline.cli.record import parse_stream_spec, record
from pipeline.errors import UserError
from pipeline.packet import StreamInfo
from pipeline.recordings import load_recording
from pipeline.recordings.base import RecordedStream, Recording
from pipeline.recordings.xdf_writer import write_xdf


@pytest.fixture
def small_recording(tmp_path) -> tuple[Path, str]:
    """Two regular streams (different rates, the second starting 10 ms later) and an event stream."""
    tag = uuid.uuid4().hex[:8]
    rng = np.random.default_rng(5)
    spikes_t = 100.0 + np.arange(125) / 250.0
    vel_t = 100.01 + np.arange(50) / 100.0
    ev_t = np.sort(100.0 + rng.uniform(0, 0.5, 20))
    streams = {
        f"spk_{tag}": RecordedStream(
            StreamInfo(f"spk_{tag}", "SpikeCounts", 4, 250.0, "int16", ("e1", "e2", "e3", "e4"), ("counts",) * 4,
                       metadata={"session": "unit test"}),
            rng.poisson(1.0, (125, 4)).astype(np.int16), spikes_t),
        f"vel_{tag}": RecordedStream(
            StreamInfo(f"vel_{tag}", "Velocity", 2, 100.0, "float32", ("vx", "vy"), ("mm/s", "mm/s")),
            rng.standard_normal((50, 2)).astype(np.float32), vel_t),
        f"ev_{tag}": RecordedStream(
            StreamInfo(f"ev_{tag}", "SpikeEvents", 2, 0.0, "int32", ("channel", "unit"), ("index", "index")),
            rng.integers(0, 4, (20, 2)).astype(np.int32), ev_t),
    }
    path = tmp_path / "small.xdf"
    write_xdf(path, Recording(streams))
    return path, tag


def test_play_serves_every_stream_with_timing_and_metadata(small_recording):
    path, tag = small_recording
    ready = threading.Event()
    go = threading.Event()
    result = {}

    done = threading.Event()

    def play():
        # looping, and stopped only once the clients have what they need: a client pulling while
        # its outlet goes away can hang inside liblsl (its reconnect), so the outlets stay up
        result["stats"] = serve(path, speed=2.0, loop=True, on_ready=lambda ids: (ready.set(), go.wait(10)),
                                stop=done.is_set)

    thread = threading.Thread(target=play)
    thread.start()
    assert ready.wait(10)
    # connect the clients before the first sample is pushed
    clients = {}
    for kind in ("spk", "vel"):
        found = pylsl.resolve_byprop("name", f"{kind}_{tag}", 1, 5.0)
        clients[kind] = pylsl.StreamInlet(found[0], max_buflen=60)
        clients[kind].open_stream(5.0)
    full = clients["spk"].info(5.0)
    assert full.get_channel_labels() == ["e1", "e2", "e3", "e4"] and full.get_channel_units() == ["counts"] * 4
    assert full.type() == "SpikeCounts" and full.nominal_srate() == 250.0
    time.sleep(0.3)
    go.set()
    got = {}
    for kind, n in (("spk", 125), ("vel", 50)):
        data, stamps = [], []
        deadline = time.monotonic() + 5
        while sum(len(s) for s in stamps) < n and time.monotonic() < deadline:
            d, ts = clients[kind].pull_chunk(timeout=0.05, max_samples=1024, min_samples=1, as_numpy=True)
            if len(ts):
                arrived = pylsl.local_clock()
                assert np.all(ts <= arrived)  # never stamped ahead of the clock
                data.append(d)
                stamps.append(ts)
        got[kind] = (np.concatenate(data)[:n], np.concatenate(stamps)[:n])
    done.set()
    thread.join(10)
    rec = load_recording(path)
    spk, vel = rec.streams[f"spk_{tag}"], rec.streams[f"vel_{tag}"]
    np.testing.assert_array_equal(got["spk"][0], spk.data)
    np.testing.assert_array_equal(got["vel"][0], vel.data)
    # original timing at speed 2, across streams too (velocity started 10 ms later -> 5 ms)
    np.testing.assert_allclose(np.diff(got["spk"][1]), np.diff(spk.timestamps) / 2, atol=1e-9)
    np.testing.assert_allclose(np.diff(got["vel"][1]), np.diff(vel.timestamps) / 2, atol=1e-9)
    np.testing.assert_allclose(got["vel"][1][0] - got["spk"][1][0], 0.005, atol=1e-9)
    stats = result["stats"]
    assert stats.samples[f"spk_{tag}"] >= 125 and stats.samples[f"vel_{tag}"] >= 50
    assert stats.samples[f"ev_{tag}"] >= 20 and stats.stopped_by == "stopped"


def test_play_unknown_stream_is_a_clear_error(small_recording):
    path, tag = small_recording
    with pytest.raises(UserError, match=rf"no stream 'nope'.*spk_{tag}"):
        serve(path, streams=["nope"])


def test_record_what_play_serves_and_read_it_back(small_recording, tmp_path):
    path, tag = small_recording
    stop = threading.Event()
    ready = threading.Event()
    thread = threading.Thread(target=lambda: serve(path, speed=1.0, loop=True, on_ready=lambda ids: ready.set(),
                                                   stop=stop.is_set))
    thread.start()
    assert ready.wait(10)
    out = tmp_path / "rec.xdf"
    try:
        result = record([f"spk_{tag}", f"name=vel_{tag}"], out, duration_s=1.5)
    finally:
        stop.set()
        thread.join(10)
    assert result["stopped_by"] == "duration 1.5 s"
    back = load_recording(out, cache=False)
    spk = back.stream(f"spk_{tag}")
    assert spk.info.channel_labels == ("e1", "e2", "e3", "e4") and spk.info.units == ("counts",) * 4
    assert spk.info.dtype == "int16" and spk.info.nominal_rate == 250.0
    n = result["streams"][f"spk_{tag}"]
    assert n == spk.data.shape[0] and n > 100  # about 1.5 s at 250 Hz, minus connection time
    # what was recorded is a contiguous run of the looping recording
    orig = load_recording(path).stream(f"spk_{tag}").data
    tiled = np.concatenate([orig] * 12)  # up to 6 s of data: opening waits for a second match
    starts = [i for i in range(orig.shape[0]) if np.array_equal(tiled[i:i + n], spk.data)]
    assert starts, "recorded samples are not a contiguous run of the played recording"
    assert np.all(np.diff(spk.timestamps) > 0)
    assert result["counters"][f"spk_{tag}"]["lost_samples_est"] == 0
    # clock offsets measured as soon as the streams opened (same machine: about 0)
    assert result["offsets"][f"spk_{tag}"] >= 1 and len(spk.clock_offsets) == result["offsets"][f"spk_{tag}"]
    assert np.all(np.abs(spk.clock_offsets[:, 1]) < 0.01)


def test_stream_specs_and_cli_errors(capsys):
    assert parse_stream_spec("spikes") == {"name": "spikes"}
    assert parse_stream_spec("type=EEG") == {"type": "EEG"}
    with pytest.raises(UserError):
        parse_stream_spec("host=x")
    assert main(["record", "--streams", f"absent_{uuid.uuid4().hex[:6]}", "--out", "/tmp/never.xdf",
                 "--duration", "1", "--resolve-timeout", "0.2"]) == 2
    assert "no LSL stream with name=" in capsys.readouterr().err


def test_markers_play_and_record_round_trip_and_bars_redraw_at_most_10_per_s(tmp_path, capsys):
    """A string marker stream served by `play` (progress bar on) and recorded by `record`."""
    tag = uuid.uuid4().hex[:8]
    texts = np.array([[f"trial {k}"] for k in range(12)], dtype=object)
    stamps = 200.0 + np.arange(12) * 0.1
    path = tmp_path / "markers.xdf"
    info = StreamInfo(f"mk_{tag}", "Markers", 1, 0.0, "object", ("marker",), source_id=f"mk-{tag}")
    fast = StreamInfo(f"fast_{tag}", "Counter", 1, 250.0, "float32", source_id=f"fast-{tag}")
    write_xdf(path, Recording({info.name: RecordedStream(info, texts, stamps),  # the loop runs 250 times a second
                               fast.name: RecordedStream(fast, np.zeros((300, 1), np.float32),
                                                         200.0 + np.arange(300) / 250.0)}))
    assert load_recording(path).stream(info.name).data.tolist() == texts.tolist()
    result: dict = {}
    ready = threading.Event()

    def play():
        result["stats"] = serve(path, speed=1.0, loop=True, duration_s=2.5, progress=True,
                                on_ready=lambda ids: ready.set())

    thread = threading.Thread(target=play)
    thread.start()
    assert ready.wait(10)
    out = tmp_path / "rec.xdfz"
    rec = record([f"source_id=mk-{tag}"], out, duration_s=1.5)
    thread.join(10)
    streams, _ = pyxdf_load(out)
    got = [row[0] for row in streams[info.name]["time_series"]]
    assert len(got) == rec["streams"][info.name] >= 8  # about 10 markers a second for 1.5 s
    start = [k for k in range(12) if got[0] == f"trial {k}"][0]
    assert got == [f"trial {(start + k) % 12}" for k in range(len(got))]  # in order, none missing
    redraws = capsys.readouterr().err.count("\r")
    assert 1 <= redraws <= 2.5 * 10 + 3, redraws  # at most 10 redraws a second (plus open/close)


def pyxdf_load(path):
    import pyxdf

    streams, header = pyxdf.load_xdf(str(path), synchronize_clocks=False, dejitter_timestamps=False)
    return {s["info"]["name"][0]: s for s in streams}, header


def test_play_gives_each_stream_its_own_source_id(tmp_path):
    """Streams of a recording that share a source_id (the synthetic sample's do) get one each."""
    tag = uuid.uuid4().hex[:8]
    shared = f"dev-{tag}"
    streams = {f"{k}_{tag}": RecordedStream(StreamInfo(f"{k}_{tag}", "Test", 1, 100.0, "float32", source_id=shared),
                                            np.zeros((5, 1), np.float32), 10.0 + np.arange(5) / 100.0)
               for k in ("a", "b")}
    write_xdf(tmp_path / "shared.xdf", Recording(streams))
    ids: dict[str, str] = {}
    serve(tmp_path / "shared.xdf", speed=10.0, on_ready=ids.update)
    assert ids == {f"a_{tag}": f"{shared}:a_{tag}", f"b_{tag}": f"{shared}:b_{tag}"}
