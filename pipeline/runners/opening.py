"""Constructing and opening nodes where they run, with one error mapping for every runner.

Any exception a node raises in its constructor or in ``open()`` becomes a one-line
:class:`~pipeline.errors.ConfigError` shaped ``FILE: node 'X': <message>`` (a stream mismatch
also names the input port and the upstream node). The ``local`` runner calls these functions in
its own process; the Ray runners call them inside each actor and send the message back as text,
so the driver raises the same error without a Ray traceback.
"""
from __future__ import annotations

from typing import Any

from pipeline.errors import ConfigError, UserError
from pipeline.graph import Edge, GraphSpec
from pipeline.log import runner_logger
from pipeline.node import Node, StreamMismatch
from pipeline.packet import StreamInfo
from pipeline.registry import node_class


def _describe(exc: BaseException) -> str:
    """One line for ``exc``: its message, prefixed by its type unless it is one of ours."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, (UserError, StreamMismatch)):
        return text
    return f"{type(exc).__name__}: {text}"


def construct_node(file: str, name: str, kind: str, params: dict[str, Any]) -> Node:
    """Construct node ``name`` of ``kind`` with ``params``; any failure -> one-line ConfigError."""
    try:
        node = node_class(kind)(**params)
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - every node error becomes one line naming the node
        raise ConfigError(file, _describe(exc), node=name) from None
    node.name = name
    return node


def open_node(file: str, name: str, node: Node, inputs: dict[str, StreamInfo],
              incoming: list[Edge], previous: dict[str, Any] | None = None) -> dict[str, StreamInfo]:
    """``node.open(inputs)`` with errors mapped; checks every output port is described.

    ``previous``: the node's last checkpointed ``state()`` when it is reopened after a restart
    (given to :meth:`~pipeline.node.Node.reopen_from` first)."""
    try:
        if previous is not None:
            node.reopen_from(previous)
        outputs = node.open(inputs)
    except StreamMismatch as exc:
        upstream = next((f" (from {e.src}.{e.src_port})" for e in incoming if e.dst_port == exc.port), "")
        raise ConfigError(file, f"{exc}{upstream}", node=name, key=f"input {exc.port}") from None
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise ConfigError(file, _describe(exc), node=name) from None
    for port in node.outputs:
        if port not in outputs:
            raise ConfigError(file, f"node opened without describing its output port {port!r}", node=name)
    return {port: outputs[port] for port in node.outputs}


def open_feedback(file: str, name: str, node: Node, port: str, info: StreamInfo, src: str) -> None:
    """``node.open_feedback(port, info)`` with errors mapped."""
    try:
        node.open_feedback(port, info)
    except StreamMismatch as exc:
        raise ConfigError(file, f"{exc} (fed back from {src})", node=name, key=f"input {port}") from None
    except Exception as exc:  # noqa: BLE001
        raise ConfigError(file, _describe(exc), node=name) from None


def incoming_edges(spec: GraphSpec) -> dict[str, list[Edge]]:
    """Edges into each node."""
    incoming: dict[str, list[Edge]] = {n: [] for n in spec.nodes}
    for e in spec.edges:
        incoming[e.dst].append(e)
    return incoming


LIVE_SOURCE_KINDS = ("lsl_inlet",)


def log_wait(spec: GraphSpec, name: str) -> None:
    """Log "waiting for LSL stream ..." before opening a live source (it may wait seconds)."""
    node = spec.nodes[name]
    if node.kind in LIVE_SOURCE_KINDS:
        query = ", ".join(f"{k}={v!r}" for k, v in node.params.items() if k in ("name", "type", "source_id"))
        timeout = node.params.get("resolve_timeout_s")
        runner_logger().info("node %r: waiting for LSL stream %s%s", name, query,
                             f" (up to {timeout:g} s)" if isinstance(timeout, (int, float)) else "")


def open_all(spec: GraphSpec, open_one: Any, feedback_one: Any) -> dict[tuple[str, str], StreamInfo]:
    """Open every node in topological order through ``open_one(name, inputs, incoming)`` (returns
    its output infos), then deliver feedback descriptions through ``feedback_one(edge, info)``.

    The runner decides where a node lives: ``open_one`` opens it in this process or in its actor.
    """
    infos: dict[tuple[str, str], StreamInfo] = {}
    incoming = incoming_edges(spec)
    for name in spec.order():
        inputs = {e.dst_port: infos[(e.src, e.src_port)] for e in incoming[name] if not e.feedback}
        log_wait(spec, name)
        for port, info in open_one(name, inputs, incoming[name]).items():
            infos[(name, port)] = info
    for e in spec.edges:
        if e.feedback:
            feedback_one(e, infos[(e.src, e.src_port)])
    return infos


def open_in_process(spec: GraphSpec, nodes: dict[str, Node]) -> dict[tuple[str, str], StreamInfo]:
    """Open ``nodes`` (the whole graph, in this process); errors as one-line ConfigErrors."""
    return open_all(
        spec,
        lambda name, inputs, incoming: open_node(spec.file, name, nodes[name], inputs, incoming),
        lambda e, info: open_feedback(spec.file, e.dst, nodes[e.dst], e.dst_port, info, f"{e.src}.{e.src_port}"),
    )


def error_line(exc: UserError) -> tuple[str, str]:
    """``(class name, message)`` of a node error, to send from an actor as plain text."""
    return type(exc).__name__, str(exc)


def error_from_line(kind: str, message: str) -> UserError:
    """Rebuild the error :func:`error_line` described (a ConfigError stays a ConfigError)."""
    if kind == "ConfigError":
        exc = ConfigError.__new__(ConfigError)
        Exception.__init__(exc, message)
        exc.file = exc.node = exc.key = None  # type: ignore[assignment]
        return exc
    return UserError(message)
