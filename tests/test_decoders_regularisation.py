"""Issue 16: training options against overfitting (--dropout, --input-noise, --learn-neurons for
SNN_3D) and fine-tuning from a model file (--init): recorded in the model file, refused where
they do not apply, and the kernels stay exact (dropout/noise act in training only)."""
from __future__ import annotations

import numpy as np
import pytest

from pipeline.cli import main
from pipeline.modelfile import load_model


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    from pipeline.recordings.synth import SynthParams, generate

    path = tmp_path_factory.mktemp("rec") / "reach.xdfz"
    generate(path, SynthParams(channels=12, seed=9), 48.0, progress=False)
    return str(path)


def test_snn_3d_learns_its_neurons_with_dropout_and_noise(recording, tmp_path):
    import torch

    from nodes.decoders.data import load_data
    from nodes.decoders.features import FeatureSpec, features
    from nodes.decoders.kernels import make_kernel
    from nodes.decoders.torch_models import from_arrays

    out = str(tmp_path / "s3.npz")
    rc = main(["train", "--model", "snn_3d", "--recording", recording, "--out", out, "--epochs", "2",
               "--dropout", "0.2", "--input-noise", "0.3", "--learn-neurons", "--weight-decay", "1e-4"])
    assert rc == 0
    arrays, meta = load_model(out)
    t, arch = meta["training"], meta["architecture"]
    assert t["dropout"] == 0.2 and t["input_noise"] == 0.3 and t["weight_decay"] == 1e-4
    assert arch["learn_beta"] is True and arch["beta_init"] == [0.5, 0.5, 0.5]
    assert arch["beta"] != [0.5, 0.5, 0.5]  # trained
    assert all(0.0 <= b <= 0.995 for b in arch["beta"]) and all(th >= 0.02 for th in arch["threshold"])
    assert [float(np.asarray(arrays[f"beta{l}"]).reshape(-1)[0]) for l in range(3)] == arch["beta"]
    # the kernel reproduces the trained torch model (dropout and noise are off outside training)
    data = load_data(recording)
    counts = data.spikes[data.split["test"]][:600]
    with torch.no_grad():
        y_t, spk_t = from_arrays(arrays, meta)(torch.from_numpy(features(FeatureSpec.from_dict(meta["features"]), counts)), record=True)
    kernel = make_kernel(arrays, meta)
    kernel.record = True
    kernel.run(counts)
    for l in range(3):
        assert np.array_equal(kernel.last_record["spikes"][l], spk_t[l].numpy() > 0), f"layer {l}"


def test_lstm_dropout_and_init_fine_tunes(recording, tmp_path):
    first, second = str(tmp_path / "l0.npz"), str(tmp_path / "l1.npz")
    assert main(["train", "--model", "lstm", "--recording", recording, "--out", first, "--epochs", "1",
                 "--dropout", "0.3", "--window", "40", "--batch-size", "4"]) == 0
    assert main(["train", "--model", "lstm", "--recording", recording, "--out", second, "--epochs", "1",
                 "--init", first, "--window", "40", "--batch-size", "4", "--lr", "1e-4"]) == 0
    a0, m0 = load_model(first)
    a1, m1 = load_model(second)
    assert m0["training"]["dropout"] == 0.3 and m1["training"]["init"] == first
    assert np.array_equal(a0["target_scale"], a1["target_scale"])  # the file's output scaling is kept
    # fine-tuned from the first model: close to it, not a fresh start
    d = np.abs(a1["w_ih"] - a0["w_ih"]).max()
    assert 0 < d < 0.05 * np.abs(a0["w_ih"]).max()


def test_regularisation_options_are_refused_where_they_do_not_apply(recording, tmp_path, capsys):
    out = str(tmp_path / "x.npz")
    assert main(["train", "--model", "snn_streaming", "--recording", recording, "--out", out, "--dropout", "0.2"]) == 2
    assert "snn_3d and lstm" in capsys.readouterr().err
    assert main(["train", "--model", "ann", "--recording", recording, "--out", out, "--learn-neurons"]) == 2
    assert "snn_3d" in capsys.readouterr().err
    assert main(["train", "--model", "lstm", "--recording", recording, "--out", out, "--dropout", "1.5"]) == 2
    assert "[0, 1)" in capsys.readouterr().err
    assert main(["train", "--model", "lstm", "--recording", recording, "--out", out, "--init", str(tmp_path / "none.npz")]) == 2
    assert "no such model file" in capsys.readouterr().err


