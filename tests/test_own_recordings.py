"""Your own recordings end to end, through the command line: inspect → train → evaluate → replay.

A LabRecorder-style XDF (neural counts at 250 Hz, a cursor position at 100 Hz on another clock,
string markers) and an NWB file (units + behaviour, Neural Latents Benchmark layout), 40 s each,
with no code of the user's: only ``spikeloop`` commands (``pipeline.cli.main``, in-process to keep
the test fast). Also the alignment rules themselves, against independent computations.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.cli import main
from pipeline.errors import RecordingError
from pipeline.recordings import load_recording
from pipeline.recordings.mapping import StreamMapping, corrected_timestamps
from pipeline.recordings.reaching import load_reaching
from tests.recording_helpers import make_session, write_labrecorder_xdf, write_nwb

REPO_CONFIG = "configs/replay_decode.yaml"
LAB = ["--neural", "Amp_counts", "--kinematics", "Cursor", "--markers", "Trial_markers"]
NWB = ["--kinematics", "cursor_pos", "--markers", "trials"]


@pytest.fixture(scope="module")
def session():
    return make_session(40.0, channels=12, seed=4)


@pytest.fixture(scope="module")
def lab_xdf(session, tmp_path_factory):
    return write_labrecorder_xdf(tmp_path_factory.mktemp("lab") / "session.xdf", session)


@pytest.fixture(scope="module")
def nwb_file(session, tmp_path_factory):
    return write_nwb(tmp_path_factory.mktemp("nwb") / "sub-test_ses-1.nwb", session)


def _journey(path, mapping_args, tmp_path, capsys, monkeypatch):
    """inspect → train → evaluate → replay; returns (inspect JSON, evaluate JSON, run summary JSON)."""
    from pathlib import Path

    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    monkeypatch.setenv("COLUMNS", "100")
    j_inspect, model, j_eval, j_run = (tmp_path / n for n in ("inspect.json", "ann.npz", "eval.json", "run.json"))
    assert main(["inspect", str(path), *mapping_args, "--json", str(j_inspect)]) == 0
    out = capsys.readouterr().out
    assert "does not fit" not in out and "segments: " in out
    assert main(["train", "--model", "ann", "--recording", str(path), *mapping_args, "--epochs", "1",
                 "--max-minutes", "1", "--out", str(model)]) == 0
    capsys.readouterr()
    # no mapping options: evaluate uses the mapping recorded in the model file by train
    assert main(["evaluate", "--model", str(model), "--recording", str(path),
                 "--filter", "causal", "--json", str(j_eval)]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("using the stream mapping"))
    for flag, value in zip(mapping_args[::2], mapping_args[1::2]):
        assert f"{flag} {value}" in line
    sets = ["--set", f"replay.path={path}", "--set", f"decoder.model={model}"]
    names = iter(mapping_args)
    for flag, value in zip(names, names):
        sets += ["--set", f"replay.{flag[2:].replace('-', '_')}={value}"]
    assert main(["run", REPO_CONFIG, *sets, "--no-progress", "--json", str(j_run)]) == 0
    capsys.readouterr()
    return (json.loads(j_inspect.read_text()), json.loads(j_eval.read_text()), json.loads(j_run.read_text()))


def _score(summary):
    return summary["reports"]["score"]


def test_labrecorder_xdf_end_to_end(lab_xdf, tmp_path, capsys, monkeypatch):
    insp, ev, run = _journey(lab_xdf, LAB, tmp_path, capsys, monkeypatch)
    roles = {s["name"]: s["role"] for s in insp["streams"]}
    assert roles == {"Amp_counts": "neural (counts)", "Cursor": "kinematics position", "Trial_markers": "markers"}
    assert insp["suggested"] == {"neural": "Amp_counts", "kinematics": "Cursor", "markers": "Trial_markers"}
    cursor = next(s for s in insp["streams"] if s["name"] == "Cursor")
    assert cursor["nominal_rate"] == 100.0 and cursor["clock_offsets"] > 0
    assert cursor["mean_offset_s"] == pytest.approx(-0.25)
    a = insp["checked"]["alignment"]
    assert a["kinematics_kind"] == "position" and not a["exact"]
    assert 0.004 < a["max_dt_s"] <= 0.005 + 1e-9  # 4 ms bins vs 10 ms samples: at most half a period away
    assert a["clock_offsets_s"]["Cursor"] == pytest.approx(-0.25)
    model = ev["models"][0]
    assert np.isfinite(model["r2"]["none"]) and np.isfinite(model["r2"]["causal"])
    rep = _score(run)
    assert rep["n"] == a["bins"] and rep["unmatched"] == 0 and np.isfinite(rep["r2"])
    # several recordings (the fan-out path, serial here): each read with the model's mapping too
    both = tmp_path / "both.json"
    assert main(["evaluate", "--model", str(tmp_path / "ann.npz"), "--recording", str(lab_xdf), str(lab_xdf),
                 "--filter", "causal", "--json", str(both)]) == 0
    reports = json.loads(both.read_text())["recordings"]
    assert len(reports) == 2
    for r in reports:
        assert r["models"][0]["r2"]["causal"] == pytest.approx(model["r2"]["causal"], abs=1e-12)


def test_nwb_end_to_end(nwb_file, tmp_path, capsys, monkeypatch):
    insp, ev, run = _journey(nwb_file, NWB, tmp_path, capsys, monkeypatch)
    roles = {s["name"]: s["role"] for s in insp["streams"]}
    assert roles["spikes"] == "neural (events)" and roles["trials"] == "markers"
    assert roles["cursor_pos"] == "kinematics position" and roles["finger_vel"] == "kinematics velocity"
    a = insp["checked"]["alignment"]
    assert a["neural_kind"] == "events" and a["bins"] == 10000
    rep = _score(run)
    assert rep["n"] == 10000 and rep["unmatched"] == 0 and np.isfinite(rep["r2"])


def test_alignment_matches_an_independent_computation(session, lab_xdf):
    """Clock offset applied, position interpolated onto the bins, differentiated; markers cut segments."""
    d = load_reaching(lab_xdf, StreamMapping("Amp_counts", "Cursor", "Trial_markers"))
    rec = load_recording(lab_xdf)
    cur = rec.stream("Cursor")
    t_true = cur.timestamps - 0.25  # the helper stamped the cursor 0.25 s late and wrote offsets of -0.25 s
    np.testing.assert_allclose(corrected_timestamps(cur)[0], t_true, atol=1e-9)
    tb = rec.stream("Amp_counts").timestamps
    keep = (tb >= t_true[0]) & (tb <= t_true[-1])
    np.testing.assert_array_equal(d.timestamps, tb[keep])
    pos = np.column_stack([np.interp(tb[keep], t_true, cur.data[:, k].astype(np.float64)) for k in (0, 1)])
    vel = np.empty_like(pos)
    h = np.diff(tb[keep])[:, None]
    vel[1:-1] = (pos[2:] - pos[:-2]) / (h[1:] + h[:-1])  # uniform bins: NeuroBench's central differences
    vel[0], vel[-1] = (pos[1] - pos[0]) / h[0], (pos[-1] - pos[-2]) / h[-1]
    np.testing.assert_allclose(d.velocity, vel, rtol=1e-4, atol=1e-3)
    # against the true analytic cursor velocity (mm/s): interpolation of a 100 Hz position is close
    true_v = np.gradient(session.position(d.timestamps), d.timestamps, axis=0)
    assert np.sqrt(np.mean((d.velocity - true_v) ** 2)) < 0.02 * np.std(true_v)
    starts = [a for a, _ in d.segments]
    expect = sorted({int(np.searchsorted(d.timestamps, m - 1e-9)) for m in session.reach_starts} - {0})
    assert starts == [0, *expect]


def test_position_or_velocity_is_decided_or_asked(tmp_path):
    from pipeline.packet import StreamInfo
    from pipeline.recordings.base import RecordedStream, Recording
    from pipeline.recordings.mapping import build_dataset

    t = np.arange(3000) * 0.004
    counts = RecordedStream(StreamInfo("n", "EEG", 4, 250.0, "float32"), np.ones((3000, 4), np.float32), t)
    unknown = RecordedStream(StreamInfo("k", "Stuff", 2, 250.0, "float32"), np.ones((3000, 2), np.float32), t)
    rec = Recording({"n": counts, "k": unknown})
    with pytest.raises(RecordingError, match="--kinematics-kind"):
        build_dataset(rec, StreamMapping("n", "k"))
    d = build_dataset(rec, StreamMapping("n", "k", kinematics_kind="velocity"))
    assert d["alignment"].kinematics_kind == "velocity" and d["alignment"].exact
    assert d["alignment"].segments_from.startswith("fixed 2 s chunks") and len(d["segments"]) == 6
    with pytest.raises(RecordingError, match="no stream 'nope'"):
        build_dataset(rec, StreamMapping("nope", "k"))


def test_scorer_split_uses_the_same_mapping(lab_xdf):
    """velocity_scorer's split of a mapped recording is the dataset's split (same segments)."""
    from pipeline.packet import StreamInfo
    from pipeline.registry import make_node

    d = load_reaching(lab_xdf, StreamMapping("Amp_counts", "Cursor", "Trial_markers"))
    node = make_node("velocity_scorer", split="test", recording=str(lab_xdf), neural="Amp_counts",
                     kinematics="Cursor", markers="Trial_markers")
    vel = StreamInfo("velocity", "Velocity", 2, 250.0, "float32", ("vx", "vy"))
    node.open({"pred": vel, "true": vel})
    assert node._slice == d.split["test"]
    with pytest.raises(RecordingError, match="no stream 'spikes' in recording; it has: Amp_counts"):
        make_node("velocity_scorer", split="test", recording=str(lab_xdf)).open({"pred": vel, "true": vel})


def test_linear_decoder_fits_and_scores_a_mapped_recording_in_one_graph(lab_xdf, tmp_path):
    """No torch: replay (mapped) -> linear_decoder fitted on the training part -> R² on the test part."""
    from pipeline.graph import load_graph
    from pipeline.runners import get_runner

    m = "neural: Amp_counts, kinematics: Cursor, markers: Trial_markers"
    cfg = tmp_path / "lin.yaml"
    cfg.write_text(f"""
nodes:
  replay:  {{kind: replay, params: {{path: {lab_xdf}, speed: max, {m}}}}}
  decoder: {{kind: linear_decoder, params: {{fit_recording: {lab_xdf}, {m}}}}}
  score:   {{kind: velocity_scorer, params: {{split: test, recording: {lab_xdf}, {m}}}}}
edges:
  - replay.spikes -> decoder -> score.pred
  - replay.velocity -> score.true
""")
    rep = get_runner("local")(load_graph(cfg), progress=False)["reports"]["score"]
    d = load_reaching(lab_xdf, StreamMapping("Amp_counts", "Cursor", "Trial_markers"))
    sl = d.split["test"]
    assert rep["n"] == sl.stop - sl.start and rep["unmatched"] == 0
    assert rep["r2"] > 0.2  # the session's units are tuned to the cursor velocity: a real fit decodes it
