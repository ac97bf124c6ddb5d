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


def test_merge_joins_consecutive_seed_ranges_and_recomputes_the_statistics(tmp_path):
    mod = _module()
    ctl = {"spiking T=10 (m)": _stats([0] * 9 + [1], [20] * 10), "follow-the-gap, invalid returns filled": _stats([0] * 10, [19] * 10)}
    a = _report(tmp_path / "a.json", ctl, seeds=(1_000_000, 1_000_009))
    ctl2 = {"spiking T=10 (m)": _stats([0] * 10, [22] * 10), "follow-the-gap, invalid returns filled": _stats([2] + [0] * 9, [19] * 10)}
    b = _report(tmp_path / "b.json", ctl2, seeds=(1_000_010, 1_000_019))
    for p in (a, b):  # give them a comparison to recompute
        rep = json.loads(Path(p).read_text())
        rep["closed_loop"]["families"]["rooms"]["comparisons"] = {"spiking T=10 (m) vs follow-the-gap, invalid returns filled": {}}
        Path(p).write_text(json.dumps(rep))
    m = mod.merge([b, a])  # order does not matter
    assert m["seeds"] == [1_000_000, 1_000_019]
    st = m["families"]["rooms"]["controllers"]["spiking T=10 (m)"]
    assert st["episodes"] == 20 and st["collision_free_rate"] == 0.95 and st["mean_cells_visited"] == 21.0
    cm = m["families"]["rooms"]["comparisons"]["spiking T=10 (m) vs follow-the-gap, invalid returns filled"]
    assert (cm["only_first"], cm["only_second"]) == (1, 1) and cm["cells"]["difference"] == 2.0
    gap = _report(tmp_path / "gap.json", ctl, seeds=(1_000_030, 1_000_039))
    with pytest.raises(SystemExit, match="not consecutive"):
        mod.merge([a, gap])
