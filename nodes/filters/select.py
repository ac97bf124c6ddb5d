"""Channel selection: keep a subset of a stream's channels, by index or by label."""
from __future__ import annotations

import numpy as np

from pipeline.node import Node, StreamMismatch, require
from pipeline.packet import Packet, StreamInfo


class SelectChannels(Node):
    """Keep some channels of a regular or irregular stream, in the given order.

    Params:
        channels: channel indices (0-based ints) or labels (strings), e.g. ``[0, 1, 2]`` or
            ``["vx"]``. Labels need the input stream to carry channel labels.

    Output: shape ``(samples, len(channels))``, same timestamps, rate, units and dtype.
    """

    kind = "select_channels"

    def __init__(self, channels: list[int | str]) -> None:
        if not isinstance(channels, (list, tuple)) or not channels:
            raise ValueError("channels must be a non-empty list of indices or labels")
        self.channels = list(channels)
        self._index = np.zeros(0, dtype=np.intp)

    def open(self, inputs: dict[str, StreamInfo]) -> dict[str, StreamInfo]:
        info = require(inputs, "in")
        index = []
        for ch in self.channels:
            if isinstance(ch, str):
                if ch not in info.channel_labels:
                    raise StreamMismatch("in", f"channel labels (no {ch!r})", list(self.channels), list(info.channel_labels))
                index.append(info.channel_labels.index(ch))
            elif isinstance(ch, int) and 0 <= ch < info.channel_count:
                index.append(ch)
            else:
                raise StreamMismatch("in", f"channel count (index {ch!r} out of range)", f"> {ch}", info.channel_count)
        self._index = np.asarray(index, dtype=np.intp)
        pick = lambda values: tuple(values[i] for i in index) if values else ()  # noqa: E731
        return {"out": info.with_(channel_count=len(index), channel_labels=pick(info.channel_labels), units=pick(info.units))}

    def process(self, port: str, packet: Packet) -> dict[str, Packet]:
        return {"out": packet.derive(packet.data[:, self._index])}
