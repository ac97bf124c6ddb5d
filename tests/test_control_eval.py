"""Closed-loop evaluation statistics and the small driving architecture's lossless conversion."""
from __future__ import annotations

import numpy as np
import pytest

from nodes.control.evaluation import ShadowedSpiking, closed_loop_report, mcnemar_exact, run_episodes, wilson_ci
from nodes.control.kernels import DRIVER_LAYERS, BifKernel, CrnnKernel, CrnnParams, fill_invalid
from nodes.control.simulator import WorldSpec


def test_wilson_interval_known_values():
    # Wilson 95 % for 190/200: (0.9102, 0.9726); for 0/20 the upper bound is 0.161
    lo, hi = wilson_ci(190, 200)
    assert lo == pytest.approx(0.9102, abs=5e-4) and hi == pytest.approx(0.9726, abs=5e-4)
    lo, hi = wilson_ci(0, 20)
    assert lo == 0.0 and hi == pytest.approx(0.1611, abs=5e-4)


def test_mcnemar_exact_counts_only_discordant_pairs():
    a = np.array([True] * 180 + [True] * 12 + [False] * 2 + [False] * 6)
    b = np.array([True] * 180 + [False] * 12 + [True] * 2 + [False] * 6)
    r = mcnemar_exact(a, b)
    assert (r["only_first"], r["only_second"]) == (12, 2)
    # two-sided exact binomial: 2 * P(X <= 2 | n=14, 1/2) = 2 * 106 / 16384
    assert r["p_value"] == pytest.approx(2 * 106 / 16384, rel=1e-9)
    assert r["difference"] == pytest.approx(0.05)
    lo, hi = r["difference_ci95"]
    assert lo < 0.05 < hi and lo > 0  # significant: the interval excludes 0
    same = mcnemar_exact(a, a)
    assert same["p_value"] == 1.0 and same["difference"] == 0.0


def test_fill_invalid_uses_the_nearest_valid_neighbours():
    r = np.array([[2.0, 0.0, 3.0, 1.0, 0.0, 0.0, 5.0]])
    f = fill_invalid(r)
    np.testing.assert_allclose(f, [[2.0, 1.0, 3.0, 1.0, 1.0, 1.0, 5.0]])
    assert fill_invalid(np.zeros((1, 7))).max() == 0.0  # nothing valid nearby: stays 0


def _driver_params(levels: int = 8) -> CrnnParams:
    torch = pytest.importorskip("torch")
    from nodes.control.torch_models import CRNN
    from nodes.control.training import base_metadata

    torch.manual_seed(1)
    m = CRNN(levels, DRIVER_LAYERS, 32)
    rng = np.random.default_rng(0)
    scans = torch.from_numpy(rng.uniform(0.2, 7.0, (4, 8, 541)).astype(np.float32))
    state = torch.from_numpy(rng.uniform(-1, 1, (4, 8, 2)).astype(np.float32))
    m.init_steps(scans, state)
    meta = base_metadata(levels, "test") | {"conv_layers": [list(c) for c in DRIVER_LAYERS], "invalid_returns": "fill"}
    return CrnnParams(m.export(), meta)


def test_driver_architecture_converts_losslessly_and_matches_torch():
    torch = pytest.importorskip("torch")
    from nodes.control.torch_models import CRNN, TorchBif

    params = _driver_params()
    rng = np.random.default_rng(3)
    scans = rng.uniform(0.1, 7.0, (5, 12, 541))
    scans[rng.random(scans.shape) < 0.013] = 0.0  # zero returns, filled by the input encoding
    state = rng.uniform(-1, 1, (5, 12, 2))
    q = CrnnKernel(params, mode="quant").run(scans, state)
    s, spikes = BifKernel(params, timesteps=2 * params.levels + 8, batch=5).run(scans, state)
    assert np.max(np.abs(s - q)) < 1e-9 and np.all(spikes > 0)
    s1, _ = BifKernel(params, timesteps=1, batch=5).run(scans, state)
    assert np.max(np.abs(s1 - q)) > 1e-3  # too few steps: not yet equal
    # the torch twin (features flattened position-major, as the numpy kernel) on pre-filled scans
    filled = fill_invalid(scans)
    for levels, mode in ((None, "float"), (params.levels, "quant")):
        m = CRNN.from_arrays(params.arrays, levels, DRIVER_LAYERS).double()
        with torch.no_grad():
            t, _ = m(torch.from_numpy(filled), torch.from_numpy(state))
        np.testing.assert_allclose(t.numpy(), CrnnKernel(params, mode=mode).run(scans, state), atol=1e-9)
    tb = TorchBif(params, 2 * params.levels + 8)
    out = [tb.step(scans[0, i:i + 1], state[0, i:i + 1])[0] for i in range(12)]
    np.testing.assert_allclose(out, s[0], atol=1e-9)



