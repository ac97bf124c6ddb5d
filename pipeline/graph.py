"""Graph configs: load a YAML graph, validate everything up front, open its nodes in order.

A config (see ``configs/``)::

    name: replay_decode
    description: what the graph does
    nodes:
      replay:  {kind: replay, params: {path: recordings/reaching_sample.xdfz, speed: max}}
      decoder: {kind: linear_decoder, params: {fit_recording: recordings/reaching_sample.xdfz}}
      score:   {kind: velocity_scorer}
    edges:
      - replay.spikes -> decoder -> score.pred   # a chain; ports default to a node's only port
      - replay.velocity -> score.true
      - controller ~> sim.command                # "~>" marks a feedback edge (closes a loop)
    runtime:
      runner: local                              # local | ray | ray-compiled
      fuse: [[decoder, score]]                   # nodes sharing one Ray actor

Every error names the file, the node and the key, and suggests the nearest valid name for a
misspelling. Node kinds come only from :mod:`pipeline.registry`: a config cannot import code.

Params are typed: each value (from the file or a ``--set``) is checked against the annotation of
the node's ``__init__`` parameter by :mod:`pipeline.params` before any node is constructed
(``FILE: node 'X': param 'Y': expected T, got V``); a param without a default is required. The
``runtime`` keys are typed the same way (:data:`RUNTIME_FIELDS`). The YAML itself is read strictly:
a key given twice in one mapping (a node defined twice) is an error naming both lines, and a file
over 1 MB or aliases expanding past 100,000 nodes are refused before anything is built.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from pipeline.errors import ConfigError, UserError, one_line
from pipeline.params import MissingParamError, ParamTypeError, check_params, coerce, param_annotations, type_name
from pipeline.node import Layout, Node, StreamMismatch
from pipeline.packet import StreamInfo
from pipeline.registry import NODE_KINDS, node_class

TOP_LEVEL_KEYS = ("name", "description", "nodes", "edges", "runtime")
NODE_KEYS = ("kind", "params", "resources")
RUNNERS = ("local", "ray", "ray-compiled")
RUNTIME_FIELDS: dict[str, tuple[Any, Any]] = {
    "runner": (Literal["local", "ray", "ray-compiled"], "local"),
    "fuse": (list[list[str]], []),
    "address": (str | None, None),
    "dashboard": (bool, False),
    "num_cpus": (int | None, None),
    "checkpoint_s": (float, 5.0),  # Ray runners: seconds between group checkpoints (0 = off)
    "max_restarts": (int, 3),  # Ray runners: actor restarts before the run stops
}
"""``runtime`` keys: ``(annotation, default)``, type-checked like node params (:mod:`pipeline.params`)."""
RUNTIME_KEYS = tuple(RUNTIME_FIELDS)
NONNEGATIVE_RUNTIME = ("num_cpus", "checkpoint_s", "max_restarts")

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def nearest(name: Any, choices: list[str] | tuple[str, ...]) -> str:
    """`` (did you mean 'x'?)`` for the closest choice, or a list of the choices.

    ``name`` may be any YAML scalar (``on``/``true`` parse as booleans): it is compared as text.
    """
    choices = [str(c) for c in choices]
    close = difflib.get_close_matches(str(name), choices, n=1, cutoff=0.5)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f" (valid: {', '.join(sorted(choices))})" if choices else ""


@dataclass(frozen=True)
class NodeSpec:
    """One node of a config: its name, registered kind, constructor params and Ray resources."""

    name: str
    kind: str
    params: dict[str, Any]
    resources: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Edge:
    """A connection from ``src.src_port`` to ``dst.dst_port``; ``feedback`` closes a loop."""

    src: str
    src_port: str
    dst: str
    dst_port: str
    feedback: bool = False

    def __str__(self) -> str:
        arrow = "~>" if self.feedback else "->"
        return f"{self.src}.{self.src_port} {arrow} {self.dst}.{self.dst_port}"


@dataclass
class GraphSpec:
    """A validated graph: node specs, their ports, edges and runtime options (data, no nodes).

    Loading a graph constructs no node: params are type-checked and each node's ports come from
    its kind's :meth:`~pipeline.node.Node.layout`. Nodes are constructed where they run (the
    ``local`` runner in its process, the Ray runners inside each actor), or on first use of
    :attr:`instances` (``spikeloop check``, notebooks, tests).

    Attributes:
        nodes: node specs by name, in config order.
        layouts: each node's ports and tick interval, by name.
        edges: every edge, chains expanded.
        runtime: the ``runtime`` section with defaults filled in.
        file: the config path, for error messages.
    """

    name: str
    description: str
    file: str
    nodes: dict[str, NodeSpec]
    layouts: dict[str, Layout]
    edges: list[Edge]
    runtime: dict[str, Any]
    _instances: dict[str, Node] | None = field(default=None, repr=False)

    @property
    def instances(self) -> dict[str, Node]:
        """The graph's nodes, constructed (not opened) on first use, in this process; a node's
        refusal is a one-line ConfigError naming the file and the node."""
        if self._instances is None:
            self._instances = {name: _construct(self.file, spec) for name, spec in self.nodes.items()}
        return self._instances

    def routes(self) -> dict[tuple[str, str], list[tuple[str, str]]]:
        """``(src, src_port) -> [(dst, dst_port), ...]`` for every output port (possibly empty)."""
        table: dict[tuple[str, str], list[tuple[str, str]]] = {
            (name, port): [] for name, layout in self.layouts.items() for port in layout.outputs
        }
        for e in self.edges:
            table[(e.src, e.src_port)].append((e.dst, e.dst_port))
        return table

    def order(self) -> list[str]:
        """Node names in topological order, feedback edges ignored (config order breaks ties)."""
        return _topological_order(list(self.nodes), [e for e in self.edges if not e.feedback])

    def sinks(self) -> set[str]:
        """Nodes where packets leave the graph: no outgoing edge."""
        has_out = {e.src for e in self.edges}
        return {name for name in self.nodes if name not in has_out}


def load_graph(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> GraphSpec:
    """Read, override (``node.param=value`` or ``runtime.key=value``) and validate a config file.

    Every failure is a one-line :class:`ConfigError` naming the file: missing file, a directory,
    a binary (non UTF-8) file, a file over :data:`MAX_CONFIG_BYTES`, invalid YAML (with line and
    column), a key given twice in one mapping (both lines named), aliases expanding to more than
    :data:`MAX_YAML_NODES` nodes (a "billion laughs" document is refused in milliseconds).
    """
    file = str(path)
    return parse_graph(read_yaml(path), file, overrides)


MAX_CONFIG_BYTES = 1_000_000
"""A config file larger than this (bytes) is refused: graphs are small, this bounds parsing."""
MAX_YAML_NODES = 100_000
"""A YAML document whose nodes, with every alias expanded, number more than this is refused."""


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses duplicate mapping keys (naming the key and both lines)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: let SafeLoader report it
                continue
            line = key_node.start_mark.line + 1
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is defined twice (lines {first} and {line}); "
                    "a config key (a node name, a param) may appear once", key_node.start_mark)
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _expanded_size(root: yaml.Node, limit: int) -> int:
    """Nodes in the document with every alias expanded (memoised, so linear in the composed graph).

    Raises ``ValueError`` past ``limit`` or on a recursive alias.
    """
    memo: dict[int, int] = {}
    active: set[int] = set()

    def size(n: yaml.Node) -> int:
        key = id(n)
        if key in memo:
            return memo[key]
        if key in active:
            raise ValueError("a recursive alias (an anchor used inside itself)")
        active.add(key)
        total = 1
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                total += size(k) + size(v)
                if total > limit:
                    break
        elif isinstance(n, yaml.SequenceNode):
            for v in n.value:
                total += size(v)
                if total > limit:
                    break
        active.discard(key)
        if total > limit:
            raise ValueError(f"the document expands to more than {limit:,} YAML nodes (aliases?)")
        memo[key] = total
        return total

    return size(root)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """One line for a YAML error: what and where (line, column)."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        what = exc.problem or exc.context or "invalid YAML"
        context = f" ({exc.context})" if exc.context and exc.problem else ""
        return f"{what}{context}{where}"
    return one_line(str(exc))


