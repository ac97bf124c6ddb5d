"""A table of bad inputs: each gives ONE line on stderr (no traceback) and exit status 2.

Run in-process through ``pipeline.cli.main`` (fast): configs, ``--set`` values, recordings (``.xdf``,
``.xdfz``, ``.mat``), model files, live streams that are absent. Where a file existed before, it is
still there, byte for byte, after the error.
"""
from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import h5py
import numpy as np
import pytest

from pipeline.cli import main
from pipeline.modelfile import METADATA_KEY, load_model, save_model

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "recordings" / "reaching_sample.xdfz"
MODEL = REPO / "models" / "snn_streaming_sample.npz"

SMALL = """
name: small
nodes:
  gen: {kind: signal_generator, params: {channels: 4, rate_hz: 250, duration_s: 0.2}}
  smooth: {kind: bessel, params: {order: 4, cutoff_hz: 6.25}}
  cap: {kind: capture}
edges:
  - gen -> smooth -> cap
"""

REPLAY = """
nodes:
  replay: {kind: replay, params: {path: PATH, speed: max}}
  cap: {kind: capture, params: {streams: [spikes]}}
edges:
  - replay.spikes -> cap.spikes
"""

DECODE = """
nodes:
  gen: {kind: signal_generator, params: {channels: 96, rate_hz: 250, duration_s: 0.2}}
  decoder: {kind: decoder, params: {model: MODEL}}
  cap: {kind: capture}
edges:
  - gen -> decoder -> cap
"""

BOMB = "description:\n  a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"  {c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi")
) + SMALL


LOG_LINE = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} (DEBUG|INFO) ")
"""A timestamped progress/log line of the runner (``18:52:18.131 INFO  spikeloop.runner: ...``), not an error."""


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, command: str, *parts: str) -> str:
    """Exit 2, one line on stderr starting ``spikeloop COMMAND: error:``, no traceback; returns the line."""
    assert code == 2, err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip() and not LOG_LINE.match(line)]
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith(f"spikeloop {command}: error: "), line
    for part in parts:
        assert part in line, f"{part!r} not in {line!r}"
    return line


@pytest.fixture
def files(tmp_path):
    """Bad and good input files made once per test in ``tmp_path``."""
    made = _Files(tmp_path)
    return made


class _Files:
    def __init__(self, root: Path) -> None:
        self.root = root

    def text(self, name: str, content: str) -> Path:
        path = self.root / name
        path.write_text(content)
        return path

    def data(self, name: str, content: bytes) -> Path:
        path = self.root / name
        path.write_bytes(content)
        return path

    def replay_config(self, recording: Path | str, extra: str = "") -> Path:
        return self.text("replay.yaml", REPLAY.replace("PATH", str(recording)) + extra)

    def decode_config(self, model: Path | str) -> Path:
        return self.text("decode.yaml", DECODE.replace("MODEL", str(model)))


