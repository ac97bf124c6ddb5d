"""scripts/closed_loop_tables.py: RESULTS tables from closed-loop JSON reports, paired across reports."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "closed_loop_tables.py"


def _module():
    spec = importlib.util.spec_from_file_location("closed_loop_tables", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _stats(coll: list[int], cells: list[int]) -> dict:
    n = len(coll)
    free = sum(c == 0 for c in coll)
    return {"episodes": n, "collision_free_rate": free / n, "collision_free_ci95": [0.0, 1.0], "collisions": sum(coll),
            "mean_cells_visited": sum(cells) / n, "mean_path_m": 1.0, "min_clearance_median_m": 0.3,
            "per_episode_collisions": coll, "per_episode_cells": cells}


def _report(path: Path, controllers: dict, seeds=(1_000_000, 1_000_009), episode_s=60.0) -> str:
    rep = {"closed_loop": {"seeds": list(seeds), "families": {"rooms": {"episode_s": episode_s, "controllers": controllers,
                                                                       "comparisons": {}}}}}
    path.write_text(json.dumps(rep))
    return str(path)


def test_tables_pair_a_new_model_with_another_reports_baseline(tmp_path):
    mod = _module()
    new = _report(tmp_path / "new.json", {"spiking T=10 (new)": _stats([0] * 10, [20] * 10)})
    old = _report(tmp_path / "old.json", {"follow-the-gap, invalid returns filled": _stats([1, 1] + [0] * 8, [18] * 10)})
    md = mod.tables([new, old], pair=[new, old])
    assert "| rooms | spiking T=10 (new) | 60 s | 100.0 %" in md
    row = next(line for line in md.splitlines() if "vs follow-the-gap, invalid returns filled [old]" in line)
    assert "+20.0 points" in row and "(2 vs 0)" in row  # only the new one collision-free in 2 worlds and "+2.0 [+2.0, +2.0]" in row
    # different test seeds are not paired
    other = _report(tmp_path / "other.json", {"x": _stats([0] * 10, [1] * 10)}, seeds=(1_000_100, 1_000_109))
    with pytest.raises(SystemExit, match="not paired"):
        mod.tables([], pair=[new, other])