def parse_yaml_text(text: str, limit: int = MAX_YAML_NODES) -> Any:
    """Parse one YAML document with :class:`_StrictLoader` and the alias-expansion bound.

    Raises:
        ValueError: one line saying what is wrong and where (line, column).
    """
    loader = _StrictLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None
        _expanded_size(root, limit)
        return loader.construct_document(root)
    except yaml.YAMLError as exc:
        raise ValueError(_yaml_problem(exc)) from None
    except RecursionError:
        raise ValueError("the document nests too deeply") from None
    finally:
        loader.dispose()


def read_yaml(path: str | Path) -> Any:
    """Read and parse a YAML config file; every failure a one-line :class:`ConfigError`."""
    file = str(path)
    p = Path(path)
    try:
        if p.is_dir():
            raise ConfigError(file, "is a directory, not a config file")
        with open(p, "rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(file, "config file not found") from None
    except OSError as exc:
        raise ConfigError(file, f"cannot read the config file ({exc.strerror or exc})") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(file, f"config file is larger than {MAX_CONFIG_BYTES:,} bytes; a graph config is a small YAML file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(file, f"not a text (UTF-8) file: byte {exc.start} is 0x{raw[exc.start]:02x}; "
                                "a config is a YAML file") from None
    if "\x00" in text:
        raise ConfigError(file, "not a text file (it contains NUL bytes); a config is a YAML file")
    try:
        return parse_yaml_text(text)
    except ValueError as exc:
        raise ConfigError(file, f"not valid YAML: {exc}") from None


def apply_override(doc: dict[str, Any], override: str, file: str) -> None:
    """Apply one ``--set`` override in place: ``node.param=value`` or ``runtime.key=value``.

    The value is parsed as YAML (``speed=max`` is a string, ``speed=2`` a number, ``loop=true`` a
    boolean, ``channels=[0, 1]`` a list); it is then type-checked like any config value.
    """
    target, sep, raw = override.partition("=")
    head, dot, key = target.strip().partition(".")
    if not sep or not dot or not head or not key:
        raise ConfigError(file, f"bad --set {override!r}: use node.param=value or runtime.key=value")
    try:
        value = parse_yaml_text(raw, limit=10_000) if raw.strip() else ""
    except ValueError as exc:
        raise ConfigError(file, f"--set {target}: value {raw!r} is not valid YAML: {exc}") from None
    if head == "runtime":
        runtime = doc.get("runtime")
        if runtime is None:
            runtime = doc["runtime"] = {}
        if not isinstance(runtime, dict):
            raise ConfigError(file, "'runtime' must be a mapping", key="runtime")
        runtime[key] = value
        return
    nodes = doc.get("nodes") or {}
    if not isinstance(nodes, dict):
        raise ConfigError(file, "'nodes' must be a mapping of node name -> {kind, params}", key="nodes")
    if head not in nodes:
        raise ConfigError(file, f"--set {target}: no node {head!r}" + nearest(head, list(nodes)))
    entry = nodes[head]
    if not isinstance(entry, dict):
        raise ConfigError(file, "node entry must be a mapping", node=head)
    params = entry.get("params")
    if params is not None and not isinstance(params, dict):
        raise ConfigError(file, "'params' must be a mapping", node=head, key="params")
    # copies: a YAML alias may share one entry or params mapping between nodes (params: *common);
    # the override must change this node only
    entry = nodes[head] = dict(entry)
    entry["params"] = dict(params or {}, **{key: value})


def parse_graph(doc: Any, file: str, overrides: list[str] | tuple[str, ...] = ()) -> GraphSpec:
    """Validate a parsed config document (see the module docstring) and construct its nodes."""
    if not isinstance(doc, dict):
        raise ConfigError(file, "a graph config must be a YAML mapping with 'nodes' and 'edges'")
    for key in doc:
        if key not in TOP_LEVEL_KEYS:
            raise ConfigError(file, f"unknown top-level key {key!r}" + nearest(str(key), TOP_LEVEL_KEYS))
    for override in overrides:
        apply_override(doc, override, file)
    raw_nodes = doc.get("nodes")
    if not isinstance(raw_nodes, dict) or not raw_nodes:
        raise ConfigError(file, "'nodes' must be a non-empty mapping of node name -> {kind, params}")

    specs = {name: _parse_node(file, name, entry) for name, entry in raw_nodes.items()}
    layouts = {name: _layout(file, spec) for name, spec in specs.items()}
    raw_edges = doc.get("edges") or []
    if not isinstance(raw_edges, list):
        raise ConfigError(file, "'edges' must be a list of 'a -> b' strings or {from, to} mappings")
    edges = [e for i, item in enumerate(raw_edges) for e in _parse_edge_item(file, i, item, layouts)]
    _check_edges(file, edges, layouts)
    runtime = _parse_runtime(file, doc.get("runtime") or {}, specs)
    return GraphSpec(
        name=str(doc.get("name") or Path(file).stem),
        description=str(doc.get("description") or ""),
        file=file,
        nodes=specs,
        layouts=layouts,
        edges=edges,
        runtime=runtime,
    )


def _parse_node(file: str, name: Any, entry: Any) -> NodeSpec:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ConfigError(file, f"node name {name!r} must be an identifier (letters, digits, _)")
    if not isinstance(entry, dict):
        raise ConfigError(file, "node entry must be a mapping with 'kind' and optional 'params'", node=name)
    for key in entry:
        if key not in NODE_KEYS:
            raise ConfigError(file, f"unknown key {key!r}{nearest(str(key), NODE_KEYS)}", node=name, key=str(key))
    kind = entry.get("kind")
    if not kind:
        raise ConfigError(file, "missing 'kind'", node=name, key="kind")
    if kind not in NODE_KINDS:
        raise ConfigError(file, f"unknown node kind {kind!r}" + nearest(str(kind), list(NODE_KINDS)), node=name, key="kind")
    params = entry.get("params") or {}
    if not isinstance(params, dict):
        raise ConfigError(file, "'params' must be a mapping", node=name, key="params")
    resources = entry.get("resources") or {}
    if not isinstance(resources, dict) or not all(isinstance(v, (int, float)) for v in resources.values()):
        raise ConfigError(file, "'resources' must map resource names to numbers", node=name, key="resources")
    cls = node_class(kind)
    accepted = list(param_annotations(cls))
    for key in params:
        if key not in accepted:
            raise ConfigError(
                file, f"unknown param for kind {kind!r}" + nearest(str(key), accepted), node=name, param=str(key)
            )
    try:
        values = check_params(cls, params)
    except MissingParamError as exc:
        raise ConfigError(file, f"missing; kind {kind!r} requires it ({type_name(exc.annotation)})",
                          node=name, param=exc.param) from None
    except ParamTypeError as exc:
        raise ConfigError(file, str(exc), node=name, param=exc.param) from None
    return NodeSpec(name=name, kind=kind, params=values, resources=dict(resources))


def _layout(file: str, spec: NodeSpec) -> Layout:
    """A node's ports without constructing it; a refusal becomes ``FILE: node 'X': <its message>``."""
    try:
        return node_class(spec.kind).layout(spec.params)
    except ConfigError:
        raise
    except (UserError, ValueError, TypeError, KeyError, OSError) as exc:
        raise ConfigError(file, node_message(exc), node=spec.name) from None


def _construct(file: str, spec: NodeSpec) -> Node:
    """Construct one node; anything it refuses becomes ``FILE: node 'X': <its message>``."""
    try:
        node = node_class(spec.kind)(**spec.params)
    except ConfigError:
        raise
    except (UserError, ValueError, TypeError, KeyError, OSError) as exc:
        raise ConfigError(file, node_message(exc), node=spec.name) from None
    node.name = spec.name
    return node


def node_message(exc: BaseException) -> str:
    """One line for an exception a node raised (its message; the exception type if it has none)."""
    text = one_line(str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc))
    if isinstance(exc, OSError) and getattr(exc, "filename", None) and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}"
    return text or type(exc).__name__


