"""Faults at the LSL edge, against the real liblsl on loopback: stalls, dead sources, ambiguous
streams, string markers, wrong rates, and the machine-local network scope."""
from __future__ import annotations

import logging
import os
import time
import uuid
from pathlib import Path

import numpy as np
import pylsl
import pytest

from nodes.sources.lsl_health import TimestampHealth
from nodes.sources.lsl_inlet import LslInlet
from pipeline.errors import UserError
from pipeline.lsl import from_lsl_info, to_lsl_info
from pipeline.lsl_scope import LOCAL_CONFIG, config_path
from pipeline.packet import StreamInfo


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def outlet(name: str, source_id: str, rate: float = 100.0, dtype: str = "float32",
           channels: int = 1) -> pylsl.StreamOutlet:
    info = StreamInfo(name, "Test", channels, rate, dtype, source_id=source_id)
    return pylsl.StreamOutlet(to_lsl_info(info))


def read_for(node: LslInlet, seconds: float, until: int | None = None) -> int:
    """Read for ``seconds`` (or until ``until`` samples came); return the samples read."""
    got = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end and (until is None or got < until):
        out = node.read()
        got += out["out"].n_samples if out else 0
    return got


def test_stall_is_logged_and_counted_while_it_lasts(caplog):
    name, sid = unique("stall"), unique("sid")
    out = outlet(name, sid, rate=100.0)
    node = LslInlet(source_id=sid, clock_sync=False, stall_periods=20)  # 0.2 s at 100 Hz
    node.name = "inlet"
    node.open({})
    out.push_chunk(np.zeros((5, 1), dtype=np.float32))  # at once: silence since open() is a stall too
    with caplog.at_level(logging.INFO, logger="spikeloop.node.inlet"):
        assert read_for(node, 0.1) == 5
        read_for(node, 0.4)  # silence, no data comes back
        c = node.counters()
        assert c["stalls"] == 1 and c["stalled_ms"] >= 100  # counted before the data resumes
        began = [r for r in caplog.records if "stall #1 began at" in r.getMessage()]
        assert len(began) == 1 and began[0].levelno == logging.INFO and name in began[0].getMessage()
        out.push_chunk(np.zeros((3, 1), dtype=np.float32))
        assert read_for(node, 1.0, until=3) == 3
        counts = node.counters()  # the packet's health is settled after it went through (next read, or now)
    assert any("data again at" in r.getMessage() for r in caplog.records)
    assert counts["stalls"] == 1 and counts["reconnections"] == 0
    node.close()


def test_dead_source_stops_the_run_after_stall_timeout():
    name, sid = unique("dead"), unique("sid")
    out = outlet(name, sid)
    node = LslInlet(name=name, clock_sync=False, stall_timeout_s=0.5)
    node.name = "amp"
    node.open({})
    start = time.monotonic()
    with pytest.raises(UserError) as err:
        while time.monotonic() - start < 5.0:
            node.read()
    msg = str(err.value)
    assert "\n" not in msg and "lsl_inlet 'amp'" in msg and name in msg and "stall_timeout_s 0.5" in msg
    assert 0.5 <= time.monotonic() - start < 4.0  # bounded (wide margin: CI machines are loaded)
    node.close()
    del out


def test_irregular_stream_has_no_per_marker_stalls():
    name, sid = unique("markers"), unique("sid")
    info = StreamInfo(name, "Markers", 1, 0.0, "object", source_id=sid)
    out = pylsl.StreamOutlet(to_lsl_info(info))
    plain = LslInlet(source_id=sid, clock_sync=False)
    watched = LslInlet(source_id=sid, clock_sync=False, irregular_stall_s=0.25)
    for node in (plain, watched):
        node.open({})
    time.sleep(0.3)
    got: list[list[str]] = []
    for k in range(4):  # a marker every 0.35 s
        out.push_sample([f"trial {k}"])
        end = time.monotonic() + 0.35
        while time.monotonic() < end:
            for node in (plain, watched):
                packet = node.read()
                if packet and node is plain:
                    assert packet["out"].data.dtype == object
                    got.extend(packet["out"].data.tolist())
    assert got == [[f"trial {k}"] for k in range(4)]
    assert plain.counters()["stalls"] == 0
    assert watched.counters()["stalls"] >= 3  # its own silence timeout, by choice
    for node in (plain, watched):
        node.close()


