"""Numpy inference of the collision-avoidance controllers (the runtime path: no torch here).

Network (Lechner et al. ICRA 2020; Su et al. arXiv 2408.09403), channel-last layout throughout:

    scan (541,) metres --preprocess--> x (541, 1)
    conv1 Conv1D(12, k5, s3) -> (179, 12)  ReLU  | quantised: Q unsigned, n in [0, L-1]
    conv2 Conv1D(16, k5, s3) -> (59, 16)   ReLU  | Q unsigned
    conv3 Conv1D(24, k5, s2) -> (28, 24)   ReLU  | Q unsigned
    conv4 Conv1D(1, k1)      -> (28, 1)    none  | Q signed, n in [-(L-1), L-1]
    RNN of 32: h = tanh(Wx [f(28), state(2)] + Wh h + b) | Q signed instead of tanh
    readout: steering = Wo h + bo   (1,)  linear, not quantised

541 beams give 179 -> 59 -> 28 positions with "valid" convolutions, exactly the 28 features of the
reference network, so no cropping is needed.

Other conv stacks and RNN sizes (e.g. the smaller driving controller, ``DRIVER_LAYERS``) are
described in the model file's metadata (``conv_layers``: [[name, out_channels, kernel, stride,
signed], ...]; the RNN size follows from the weights); the last conv layer's output (L, C) is
flattened position-major into L*C features. The last conv layer has a signed quantiser, the
others unsigned (ReLU).

Input preprocessing (the same in training and at run time): ranges are clipped to
``RANGE_CLIP_M`` and divided by it, so x is in [0, 1]; far-away detail above 5 m is irrelevant for
avoiding obstacles at 20 Hz and clipping removes most of the difference between the real room's
far field and the simulator's walls. Models whose metadata says ``"invalid_returns": "fill"``
first replace each 0 reading (an invalid return of the scanner) by the smallest valid reading
within 2 beams (:func:`fill_invalid`; conservative: invalid returns come next to close objects);
this is part of the input encoding, identical for the float, quantised and spiking networks.

Three kernels share one parameter set:

* :class:`CrnnKernel` ``mode="float"``: the float CRNN.
* :class:`CrnnKernel` ``mode="quant"``: the quantised CRNN, Q(x) = s * clamp(floor(x/s + 1/2), n_min, n_max).
* :class:`CrnnKernel` ``mode="clip"``: the quantised CRNN WITHOUT its rounding, C(x) = clamp(x, s n_min,
  s n_max) in float (a diagnostic: the float path's tanh/ReLU and the quantiser's rounding are the
  two ways the float network of a quantised file's weights differs from it; this mode has only the
  second).
* :class:`BifKernel`: the bipolar integrate-and-fire SNN converted from the quantised one, T steps
  per scan (DESIGN.md section 2): V(0) = theta/2, S(0) = 0; each step V += I, spike +1 if
  V >= theta and S < S_max, -1 if V < 0 and S > S_min; V -= s*theta, S += s; the layer's output
  at each step is s*theta (theta = the quantiser's step). The analog scan enters conv1 at the
  first step only and each bias is added once (s-analog encoding). The recurrent layer resets its
  BIF state for each scan, receives Wx x + b + Wh h(t-1) (x's conv part as spikes over the T
  steps, the 2 state values as analog input at the first step) and ends with h(t) = theta*S. The
  readout integrates Wo * (spikes * theta) + bo without spiking. At rest theta*S equals the
  quantiser's output, so with enough steps the spiking output equals the quantised one.

Near-obstacle reflex (optional; arrays ``reflex_w``, ``reflex_b``, ``reflex_step``; added by
``spikeloop train --model reflex``, :mod:`nodes.control.reflex`): 540 / S sector neurons on the same
input x (S beams each: 54 neurons of 10 beams = 5 degrees, or 540 neurons of one beam; the count
of ``reflex_w`` says which), current ``reflex_b - mean(x over the S beams)``, ReLU (float) / Q with L levels (quantised) /
BIF neurons given that current at the first step (spiking), read out linearly into the steering
beside the network's readout. It settles in L-1 steps, so it does not raise the lossless T.

All kernels run a batch of B independent streams (``step`` takes (B, 541) and (B, 2)); a graph
node uses B = 1. Shapes: scans (B, 541) float metres; state (B, 2); output (B,) steering.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit
from numba.typed import List as TypedList

N_BEAMS = 541
N_STATE = 2
RANGE_CLIP_M = 5.0
CONV_LAYERS = (  # (name, out_channels, kernel, stride, signed quantiser)
    ("conv1", 12, 5, 3, False),
    ("conv2", 16, 5, 3, False),
    ("conv3", 24, 5, 2, False),
    ("conv4", 1, 1, 1, True),
)
HIDDEN = 32
QUANT_LAYERS = ("conv1", "conv2", "conv3", "conv4", "rnn")


DRIVER_LAYERS = (  # the driving controller: 10-beam (5 deg) sectors, then a small stack
    ("conv1", 8, 11, 10, False),
    ("conv2", 8, 5, 3, False),
    ("conv3", 2, 1, 1, True),
)
"""Conv stack of the driving controller: 541 -> 54 x 8 -> 17 x 8 -> 17 x 2 = 34 features."""


def conv_lengths(n_in: int = N_BEAMS, layers=CONV_LAYERS) -> list[int]:
    """Output lengths of a conv stack for ``n_in`` beams ("valid" padding): 541 -> 179, 59, 28, 28."""
    out = []
    for _, _, k, s, _ in layers:
        n_in = (n_in - k) // s + 1
        out.append(n_in)
    return out


def n_features(layers=CONV_LAYERS) -> int:
    """Features the conv stack hands to the RNN: last length x last channels (28 for the reference)."""
    return conv_lengths(N_BEAMS, layers)[-1] * layers[-1][1]


N_FEATURES = n_features()  # 28


def fill_invalid(scans: np.ndarray, width: int = 2) -> np.ndarray:
    """Replace 0 readings (invalid returns) by the smallest valid reading within ``width`` beams
    (0 stays where no neighbour is valid). scans (..., 541) metres -> same shape, float64."""
    r = np.asarray(scans, dtype=np.float64)
    bad = r <= 0
    if not bad.any():
        return r
    v = np.where(bad, np.inf, r)
    m = v.copy()
    for d in range(1, width + 1):
        m[..., d:] = np.minimum(m[..., d:], v[..., :-d])
        m[..., :-d] = np.minimum(m[..., :-d], v[..., d:])
    out = np.where(bad, m, r)
    return np.where(np.isfinite(out), out, 0.0)


REFLEX_SECTOR_BEAMS = 10
"""Beams per sector of the near-obstacle reflex (5 degrees): 27 sectors on each side of the
heading (beams 0-269 and 271-540, mirror images of each other; the dead-ahead beam 270 unused)."""
_REFLEX_BEAMS = np.r_[0:270, 271:541]


def check_sector_beams(sector_beams: float) -> int:
    """Beams per reflex neuron as an int: a whole number that splits each side's 270 beams evenly
    (1, 2, 3, 5, 6, 9, 10, ...); anything else raises ValueError."""
    if sector_beams != int(sector_beams) or not 1 <= sector_beams <= 270 or 270 % int(sector_beams):
        raise ValueError(f"reflex: beams per neuron must divide 270 (1, 2, 3, 5, 6, 9, 10, ...), got {sector_beams}")
    return int(sector_beams)


def reflex_sector_angles(sector_beams: int = REFLEX_SECTOR_BEAMS) -> np.ndarray:
    """Centre angle (540 / sector_beams,) of each reflex sector, radians from the heading (+ = left)."""
    beams = _REFLEX_BEAMS.reshape(-1, check_sector_beams(sector_beams))
    return np.deg2rad(-135.0 + 0.5 * beams).mean(axis=1)


def reflex_weights(gain: float, fov_deg: float = 180.0, tie_deg: float = 0.0,
                   sector_beams: int = REFLEX_SECTOR_BEAMS) -> np.ndarray:
    """Readout weights (540 / sector_beams,) of the near-obstacle reflex, in steering per unit of
    network input (x = range / RANGE_CLIP_M): a sector at angle a within +-fov_deg/2 of the heading
    pushes the steering away from its side with weight gain * cos(a) per metre of intrusion per
    5 degrees of arc (+ for obstacles on the right, which steers left); sectors outside the field of
    view weigh 0. Per 5 degrees: with one-beam sectors each neuron weighs 1/10 of a 10-beam sector,
    so an obstacle filling a 5-degree sector pushes the same, while one seen by only some of its
    beams (a thin post, a door frame's edge, with open space behind) still pushes in proportion to
    the beams it fills -- the 10-beam sector's MEAN range can stay beyond reach then and not fire.

    ``tie_deg`` > 0 breaks the head-on tie: the sectors within +-tie_deg of the heading all push
    LEFT (+), so an obstacle dead ahead (a wall met square-on, whose two halves would cancel)
    turns the robot instead of leaving it to drive straight on; an obstacle nearer on the left
    still wins through the left sectors beyond tie_deg, which push right."""
    ang = reflex_sector_angles(sector_beams)
    side = np.where(ang < 0, 1.0, -1.0)
    if tie_deg > 0:
        side = np.where(np.abs(ang) < np.deg2rad(tie_deg), 1.0, side)
    per_5deg = sector_beams / REFLEX_SECTOR_BEAMS
    return np.where(np.abs(ang) <= np.deg2rad(fov_deg / 2), gain * RANGE_CLIP_M * per_5deg * side * np.cos(ang), 0.0)


def reflex_reach(d0_m: float, front_m: float | None = None, sector_beams: int = REFLEX_SECTOR_BEAMS) -> np.ndarray:
    """Reach (540 / sector_beams,) of each reflex sector in network-input units (metres / RANGE_CLIP_M): ``d0_m``
    everywhere, or with ``front_m`` > d0 a longer reach ahead, d0 + (front - d0) cos(a)^2 for the
    sectors within +-90 degrees of the heading (a sector starts pushing earlier the more directly
    ahead its obstacle lies: at 0.4 m/s and 1.5 rad/s a robot needs about 0.5 m to turn away from a
    wall met head-on, more than it needs beside it)."""
    ang = reflex_sector_angles(sector_beams)
    if front_m is None or front_m <= d0_m:
        return np.full(len(ang), d0_m / RANGE_CLIP_M)
    c = np.clip(np.cos(ang), 0.0, None)
    return (d0_m + (front_m - d0_m) * c ** 2) / RANGE_CLIP_M


def reflex_input(x: np.ndarray, bias: float | np.ndarray, neurons: int = 540 // REFLEX_SECTOR_BEAMS) -> np.ndarray:
    """The reflex neurons' input current: bias - (mean network input of each sector); x (B, 541)
    in [0, 1], bias scalar or per sector (neurons,) -> (B, neurons) (54 = 5-degree sectors, 540 =
    one beam each). Positive when an obstacle is nearer than bias * RANGE_CLIP_M metres."""
    return bias - x[:, _REFLEX_BEAMS].reshape(x.shape[0], neurons, -1).mean(axis=2)


def preprocess(scans: np.ndarray, fill: bool = False) -> np.ndarray:
    """Ranges (B, 541) in metres -> network input (B, 541, 1) in [0, 1] (``fill``: :func:`fill_invalid` first)."""
    r = fill_invalid(scans) if fill else np.asarray(scans, dtype=np.float64)
    x = np.minimum(r, RANGE_CLIP_M) / RANGE_CLIP_M
    return x[..., None]


def level_bounds(levels: int, signed: bool) -> tuple[int, int]:
    """(n_min, n_max) of a quantiser with ``levels`` levels: [0, L-1], or [-(L-1), L-1] if signed."""
    return (-(levels - 1) if signed else 0, levels - 1)


def quantise(x: np.ndarray, step: float, n_min: int, n_max: int) -> np.ndarray:
    """Q(x) = step * clamp(floor(x/step + 1/2), n_min, n_max)."""
    return step * np.clip(np.floor(x / step + 0.5), n_min, n_max)


class _Conv:
    """A 1-D convolution, channel-last, as one gather + one matmul. W (C_out, C_in, k) as in torch."""

    def __init__(self, w: np.ndarray, b: np.ndarray, stride: int, n_in: int) -> None:
        c_out, c_in, k = w.shape
        self.n_out = (n_in - k) // stride + 1
        self.idx = (np.arange(self.n_out) * stride)[:, None] + np.arange(k)[None, :]  # (L_out, k)
        self.wm = np.ascontiguousarray(w.transpose(2, 1, 0).reshape(k * c_in, c_out), dtype=np.float64)
        self.b = np.asarray(b, dtype=np.float64)
        self.k, self.c_in, self.c_out = k, c_in, c_out

    def __call__(self, x: np.ndarray, bias: bool = True) -> np.ndarray:
        """x (B, L_in, C_in) -> (B, L_out, C_out)."""
        if self.k == 1:
            y = x @ self.wm
        else:
            patches = x[:, self.idx, :].reshape(x.shape[0], self.n_out, self.k * self.c_in)
            y = patches @ self.wm
        return y + self.b if bias else y


@dataclass
class CrnnParams:
    """Parameters of one controller, loaded from a model file (``family: controller``)."""

    arrays: dict[str, np.ndarray]
    meta: dict[str, Any]

    @property
    def levels(self) -> int | None:
        return self.meta.get("levels")

    @property
    def conv_layers(self) -> tuple:
        """[(name, out_channels, kernel, stride, signed), ...] (the reference stack unless the file says otherwise)."""
        layers = self.meta.get("conv_layers")
        return CONV_LAYERS if not layers else tuple((str(n), int(c), int(k), int(s), bool(g)) for n, c, k, s, g in layers)

    @property
    def quant_layers(self) -> tuple[str, ...]:
        return tuple(name for name, *_ in self.conv_layers) + ("rnn",)

    @property
    def fill(self) -> bool:
        """Whether invalid (0) returns are filled before the network (:func:`fill_invalid`)."""
        return self.meta.get("invalid_returns") == "fill"

    @property
    def reflex(self) -> tuple[np.ndarray, float | np.ndarray, float | None] | None:
        """The near-obstacle reflex, if the file has one: (readout weights (54,), bias (x units;
        a scalar, or one per sector (54,) when the reach depends on the angle), quantiser step or
        None); see :func:`reflex_weights` / :func:`reflex_reach` / :func:`reflex_input`."""
        if "reflex_w" not in self.arrays:
            return None
        step = float(self.arrays["reflex_step"]) if "reflex_step" in self.arrays else None
        b = np.asarray(self.arrays["reflex_b"], dtype=np.float64)
        w = np.asarray(self.arrays["reflex_w"], dtype=np.float64)
        n = len(w)
        beams_ok = n >= 2 and len(_REFLEX_BEAMS) % n == 0 and 270 % (len(_REFLEX_BEAMS) // n) == 0
        if w.ndim != 1 or not beams_ok or b.ndim > 1 or b.size not in (1, n):
            raise ValueError(f"reflex arrays: reflex_w must hold 540 / S weights (S beams per neuron, S dividing 270) "
                             f"and reflex_b one value or one per neuron, got shapes {w.shape} and {b.shape}")
        return (w, float(b) if b.ndim == 0 else b, step)

    def step_of(self, layer: str) -> float:
        return float(self.arrays[f"{layer}_step"])

    def bounds(self, layer: str) -> tuple[int, int]:
        signed = layer == "rnn" or any(name == layer and g for name, _, _, _, g in self.conv_layers)
        return level_bounds(int(self.meta["levels"]), signed)


class CrnnKernel:
    """Float or quantised CRNN, streaming: one scan per ``step``, hidden state kept here.

    Args:
        params: the model's parameters.
        batch: number of independent streams B.
        mode: "float", "quant" (needs a quantised model file: ``levels`` and ``*_step`` arrays) or
            "clip" (the quantised network's clamps without its rounding; same files as "quant").
    """

    def __init__(self, params: CrnnParams, batch: int = 1, mode: str = "float") -> None:
        if mode not in ("float", "quant", "clip"):
            raise ValueError(f"mode must be 'float', 'quant' or 'clip', got {mode!r}")
        if mode in ("quant", "clip") and params.levels is None:
            raise ValueError(f"mode {mode!r} needs a quantised model file (metadata 'levels')")
        a = params.arrays
        self.params, self.mode, self.batch = params, mode, batch
        n = N_BEAMS
        self.layers_spec, self.fill = params.conv_layers, params.fill
        self.convs = []
        for name, _, _, stride, _ in self.layers_spec:
            conv = _Conv(a[f"{name}_w"], a[f"{name}_b"], stride, n)
            n = conv.n_out
            self.convs.append(conv)
        self.hidden = int(a["rnn_wh"].shape[0])
        self.wx = a["rnn_wx"].astype(np.float64).T.copy()  # (features + 2, hidden)
        self.wh = a["rnn_wh"].astype(np.float64).T.copy()  # (32, 32)
        self.b = a["rnn_b"].astype(np.float64)
        self.wo = a["out_w"].astype(np.float64).T.copy()  # (32, 1)
        self.bo = a["out_b"].astype(np.float64)
        self.q = {name: (params.step_of(name), *params.bounds(name)) for name in params.quant_layers} if mode != "float" else {}
        self.reflex = params.reflex
        if self.reflex is not None and mode != "float" and self.reflex[2] is None:
            raise ValueError("a quantised model with a reflex needs 'reflex_step'")
        self.reset()

    def reset(self) -> None:
        """Zero the hidden state (start of an episode or sequence)."""
        self.h = np.zeros((self.batch, self.hidden))

    def features(self, scans: np.ndarray) -> np.ndarray:
        """Conv stack: scans (B, 541) metres -> features (B, F) (F = 28 for the reference stack)."""
        x = preprocess(scans, self.fill)
        for (name, _, _, _, signed), conv in zip(self.layers_spec, self.convs):
            x = conv(x)
            if self.mode != "float":
                x = self._act(x, *self.q[name])
            elif not signed:
                x = np.maximum(x, 0.0)
        return x.reshape(x.shape[0], -1)

    def reflex_out(self, scans: np.ndarray) -> np.ndarray:
        """The near-obstacle reflex's steering (B,) for scans (B, 541) metres (0 without a reflex):
        ReLU(input) (float) or Q(input) (quantised, levels 0..L-1) times the readout weights."""
        if self.reflex is None:
            return np.zeros(len(scans))
        w, bias, step = self.reflex
        i = reflex_input(preprocess(scans, self.fill)[..., 0], bias, len(w))
        a = np.maximum(i, 0.0) if self.mode == "float" else self._act(i, step, 0, int(self.params.levels) - 1)
        return a @ w

    def _act(self, x: np.ndarray, step: float, n_min: int, n_max: int) -> np.ndarray:
        """A quantised population's activation: Q (``quant``) or its clamp without rounding (``clip``)."""
        return quantise(x, step, n_min, n_max) if self.mode == "quant" else np.clip(x, step * n_min, step * n_max)

    def step(self, scans: np.ndarray, state: np.ndarray) -> np.ndarray:
        """One decision per stream: scans (B, 541) metres, state (B, 2) -> steering (B,)."""
        f = self.features(scans)
        z = np.concatenate([f, np.clip(state, -1, 1)], axis=1) @ self.wx + self.h @ self.wh + self.b
        self.h = self._act(z, *self.q["rnn"]) if self.mode != "float" else np.tanh(z)
        u = (self.h @ self.wo + self.bo)[:, 0]
        return u if self.reflex is None else u + self.reflex_out(scans)

    def run(self, scans: np.ndarray, state: np.ndarray) -> np.ndarray:
        """Sequences from a zero state: scans (B, N, 541), state (B, N, 2) -> steering (B, N)."""
        b, n = scans.shape[:2]
        saved = self.batch
        self.batch = b
        self.reset()
        feats = self.features(scans.reshape(b * n, -1)).reshape(b, n, -1)
        out = np.empty((b, n))
        for t in range(n):
            z = np.concatenate([feats[:, t], np.clip(state[:, t], -1, 1)], axis=1) @ self.wx + self.h @ self.wh + self.b
            self.h = self._act(z, *self.q["rnn"]) if self.mode != "float" else np.tanh(z)
            out[:, t] = (self.h @ self.wo + self.bo)[:, 0]
        if self.reflex is not None:
            out += self.reflex_out(scans.reshape(b * n, -1)).reshape(b, n)
        self.batch = saved
        self.reset()
        return out


class _Bif:
    """A population of bipolar integrate-and-fire neurons with spike counters (shape ``shape``)."""

    def __init__(self, shape: tuple[int, ...], theta: float, n_min: int, n_max: int) -> None:
        self.shape, self.theta, self.n_min, self.n_max = shape, theta, n_min, n_max
        self.reset()

    def reset(self) -> None:
        self.v = np.full(self.shape, self.theta / 2.0)
        self.s = np.zeros(self.shape)
        self.quiet = True  # no neuron can fire until a current arrives (V(0) = theta/2)

    def fire(self, current: np.ndarray | None) -> np.ndarray | None:
        """Integrate ``current`` (or nothing) and fire; the spikes in {-1, 0, +1}, or None when no
        neuron fired. A population that received no current and fired nothing in its previous
        step cannot fire now (its state did not change), so it is skipped: exact, and the reason
        a settled network costs almost nothing per step."""
        if current is not None:
            self.v += current
            self.quiet = False
        elif self.quiet:
            return None
        up = (self.v >= self.theta) & (self.s < self.n_max)
        down = (self.v < 0.0) & (self.s > self.n_min)
        if not (up.any() or down.any()):
            self.quiet = True
            return None
        spikes = up.astype(np.float64)
        spikes -= down
        self.v -= spikes * self.theta
        self.s += spikes
        return spikes

    def __call__(self, current: np.ndarray | None) -> np.ndarray:
        """Integrate ``current`` (or nothing), fire; return the spikes in {-1, 0, +1}."""
        spikes = self.fire(current)
        return np.zeros(self.shape) if spikes is None else spikes


class BifKernel:
    """The spiking controller: the quantised CRNN converted to BIF neurons, ``timesteps`` per scan.

    Args:
        params: a quantised model (metadata ``levels``; arrays ``*_step``).
        timesteps: T, simulation steps per scan (about L-1 plus a few for the layers' corrections
            make it lossless; fewer trade accuracy for time).
        batch: number of independent streams B.
        engine: "compiled" (default): the input encoding in numpy, then the T steps of all layers
            in one numba-compiled function (:func:`_bif_decide`), about 5x faster at batch 1
            (p50 93 vs 440-500 us measured, driver at T = 10);
            "numpy": the same algorithm as numpy array operations per step (the reference; a test
            holds the two equal: outputs, spike counts, recurrent state).

    Attributes:
        last_spikes: spikes (+1 and -1 both count) emitted in the last ``step``, per stream (B,).
    """

    def __init__(self, params: CrnnParams, timesteps: int = 16, batch: int = 1, engine: str = "compiled") -> None:
        if params.levels is None:
            raise ValueError("the spiking controller needs a quantised model file (metadata 'levels')")
        if timesteps < 1:
            raise ValueError(f"timesteps must be >= 1, got {timesteps}")
        if engine not in ("compiled", "numpy"):
            raise ValueError(f"engine must be 'compiled' or 'numpy', got {engine!r}")
        self.twin = CrnnKernel(params, batch, mode="quant")  # shares the conversion's weights
        self.params, self.timesteps, self.batch, self.engine = params, timesteps, batch, engine
        self._build()
        self.reset()

    def _build(self) -> None:
        b, tw = self.batch, self.twin
        lengths = conv_lengths(N_BEAMS, tw.layers_spec)
        self.layers = [
            _Bif((b, n, c), *tw.q[name]) for (name, c, _, _, _), n in zip(tw.layers_spec, lengths)
        ]
        self.rnn = _Bif((b, tw.hidden), *tw.q["rnn"])
        self.reflex_pop = None
        if tw.reflex is not None:  # the reflex: one BIF population on the analog scan, read out directly
            w, _, step = tw.reflex
            self.reflex_pop = _Bif((b, len(w)), step, 0, int(self.params.levels) - 1)
        nf = tw.wx.shape[0] - N_STATE
        self.wx_feat, self.wx_state = tw.wx[:nf], tw.wx[nf:]
        if self.engine == "compiled":  # the same network as flat arrays for the compiled step
            ws, bs = TypedList(), TypedList()
            for (name, *_), conv in zip(tw.layers_spec, tw.convs):
                w = np.asarray(self.params.arrays[f"{name}_w"], dtype=np.float64)  # (C_out, C_in, k)
                ws.append(np.ascontiguousarray(w.transpose(2, 1, 0)))  # (k, C_in, C_out)
                bs.append(conv.b.copy())
            self._ws, self._bs = ws, bs
            self._strides = np.array([st for _, _, _, st, _ in tw.layers_spec], dtype=np.int64)
            self._n_outs = np.array(lengths, dtype=np.int64)
            qs = [tw.q[name] for name, *_ in tw.layers_spec]
            self._thetas = np.array([q[0] for q in qs], dtype=np.float64)
            self._nmins = np.array([q[1] for q in qs], dtype=np.float64)
            self._nmaxs = np.array([q[2] for q in qs], dtype=np.float64)
            self._wx_feat = np.ascontiguousarray(self.wx_feat)
            self._wo = np.ascontiguousarray(tw.wo[:, 0])

    def reset(self) -> None:
        """Zero the recurrent state h (start of an episode)."""
        self.h = np.zeros((self.batch, self.twin.hidden))
        self.last_spikes = np.zeros(self.batch)

    def step(self, scans: np.ndarray, state: np.ndarray) -> np.ndarray:
        """One decision per stream: scans (B, 541) metres, state (B, 2) -> steering (B,)."""
        if self.engine == "compiled":
            return self._step_compiled(scans, state)
        tw = self.twin
        x = preprocess(scans, tw.fill)
        for layer in self.layers:
            layer.reset()
        self.rnn.reset()
        count = np.zeros(self.batch)
        acc = np.repeat(tw.bo[None, :], self.batch, axis=0)  # readout bias once
        if self.reflex_pop is not None:  # reflex: analog input at the first step, spikes read out
            rw, rbias, _ = tw.reflex
            self.reflex_pop.reset()
            ri = reflex_input(x[..., 0], rbias, len(rw))
            for t in range(self.timesteps):
                rs = self.reflex_pop.fire(ri if t == 0 else None)
                if rs is not None:
                    count += np.abs(rs).sum(axis=1)
                    acc[:, 0] += (rs * self.reflex_pop.theta) @ rw
        rnn_in0 = np.clip(state, -1, 1) @ self.wx_state + self.h @ tw.wh + tw.b
        thetas = [layer.theta for layer in self.layers]
        for t in range(self.timesteps):
            current = tw.convs[0](x) if t == 0 else None  # analog input + bias at the first step
            out = self.layers[0].fire(current)
            if out is not None:
                count += np.abs(out).sum(axis=(1, 2))
            for conv, layer, theta_in in zip(tw.convs[1:], self.layers[1:], thetas[:-1]):
                if out is not None:
                    current = conv(out * theta_in, bias=(t == 0))
                elif t == 0:  # no input spikes yet: the bias alone, delivered once
                    current = np.broadcast_to(conv.b, (self.batch, conv.n_out, conv.c_out))
                else:
                    current = None
                out = layer.fire(current)
                if out is not None:
                    count += np.abs(out).sum(axis=(1, 2))
            current = None if out is None else (out.reshape(self.batch, -1) * thetas[-1]) @ self.wx_feat
            if t == 0:
                current = rnn_in0 if current is None else current + rnn_in0
            hs = self.rnn.fire(current)
            if hs is not None:
                count += np.abs(hs).sum(axis=1)
                acc += (hs * self.rnn.theta) @ tw.wo
        self.h = self.rnn.theta * self.rnn.s
        self.last_spikes = count
        return acc[:, 0]

    def _step_compiled(self, scans: np.ndarray, state: np.ndarray) -> np.ndarray:
        """:meth:`step` through :func:`_bif_decide` (compiled; the same algorithm and weights)."""
        tw = self.twin
        x = np.ascontiguousarray(preprocess(scans, tw.fill)[..., 0])  # (B, 541)
        rnn_in0 = np.clip(state, -1, 1) @ self.wx_state + self.h @ tw.wh + tw.b  # (B, H), as the numpy engine
        theta_h, hmin, hmax = tw.q["rnn"]
        acc, s_h, count = _bif_decide(x, self._ws, self._bs, self._strides, self._n_outs, self._thetas,
                                      self._nmins, self._nmaxs, self._wx_feat, np.ascontiguousarray(rnn_in0),
                                      float(theta_h), float(hmin), float(hmax), self._wo, float(tw.bo[0]),
                                      int(self.timesteps))
        if self.reflex_pop is not None:
            rw, rbias, rstep = tw.reflex
            r_acc, r_count = _bif_analog(np.ascontiguousarray(reflex_input(x, rbias, len(rw))), float(rstep),
                                         float(self.reflex_pop.n_max), rw, int(self.timesteps))
            acc = acc + r_acc
            count = count + r_count
        self.h = theta_h * s_h
        self.last_spikes = count
        return acc

    def run(self, scans: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sequences from a zero state: (B, N, 541), (B, N, 2) -> steering (B, N), spikes (B, N).

        The kernel's batch must equal B.
        """
        b, n = scans.shape[:2]
        if b != self.batch:
            raise ValueError(f"kernel built for batch {self.batch}, got {b} sequences")
        self.reset()
        out, spikes = np.empty((b, n)), np.empty((b, n))
        for t in range(n):
            out[:, t] = self.step(scans[:, t], state[:, t])
            spikes[:, t] = self.last_spikes
        self.reset()
        return out, spikes


@njit(cache=True, error_model="numpy")
def _bif_fire(v, s, theta, n_min, n_max):  # pragma: no cover - compiled
    """Fire a flat BIF population in place (as :meth:`_Bif.fire`); spikes in {-1, 0, +1} and their count."""
    spikes = np.zeros(v.shape[0])
    n = 0
    for i in range(v.shape[0]):
        if v[i] >= theta and s[i] < n_max:
            spikes[i] = 1.0
        elif v[i] < 0.0 and s[i] > n_min:
            spikes[i] = -1.0
        else:
            continue
        v[i] -= spikes[i] * theta
        s[i] += spikes[i]
        n += 1
    return spikes, n


@njit(cache=True, error_model="numpy")
def _bif_analog(current, theta, n_max, w, T):  # pragma: no cover - compiled
    """A BIF population (B, n) (counters 0..n_max) given the analog ``current`` at the first of T
    steps, its spikes read out through ``w`` (n,): the reflex of :class:`BifKernel`, compiled.
    Returns the readout sums (B,) and the spikes per stream (B,)."""
    B, n = current.shape
    acc = np.zeros(B)
    count = np.zeros(B)
    for b in range(B):
        v = np.full(n, theta / 2.0)
        s = np.zeros(n)
        for t in range(T):
            if t == 0:
                for i in range(n):
                    v[i] += current[b, i]
            spikes, nf = _bif_fire(v, s, theta, 0.0, n_max)
            if nf > 0:
                count[b] += nf
                for i in range(n):
                    if spikes[i] != 0.0:
                        acc[b] += (spikes[i] * theta) * w[i]
    return acc, count


@njit(cache=True, error_model="numpy")
def _bif_decide(x, ws, bs, strides, n_outs, thetas, nmins, nmaxs, wx_feat, rnn_in0, theta_h, hmin, hmax,
                wo, bo, T):  # pragma: no cover - compiled
    """One decision of the BIF controller per stream, compiled (numba); the algorithm of
    :meth:`BifKernel.step` (numpy engine), step for step.

    x (B, 541) preprocessed scan; ws[l] (k, C_in, C_out) and bs[l] (C_out,) per conv layer;
    strides, n_outs (layers,); thetas, nmins, nmaxs (layers,) quantiser step and counter bounds;
    wx_feat (F, H); rnn_in0 (B, H) = the recurrent layer's analog input (state, h(t-1), bias);
    wo (H,), bo readout. Returns steering (B,), the RNN's spike counters S (B, H) and the spikes
    emitted per stream (B,). Populations are flat, position-major (index = position * C + channel,
    the numpy engine's channel-last layout). A layer without input current is fired anyway: its
    state did not change since it last fired nothing, so it fires nothing (the numpy engine skips it).
    """
    B = x.shape[0]
    L = len(ws)
    H = wx_feat.shape[1]
    acc_out = np.empty(B)
    s_out = np.empty((B, H))
    count_out = np.zeros(B)
    for b in range(B):
        vs = []
        ss = []
        zs = []  # per layer: the input current of one time step (scratch, zeroed before each use)
        for l in range(L):
            m = n_outs[l] * ws[l].shape[2]
            vs.append(np.full(m, thetas[l] / 2.0))
            ss.append(np.zeros(m))
            zs.append(np.empty(m))
        vh = np.full(H, theta_h / 2.0)
        sh = np.zeros(H)
        acc = bo
        count = 0.0
        prev = np.zeros(1)
        for t in range(T):
            fired = False
            for l in range(L):
                w = ws[l]
                k, c_in, c_out = w.shape[0], w.shape[1], w.shape[2]
                st = strides[l]
                n = n_outs[l]
                v = vs[l]
                if l == 0:
                    if t == 0:  # the analog scan (one input channel) and the bias, at the first step only
                        for o in range(n):
                            for co in range(c_out):
                                z = 0.0
                                for j in range(k):
                                    for ci in range(c_in):
                                        z += x[b, o * st + j] * w[j, ci, co]
                                v[o * c_out + co] += z + bs[l][co]
                elif fired:  # spikes of the layer below (times its step), plus the bias at the first step
                    # event-driven: each input spike (position p, channel ci) is scattered to the outputs o
                    # whose window holds it (j = p - o*st in [0, k)). Inputs are visited p- then ci-ascending,
                    # so every output sums its terms in the order j, ci of a dense convolution: bit-identical
                    # to it, at a cost that follows the spikes instead of n * c_out * k * c_in.
                    th_in = thetas[l - 1]
                    z = zs[l]
                    z[:] = 0.0
                    for p in range(prev.shape[0] // c_in):
                        o_hi = min(p // st, n - 1)
                        o_lo = max(0, (p - k + st) // st)  # = ceil((p - k + 1) / st), at least 0
                        if o_lo > o_hi:
                            continue
                        for ci in range(c_in):
                            u = prev[p * c_in + ci]
                            if u != 0.0:
                                val = u * th_in
                                for o in range(o_lo, o_hi + 1):
                                    j = p - o * st
                                    for co in range(c_out):
                                        z[o * c_out + co] += val * w[j, ci, co]
                    for o in range(n):
                        for co in range(c_out):
                            zz = z[o * c_out + co]
                            if t == 0:
                                zz += bs[l][co]
                            v[o * c_out + co] += zz
                elif t == 0:  # no input spikes yet: the bias alone, delivered once
                    for o in range(n):
                        for co in range(c_out):
                            v[o * c_out + co] += bs[l][co]
                prev, nf = _bif_fire(v, ss[l], thetas[l], nmins[l], nmaxs[l])
                fired = nf > 0
                count += nf
            if fired or t == 0:
                cur = np.zeros(H)
                if fired:
                    th = thetas[L - 1]
                    for f in range(prev.shape[0]):
                        u = prev[f]
                        if u != 0.0:
                            for j in range(H):
                                cur[j] += (u * th) * wx_feat[f, j]
                if t == 0:
                    for j in range(H):
                        cur[j] += rnn_in0[b, j]
                for j in range(H):
                    vh[j] += cur[j]
            hs, nh = _bif_fire(vh, sh, theta_h, hmin, hmax)
            if nh > 0:
                count += nh
                for j in range(H):
                    if hs[j] != 0.0:
                        acc += (hs[j] * theta_h) * wo[j]
        acc_out[b] = acc
        s_out[b] = sh
        count_out[b] = count
    return acc_out, s_out, count_out


def load_params(path: str) -> CrnnParams:
    """Read a controller model file (family ``controller``, kind ``crnn``)."""
    from pipeline.errors import UserError
    from pipeline.modelfile import load_model

    arrays, meta = load_model(path)
    if meta.get("family") != "controller" or meta.get("kind") != "crnn":
        raise UserError(f"{path}: not a CRNN controller model (family {meta.get('family')!r}, kind {meta.get('kind')!r})")
    return CrnnParams(arrays, meta)