def _parse_endpoint(file: str, text: str, where: str, instances: dict[str, Layout]) -> tuple[str, str | None]:
    text = text.strip()
    name, _, port = text.partition(".")
    if name not in instances:
        raise ConfigError(file, f"{where}: edge names a missing node {name!r}" + nearest(name, list(instances)), key="edges")
    return name, (port or None)


def _pick_port(file: str, name: str, node: Layout, port: str | None, direction: str, where: str) -> str:
    ports = node.outputs if direction == "output" else node.inputs
    if port is None:
        if len(ports) == 1:
            return ports[0]
        if not ports:
            raise ConfigError(file, f"{where}: node has no {direction} ports", node=name, key="edges")
        raise ConfigError(
            file,
            f"{where}: node has several {direction} ports ({', '.join(ports)}); name one, "
            f"e.g. {name}.{ports[0]}",
            node=name,
            key="edges",
        )
    if port not in ports:
        valid = tuple(ports)
        raise ConfigError(
            file, f"{where}: no {direction} port {port!r}" + (nearest(port, valid) if valid else f" (it has no {direction} ports)"),
            node=name, key="edges",
        )
    return port


def _parse_edge_item(file: str, index: int, item: Any, instances: dict[str, Layout]) -> list[Edge]:
    where = f"edges[{index}]"
    if isinstance(item, dict):
        unknown = set(item) - {"from", "to", "feedback"}
        if unknown or "from" not in item or "to" not in item:
            raise ConfigError(file, f"{where}: an edge mapping needs 'from' and 'to' (and optional 'feedback')", key="edges")
        hops = [str(item["from"]), str(item["to"])]
        arrows = ["~>" if item.get("feedback") else "->"]
    elif isinstance(item, str):
        parts = re.split(r"\s*(->|~>)\s*", item.strip())
        hops, arrows = parts[0::2], parts[1::2]
        if len(hops) < 2 or any(not h for h in hops):
            raise ConfigError(file, f"{where}: cannot read edge {item!r}; write 'a.port -> b.port' ('~>' for feedback)", key="edges")
    else:
        raise ConfigError(file, f"{where}: an edge is a string 'a -> b' or a mapping {{from, to}}", key="edges")
    endpoints = [_parse_endpoint(file, h, where, instances) for h in hops]
    edges = []
    for i, arrow in enumerate(arrows):
        (src, src_port), (dst, dst_port) = endpoints[i], endpoints[i + 1]
        if 0 < i and src_port is not None:  # a middle node "b.x" names its input port
            src_port = None
        edges.append(
            Edge(
                src=src,
                src_port=_pick_port(file, src, instances[src], src_port, "output", where),
                dst=dst,
                dst_port=_pick_port(file, dst, instances[dst], dst_port, "input", where),
                feedback=arrow == "~>",
            )
        )
    return edges


