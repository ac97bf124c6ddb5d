"""Config validation: every error names the file, the node and the key, with the nearest name."""
from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.graph import load_graph, open_graph

GOOD = """
name: demo
nodes:
  gen: {kind: signal_generator, params: {channels: 4, rate_hz: 250, duration_s: 1}}
  pick: {kind: select_channels, params: {channels: [0, 2]}}
  cap: {kind: capture}
edges:
  - gen -> pick -> cap
"""


def error_of(write_config, text: str, overrides=()) -> str:
    path = write_config(text)
    with pytest.raises(ConfigError) as info:
        spec = load_graph(path, overrides)
        open_graph(spec)
    message = str(info.value)
    assert str(path) in message, message  # every error names the file
    return message


def test_good_config_loads_and_opens(write_config):
    spec = load_graph(write_config(GOOD))
    infos = open_graph(spec)
    assert spec.order() == ["gen", "pick", "cap"]
    assert infos[("pick", "out")].channel_count == 2
    assert infos[("pick", "out")].channel_labels == ("ch0", "ch2")
    assert [str(e) for e in spec.edges] == ["gen.out -> pick.in", "pick.out -> cap.in"]


def test_unknown_kind_suggests_nearest(write_config):
    msg = error_of(write_config, GOOD.replace("kind: select_channels", "kind: select_chanels"))
    assert "node 'pick'" in msg and "key 'kind'" in msg
    assert "unknown node kind 'select_chanels'" in msg and "did you mean 'select_channels'" in msg


def test_unknown_param_suggests_nearest(write_config):
    msg = error_of(write_config, GOOD.replace("rate_hz: 250", "rate_h: 250"))
    assert "node 'gen'" in msg and "param 'rate_h'" in msg and "did you mean 'rate_hz'" in msg


def test_missing_required_param(write_config):
    msg = error_of(write_config, GOOD.replace("{kind: select_channels, params: {channels: [0, 2]}}", "{kind: select_channels}"))
    assert "node 'pick'" in msg and "param 'channels'" in msg and "missing; kind 'select_channels' requires it" in msg


def test_unknown_node_key_and_top_level_key(write_config):
    msg = error_of(write_config, GOOD.replace("{kind: capture}", "{kind: capture, parms: {}}"))
    assert "node 'cap'" in msg and "key 'parms'" in msg and "did you mean 'params'" in msg
    msg = error_of(write_config, GOOD + "edgs: []\n")
    assert "unknown top-level key 'edgs'" in msg and "did you mean 'edges'" in msg


def test_edge_to_missing_node(write_config):
    msg = error_of(write_config, GOOD.replace("gen -> pick -> cap", "gen -> pik -> cap"))
    assert "edges[0]" in msg and "missing node 'pik'" in msg and "did you mean 'pick'" in msg


def test_edge_to_missing_port(write_config):
    msg = error_of(write_config, GOOD.replace("gen -> pick -> cap", "gen.output -> pick -> cap"))
    assert "node 'gen'" in msg and "no output port 'output'" in msg and "did you mean 'out'" in msg
    msg = error_of(write_config, GOOD.replace("gen -> pick -> cap", "gen -> pick -> cap.inn"))
    assert "node 'cap'" in msg and "no input port 'inn'" in msg and "did you mean 'in'" in msg


def test_cycle_without_feedback_is_refused(write_config):
    text = """
nodes:
  a: {kind: select_channels, params: {channels: [0]}}
  b: {kind: select_channels, params: {channels: [0]}}
edges:
  - a -> b -> a
"""
    msg = error_of(write_config, text)
    assert "cycle a -> b -> a has no feedback edge" in msg and "'~>'" in msg


def test_feedback_mark_on_a_port_that_takes_no_feedback(write_config):
    text = """
nodes:
  a: {kind: select_channels, params: {channels: [0]}}
  b: {kind: select_channels, params: {channels: [0]}}
edges:
  - a -> b
  - b ~> a
"""
    msg = error_of(write_config, text)
    assert "node 'a'" in msg and "does not accept feedback" in msg


