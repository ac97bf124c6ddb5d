"""Decoder node: model files, stream checks, one row per input row, state()/restore(), no torch."""
from __future__ import annotations

import subprocess
from pathlib import Path
import sys

import numpy as np
import pytest

from pipeline.errors import UserError
from pipeline.modelfile import save_model
from pipeline.node import StreamMismatch
from pipeline.packet import Packet, StreamInfo
from pipeline.registry import make_node

from nodes.decoders.data import synthetic_data
REPO = Path(__file__).resolve().parents[1]

C = 24


def _random_model(tmp_path, kind: str, seed: int = 0) -> str:
    import torch

    from nodes.decoders.specs import base_metadata
    from nodes.decoders.torch_models import build

    torch.manual_seed(seed)
    meta = base_metadata(kind, C)
    model = build(kind, meta)
    if kind.startswith("snn"):
        with torch.no_grad():
            for layer in model.layers:
                layer.fc.weight.mul_(2.5)
    arrays = {**model.export(), "target_scale": np.array([100.0, 100.0], np.float32),
              "target_mean": np.zeros(2, np.float32)}
    return str(save_model(tmp_path / f"{kind}.npz", arrays, meta))


def _spikes_info(channels: int = C, rate: float = 250.0) -> StreamInfo:
    return StreamInfo("spikes", "SpikeCounts", channels, rate, "float32")


@pytest.mark.parametrize("kind", ["snn_streaming", "snn_3d", "ann", "ann_3d", "lstm"])
def test_node_outputs_one_row_per_input_and_restores_state(tmp_path, kind):
    path = _random_model(tmp_path, kind)
    data = synthetic_data(seconds=8, channels=C, seed=1)
    x, ts = data.spikes, 100.0 + data.timestamps
    node = make_node("decoder", model=path)
    out_info = node.open({"in": _spikes_info()})["out"]
    assert out_info.channel_count == 2 and out_info.nominal_rate == 250.0
    assert out_info.channel_labels == ("vx", "vy")
    full = [node.process("in", Packet(x[i:i + 100], ts[i:i + 100], 1.0)) ["out"] for i in range(0, 1000, 100)]
    assert all(p.data.shape == (100, 2) for p in full)
    np.testing.assert_array_equal(np.concatenate([p.timestamps for p in full]), ts[:1000])
    y_full = np.concatenate([p.data for p in full])
    assert np.isfinite(y_full).all() and y_full.std() > 0

    other = make_node("snn_decoder", model=path)  # the alias kind
    other.open({"in": _spikes_info()})
    head = other.process("in", Packet(x[:500], ts[:500], 1.0))["out"].data
    saved = other.state()
    other.process("in", Packet(x[500:700] * 3, ts[500:700], 1.0))  # diverge
    fresh = make_node("decoder", model=path)
    fresh.open({"in": _spikes_info()})
    fresh.restore(saved)
    tail = fresh.process("in", Packet(x[500:1000], ts[500:1000], 1.0))["out"].data
    if kind.startswith("snn"):  # spikes and 2^-14-grid weights: exact for any chunking
        np.testing.assert_array_equal(np.concatenate([head, tail]), y_full)
    else:  # float matmuls over different chunk sizes round differently (BLAS blocking)
        np.testing.assert_allclose(np.concatenate([head, tail]), y_full, rtol=1e-5, atol=1e-4)


def test_open_refuses_wrong_channels_or_rate(tmp_path):
    path = _random_model(tmp_path, "snn_streaming")
    with pytest.raises(StreamMismatch, match="channel count"):
        make_node("decoder", model=path).open({"in": _spikes_info(channels=C + 1)})
    with pytest.raises(StreamMismatch, match="rate"):
        make_node("decoder", model=path).open({"in": _spikes_info(rate=1000.0)})


def test_bad_model_files_are_refused(tmp_path):
    with pytest.raises(UserError, match="not found"):
        make_node("decoder", model=str(tmp_path / "missing.npz"))
    other = save_model(tmp_path / "ctrl.npz", {"w": np.zeros(3)}, {"family": "controller", "kind": "crnn"})
    with pytest.raises(UserError, match="family"):
        make_node("decoder", model=str(other))
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(UserError):
        make_node("decoder", model=str(tmp_path / "junk.npz"))


def test_nonfinite_counts_are_zeroed_and_counted(tmp_path):
    path = _random_model(tmp_path, "snn_streaming")
    data = synthetic_data(seconds=2, channels=C, seed=2)
    x = data.spikes[:200].copy()
    clean = x.copy()
    x[5, 3] = np.nan
    x[9, 0] = np.inf
    clean[5, 3] = clean[9, 0] = 0
    a, b = make_node("decoder", model=path), make_node("decoder", model=path)
    for n in (a, b):
        n.open({"in": _spikes_info()})
    ya = a.process("in", Packet(x, data.timestamps[:200], 0.0))["out"].data
    yb = b.process("in", Packet(clean, data.timestamps[:200], 0.0))["out"].data
    np.testing.assert_array_equal(ya, yb)
    assert a.counters()["nonfinite"] == 2 and b.counters()["nonfinite"] == 0


def test_runtime_path_does_not_import_torch(tmp_path):
    path = _random_model(tmp_path, "snn_streaming")
    code = (
        "import sys, numpy as np\n"
        "from pipeline.registry import make_node\n"
        "from pipeline.packet import Packet, StreamInfo\n"
        f"d = make_node('decoder', model={path!r}); f = make_node('bessel')\n"
        f"i = d.open({{'in': StreamInfo('spikes', 'SpikeCounts', {C}, 250.0, 'float32')}})\n"
        "f.open({'in': i['out']})\n"
        f"y = f.process('in', d.process('in', Packet(np.ones((10, {C}), np.float32), np.arange(10.0), 0.0))['out'])\n"
        "assert y['out'].data.shape == (10, 2)\n"
        "print('torch' in sys.modules, 'snntorch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False False"
