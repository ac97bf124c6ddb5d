"""``spikeloop evaluate --jobs N``: (model, recording) pairs as Ray tasks give the serial results.

One real local Ray (loopback, 2 CPUs) for the module; the CLI's fan-out joins it. Recordings are
small generated 96-channel sessions so the bundled 96-channel models apply.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from nodes.decoders.evaluation import LINEAR_BASELINE
from pipeline.cli import main

REPO = Path(__file__).resolve().parents[1]
MODELS = [str(REPO / "models" / "ann_sample.npz"), str(REPO / "models" / "snn_streaming_sample.npz")]
# the fields that time something on the machine that ran it: the ONLY ones allowed to differ
DECODER_TIMING = ("step_us_p50", "step_us_p99", "offline_x_realtime")
CONTROLLER_TIMING = ("float_time_us", "quant_time_us", "time_us_p50", "time_us_p99", "wall_s")



@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    from pipeline.recordings.synth import SynthParams, generate

    out = tmp_path_factory.mktemp("rec")
    paths = []
    for seed, channels in ((1, 96), (2, 96), (3, 16)):
        path = out / f"reach{seed}_{channels}.xdfz"
        generate(path, SynthParams(channels=channels, seed=seed), 60.0, progress=False)
        paths.append(str(path))
    return paths


def _eval(tmp_path, name, recs, *extra):
    out = tmp_path / f"{name}.json"
    rc = main(["evaluate", "--model", *MODELS, "--recording", *recs, "--filter", "causal,block-middle",
               "--json", str(out), *extra])
    assert rc == 0
    return json.loads(out.read_text())


def _strip(report, keys):
    from pipeline.cluster.evaluate import without

    return without(report, set(keys))


def test_timing_fields_are_named_explicitly():
    from pipeline.cluster.evaluate import TIMING_FIELDS

    assert TIMING_FIELDS["decoder"] == DECODER_TIMING
    assert TIMING_FIELDS["controller"] == CONTROLLER_TIMING


def test_jobs_2_equals_serial_decoders(ray_local, recordings, tmp_path, capsys):
    serial = _eval(tmp_path, "serial", recordings[:1])  # the unchanged serial path (no --jobs)
    assert "task(s)" not in capsys.readouterr().out
    fanned = _eval(tmp_path, "jobs2", recordings[:1], "--jobs", "2")
    assert "2 task(s), ray tasks" in capsys.readouterr().out
    # the same layout, the same models in the same order, every non-timing value identical
    assert [m["model"] for m in fanned["models"]] == [LINEAR_BASELINE, *MODELS]  # the ridge row comes first
    for m in serial["models"] + fanned["models"]:
        assert all(key in m for key in DECODER_TIMING)
        # (the bundled models were trained on another simulated session: R² is low, but it is a number)
        assert all(math.isfinite(v) for v in m["r2"].values()) and m["test_steps"] > 0
    assert _strip(fanned, DECODER_TIMING) == _strip(serial, DECODER_TIMING)


def test_several_recordings_one_merged_report(ray_local, recordings, tmp_path, capsys):
    serial = _eval(tmp_path, "serial2", recordings[:2])  # several recordings run serially in-process
    fanned = _eval(tmp_path, "jobs2b", recordings[:2], "--jobs", "2")
    assert "4 task(s), ray tasks" in capsys.readouterr().out
    assert [r["recording"] for r in fanned["recordings"]] == recordings[:2]
    assert [[m["model"] for m in r["models"]] for r in fanned["recordings"]] == [[LINEAR_BASELINE, *MODELS]] * 2
    assert _strip(fanned, DECODER_TIMING) == _strip(serial, DECODER_TIMING)
    # each recording's part equals that recording evaluated alone, serially
    alone = _eval(tmp_path, "alone", recordings[1:2])
    assert _strip(fanned["recordings"][1], DECODER_TIMING) == _strip(alone, DECODER_TIMING)


def test_failing_pair_is_named_in_one_line(ray_local, recordings, tmp_path, capsys):
    # 96-channel models on a 16-channel recording: the decoder node refuses it inside the task
    rc = main(["evaluate", "--model", MODELS[0], "--recording", recordings[0], recordings[2], "--jobs", "2"])
    assert rc == 2
    err = capsys.readouterr().err
    line = err.strip().splitlines()[-1]  # (above it, the progress bar)
    assert line.startswith(f"spikeloop evaluate: error: {MODELS[0]} on {recordings[2]}: ")
    assert "channel count is 16, expected 96" in line
    assert "Traceback" not in err


def test_controllers_closed_loop_per_controller_tasks(ray_local, tmp_path, capsys):
    model = str(REPO / "models" / "crnn_q8.npz")
    worlds = [str(REPO / "configs" / "worlds" / f) for f in ("default.yaml", "corridor.yaml")]
    args = ["evaluate", "--model", model, "--closed-loop", "--worlds", "3", "--episode-s", "4", "--world", *worlds]
    a, b = tmp_path / "serial.json", tmp_path / "jobs.json"
    assert main([*args, "--json", str(a)]) == 0
    assert main([*args, "--json", str(b), "--jobs", "2"]) == 0
    # per family: float, spiking (+ its quantised twin), follow-the-gap, follow-the-gap filled
    assert "8 task(s), ray tasks" in capsys.readouterr().out
    serial, fanned = json.loads(a.read_text()), json.loads(b.read_text())
    fams = serial["closed_loop"]["families"]
    assert list(fams) == list(fanned["closed_loop"]["families"]) and len(fams) == 2
    for name, fam in fams.items():
        other = fanned["closed_loop"]["families"][name]
        assert list(other["controllers"]) == list(fam["controllers"])
        assert list(other["comparisons"]) == list(fam["comparisons"]) and fam["comparisons"]
        assert fam["controllers"][next(iter(fam["controllers"]))]["episodes"] == 3
    assert _strip(fanned, CONTROLLER_TIMING) == _strip(serial, CONTROLLER_TIMING)


def test_executor_refuses_bad_jobs_and_times_out(ray_local):
    from pipeline.cluster.executor import Executor, Task
    from pipeline.errors import UserError

    with pytest.raises(UserError, match="--jobs"):
        Executor(jobs=0)
    with Executor(jobs=2, timeout_s=1.0, progress=False) as ex:
        with pytest.raises(UserError, match="still running after 1 s, cancelled: sleeper"):
            ex.map([Task("sleeper", "time:sleep", (30,))])
        assert ex.map([Task("quick", "math:hypot", (3.0, 4.0))]) == [5.0]