@pytest.mark.parametrize("kind", ["driver", "reference", "driver+reflex"])
def test_compiled_spiking_step_equals_the_numpy_engine(kind):
    """The compiled BIF step (the default engine) is the numpy engine's algorithm: same outputs,
    same spike counts, same recurrent state, at a lossless T and at a lossy one (T = 3), for the
    driving stack (with and without the near-obstacle reflex) and the reference stack, batch 1
    (a graph node) and batch 4."""
    if kind == "reference":  # the reference stack (4 conv layers, 28 features), shipped L=8 file
        from nodes.control.kernels import load_params
        from tests.conftest import REPO

        params = load_params(str(REPO / "models" / "crnn_q8.npz"))
    elif kind == "driver+reflex":
        from nodes.control.reflex import with_reflex

        base = _driver_params()
        params = CrnnParams(*with_reflex(base.arrays, base.meta, d0_m=3.5, gain=0.3))  # reach 3.5 m: about half active
    else:
        params = _driver_params()
    rng = np.random.default_rng(7)
    scans = rng.uniform(0.1, 7.0, (4, 10, 541))
    scans[rng.random(scans.shape) < 0.013] = 0.0
    state = rng.uniform(-1, 1, (4, 10, 2))
    for T in (3, 2 * params.levels + 4):
        a = BifKernel(params, timesteps=T, batch=4, engine="numpy")
        b = BifKernel(params, timesteps=T, batch=4)
        assert b.engine == "compiled"
        for t in range(10):
            ya, yb = a.step(scans[:, t], state[:, t]), b.step(scans[:, t], state[:, t])
            np.testing.assert_allclose(yb, ya, rtol=0, atol=1e-12)
            np.testing.assert_array_equal(b.last_spikes, a.last_spikes)
            np.testing.assert_allclose(b.h, a.h, rtol=0, atol=1e-12)
        one = BifKernel(params, timesteps=T)  # batch 1 streams like the batch
        y1 = [one.step(scans[2:3, t], state[2:3, t])[0] for t in range(10)]
        a.reset()
        ya = [a.step(scans[:, t], state[:, t])[2] for t in range(10)]
        np.testing.assert_allclose(y1, ya, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="engine"):
        BifKernel(params, 4, engine="torch")


def test_spiking_shadow_and_family_report():
    params = _driver_params()
    spec = WorldSpec(episode_s=1.0)
    ctl = ShadowedSpiking(params, 2 * params.levels + 8, batch=3)
    res = run_episodes(ctl, [1, 2, 3], spec, progress=False)
    assert ctl.decisions == 3 * 20 and ctl.differ == 0 and len(res) == 3
    few = ShadowedSpiking(params, 1, batch=3)
    run_episodes(few, [1, 2, 3], spec, progress=False)
    assert few.differ > 0  # the shadow does see a difference when there is one


def test_closed_loop_report_pairs_controllers_per_family(tmp_path):
    from pipeline.modelfile import save_model

    params = _driver_params()
    path = tmp_path / "drv.npz"
    save_model(path, params.arrays, params.meta)
    rep = closed_loop_report([str(path)], ["configs/worlds/default.yaml", "configs/worlds/rooms.yaml"], 3, 0,
                             2 * params.levels + 8, 1.0, progress=False)
    assert set(rep["families"]) == {"default", "rooms"} and rep["sensor_noise"] is True
    fam = rep["families"]["rooms"]
    names = list(fam["controllers"])
    assert any(n.startswith("float, same weights") for n in names) and any(n.startswith("spiking") for n in names)
    assert any(n.startswith("quantised") for n in names) and "follow-the-gap (baseline)" in names
    for st in fam["controllers"].values():
        assert st["episodes"] == 3 and len(st["collision_free_ci95"]) == 2 and st["mean_cells_visited"] >= 1
    assert len(fam["comparisons"]) == 3 and "follow-the-gap, invalid returns filled" in names
    assert all(0 <= c["p_value"] <= 1 for c in fam["comparisons"].values())
    # --baselines filled: only the filled follow-the-gap is driven, and compared
    only = closed_loop_report([str(path)], ["configs/worlds/rooms.yaml"], 3, 0, 2 * params.levels + 8, 1.0,
                              progress=False, baselines="filled")["families"]["rooms"]
    assert "follow-the-gap (baseline)" not in only["controllers"] and "follow-the-gap, invalid returns filled" in only["controllers"]
    assert len(only["comparisons"]) == 2
    # the baselines do not depend on the model: the same seeds give the same filled run
    same = fam["controllers"]["follow-the-gap, invalid returns filled"]["per_episode_cells"]
    assert only["controllers"]["follow-the-gap, invalid returns filled"]["per_episode_cells"] == same