def test_lstm_forget_bias_and_feature_width_reach_the_kernel(recording, tmp_path, capsys):
    """``--forget-bias`` starts every forget gate there (recorded); ``--feature-width`` changes the
    input window the numpy kernel computes, and the kernel still equals the torch model."""
    import torch

    from nodes.decoders.data import load_data
    from nodes.decoders.features import FeatureSpec, features
    from nodes.decoders.kernels import make_kernel
    from nodes.decoders.torch_models import build, from_arrays

    meta = {"channels": 12, "architecture": {"hidden": 8}, "outputs": 2}
    model = build("lstm", meta)
    model.init_forget_bias(3.0)
    b = (model.lstm.bias_ih_l0 + model.lstm.bias_hh_l0).detach().numpy()
    assert np.all(b[8:16] == 3.0) and not np.all(b[:8] == 3.0)  # only the forget part (gate order i, f, g, o)

    out = str(tmp_path / "fb.npz")
    assert main(["train", "--model", "lstm", "--recording", recording, "--out", out, "--epochs", "1",
                 "--window", "40", "--batch-size", "4", "--forget-bias", "3", "--feature-width", "25"]) == 0
    arrays, meta = load_model(out)
    assert meta["architecture"]["forget_bias_init"] == 3.0 and meta["training"]["forget_bias"] == 3.0
    assert meta["features"] == {"kind": "sum", "width": 25, "steps": 1, "step_bins": 1}
    counts = load_data(recording).spikes[:500]
    with torch.no_grad():
        y_t, _ = from_arrays(arrays, meta)(torch.from_numpy(features(FeatureSpec.from_dict(meta["features"]), counts))[:, None, :])
    y_ref = y_t[:, 0].numpy() * arrays["target_scale"] + arrays["target_mean"]
    np.testing.assert_allclose(make_kernel(arrays, meta).run(counts), y_ref, rtol=0, atol=1e-5 * np.abs(y_ref).max())
    assert main(["train", "--model", "ann", "--recording", recording, "--out", out, "--forget-bias", "3"]) == 2
    assert "applies to lstm" in capsys.readouterr().err
    assert main(["train", "--model", "lstm", "--recording", recording, "--out", out, "--feature-width", "0"]) == 2
    assert ">= 1 bin" in capsys.readouterr().err


def test_asa_offsets_get_their_own_step_size(recording, tmp_path, capsys):
    """``--asa-bias-lr``: the ASA offsets train with their own Adam step, so they move further than
    the rest of the network's parameters would allow (recorded in the file); refused without --asa-bias."""
    plain = str(tmp_path / "plain.npz")
    assert main(["train", "--model", "snn_streaming", "--recording", recording, "--out", plain, "--epochs", "1",
                 "--window", "40", "--batch-size", "4"]) == 0
    moved = {}
    for lr in ("0", "0.2"):
        out = str(tmp_path / f"asa_{lr}.npz")
        args = ["train", "--model", "snn_streaming", "--recording", recording, "--out", out, "--epochs", "2",
                "--patience", "5", "--window", "40", "--batch-size", "4", "--lr", "1e-3", "--init", plain,
                "--attention", "asa", "--asa-bias", "--rate-penalty", "2"]
        assert main(args + (["--asa-bias-lr", lr] if lr != "0" else [])) == 0
        arrays, meta = load_model(out)
        offsets = np.concatenate([np.asarray(v).ravel() for k, v in arrays.items() if k.endswith("bias") and k.startswith("asa")])
        moved[lr] = float(np.abs(offsets).max())
        assert meta["training"]["asa_bias_lr"] == (None if lr == "0" else 0.2)
    # Adam moves a parameter by about its step size per update: a few dozen updates at 1e-3 stay
    # below 0.1; at 0.2 the offsets move by more than 0.1 (whichever way the loss pushes them)
    assert moved["0"] < 0.1 < moved["0.2"], moved
    assert main(["train", "--model", "snn_streaming", "--recording", recording, "--out", plain,
                 "--attention", "asa", "--asa-bias-lr", "0.1"]) == 2
    assert "needs --asa-bias" in capsys.readouterr().err
