"""The synthetic reaching generator: seeded, block-invariant, realistic, and the shipped sample."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.cli import main
from pipeline.recordings import load_recording
from pipeline.recordings.reaching import load_reaching, segments_from_target
from pipeline.recordings.synth import ReachingSimulator, SynthParams

SAMPLE = Path(__file__).resolve().parents[1] / "recordings" / "reaching_sample.xdfz"


def _blocks(params: SynthParams, sizes: list[int]) -> dict[str, np.ndarray]:
    sim = ReachingSimulator(params)
    parts = [sim.next_block(n) for n in sizes]
    return {k: np.concatenate([p[k][0] for p in parts]) for k in parts[0]} | {
        "t": np.concatenate([p["spikes"][1] for p in parts])}


def test_same_seed_same_session_any_block_size():
    p = SynthParams(channels=16, seed=11)
    a = _blocks(p, [2500] * 4)
    b = _blocks(p, [1, 999, 3, 4000, 2500, 2497])
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    c = _blocks(SynthParams(channels=16, seed=12), [10000])
    assert not np.array_equal(a["spikes"], c["spikes"])
    # timestamps: exactly t[k] = t[k-1] + 1/250 from 0 s
    assert a["t"][0] == 0.0 and np.all(np.diff(a["t"]) > 0.0039) and np.all(np.diff(a["t"]) < 0.0041)


def test_kinematics_and_rates_are_realistic():
    p = SynthParams(channels=96, seed=3)
    d = _blocks(p, [250 * 120])  # 2 minutes
    speed = np.linalg.norm(d["velocity"], axis=1)
    assert 100 <= np.percentile(speed, 99) <= 350  # peak reach speeds, mm/s
    segs = segments_from_target(d["target"].astype(float))
    lengths = np.diff(np.array(segs), axis=1).ravel() / 250.0
    assert 0.8 <= np.median(lengths) <= 3.5  # reaction + reach + hold, s
    rates = d["spikes"].mean(axis=0) * 250.0  # spikes/s per channel
    assert 3 <= np.median(rates) <= 40
    assert d["spikes"].dtype == np.int16 and d["spikes"].min() >= 0


def test_synth_cli_is_deterministic(tmp_path, capsys):
    args = ["synth", "--channels", "12", "--minutes", "0.25", "--seed", "4", "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "a.xdfz")]) == 0
    assert main([*args, "--out", str(tmp_path / "b.xdfz")]) == 0
    assert (tmp_path / "a.xdfz").read_bytes() == (tmp_path / "b.xdfz").read_bytes()
    rec = load_recording(tmp_path / "a.xdfz", cache=False)
    assert rec.metadata["seed"] == 4 and rec.metadata["params"]["channels"] == 12
    assert rec.stream("spikes").data.shape == (3750, 12)
    assert rec.stream("velocity").info.units == ("mm/s", "mm/s")
    assert main([*args, "--out", str(tmp_path / "a.xdfz")]) == 2  # refuses to overwrite
    assert "exists" in capsys.readouterr().err


def test_shipped_sample_regenerates_sample_identically(tmp_path):
    """The first 20 s of `spikeloop synth --channels 96 --minutes 10 --seed 7` equal a 20 s run."""
    assert SAMPLE.is_file(), "recordings/reaching_sample.xdfz is missing"
    assert SAMPLE.stat().st_size <= 3_000_000
    sample = load_recording(SAMPLE)
    assert sample.metadata["seed"] == 7 and sample.metadata["params"]["channels"] == 96
    assert main(["synth", "--out", str(tmp_path / "short.xdfz"), "--channels", "96", "--minutes", str(20 / 60),
                 "--seed", "7", "--no-progress"]) == 0
    short = load_recording(tmp_path / "short.xdfz", cache=False)
    n = 5000
    for name in ("spikes", "velocity", "target"):
        np.testing.assert_array_equal(short.stream(name).data, sample.stream(name).data[:n])
        np.testing.assert_array_equal(short.stream(name).timestamps, sample.stream(name).timestamps[:n])
        assert short.stream(name).info == sample.stream(name).info


def test_sample_reaching_data_and_split():
    d = load_reaching(SAMPLE)
    assert d.spikes.shape == (150000, 96) and d.velocity.shape == (150000, 2) and d.rate_hz == 250.0
    n = len(d.segments)
    assert n > 200
    assert d.split["train"].stop == d.segments[n // 2][0]
    assert 0.45 <= d.split["train"].stop / 150000 <= 0.55
    assert d.split["test"].stop == 150000


@pytest.mark.parametrize("bad", [["--channels", "0"], ["--minutes", "-1"], ["--out", "x.csv"]])
def test_synth_cli_rejects_bad_options(tmp_path, bad, capsys):
    args = {"--out": str(tmp_path / "x.xdfz"), "--channels": "4", "--minutes": "0.1"}
    args.update(dict(zip(bad[::2], bad[1::2])))
    assert main(["synth", "--no-progress", *[x for kv in args.items() for x in kv]]) == 2
    assert "error" in capsys.readouterr().err
