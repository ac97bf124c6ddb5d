"""XDF writer -> pyxdf reader round trips, and clear errors for bad files."""
from __future__ import annotations

import gzip

import numpy as np
import pytest
import pyxdf

from pipeline.errors import RecordingError
from pipeline.packet import StreamInfo
from pipeline.recordings import load_recording
from pipeline.recordings.base import RecordedStream, Recording
from pipeline.recordings.xdf_reader import read_xdf, read_xdf_infos
from pipeline.recordings.xdf_writer import XdfWriter, write_xdf

NUMERIC = ["float32", "float64", "int8", "int16", "int32", "int64"]


def _streams(rng: np.random.Generator) -> dict[str, tuple[StreamInfo, np.ndarray, np.ndarray]]:
    out = {}
    for k, dtype in enumerate(NUMERIC):
        n, c = 700 + 37 * k, k + 1
        if dtype.startswith("float"):
            data = rng.normal(0, 100, (n, c)).astype(dtype)
        else:
            info = np.iinfo(dtype)
            data = rng.integers(info.min, info.max, (n, c), dtype=dtype, endpoint=True)
        rate = [250.0, 1000.0, 0.0, 100.0, 512.0, 30.0][k]
        if rate:
            stamps = np.cumsum(np.full(n, 1.0 / rate)) + 100.0
            stamps[n // 2:] += 0.37 * np.arange(n - n // 2) * 1e-5  # jittered: some stamps not deducible
        else:
            stamps = np.sort(rng.uniform(100, 110, n))
        labels = tuple(f"{dtype}_{j}" for j in range(c))
        units = tuple(["uV", "counts", "mm/s", "a.u.", "V", "mm"][j % 6] for j in range(c))
        out[dtype] = (StreamInfo(f"s_{dtype}", "Test", c, rate, dtype, labels, units, f"src-{k}",
                                 {"k": k}), data, stamps)
    strings = np.array([["start", "α"], ["stop", "β γ"], ["", "x"]], dtype=object)
    out["string"] = (StreamInfo("markers", "Markers", 2, 0.0, "str", ("a", "b")), strings, np.array([100.5, 101.0, 102.25]))
    return out


def _write(path, streams, offsets) -> None:
    with XdfWriter(path, metadata={"subject": "test", "n": 3}) as w:
        ids = {name: w.add_stream(info, measured_offsets=True) for name, (info, _, _) in streams.items()}
        for name, (info, data, stamps) in streams.items():
            for a in range(0, len(stamps), 250):  # several Samples chunks per stream
                w.write_samples(ids[name], data[a:a + 250], stamps[a:a + 250])
        for name, rows in offsets.items():
            for t, v in rows:
                w.write_clock_offset(ids[name], t, v)


@pytest.mark.parametrize("suffix", [".xdf", ".xdfz"])
def test_round_trip_through_pyxdf(tmp_path, suffix):
    rng = np.random.default_rng(0)
    streams = _streams(rng)
    offsets = {"float32": [(100.0, 0.0012), (105.0, -0.0031)], "int64": [(101.5, 1e-4)]}
    path = tmp_path / f"rec{suffix}"
    _write(path, streams, offsets)
    if suffix == ".xdfz":
        assert path.read_bytes()[:2] == b"\x1f\x8b"  # really gzip
    loaded, header = pyxdf.load_xdf(str(path), synchronize_clocks=False, dejitter_timestamps=False)
    by_name = {s["info"]["name"][0]: s for s in loaded}
    assert len(by_name) == len(streams)
    for key, (info, data, stamps) in streams.items():
        s = by_name[info.name]
        np.testing.assert_array_equal(s["time_stamps"], stamps)  # bit-exact timestamps
        if key == "string":
            assert [list(r) for r in s["time_series"]] == [list(r) for r in data]
        else:
            assert s["time_series"].dtype == np.dtype(key)
            np.testing.assert_array_equal(s["time_series"], data)
        chans = s["info"]["desc"][0]["channels"][0]["channel"]
        assert [c["label"][0] for c in chans] == list(info.channel_labels)
        assert float(s["info"]["nominal_srate"][0]) == info.nominal_rate
        rows = offsets.get(key, [])
        assert s["clock_times"] == [t for t, _ in rows]
        assert s["clock_values"] == [v for _, v in rows]
        assert int(s["footer"]["info"]["sample_count"][0]) == len(stamps)
    assert header["info"]["version"][0] == "1.0"

    rec = read_xdf(path)
    assert rec.metadata == {"subject": "test", "n": 3}
    for key, (info, data, stamps) in streams.items():
        got = rec.stream(info.name)
        np.testing.assert_array_equal(got.timestamps, stamps)
        assert got.info.channel_labels == info.channel_labels
        if key != "string":
            np.testing.assert_array_equal(got.data, data)
            assert got.info.units == info.units
            assert got.info.dtype == key
            assert got.info.metadata == info.metadata
        np.testing.assert_array_equal(got.clock_offsets, np.array(offsets.get(key, []), dtype=float).reshape(-1, 2))
    assert set(read_xdf_infos(path)) == {i.name for i, _, _ in streams.values()}


def test_regular_timestamps_cost_one_byte(tmp_path):
    info = StreamInfo("x", "Test", 1, 250.0, "int8")
    stamps = np.cumsum(np.full(5000, 1 / 250.0))
    for name, ts in (("regular.xdf", stamps), ("irregular.xdf", stamps + np.arange(5000) * 1e-7)):
        with XdfWriter(tmp_path / name) as w:
            w.write_samples(w.add_stream(info), np.zeros((5000, 1)), ts)
        back = pyxdf.load_xdf(str(tmp_path / name), synchronize_clocks=False, dejitter_timestamps=False)[0][0]
        np.testing.assert_array_equal(back["time_stamps"], ts)
    assert (tmp_path / "regular.xdf").stat().st_size < (tmp_path / "irregular.xdf").stat().st_size - 8 * 4000


def test_write_recording_and_gzip_bytes_are_reproducible(tmp_path):
    rng = np.random.default_rng(1)
    info = StreamInfo("v", "Velocity", 2, 250.0, "float32", ("vx", "vy"), ("mm/s", "mm/s"))
    ev = StreamInfo("e", "Events", 1, 0.0, "float64")
    rec = Recording({
        "v": RecordedStream(info, rng.normal(size=(3000, 2)).astype(np.float32), np.arange(3000) / 250.0,
                            np.array([[1.0, 0.5], [2.0, 0.25]])),
        "e": RecordedStream(ev, rng.normal(size=(40, 1)), np.sort(rng.uniform(0, 12, 40))),
    }, {"seed": 1})
    write_xdf(tmp_path / "a.xdfz", rec)
    write_xdf(tmp_path / "b.xdfz", rec)
    assert (tmp_path / "a.xdfz").read_bytes() == (tmp_path / "b.xdfz").read_bytes()
    back = load_recording(tmp_path / "a.xdfz", cache=False)
    for name, s in rec.streams.items():
        np.testing.assert_array_equal(back.stream(name).data, s.data)
        np.testing.assert_array_equal(back.stream(name).timestamps, s.timestamps)
    np.testing.assert_array_equal(back.stream("v").clock_offsets, rec.stream("v").clock_offsets)
    # a stream without measured offsets gets 0 s offsets: first sample, every 5 s of stream time, last
    e_offsets = back.stream("e").clock_offsets
    assert np.all(e_offsets[:, 1] == 0.0) and len(e_offsets) >= 2  # one Samples chunk here
    assert e_offsets[0, 0] == rec.stream("e").timestamps[0] and e_offsets[-1, 0] == rec.stream("e").timestamps[-1]


def _small_file(path) -> bytes:
    info = StreamInfo("x", "Test", 3, 100.0, "float32", ("a", "b", "c"))
    with XdfWriter(path) as w:
        sid = w.add_stream(info)
        w.write_samples(sid, np.ones((2000, 3)), np.arange(2000) / 100.0)
        w.write_clock_offset(sid, 1.0, 0.0)
    return path.read_bytes()


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.93, 0.999])
def test_truncated_file_is_an_error(tmp_path, fraction):
    raw = _small_file(tmp_path / "full.xdf")
    cut = tmp_path / "cut.xdf"
    cut.write_bytes(raw[: int(len(raw) * fraction)])
    with pytest.raises(RecordingError, match="truncated"):
        read_xdf(cut)
    # the same truncation inside a gzip file
    gz = tmp_path / "cut.xdfz"
    gz.write_bytes(gzip.compress(raw[: int(len(raw) * fraction)]))
    with pytest.raises(RecordingError, match="truncated"):
        read_xdf(gz)
    # and a gzip file that is itself cut off
    gz.write_bytes(gzip.compress(raw)[: int(len(gzip.compress(raw)) * fraction)])
    with pytest.raises(RecordingError, match="truncated|corrupt"):
        read_xdf(gz)