def test_driver_training_runs_dagger_rounds_and_stores_the_lossless_T(tmp_path):
    pytest.importorskip("torch")
    import argparse

    from nodes.control.driving import train_driver
    from nodes.control.kernels import load_params

    out = tmp_path / "drv.npz"
    args = argparse.Namespace(out=str(out), seed=0, levels=4, worlds_files=["configs/worlds/default.yaml"],
                              episode_s=2.0, val_episode_s=3.0, episodes=1, rounds=1, val_worlds=2, epochs=1,
                              max_minutes=5, init=None, cache=str(tmp_path / "cache"))
    assert train_driver(args) == 0
    p = load_params(str(out))
    hist = p.meta["dagger"]["history"]
    assert [h["round"] for h in hist][0] == 0 and p.meta["dagger"]["selected_round"] in (0, 1)
    assert p.meta["levels"] == 4 and p.meta["invalid_returns"] == "fill" and p.meta["timesteps"] >= 4
    # the stored T was checked on closed-loop decisions of every family (60 steps x 2 worlds here)
    assert p.meta["timesteps_note"]["decisions"] == {"default": 2 * 60}
    assert list(map(list, p.conv_layers)) == [list(c) for c in DRIVER_LAYERS]
    assert any((tmp_path / "cache").glob("expert_*.npz"))  # expert episodes kept for a rerun
    assert any((tmp_path / "cache").glob("dagger_*_round1_*.npz"))  # and the DAgger round's episodes
    assert any((tmp_path / "cache").glob("ftg_filled_val_*.json"))  # the baseline's validation progress
    # continuing from the file runs further rounds on top of its history
    args.init, args.out = str(out), str(tmp_path / "drv2.npz")
    assert train_driver(args) == 0
    assert load_params(args.out).meta["dagger"]["history"][0]["round"] == 0


def test_driver_training_keeps_the_reflex_in_the_dagger_loop(tmp_path):
    """``--init`` from a file with a reflex: the reflex drives in the DAgger episodes (their cache
    file is tagged with it), is scored in validation, and is saved with the selected network."""
    pytest.importorskip("torch")
    import argparse

    from nodes.control.driving import train_driver
    from nodes.control.kernels import load_params
    from nodes.control.reflex import with_reflex
    from pipeline.modelfile import load_model, save_model

    args = argparse.Namespace(out=str(tmp_path / "drv.npz"), seed=0, levels=4, worlds_files=["configs/worlds/dense.yaml"],
                              episode_s=2.0, val_episode_s=2.0, episodes=1, rounds=0, val_worlds=2, epochs=1,
                              max_minutes=5, init=None, cache=str(tmp_path / "cache"))
    assert train_driver(args) == 0
    a, m = load_model(args.out)
    save_model(tmp_path / "rfx.npz", *with_reflex(a, m, 0.6, 2.0))
    args.init, args.out, args.rounds = str(tmp_path / "rfx.npz"), str(tmp_path / "drv2.npz"), 1
    args.state_drop = 0.5  # the turn-rate input fed as 0 in half the fine-tuning sequences
    args.keep_rounds = True
    assert train_driver(args) == 0
    kept = sorted(p.name for p in tmp_path.glob("drv2.round*.npz"))
    assert kept == ["drv2.round0.npz", "drv2.round1.npz"]  # the re-entered round and the new one
    # the same architecture continues the --init network itself (no new network is trained)
    re_entered, init_arrays = load_model(tmp_path / "drv2.round0.npz")[0], load_model(args.init)[0]
    assert all(np.array_equal(re_entered[k], init_arrays[k]) for k in init_arrays)
    assert "new_network" not in load_model(args.out)[1]
    assert load_model(tmp_path / "drv2.round1.npz")[1]["reflex"]["d0_m"] == 0.6
    p = load_params(args.out)
    assert p.meta["regularisation"] == {"state_drop": 0.5}
    # every round's DAgger data is cached under a name that carries the DRIVER's weights digest,
    # so a run from another file cannot silently reuse episodes a different network drove
    collected = sorted(f.stem for f in (tmp_path / "cache").glob("dagger_*.npz"))
    assert collected and all("_by" in n for n in collected)
    names = [h["data"] for h in p.meta["dagger"]["history"] if h.get("data")]  # (empty if round 0 was kept)
    assert all(n in collected for n in names)
    assert p.reflex is not None and p.meta["reflex"]["d0_m"] == 0.6 and p.meta["reflex"]["gain"] == 2.0
    assert p.meta["dagger"]["reflex_in_loop"] == [0.6, 2.0]
    assert [h["reflex"] for h in p.meta["dagger"]["history"]][-1] == [0.6, 2.0]
    assert any((tmp_path / "cache").glob("dagger_*_rfx0.6-2_round1_*.npz"))