def _check_edges(file: str, edges: list[Edge], instances: dict[str, Layout]) -> None:
    seen: dict[tuple[str, str], Edge] = {}
    for e in edges:
        if (e.dst, e.dst_port) in seen:
            raise ConfigError(
                file, f"input port {e.dst_port!r} is fed twice ({seen[(e.dst, e.dst_port)]} and {e})",
                node=e.dst, key="edges",
            )
        seen[(e.dst, e.dst_port)] = e
        if e.feedback and e.dst_port not in instances[e.dst].feedback_inputs:
            accepts = instances[e.dst].feedback_inputs
            raise ConfigError(
                file,
                f"edge {e} is marked feedback but port {e.dst_port!r} does not accept feedback"
                + (f" (feedback ports: {', '.join(accepts)})" if accepts else " (the node has no feedback ports)"),
                node=e.dst, key="edges",
            )
    cycle = _find_cycle(list(instances), [e for e in edges if not e.feedback])
    if cycle:
        raise ConfigError(
            file,
            "cycle " + " -> ".join(cycle + [cycle[0]]) + " has no feedback edge; mark the edge that "
            "closes the loop with '~>' (for example 'controller ~> sim.command')",
            key="edges",
        )


def _find_cycle(names: list[str], edges: list[Edge]) -> list[str]:
    """One cycle (list of node names) among ``edges``, or [] if acyclic."""
    succ: dict[str, list[str]] = {n: [] for n in names}
    for e in edges:
        succ[e.src].append(e.dst)
    color = {n: 0 for n in names}  # 0 new, 1 on stack, 2 done
    stack: list[str] = []

    def visit(n: str) -> list[str]:
        color[n] = 1
        stack.append(n)
        for m in succ[n]:
            if color[m] == 1:
                return stack[stack.index(m):]
            if color[m] == 0:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        color[n] = 2
        return []

    for n in names:
        if color[n] == 0:
            found = visit(n)
            if found:
                return list(found)
    return []


