"""Graphs every runner must run identically (compared by the capture node's SHA-256).

- ``ticking``: a recorded irregular spike-event stream replayed at ``speed: max`` into an
  ``event_binner`` (ticks on the graph clock close bins with no event) in its own group;
- ``two_inputs``: one recording's two streams filtered in two groups, then captured by one node
  with two input ports (fed from two groups);
- ``loop``: ``configs/collision_sim.yaml`` (simulator ~> controller feedback edge), a short
  episode, with the controller's commands and the simulator's scans captured;
- ``chain``: replay -> select -> Bessel -> capture (for restarts: every node its own group).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from pipeline.packet import StreamInfo
from pipeline.recordings.base import RecordedStream, Recording
from pipeline.recordings.synth import SynthParams, generate
from pipeline.recordings.xdf_writer import write_xdf

REPO = Path(__file__).resolve().parents[1]


def event_recording(path: Path, seconds: float = 4.0, seed: int = 5) -> Path:
    """Poisson spike events (columns channel, unit) on 4 channels, with silent stretches."""
    rng = np.random.default_rng(seed)
    stamps = np.sort(rng.uniform(0.0, seconds, int(300 * seconds)))
    stamps = stamps[(stamps % 1.0) < 0.7]  # 0.3 s of silence each second: bins close on ticks only
    rows = np.stack([rng.integers(0, 4, stamps.size), rng.integers(0, 2, stamps.size)], axis=1).astype(np.int32)
    info = StreamInfo("ev", "SpikeEvents", 2, 0.0, "int32", ("channel", "unit"), ("index", "index"))
    write_xdf(path, Recording({"ev": RecordedStream(info, rows, 10.0 + stamps)}))
    return path


def synth_recording(path: Path, seconds: float = 6.0) -> Path:
    return generate(path, SynthParams(channels=8, seed=11), duration_s=seconds, progress=False)


def ticking(events: Path, runner: str = "local") -> str:
    return f"""
name: ticking
nodes:
  replay: {{kind: replay, params: {{path: {events}, streams: [ev], speed: max, chunk_s: 0.02}}}}
  bin:    {{kind: event_binner, params: {{bin_s: 0.01, channels: 4, lateness_s: 0.005}}}}
  cap:    {{kind: capture}}
edges:
  - replay.ev -> bin -> cap
runtime: {{runner: {runner}}}
"""


def two_inputs(recording: Path, speed: str = "max", extra: str = "") -> str:
    return f"""
name: two_inputs
nodes:
  replay: {{kind: replay, params: {{path: {recording}, streams: [spikes, velocity], speed: {speed}, chunk_s: 0.02}}}}
  pick:   {{kind: select_channels, params: {{channels: [0, 3]}}}}
  fa:     {{kind: bessel, params: {{order: 2, cutoff_hz: 20}}}}
  fb:     {{kind: bessel, params: {{order: 4, cutoff_hz: 6.25}}}}
  cap:    {{kind: capture, params: {{streams: [a, b]}}}}
edges:
  - replay.spikes -> pick -> fa -> cap.a
  - replay.velocity -> fb -> cap.b
{extra}"""


def loop(tmp: Path, episode_s: float = 3.0) -> str:
    """``configs/collision_sim.yaml`` with a short episode, no picture, and a capture node."""
    doc = yaml.safe_load((REPO / "configs" / "collision_sim.yaml").read_text())
    sim = doc["nodes"]["sim"]["params"]
    sim.update(episode_s=episode_s, picture=None, world=str(REPO / sim["world"]))
    ctl = doc["nodes"]["controller"]["params"]
    ctl["model"] = str(REPO / ctl["model"])
    doc["nodes"]["cap"] = {"kind": "capture", "params": {"streams": ["cmd", "scan"]}}
    doc["edges"] += ["controller -> cap.cmd", "sim.scan -> cap.scan"]
    return yaml.safe_dump(doc)