def test_channel_count_mismatch_names_node_port_and_both_values(write_config):
    msg = error_of(write_config, GOOD.replace("channels: [0, 2]", "channels: [0, 7]"))
    assert "node 'pick'" in msg and "input port 'in'" in msg and "from gen.out" in msg
    assert "7" in msg and "4" in msg


def test_port_fed_twice(write_config):
    text = GOOD + "  - gen -> cap\n"
    msg = error_of(write_config, text)
    assert "node 'cap'" in msg and "fed twice" in msg


def test_runtime_section_validation(write_config):
    msg = error_of(write_config, GOOD + "runtime: {runner: rey}\n")
    assert "key 'runtime.runner'" in msg and "did you mean 'ray'" in msg
    msg = error_of(write_config, GOOD + "runtime: {fuse: [[gen, pik]]}\n")
    assert "missing node 'pik'" in msg and "did you mean 'pick'" in msg
    msg = error_of(write_config, GOOD + "runtime: {runer: ray}\n")
    assert "unknown runtime key 'runer'" in msg and "did you mean 'runner'" in msg


def test_ambiguous_port_must_be_named(write_config):
    text = """
nodes:
  gen: {kind: signal_generator}
  cap: {kind: capture, params: {streams: [a, b]}}
edges:
  - gen -> cap
"""
    msg = error_of(write_config, text)
    assert "node 'cap'" in msg and "several input ports (a, b)" in msg and "cap.a" in msg


def test_bad_yaml_and_missing_file(write_config, tmp_path):
    msg = error_of(write_config, "nodes: [unclosed\n")
    assert "not valid YAML" in msg
    with pytest.raises(ConfigError, match="config file not found"):
        load_graph(tmp_path / "nope.yaml")


def test_overrides(write_config):
    spec = load_graph(write_config(GOOD), ["gen.channels=6", "runtime.runner=ray"])
    assert spec.nodes["gen"].params["channels"] == 6 and spec.runtime["runner"] == "ray"
    msg = error_of(write_config, GOOD, ["gn.channels=6"])
    assert "no node 'gn'" in msg and "did you mean 'gen'" in msg


def test_bad_param_value_is_a_config_error(write_config):
    msg = error_of(write_config, GOOD.replace("rate_hz: 250", "rate_hz: -5"))
    assert "node 'gen'" in msg and "rate_hz" in msg


def test_every_shipped_config_validates():
    configs = Path(__file__).resolve().parents[1] / "configs"
    for path in sorted(configs.glob("*.yaml")):
        spec = load_graph(path)
        assert spec.nodes, path


def test_yaml_anchors_and_merge_keys_still_work(write_config):
    text = """
nodes:
  gen: {kind: signal_generator, params: &sig {channels: 4, rate_hz: 250, duration_s: 1}}
  gen2: {kind: signal_generator, params: {<<: *sig, channels: 2}}
  cap: {kind: capture}
  cap2: {kind: capture}
edges:
  - gen -> cap
  - gen2 -> cap2
"""
    spec = load_graph(write_config(text))
    assert spec.nodes["gen2"].params == {"channels": 2, "rate_hz": 250.0, "duration_s": 1.0}


def test_duplicate_keys_anywhere_name_both_lines(write_config):
    msg = error_of(write_config, GOOD.replace("channels: [0, 2]}", "channels: [0, 2], channels: [1]}"))
    assert "key 'channels' is defined twice (lines 5 and 5)" in msg and "line 5" in msg


