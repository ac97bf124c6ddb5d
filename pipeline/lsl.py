"""Shared Lab Streaming Layer helpers: stream descriptions both ways, resolving with clear errors.

* :func:`to_lsl_info` / :func:`from_lsl_info` convert between our :class:`~pipeline.packet.StreamInfo`
  and ``pylsl.StreamInfo``. Channel labels and units travel in the LSL description the way every
  LSL client reads them (``desc/channels/channel/{label,unit,type}``, as LabRecorder, mne-lsl and
  pylsl's ``get_channel_labels`` expect); our free-form ``metadata`` travels as JSON text in
  ``desc/spikeloop/metadata``. :func:`from_lsl_info` also keeps the sender's whole header XML
  (``metadata["lsl_header_xml"]``: per-channel types, ``desc`` extras, ``created_at``, ``uid``,
  ``session_id``, ``hostname``) so recorders copy it whole.
* String streams (LSL ``cf_string``, e.g. a ``Markers`` stream) map to numpy dtype ``object``: a
  packet's data is an object array of ``str``, shape ``(samples, channels)``.
* :func:`resolve_one` finds exactly one stream by name, type and/or source id within a timeout
  and, when it cannot, raises a :class:`~pipeline.errors.UserError` naming what it looked for and
  listing the streams it can see.

Network scope: liblsl discovers streams by multicast/broadcast on the local network and outlets
accept TCP connections on every interface. ``SPIKELOOP_LSL_LOCAL=1`` keeps LSL on this machine:
see :mod:`pipeline.lsl_scope` (applied when this module is imported).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pylsl

from pipeline.errors import UserError
from pipeline.packet import StreamInfo
from pipeline.recordings.xdf_writer import LSL_HEADER_KEY  # metadata key of the full header XML

STRING_DTYPE = "object"
"""numpy dtype name of string (marker) streams."""

# numpy dtype name <-> LSL channel format. LSL has no unsigned or bool formats.
_DTYPE_TO_LSL: dict[str, int] = {
    "float32": pylsl.cf_float32,
    "float64": pylsl.cf_double64,
    "int8": pylsl.cf_int8,
    "int16": pylsl.cf_int16,
    "int32": pylsl.cf_int32,
    "int64": pylsl.cf_int64,
}
_LSL_TO_DTYPE: dict[int, str] = {v: k for k, v in _DTYPE_TO_LSL.items()}


def is_string_dtype(dtype: str) -> bool:
    """True for the dtypes of string streams (``object``, ``str``, ``<U..``, ``S..``)."""
    try:
        return np.dtype(dtype).kind in "OUS"
    except TypeError:
        return False


def lsl_format(dtype: str, *, stream: str = "") -> int:
    """The LSL channel format for numpy dtype name ``dtype``; a UserError for unsupported dtypes."""
    if is_string_dtype(dtype):
        return pylsl.cf_string
    try:
        return _DTYPE_TO_LSL[str(dtype)]
    except KeyError:
        raise UserError(
            f"stream {stream!r}: dtype {dtype!r} cannot be sent over LSL "
            f"(supported: {', '.join(_DTYPE_TO_LSL)}, str); convert it upstream"
        ) from None


def to_lsl_info(info: StreamInfo, *, name: str | None = None, type: str | None = None,
                source_id: str | None = None) -> pylsl.StreamInfo:
    """A ``pylsl.StreamInfo`` for ``info`` (optionally renamed), with labels/units/metadata in desc."""
    lsl = pylsl.StreamInfo(
        name or info.name,
        type if type is not None else info.type,
        info.channel_count,
        info.nominal_rate,
        lsl_format(info.dtype, stream=info.name),
        source_id if source_id is not None else info.source_id,
    )
    if info.channel_count and (info.channel_labels or info.units):
        channels = lsl.desc().append_child("channels")
        for k in range(info.channel_count):
            ch = channels.append_child("channel")
            if info.channel_labels:
                ch.append_child_value("label", str(info.channel_labels[k]))
            if info.units:
                ch.append_child_value("unit", str(info.units[k]))
            ch.append_child_value("type", info.type)
    meta = {k: v for k, v in info.metadata.items() if k != LSL_HEADER_KEY}
    if meta:
        lsl.desc().append_child("spikeloop").append_child_value("metadata", json.dumps(meta, default=str))
    return lsl


def _channel_field(lsl: pylsl.StreamInfo, field: str) -> tuple[str, ...]:
    """Per-channel ``field`` values from desc, or () unless every channel has one."""
    channels = lsl.desc().child("channels")
    if channels.empty():
        return ()
    values: list[str] = []
    ch = channels.child("channel")
    while not ch.empty():
        values.append(ch.child_value(field))
        ch = ch.next_sibling("channel")
    if len(values) != lsl.channel_count() or not all(values):
        return ()
    return tuple(values)


def from_lsl_info(lsl: pylsl.StreamInfo) -> StreamInfo:
    """Our StreamInfo from a *full* ``pylsl.StreamInfo`` (``inlet.info()``, which carries desc).

    ``metadata`` gets the stream's JSON metadata (if sent by spikeloop) plus ``lsl_uid``,
    ``lsl_hostname``, ``lsl_created_at``, ``lsl_session_id`` and the whole header XML
    (``lsl_header_xml``). String streams get dtype ``object``.
    """
    fmt = lsl.channel_format()
    if fmt == pylsl.cf_string:
        dtype = STRING_DTYPE
    elif fmt in _LSL_TO_DTYPE:
        dtype = _LSL_TO_DTYPE[fmt]
    else:
        raise UserError(f"LSL stream {lsl.name()!r} has channel format {fmt} (unknown to spikeloop)")
    metadata: dict[str, Any] = {}
    text = lsl.desc().child("spikeloop").child_value("metadata")
    if text:
        try:
            metadata.update(json.loads(text))
        except ValueError:
            metadata["lsl_metadata_text"] = text
    metadata.update(lsl_uid=lsl.uid(), lsl_hostname=lsl.hostname(), lsl_created_at=lsl.created_at(),
                    lsl_session_id=lsl.session_id())
    metadata[LSL_HEADER_KEY] = lsl.as_xml()
    return StreamInfo(
        name=lsl.name(),
        type=lsl.type(),
        channel_count=lsl.channel_count(),
        nominal_rate=float(lsl.nominal_srate()),
        dtype=dtype,
        channel_labels=_channel_field(lsl, "label"),
        units=_channel_field(lsl, "unit"),
        source_id=lsl.source_id(),
        metadata=metadata,
    )


@dataclass(frozen=True)
class StreamQuery:
    """What to look for: any combination of name, type and source id (at least one)."""

    name: str | None = None
    type: str | None = None
    source_id: str | None = None

    def __post_init__(self) -> None:
        if not (self.name or self.type or self.source_id):
            raise UserError("an LSL stream query needs at least one of name, type, source_id")
        for what, value in (("name", self.name), ("type", self.type), ("source_id", self.source_id)):
            if value is not None and "'" in value:
                raise UserError(f"LSL stream {what} {value!r} may not contain a single quote")

    def predicate(self) -> str:
        """The XPath 1.0 predicate liblsl resolves with, e.g. ``name='spikes' and type='EEG'``."""
        parts = [f"{k}='{v}'" for k, v in (("name", self.name), ("type", self.type), ("source_id", self.source_id)) if v]
        return " and ".join(parts)

    def matches(self, lsl: pylsl.StreamInfo) -> bool:
        return ((not self.name or lsl.name() == self.name) and (not self.type or lsl.type() == self.type)
                and (not self.source_id or lsl.source_id() == self.source_id))

    def __str__(self) -> str:
        return self.predicate().replace(" and ", ", ")


PICKS = ("only", "newest")
"""How to choose among several matching streams: refuse (``only``) or take the newest ``created_at``."""


def describe(lsl: pylsl.StreamInfo) -> str:
    """One line about a stream: ``'spikes' (type SpikeCounts, 96 ch, 250 Hz, source_id x, host h)``."""
    rate = "irregular" if lsl.nominal_srate() == 0 else f"{lsl.nominal_srate():g} Hz"
    return (f"{lsl.name()!r} (type {lsl.type()!r}, {lsl.channel_count()} ch, {rate}, "
            f"source_id {lsl.source_id()!r}, host {lsl.hostname()!r})")


def warm_up(wait_s: float = 0.1) -> None:
    """Start liblsl in this process ahead of a first real resolve: its configuration, clock and
    resolver sockets (a query for a stream that does not exist, answered by nobody within
    ``wait_s`` s). A spare actor does this so that a restarted inlet does not pay it."""
    pylsl.local_clock()
    pylsl.resolve_bypred("uid='spikeloop-warm-up'", 1, wait_s)


def visible_streams(wait_s: float = 1.0) -> list[pylsl.StreamInfo]:
    """Every LSL stream visible from here after waiting ``wait_s`` seconds."""
    return list(pylsl.resolve_streams(wait_time=wait_s))


def resolve_one(query: StreamQuery, timeout_s: float = 5.0, *, pick: str = "only",
                ambiguity_wait_s: float = 1.0) -> pylsl.StreamInfo:
    """Resolve exactly one stream matching ``query`` within ``timeout_s`` seconds.

    Args:
        query: name, type and/or source_id.
        timeout_s: seconds to wait for a first match.
        pick: ``only``: several matches (different uids) are an error; ``newest``: take the one
            created last (``created_at``). With ``source_id`` in the query and several matches
            anyway, the newest is taken and a warning logged.
        ambiguity_wait_s: after the first match, seconds to keep looking for a second one
            (liblsl returns as soon as one answers).

    Raises:
        UserError: no stream matched (the message lists the visible streams), or several streams
            matched and ``pick`` is ``only`` (the message lists name, source_id and host of each).
    """
    if pick not in PICKS:
        raise UserError(f"LSL stream pick must be one of {', '.join(PICKS)}, got {pick!r}")
    found = pylsl.resolve_bypred(query.predicate(), 1, timeout_s)
    unique = {s.uid(): s for s in found if query.matches(s)}
    if len(unique) == 1 and ambiguity_wait_s > 0:
        more = pylsl.resolve_bypred(query.predicate(), 2, ambiguity_wait_s)
        unique.update({s.uid(): s for s in more if query.matches(s)})
    if len(unique) == 1:
        return next(iter(unique.values()))
    if not unique:
        others = visible_streams(wait_s=min(1.0, max(0.6, timeout_s / 4)))  # answers come in ~0.5 s waves
        seen = "; ".join(describe(s) for s in others) if others else "none"
        raise UserError(
            f"no LSL stream with {query} found within {timeout_s:g} s. Visible streams: {seen}. "
            "Check the name/type/source_id, that the sender is running, and liblsl's network scope"
        )
    newest = max(unique.values(), key=lambda s: s.created_at())
    listing = "; ".join(f"{describe(s)} created at {s.created_at():.1f}" for s in
                        sorted(unique.values(), key=lambda s: s.created_at()))
    if pick == "newest" or query.source_id:
        if query.source_id and pick != "newest":
            logging.getLogger("spikeloop.lsl").warning(
                "%d LSL streams match %s (%s); taking the newest", len(unique), query, listing)
        return newest
    raise UserError(
        f"{len(unique)} LSL streams match {query}: {listing}. Give the one you mean by source_id, "
        "or pick: newest to take the newest"
    )
