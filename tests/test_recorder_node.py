"""The recorder node: string markers and numeric streams from real LSL inlets round-trip through
pyxdf with the sender's whole header, 0 s clock offsets, and no pyxdf warnings."""
from __future__ import annotations

import logging
import time
import uuid

import numpy as np
import pylsl
import pyxdf

from nodes.sinks.recorder import Recorder
from nodes.sources.lsl_inlet import LslInlet


def test_recorder_keeps_markers_header_and_writes_offsets(tmp_path, caplog):
    tag = uuid.uuid4().hex[:8]
    eeg = pylsl.StreamInfo(f"eeg_{tag}", "EEG", 2, 100.0, pylsl.cf_float32, f"eeg-{tag}")
    chans = eeg.desc().append_child("channels")
    for label, kind in (("Cz", "EEG"), ("HEOG", "EOG")):
        ch = chans.append_child("channel")
        ch.append_child_value("label", label)
        ch.append_child_value("type", kind)
    eeg.desc().append_child("cap").append_child_value("size", "56")
    eeg_out = pylsl.StreamOutlet(eeg)
    mk_out = pylsl.StreamOutlet(pylsl.StreamInfo(f"mk_{tag}", "Markers", 1, 0.0, pylsl.cf_string, f"mk-{tag}"))
    inlets = {"eeg": LslInlet(source_id=f"eeg-{tag}", clock_sync=False, max_chunk=50),  # 0.5 s packets
              "markers": LslInlet(source_id=f"mk-{tag}", clock_sync=False)}
    infos = {port: node.open({})["out"] for port, node in inlets.items()}
    rec = Recorder(path=str(tmp_path / "graph.xdfz"), streams=["eeg", "markers"])
    rec.name = "rec"
    rec.open(infos)
    time.sleep(0.3)
    t0 = pylsl.local_clock()
    data = np.arange(1200, dtype=np.float32).reshape(600, 2)
    stamps = t0 + np.arange(600) / 100.0  # 6 s of stream time
    eeg_out.push_chunk(data, stamps.tolist())
    marks = [("start", t0 + 0.5), ("go, \"quoted\" ü", t0 + 2.0), ("stop", t0 + 5.5)]
    for text, t in marks:
        mk_out.push_sample([text], t)
    got = {"eeg": 0, "markers": 0}
    end = time.monotonic() + 5.0
    while (got["eeg"] < 600 or got["markers"] < 3) and time.monotonic() < end:
        for port, node in inlets.items():
            out = node.read()
            if out:
                rec.process(port, out["out"])
                got[port] += out["out"].n_samples
    rec.close()
    for node in inlets.values():
        node.close()
    assert got == {"eeg": 600, "markers": 3}

    with caplog.at_level(logging.WARNING, logger="pyxdf"):
        streams, _ = pyxdf.load_xdf(str(tmp_path / "graph.xdfz"))  # default: clock sync + dejitter
    assert not [r for r in caplog.records if r.name.startswith("pyxdf")], [r.getMessage() for r in caplog.records]
    raw, _ = pyxdf.load_xdf(str(tmp_path / "graph.xdfz"), synchronize_clocks=False, dejitter_timestamps=False)
    by_name = {s["info"]["name"][0]: s for s in raw}
    e, m = by_name["eeg"], by_name["markers"]
    np.testing.assert_array_equal(e["time_series"], data)
    np.testing.assert_array_equal(e["time_stamps"], stamps)
    assert [row[0] for row in m["time_series"]] == [text for text, _ in marks]
    np.testing.assert_array_equal(m["time_stamps"], [t for _, t in marks])
    desc = e["info"]["desc"][0]
    assert [c["type"][0] for c in desc["channels"][0]["channel"]] == ["EEG", "EOG"]
    assert desc["cap"][0]["size"] == ["56"]
    assert e["info"]["uid"] == [eeg_out.get_info().uid()] and e["info"]["source_id"] == [f"eeg-{tag}"]
    assert e["info"]["created_at"][0] and e["info"]["hostname"][0] and e["info"]["session_id"][0]
    # 0 s offsets: first sample, every 5 s of stream time, last sample
    assert e["clock_values"] == [0.0] * len(e["clock_values"]) and len(e["clock_times"]) >= 3
    assert e["clock_times"][0] == stamps[0] and e["clock_times"][-1] == stamps[-1]
    assert m["clock_times"][0] == marks[0][1] and m["clock_times"][-1] == marks[-1][1]
    del eeg_out, mk_out