def test_missing_footer_needs_allow_incomplete(tmp_path):
    raw = _small_file(tmp_path / "full.xdf")
    info = StreamInfo("x", "Test", 3, 100.0, "float32")
    w = XdfWriter(tmp_path / "crashed.xdf")
    w.write_samples(w.add_stream(info), np.ones((10, 3)), np.arange(10) / 100.0)
    w.flush()
    w._raw.close()  # the process died after a flush: no StreamFooter was written
    with pytest.raises(RecordingError, match="no StreamFooter"):
        read_xdf(tmp_path / "crashed.xdf")
    rec = read_xdf(tmp_path / "crashed.xdf", allow_incomplete=True)
    assert rec.stream("x").data.shape == (10, 3)
    assert len(raw) > 0


def test_corrupt_and_missing_files(tmp_path):
    with pytest.raises(RecordingError, match="not found"):
        read_xdf(tmp_path / "nope.xdf")
    (tmp_path / "text.xdf").write_bytes(b"hello world, not xdf")
    with pytest.raises(RecordingError, match="not an XDF file"):
        read_xdf(tmp_path / "text.xdf")
    raw = bytearray(_small_file(tmp_path / "full.xdf"))
    raw[4] = 7  # the first chunk's length-size byte must be 1, 4 or 8
    (tmp_path / "bad.xdf").write_bytes(bytes(raw))
    with pytest.raises(RecordingError, match="corrupt chunk length"):
        read_xdf(tmp_path / "bad.xdf")
    with pytest.raises(RecordingError, match="unknown recording format"):
        (tmp_path / "x.csv").write_text("1,2")
        load_recording(tmp_path / "x.csv")


