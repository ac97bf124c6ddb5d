"""Controller training regularisation: range/turn-rate augmentation, dropout, hidden size, the CLI options."""
from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch

from nodes.control.dataset import Sequences
from nodes.control.kernels import CrnnKernel, CrnnParams
from nodes.control.torch_models import CRNN
from nodes.control.training import FitConfig, apply_regularisation, augment_batch, base_metadata, fit
from pipeline.errors import UserError


def _batch(b: int = 6, n: int = 5, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = 0.2 + 5.0 * torch.rand(b, n, 541, generator=g, dtype=torch.float64)
    st = torch.rand(b, n, 2, generator=g, dtype=torch.float64) * 2 - 1
    return x, st


def test_augment_batch_touches_only_what_it_is_asked_to():
    x, st = _batch()
    x0, st0 = x.clone(), st.clone()
    same_x, same_st = augment_batch(x, st, FitConfig())
    assert torch.equal(same_x, x0) and torch.equal(same_st, st0)  # nothing asked: nothing changed
    torch.manual_seed(1)
    nx, nst = augment_batch(x, st, FitConfig(input_noise=0.05))
    assert torch.equal(nst, st0) and (nx >= 0).all()
    assert 0.03 < float((nx - x0).std()) < 0.07  # 5 cm of range noise
    torch.manual_seed(2)
    _, dst = augment_batch(x, st, FitConfig(state_drop=1.0))
    assert torch.equal(dst[..., 0], st0[..., 0])  # speed untouched
    assert torch.count_nonzero(dst[..., 1]) == 0  # the turn rate fed as 0 in every sequence
    torch.manual_seed(3)
    _, sst = augment_batch(x, st, FitConfig(state_noise=0.2))
    assert torch.equal(sst[..., 0], st0[..., 0]) and not torch.equal(sst[..., 1], st0[..., 1])
    torch.manual_seed(4)
    _, hst = augment_batch(*_batch(b=400, n=2), FitConfig(state_drop=0.5))
    zeroed = (hst[:, 0, 1] == 0).float().mean().item()
    assert 0.4 < zeroed < 0.6  # per SEQUENCE, about half
    assert torch.equal(hst[:, 0, 1] == 0, hst[:, 1, 1] == 0)  # a dropped sequence is dropped at every step
    assert torch.equal(x, x0) and torch.equal(st, st0)  # the inputs themselves are never modified


def test_dropout_is_training_only_and_smaller_hidden_exports_to_the_kernel():
    torch.manual_seed(0)
    model = CRNN(None, hidden=12, dropout=0.5)
    plain = CRNN.from_arrays(model.export())
    x, st = _batch(2, 4)
    x, st = x.float(), st.float()
    model.eval()
    with torch.no_grad():
        assert torch.allclose(model(x, st)[0], plain(x, st)[0])  # eval: dropout is off
        model.train()
        assert not torch.allclose(model(x, st)[0], plain(x, st)[0])  # training: it drops
    a = model.export()
    assert a["rnn_wh"].shape == (12, 12)
    k = CrnnKernel(CrnnParams(a, base_metadata(None, "synthetic")), mode="float")
    with torch.no_grad():
        ref = plain(x, st)[0].numpy()
    assert np.allclose(k.run(x.numpy().astype(np.float64), st.numpy().astype(np.float64)), ref, atol=1e-5)


def test_fit_with_every_regulariser_learns_a_simple_steering_rule():
    """Real training on a rule the network can learn (steer towards the far side): the regularised
    fit must still beat predicting 0 on held-out sequences."""
    rng = np.random.default_rng(0)

    def make(n):
        scans = rng.uniform(0.5, 1.5, size=(n, 8, 541))
        side = rng.choice([-1.0, 1.0], size=(n, 1, 1))
        scans[:, :, :270] += np.where(side > 0, 0.0, 3.0)  # beam 0 is on the right: far right -> steer right (-1)
        scans[:, :, 271:] += np.where(side > 0, 3.0, 0.0)
        steer = np.broadcast_to(side[:, :, 0] * 0.8, (n, 8)).copy()
        return Sequences(scans.astype(np.float32), np.zeros((n, 8, 2), np.float32), steer.astype(np.float32))

    train, val = make(96), make(32)
    torch.manual_seed(0)
    cfg = FitConfig(epochs=12, patience=12, seed=0, progress=False, weight_decay=1e-3, input_noise=0.05,
                    state_noise=0.1, state_drop=0.3, lr=3e-3)
    arrays, val_mse, _ = fit(CRNN(None, hidden=16, dropout=0.1), train, val, base_metadata(None, "synthetic"), cfg)
    assert val_mse < 0.5 * float(np.mean(val.steering ** 2))


def test_regularisation_options_are_checked_and_copied():
    cfg = FitConfig()
    used = apply_regularisation(cfg, argparse.Namespace(weight_decay=0.0, input_noise=0.02, state_noise=None,
                                                        state_drop=0.25, dropout=0.1))
    assert (cfg.weight_decay, cfg.input_noise, cfg.state_noise, cfg.state_drop) == (0.0, 0.02, 0.0, 0.25)
    assert used == {"weight_decay": 0.0, "input_noise": 0.02, "state_drop": 0.25, "dropout": 0.1}
    assert apply_regularisation(FitConfig(), argparse.Namespace()) == {}
    with pytest.raises(UserError, match="--state-drop"):
        apply_regularisation(FitConfig(), argparse.Namespace(state_drop=1.0))
    with pytest.raises(UserError, match="--input-noise"):
        apply_regularisation(FitConfig(), argparse.Namespace(input_noise=-0.1))


def test_train_help_lists_the_controller_regularisers():
    from pipeline.cli.train import register

    p = argparse.ArgumentParser()
    register(p.add_subparsers())
    text = p._subparsers._group_actions[0].choices["train"].format_help()
    for opt in ("--state-drop", "--state-noise", "--input-noise", "--weight-decay", "--dropout", "--hidden"):
        assert opt in text
    assert "crnn / crnn_driver" in text


def _rule_data(n: int, seed: int) -> Sequences:
    """Sequences of a rule the CRNN can learn: steer towards the far side (+0.8 left, -0.8 right)."""
    rng = np.random.default_rng(seed)
    scans = rng.uniform(0.5, 1.5, size=(n, 4, 541))
    side = rng.choice([-1.0, 1.0], size=(n, 1, 1))
    scans[:, :, :270] += np.where(side > 0, 0.0, 3.0)
    scans[:, :, 271:] += np.where(side > 0, 3.0, 0.0)
    steer = np.broadcast_to(side[:, :, 0] * 0.8, (n, 4)).copy()
    return Sequences(scans.astype(np.float32), np.zeros((n, 4, 2), np.float32), steer.astype(np.float32))


def test_weight_average_ema_and_swa_follow_their_formulas_and_swap_back():
    from nodes.control.averaging import WeightAverage

    lin = torch.nn.Linear(3, 2)
    ema = WeightAverage(lin, decay=0.9)
    assert not ema.ready
    w0 = lin.weight.detach().clone()
    ema.after_step()  # first step: the average starts at the weights
    with torch.no_grad():
        lin.weight.add_(1.0)
    ema.after_step()
    w1 = lin.weight.detach().clone()
    assert torch.allclose(ema.avg["weight"], 0.9 * w0 + 0.1 * w1)
    with ema.swapped_in():
        assert torch.allclose(lin.weight, 0.9 * w0 + 0.1 * w1)
    assert torch.equal(lin.weight, w1)  # the trained weights come back after the block

    swa = WeightAverage(lin, swa_from=2)
    seen = []
    for epoch in (1, 2, 3, 4):
        with torch.no_grad():
            lin.weight.add_(float(epoch))
        swa.after_step()  # nothing for SWA
        swa.after_epoch(epoch)
        if epoch >= 2:
            seen.append(lin.weight.detach().clone())
    assert swa.count == 3 and torch.allclose(swa.avg["weight"], torch.stack(seen).mean(0))
    assert swa.describe() == {"kind": "swa", "from_epoch": 2, "epochs_averaged": 3}
    with pytest.raises(ValueError):
        WeightAverage(lin, decay=0.9, swa_from=2)
    with pytest.raises(ValueError):
        WeightAverage(lin)


def test_fit_with_swa_keeps_the_mean_of_the_epochs_weights_and_resumes_exactly():
    """SWA does not change the training path (cosine schedule: no feedback from validation), so the
    averaged run's export after epoch 3 must be the mean of the plain run's exports after epochs 2 and 3;
    and a run resumed from its epoch-2 state must end with the uninterrupted run's arrays."""
    train, val = _rule_data(32, 0), _rule_data(8, 1)
    meta = base_metadata(None, "synthetic")

    def run(resume=None, **kw):
        exports, states = [], []
        torch.manual_seed(0)
        model = CRNN(None, hidden=8)
        cfg = FitConfig(epochs=3, patience=10, seed=0, progress=False, lr=3e-3, lr_schedule="cosine", **kw)

        def on_epoch(rec, arrays, _meta, state):
            exports.append({k: np.array(v) for k, v in arrays.items()})
            states.append(state)
        if resume is not None:
            torch.manual_seed(0)
            model = CRNN(None, hidden=8)
        fit(model, train, val, meta, cfg, on_epoch=on_epoch, resume=resume)
        return exports, states

    plain, _ = run()
    swa, swa_states = run(swa_from=2)
    for name in plain[0]:
        assert np.array_equal(swa[0][name], plain[0][name])  # epoch 1: nothing averaged yet
        assert np.allclose(swa[2][name], (plain[1][name] + plain[2][name]) / 2, atol=1e-6)
    assert not np.allclose(swa[2]["rnn_wx"], plain[2]["rnn_wx"])  # the average is not the last epoch's weights
    resumed, _ = run(resume=swa_states[1], swa_from=2)
    assert len(resumed) == 1
    for name in plain[0]:
        assert np.array_equal(resumed[0][name], swa[2][name])
    ema, _ = run(ema=0.99)
    assert not np.allclose(ema[2]["rnn_wx"], plain[2]["rnn_wx"])


def test_schedule_options_are_checked_copied_and_listed():
    from nodes.control.training import apply_schedule
    from pipeline.cli.train import register

    cfg = FitConfig()
    assert apply_schedule(cfg, argparse.Namespace(ema=0.999, swa_from=None, lr_schedule="cosine")) == \
        {"ema": 0.999, "lr_schedule": "cosine"}
    assert (cfg.ema, cfg.swa_from, cfg.lr_schedule) == (0.999, 0, "cosine")
    assert apply_schedule(FitConfig(), argparse.Namespace()) == {}
    with pytest.raises(UserError, match="--ema"):
        apply_schedule(FitConfig(), argparse.Namespace(ema=1.0))
    with pytest.raises(UserError, match="--swa-from"):
        apply_schedule(FitConfig(), argparse.Namespace(swa_from=0))
    with pytest.raises(UserError, match="give one"):
        apply_schedule(FitConfig(), argparse.Namespace(ema=0.99, swa_from=3))
    p = argparse.ArgumentParser()
    register(p.add_subparsers())
    text = p._subparsers._group_actions[0].choices["train"].format_help()
    for opt in ("--ema", "--swa-from", "--lr-schedule", "--consistency"):
        assert opt in text


def test_trace_timesteps_is_the_smallest_lossless_T_and_records_the_failures():
    """A quantised real-trace CRNN stores the smallest T at which its spiking network equals it on the
    validation traces; every smaller candidate must really differ (checked here on the bundled L=8 file)."""
    from tests.conftest import LIDAR_DATASET, REPO

    if not LIDAR_DATASET.is_dir():
        pytest.skip(f"ICRA 2020 LiDAR dataset not found at {LIDAR_DATASET}")
    from nodes.control.dataset import get_split
    from nodes.control.kernels import BifKernel
    from nodes.control.training import trace_timesteps
    from pipeline.modelfile import load_model

    arrays, meta = load_model(REPO / "models" / "crnn_keras_q8.npz")
    seqs = get_split(LIDAR_DATASET, "keras-ncp").sequences("val")
    pick = np.linspace(0, len(seqs) - 1, 12).astype(int)
    seqs = Sequences(seqs.scans[pick, :16], seqs.state[pick, :16], seqs.steering[pick, :16])
    T, note = trace_timesteps(arrays, meta, seqs, candidates=(2, 4, 8, 12, 16))
    params = CrnnParams(arrays, meta)
    q = CrnnKernel(params, mode="quant").run(seqs.scans, seqs.state)
    s, _ = BifKernel(params, T, len(seqs)).run(seqs.scans, seqs.state)
    assert np.max(np.abs(s - q)) < 1e-9
    assert T > 2 and set(note["failed_T_max_diff"]) == {str(c) for c in (2, 4, 8, 12, 16) if c < T}
    assert all(d >= 1e-9 for d in note["failed_T_max_diff"].values())
    assert note["sequences"] == 12 and "lossless" not in note


def test_consistency_pulls_the_float_path_towards_the_quantised_output():
    """Same data, seed and epochs: with --consistency the float path of the quantised network's weights
    must end closer to the quantised outputs than without it (scored with the numpy kernels)."""
    train, val = _rule_data(48, 2), _rule_data(16, 3)
    meta = base_metadata(4, "synthetic")
    gaps = {}
    for w in (0.0, 20.0):
        torch.manual_seed(0)
        model = CRNN(None, hidden=8)
        fit(model, train, val, base_metadata(None, "synthetic"), FitConfig(epochs=3, patience=3, seed=0, progress=False, lr=3e-3))
        q = CRNN.from_arrays(model.export(), 4)
        q.init_steps(torch.from_numpy(train.scans[:16]), torch.from_numpy(train.state[:16]))
        arrays, _, _ = fit(q, train, val, meta, FitConfig(epochs=4, patience=4, seed=0, progress=False, lr=3e-3,
                                                          consistency=w))
        params = CrnnParams(arrays, meta)
        f = CrnnKernel(params, mode="float").run(val.scans, val.state)
        qo = CrnnKernel(params, mode="quant").run(val.scans, val.state)
        gaps[w] = float(np.mean((f - qo) ** 2))
    assert gaps[20.0] < 0.5 * gaps[0.0], gaps
    cfg = FitConfig()
    assert apply_regularisation(cfg, argparse.Namespace(consistency=2.0)) == {"consistency": 2.0}
    assert cfg.consistency == 2.0


def test_options_that_would_be_ignored_are_refused():
    """--consistency on a float CRNN and the crnn-only averaging options on crnn_driver raise a
    one-line error before any data is read or any episode driven."""
    from pipeline.cli.train import register

    p = argparse.ArgumentParser()
    register(p.add_subparsers())

    def run(*argv):
        args = p.parse_args(["train", *argv])
        return args.func(args)

    with pytest.raises(UserError, match="--consistency .* needs --levels"):
        run("--model", "crnn", "--dataset", "/nonexistent", "--consistency", "2", "--out", "/nonexistent/x.npz")
    for opt in (["--ema", "0.99"], ["--swa-from", "3"], ["--lr-schedule", "cosine"]):
        with pytest.raises(UserError, match=f"{opt[0]} applies to --model crnn, not crnn_driver"):
            run("--model", "crnn_driver", *opt, "--out", "/nonexistent/x.npz")


def test_conv_channels_option_builds_a_wider_stack_that_the_kernels_run_exactly():
    """--conv-channels: the chosen out-channels reach the torch twin, the file's metadata and the
    numpy kernels (float and quantised agree with torch); bad values and --init are refused."""
    from nodes.control.training import _conv_layers, architecture_text
    from nodes.control.kernels import BifKernel

    layers = _conv_layers(argparse.Namespace(conv_channels="6,8,10,3", init=None), {})
    assert [c for _, c, *_ in layers] == [6, 8, 10, 3]
    meta = base_metadata(4, "synthetic", conv_layers=layers)
    assert meta["conv_layers"][-1][1] == 3 and "->84 + 2 state" in meta["architecture"]
    assert "conv_layers" not in base_metadata(4, "synthetic")  # the reference stack stays implicit
    assert architecture_text().startswith("Conv1D(12,k5,s3)-Conv1D(16,k5,s3)-Conv1D(24,k5,s2)-Conv1D(1,k1)->28")
    torch.manual_seed(0)
    x, st = _batch(2, 3)
    x, st = x.float(), st.float()
    for levels in (None, 4):
        model = CRNN(levels, layers)
        if levels:
            model.init_steps(x, st)
        params = CrnnParams(model.export(), base_metadata(levels, "synthetic", conv_layers=layers))
        assert params.conv_layers == layers
        with torch.no_grad():
            ref = model(x, st)[0].numpy()
        k = CrnnKernel(params, mode="quant" if levels else "float")
        assert np.allclose(k.run(x.numpy().astype(np.float64), st.numpy().astype(np.float64)), ref, atol=1e-5)
        if levels:  # the spiking network of the wider stack is the quantised one at a large enough T
            bif = BifKernel(params, timesteps=64)
            out = [bif.step(x[0, t:t + 1].numpy().astype(np.float64), st[0, t:t + 1].numpy().astype(np.float64))
                   for t in range(3)]
            assert np.allclose(np.concatenate(out), ref[0], atol=1e-6)
    for bad in ("1,2,3", "4,4,4,0", "a,b,c,d"):
        with pytest.raises(UserError, match="--conv-channels"):
            _conv_layers(argparse.Namespace(conv_channels=bad, init=None), {})
    with pytest.raises(UserError, match="from scratch"):
        _conv_layers(argparse.Namespace(conv_channels="6,8,10,3", init="m.npz"), {})


def test_teacher_targets_average_the_teachers_and_refuse_another_split(tmp_path):
    """--teachers: the distillation target is the mean of the teachers' numpy-kernel outputs; a
    teacher trained on another split (it has seen this split's test traces) is refused."""
    from nodes.control.training import teacher_targets
    from pipeline.modelfile import save_model

    seqs = _rule_data(5, seed=3)
    paths, outs = [], []
    for seed in (0, 1):
        torch.manual_seed(seed)
        arrays = CRNN(None).export()
        meta = base_metadata(None, "synthetic", "keras-ncp")
        path = tmp_path / f"t{seed}.npz"
        save_model(path, arrays, meta)
        paths.append(str(path))
        outs.append(CrnnKernel(CrnnParams(arrays, meta), mode="float").run(seqs.scans, seqs.state))
    mean, notes = teacher_targets(paths, seqs, "keras-ncp")
    assert mean.shape == seqs.steering.shape and len(notes) == 2
    assert np.allclose(mean, (outs[0] + outs[1]) / 2, atol=1e-6)
    assert not np.allclose(outs[0], outs[1])  # two different teachers: the mean is not either of them
    with pytest.raises(UserError, match="'standard' split holds out"):
        teacher_targets(paths, seqs, "standard")
    old_style = base_metadata(None, "synthetic", "standard")  # files written before the split had a name
    old_style["split"].pop("name")
    save_model(tmp_path / "old.npz", CRNN(None).export(), old_style)
    assert teacher_targets([str(tmp_path / "old.npz")], seqs, "standard")[0].shape == seqs.steering.shape
    with pytest.raises(UserError, match="held-out traces"):
        teacher_targets([str(tmp_path / "old.npz")], seqs, "keras-ncp")
