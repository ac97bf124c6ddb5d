"""An ensemble of driving networks as ONE wider network, and ``spikeloop train --model ensemble``.

DAgger fine-tunes of the driving controller are unstable: consecutive rounds of one run swing by
up to 20 points of collision-free rate in a family while their imitation error stays the same
(docs/RESULTS.md, collision avoidance, round 8), and two good networks fail in different worlds.
Averaging the steering of K such networks (a bagged ensemble) is the standard cure for that
variance. Here the average is built into one network of the existing kind, so every path the
project has -- quantised kernel, spiking BIF conversion (numpy and compiled engines), float path,
evaluation, benchmarks, the runtime node -- runs it unchanged:

* conv layers: the members' channels side by side (layer 1 reads the one scan channel; layers 2+
  are block-diagonal: member k's channels read only member k's channels, zeros elsewhere);
* RNN: the members' hidden units side by side, ``rnn_wx`` reading only the member's own features
  (position-major, as the kernel flattens them) plus the 2 state values, ``rnn_wh`` block-diagonal;
* readout: ``out_w`` = the members' readouts / K, ``out_b`` = their mean: the steering is the mean
  of the members' steerings, plus ONE near-obstacle reflex (member 1's).

Quantisation has one step per layer, the members have their own. Member k's layer is rescaled
into the merged step s: weights and bias times c = s / s_k (the next layer's incoming weights
divided by c). Q_s(c x) = c Q_{s_k}(x) for the clamp-and-round quantiser with the same level
bounds, so the quantised (= spiking) ensemble equals the mean of the members' quantised
networks up to float rounding (a test holds it to 1e-9 on closed-loop decisions). The float path
of the merged weights is the mean of the members' float paths where c = 1; where c != 1 its
tanh sees c z instead of z, so it is the float network OF THESE WEIGHTS, not the members' float
mean (the metadata lists every c). Arrays are stored as float64 so the rescaling adds no
float32 rounding.

``spikeloop train --model ensemble --members A.npz B.npz ... --out M.npz`` merges (member 1's
reflex, its quantiser steps) and stores the T at which spiking equals quantised on closed-loop
validation decisions (:func:`nodes.control.driving.closed_loop_timesteps`).
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from nodes.control.kernels import N_STATE, CrnnParams, conv_lengths
from pipeline.errors import UserError


def _check_members(members: list[tuple[str, dict[str, np.ndarray], dict[str, Any]]]) -> None:
    """Every member must be a quantised controller with the same levels, input handling and conv
    geometry (kernel sizes, strides, signedness); channel counts and RNN sizes may differ."""
    if len(members) < 2:
        raise UserError(f"--model ensemble needs at least 2 --members, got {len(members)}")
    name0, _, m0 = members[0]

    def geometry(meta: dict[str, Any]) -> list[tuple]:
        return [(n, k, s, g) for n, _, k, s, g in CrnnParams({}, meta).conv_layers]

    for name, arrays, meta in members:
        if meta.get("family") != "controller" or not meta.get("levels"):
            raise UserError(f"{name}: an ensemble member must be a quantised controller file (train --model crnn_driver)")
        if "rnn_wx" not in arrays:
            raise UserError(f"{name}: not a CRNN controller (no rnn_wx array)")
        for key in ("levels", "invalid_returns", "rate_hz"):
            if meta.get(key) != m0.get(key):
                raise UserError(f"{name}: {key} = {meta.get(key)!r} differs from {name0}'s {m0.get(key)!r}")
        if geometry(meta) != geometry(m0):
            raise UserError(f"{name}: conv layers {geometry(meta)} (name, kernel, stride, signed) differ from "
                            f"{name0}'s {geometry(m0)}; members must share the conv geometry")


def merge_drivers(members: list[tuple[str, dict[str, np.ndarray], dict[str, Any]]]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Merge K quantised driver networks ``(name, arrays, meta)`` into one network whose steering
    is the mean of theirs (plus member 1's reflex): see the module docstring. Returns the merged
    (arrays, meta); arrays float64, the reflex re-added by :func:`nodes.control.reflex.with_reflex`."""
    from nodes.control.reflex import reflex_tuple, with_reflex
    from nodes.control.training import architecture_text
    from pipeline.modelfile import file_sha256

    _check_members(members)
    k_members = len(members)
    _, a0, m0 = members[0]
    layers0 = CrnnParams(a0, m0).conv_layers
    names = [str(c[0]) for c in layers0] + ["rnn"]
    steps = {n: float(a0[f"{n}_step"]) for n in names}
    lengths = conv_lengths(layers=layers0)
    n_pos = lengths[-1]  # positions of the last conv layer (features = positions x channels)

    merged: dict[str, np.ndarray] = {}
    scales: list[dict[str, float]] = [{} for _ in members]  # per member: layer -> c
    for i, name in enumerate(names[:-1]):  # conv layers, block-diagonal after the first
        ws = [np.asarray(a[f"{name}_w"], dtype=np.float64) for _, a, _ in members]
        c_out = [w.shape[0] for w in ws]
        c_in = [w.shape[1] for w in ws]
        k = ws[0].shape[2]
        w_m = np.zeros((sum(c_out), 1 if i == 0 else sum(c_in), k))
        b_m = np.zeros(sum(c_out))
        o_out = o_in = 0
        for j, ((_, a, _), w) in enumerate(zip(members, ws)):
            c_here = steps[name] / float(a[f"{name}_step"])
            c_prev = 1.0 if i == 0 else scales[j][names[i - 1]]
            cols = slice(0, 1) if i == 0 else slice(o_in, o_in + c_in[j])
            w_m[o_out:o_out + c_out[j], cols, :] = w * (c_here / c_prev)
            b_m[o_out:o_out + c_out[j]] = np.asarray(a[f"{name}_b"], dtype=np.float64) * c_here
            scales[j][name] = c_here
            o_out += c_out[j]
            o_in += c_in[j]
        merged[f"{name}_w"], merged[f"{name}_b"] = w_m, b_m

    last = names[-2]
    c3 = [int(np.asarray(a[f"{last}_w"]).shape[0]) for _, a, _ in members]
    hid = [int(np.asarray(a["rnn_wh"]).shape[0]) for _, a, _ in members]
    wx_m = np.zeros((sum(hid), n_pos * sum(c3) + N_STATE))
    wh_m = np.zeros((sum(hid), sum(hid)))
    b_m = np.zeros(sum(hid))
    out_w = np.zeros((1, sum(hid)))
    o_h = o_c = 0
    for j, (_, a, _) in enumerate(members):
        cr = steps["rnn"] / float(a["rnn_step"])
        scales[j]["rnn"] = cr
        wx = np.asarray(a["rnn_wx"], dtype=np.float64)  # (H_j, n_pos * C3_j + 2), position-major features
        feat = wx[:, :-N_STATE].reshape(hid[j], n_pos, c3[j]) * (cr / scales[j][last])
        block = wx_m[o_h:o_h + hid[j], :-N_STATE].reshape(hid[j], n_pos, sum(c3))
        block[:, :, o_c:o_c + c3[j]] = feat
        wx_m[o_h:o_h + hid[j], :-N_STATE] = block.reshape(hid[j], -1)
        wx_m[o_h:o_h + hid[j], -N_STATE:] = wx[:, -N_STATE:] * cr
        wh_m[o_h:o_h + hid[j], o_h:o_h + hid[j]] = np.asarray(a["rnn_wh"], dtype=np.float64)
        b_m[o_h:o_h + hid[j]] = np.asarray(a["rnn_b"], dtype=np.float64) * cr
        out_w[0, o_h:o_h + hid[j]] = np.asarray(a["out_w"], dtype=np.float64)[0] / cr / k_members
        o_h += hid[j]
        o_c += c3[j]
    merged.update(rnn_wx=wx_m, rnn_wh=wh_m, rnn_b=b_m, out_w=out_w,
                  out_b=np.array([np.mean([float(np.asarray(a["out_b"])[0]) for _, a, _ in members])]))
    for n in names:
        merged[f"{n}_step"] = np.float64(steps[n])

    conv_layers = [[n, int(sum(np.asarray(a[f"{n}_w"]).shape[0] for _, a, _ in members)), int(k), int(s), bool(g)]
                   for n, _, k, s, g in layers0]
    meta = {key: v for key, v in m0.items()
            if key not in ("reflex", "reflex_selection", "dagger", "timesteps", "timesteps_note", "independent_validation",
                           "validation_worst_collision_free", "init", "state_input_scale", "state_scaled_from",
                           "new_network", "extra_data", "train_minutes")}
    meta.update(conv_layers=conv_layers, conv_lengths=conv_lengths(layers=conv_layers),
                architecture=f"ensemble of {k_members} (mean steering): " + architecture_text(conv_layers, sum(hid)),
                ensemble={"members": [{"file": Path(n).name, "sha256": file_sha256(n) if Path(n).is_file() else None,
                                       "architecture": m.get("architecture"),
                                       "state_input_scale": m.get("state_input_scale"),
                                       "step_scale": {key: round(v, 9) for key, v in scales[j].items()}}
                                      for j, (n, _, m) in enumerate(members)],
                          "reflex_from": Path(members[0][0]).name,
                          "combination": "mean of the members' steering, then the reflex"})
    if m0.get("reflex"):
        return with_reflex(merged, meta, *reflex_tuple(m0["reflex"]))
    return merged, meta


def ensemble_cli(args: argparse.Namespace) -> int:
    """``spikeloop train --model ensemble --members A B ... --out M``: see the module docstring."""
    from nodes.control.driving import validation_timesteps
    from pipeline.modelfile import load_model, save_model

    files = getattr(args, "members", None) or []
    if not args.out:
        raise UserError("--model ensemble needs --out MODEL")
    members = []
    for f in files:
        if not Path(f).is_file():
            raise UserError(f"--members: no such model file {f}")
        arrays, meta = load_model(f)
        members.append((f, arrays, meta))
    arrays, meta = merge_drivers(members)
    print(meta["architecture"], flush=True)
    meta["timesteps"], meta["timesteps_note"] = validation_timesteps(args, CrnnParams(arrays, meta))
    save_model(args.out, arrays, meta)
    print(f"spiking = quantised from T = {meta['timesteps']} -> {args.out}")
    return 0