def test_ambiguous_resolve_is_an_error_unless_source_id_or_newest():
    name = unique("twin")
    first_sid, second_sid = unique("first"), unique("second")
    first = outlet(name, first_sid)
    time.sleep(0.05)
    second = outlet(name, second_sid)
    with pytest.raises(UserError) as err:
        LslInlet(name=name, resolve_timeout_s=2.0).open({})
    msg = str(err.value)
    assert "2 LSL streams match" in msg and first_sid in msg and second_sid in msg and "host" in msg
    assert "source_id" in msg and "pick: newest" in msg
    newest = LslInlet(name=name, pick="newest", resolve_timeout_s=2.0)
    assert newest.open({})["out"].source_id == second_sid
    chosen = LslInlet(name=name, source_id=first_sid, resolve_timeout_s=2.0)
    assert chosen.open({})["out"].source_id == first_sid
    for node in (newest, chosen):
        node.close()
    del first, second


def test_full_header_and_string_format_come_through():
    name, sid = unique("eeg"), unique("sid")
    lsl = pylsl.StreamInfo(name, "EEG", 2, 100.0, pylsl.cf_float32, sid)
    chans = lsl.desc().append_child("channels")
    for label, kind in (("Fz", "EEG"), ("VEOG", "EOG")):
        ch = chans.append_child("channel")
        ch.append_child_value("label", label)
        ch.append_child_value("type", kind)
    lsl.desc().append_child("filtering").append_child_value("highpass", "0.1")
    out = pylsl.StreamOutlet(lsl)
    node = LslInlet(source_id=sid)
    info = node.open({})["out"]
    xml = info.metadata["lsl_header_xml"]
    assert "<type>EOG</type>" in xml and "<highpass>0.1</highpass>" in xml
    for field in ("created_at", "uid", "session_id", "hostname"):
        assert f"<{field}>" in xml
    assert info.metadata["lsl_uid"] and info.channel_labels == ("Fz", "VEOG")
    # re-publishing does not send the header back inside the JSON metadata
    again = to_lsl_info(info, name=unique("again"))
    assert "lsl_header_xml" not in again.desc().child("spikeloop").child_value("metadata")
    assert from_lsl_info(pylsl.StreamInfo("m", "Markers", 1, 0.0, pylsl.cf_string, "x")).dtype == "object"
    node.close()
    del out


def test_rate_more_than_5_percent_off_is_counted():
    """A stream declaring 250 Hz that sends 1,000 samples/s (both by timestamps and by arrivals)."""
    h = TimestampHealth(250.0)
    reports = []
    for k in range(60):  # 6 s, 100 ms packets of 100 samples
        stamps = 50.0 + (k * 100 + np.arange(100)) / 1000.0
        r = h.update(stamps, wall=k * 0.1)
        if r is not None:
            reports.append(r)
    assert h.rate_off_windows == 1 and len(reports) == 1
    assert abs(reports[0].from_timestamps_hz - 1000.0) < 5 and abs(reports[0].from_arrivals_hz - 1000.0) < 30
    ok = TimestampHealth(250.0)
    for k in range(60):
        ok.update(50.0 + (k * 25 + np.arange(25)) / 250.0 * 1.007, wall=k * 0.1)  # 0.7 % slow: fine
    assert ok.rate_off_windows == 0 and ok.lost == 0


def _udp_sockets_of_this_process(port: int) -> list[str]:
    """Local addresses ("127.0.0.1" / "0.0.0.0") of this process's UDP sockets on ``port``."""
    inodes = set()
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for line in Path("/proc/self/net/udp").read_text().splitlines()[1:]:
        parts = line.split()
        addr, port_hex = parts[1].split(":")
        if int(port_hex, 16) == port and parts[9] in inodes:
            found.append(".".join(str(int(addr[i:i + 2], 16)) for i in (6, 4, 2, 0)))
    return found


@pytest.mark.skipif(not Path("/proc/self/net/udp").is_file(), reason="needs Linux /proc")
def test_machine_local_scope_binds_discovery_to_loopback():
    assert os.environ["SPIKELOOP_LSL_LOCAL"] == "1"  # set by conftest.py
    assert os.environ["LSLAPICFG"] == str(config_path()) and config_path().read_text() == LOCAL_CONFIG
    name = unique("scope")
    out = outlet(name, unique("sid"))
    addrs = _udp_sockets_of_this_process(16571)
    assert addrs and set(addrs) == {"127.0.0.1"}, addrs  # discovery answers on loopback only
    assert pylsl.resolve_byprop("name", name, 1, 3.0)  # and streams are still found here
    del out
