"""The node contract: plain Python steps that know nothing about Ray.

A node is constructed with keyword parameters (the ``params`` of its config entry), then

1. ``open(inputs)`` receives the descriptions of its connected input ports and returns the
   descriptions of its output ports. This is where it checks what it is fed (use
   :func:`require`) and acquires resources (files, LSL inlets, models).
2. ``start()`` may emit initial packets (a simulator's first observation).
3. ``process(port, packet)`` handles one packet arriving on an input port and returns
   ``{output_port: packet}`` (possibly empty). Sources instead implement ``read()``.
4. ``flush()`` emits what is held back when the graph drains at the end (default: nothing).
5. ``tick(now)`` is called about every ``tick_interval`` seconds, for nodes that must act when no
   data comes (a binning node closing a bin on time).
6. ``state()`` / ``restore(state)`` checkpoint everything the node needs to resume.
7. ``close()`` releases resources.

Runners (``pipeline.runners``) decide where a node runs and how packets travel; a node can be used
on its own in a notebook by calling these methods directly.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

from pipeline.packet import Packet, StreamInfo

Outputs = dict[str, Packet]
"""What ``process``/``read``/``tick`` return: at most one packet per output port."""


class StreamMismatch(ValueError):
    """An input stream does not match what a node needs.

    The graph loader adds the file and node name; the node gives the port and both values.
    """

    def __init__(self, port: str, what: str, expected: Any, got: Any, hint: str = "") -> None:
        self.port, self.what, self.expected, self.got = port, what, expected, got
        msg = f"input port {port!r}: {what} is {got!r}, expected {expected!r}"
        super().__init__(msg + (f" ({hint})" if hint else ""))


def require(
    inputs: dict[str, StreamInfo],
    port: str,
    *,
    channel_count: int | None = None,
    nominal_rate: float | None = None,
    regular: bool | None = None,
) -> StreamInfo:
    """Return ``inputs[port]`` after checking it; raise :class:`StreamMismatch` naming both values.

    Args:
        inputs: the descriptions passed to ``open``.
        port: input port name.
        channel_count: required number of channels, if any.
        nominal_rate: required sampling rate in Hz, if any (compared to 1e-9 relative).
        regular: True to require a regular stream, False to require an irregular (event) stream.
    """
    if port not in inputs:
        raise StreamMismatch(port, "connection", "an edge into this port", "nothing connected")
    info = inputs[port]
    if channel_count is not None and info.channel_count != channel_count:
        raise StreamMismatch(port, "channel count", channel_count, info.channel_count)
    if nominal_rate is not None and abs(info.nominal_rate - nominal_rate) > 1e-9 * max(1.0, nominal_rate):
        raise StreamMismatch(port, "nominal rate (Hz)", nominal_rate, info.nominal_rate)
    if regular is True and info.irregular:
        raise StreamMismatch(port, "nominal rate (Hz)", "a regular rate > 0", info.nominal_rate)
    if regular is False and not info.irregular:
        raise StreamMismatch(port, "nominal rate (Hz)", "0 (an irregular event stream)", info.nominal_rate)
    return info


@dataclass(frozen=True)
class Layout:
    """What the graph loader needs of a node without constructing it: its ports and tick interval.

    Attributes:
        inputs, outputs, feedback_inputs: port names, as a constructed node would have them.
        tick_interval: seconds between ticks, or None.
    """

    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    feedback_inputs: tuple[str, ...] = ()
    tick_interval: float | None = None


def param_value(cls: type, params: dict[str, Any], name: str) -> Any:
    """``params[name]``, else the default of ``cls.__init__``'s parameter ``name``."""
    if name in params:
        return params[name]
    default = inspect.signature(cls.__init__).parameters[name].default
    return None if default is inspect.Parameter.empty else default