def _topological_order(names: list[str], edges: list[Edge]) -> list[str]:
    indegree = {n: 0 for n in names}
    for e in edges:
        indegree[e.dst] += 1
    order: list[str] = []
    ready = [n for n in names if indegree[n] == 0]
    while ready:
        n = ready.pop(0)
        order.append(n)
        for e in edges:
            if e.src == n:
                indegree[e.dst] -= 1
                if indegree[e.dst] == 0:
                    ready.append(e.dst)
    return order


def _parse_runtime(file: str, runtime: Any, specs: dict[str, NodeSpec]) -> dict[str, Any]:
    if not isinstance(runtime, dict):
        raise ConfigError(file, "'runtime' must be a mapping", key="runtime")
    for key in runtime:
        if key not in RUNTIME_KEYS:
            raise ConfigError(file, f"unknown runtime key {key!r}" + nearest(str(key), RUNTIME_KEYS), key="runtime")
    out = {key: (list(default) if isinstance(default, list) else default) for key, (_, default) in RUNTIME_FIELDS.items()}
    for key, value in runtime.items():
        annotation = RUNTIME_FIELDS[key][0]
        if value is None and RUNTIME_FIELDS[key][1] is not None:
            continue  # "fuse:" with nothing after it: the default
        try:
            out[key] = coerce(value, annotation)
        except ParamTypeError as exc:
            raise ConfigError(file, str(exc), key=f"runtime.{key}") from None
        if key in NONNEGATIVE_RUNTIME and out[key] is not None and out[key] < 0:
            raise ConfigError(file, f"must be >= 0, got {value!r}", key=f"runtime.{key}")
    fuse = out["fuse"] or []
    placed: dict[str, int] = {}
    for gi, group in enumerate(fuse):
        for name in group:
            if name not in specs:
                raise ConfigError(file, f"fuse group {gi} names a missing node {name!r}" + nearest(str(name), list(specs)), key="runtime.fuse")
            if name in placed:
                raise ConfigError(file, f"node {name!r} is in fuse groups {placed[name]} and {gi}", key="runtime.fuse")
            placed[name] = gi
    out["fuse"] = [list(g) for g in fuse]
    return out


