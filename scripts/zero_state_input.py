"""Write a copy of a controller file whose recurrent layer ignores (or down-weights) one state input.

    python scripts/zero_state_input.py models/crnn_driver_q8.npz OUT.npz [--input 1] [--scale 0]

The driving controller's RNN receives 2 state values beside the scan features: (speed, -turn
rate / max turn rate). Fed back in closed loop, the turn-rate input can sustain a turn that no
obstacle asks for (the L = 8 network settles into slow circles in open space; docs/RESULTS.md,
collision avoidance, round 4). This sets the recurrent layer's input weights from state value
``--input`` (default 1, the turn rate) to 0 in BOTH the float and the quantised/spiking network
(the same array ``rnn_wx``), so the three stay one network and the spiking conversion is
unchanged in kind; the metadata records what was zeroed (the total scale: a file scaled
before, e.g. the shipped driver at x0.85, scaled by 0.9 records 0.765). Re-check the stored T afterwards
(``spikeloop train --model timesteps``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="controller .npz (family controller)")
    ap.add_argument("out", help="output .npz")
    ap.add_argument("--scale", type=float, default=0.0,
                    help="multiply those weights by this instead of zeroing them (default %(default)s)")
    ap.add_argument("--input", type=int, default=1, choices=(0, 1),
                    help="state value to ignore: 0 = speed, 1 = turn rate (default %(default)s)")
    args = ap.parse_args(argv)
    from pipeline.modelfile import load_model, save_model

    arrays, meta = load_model(args.model)
    if meta.get("family") != "controller":
        raise SystemExit(f"{args.model}: not a controller model file")
    wx = arrays["rnn_wx"].copy()  # (hidden, features + 2): the last 2 columns are the state inputs
    col = wx.shape[1] - 2 + args.input
    wx[:, col] *= args.scale
    arrays = dict(arrays, rnn_wx=wx)
    name = ["speed", "turn_rate"][args.input]
    earlier = meta.get("state_input_scale", {})  # a file scaled before: the scales compose
    scaled = dict(earlier, **{name: float(earlier.get(name, 1.0)) * args.scale})
    meta = dict(meta, state_input_scale=scaled, state_scaled_from=str(args.model))
    save_model(args.out, arrays, meta)
    print(f"{args.model}: recurrent weights from state input {args.input} ({name}) x {args.scale:g} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