def test_alias_bomb_is_refused_by_the_bound(write_config):
    """10^12 nodes once expanded: refused by the expansion bound (constructing or printing it would
    never finish, so reaching this message at all shows nothing was expanded; timings are in
    docs/RESULTS.md, not asserted here)."""
    from pipeline.graph import MAX_YAML_NODES

    lines = ["description:", "  l0: &l0 [" + ", ".join(["x"] * 10) + "]"]
    lines += [f"  l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, 12)]  # 10^12 nodes
    msg = error_of(write_config, "\n".join(lines) + "\n" + GOOD)
    assert f"expands to more than {MAX_YAML_NODES:,} YAML nodes" in msg


def test_check_describes_like_open_without_side_effects(write_config, tmp_path):
    """check_graph gives the streams open_graph gives, but never writes: a linear decoder's save_to
    and a recorder's file are not created."""
    from pipeline.checking import check_graph

    from pipeline.cli import main

    sample = tmp_path / "small.xdfz"  # 30 s, 16 channels: the linear fit takes well under a second
    assert main(["synth", "--out", str(sample), "--channels", "16", "--minutes", "0.5", "--seed", "3"]) == 0
    saved, recorded = tmp_path / "fitted.npz", tmp_path / "out.xdfz"
    text = f"""
nodes:
  replay: {{kind: replay, params: {{path: {sample}, streams: [spikes, velocity], speed: max}}}}
  dec: {{kind: linear_decoder, params: {{fit_recording: {sample}, save_to: {saved}}}}}
  smooth: {{kind: bessel}}
  score: {{kind: velocity_scorer}}
  rec: {{kind: recorder, params: {{path: {recorded}}}}}
edges:
  - replay.spikes -> dec -> smooth -> score.pred
  - replay.velocity -> score.true
  - smooth -> rec
"""
    path = write_config(text)
    report = check_graph(load_graph(path))
    assert not saved.exists() and not recorded.exists()
    assert report.notes == {"rec": "not opened: it writes a file"}
    assert report.streams[("dec", "out")].channel_count == 2
    assert report.streams[("smooth", "out")].nominal_rate == 250.0
    assert report.groups is None  # local runner: no actor planning


def test_check_runs_the_ray_planning_without_ray(write_config):
    import sys

    from pipeline.checking import check_graph

    ray_loaded = "ray" in sys.modules
    spec = load_graph(write_config(GOOD + "runtime: {runner: ray, fuse: [[pick, cap]]}\n"))
    report = check_graph(spec)
    assert report.groups == [["gen"], ["pick", "cap"]]
    if not ray_loaded:  # (another test module may have imported Ray already)
        assert "ray" not in sys.modules, "check imported Ray"
    with pytest.raises(ConfigError, match="fuse groups make a cycle between actors"):
        check_graph(load_graph(write_config(GOOD + "runtime: {fuse: [[gen, cap]]}\n")), runner="ray")


def test_check_live_resolves_the_inlet_and_never_publishes(write_config, capsys):
    """--live resolves the input stream (real liblsl on loopback) and describes what follows it; the
    graph's LSL outlet is never created by check."""
    import uuid

    import pylsl

    from pipeline.cli import main
    from pipeline.lsl import to_lsl_info
    from pipeline.packet import StreamInfo

    tag = uuid.uuid4().hex[:8]
    src, out = f"check_in_{tag}", f"check_out_{tag}"
    outlet = pylsl.StreamOutlet(to_lsl_info(StreamInfo(src, "Test", 4, 250.0, "float32", tuple("abcd"), ("uV",) * 4, f"sid-{tag}")))
    path = write_config(f"""
nodes:
  inlet: {{kind: lsl_inlet, params: {{name: {src}, resolve_timeout_s: 5, clock_sync: false}}}}
  smooth: {{kind: bessel, params: {{cutoff_hz: 20, mode: block}}}}  # block mode: scipy, no numba compile
  outlet: {{kind: lsl_outlet, params: {{name: {out}}}}}
edges:
  - inlet -> smooth -> outlet
""")
    assert main(["check", str(path), "--live"]) == 0
    text = capsys.readouterr().out
    assert f"inlet.out: '{src}' type 'Test', 4 ch, 250 Hz, float32" in text
    assert "smooth.out:" in text and "4 ch, 250 Hz, float64" in text
    assert "node outlet: not opened: it publishes an LSL stream" in text
    assert pylsl.resolve_byprop("name", out, 1, 0.5) == []
    del outlet


def test_override_changes_one_node_even_when_params_are_a_shared_alias(write_config):
    text = """
nodes:
  gen: {kind: signal_generator, params: &sig {channels: 4, rate_hz: 250, duration_s: 1}}
  gen2: {kind: signal_generator, params: *sig}
  cap: {kind: capture}
  cap2: {kind: capture}
edges:
  - gen -> cap
  - gen2 -> cap2
"""
    spec = load_graph(write_config(text), ["gen.channels=6"])
    assert spec.nodes["gen"].params["channels"] == 6 and spec.nodes["gen2"].params["channels"] == 4