def test_driver_new_network_trains_on_the_init_files_data_and_extra_files(tmp_path, capsys):
    """``--init`` with ``--conv-channels``/``--hidden``: a NEW network of that size is trained on the
    --init file's aggregated data plus ``--extra-data`` files (named and hashed in the model), keeps
    the file's reflex, and its spiking conversion is checked like any driver's. Bad extra data and
    a bad channel list are refused by name."""
    pytest.importorskip("torch")
    import argparse
    import hashlib

    from nodes.control.driving import train_driver
    from nodes.control.kernels import load_params
    from nodes.control.reflex import with_reflex
    from pipeline.errors import UserError
    from pipeline.modelfile import load_model, save_model

    cache = tmp_path / "cache"
    args = argparse.Namespace(out=str(tmp_path / "drv.npz"), seed=0, levels=4, worlds_files=["configs/worlds/default.yaml"],
                              episode_s=2.0, val_episode_s=2.0, episodes=1, rounds=0, val_worlds=2, epochs=1,
                              max_minutes=5, init=None, cache=str(cache))
    assert train_driver(args) == 0
    save_model(tmp_path / "rfx.npz", *with_reflex(*load_model(args.out), 0.6, 2.0))
    (expert,) = cache.glob("expert_default_*_2.npz")
    with np.load(expert) as z:  # another run's labelled sequences, mirrored: still valid expert labels
        extra = tmp_path / "other_run.npz"
        np.savez(extra, scans=z["scans"][:, :, ::-1], state=z["state"] * np.array([1.0, -1.0], np.float32),
                 steering=-z["steering"])
    args.init, args.out, args.extra_data = str(tmp_path / "rfx.npz"), str(tmp_path / "wide.npz"), [str(extra)]
    args.conv_channels, args.hidden = "4,4,3", 8
    assert train_driver(args) == 0
    p = load_params(args.out)
    assert [c[1] for c in p.conv_layers] == [4, 4, 3] and p.arrays["rnn_wh"].shape == (8, 8)
    assert "RNN(8)" in p.meta["architecture"] and "Conv1D(4,k11,s10)" in p.meta["architecture"]
    assert p.meta["new_network"]["from"] == "rfx.npz"
    n_expert = len(np.load(expert)["steering"])
    assert p.meta["new_network"]["sequences"] == 2 * n_expert  # the file's round-0 data + the extra file
    (note,) = p.meta["extra_data"]
    assert note == {"file": "other_run.npz", "sha256": hashlib.sha256(extra.read_bytes()).hexdigest(),
                    "sequences": n_expert}
    assert p.meta["reflex"]["d0_m"] == 0.6 and p.reflex is not None  # the --init file's reflex stays
    scans = np.random.default_rng(0).uniform(0.2, 6.0, (3, 8, 541))
    state = np.zeros((3, 8, 2))
    q = CrnnKernel(p, mode="quant").run(scans, state)
    s, _ = BifKernel(p, p.meta["timesteps"] + 8, 3).run(scans, state)
    np.testing.assert_allclose(s, q, atol=1e-9)  # the new network converts losslessly, as every driver
    bad = tmp_path / "bad.npz"
    np.savez(bad, scans=np.zeros((2, 32, 100), np.float32), state=np.zeros((2, 32, 2), np.float32),
             steering=np.zeros((2, 32), np.float32))
    args.extra_data = [str(bad)]
    with pytest.raises(UserError, match="bad.npz: expected scans"):
        train_driver(args)
    args.extra_data, args.conv_channels = None, "4,4"
    with pytest.raises(UserError, match="give 3 positive out-channel counts"):
        train_driver(args)
    args.conv_channels, args.hidden, args.levels = None, None, 8  # the file's own size at another L: refused
    with pytest.raises(UserError, match="L=8"):
        train_driver(args)
    # a continuation of the new file reloads its extra data by name, only while the bytes hash the same
    args.levels, args.rounds, args.init, args.out = 4, 0, str(tmp_path / "wide.npz"), str(tmp_path / "cont.npz")
    assert train_driver(args) == 0
    assert load_model(args.out)[1]["extra_data"] == [note]
    extra.write_bytes(extra.read_bytes() + b"changed")
    capsys.readouterr()
    assert train_driver(args) == 0
    assert "extra data other_run.npz" in capsys.readouterr().out and "extra_data" not in load_model(args.out)[1]


def test_closed_loop_T_check_finds_a_lossy_T_that_expert_sequences_can_miss():
    """The stored T comes from the decisions the controller meets in closed loop, with the
    recurrent state carried over the whole episode: T = 2 (below L - 1 = 7 steps of the input layer)
    is refused, the chosen T equals the quantised network on every recorded decision."""
    from nodes.control.driving import closed_loop_timesteps

    params = _driver_params()
    spec = WorldSpec.from_file("configs/worlds/dense.yaml")
    spec.episode_s = 2.0
    T, note = closed_loop_timesteps(params, [spec], [100_000, 100_001], candidates=(2, 12, 16))
    assert note["decisions"] == {"dense": 2 * 40}
    assert "2" in note["failed_T_max_diff"] and note["failed_T_max_diff"]["2"] > 1e-9
    assert T in (12, 16)
    # the chosen T, driving: its spiking decisions equal the quantised twin's on every step
    ctl = ShadowedSpiking(params, T, 2)
    run_episodes(ctl, [100_000, 100_001], spec, progress=False)
    assert ctl.decisions == 80 and ctl.differ == 0


def test_selection_prefers_progress_once_every_family_reaches_the_target():
    from nodes.control.driving import selection_key

    ftg = {"a": 20.0, "b": 18.0}
    safe_slow = {"a": {"collision_free": 1.0, "cells": 19.0}, "b": {"collision_free": 0.975, "cells": 18.0}}
    safe_fast = {"a": {"collision_free": 0.95, "cells": 22.0}, "b": {"collision_free": 0.95, "cells": 19.0}}
    unsafe_fast = {"a": {"collision_free": 0.925, "cells": 30.0}, "b": {"collision_free": 1.0, "cells": 30.0}}
    keys = {n: selection_key(s, ftg, 0.95) for n, s in
            (("safe_slow", safe_slow), ("safe_fast", safe_fast), ("unsafe_fast", unsafe_fast))}
    assert max(keys, key=keys.get) == "safe_fast"  # both reach 95 %: progress decides
    assert keys["safe_slow"] > keys["unsafe_fast"]  # below the target the rate decides
    assert keys["safe_slow"][1] == pytest.approx(-1.0)  # margin: the worst family's cells over follow-the-gap