class Node:
    """Base class of every graph step. Subclasses set ``kind``, ports, and override methods.

    Class attributes:
        kind: the name used in configs (``kind: bessel``); must match the registry key.
        inputs: input port names (``("in",)`` by default; ``()`` for sources).
        outputs: output port names (``("out",)`` by default; ``()`` for sinks).
        feedback_inputs: input ports that may close a cycle (a simulator's ``command``).
        tick_interval: seconds between ``tick`` calls, or None for no ticks.

    Attributes:
        name: the node's name in its graph (set by the graph loader; ``kind`` if standalone).
    """

    kind: ClassVar[str] = ""
    inputs: ClassVar[tuple[str, ...]] = ("in",)
    outputs: ClassVar[tuple[str, ...]] = ("out",)
    feedback_inputs: ClassVar[tuple[str, ...]] = ()
    tick_interval: float | None = None

    name: str = ""

    @classmethod
    def layout(cls, params: dict[str, Any]) -> Layout:
        """The ports and tick interval a node of this kind has with ``params`` (type-checked),
        without constructing it: the graph loader wires edges with it, so nodes are constructed
        only where they run. A kind whose ports or ticks depend on its params overrides this
        (a test checks it against the constructed node for every shipped config)."""
        return Layout(tuple(cls.inputs), tuple(cls.outputs), tuple(cls.feedback_inputs), cls.tick_interval)

    def open(self, inputs: dict[str, StreamInfo]) -> dict[str, StreamInfo]:
        """Check input descriptions and return output descriptions, keyed by port."""
        raise NotImplementedError(f"{type(self).__name__}.open")

    def open_feedback(self, port: str, info: StreamInfo) -> None:
        """Receive the description of a feedback input, after every node has opened."""

    def start(self) -> Outputs:
        """Emit initial packets, if any (called once, after every node has opened)."""
        return {}

    def process(self, port: str, packet: Packet) -> Outputs:
        """Handle one packet arriving on ``port``."""
        raise NotImplementedError(f"{type(self).__name__}.process")

    def tick(self, now: float) -> Outputs:
        """Act on the clock (``now`` in seconds on the graph clock) when no data comes."""
        return {}

    def flush(self) -> Outputs:
        """Emit what is still held back (a delayed filter's tail) when the graph drains at the end."""
        return {}

    def warm(self) -> None:
        """Bring what the next :meth:`process` will touch into the CPU's caches, changing nothing.

        A live source that knows when its next sample is due (an ``lsl_inlet`` with ``wait: auto``)
        calls this on the nodes of its group just before that moment. Between two 4 ms samples the
        caches go cold, and a node's first call then costs several times its warm price (Bessel +
        SNN decoder on one sample: about 50 µs cold, 10 µs warm; docs/RESULTS.md, "Live latency:
        where the time goes"). An override runs the same code on the same parameters with a
        scratch copy of the state and a zero input; it must not change the state, emit, count or
        log anything (tests check ``state()`` and the outputs against a node never warmed).
        Default: nothing."""

    def state(self) -> dict[str, Any]:
        """Everything needed to resume after a restart (numpy arrays allowed)."""
        return {}

    def restore(self, state: dict[str, Any]) -> None:
        """Resume from a ``state()`` dict."""

    @classmethod
    def prepare_process(cls) -> None:
        """Called once in a standby process (the spare actor that takes over a dead group) for
        each node kind of the graph: do the one-off, per-process work that constructing and
        :meth:`open` would otherwise pay during a restart (import heavy modules such as scipy or
        numba kernels, which a node imports where it is constructed so that loading a graph in a
        driver stays cheap; load compiled kernels; start a library). Default: nothing."""

    def reopen_from(self, state: dict[str, Any]) -> None:
        """Called before :meth:`open` when the node is reopened after a restart (a new process),
        with its last checkpointed ``state()``: a chance to open faster than the first time (an
        LSL inlet resolves the stream it had by its uid instead of searching again). The state is
        still given to :meth:`restore` after ``open``. Default: nothing."""

    def counters(self) -> dict[str, int]:
        """Named event counts shown in the run summary (drops, gaps, reconnections, NaNs, ...)."""
        return {}

    def report(self) -> dict[str, Any]:
        """Extra results for the run summary (a sink's scores, a simulator's outcome)."""
        return {}

    def close(self) -> None:
        """Release resources."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name or self.kind!r}>"


class Source(Node):
    """A node with no inputs that produces packets when asked.

    ``read()`` returns the packets available now (``{}`` if none yet; it may block briefly, at
    most ``max_block_s``), or ``None`` once the source is exhausted (the end of a recording).
    Live sources never return ``None``.

    ``virtual_time`` is the newest data time (seconds) of a source that runs faster than real time
    (a replay at ``speed: max``); runners use it as the graph clock for ticks so that such runs
    are deterministic. Live and paced sources leave it None (the graph clock is then
    ``pylsl.local_clock()``).
    """

    inputs: ClassVar[tuple[str, ...]] = ()
    max_block_s: float = 0.01
    virtual_time: float | None = None
    prewarm: Callable[[], None] | None = None
    """Set by the runner: warms the nodes after this source (their :meth:`Node.warm`). A live source
    that predicts its next sample's arrival calls it once just before then; others ignore it."""

    def read(self) -> Outputs | None:
        raise NotImplementedError(f"{type(self).__name__}.read")

    def progress(self) -> tuple[float, float] | None:
        """``(done, total)`` in seconds of data for a finite source (a replay), else None."""
        return None

    def process(self, port: str, packet: Packet) -> Outputs:  # sources have no inputs
        raise RuntimeError(f"source {self.name!r} has no input ports")


class Sink(Node):
    """A node with no outputs: an LSL outlet, a recorder, a scorer, an actuator."""

    outputs: ClassVar[tuple[str, ...]] = ()

    def open(self, inputs: dict[str, StreamInfo]) -> dict[str, StreamInfo]:
        self.input_infos = dict(inputs)
        return {}
