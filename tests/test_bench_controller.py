"""`spikeloop bench controller`: any number of decisions (episodes are chained), same outputs everywhere."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import yaml

from benchmarks.controller import run
from pipeline.errors import UserError

REPO = Path(__file__).resolve().parents[1]


def test_bench_controller_times_more_decisions_than_one_episode_holds(tmp_path):
    """A 1 s world (20 steps) and 50 decisions: the scans come from three chained episodes; every
    implementation's output agrees with the shipped kernel's."""
    spec = yaml.safe_load((REPO / "configs" / "worlds" / "default.yaml").read_text())
    spec["episode_s"] = 1.0
    world = tmp_path / "short.yaml"
    world.write_text(yaml.safe_dump(spec))
    out = tmp_path / "bench.json"
    args = argparse.Namespace(model=str(REPO / "models" / "crnn_driver_q8.npz"), timesteps=[10], decisions=50,
                              dataset=None, world=str(world), json_path=str(out))
    assert run(args) == 0
    res = json.loads(out.read_text())
    r = res["timesteps"]["10"]
    assert res["decisions"] == 50 and r["max_abs_diff"] < 1e-9
    assert 0 < r["numpy_p50_us"] <= r["numpy_p99_us"]
    with pytest.raises(UserError, match="--decisions"):
        run(argparse.Namespace(**{**vars(args), "decisions": 0}))
