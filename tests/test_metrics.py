"""Run metrics in fixed memory: streaming histogram accuracy and size, strict JSON summaries."""
from __future__ import annotations

import json
import pickle
import sys

import numpy as np
import pytest

from pipeline.metrics import (
    LatencyStats,
    NodeStats,
    StreamingHistogram,
    build_summary,
    dumps_json,
    write_json,
)

QS = [0, 0.1, 1, 5, 25, 50, 75, 90, 95, 99, 99.9, 99.99, 100]


def heavy_tailed(rng: np.random.Generator, n: int) -> np.ndarray:
    """Latency-like seconds: a lognormal body (~0.1-1 ms) plus a Pareto tail reaching seconds."""
    return rng.lognormal(np.log(2e-4), 0.8, n) + rng.pareto(1.2, n) * 1e-4


def rel_err(est, exact) -> float:
    est, exact = np.asarray(est, dtype=float), np.asarray(exact, dtype=float)
    return float(np.max(np.abs(est - exact) / np.abs(exact)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_percentiles_within_one_percent_and_exact_moments(seed):
    rng = np.random.default_rng(seed)
    x = heavy_tailed(rng, 200_000)
    h = StreamingHistogram()
    for v in x[:50_000]:          # one at a time, as the runners do
        h.append(float(v))
    h.extend(x[50_000:])          # and in bulk
    assert rel_err(h.percentile(QS), np.percentile(x, QS)) <= 0.01
    assert h.count == x.size
    assert h.min == x.min() and h.max == x.max()
    assert h.mean() == pytest.approx(float(np.mean(x)), rel=1e-12)
    # the check can fail: a 5 % grid is not within 1 %
    coarse = StreamingHistogram(rel_width=0.05)
    coarse.extend(x)
    assert rel_err(coarse.percentile(QS), np.percentile(x, QS)) > 0.01


def test_signed_values_and_integer_nanoseconds():
    rng = np.random.default_rng(3)
    clock_skew = np.concatenate([-heavy_tailed(rng, 20_000), heavy_tailed(rng, 80_000)])
    h = StreamingHistogram()
    h.extend(clock_skew)
    qs = [0, 1, 10, 15, 25, 50, 90, 99, 100]
    assert rel_err(h.percentile(qs), np.percentile(clock_skew, qs)) <= 0.01
    h.extend([np.nan, np.nan])
    assert h.nan == 2 and h.count == clock_skew.size and h.max == clock_skew.max()
    ns = rng.integers(200, 5_000_000, 100_000)
    stats = NodeStats()
    for v in ns:
        stats.proc_ns.append(int(v))
    d = stats.to_dict()
    assert d["calls"] == ns.size
    assert rel_err([d["proc_us_p50"], d["proc_us_p99"]], np.percentile(ns / 1e3, [50, 99])) <= 0.01
    assert d["proc_us_total"] == pytest.approx(ns.sum() / 1e3, rel=1e-12)
    assert d["proc_us_max"] == ns.max() / 1e3


def test_memory_per_sample_is_bounded_after_a_million_adds():
    """Sizes are counted (array lengths, bytes), not timed."""
    stats, lat = NodeStats(), LatencyStats()
    sizes = []
    for n in (1_000, 1_000_000):
        while stats.proc_ns.count + len(stats.proc_ns._buf) < n:
            stats.proc_ns.append(1234)
            lat.add(0.0012)
        h, l = stats.proc_ns, lat.values
        assert len(h._buf) < h.batch and len(l._buf) < l.batch
        sizes.append((h._pos.size, h.nbytes, l._pos.size, l.nbytes, len(pickle.dumps(stats)), len(pickle.dumps(lat))))
    assert sizes[0][:4] == sizes[1][:4]
    assert all(abs(a - b) <= 64 for a, b in zip(sizes[0][4:], sizes[1][4:]))  # a few bytes: bigger ints
    assert stats.proc_ns.count == lat.values.count == 1_000_000
    assert sizes[1][1] < 32_000 and sizes[1][3] < 32_000  # about 20 kB per histogram
    assert sys.getsizeof(stats.proc_ns._buf) < 8 * stats.proc_ns.batch + 1024


def test_merge_across_processes_equals_one_histogram():
    rng = np.random.default_rng(4)
    parts = [heavy_tailed(rng, 30_000) for _ in range(3)]
    total = LatencyStats()
    for part in parts:
        remote = LatencyStats()  # as an actor keeps it, shipped back pickled
        for v in part:
            remote.add(float(v))
        total.extend(pickle.loads(pickle.dumps(remote)).values)
    x = np.concatenate(parts)
    d = total.to_dict()
    assert d["count"] == x.size and d["max_ms"] == x.max() * 1e3
    assert rel_err([d["p50_ms"], d["p99_ms"]], np.percentile(x * 1e3, [50, 99])) <= 0.01
    assert LatencyStats().to_dict() == {"count": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}


def _reject(const: str):
    raise ValueError(f"invalid JSON constant {const}")


def test_summary_json_is_strict_with_nan_inf_and_numpy(tmp_path):
    summary = build_summary(
        graph="g", runner="local", wall_s=0.0, stats={"a": NodeStats()}, counters={"a": {"nan": np.int64(2)}},
        reports={"score": {"r2": float("nan"), "r2_x": np.float32("inf"), "r2_y": np.float64(0.5),
                           "n": np.int64(3), "arr": np.array([1.0, np.nan]), "neg": -np.inf}},
        latency=LatencyStats(), source_samples=0, stopped_by="end of data",
    )
    path = tmp_path / "s.json"
    write_json(summary, path)
    back = json.loads(path.read_text(), parse_constant=_reject)
    assert back["samples_per_s"] is None
    score = back["reports"]["score"]
    assert score == {"r2": None, "r2_x": None, "r2_y": 0.5, "n": 3, "arr": [1.0, None], "neg": None}
    assert back["nodes"]["a"]["counters"] == {"nan": 2}
    with pytest.raises(ValueError):  # the check itself can fail
        json.loads(json.dumps({"x": float("nan")}), parse_constant=_reject)
    with pytest.raises(TypeError, match="not JSON-serialisable: object"):
        dumps_json({"x": object()})


def test_executor_seq_fast_paths_equal_stamp_and_check_through_a_restore():
    """GroupExecutor uses SeqCounter / SeqTracker through their public tables (bound once): the
    gaps it counts and the numbers it stamps equal what ``check`` / ``stamp`` give, also after a
    checkpoint is restored into a fresh executor (its bound tables filled in place)."""
    from nodes.filters.bessel import BesselFilter
    from pipeline.metrics import SeqCounter, SeqTracker
    from pipeline.packet import Packet, StreamInfo
    from pipeline.runners.executor import GroupExecutor

    def executor() -> GroupExecutor:
        f = BesselFilter(order=2, cutoff_hz=20.0)
        f.name = "f"
        f.open({"in": StreamInfo("x", "T", 2, 250.0, "float64")})
        return GroupExecutor({"f": f}, {("f", "out"): [("ext", "in")]}, sinks=[])

    arriving = [0, 1, 3, 4, -1, 7, 8, 8, 12, -1, 13, 20, 21]  # gaps, unnumbered packets, a repeat
    ref_in, ref_out = SeqTracker(), SeqCounter()
    ex = executor()
    stamped, want_gaps = [], 0
    for i, seq in enumerate(arriving):
        if i == 6:  # checkpoint and resume in a fresh executor half-way
            state = ex.checkpoint()
            ex = executor()
            ex.restore(state)
            assert ex._seq_next is ex.seq_out.next and ex._seq_last is ex.seq_in.last
        packet = Packet(np.full((3, 2), float(i)), np.arange(3) + 3.0 * i, 0.0, seq)
        want_gaps += ref_in.check(("f", "in"), seq)
        out = ex.deliver("f", "in", packet)
        assert len(out) == 1 and out[0][:2] == ("ext", "in")
        stamped.append(out[0][2].seq)
        assert stamped[-1] == ref_out.stamp(("f", "out"), Packet(np.zeros((1, 1)), np.zeros(1), 0.0)).seq
    # 1->3: 1, 4->-1: 0, -1->7: 7 (check() counts from the -1), 8->8: 0, 8->12: 3, -1->13: 13, 13->20: 6
    assert want_gaps == 1 + 7 + 3 + 13 + 6
    assert ex.stats["f"].gaps == want_gaps
    assert stamped == list(range(len(arriving)))
    assert ex.seq_in.snapshot() == ref_in.last and ex.seq_out.snapshot() == ref_out.next
