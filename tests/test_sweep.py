"""``spikeloop sweep``: a real Ray Tune sweep of ``spikeloop train`` on a tiny generated recording.

One local Ray (loopback, 2 CPUs) for the module; the sweeps join it. Trials are ANN decoders,
2 epochs each, on a 1-minute 16-channel recording made with ``spikeloop synth --minutes 1``.
"""
from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from pipeline.cli import main
from pipeline.modelfile import load_model

pytest.importorskip("ray.tune", reason="spikeloop sweep needs ray[tune]")
pytestmark = pytest.mark.slow  # Ray Tune: tens of seconds per sweep on 2 idle cores



@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    path = tmp_path_factory.mktemp("rec") / "tiny.xdfz"
    assert main(["synth", "--out", str(path), "--channels", "16", "--minutes", "1", "--seed", "4", "--no-progress"]) == 0
    return str(path)


def _sweep_file(tmp_path: Path, recording: str, samples: int, scheduler: str, extra: str = "") -> Path:
    f = tmp_path / "tiny_sweep.yaml"
    f.write_text(f"""
model: ann
recording: {recording}
options: {{epochs: 2}}
space:
  lr: {{loguniform: [1.0e-3, 1.0e-2]}}
  seed: {{choice: [0, 1]}}
samples: {samples}
scheduler: {scheduler}
storage: {tmp_path / 'sweeps'}
{extra}
""")
    return f


def _summary(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "sweeps" / "tiny_sweep" / "summary.json").read_text())


def _checkpoints(trial_path: str) -> list[Path]:
    return sorted(Path(trial_path).glob("checkpoint_*"))


def test_tiny_sweep_with_asha_exports_a_loadable_model(ray_local, recording, tmp_path, capsys):
    f = _sweep_file(tmp_path, recording, 2, "{asha: {grace_period: 1, reduction_factor: 2}}")
    assert main(["sweep", str(f)]) == 0
    out = capsys.readouterr().out
    assert "sweep tiny_sweep: ann, 2 trials, metric val_r2 (max)" in out  # the results table
    s = _summary(tmp_path)
    assert len(s["trials"]) == 2 and not s["interrupted"]
    for t in s["trials"]:
        assert t["status"] in ("completed", "stopped by ASHA", "ended early (patience or time limit)")
        assert 1 <= t["epochs"] <= 2
        assert len(_checkpoints(t["path"])) == t["epochs"]  # one model checkpoint per epoch
        assert 1e-3 <= t["config"]["lr"] <= 1e-2 and t["config"]["seed"] in (0, 1)
    best = max(s["trials"], key=lambda t: t["best_val_r2"])
    assert s["best"]["trial"] == best["trial"]
    # the exported file is a normal model file: data only, family/kind, and it is the best epoch's model
    arrays, meta = load_model(s["exported"])
    assert meta["family"] == "decoder" and meta["kind"] == "ann" and meta["channels"] == 16
    assert meta["training"]["sweep"]["config"] == best["config"]
    assert meta["training"]["val_r2"] == pytest.approx(best["best_val_r2"], abs=1e-12)
    from nodes.decoders.data import load_data
    from nodes.decoders.training import validation_r2

    assert validation_r2(arrays, meta, load_data(recording)) == pytest.approx(best["best_val_r2"], abs=1e-6)
    # and the ordinary tools take it
    assert main(["evaluate", "--model", s["exported"], "--recording", recording, "--filter", "causal"]) == 0

    # identical to the serial run: `spikeloop train` with the best trial's options gives the same
    # validation R² at every epoch the trial ran, and the same weights at the exported epoch
    serial = tmp_path / "serial.npz"
    cfg = best["config"]
    assert main(["train", "--model", "ann", "--recording", recording, "--epochs", "2", "--lr", repr(cfg["lr"]),
                 "--seed", str(cfg["seed"]), "--out", str(serial)]) == 0
    s_arrays, s_meta = load_model(serial)
    swept = [json.loads(line) for line in (Path(best["path"]) / "result.json").read_text().splitlines()]
    swept_r2 = {r["epoch"]: r["val_r2"] for r in swept}
    assert swept_r2 == {h["epoch"] + 1: h["val_r2"] for h in s_meta["training"]["history"][:len(swept_r2)]}
    if s_meta["training"]["best_epoch"] + 1 == meta["training"]["sweep"]["epoch"]:
        assert all(np.array_equal(s_arrays[k], arrays[k]) for k in s_arrays) and set(s_arrays) == set(arrays)


def test_sweep_file_errors_name_the_key(recording, tmp_path, capsys):
    f = _sweep_file(tmp_path, recording, 2, "asha", extra="")
    f.write_text(f.read_text().replace("lr: {loguniform", "lrate: {loguniform"))
    assert main(["sweep", str(f)]) == 2
    err = capsys.readouterr().err
    assert "space.lrate: not an option of spikeloop train (did you mean 'lr'?)" in err
    f.write_text(f.read_text().replace("lrate: {loguniform: [1.0e-3, 1.0e-2]}", "lr: {logunifrom: [1.0e-3, 1.0e-2]}"))
    assert main(["sweep", str(f)]) == 2
    assert "space.lr: write one of" in capsys.readouterr().err