def test_writer_rejects_bad_input(tmp_path):
    with XdfWriter(tmp_path / "w.xdf") as w:
        sid = w.add_stream(StreamInfo("x", "Test", 2, 10.0, "int16"))
        with pytest.raises(RecordingError, match="do not match"):
            w.write_samples(sid, np.zeros((5, 3)), np.arange(5.0))
        with pytest.raises(RecordingError, match="NaN"):
            w.write_samples(sid, np.full((1, 2), np.nan), np.zeros(1))
    with XdfWriter(tmp_path / "u.xdf") as w, pytest.raises(RecordingError, match="cannot store"):
        w.add_stream(StreamInfo("u", "Test", 1, 10.0, "uint16"))


@pytest.mark.parametrize("suffix", [".xdfz", ".xdf"])
def test_live_writer_file_is_readable_at_every_flush_and_torn_tails_are_dropped(tmp_path, suffix):
    """A live writer's file between flushes (what a SIGKILL leaves) loads in pyxdf; a write torn
    inside the last gzip member or chunk is dropped by read_xdf(allow_incomplete=True)."""
    info = StreamInfo("x", "Test", 2, 100.0, "float32", ("a", "b"))
    path = tmp_path / f"live{suffix}"
    w = XdfWriter(path, flush_every_s=3600.0)  # flushed by hand below
    sid = w.add_stream(info)
    sizes = []
    for k in range(5):
        w.write_samples(sid, np.full((100, 2), k, np.float32), 10.0 + (k * 100 + np.arange(100)) / 100.0)
        w.flush()
        sizes.append(path.stat().st_size)
        streams, _ = pyxdf.load_xdf(str(path), synchronize_clocks=False, dejitter_timestamps=False)
        assert streams[0]["time_series"].shape == ((k + 1) * 100, 2)  # everything flushed so far
    full = path.read_bytes()
    w.close()
    if suffix == ".xdfz":
        assert full.count(b"\x1f\x8b\x08") >= 5  # one closed gzip member per flush
    torn = tmp_path / f"torn{suffix}"
    torn.write_bytes(full[: sizes[3] + (sizes[4] - sizes[3]) // 2])  # killed in the middle of a write
    with pytest.raises(RecordingError, match="truncated"):
        read_xdf(torn)
    rec = read_xdf(torn, allow_incomplete=True)
    assert rec.stream("x").data.shape[0] == 400  # the four flushed writes, not the torn fifth
    np.testing.assert_array_equal(rec.stream("x").data[:400, 0], np.repeat(np.arange(4), 100).astype(np.float32))
