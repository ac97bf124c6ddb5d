"""Same graph + same recording at ``speed: max`` -> identical outputs on local, ray and ray-compiled.

The graph is the offline decoding chain (replay -> SNN decoder -> Bessel) plus the recorded
velocity on a second capture port; the decoder and filter are fused in one actor on one Ray
runner and each in its own actor on the other, so both in-actor and between-actor hops are
compared against the local runner, sample for sample (SHA-256 of data and timestamps).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.graph import load_graph
from pipeline.recordings.synth import SynthParams, generate
from pipeline.runners import get_runner
from pipeline.runners.ray_runner import ensure_ray

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "models" / "snn_streaming_sample.npz"

GRAPH = """
name: equivalence
nodes:
  replay:  {{kind: replay, params: {{path: {recording}, streams: [spikes, velocity], speed: max, chunk_s: 0.02}}}}
  decoder: {{kind: decoder, params: {{model: {model}}}}}
  smooth:  {{kind: bessel, params: {{order: 4, cutoff_hz: 6.25, mode: causal}}}}
  cap:     {{kind: capture, params: {{streams: [pred, "true"]}}}}
edges:
  - replay.spikes -> decoder -> smooth -> cap.pred
  - replay.velocity -> cap.true
runtime:
  fuse: {fuse}
"""



@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("rec") / "short.xdf"
    return generate(path, SynthParams(channels=96, seed=11), duration_s=6.0, progress=False)


def summary_for(runner: str, recording: Path, fuse: str, tmp_path: Path) -> dict:
    config = tmp_path / f"{runner}.yaml"
    config.write_text(GRAPH.format(recording=recording, model=MODEL, fuse=fuse))
    return get_runner(runner)(load_graph(config), progress=False)


@pytest.mark.skipif(not MODEL.exists(), reason="sample decoder model not in the tree")
def test_local_ray_and_compiled_give_identical_outputs(ray_local, recording, tmp_path):
    local = summary_for("local", recording, "[]", tmp_path)
    ray_split = summary_for("ray", recording, "[]", tmp_path)
    compiled = summary_for("ray-compiled", recording, "[[decoder, smooth]]", tmp_path)

    ref = local["reports"]["cap"]
    assert ref["pred.samples"] == ref["true.samples"] == 1500
    for other in (ray_split, compiled):
        assert other["reports"]["cap"] == ref, other["runner"]
        assert other["source_samples"] == local["source_samples"]
        for name, node in local["nodes"].items():
            theirs = other["nodes"][name]
            for key in ("packets_in", "samples_in", "packets_out", "samples_out", "gaps", "counters"):
                assert theirs[key] == node[key], (other["runner"], name, key)
    assert len(set(g["pid"] for g in ray_split["groups"].values())) == 4  # every node its own actor
    assert set(compiled["groups"]) == {"replay", "decoder+smooth", "cap"}
    # the runtime path never imports torch, in any actor (Ray's compiled channels included)
    assert not any(g["torch_imported"] for s in (ray_split, compiled) for g in s["groups"].values())


# --- every graph shape: ticking, two inputs from two actors, closed loop --------------------------
from tests import runner_graphs as graphs  # noqa: E402


def run_text(runner: str, text: str, tmp_path: Path, name: str) -> dict:
    config = tmp_path / f"{name}_{runner}.yaml"
    config.write_text(text)
    return get_runner(runner)(load_graph(config), progress=False)


@pytest.mark.parametrize("runner", ["ray", "ray-compiled"])
def test_ticking_binner_at_speed_max_matches_local(ray_local, tmp_path, runner):
    events = graphs.event_recording(tmp_path / "events.xdf")
    local = run_text("local", graphs.ticking(events), tmp_path, "ticking")
    other = run_text(runner, graphs.ticking(events), tmp_path, "ticking")
    assert local["reports"]["cap"]["samples"] > 350
    assert other["reports"]["cap"] == local["reports"]["cap"]
    assert len(other["groups"]) == 3


@pytest.mark.parametrize("runner", ["ray", "ray-compiled"])
def test_node_fed_from_two_actors_matches_local(ray_local, recording, tmp_path, runner):
    text = graphs.two_inputs(recording)
    local = run_text("local", text, tmp_path, "two")
    other = run_text(runner, text, tmp_path, "two")
    assert other["reports"]["cap"] == local["reports"]["cap"]
    assert {"fa", "fb", "cap"} <= set(other["groups"])  # cap's two inputs come from two actors


@pytest.mark.parametrize("runner", ["ray", "ray-compiled"])
def test_closed_loop_matches_local(ray_local, tmp_path, runner):
    text = graphs.loop(tmp_path, episode_s=2.0)
    local = run_text("local", text, tmp_path, "loop")
    other = run_text(runner, text, tmp_path, "loop")

    def data(summary: dict) -> dict:  # the simulator stamps on the wall clock: compare the data
        return {k: v for k, v in summary["reports"]["cap"].items() if "samples" in k or "data_sha256" in k}

    assert data(local)["cmd.samples"] == 40
    assert data(other) == data(local)
    assert other["reports"]["sim"] == local["reports"]["sim"]
    assert other["stopped_by"] == "end of data"
