"""Markdown tables from ``spikeloop evaluate --closed-loop --json`` reports (for docs/RESULTS.md).

    python scripts/closed_loop_tables.py A.json [B.json ...] [--pair X.json Y.json ...]

    python scripts/closed_loop_tables.py --merge A.json B.json --out AB.json

Prints one row per (family, controller) of every report, then the report's own paired comparisons.
``--merge`` joins reports of the same controllers on consecutive test seeds (e.g. ``--seed 0
--worlds 50`` and ``--seed 50 --worlds 50``) into one report: rates, Wilson intervals, cells and
every paired comparison recomputed from the per-episode outcomes; the mean path is the
episode-weighted mean; the median clearance is not kept per episode, so it is left out.
``--pair`` adds paired comparisons ACROSS reports run on the same test seeds: every spiking
controller of the first file against every controller of the others in the same family (e.g. a new
model against the previous model's spiking run and against the follow-the-gap baselines of another
run: baselines do not depend on the model, so ``--baselines none`` runs can reuse them). Refuses
reports whose seeds or episode lengths differ.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nodes.control.evaluation import mcnemar_exact, paired_mean_diff, wilson_ci  # noqa: E402


def _load(path: str) -> dict:
    rep = json.loads(Path(path).read_text())
    if "closed_loop" not in rep:
        raise SystemExit(f"{path}: not a closed-loop report (no 'closed_loop' key)")
    return rep["closed_loop"]


def _cmp_row(fam: str, name: str, cm: dict) -> str:
    lo, hi = cm["difference_ci95"]
    cl, ch = cm["cells"]["difference_ci95"]
    return (f"| {fam} | {name} | {100 * cm['difference']:+.1f} points [{100 * lo:+.1f}, {100 * hi:+.1f}] | "
            f"p = {cm['p_value']:.2g} ({cm['only_first']} vs {cm['only_second']}) | "
            f"{cm['cells']['difference']:+.1f} [{cl:+.1f}, {ch:+.1f}] |")


def tables(paths: list[str], pair: list[str] | None = None) -> str:
    """The markdown of the controller table and the comparison table."""
    rows = ["| family | controller | episode | collision-free [Wilson 95 %] | collisions | cells visited | path m | min clearance p50 |",
            "|---|---|---|---|---|---|---|---|"]
    cmp_rows = []
    for path in paths:
        rep = _load(path)
        for fam, fm in rep["families"].items():
            for c, st in fm["controllers"].items():
                lo, hi = st["collision_free_ci95"]
                note = " (= spiking: identical decisions)" if "identical_to" in st else ""
                clear = st.get("min_clearance_median_m")
                rows.append(f"| {fam} | {c}{note} | {fm['episode_s']:g} s | {100 * st['collision_free_rate']:.1f} % "
                            f"[{100 * lo:.1f}, {100 * hi:.1f}] | {st['collisions']} | {st['mean_cells_visited']:.1f} | "
                            f"{st['mean_path_m']:.1f} | {'—' if clear is None else f'{clear:.2f} m'} |")
                if "quantised_decisions_compared" in st and "identical_to" not in st:
                    cmp_rows.append(f"| {fam} | {c} vs its quantised twin | {st['quantised_decisions_differing']} of "
                                    f"{st['quantised_decisions_compared']} decisions differ (max diff "
                                    f"{st['max_abs_diff_quantised']:.1e}) | | |")
            for c, cm in fm["comparisons"].items():
                cmp_rows.append(_cmp_row(fam, c, cm))
    if pair:
        first, others = _load(pair[0]), [_load(p) for p in pair[1:]]
        for o, p in zip(others, pair[1:]):
            if o["seeds"] != first["seeds"]:
                raise SystemExit(f"{p}: test seeds {o['seeds']} differ from {pair[0]}'s {first['seeds']}: not paired")
        for fam, fm in first["families"].items():
            for a, sa in fm["controllers"].items():
                if not a.startswith("spiking"):
                    continue
                for o, p in zip(others, pair[1:]):
                    fo = o["families"].get(fam)
                    if fo is None:
                        continue
                    if fo["episode_s"] != fm["episode_s"]:
                        raise SystemExit(f"{p}: {fam} episodes of {fo['episode_s']} s, {pair[0]}: {fm['episode_s']} s")
                    for b, sb in fo["controllers"].items():
                        if "identical_to" in sb:
                            continue
                        cm = mcnemar_exact(np.array(sa["per_episode_collisions"]) == 0,
                                           np.array(sb["per_episode_collisions"]) == 0)
                        cm["cells"] = paired_mean_diff(np.array(sa["per_episode_cells"], dtype=float),
                                                       np.array(sb["per_episode_cells"], dtype=float))
                        cmp_rows.append(_cmp_row(fam, f"{a} vs {b} [{Path(p).stem}]", cm))
    head = ["| family | comparison (paired by world) | collision-free difference [95 %] | exact McNemar (discordant) | "
            "cells difference [95 %] |", "|---|---|---|---|---|"]
    return "\n".join(rows) + "\n\n" + "\n".join(head + cmp_rows) + "\n"


def merge(paths: list[str]) -> dict:
    """One closed-loop report from reports on consecutive seed ranges (see the module docstring)."""
    reps = [_load(p) for p in paths]
    reps.sort(key=lambda r: r["seeds"][0])
    for a, b in zip(reps, reps[1:]):
        if b["seeds"][0] != a["seeds"][1] + 1:
            raise SystemExit(f"--merge: seed ranges {a['seeds']} and {b['seeds']} are not consecutive")
    out = {"seeds": [reps[0]["seeds"][0], reps[-1]["seeds"][1]], "timesteps": reps[0].get("timesteps"),
           "sensor_noise": reps[0].get("sensor_noise"), "merged_from": paths, "families": {}}
    for fam, f0 in reps[0]["families"].items():
        parts = [r["families"].get(fam) for r in reps]
        if any(p is None or p["episode_s"] != f0["episode_s"] for p in parts):
            raise SystemExit(f"--merge: family {fam} missing or with another episode length in one of {paths}")
        controllers = {}
        for name in f0["controllers"]:
            sts = [p["controllers"].get(name) for p in parts]
            if any(st is None for st in sts):
                continue  # a controller some part did not finish
            coll = sum((st["per_episode_collisions"] for st in sts), [])
            cells = sum((st["per_episode_cells"] for st in sts), [])
            n, free = len(coll), sum(c == 0 for c in coll)
            controllers[name] = {
                "episodes": n, "collision_free_rate": free / n, "collision_free_ci95": list(wilson_ci(free, n)),
                "collisions": int(sum(coll)), "mean_cells_visited": float(np.mean(cells)),
                "mean_path_m": float(sum(st["mean_path_m"] * st["episodes"] for st in sts) / n),
                "min_clearance_median_m": None, "per_episode_collisions": coll, "per_episode_cells": cells}
            for key in ("quantised_decisions_compared", "quantised_decisions_differing"):
                if all(key in st for st in sts):
                    controllers[name][key] = int(sum(st[key] for st in sts))
            if all("max_abs_diff_quantised" in st for st in sts):
                controllers[name]["max_abs_diff_quantised"] = max(st["max_abs_diff_quantised"] for st in sts)
            if all("identical_to" in st for st in sts):
                controllers[name]["identical_to"] = sts[0]["identical_to"]
        comparisons = {}
        for cname in f0["comparisons"]:
            a, _, b = cname.partition(" vs ")
            if a in controllers and b in controllers:
                cm = mcnemar_exact(np.array(controllers[a]["per_episode_collisions"]) == 0,
                                   np.array(controllers[b]["per_episode_collisions"]) == 0)
                cm["cells"] = paired_mean_diff(np.array(controllers[a]["per_episode_cells"], dtype=float),
                                               np.array(controllers[b]["per_episode_cells"], dtype=float))
                comparisons[cname] = cm
        out["families"][fam] = {"world": f0.get("world"), "episode_s": f0["episode_s"], "controllers": controllers,
                                "comparisons": comparisons}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("reports", nargs="*", help="closed-loop JSON reports (spikeloop evaluate --closed-loop --json)")
    ap.add_argument("--pair", nargs="+", metavar="JSON", help="FIRST OTHER...: cross-report paired comparisons")
    ap.add_argument("--merge", nargs="+", metavar="JSON", help="join reports on consecutive seed ranges into --out")
    ap.add_argument("--out", metavar="JSON", help="where --merge writes the joined report")
    a = ap.parse_args(argv)
    if a.merge:
        if not a.out:
            raise SystemExit("--merge needs --out JSON")
        Path(a.out).write_text(json.dumps({"closed_loop": merge(a.merge)}, indent=2))
        print(f"merged {len(a.merge)} reports -> {a.out}")
        return 0
    sys.stdout.write(tables(a.reports, a.pair))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
