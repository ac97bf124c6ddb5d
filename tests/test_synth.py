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


def test_kinematics_and_spikes_match_the_calibration():
    """Continuous reaching (little stillness), ~0.7 s per target, 0/1 bins, ~100 ms neural lead."""
    from pipeline.recordings.synth_describe import STILL_MM_S, lead_ms

    p = SynthParams(channels=96, seed=3)
    d = _blocks(p, [250 * 120])  # 2 minutes
    speed = np.linalg.norm(d["velocity"], axis=1)
    assert 100 <= np.percentile(speed, 99) <= 350  # peak reach speeds, mm/s
    assert 0.05 <= np.mean(speed < STILL_MM_S) <= 0.2  # continuous reaching, no pauses between targets
    segs = segments_from_target(d["target"].astype(float))
    lengths = np.diff(np.array(segs), axis=1).ravel() / 250.0
    assert 0.5 <= np.median(lengths) <= 1.2  # time per target, s (no holds, no inter-trial interval)
    tx = np.unique(d["target"][:, 0])
    assert len(tx) == p.grid_n and np.allclose(np.diff(tx), p.grid_pitch_mm)  # targets on the grid
    spikes = d["spikes"]
    assert spikes.dtype == np.int16 and set(np.unique(spikes)) == {0, 1}  # units ORed per channel
    assert 0.05 <= np.median(spikes.mean(axis=0)) <= 0.2
    assert 60 <= lead_ms(spikes, d["velocity"], 250.0) <= 160  # M1 leads movement by ~100 ms


def test_units_or_into_channels_with_poisson_statistics():
    """P(bin = 1) equals 1 - exp(-sum of the channel's unit rates * 4 ms) (checked on a still hand)."""
    p = SynthParams(channels=8, seed=5, untuned_fraction=1.0, drift_sd=0.0, shared_sd=0.0)
    sim = ReachingSimulator(p)
    d = sim.next_block(250 * 200)
    lam = np.zeros(p.channels)
    np.add.at(lam, sim.channel_of_unit, sim.baseline / 250.0)
    want = -np.expm1(-lam)
    got = d["spikes"][0].mean(axis=0)
    n = d["spikes"][0].shape[0]
    assert np.all(np.abs(got - want) < 4 * np.sqrt(want * (1 - want) / n) + 1e-9), (got, want)
    assert sim.is_hash.sum() == p.channels  # one unsorted multi-unit per channel


def test_drift_is_small_beside_the_velocity_signal():
    """Slow drift is a fraction of the tuned log-rate signal (the old generator's gain noise was 6x it)."""
    p = SynthParams(channels=96, seed=2)
    sim = ReachingSimulator(p)
    d = sim.next_block(250 * 60)
    v = d["velocity"][0].astype(float)
    tuned = sim.tuned & ~sim.is_hash
    signal = np.std(v @ sim.pref[tuned].T * (sim.depth[tuned] / 100.0), axis=0)
    ratio = p.drift_sd / np.median(signal)
    assert ratio < 2.0, ratio


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
    assert SAMPLE.stat().st_size <= 3_500_000
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
    assert n > 600  # continuous reaching: about 0.7 s per target
    assert d.split["train"].stop == d.segments[n // 2][0]
    assert 0.45 <= d.split["train"].stop / 150000 <= 0.55
    assert d.split["test"].stop == 150000


def test_describe_prints_statistics_beside_targets(capsys, tmp_path):
    assert main(["synth", "--describe", str(SAMPLE), "--json", str(tmp_path / "s.json")]) == 0
    out = capsys.readouterr().out
    assert "ridge on 256 ms" in out and "Paninski" in out
    import json

    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["max_value"] == 1 and stats["segments"] > 600
    assert 0.45 <= stats["ridge_256ms_r2"] <= 0.7  # hard enough to rank decoders, far from 1
    assert stats["ridge_1bin_r2"] < 0.15  # one 0/1 bin says little: decoders need memory
    from pipeline.recordings.synth_describe import TARGETS

    for t in TARGETS:  # the shipped sample meets every calibration target
        assert t.lo <= stats[t.key] <= t.hi, (t.key, stats[t.key])


@pytest.mark.parametrize("bad", [["--channels", "0"], ["--minutes", "-1"], ["--out", "x.csv"]])
def test_synth_cli_rejects_bad_options(tmp_path, bad, capsys):
    args = {"--out": str(tmp_path / "x.xdfz"), "--channels": "4", "--minutes": "0.1"}
    args.update(dict(zip(bad[::2], bad[1::2])))
    assert main(["synth", "--no-progress", *[x for kv in args.items() for x in kv]]) == 2
    assert "error" in capsys.readouterr().err