def open_graph(spec: GraphSpec, nodes: dict[str, Node] | None = None) -> dict[tuple[str, str], StreamInfo]:
    """Open every node in topological order; return the description of every output port.

    A node's ``open`` receives the descriptions of its (non-feedback) input ports and may raise
    :class:`StreamMismatch`; that becomes a :class:`ConfigError` naming the file, the node, the port
    and the upstream node. Feedback descriptions are delivered after all nodes are open.
    """
    nodes = spec.instances if nodes is None else nodes
    infos: dict[tuple[str, str], StreamInfo] = {}
    incoming: dict[str, list[Edge]] = {n: [] for n in spec.nodes}
    for e in spec.edges:
        incoming[e.dst].append(e)
    for name in spec.order():
        inputs = {e.dst_port: infos[(e.src, e.src_port)] for e in incoming[name] if not e.feedback}
        outputs = _open_one(spec, name, nodes[name], inputs, incoming[name])
        for port in nodes[name].outputs:
            if port not in outputs:
                raise ConfigError(spec.file, f"node opened without describing its output port {port!r}", node=name)
            infos[(name, port)] = outputs[port]
    for e in spec.edges:
        if e.feedback:
            try:
                nodes[e.dst].open_feedback(e.dst_port, infos[(e.src, e.src_port)])
            except StreamMismatch as exc:
                raise ConfigError(spec.file, f"{exc} (fed back from {e.src}.{e.src_port})", node=e.dst) from None
    return infos


def _open_one(spec: GraphSpec, name: str, node: Node, inputs: dict[str, StreamInfo], edges: list[Edge]) -> dict[str, StreamInfo]:
    """``node.open(inputs)``; a refusal becomes ``FILE: node 'X': ...`` (the port and upstream named)."""
    try:
        return node.open(inputs)
    except StreamMismatch as exc:
        upstream = next((f" (from {e.src}.{e.src_port})" for e in edges if e.dst_port == exc.port), "")
        raise ConfigError(spec.file, f"{exc}{upstream}", node=name) from None
    except ConfigError:
        raise
    except (UserError, ValueError, KeyError, OSError) as exc:
        raise ConfigError(spec.file, node_message(exc), node=name) from None
