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
    assert j["checked"]["split"]["test"] == [112950, 150000]
    assert "segments: 812 from target changes" in out


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


HELP_COMMANDS = ["run", "check", "synth", "train", "evaluate", "bench", "play", "record", "inspect", "sweep",
                 "bench decoder", "bench latency", "bench latency-path", "bench controller", "bench fanout",
                 "bench attention", "bench soak", "bench restarts", "bench sessions", "sessions"]


def test_help_list_covers_every_command():
    """A command added later (by any branch) is in HELP_COMMANDS, so its help is checked too."""
    import argparse

    from pipeline.cli import build_parser

    def names(parser, prefix=""):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield f"{prefix}{name}"
                    yield from names(sub, f"{prefix}{name} ")

    assert sorted(names(build_parser())) == sorted(HELP_COMMANDS)


@pytest.mark.parametrize("command", HELP_COMMANDS)
def test_every_help_fits_100_columns_with_an_example_and_defaults(command, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    with pytest.raises(SystemExit):
        main([*command.split(), "--help"])
    out = capsys.readouterr().out
    for line in out.splitlines():
        assert len(line) <= 100, line
    assert "example" in out.lower()
    if command in ("train", "evaluate", "synth"):
        assert re.search(r"random seed \(default:? 0\)", " ".join(out.split()))


def _console(width: int = 100):
    import io

    from rich.console import Console

    return Console(file=io.StringIO(), width=width, color_system=None)


def test_evaluate_table_fits_100_columns_without_cut_cells(monkeypatch):
    """The decoder table (13 models, every filter) at 100 columns: transposed or stacked, no "…"."""
    import nodes.decoders.evaluation as ev
    from pipeline import console as console_mod

    out = _console(100)
    monkeypatch.setattr(console_mod, "console", lambda file=None: out)
    filters = ["none", "causal", "block-last", "block-middle"]
    results = []
    for k in range(13):
        results.append({
            "model": f"models/snn_streaming_asa_seed{k}_sample.npz", "kind": "snn_streaming",
            "r2": {f: 0.4 + 0.01 * k for f in filters}, "activation_sparsity": 0.91,
            "spikes_per_neuron_per_step": 0.083, "spikes_per_step": 6.6, "spikes_per_step_per_layer": [2.5, 4.1],
            "acs_per_step": 260.0, "macs_per_step": 96.0, "footprint_bytes": 19192, "step_us_p50": 17.9,
            "step_us_p99": 40.2, "offline_x_realtime": 210.0,
        })
    ev.print_table(results, filters)
    text = out.file.getvalue()
    _fits(text)
    assert "snn_streaming_asa_seed12_sample.npz" in text and "4.10" in text and "0.520" in text
    one = _console(100)
    monkeypatch.setattr(console_mod, "console", lambda file=None: one)
    ev.print_table(results[:2], filters)
    _fits(one.file.getvalue())
    assert "snn_streaming_asa_seed1_sample.npz" in one.file.getvalue()


def test_run_summary_fits_100_columns_with_counters_as_rows(monkeypatch):
    import pipeline.console as console_mod
    from pipeline.metrics import print_summary

    node = {"packets_in": 150000, "samples_in": 150000, "packets_out": 150000, "samples_out": 150000, "gaps": 3,
            "proc_us_p50": 13.8, "proc_us_p99": 135.3, "counters": {}}
    summary = {
        "graph": "replay_decode", "runner": "local", "stopped_by": "end of data", "wall_s": 0.87,
        "source_samples": 300000, "samples_per_s": 344827.0,
        "latency": {"p50_ms": 0.03, "p99_ms": 4.2, "max_ms": 397.9, "count": 300000},
        "nodes": {"replay": {**node, "counters": {"packets.spikes": 150, "packets.velocity": 150, "catchup": 0}},
                  "decoder": {**node, "counters": {"late_events_dropped_after_overload": 12}},
                  "score": {**node, "counters": {}}},
        "reports": {"score": {"r2": 0.4786, "n": 150000, "unmatched": 0}},
    }
    out = _console(100)
    monkeypatch.setattr(console_mod, "console", lambda file=None: out)
    print_summary(summary)
    text = out.file.getvalue()
    _fits(text)
    flat = " ".join(text.split())
    assert "late_events_dropped_after_overload │ 12" in flat and "packets.velocity │ 150" in flat
    assert "catchup" not in flat  # zero counters are not rows
