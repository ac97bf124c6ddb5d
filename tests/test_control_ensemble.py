"""An ensemble of driving networks merged into one network (nodes.control.ensemble)."""
from __future__ import annotations

import argparse

import numpy as np
import pytest

from nodes.control.ensemble import merge_drivers
from nodes.control.kernels import BifKernel, CrnnKernel, CrnnParams
from nodes.control.reflex import with_reflex
from nodes.control.simulator import RobotEnv, WorldSpec
from pipeline.errors import UserError
from pipeline.modelfile import load_model, save_model

SHIPPED = "models/crnn_driver_q8.npz"


def _members(tmp_path):
    """Three members: the shipped driver, a copy with other recurrent weights (same steps), and a
    copy whose conv2 and rnn quantiser steps differ (so the merge must rescale it)."""
    a, m = load_model(SHIPPED)
    rng = np.random.default_rng(1)
    b = dict(a, rnn_wh=(a["rnn_wh"] * rng.uniform(0.8, 1.2, a["rnn_wh"].shape)).astype(np.float32))
    c = dict(a, conv2_step=np.float64(float(a["conv2_step"]) * 1.3), rnn_step=np.float64(float(a["rnn_step"]) * 0.8),
             conv1_w=(a["conv1_w"] * 1.1).astype(np.float32))
    out = [(SHIPPED, a, m)]
    for name, arrays in (("b.npz", b), ("c.npz", c)):
        save_model(tmp_path / name, arrays, m)
        out.append((str(tmp_path / name), arrays, m))
    return out


def _drive(controllers, steps: int = 200, batch: int = 4):
    """Step every controller on the scans the FIRST one's decisions lead to; outputs (n, steps, B)."""
    spec = WorldSpec(name="dense", circles_per_m2=0.2, boxes_per_m2=0.06, episode_s=steps / 20.0)
    envs = [RobotEnv(spec) for _ in range(batch)]
    obs = [e.reset(100_000 + i) for i, e in enumerate(envs)]
    out = np.zeros((len(controllers), steps, batch))
    for t in range(steps):
        scans, state = np.stack([o.scan for o in obs]), np.stack([o.state for o in obs])
        for i, ctl in enumerate(controllers):
            out[i, t] = ctl(scans, state)
        obs = [e.step(float(u)) for e, u in zip(envs, out[0, t])]
    return out


def test_merged_network_steers_as_the_mean_of_its_members_in_every_path(tmp_path):
    """Quantised: the merged network = mean of the members' quantised networks + member 1's reflex
    (members with other quantiser steps rescaled exactly); spiking at T = 10 = quantised; the float
    path = the members' float mean when the steps agree."""
    members = _members(tmp_path)
    arrays, meta = merge_drivers(members)
    merged = CrnnParams(arrays, meta)
    assert [c[1] for c in merged.conv_layers] == [24, 24, 6] and arrays["rnn_wh"].shape == (96, 96)
    assert meta["ensemble"]["members"][2]["step_scale"]["conv2"] == pytest.approx(1 / 1.3)
    assert meta["reflex"] == members[0][2]["reflex"]

    def member_mean(mode, which):
        ks = [CrnnKernel(CrnnParams(*with_reflex(a, m, 0.0, 0.0)), 4, mode) for _, a, m in (members[i] for i in which)]
        refl = CrnnKernel(CrnnParams(members[0][1], members[0][2]), 4, mode)
        return lambda s, st: np.mean([k.step(s, st) for k in ks], axis=0) + refl.reflex_out(s)

    q = CrnnKernel(merged, 4, "quant")
    spk = BifKernel(merged, 10, 4)
    out = _drive([member_mean("quant", [0, 1, 2]), q.step, spk.step])
    assert np.abs(out[0] - out[1]).max() < 1e-9
    assert np.abs(out[1] - out[2]).max() < 1e-9
    assert np.abs(out[0]).max() > 0.1  # it steers
    single = _drive([CrnnKernel(CrnnParams(*load_model(SHIPPED)), 4, "quant").step])
    assert np.abs(single[0] - out[0]).max() > 1e-3  # the ensemble is not just member 1

    same_steps, same_meta = merge_drivers(members[:2])
    f = CrnnKernel(CrnnParams(same_steps, same_meta), 4, "float")
    out = _drive([member_mean("float", [0, 1]), f.step])
    assert np.abs(out[0] - out[1]).max() < 1e-9


def test_ensemble_cli_stores_the_checked_T_and_refuses_bad_members(tmp_path):
    members = _members(tmp_path)
    args = argparse.Namespace(members=[m[0] for m in members[:2]], out=str(tmp_path / "ens.npz"), worlds_files=None,
                              val_episode_s=3.0, val_worlds=1)
    from nodes.control.ensemble import ensemble_cli

    assert ensemble_cli(args) == 0
    a, m = load_model(args.out)
    assert m["timesteps"] >= 7 and sum(m["timesteps_note"]["decisions"].values()) == 4 * 60
    assert [e["file"] for e in m["ensemble"]["members"]] == ["crnn_driver_q8.npz", "b.npz"]
    assert len(m["ensemble"]["members"][1]["sha256"]) == 64

    with pytest.raises(UserError, match="at least 2"):
        ensemble_cli(argparse.Namespace(**dict(vars(args), members=[SHIPPED])))
    a0, m0 = load_model(SHIPPED)
    save_model(tmp_path / "l4.npz", a0, dict(m0, levels=4))
    with pytest.raises(UserError, match=r"l4\.npz: levels"):
        ensemble_cli(argparse.Namespace(**dict(vars(args), members=[SHIPPED, str(tmp_path / "l4.npz")])))
    with pytest.raises(UserError, match="no such model file"):
        ensemble_cli(argparse.Namespace(**dict(vars(args), members=[SHIPPED, str(tmp_path / "missing.npz")])))

    pytest.importorskip("torch")
    from nodes.control.driving import train_driver

    with pytest.raises(UserError, match="not trained further; continue one of its members"):
        train_driver(argparse.Namespace(init=args.out, out=str(tmp_path / "x.npz"), seed=0, levels=8, worlds_files=None,
                                        episode_s=2.0, val_episode_s=2.0, episodes=1, rounds=0, val_worlds=1, epochs=1,
                                        max_minutes=1, cache=None))
