"""The timestamp health estimator on made-up timestamps (no LSL): losses only from real gaps."""
from __future__ import annotations

import numpy as np
import pytest

from nodes.sources.lsl_health import TimestampHealth

RATE = 250.0
N = 250 * 20  # 20 s
IDEAL = 100.0 + np.arange(N) / RATE


def run(stamps: np.ndarray, chunk: int = 10, rate: float = RATE) -> dict[str, int]:
    h = TimestampHealth(rate)
    for a in range(0, len(stamps), chunk):
        h.update(stamps[a:a + chunk], wall=a / rate)
    h.flush()
    return h.counters()


def _pusher_delays(rng: np.random.Generator) -> np.ndarray:
    """Stamps of a pusher that stamps at push time: delays up to 300 ms, then bursts (monotonic)."""
    late = IDEAL.copy()
    for start in rng.integers(0, N - 100, 15):
        late[start:start + 75] = late[start + 75] + np.arange(75) * 1e-5  # held back, then a burst
    return np.maximum.accumulate(late + rng.exponential(0.002, N))


@pytest.mark.parametrize("chunk", [1, 10, 64])
def test_no_false_losses_from_jitter_bursts_backwards_steps_or_drift(chunk):
    rng = np.random.default_rng(0)
    assert run(IDEAL, chunk)["lost_samples_est"] == 0
    assert run(_pusher_delays(rng), chunk)["lost_samples_est"] == 0
    assert run(IDEAL + rng.uniform(0, 0.02, N), chunk)["lost_samples_est"] == 0  # i.i.d. jitter (reorders)
    back = IDEAL.copy()
    back[[500, 900, 1500]] -= 0.5  # three samples far out of order
    c = run(back, chunk)
    assert c["lost_samples_est"] == 0 and c["ts_backwards"] == 3
    jump = IDEAL.copy()
    jump[2500:] -= 12.0  # the sender's clock jumps back 12 s
    c = run(jump, chunk)
    assert c["lost_samples_est"] == 0 and c["ts_backwards"] == 1
    assert run(100.0 + np.arange(N) / RATE * 1.0003, chunk)["lost_samples_est"] == 0  # 300 ppm slow clock


@pytest.mark.parametrize("lost", [1, 5, 37, 500])
def test_a_real_gap_is_counted_once_with_its_size(lost):
    keep = np.r_[0:2000, 2000 + lost:N]
    c = run(IDEAL[keep])
    assert c["lost_samples_est"] == lost and c["discontinuities"] == 1
    rng = np.random.default_rng(1)
    c = run(_pusher_delays(rng)[keep], chunk=16)
    assert c["lost_samples_est"] == lost and c["discontinuities"] == 1
