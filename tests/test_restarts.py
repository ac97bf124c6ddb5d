"""Actor deaths on the ``ray`` runner: checkpoints, restarts, re-sent packets, max_restarts.

A node's actor process is SIGKILLed mid-run (its pid comes from the runner's observer): a replay
at ``speed: max`` then gives outputs SHA-256-identical to an uninterrupted run; a live LSL run
resumes its output; past ``runtime.max_restarts`` the run stops naming the node and still returns
the summary of what ran.
"""
from __future__ import annotations

import os
import signal
import threading
import time
import uuid

import numpy as np
import pylsl
import pytest

from pipeline.graph import load_graph
from pipeline.lsl import to_lsl_info
from pipeline.packet import StreamInfo
from pipeline.runners import ray_runner
from pipeline.runners.local import run as run_local
from pipeline.runners.ray_runner import ensure_ray
from tests import runner_graphs as graphs



@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    return graphs.synth_recording(tmp_path_factory.mktemp("syn") / "syn.xdf", seconds=40.0)


@pytest.fixture(scope="module")
def short_recording(tmp_path_factory):
    """For ray-compiled (one round per 20 ms packet, a few ms a round on this machine)."""
    return graphs.synth_recording(tmp_path_factory.mktemp("syn") / "short.xdf", seconds=12.0)


class Killer:
    """Observer that SIGKILLs ``group``'s actor after its ``after``-th checkpoint (once per kill)."""

    def __init__(self, group: str, after: int = 1, kills: int = 1) -> None:
        self.group, self.after, self.kills = group, after, kills
        self.pids: dict[str, int] = {}
        self.checkpoints = 0
        self.killed: list[float] = []
        self.killed_lsl: list[float] = []
        self.parts: list[dict] = []
        self.events: list[str] = []

    def __call__(self, event: str, info: dict) -> None:
        self.events.append(event)
        if event == "started":
            self.pids.update(info["pids"])
        elif event == "restarted":
            self.pids[info["group"]] = info["pid"]
            self.parts.append(info["parts_s"])
            self.checkpoints = 0
        elif event == "checkpoint" and info["group"] == self.group:
            self.checkpoints += 1
            if self.checkpoints == self.after and len(self.killed) < self.kills:
                self.killed.append(time.monotonic())
                self.killed_lsl.append(pylsl.local_clock())
                os.kill(self.pids[self.group], signal.SIGKILL)


FUSED = "runtime: {checkpoint_s: 0.3, fuse: [[pick, fa], [fb, cap]]}"


@pytest.mark.parametrize("group", ["pick+fa", "replay"])
def test_killed_actor_mid_replay_gives_identical_outputs(ray_local, recording, write_config, group):
    path = write_config(graphs.two_inputs(recording, extra=FUSED))
    local = run_local(load_graph(path), progress=False)
    killer = Killer(group)
    summary = ray_runner.run(load_graph(path), progress=False, observer=killer)
    assert killer.killed, "the run ended before the first checkpoint"
    assert summary["restarts"] == {group: 1}
    assert summary["stopped_by"] == "end of data"
    assert summary["reports"]["cap"] == local["reports"]["cap"]
    assert summary["duplicates_dropped"] >= 0
    assert all(n["gaps"] == 0 for n in summary["nodes"].values())


def test_past_max_restarts_the_run_stops_naming_the_node(ray_local, recording, write_config):
    path = write_config(graphs.two_inputs(recording, extra=FUSED.replace("}", ", max_restarts: 0}", 1)))
    killer = Killer("pick+fa")
    summary = ray_runner.run(load_graph(path), progress=False, observer=killer)
    assert killer.killed
    assert "nodes 'pick', 'fa' died 1 times" in summary["failure"] and "max_restarts is 0" in summary["failure"]
    assert summary["stopped_by"].startswith("failure")
    assert summary["restarts"] == {"pick+fa": 1}
    # what ran is still summarised: the other nodes' counts, fa's from its last checkpoint
    assert summary["nodes"]["replay"]["samples_out"] > 0 and summary["nodes"]["fa"]["samples_in"] > 0