def test_reflex_pushes_away_from_near_obstacles_and_converts_losslessly():
    """The reflex steers away from the side of a near obstacle (not from a far one), its quantised
    form is L levels of the float one, and the spiking controller with it equals the quantised one
    (also the torch-stepped twin)."""
    pytest.importorskip("torch")
    from nodes.control.reflex import with_reflex
    from nodes.control.torch_models import TorchBif

    base = _driver_params()
    params = CrnnParams(*with_reflex(base.arrays, base.meta, d0_m=0.5, gain=2.0))
    assert params.reflex is not None and "reflex" in params.meta
    ang = np.deg2rad(-135 + 0.5 * np.arange(541))
    far = np.full((1, 541), 4.0)
    right = far.copy()
    right[0, (ang > np.deg2rad(-40)) & (ang < np.deg2rad(-20))] = 0.3  # a post 0.3 m away, front right
    left = right[:, ::-1].copy()
    for mode in ("float", "quant"):
        k = CrnnKernel(params, mode=mode)
        assert k.reflex_out(far)[0] == 0.0  # nothing within 0.5 m: silent
        assert k.reflex_out(right)[0] > 0.1  # obstacle on the right: steer left (+)
        assert k.reflex_out(left)[0] == pytest.approx(-k.reflex_out(right)[0])  # mirror image
    rng = np.random.default_rng(5)
    scans = rng.uniform(0.1, 0.75, (3, 8, 541))  # sector means about 0.4 m: inside the reach
    state = rng.uniform(-1, 1, (3, 8, 2))
    q = CrnnKernel(params, mode="quant").run(scans, state)
    q0 = CrnnKernel(base, mode="quant").run(scans, state)
    assert np.max(np.abs(q - q0)) > 0.05  # the reflex acts on these close-range scans
    s, _ = BifKernel(params, timesteps=2 * params.levels + 8, batch=3).run(scans, state)
    assert np.max(np.abs(s - q)) < 1e-9
    tb = TorchBif(params, 2 * params.levels + 8)
    out = [tb.step(scans[0, i:i + 1], state[0, i:i + 1])[0] for i in range(8)]
    np.testing.assert_allclose(out, s[0], atol=1e-9)
    # removing it (gain 0) gives back the driver
    a, m = with_reflex(params.arrays, params.meta, 0.5, 0.0)
    assert CrnnParams(a, m).reflex is None and "reflex" not in m


def test_timesteps_cli_rechecks_a_files_T_on_closed_loop_decisions(tmp_path):
    """``spikeloop train --model timesteps``: the weights are kept, T and the check's note are
    rewritten, the previous T is recorded."""
    import argparse

    from nodes.control.driving import check_timesteps_cli
    from pipeline.modelfile import load_model, save_model

    params = _driver_params()
    src = tmp_path / "m.npz"
    save_model(src, params.arrays, dict(params.meta, timesteps=2))
    args = argparse.Namespace(init=str(src), out=str(tmp_path / "m2.npz"), worlds_files=["configs/worlds/rooms.yaml"],
                              val_episode_s=1.0, val_worlds=2)
    assert check_timesteps_cli(args) == 0
    a, m = load_model(args.out)
    assert m["timesteps"] > 2 and m["timesteps_note"]["previous_T"] == 2
    assert m["timesteps_note"]["decisions"] == {"rooms": 2 * 20}
    assert all(np.array_equal(a[k], params.arrays[k]) for k in params.arrays)


def _assert_spiking_equals_quantised(params: CrnnParams, seed: int) -> None:
    """Spiking (compiled and numpy engines, and the torch-stepped twin) at a generous T equals the
    quantised network on 8 random scans of 3 streams, to 1e-9."""
    from nodes.control.torch_models import TorchBif

    rng = np.random.default_rng(seed)
    scans = rng.uniform(0.2, 1.2, (3, 8, 541))
    state = rng.uniform(-1, 1, (3, 8, 2))
    q = CrnnKernel(params, mode="quant").run(scans, state)
    for engine in ("compiled", "numpy"):
        s, _ = BifKernel(params, timesteps=2 * params.levels + 8, batch=3, engine=engine).run(scans, state)
        assert np.max(np.abs(s - q)) < 1e-9, engine
    tb = TorchBif(params, 2 * params.levels + 8)
    np.testing.assert_allclose([tb.step(scans[0, i:i + 1], state[0, i:i + 1])[0] for i in range(8)], q[0], atol=1e-9)


