"""Helpers shared by the decoder and attention tests: test inputs, random chunkings, kernel runs."""
from __future__ import annotations

import numpy as np
import pytest


def poisson_counts(n: int, channels: int, seed: int = 0) -> np.ndarray:
    """(n, channels) Poisson spike counts with slowly varying rates (a few spikes per 4 ms bin at most)."""
    rng = np.random.default_rng(seed)
    rate = 0.25 + 0.2 * np.sin(np.arange(n)[:, None] / 40.0 + rng.uniform(0, 6, channels))
    return rng.poisson(np.clip(rate, 0.01, None)).astype(np.float32)


def random_chunks(n: int, seed: int) -> list[tuple[int, int]]:
    """Cut ``n`` samples into packets of 1, 2, 3, 17, 64 or 250 samples, in random order."""
    rng = np.random.default_rng(seed)
    out, i = [], 0
    while i < n:
        k = int(rng.choice([1, 2, 3, 17, 64, 250]))
        out.append((i, min(n, i + k)))
        i += k
    return out


def run_in_chunks(kernel, counts: np.ndarray, chunks: list[tuple[int, int]]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Outputs (n, outputs) and, for spiking kernels, per-layer spikes (n, units) over all chunks."""
    kernel.record = True
    ys, spikes = [], []
    for a, b in chunks:
        ys.append(kernel.run(counts[a:b]))
        if "spikes" in kernel.last_record:
            spikes.append(kernel.last_record["spikes"])
    y = np.concatenate(ys)
    if not spikes:
        return y, []
    return y, [np.concatenate([s[l] for s in spikes]) for l in range(len(spikes[0]))]


@pytest.fixture(scope="module")
def one_torch_thread():
    """Step-by-step torch on tiny tensors: one intra-op thread (others only contend, 10x slower)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