@pytest.mark.parametrize("runner", ["ray", "ray-compiled"])
def test_live_run_resumes_output_after_a_restart(ray_local, write_config, runner):
    from pipeline.runners import get_runner

    run = get_runner(runner)
    tag = uuid.uuid4().hex[:8]
    src, out = f"rs_in_{tag}", f"rs_out_{tag}"
    outlet = pylsl.StreamOutlet(to_lsl_info(StreamInfo(src, "Test", 2, 250.0, "float32", source_id=f"sid-{tag}")))
    config = f"""
name: live_restart
nodes:
  inlet:  {{kind: lsl_inlet, params: {{name: {src}, clock_sync: false, resolve_timeout_s: 10}}}}
  smooth: {{kind: bessel, params: {{order: 2, cutoff_hz: 20}}}}
  outlet: {{kind: lsl_outlet, params: {{name: {out}}}}}
edges:
  - inlet -> smooth -> outlet
runtime:
  fuse: [[inlet, smooth, outlet]]
  checkpoint_s: 0.5
"""
    killer = Killer("inlet+smooth+outlet", after=2)
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(
        run(load_graph(write_config(config)), progress=False, duration_s=12.0, observer=killer)))
    thread.start()
    stop = threading.Event()

    def push() -> None:
        while not stop.is_set():
            outlet.push_chunk(np.ones((5, 2), dtype=np.float32), pylsl.local_clock())
            time.sleep(0.02)

    pusher = threading.Thread(target=push, daemon=True)
    pusher.start()
    found = pylsl.resolve_byprop("name", out, 1, 20.0)
    assert found, "the graph's outlet did not appear"
    client = pylsl.StreamInlet(found[0], recover=True)
    stamps: list[float] = []
    deadline = time.monotonic() + 14.0
    while thread.is_alive() and time.monotonic() < deadline:
        _, ts = client.pull_chunk(timeout=0.05)
        stamps.extend(ts)
    stop.set()
    thread.join(20.0)
    assert not thread.is_alive()
    assert killer.killed, "no checkpoint came before the end"
    # a live graph runs only once its spare has prepared: the spare's start-up is not in the session
    assert killer.events.index("spare_ready") < killer.events.index("checkpoint")
    assert result["restarts"] == {"inlet+smooth+outlet": 1}
    assert result["restart_s"]["inlet+smooth+outlet"] > 0
    assert result["stopped_by"] == "duration 12 s"
    # output resumes: samples pushed after the kill (their stamps are the pusher's clock) come out
    after = [t for t in stamps if t > killer.killed_lsl[0]]
    assert after, "no output after the restart"
    # where the restart's time went is reported (noticed after the kill; the new actor's parts)
    parts = killer.parts[0]
    assert parts["noticed_at"] >= killer.killed[0]
    assert {"configure", "open", "restore"} <= set(parts) and all(parts[k] >= 0 for k in ("configure", "open", "restore"))
    if runner == "ray-compiled":
        assert {"teardown", "compile", "replay"} <= set(parts)
    print(f"live output resumed with a sample pushed {after[0] - killer.killed_lsl[0]:.3f} s after the kill")


@pytest.mark.parametrize("group", ["pick+fa", "replay"])
def test_compiled_killed_actor_mid_replay_gives_identical_outputs(ray_local, short_recording, write_config, group):
    """ray-compiled: the compiled graph is torn down, the dead group recreated from its checkpoint,
    its lost rounds replayed, the graph recompiled; the outputs equal an uninterrupted run's."""
    from pipeline.runners import ray_compiled

    path = write_config(graphs.two_inputs(short_recording, extra=FUSED))
    local = run_local(load_graph(path), progress=False)
    killer = Killer(group, after=2)
    t0 = time.monotonic()
    summary = ray_compiled.run(load_graph(path), progress=False, observer=killer)
    print(f"compiled run with a restart of {group}: {time.monotonic() - t0:.1f} s, restart_s {summary['restart_s']}")
    assert killer.killed, "the run ended before the first checkpoint"
    assert summary["restarts"] == {group: 1}
    assert summary["stopped_by"] == "end of data"
    assert "failure" not in summary
    assert summary["reports"]["cap"] == local["reports"]["cap"]
    assert all(n["gaps"] == 0 for n in summary["nodes"].values())


def test_compiled_past_max_restarts_stops_naming_the_node(ray_local, short_recording, write_config):
    """ray-compiled with max_restarts 0: a SIGKILLed actor ends the run within bounded time, with
    one line naming its nodes and the summary of what ran (the dead group's from its checkpoint)."""
    from pipeline.runners import ray_compiled

    path = write_config(graphs.two_inputs(short_recording, extra=FUSED.replace("}", ", max_restarts: 0}", 1)))
    killer = Killer("pick+fa")
    t0 = time.monotonic()
    summary = ray_compiled.run(load_graph(path), progress=False, observer=killer)
    assert time.monotonic() - t0 < 120
    assert killer.killed
    assert "nodes 'pick', 'fa' died 1 times" in summary["failure"] and "max_restarts is 0" in summary["failure"]
    assert summary["stopped_by"].startswith("failure")
    assert summary["restarts"] == {"pick+fa": 1}
    assert summary["nodes"]["replay"]["samples_out"] > 0 and summary["nodes"]["fa"]["samples_in"] > 0