def test_shaped_reflex_reaches_further_ahead_breaks_the_head_on_tie_and_converts_losslessly():
    """The reflex with a longer front reach and a tie-break (``0.6:2:0.9:10``): a wall met square-on
    (which the symmetric reflex cancels to exactly 0) turns the robot left; an obstacle just right
    of the heading at 0.8 m (beyond d0, inside the front reach) pushes left while the symmetric
    reflex is silent; beside the robot the reach is still d0; spiking = quantised (numpy, compiled
    and torch-stepped twins) with the per-sector biases."""
    pytest.importorskip("torch")
    from nodes.control.kernels import reflex_reach
    from nodes.control.reflex import _candidates, with_reflex

    base = _driver_params()
    sym = CrnnParams(*with_reflex(base.arrays, base.meta, 0.6, 2.0))
    (cand,) = _candidates(["0.6:2:0.9:10"])
    shaped = CrnnParams(*with_reflex(base.arrays, base.meta, *cand))
    assert shaped.meta["reflex"]["front_m"] == 0.9 and shaped.meta["reflex"]["tie_deg"] == 10.0
    reach = reflex_reach(0.6, 0.9) * 5.0
    assert reach.max() == pytest.approx(0.9, abs=0.01) and reach.min() == pytest.approx(0.6)
    ang = np.deg2rad(-135 + 0.5 * np.arange(541))
    far = np.full((1, 541), 4.0)
    wall = far.copy()  # a wall 0.45 m ahead, met square-on: range 0.45 / cos(a) within +-60 deg
    front = np.abs(ang) < np.deg2rad(60)
    wall[0, front] = 0.45 / np.cos(ang[front])
    post = far.copy()
    post[0, (ang > np.deg2rad(-12)) & (ang < np.deg2rad(-2))] = 0.8  # 0.8 m ahead, just right of the heading
    side = far.copy()
    side[0, (ang > np.deg2rad(-95)) & (ang < np.deg2rad(-80))] = 0.7  # beside the robot, beyond d0
    for mode in ("float", "quant"):
        ks, kh = CrnnKernel(sym, mode=mode), CrnnKernel(shaped, mode=mode)
        assert ks.reflex_out(wall)[0] == pytest.approx(0.0, abs=1e-12)  # the symmetric reflex cancels
        assert kh.reflex_out(wall)[0] > 0.2  # the tie-break turns left
        assert ks.reflex_out(post)[0] == 0.0 and kh.reflex_out(post)[0] > 0.05  # longer reach ahead
        assert kh.reflex_out(side)[0] == 0.0 and kh.reflex_out(far)[0] == 0.0
    _assert_spiking_equals_quantised(shaped, seed=7)
    # the older two-value form is the older file exactly (a scalar bias)
    assert np.ndim(sym.arrays["reflex_b"]) == 0


def test_per_beam_reflex_feels_an_edge_the_sector_mean_misses_and_converts_losslessly():
    """``0.6:2:0.6:0:1``: one reflex neuron per beam (540), weighted so a filled 5-degree arc pushes
    as the 10-beam sector does; a door frame's edge 0.3 m away filling 3 beams of a sector with open
    space behind pushes the robot off it while the sector's mean range is out of reach; spiking =
    quantised (numpy, compiled and torch-stepped twins); the candidate round-trips through the
    file's metadata."""
    pytest.importorskip("torch")
    from nodes.control.reflex import _candidates, reflex_label, reflex_tuple, with_reflex
    from pipeline.errors import UserError

    base = _driver_params()
    sector = CrnnParams(*with_reflex(base.arrays, base.meta, 0.6, 2.0))
    (cand,) = _candidates(["0.6:2:0.6:0:1"])
    beam = CrnnParams(*with_reflex(base.arrays, base.meta, *cand))
    assert beam.arrays["reflex_w"].shape == (540,) and beam.meta["reflex"]["sector_beams"] == 1
    assert reflex_tuple(beam.meta["reflex"]) == (0.6, 2.0, 0.6, 0.0, 1.0) and "one neuron per beam" in reflex_label(cand)
    ang = np.deg2rad(-135 + 0.5 * np.arange(541))
    far = np.full((1, 541), 4.0)
    filled = far.copy()  # a box face filling the 5-degree sector 20-25 deg right of the heading, 0.3 m away
    filled[0, 180:190] = 0.3
    edge = far.copy()  # a door frame's edge: 3 beams of that sector at 0.3 m, the doorway behind at 4 m
    edge[0, 187:190] = 0.3
    assert np.all(ang[180:190] < 0)
    for mode in ("float", "quant"):
        ks, kb = CrnnKernel(sector, mode=mode), CrnnKernel(beam, mode=mode)
        assert kb.reflex_out(filled)[0] == pytest.approx(ks.reflex_out(filled)[0], rel=0.02) and ks.reflex_out(filled)[0] > 0.2
        assert ks.reflex_out(edge)[0] == 0.0 and kb.reflex_out(edge)[0] > 0.05  # pushes left, off the edge
        assert kb.reflex_out(far)[0] == 0.0
    _assert_spiking_equals_quantised(beam, seed=8)
    with pytest.raises(UserError, match="must divide 270"):
        with_reflex(base.arrays, base.meta, 0.6, 2.0, None, 0.0, 4)
    with pytest.raises(UserError, match="BEAMS"):
        _candidates(["0.6:2:0.6:0:1:7"])
    with pytest.raises(ValueError, match=r"reflex_w must hold 540 / S weights.*\(53,\)"):
        CrnnKernel(CrnnParams(dict(beam.arrays, reflex_w=np.zeros(53)), beam.meta), mode="quant")


