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