# --- configs ----------------------------------------------------------------------------------------------------
CONFIG_CASES = {
    "missing file": (None, ["config file not found"]),
    "directory": ("DIR", ["is a directory"]),
    "binary file": (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe" * 50, ["not a text (UTF-8) file"]),
    "NUL bytes": (b"nodes: {}\x00\x00", ["NUL bytes"]),
    "over 1 MB": ("# " + "x" * 1_100_000 + "\n" + SMALL, ["larger than 1,000,000 bytes"]),
    "invalid YAML": (SMALL.replace("[0, 2]", "[0, 2") + "edges: [a -> b\n", ["not valid YAML", "line"]),
    "node defined twice": (SMALL.replace("  cap: {kind: capture}", "  cap: {kind: capture}\n  gen: {kind: capture}"),
                           ["key 'gen' is defined twice (lines 4 and 7)"]),
    "alias bomb": (BOMB, ["expands to more than 100,000 YAML nodes"]),
    "recursive alias": ("description: &a [*a]\n" + SMALL, ["recursive alias"]),
    "empty file": ("", ["must be a YAML mapping"]),
    "a list, not a mapping": ("- a\n- b\n", ["must be a YAML mapping"]),
    "unknown top-level key": (SMALL + "edgs: []\n", ["unknown top-level key 'edgs'", "did you mean 'edges'"]),
    "unknown kind": (SMALL.replace("kind: bessel", "kind: besel"), ["node 'smooth': key 'kind'", "did you mean 'bessel'"]),
    "unknown param": (SMALL.replace("cutoff_hz:", "cutof_hz:"), ["node 'smooth': param 'cutof_hz'", "did you mean 'cutoff_hz'"]),
    "param of the wrong type": (SMALL.replace("order: 4", "order: four"), ["node 'smooth': param 'order': expected int, got 'four'"]),
    "misspelt choice": (SMALL.replace("cutoff_hz: 6.25", "cutoff_hz: 6.25, mode: blok"),
                        ["param 'mode': expected 'causal' or 'block', got 'blok' (did you mean 'block'?)"]),
    "required param missing": (REPLAY.replace("path: PATH, ", ""), ["node 'replay': param 'path': missing"]),
    "edge to a missing node": (SMALL.replace("gen -> smooth -> cap", "gen -> smoth -> cap"), ["missing node 'smoth'", "did you mean 'smooth'"]),
    "edge to a missing port": (SMALL.replace("gen -> smooth -> cap", "gen -> smooth.inn -> cap"), ["no input port 'inn'", "did you mean 'in'"]),
    "cycle without feedback": (SMALL.replace("gen -> smooth -> cap", "gen -> cap\n  - smooth -> smooth2 -> smooth").replace(
        "  cap: {kind: capture}", "  cap: {kind: capture}\n  smooth2: {kind: bessel}"),
        ["cycle smooth -> smooth2 -> smooth has no feedback edge"]),
    "input fed twice": (SMALL + "  - gen -> cap\n", ["input port 'in' is fed twice"]),
    "unknown runner": (SMALL + "runtime: {runner: rey}\n", ["key 'runtime.runner'", "did you mean 'ray'"]),
    "fuse names a missing node": (SMALL + "runtime: {fuse: [[gen, smoth]]}\n", ["missing node 'smoth'"]),
    "fuse groups wait on each other (Ray planning)": (SMALL + "runtime: {runner: ray, fuse: [[gen, cap]]}\n",
                                                      ["fuse groups make a cycle between actors"]),
    "cutoff above Nyquist": (SMALL.replace("cutoff_hz: 6.25", "cutoff_hz: 200"), ["node 'smooth'", "cutoff_hz must be in (0, 125.0) Hz"]),
    "block shorter than the filter": (SMALL.replace("cutoff_hz: 6.25", "cutoff_hz: 6.25, mode: block, block: 8"),
                                      ["node 'smooth'", "block (8) must exceed"]),
    "channel count mismatch": (DECODE.replace("channels: 96", "channels: 95").replace("MODEL", str(MODEL)),
                               ["node 'decoder'", "channel count is 95, expected 96", "(from gen.out)"]),
    "rate mismatch": (DECODE.replace("rate_hz: 250", "rate_hz: 1000").replace("MODEL", str(MODEL)),
                      ["node 'decoder'", "nominal rate (Hz) is 1000.0, expected 250.0"]),
}


@pytest.mark.parametrize("case", list(CONFIG_CASES))
def test_bad_config(case, tmp_path, capsys):
    content, parts = CONFIG_CASES[case]
    path = tmp_path / "graph.yaml"
    if content == "DIR":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    code, _, err = run_cli(capsys, "check", path)
    line = assert_one_line_error(code, err, "check", *parts)
    assert str(path) in line


# --- --set values -----------------------------------------------------------------------------------------------
SET_CASES = {
    "replay.speed=[": ["--set replay.speed: value '[' is not valid YAML"],
    "replay.loop=no_way": ["node 'replay': param 'loop': expected bool (true/false), got 'no_way'"],
    "replay.chunk_s=true": ["node 'replay': param 'chunk_s': expected float or 'auto', got True"],
    "replay.start_s=abc": ["node 'replay': param 'start_s': expected float, got 'abc'"],
    "replay.speed=maxx": ["param 'speed': expected float or 'max', got 'maxx' (did you mean 'max'?)"],
    "replay.speed=-1": ["node 'replay'", "speed must be 'max' or a number > 0, got -1.0"],
    "replay.streams=spikes": ["param 'streams': expected a list of str or null, got 'spikes'"],
    "replay.streams=[spikez]": ["no stream 'spikez'", "did you mean 'spikes'"],
    "replay": ["bad --set 'replay'", "node.param=value"],
    "replay.=1": ["bad --set"],
    "replya.speed=1": ["no node 'replya'", "did you mean 'replay'"],
    "replay.sped=1": ["node 'replay': param 'sped'", "did you mean 'speed'"],
    "runtime.runner=rayy": ["key 'runtime.runner'", "did you mean 'ray'"],
    "runtime.fuse=3": ["key 'runtime.fuse'", "got 3"],
    "runtime.dashboard=maybe": ["key 'runtime.dashboard': expected bool (true/false), got 'maybe'"],
    "runtime.checkpoint_s=-1": ["key 'runtime.checkpoint_s': must be >= 0, got -1"],
}


@pytest.mark.parametrize("override", list(SET_CASES))
def test_bad_set_value(override, files, capsys):
    config = files.replay_config(SAMPLE)
    code, _, err = run_cli(capsys, "check", config, "--set", override)
    assert_one_line_error(code, err, "check", str(config), *SET_CASES[override])


def test_decoder_count_activity_maybe(files, capsys):
    config = files.decode_config(MODEL)
    code, _, err = run_cli(capsys, "check", config, "--set", "decoder.count_activity=maybe")
    assert_one_line_error(code, err, "check", "node 'decoder': param 'count_activity': expected bool (true/false), got 'maybe'")


# --- recordings -------------------------------------------------------------------------------------------------
def _xdf_bytes() -> bytes:
    return gzip.decompress(SAMPLE.read_bytes())


def _write_mat(path: Path, *, spikes: bool = True) -> Path:
    """A small NeuroBench-layout MATLAB v7.3 file (h5py): spikes refs (units x channels), cursor, target, t."""
    rng = np.random.default_rng(0)
    T, C, U = 500, 4, 2
    t = 10.0 + 0.004 * np.arange(T)
    with h5py.File(path, "w") as f:
        if spikes:
            refs = np.empty((U, C), dtype=h5py.ref_dtype)
            grp = f.create_group("#refs#")
            for u in range(U):
                for c in range(C):
                    times = np.sort(rng.uniform(t[0], t[-1], 20))
                    refs[u, c] = grp.create_dataset(f"u{u}c{c}", data=times[None, :]).ref
            f.create_dataset("spikes", data=refs)
        f.create_dataset("cursor_pos", data=np.cumsum(rng.normal(0, 1, (2, T)), axis=1))
        target = np.repeat(rng.uniform(-50, 50, (2, 5)), T // 5, axis=1)
        f.create_dataset("target_pos", data=target)
        f.create_dataset("t", data=t[None, :])
    return path


def _recording(kind: str, root: Path) -> Path:
    if kind == "truncated .xdf":
        raw = _xdf_bytes()
        return _put(root / "trunc.xdf", raw[: len(raw) // 3])
    if kind == "truncated .xdfz":
        raw = SAMPLE.read_bytes()
        return _put(root / "trunc.xdfz", raw[: len(raw) // 3])
    if kind == "not XDF inside .xdfz":
        return _put(root / "junk.xdfz", gzip.compress(b"hello world" * 100))
    if kind == "garbage .xdfz":
        return _put(root / "garbage.xdfz", b"\x00\x01garbage" * 100)
    if kind == "empty .xdf":
        return _put(root / "empty.xdf", b"")
    if kind == "XDF with a corrupt chunk header":
        raw = bytearray(_xdf_bytes())
        raw[4:40] = b"\xff" * 36  # the first chunk's length/tag bytes
        return _put(root / "bad_chunk.xdf", bytes(raw))
    if kind == ".mat not HDF5":
        return _put(root / "old.mat", b"MATLAB 5.0 MAT-file" + bytes(200))
    if kind == "truncated .mat":
        path = _write_mat(root / "full.mat")
        raw = path.read_bytes()
        return _put(root / "trunc.mat", raw[: len(raw) // 2])
    if kind == ".mat without spikes":
        return _write_mat(root / "nospikes.mat", spikes=False)
    if kind == "unknown extension":
        return _put(root / "rec.csv", b"a,b\n1,2\n")
    if kind == "missing":
        return root / "missing.xdfz"
    raise KeyError(kind)


def _put(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


RECORDING_CASES = {
    "truncated .xdf": ["truncated"],
    "truncated .xdfz": [],  # an error, or (crash-safe gzip members) the intact part: see the test
    "not XDF inside .xdfz": ["not an XDF file"],
    "garbage .xdfz": [],
    "empty .xdf": ["not an XDF file"],
    "XDF with a corrupt chunk header": [],
    ".mat not HDF5": ["v7.3"],
    "truncated .mat": [],
    ".mat without spikes": ["no 'spikes' variable"],
    "unknown extension": ["unknown recording format"],
    "missing": ["not found"],
}


@pytest.mark.parametrize("kind", list(RECORDING_CASES))
def test_bad_recording_in_a_replay(kind, files, capsys):
    recording = _recording(kind, files.root)
    config = files.replay_config(recording)
    code, out, err = run_cli(capsys, "check", config)
    if kind == "truncated .xdfz" and code == 0:
        # a crash-safe .xdfz keeps what was flushed before the cut: a counted policy, not an error
        assert "Traceback" not in err and "replay.spikes" in out
        return
    assert_one_line_error(code, err, "check", f"node 'replay'", str(recording), *RECORDING_CASES[kind])


@pytest.mark.parametrize("kind", ["truncated .xdf", ".mat without spikes", "missing"])
def test_bad_recording_in_evaluate(kind, files, capsys):
    recording = _recording(kind, files.root)
    code, _, err = run_cli(capsys, "evaluate", "--model", MODEL, "--recording", recording)
    assert_one_line_error(code, err, "evaluate", str(recording), *RECORDING_CASES[kind])


# --- model files ------------------------------------------------------------------------------------------------
def _model(kind: str, root: Path) -> Path:
    arrays, meta = load_model(MODEL)
    path = root / f"{kind.replace(' ', '_')}.npz"

    def raw_meta(data: bytes) -> Path:
        with open(path, "wb") as f:
            np.savez(f, **arrays, **{METADATA_KEY: np.frombuffer(data, dtype=np.uint8)})
        return path

    if kind == "no metadata":
        with open(path, "wb") as f:
            np.savez(f, **arrays)
        return path
    if kind == "bad JSON metadata":
        return raw_meta(b"{not json")
    if kind == "metadata not UTF-8":
        return raw_meta(b"\xff\xfe{}")
    if kind == "metadata a JSON list":
        return raw_meta(b"[1, 2, 3]")
    if kind == "metadata without rate_hz":
        return save_model(path, arrays, {k: v for k, v in meta.items() if k != "rate_hz"})
    if kind == "pickled object arrays":
        with open(path, "wb") as f:
            np.savez(f, w=np.array([{"code": "run me"}], dtype=object),
                     **{METADATA_KEY: np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)})
        return path
    if kind == "a recording passed as the model":
        return SAMPLE
    if kind == "a .npy array":
        np.save(root / "single.npy", np.zeros(3))
        return (root / "single.npy").rename(path)
    if kind == "truncated archive":
        return _put(path, MODEL.read_bytes()[:2000])
    if kind == "a controller model":
        return REPO / "models" / "crnn.npz"
    if kind == "missing":
        return root / "missing.npz"
    raise KeyError(kind)


MODEL_CASES = {
    "no metadata": ["no __metadata__ entry"],
    "bad JSON metadata": ["model metadata is not valid JSON"],
    "metadata not UTF-8": ["model metadata is not UTF-8"],
    "metadata a JSON list": ["model metadata must be a JSON object, got a JSON list"],
    "metadata without rate_hz": ["decoder model metadata lacks 'rate_hz'"],
    "pickled object arrays": ["pickled (object) arrays", "never loads pickles"],
    "a recording passed as the model": ["not a spikeloop model file", "looks like a recording"],
    "a .npy array": ["a single .npy array"],
    "truncated archive": ["not a spikeloop model file"],
    "a controller model": ["model family is 'controller'"],
    "missing": ["model file not found"],
}


@pytest.mark.parametrize("kind", list(MODEL_CASES))
def test_bad_model_file_in_a_graph(kind, files, capsys):
    model = _model(kind, files.root)
    config = files.decode_config(model)
    code, _, err = run_cli(capsys, "check", config)
    line = assert_one_line_error(code, err, "check", "node 'decoder'", str(model), *MODEL_CASES[kind])
    assert "allow_pickle" not in line and "pickle.load" not in line  # never suggests unpickling


@pytest.fixture(scope="module")
def recording_32ch(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("rec") / "r32.xdfz"
    assert main(["synth", "--out", str(out), "--channels", "32", "--minutes", "0.25", "--seed", "1"]) == 0
    return out


def test_model_channels_differ_from_the_recording_in_evaluate(recording_32ch, tmp_path, capsys):
    report = tmp_path / "report.json"
    report.write_text('{"kept": true}')
    capsys.readouterr()
    code, _, err = run_cli(capsys, "evaluate", "--model", MODEL, "--recording", recording_32ch, "--json", report)
    assert_one_line_error(code, err, "evaluate", "takes 96 input channels", f"{recording_32ch} has 32")
    assert report.read_text() == '{"kept": true}'  # nothing written before is lost


def test_model_channels_differ_from_the_recording_in_bench_decoder(recording_32ch, capsys):
    capsys.readouterr()
    code, _, err = run_cli(capsys, "bench", "decoder", "--model", MODEL, "--recording", recording_32ch,
                           "--steps", "10", "--repeats", "1")
    assert_one_line_error(code, err, "bench", "takes 96 input channels", "has 32")


def test_bad_model_in_evaluate(files, capsys):
    model = _model("metadata a JSON list", files.root)
    code, _, err = run_cli(capsys, "evaluate", "--model", model, "--recording", SAMPLE)
    assert_one_line_error(code, err, "evaluate", str(model), "must be a JSON object")


# --- live streams -----------------------------------------------------------------------------------------------
LIVE = """
nodes:
  inlet: {kind: lsl_inlet, params: {name: NAME, resolve_timeout_s: 0.5}}
  smooth: {kind: bessel}
  cap: {kind: capture}
edges:
  - inlet -> smooth -> cap
"""


def test_check_does_not_need_the_live_stream(files, capsys):
    config = files.text("live.yaml", LIVE.replace("NAME", "spikeloop_test_absent_stream"))
    code, out, err = run_cli(capsys, "check", config)
    assert code == 0, err
    assert "inlet.out: unknown until --live" in out and "smooth.out: unknown until --live (fed by inlet.out)" in out


def test_absent_live_stream_is_one_line_with_short_timeout(files, capsys):
    config = files.text("live.yaml", LIVE.replace("NAME", "spikeloop_test_absent_stream"))
    code, _, err = run_cli(capsys, "check", config, "--live")
    assert_one_line_error(code, err, "check", "node 'inlet'", "spikeloop_test_absent_stream", "within 0.5 s")


def test_absent_live_stream_in_run(files, capsys):
    config = files.text("live.yaml", LIVE.replace("NAME", "spikeloop_test_absent_stream"))
    code, _, err = run_cli(capsys, "run", config, "--duration", "2", "--no-progress")
    assert_one_line_error(code, err, "run", "node 'inlet'", "spikeloop_test_absent_stream")


# --- nothing written before is lost -----------------------------------------------------------------------------
def test_recorder_refuses_to_overwrite_and_check_writes_nothing(files, capsys):
    existing = files.data("session.xdfz", b"an earlier session, not to be lost")
    config = files.text("rec.yaml", SMALL.replace("  cap: {kind: capture}", f"  cap: {{kind: recorder, params: {{path: {existing}}}}}"))
    code, _, err = run_cli(capsys, "run", config, "--no-progress")
    assert_one_line_error(code, err, "run", "node 'cap'", "exists; set overwrite: true")
    assert existing.read_bytes() == b"an earlier session, not to be lost"
    fresh = files.root / "fresh.xdfz"
    config = files.text("rec2.yaml", SMALL.replace("  cap: {kind: capture}", f"  cap: {{kind: recorder, params: {{path: {fresh}}}}}"))
    code, out, err = run_cli(capsys, "check", config)
    assert code == 0, err
    assert not fresh.exists() and "node cap: not opened: it writes a file" in out


def test_bad_config_leaves_an_earlier_summary_json(files, capsys):
    summary = files.data("summary.json", b'{"earlier": 1}')
    config = files.text("graph.yaml", SMALL.replace("order: 4", "order: 4.5"))
    code, _, err = run_cli(capsys, "run", config, "--json", summary, "--no-progress")
    assert_one_line_error(code, err, "run", "param 'order': expected int, got 4.5")
    assert summary.read_bytes() == b'{"earlier": 1}'


def test_synth_refuses_to_overwrite(files, capsys):
    existing = files.data("old.xdfz", b"earlier")
    code, _, err = run_cli(capsys, "synth", "--out", existing, "--channels", "4", "--minutes", "0.1")
    assert_one_line_error(code, err, "synth", "exists; pass --force")
    assert existing.read_bytes() == b"earlier"


def test_recording_passed_as_the_model_in_evaluate(capsys):
    code, _, err = run_cli(capsys, "evaluate", "--model", SAMPLE, "--recording", SAMPLE)
    line = assert_one_line_error(code, err, "evaluate", str(SAMPLE), "looks like a recording")
    assert "allow_pickle" not in line and "pickle.load" not in line


# --- counted policies -------------------------------------------------------------------------------------------
def test_nonfinite_samples_are_counted_not_fatal(files, capsys):
    """NaN/inf samples in a recording: the run completes and the Bessel filter counts them (its
    documented policy: hold the last finite value), shown in the summary and the JSON."""
    from pipeline.packet import StreamInfo
    from pipeline.recordings.base import RecordedStream, Recording
    from pipeline.recordings.xdf_writer import write_xdf

    data = np.ones((250, 2), dtype=np.float32)
    data[10, 0], data[20, 1], data[30, :] = np.nan, np.inf, -np.inf
    rec = Recording({"x": RecordedStream(StreamInfo("x", "Test", 2, 250.0, "float32"), data, 5.0 + np.arange(250) / 250.0)})
    recording = files.root / "nan.xdf"
    write_xdf(recording, rec)
    config = files.text("nan.yaml", f"""
nodes:
  replay: {{kind: replay, params: {{path: {recording}, speed: max}}}}
  smooth: {{kind: bessel, params: {{cutoff_hz: 20}}}}
  cap: {{kind: capture}}
edges:
  - replay.x -> smooth -> cap
""")
    summary = files.root / "summary.json"
    code, out, err = run_cli(capsys, "run", config, "--json", summary, "--no-progress")
    assert code == 0, err
    assert "Traceback" not in err
    nodes = json.loads(summary.read_text())["nodes"]
    assert nodes["smooth"]["counters"]["nonfinite"] == 4  # 1 + 1 + 2 values
    assert nodes["cap"]["samples_in"] == 250