def test_weights_digest_tells_edited_weights_apart_and_ignores_the_reflex():
    """A continued DAgger run reuses a round's validation score only for the very weights that were
    scored: the digest changes when one weight changes and not when only the reflex does."""
    from nodes.control.driving import weights_digest
    from nodes.control.reflex import with_reflex

    base = _driver_params()
    a = {k: v for k, v in base.arrays.items() if not k.startswith("reflex_")}
    d = weights_digest(a)
    assert d == weights_digest({k: v.copy() for k, v in a.items()})
    assert d == weights_digest(with_reflex(a, base.meta, 0.6, 2.0)[0])
    edited = dict(a, rnn_wx=a["rnn_wx"].copy())
    edited["rnn_wx"][:, -1] *= 0.75
    assert weights_digest(edited) != d


def test_float_gap_mixed_kernel_reproduces_the_pure_paths_and_mixes_the_reflex():
    """scripts/float_gap.py: network x reflex modes; the pure combinations ARE the float and the
    quantised controllers, a mixed one differs from both exactly by the reflex's difference."""
    import importlib.util

    from nodes.control.kernels import CrnnKernel, load_params
    from tests.conftest import REPO

    spec = importlib.util.spec_from_file_location("float_gap", REPO / "scripts" / "float_gap.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    params = load_params(str(REPO / "models" / "crnn_driver_q8.npz"))
    rng = np.random.default_rng(0)
    scans = rng.uniform(0.15, 6.0, size=(5, 3, 541))
    scans[:, :, 300:340] = rng.uniform(0.25, 0.45, size=(5, 3, 40))  # a near obstacle ahead-left: the reflex is active
    state = rng.uniform(-1, 1, size=(5, 3, 2))
    for net in ("quant", "float"):
        pure, mixed = CrnnKernel(params, 3, net), mod.MixedKernel(params, 3, net, net)
        other = mod.MixedKernel(params, 3, net, "float" if net == "quant" else "quant")
        ref = CrnnKernel(params, 3, "float" if net == "quant" else "quant")
        for t in range(5):
            u = pure.step(scans[t], state[t])
            assert np.array_equal(mixed.step(scans[t], state[t]), u)
            d = other.step(scans[t], state[t]) - u
            assert np.allclose(d, ref.reflex_out(scans[t]) - pure.reflex_out(scans[t]))
        assert np.any(np.abs(ref.reflex_out(scans[0]) - pure.reflex_out(scans[0])) > 0)  # the modes do differ


def test_float_gap_pure_drives_only_the_two_pure_rows(tmp_path):
    """scripts/float_gap.py --pure: the spiking (= quantised) controller and the float path of its
    weights, nothing mixed; the rows are real episodes (a cell count, a rate in [0, 1])."""
    import importlib.util
    import json

    from tests.conftest import REPO

    spec = importlib.util.spec_from_file_location("float_gap", REPO / "scripts" / "float_gap.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "gap.json"
    assert mod.main(["--model", str(REPO / "models" / "crnn_driver_q8.npz"), "--worlds", "2", "--episode-s", "3",
                     "--world", str(REPO / "configs" / "worlds" / "dense.yaml"), "--pure", "--json", str(out)]) == 0
    fam = json.loads(out.read_text())["families"]["dense"]
    assert set(fam) == {"quant+quant", "float+float"}
    for row in fam.values():
        assert 0.0 <= row["collision_free"] <= 1.0 and row["cells"] >= 1


def test_clip_mode_is_the_quantised_network_without_its_rounding(tmp_path):
    """CrnnKernel mode "clip" keeps every quantiser's clamp and drops its rounding: a file whose
    steps are 1000 x finer over the same ranges gives the same clip output exactly and a quantised
    output within the finer rounding of it; the float path (tanh / ReLU) differs. float_gap.py
    --clip drives that row too."""
    import importlib.util
    import json

    from nodes.control.kernels import load_params
    from tests.conftest import REPO

    params = load_params(str(REPO / "models" / "crnn_driver_q8.npz"))  # trained weights, with a reflex
    rng = np.random.default_rng(3)
    scans = rng.uniform(0.15, 7.0, (4, 12, 541))
    state = rng.uniform(-1, 1, (4, 12, 2))
    q, c, f = (CrnnKernel(params, mode=m).run(scans, state) for m in ("quant", "clip", "float"))
    fine_arrays = dict(params.arrays)
    for k in [k for k in fine_arrays if k.endswith("_step")]:
        fine_arrays[k] = np.float64(fine_arrays[k]) / 1000.0
    fine = CrnnParams(fine_arrays, dict(params.meta, levels=1000 * (params.levels - 1) + 1))
    np.testing.assert_allclose(CrnnKernel(fine, mode="clip").run(scans, state), c, rtol=0, atol=1e-12)  # same clamps
    assert np.max(np.abs(CrnnKernel(fine, mode="quant").run(scans, state) - c)) < 1e-3  # finer rounding -> clip
    assert np.max(np.abs(q - c)) > 5e-2 and np.max(np.abs(f - c)) > 5e-2  # neither of the other two
    with pytest.raises(ValueError, match="'clip' needs a quantised model"):
        CrnnKernel(CrnnParams(params.arrays, dict(params.meta, levels=None)), mode="clip")
    spec = importlib.util.spec_from_file_location("float_gap", REPO / "scripts" / "float_gap.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "gap.json"
    assert mod.main(["--model", str(REPO / "models" / "crnn_driver_q8.npz"), "--worlds", "2", "--episode-s", "3",
                     "--world", str(REPO / "configs" / "worlds" / "dense.yaml"), "--pure", "--clip",
                     "--json", str(out)]) == 0
    assert set(json.loads(out.read_text())["families"]["dense"]) == {"quant+quant", "float+float", "clip+clip"}


def test_dagger_collection_can_let_the_float_path_drive():
    """--float-drive: the chosen share of DAgger episodes is driven by the float path of the same
    weights (other states than the quantised network's), the rest as before."""
    from nodes.control.driving import _specs, collect
    from nodes.control.kernels import load_params
    from tests.conftest import REPO

    params = load_params(str(REPO / "models" / "crnn_driver_q8.npz"))
    specs = _specs(["configs/worlds/dense.yaml"], 3.0)
    q = collect(specs, 2, 500, np.random.default_rng(1), params, progress=False)
    q2 = collect(specs, 2, 500, np.random.default_rng(1), params, progress=False, float_share=0.0)
    half = collect(specs, 2, 500, np.random.default_rng(1), params, progress=False, float_share=0.5)
    f = collect(specs, 2, 500, np.random.default_rng(1), params, progress=False, float_share=1.0)
    assert np.array_equal(q.scans, q2.scans)  # share 0 = the quantised network drives every episode
    assert len(q) == len(half) == len(f)
    assert not np.array_equal(q.scans, f.scans)  # the float path drove elsewhere
    n = len(q) // 2  # sequences of the first episode (and its mirror) come first: driven by the quantised net
    assert np.array_equal(half.scans[:n], q.scans[:n]) and not np.array_equal(half.scans[n:], q.scans[n:])


def test_compiled_bif_scatter_equals_the_numpy_engine_with_gaps_and_overlaps():
    """The compiled engine scatters each spike to the outputs whose window holds it. A stack with a
    stride larger than its kernel (inputs no window reads), one with overlapping windows and a wide
    last layer: outputs, spike counts and h equal the numpy engine's step for step."""
    import torch

    from nodes.control.torch_models import CRNN
    from nodes.control.training import base_metadata

    layers = (("conv1", 6, 5, 3, False), ("conv2", 5, 2, 3, False), ("conv3", 4, 4, 1, False), ("conv4", 3, 1, 1, True))
    rng = np.random.default_rng(11)
    scans = rng.uniform(0.1, 7.0, (3, 6, 541))
    state = rng.uniform(-1, 1, (3, 6, 2))
    torch.manual_seed(5)
    model = CRNN(6, layers)
    model.init_steps(torch.from_numpy(scans).float(), torch.from_numpy(state).float())
    params = CrnnParams(model.export(), base_metadata(6, "synthetic", conv_layers=layers))
    for T in (2, 9):
        a = BifKernel(params, timesteps=T, batch=3, engine="numpy")
        b = BifKernel(params, timesteps=T, batch=3)
        spikes = 0.0
        for t in range(6):
            ya, yb = a.step(scans[:, t], state[:, t]), b.step(scans[:, t], state[:, t])
            np.testing.assert_allclose(yb, ya, rtol=0, atol=1e-12)
            np.testing.assert_array_equal(b.last_spikes, a.last_spikes)
            np.testing.assert_allclose(b.h, a.h, rtol=0, atol=1e-12)
            spikes += float(b.last_spikes.sum())
        assert spikes > 0  # the comparison covered spiking layers, not a silent network


def test_turn_rate_scaling_composes_on_a_file_scaled_before(tmp_path):
    """scripts/zero_state_input.py multiplies the recurrent weights of the turn-rate input and
    records the TOTAL scale: scaling the shipped file (x0.85 already) by 0.9 stores 0.765 and leaves
    every other weight as it was."""
    import importlib.util

    from pipeline.modelfile import load_model
    from tests.conftest import REPO

    spec = importlib.util.spec_from_file_location("zero_state_input", REPO / "scripts" / "zero_state_input.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    src = REPO / "models" / "crnn_driver_q8.npz"
    out = tmp_path / "x.npz"
    assert mod.main([str(src), str(out), "--scale", "0.9"]) == 0
    (a0, m0), (a1, m1) = load_model(src), load_model(out)
    before = m0["state_input_scale"]["turn_rate"]
    assert m1["state_input_scale"]["turn_rate"] == pytest.approx(before * 0.9)
    np.testing.assert_allclose(a1["rnn_wx"][:, -1], 0.9 * a0["rnn_wx"][:, -1], rtol=1e-12)
    np.testing.assert_array_equal(a1["rnn_wx"][:, :-1], a0["rnn_wx"][:, :-1])
    for k in a0:
        if k != "rnn_wx":
            np.testing.assert_array_equal(a1[k], a0[k])
