"""``PYTHONPATH=. python benchmarks/checkpoint_split.py`` (ray runner, about 4 min).

3 interleaved pairs of ``configs/replay_decode.yaml`` runs (as ``spikeloop bench restarts``'s
cost part): checkpoints every 5 s with restarts on (warm spare actor, senders keep batches)
against checkpoints every 5 s with ``max_restarts: 0`` (no spare, nothing kept). Separates the
cost of taking checkpoints from the cost of being ready to restart. Prints samples/s per run and
the per-pair cost.
"""
import os, statistics, tempfile, time
from pathlib import Path
from benchmarks.restarts import _with_capture
from pipeline.graph import load_graph
from pipeline.runners import ray_runner
ray_runner.ensure_ray({}, None)
print(time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load", os.getloadavg(), flush=True)
rates = {"restarts": [], "no_restarts": []}
with tempfile.TemporaryDirectory() as tmp:
    for i in range(3):
        for mode in (("restarts", "no_restarts") if i % 2 == 0 else ("no_restarts", "restarts")):
            mr = 3 if mode == "restarts" else 0
            spec = load_graph("configs/replay_decode.yaml", ["runtime.fuse=[]", "runtime.checkpoint_s=5", f"runtime.max_restarts={mr}"])
            spec = _with_capture(spec, Path(tmp) / f"{mode}{i}.yaml", 300)
            s = ray_runner.run(spec, progress=False)
            rates[mode].append(s["samples_per_s"])
            print(f"pair {i+1} {mode}: {s['samples_per_s']:,.0f} samples/s ({s['wall_s']:.1f} s; checkpoints {s['checkpoints']['count']}; load {os.getloadavg()[0]:.1f})", flush=True)
pairs = [100 * (1 - a / b) for a, b in zip(rates["restarts"], rates["no_restarts"])]
print("per-pair cost of restarts-ready vs checkpoints only (%):", [round(x, 1) for x in pairs], "median", round(statistics.median(pairs), 1))
print("load after", os.getloadavg(), flush=True)
