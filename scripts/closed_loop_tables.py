"""Markdown tables from ``spikeloop evaluate --closed-loop --json`` reports (for docs/RESULTS.md).

    python scripts/closed_loop_tables.py A.json [B.json ...] [--pair X.json Y.json ...]

Prints one row per (family, controller) of every report, then the report's own paired comparisons.
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

from nodes.control.evaluation import mcnemar_exact, paired_mean_diff  # noqa: E402


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
                rows.append(f"| {fam} | {c}{note} | {fm['episode_s']:g} s | {100 * st['collision_free_rate']:.1f} % "
                            f"[{100 * lo:.1f}, {100 * hi:.1f}] | {st['collisions']} | {st['mean_cells_visited']:.1f} | "
                            f"{st['mean_path_m']:.1f} | {st['min_clearance_median_m']:.2f} m |")
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("reports", nargs="*", help="closed-loop JSON reports (spikeloop evaluate --closed-loop --json)")
    ap.add_argument("--pair", nargs="+", metavar="JSON", help="FIRST OTHER...: cross-report paired comparisons")
    a = ap.parse_args(argv)
    sys.stdout.write(tables(a.reports, a.pair))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
