"""Issue 16: the firing-rate objective (``--rate-penalty``) trains SNNs that spike less."""
from __future__ import annotations

import numpy as np
import pytest

from pipeline.cli import main
from pipeline.modelfile import load_model


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    from pipeline.recordings.synth import SynthParams, generate

    path = tmp_path_factory.mktemp("rec") / "reach.xdfz"
    generate(path, SynthParams(channels=12, seed=8), 48.0, progress=False)
    return str(path)


def _spikes_per_neuron(path: str, recording: str) -> float:
    from nodes.decoders.data import load_data
    from nodes.decoders.kernels import Activity, make_kernel

    arrays, meta = load_model(path)
    data = load_data(recording)
    act = Activity()
    make_kernel(arrays, meta).run(data.spikes[data.split["val"]], act)
    return act.summary()["spikes_per_neuron_per_step"]


def test_rate_penalty_cuts_spikes(recording, tmp_path):
    common = ["--recording", recording, "--epochs", "1", "--window", "40", "--batch-size", "4", "--model", "snn_streaming"]
    plain, sparse = str(tmp_path / "plain.npz"), str(tmp_path / "sparse.npz")
    assert main(["train", *common, "--out", plain]) == 0
    assert main(["train", *common, "--out", sparse, "--rate-penalty", "20"]) == 0
    _, meta = load_model(sparse)
    assert meta["training"]["rate_penalty"] == 20.0 and "spikes per neuron" in meta["training"]["loss"]
    a, b = _spikes_per_neuron(plain, recording), _spikes_per_neuron(sparse, recording)
    assert np.isfinite(a) and b < 0.8 * a, (a, b)


def test_rate_penalty_refused_for_non_spiking_models(recording, tmp_path, capsys):
    rc = main(["train", "--model", "ann", "--recording", recording, "--out", str(tmp_path / "a.npz"), "--rate-penalty", "1"])
    assert rc == 2 and "spiking" in capsys.readouterr().err
