"""Controllers: the quantiser, the BIF neuron, lossless CRNN -> BIF conversion on real scans, torch twin."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from nodes.control.kernels import BifKernel, CrnnKernel, CrnnParams, _Bif, conv_lengths, load_params, quantise
from tests.conftest import LIDAR_DATASET, REPO

SHIPPED = REPO / "models" / "crnn_q8.npz"
needs_data = pytest.mark.skipif(not LIDAR_DATASET.is_dir(), reason=f"ICRA 2020 LiDAR dataset not found at {LIDAR_DATASET}")


def test_feature_count_from_541_beams():
    assert conv_lengths(541) == [179, 59, 28, 28]


def test_quantiser_rounds_half_up_and_clamps():
    x = np.array([-1.0, -0.26, -0.24, 0.0, 0.24, 0.25, 0.74, 0.76, 5.0])
    np.testing.assert_allclose(quantise(x, 0.5, 0, 3), [0, 0, 0, 0, 0, 0.5, 0.5, 1.0, 1.5])
    np.testing.assert_allclose(quantise(x, 0.5, -3, 3), [-1.0, -0.5, 0, 0, 0, 0.5, 0.5, 1.0, 1.5])


def test_torch_quantiser_matches_numpy_and_passes_gradients_straight_through():
    torch = pytest.importorskip("torch")
    from nodes.control.torch_models import LearnedStepQuantiser

    q = LearnedStepQuantiser(levels=4, signed=True, step=0.5)
    x = torch.tensor([[-2.0, -0.6, -0.1, 0.3, 0.8, 1.2, 3.0]], requires_grad=True)
    y = q(x)
    np.testing.assert_allclose(y.detach().numpy(), quantise(x.detach().numpy(), 0.5, -3, 3))
    y.sum().backward()
    # straight-through inside the range, zero where clamped
    np.testing.assert_allclose(x.grad.numpy(), [[0, 1, 1, 1, 1, 1, 0]])
    assert q.step.grad is not None and q.step.grad.item() != 0


def test_bif_neuron_settles_on_the_quantised_value_and_respects_bounds():
    n = _Bif((4,), theta=0.25, n_min=-3, n_max=3)
    total = np.array([0.6, -0.3, 2.0, 0.1])  # delivered at the first step only
    spikes = [n(total)] + [n(None) for _ in range(9)]
    s = np.array(spikes)
    assert set(np.unique(s)) <= {-1.0, 0.0, 1.0}
    np.testing.assert_allclose(0.25 * n.s, quantise(total, 0.25, -3, 3))
    assert s[:, 0].tolist()[:3] == [1, 1, 0]  # 0.6/0.25 + 1/2 = 2.9 -> two spikes, one per step
    assert s[:, 2].sum() == 3  # clamped at S_max although the input asks for 8
    assert np.all(n.v[:2] >= 0) and np.all(n.v[:2] < 0.25)  # at rest the membrane is in [0, theta)
    # a later negative input is corrected with -1 spikes
    n2 = _Bif((1,), theta=1.0, n_min=0, n_max=7)
    out = [n2(np.array([3.2]))] + [n2(None) for _ in range(3)] + [n2(np.array([-2.0]))] + [n2(None) for _ in range(3)]
    assert [int(o[0]) for o in out] == [1, 1, 1, 0, -1, -1, 0, 0]
    assert n2.s[0] == 1  # Q(3.2 - 2.0) = 1


def _test_sequences(n: int = 12):
    from nodes.control.dataset import standard_split

    seqs = standard_split(LIDAR_DATASET).sequences("test")
    pick = np.linspace(0, len(seqs) - 1, n).astype(int)
    return seqs.scans[pick, :16], seqs.state[pick, :16], seqs.steering[pick, :16]


def _quantised_params() -> CrnnParams:
    if SHIPPED.is_file():
        return load_params(str(SHIPPED))
    torch = pytest.importorskip("torch")  # no shipped model: a seeded untrained network, steps set on real scans
    from nodes.control.torch_models import CRNN
    from nodes.control.training import base_metadata

    torch.manual_seed(0)
    m = CRNN(levels=8)
    scans, state, _ = _test_sequences(4)
    m.init_steps(torch.from_numpy(scans), torch.from_numpy(state))
    return CrnnParams(m.export(), base_metadata(8, "test"))


@needs_data
def test_spiking_controller_equals_quantised_on_real_scans():
    params = _quantised_params()
    scans, state, _ = _test_sequences()
    q = CrnnKernel(params, mode="quant").run(scans, state)
    s, spikes = BifKernel(params, timesteps=2 * params.levels + 8, batch=len(scans)).run(scans, state)
    assert np.max(np.abs(s - q)) < 1e-5  # lossless: the quantised network's output, to rounding
    assert np.all(spikes > 0)
    # with too few steps the neurons cannot reach their counts: the outputs differ
    s1, _ = BifKernel(params, timesteps=1, batch=len(scans)).run(scans, state)
    assert np.max(np.abs(s1 - q)) > 1e-3
    # streaming one scan at a time (batch 1, as in a graph) gives the same as the batch
    k = BifKernel(params, timesteps=2 * params.levels + 8)
    one = np.array([k.step(scans[0, t:t + 1], state[0, t:t + 1])[0] for t in range(scans.shape[1])])
    np.testing.assert_allclose(one, s[0], atol=1e-12)


@needs_data
def test_numpy_kernels_match_the_torch_twin():
    torch = pytest.importorskip("torch")
    from nodes.control.torch_models import CRNN

    params = _quantised_params()
    scans, state, _ = _test_sequences(6)
    for levels, mode in ((None, "float"), (params.levels, "quant")):
        m = CRNN.from_arrays(params.arrays, levels).double()
        with torch.no_grad():
            t, _ = m(torch.from_numpy(scans).double(), torch.from_numpy(state).double())
        n = CrnnKernel(params, mode=mode).run(scans, state)
        np.testing.assert_allclose(t.numpy(), n, atol=1e-9)


def test_runtime_path_does_not_import_torch():
    code = ("import sys; import nodes.control.nodes, nodes.control.kernels, nodes.control.simulator, "
            "nodes.control.planners; from pipeline.registry import node_class; node_class('bif_controller'); "
            "node_class('robot_sim'); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
