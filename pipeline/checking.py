"""``spikeloop check``: validate a graph without live resources and without side effects.

:func:`check_graph` describes every stream of a loaded graph (:class:`pipeline.graph.GraphSpec`)
the way opening it would, but

- a live source (an LSL inlet) is not resolved: its outputs are "unknown until --live", and so are
  the streams downstream of it (their nodes were still constructed, so params and model files were
  checked); with ``live=True`` it is resolved (bounded by its ``resolve_timeout_s``) and closed;
- a sink that publishes or writes (an LSL outlet, a recorder) is never opened, even with
  ``live=True``: check publishes nothing and writes no file; its input ports must be connected;
- a param that makes ``open()`` write a file (``linear_decoder.save_to``) is dropped for the check;
- every other node is opened with its inputs' descriptions (channel counts and rates from params,
  model files and recordings are checked there) and closed again;
- the configured runner's planning runs (fuse groups, a cycle between actors) for Ray runners,
  without starting Ray.

A node class may define ``describe(inputs) -> {port: StreamInfo | None}`` to be described in check
without being opened; the tables below cover the kinds that exist today.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipeline.errors import ConfigError, UserError
from pipeline.graph import GraphSpec, _open_one, node_message
from pipeline.node import Node, StreamMismatch
from pipeline.packet import StreamInfo
from pipeline.registry import node_class

LIVE_KINDS: dict[str, str] = {"lsl_inlet": "a live LSL stream"}
"""Kinds whose outputs come from outside: described only with ``--live``."""
SIDE_EFFECT_KINDS: dict[str, str] = {"lsl_outlet": "publishes an LSL stream", "recorder": "writes a file"}
"""Sinks never opened by check (their input ports must still be connected)."""
WRITING_PARAMS: dict[str, tuple[str, ...]] = {"linear_decoder": ("save_to",)}
"""Params dropped for the check because ``open()`` would write a file."""


@dataclass
class CheckReport:
    """What ``spikeloop check`` found.

    Attributes:
        streams: ``(node, port) -> StreamInfo`` or a string saying why it is unknown.
        notes: per node, why it was not opened (``"publishes an LSL stream"``...).
        groups: the Ray runner's actor groups (node names each), or None for ``local``.
        warnings: advice that is not an error (an unfused live chain on a Ray runner).
    """

    streams: dict[tuple[str, str], StreamInfo | str] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    groups: list[list[str]] | None = None
    warnings: list[str] = field(default_factory=list)


def check_graph(spec: GraphSpec, *, live: bool = False, runner: str | None = None) -> CheckReport:
    """Describe every stream of ``spec`` without live resources (see the module docstring).

    Args:
        spec: a loaded graph (params already type-checked, nodes constructed).
        live: also resolve live sources (LSL inlets), each within its ``resolve_timeout_s``.
        runner: the runner whose planning to run (default: the config's ``runtime.runner``).

    Raises:
        ConfigError: the first problem, one line naming the file and node.
    """
    report = CheckReport()
    incoming: dict[str, list[Any]] = {n: [] for n in spec.nodes}
    for e in spec.edges:
        incoming[e.dst].append(e)
    opened: list[Node] = []
    try:
        for name in spec.order():
            node = spec.instances[name]
            kind = spec.nodes[name].kind
            edges = [e for e in incoming[name] if not e.feedback]
            upstream = {e.dst_port: report.streams[(e.src, e.src_port)] for e in edges}
            unknown = [f"{e.src}.{e.src_port}" for e in edges if isinstance(report.streams[(e.src, e.src_port)], str)]
            outputs: dict[str, StreamInfo | str]
            if kind in SIDE_EFFECT_KINDS:
                _require_connected(spec, name, node, upstream)
                report.notes[name] = f"not opened: it {SIDE_EFFECT_KINDS[kind]}"
                outputs = {port: f"not opened ({SIDE_EFFECT_KINDS[kind]})" for port in node.outputs}
            elif kind in LIVE_KINDS and not live:
                report.notes[name] = f"{LIVE_KINDS[kind]}: not resolved (use --live)"
                outputs = {port: "unknown until --live" for port in node.outputs}
            elif unknown:
                outputs = {port: f"unknown until --live (fed by {', '.join(unknown)})" for port in node.outputs}
            elif hasattr(node, "describe"):
                outputs = _describe(spec, name, node, upstream)
            else:
                target = _without_writing_params(spec, name, node)
                inputs = {p: info for p, info in upstream.items() if isinstance(info, StreamInfo)}
                opened.append(target)
                outputs = dict(_open(spec, name, target, inputs, incoming[name]))
                for port in node.outputs:
                    if port not in outputs:
                        raise ConfigError(spec.file, f"node opened without describing its output port {port!r}", node=name)
            for port in node.outputs:
                report.streams[(name, port)] = outputs[port]
        _check_feedback(spec, report)
    finally:
        for node in opened:
            try:
                node.close()
            except Exception:  # noqa: BLE001 - closing after a failed check must not hide its error
                pass
    runner = runner or spec.runtime.get("runner", "local")
    if runner in ("ray", "ray-compiled"):
        plan_groups, live_warning = _planner()
        plans, group_of = plan_groups(spec)
        report.groups = [list(p.nodes) for p in plans]
        warning = live_warning(spec, group_of) if live_warning else None
        if warning:
            report.warnings.append(warning)
    return report


def _open(spec: GraphSpec, name: str, node: Node, inputs: dict[str, StreamInfo], incoming: list[Any]) -> dict[str, StreamInfo]:
    """Open one node with the runners' shared error mapping (``pipeline.runners.opening``) when present."""
    try:
        from pipeline.runners.opening import open_node  # type: ignore[import-not-found]
    except ImportError:
        return _open_one(spec, name, node, inputs, incoming)
    return open_node(spec.file, name, node, inputs, incoming)


def _planner():
    """The Ray runners' planning functions, imported without importing Ray."""
    try:  # the runner core may move planning into its own module
        from pipeline.runners.plan import plan_groups  # type: ignore[import-not-found]
    except ImportError:
        from pipeline.runners.ray_runner import plan_groups
    try:
        from pipeline.runners.plan import unfused_live_warning  # type: ignore[import-not-found]
    except ImportError:
        try:
            from pipeline.runners.ray_runner import unfused_live_warning
        except ImportError:
            unfused_live_warning = None
    return plan_groups, unfused_live_warning


def _require_connected(spec: GraphSpec, name: str, node: Node, upstream: dict[str, Any]) -> None:
    feedback = {e.dst_port for e in spec.edges if e.dst == name and e.feedback}
    missing = [p for p in node.inputs if p not in upstream and p not in feedback]
    if missing:
        raise ConfigError(spec.file, f"nothing connected to input port(s) {', '.join(missing)}", node=name)


def _describe(spec: GraphSpec, name: str, node: Node, upstream: dict[str, Any]) -> dict[str, StreamInfo | str]:
    try:
        described = node.describe(upstream)  # type: ignore[attr-defined]
    except StreamMismatch as exc:
        raise ConfigError(spec.file, str(exc), node=name) from None
    except (UserError, ValueError, KeyError, OSError) as exc:
        raise ConfigError(spec.file, node_message(exc), node=name) from None
    return {port: ("unknown until --live" if described.get(port) is None else described[port]) for port in node.outputs}


def _without_writing_params(spec: GraphSpec, name: str, node: Node) -> Node:
    """``node`` itself, or a fresh instance without the params that would write files in ``open()``."""
    node_spec = spec.nodes[name]
    drop = [p for p in WRITING_PARAMS.get(node_spec.kind, ()) if node_spec.params.get(p) is not None]
    if not drop:
        return node
    params = {k: v for k, v in node_spec.params.items() if k not in drop}
    try:
        twin = node_class(node_spec.kind)(**params)
    except (UserError, ValueError, TypeError, KeyError, OSError) as exc:
        raise ConfigError(spec.file, node_message(exc), node=name) from None
    twin.name = name
    return twin


def _check_feedback(spec: GraphSpec, report: CheckReport) -> None:
    for e in spec.edges:
        info = report.streams.get((e.src, e.src_port))
        if e.feedback and isinstance(info, StreamInfo) and spec.nodes[e.dst].kind not in SIDE_EFFECT_KINDS:
            try:
                spec.instances[e.dst].open_feedback(e.dst_port, info)
            except StreamMismatch as exc:
                raise ConfigError(spec.file, f"{exc} (fed back from {e.src}.{e.src_port})", node=e.dst) from None
            except (UserError, ValueError) as exc:
                raise ConfigError(spec.file, node_message(exc), node=e.dst) from None
