"""Typed params: the one helper (pipeline.params) and its use for every registered node kind."""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Literal

import pytest

from pipeline.errors import ConfigError
from pipeline.graph import load_graph
from pipeline.params import MissingParamError, ParamTypeError, check_params, coerce, param_annotations
from pipeline.registry import NODE_KINDS, node_class


@pytest.mark.parametrize("value, annotation, expected", [
    (True, bool, True),
    (False, bool, False),
    (3, int, 3),
    (3, float, 3.0),
    (2.5, float, 2.5),
    ("x", str, "x"),
    (None, str | None, None),
    ("a", str | None, "a"),
    ([1, "ch2"], list[int | str], [1, "ch2"]),
    ("max", float | Literal["max"], "max"),
    (2, float | Literal["max"], 2.0),
    ("block", Literal["causal", "block"], "block"),
    ("f.npz", Path, Path("f.npz")),
    ({"a": 1}, dict[str, float], {"a": 1.0}),
])
def test_accepted_values(value, annotation, expected):
    out = coerce(value, annotation)
    assert out == expected and type(out) is type(expected)


@pytest.mark.parametrize("value, annotation, message", [
    ("no_way", bool, "expected bool (true/false), got 'no_way'"),
    ("true", bool, "expected bool (true/false), got 'true'"),  # a quoted string is not a boolean
    (1, bool, "expected bool (true/false), got 1"),
    (True, int, "expected int, got True"),
    (2.0, int, "expected int, got 2.0"),
    (True, float, "expected float, got True"),
    ("abc", float, "expected float, got 'abc'"),
    (float("nan"), float, "expected a finite float, got nan"),
    (123, str, "expected str, got 123 (quote it: '123')"),
    ("x", list[int | str], "expected a list of (int or str), got 'x'"),
    ([1, 2.5], list[int | str], "item 1: expected int or str, got 2.5"),
    ("casual", Literal["causal", "block"], "expected 'causal' or 'block', got 'casual' (did you mean 'causal'?)"),
    ("maxx", float | Literal["max"], "expected float or 'max', got 'maxx' (did you mean 'max'?)"),
    ([1], float | None, "expected float or null, got [1]"),
    ("", Path, "expected a path (string), got ''"),
])
def test_refused_values_say_expected_and_got(value, annotation, message):
    with pytest.raises(ParamTypeError) as info:
        coerce(value, annotation)
    assert str(info.value) == message


def test_check_params_names_the_param_and_required_ones():
    cls = node_class("bessel")
    assert check_params(cls, {"order": 2, "cutoff_hz": 5}) == {"order": 2, "cutoff_hz": 5.0}
    with pytest.raises(ParamTypeError) as info:
        check_params(cls, {"take": "mid"})
    assert info.value.param == "take" and "did you mean 'middle'" in str(info.value)
    with pytest.raises(MissingParamError) as missing:
        check_params(node_class("select_channels"), {})
    assert missing.value.param == "channels"


SUPPORTED_LEAVES = (bool, int, float, str, Path, type(None))


def _leaves(annotation):
    import types
    import typing

    origin = typing.get_origin(annotation)
    if origin is Literal:
        return []
    if origin in (typing.Union, types.UnionType, list, tuple, dict):
        return [leaf for a in typing.get_args(annotation) for leaf in _leaves(a)]
    return [annotation]


@pytest.mark.parametrize("kind", sorted(NODE_KINDS))
def test_every_node_param_is_typed_and_required_params_have_no_placeholder(kind):
    """Every param of every kind has an annotation the helper checks; no ``""`` stands in for 'required'."""
    cls = node_class(kind)
    for name, (annotation, default) in param_annotations(cls).items():
        assert annotation is not inspect.Parameter.empty, f"{kind}.{name} has no annotation"
        for leaf in _leaves(annotation):
            assert leaf in SUPPORTED_LEAVES, f"{kind}.{name}: unsupported annotation {annotation!r}"
        assert default != "", f"{kind}.{name}: a required param must have no default, not ''"
        if default is not inspect.Parameter.empty:
            coerce(default, annotation)  # the default itself fits the annotation


CONFIG = """
nodes:
  replay: {kind: replay, params: {path: recordings/reaching_sample.xdfz, streams: [spikes], speed: max}}
  smooth: {kind: bessel, params: {order: 4, cutoff_hz: 6.25}}
  cap: {kind: capture}
edges:
  - replay.spikes -> smooth -> cap
"""


@pytest.mark.parametrize("override, message", [
    ("replay.loop=no_way", "node 'replay': param 'loop': expected bool (true/false), got 'no_way'"),
    ("replay.chunk_s=true", "node 'replay': param 'chunk_s': expected float or 'auto', got True"),
    ("replay.start_s=abc", "node 'replay': param 'start_s': expected float, got 'abc'"),
    ("smooth.order=2.5", "node 'smooth': param 'order': expected int, got 2.5"),
    ("smooth.mode=casual", "node 'smooth': param 'mode': expected 'causal' or 'block', got 'casual' (did you mean 'causal'?)"),
    ("cap.streams=spikes", "node 'cap': param 'streams': expected a list of str or null, got 'spikes'"),
])
def test_overrides_are_type_checked_before_anything_runs(write_config, override, message):
    path = write_config(CONFIG)
    with pytest.raises(ConfigError) as info:
        load_graph(path, [override])
    assert str(info.value) == f"{path}: {message}"


def test_values_reach_the_node_coerced(write_config):
    spec = load_graph(write_config(CONFIG), ["smooth.cutoff_hz=5", "replay.loop=yes"])
    assert spec.nodes["smooth"].params["cutoff_hz"] == 5.0 and isinstance(spec.nodes["smooth"].params["cutoff_hz"], float)
    assert spec.instances["replay"].loop is True  # YAML 1.1: unquoted yes is a boolean


def test_required_param_without_placeholder(write_config):
    path = write_config(CONFIG.replace("path: recordings/reaching_sample.xdfz, ", ""))
    with pytest.raises(ConfigError) as info:
        load_graph(path)
    assert str(info.value) == f"{path}: node 'replay': param 'path': missing; kind 'replay' requires it (str)"
