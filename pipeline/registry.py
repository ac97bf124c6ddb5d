"""The registry of node kinds: the only names a graph config may use.

A config names a node by ``kind``; the kind maps to a class inside this project, imported lazily
(so a graph that does not use the robot simulator never imports it, and the runtime path never
imports torch). A config cannot import arbitrary code.

Add a kind by adding one line here: ``"kind": "module.path:ClassName"``. Its ``__init__`` params
are the config's ``params``: annotate every one (``bool``, ``int``, ``float``, ``str``, ``X | None``,
``list[X]``, ``Literal["a", "b"]`` for a choice; see :mod:`pipeline.params`) and give a required
param no default (not a ``""`` placeholder): the graph loader checks every value against its
annotation before anything is constructed, and ``tests/test_params.py`` checks every kind.
"""
from __future__ import annotations

import importlib

from pipeline.node import Node

NODE_KINDS: dict[str, str] = {
    # sources
    "replay": "nodes.sources.replay:Replay",
    "synthetic_reaching": "nodes.sources.synthetic:SyntheticReaching",
    "signal_generator": "nodes.sources.signal:SignalGenerator",
    "lsl_inlet": "nodes.sources.lsl_inlet:LslInlet",
    # filters and transforms
    "select_channels": "nodes.filters.select:SelectChannels",
    "bessel": "nodes.filters.bessel:BesselFilter",
    "event_binner": "nodes.filters.binning:EventBinner",
    # decoders
    "decoder": "nodes.decoders.node:Decoder",
    "snn_decoder": "nodes.decoders.node:Decoder",  # alias of "decoder" (any decoder model file)
    "linear_decoder": "nodes.decoders.linear:LinearDecoder",
    # controllers and simulators
    "robot_sim": "nodes.control.nodes:RobotSim",
    "crnn_controller": "nodes.control.nodes:CrnnController",
    "bif_controller": "nodes.control.nodes:BifController",
    "gap_controller": "nodes.control.nodes:GapController",
    # sinks
    "capture": "nodes.sinks.capture:Capture",
    "lsl_outlet": "nodes.sinks.lsl_outlet:LslOutlet",
    "recorder": "nodes.sinks.recorder:Recorder",
    "velocity_scorer": "nodes.sinks.scorer:VelocityScorer",
}


def node_class(kind: str) -> type[Node]:
    """Import and return the class registered for ``kind`` (KeyError if unknown)."""
    module_name, _, class_name = NODE_KINDS[kind].partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(cls, type) and issubclass(cls, Node)):
        raise TypeError(f"registry entry {kind!r} -> {NODE_KINDS[kind]} is not a Node subclass")
    return cls


def make_node(kind: str, node_name: str = "", /, **params) -> Node:
    """Construct a node of ``kind`` with ``params`` and call it ``node_name`` (default: the kind).

    Both leading arguments are positional-only, so a node may have params called ``kind`` or ``name``.
    """
    node = node_class(kind)(**params)
    node.name = node_name or kind
    return node
