"""Dev check (issue 16): NeuroBench's own metrics agree with ``spikeloop evaluate`` on the bundled models.

Runs ``neurobench.benchmarks.Benchmark`` (R², ActivationSparsity, SynapticOperations, Footprint)
on torch networks rebuilt from the bundled model files and compares with
:func:`nodes.decoders.evaluation.evaluate_model` on the same stretch of the test part (the first
1,000 bins, to keep the test short). Skipped when the ``neurobench`` package is not installed
(it is not a runtime dependency; install it with ``pip install --no-deps neurobench`` — its
declared dependencies pull torchaudio and tonic, which these checks do not use).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

nb = pytest.importorskip("neurobench", reason="neurobench not installed (pip install --no-deps neurobench)")

import torch  # noqa: E402
from torch import nn  # noqa: E402

from nodes.decoders.data import load_data  # noqa: E402
from nodes.decoders.evaluation import evaluate_model  # noqa: E402
from nodes.decoders.torch_models import from_arrays  # noqa: E402
from pipeline.modelfile import load_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
N = 1000


@pytest.fixture(scope="module")
def data():
    d = load_data(str(ROOT / "recordings" / "reaching_sample.xdfz"))
    t = d.split["test"]
    return dataclasses.replace(d, split={**d.split, "test": slice(t.start, t.start + N)})


class _Streaming(nn.Module):
    """SNN_Streaming for NeuroBench: a batch is consecutive 4 ms bins (N, C) → velocity (N, 2) mm/s,
    state carried across batches (as NeuroBench's primate-reaching SNN baseline)."""

    def __init__(self, net: nn.Module, scale: np.ndarray, mean: np.ndarray) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("target_scale", torch.from_numpy(scale))
        self.register_buffer("target_mean", torch.from_numpy(mean))
        self.state = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, self.state, _ = self.net((x > 0).float()[:, None, :], self.state)
        return y[:, 0] * self.target_scale + self.target_mean


class _ANN(nn.Module):
    """The ANN file as a plain nn.Sequential with ReLU modules (what NeuroBench hooks), input: 200 ms counts."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        n = sum(1 for k in arrays if k.startswith("W"))
        for l in range(n):
            fc = nn.Linear(*arrays[f"W{l}"].shape[::-1])
            with torch.no_grad():
                fc.weight.copy_(torch.from_numpy(arrays[f"W{l}"]))
                fc.bias.copy_(torch.from_numpy(arrays[f"b{l}"]))
            layers += [fc, nn.ReLU()] if l < n - 1 else [fc]
        self.seq = nn.Sequential(*layers)
        for k in ("in_mean", "in_std", "target_scale", "target_mean"):
            self.register_buffer(k, torch.from_numpy(arrays[k]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.seq((x - self.in_mean) / self.in_std) * self.target_scale + self.target_mean


def _run_neurobench(net: nn.Module, x: np.ndarray, y: np.ndarray, spiking: bool) -> dict:
    import snntorch as snn
    from neurobench.benchmarks import Benchmark
    from neurobench.metrics.static import Footprint
    from neurobench.metrics.workload import R2, ActivationSparsity, SynapticOperations
    from neurobench.models import TorchModel

    model = TorchModel(net)
    if spiking:
        model.add_activation_module(snn.SpikingNeuron)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y)),
                                         batch_size=500, shuffle=False)
    bench = Benchmark(model, loader, [], [], [[Footprint], [R2, ActivationSparsity, SynapticOperations]])
    return bench.run(quiet=True)


def test_snn_streaming_agrees_with_neurobench(data):
    torch.set_num_threads(1)
    path = ROOT / "models" / "snn_streaming_sample.npz"
    arrays, meta = load_model(path)
    ours = evaluate_model(str(path), data, ["none"], latency_steps=10)
    net = _Streaming(from_arrays(arrays, meta), arrays["target_scale"], arrays["target_mean"])
    sl = data.split["test"]
    with torch.no_grad():
        res = _run_neurobench(net, data.spikes[sl].astype(np.float32), data.velocity[sl].astype(np.float32), True)
    assert res["R2"] == pytest.approx(ours["r2"]["none"], abs=1e-4)
    assert res["ActivationSparsity"] == pytest.approx(ours["activation_sparsity"], abs=1e-6)
    ops = res["SynapticOperations"]
    assert ops["Effective_MACs"] == 0
    assert ops["Effective_ACs"] == pytest.approx(ours["acs_per_step"], rel=1e-6)
    # NeuroBench's footprint also counts snntorch's own per-layer buffers (graded_spikes_factor,
    # reset_mechanism_val, ...: bookkeeping, not model parameters); the rest is the same bytes
    import snntorch as snn

    fresh = from_arrays(arrays, meta)  # NeuroBench measures the footprint before the first step
    internal = sum(b.numel() * b.element_size() for m in fresh.modules() if isinstance(m, snn.SpikingNeuron)
                   for b in m.buffers(recurse=False))
    assert internal <= 3 * 4 * len(meta["architecture"]["layers"])  # a few scalars per layer
    assert res["Footprint"] == ours["footprint_bytes"] + internal


def test_ann_agrees_with_neurobench(data):
    from nodes.decoders.features import FeatureSpec, features

    torch.set_num_threads(1)
    path = ROOT / "models" / "ann_sample.npz"
    arrays, meta = load_model(path)
    ours = evaluate_model(str(path), data, ["none"], latency_steps=10)
    sl = data.split["test"]
    x = features(FeatureSpec.from_dict(meta["features"]), data.spikes[sl]).astype(np.float32)  # cold start, as the node
    with torch.no_grad():
        res = _run_neurobench(_ANN(arrays), x, data.velocity[sl].astype(np.float32), False)
    assert res["R2"] == pytest.approx(ours["r2"]["none"], abs=1e-4)
    assert res["ActivationSparsity"] == pytest.approx(ours["activation_sparsity"], abs=1e-6)
    ops = res["SynapticOperations"]
    assert ops["Effective_ACs"] == 0
    assert ops["Effective_MACs"] == pytest.approx(ours["macs_per_step"], rel=1e-6)
    assert res["Footprint"] == ours["footprint_bytes"]