def test_interrupted_sweep_resumes_and_completes(ray_local, recording, tmp_path, capsys):
    # 6 short trials one at a time: Ctrl-C comes once the second has started, so trials remain
    # however quickly the tiny ones run (with 3, all had ended before Tune handled the signal once)
    samples = 6
    f = _sweep_file(tmp_path, recording, samples, "fifo", extra="max_concurrent: 1")
    exp = tmp_path / "sweeps" / "tiny_sweep"
    fired = threading.Event()

    def ctrl_c_after_first_trial() -> None:  # a real SIGINT to this process, as Ctrl-C sends
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            if len(list(exp.glob("run_trial_*"))) >= 2:  # one at a time: the first trial has ended
                fired.set()
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.05)

    watcher = threading.Thread(target=ctrl_c_after_first_trial, daemon=True)
    watcher.start()
    rc = main(["sweep", str(f)])
    watcher.join(timeout=5)
    assert fired.is_set()
    assert rc == 130
    assert f"resume with  spikeloop sweep {f} --resume" in capsys.readouterr().out
    first = _summary(tmp_path)
    assert first["interrupted"]
    done_before = {t["trial"]: t for t in first["trials"] if t["status"] == "completed"}
    # one at a time: the first trial had ended when Ctrl-C came; a short trial or two more may end
    # before Tune handles the signal, but not all of them
    assert 1 <= len(done_before) < samples

    # without --resume the directory is not silently reused
    assert main(["sweep", str(f)]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["sweep", str(f), "--resume"]) == 0
    second = _summary(tmp_path)
    assert not second["interrupted"] and len(second["trials"]) == samples
    assert all(t["status"].startswith("completed") and t["epochs"] == 2 for t in second["trials"])
    for trial_id, before in done_before.items():  # finished trials are kept, not trained again
        after = next(t for t in second["trials"] if t["trial"] == trial_id)
        assert after["best_val_r2"] == before["best_val_r2"] and len(_checkpoints(after["path"])) == 2
    assert np.isfinite(second["best"]["best_val_r2"])
    load_model(second["exported"])


def _driver_sweep_file(tmp_path: Path, extra: str = "") -> Path:
    """A tiny DAgger driver sweep: one family, 2 s episodes, the expert round and one DAgger round."""
    from tests.conftest import REPO

    f = tmp_path / "driver_sweep.yaml"
    f.write_text(f"""
model: crnn_driver
options: {{episodes: 1, episode_s: 2, val_episode_s: 2, rounds: 1, val_worlds: 1, epochs: 1, max_minutes: 5,
           worlds_files: [{REPO / 'configs' / 'worlds' / 'default.yaml'}]}}
space:
  lr: {{choice: [1.0e-3]}}
samples: 1
scheduler: fifo
storage: {tmp_path / 'sweeps'}
{extra}
""")
    return f


def test_driver_sweep_reports_validation_collision_free_per_round(ray_local, tmp_path, capsys):
    """crnn_driver trials report once per DAgger round (expert round first) with the worst family's
    validation collision-free rate; the exported file is the best round's model and drives its
    validation world exactly as reported."""
    from nodes.control.driving import _specs, drive_score
    from nodes.control.kernels import CrnnParams
    from nodes.control.simulator import SEED_RANGES

    f = _driver_sweep_file(tmp_path)
    assert main(["sweep", str(f)]) == 0
    out = capsys.readouterr().out
    assert "crnn_driver on the simulator" in out
    assert "metric val_collision_free (max)" in out
    s = json.loads((tmp_path / "sweeps" / "driver_sweep" / "summary.json").read_text())
    assert s["metric"] == "val_collision_free" and s["mode"] == "max" and not s["interrupted"]
    (trial,) = s["trials"]
    assert trial["epochs"] == 2 and trial["status"] == "completed"  # rounds 0 and 1: two reports
    assert len(_checkpoints(trial["path"])) == 2
    assert 0.0 <= trial["best_val_collision_free"] <= 1.0
    arrays, meta = load_model(s["exported"])
    assert meta["family"] == "controller" and meta["levels"] == 8 and meta["timesteps"] >= 1
    assert meta["validation_worst_collision_free"] == trial["best_val_collision_free"]
    assert meta["training"]["sweep"]["config"] == {"lr": 1.0e-3}
    # the exported round, driven again on the same validation world: the rate the trial reported
    assert meta["dagger"]["val_episode_s"] == 2.0
    specs = _specs([str(Path(__file__).resolve().parents[1] / "configs" / "worlds" / "default.yaml")], 2.0)
    score = drive_score(CrnnParams(arrays, meta), specs, [SEED_RANGES["validation"][0]])
    assert score["_key"][0] == trial["best_val_collision_free"]


def test_driver_sweep_file_errors(tmp_path, capsys):
    f = _driver_sweep_file(tmp_path, extra="dataset: /tmp")
    assert main(["sweep", str(f)]) == 2
    assert "model 'crnn_driver' trains in the simulator and reads no dataset" in capsys.readouterr().err
    f.write_text(f.read_text().replace("model: crnn_driver", "model: reflex").replace("dataset: /tmp", ""))
    assert main(["sweep", str(f)]) == 2
    assert "'reflex' cannot be swept" in capsys.readouterr().err
