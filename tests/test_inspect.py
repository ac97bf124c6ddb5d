"""``spikeloop inspect``: per-stream facts (rates, gaps, clock offsets), roles, a checked mapping,
all readable at 100 columns."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from pipeline.cli import main
from pipeline.packet import StreamInfo
from pipeline.recordings.base import RecordedStream, Recording
from pipeline.recordings.xdf_writer import write_xdf

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "recordings" / "reaching_sample.xdfz"


def _fits(text: str, width: int = 100) -> None:
    for line in text.splitlines():
        assert len(line) <= width, f"line wider than {width}: {line!r}"
        assert "…" not in line, f"cut cell: {line!r}"


def test_bundled_sample_needs_no_flags(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    assert main(["inspect", str(SAMPLE), "--json", str(tmp_path / "i.json")]) == 0
    out = capsys.readouterr().out
    _fits(out)
    j = json.loads((tmp_path / "i.json").read_text())
    roles = {s["name"]: s["role"] for s in j["streams"]}
    assert roles == {"spikes": "neural (counts)", "velocity": "kinematics velocity", "target": "target (segments)"}
    spikes = j["streams"][0]
    assert spikes["samples"] == 150000 and spikes["effective_rate"] == pytest.approx(250.0, rel=1e-6)
    assert spikes["duration_s"] == pytest.approx(599.996) and spikes["gaps"] == 0
    assert j["checked"]["mapping"]["neural"] == "spikes" and "error" not in j["checked"]
    assert j["checked"]["split"]["test"] == [112541, 150000]
    assert "segments: 293 from target changes" in out


def test_gaps_offsets_and_a_mapping_that_does_not_fit(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    t = 10.0 + np.arange(2500) / 250.0
    keep = np.ones(t.size, bool)
    keep[1000:1050] = False  # 50 samples lost = 0.2 s gap
    keep[2000:2010] = False  # 10 more
    ch = 4
    rec = Recording({
        "amp": RecordedStream(StreamInfo("amp", "EEG", ch, 250.0, "float32", units=("counts",) * ch),
                              np.ones((keep.sum(), ch), np.float32), t[keep]),
        "vel": RecordedStream(StreamInfo("vel", "Kinematics", 2, 50.0, "float32", ("vx", "vy"), ("m/s", "m/s")),
                              np.zeros((500, 2), np.float32), 10.0 + np.arange(500) / 50.0,
                              np.array([[10.0, 0.010], [15.0, 0.012]])),
    })
    path = write_xdf(tmp_path / "g.xdf", rec)
    assert main(["inspect", str(path), "--json", str(tmp_path / "g.json")]) == 0
    out = capsys.readouterr().out
    _fits(out)
    j = json.loads((tmp_path / "g.json").read_text())
    amp, vel = j["streams"]
    assert amp["gaps"] == 2 and amp["gap_s"] == pytest.approx(0.24, abs=1e-6)
    assert amp["role"] == "neural (counts)" and vel["role"] == "kinematics velocity"
    assert vel["clock_offsets"] == 2 and vel["mean_offset_s"] == pytest.approx(0.011)
    assert j["suggested"] == {"neural": "amp", "kinematics": "vel", "markers": None}
    assert "segments: 5 from fixed 2 s chunks" in out
    # a mapping that names a stream that is not there: rc 1 and the reason, in one line
    assert main(["inspect", str(path), "--neural", "amp", "--kinematics", "cursor"]) == 1
    out = " ".join(capsys.readouterr().out.split())  # rich wraps long lines at 100 columns
    assert "does not fit" in out and "no stream 'cursor' in recording; it has: amp, vel" in out


def test_help_has_an_example_and_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["inspect", "--help"])
    out = capsys.readouterr().out
    assert "spikeloop inspect recordings/reaching_sample.xdfz" in out
    flat = " ".join(out.split())
    assert "(default: spikes)" in flat and "(default: velocity)" in flat


@pytest.mark.parametrize("command", ["run", "check", "synth", "train", "evaluate", "bench", "play", "record", "inspect"])
def test_every_help_fits_100_columns_with_an_example_and_defaults(command, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = capsys.readouterr().out
    for line in out.splitlines():
        assert len(line) <= 100, line
    assert "example" in out.lower()
    if command in ("train", "evaluate", "synth"):
        assert re.search(r"random seed \(default:? 0\)", " ".join(out.split()))
