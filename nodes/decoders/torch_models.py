"""PyTorch / snntorch versions of the decoders, for training and for checking the numpy kernels.

Imported only by training, evaluation and tests (never on the runtime path). Every model exports
to ``(arrays, metadata)`` for :func:`pipeline.modelfile.save_model` and can be rebuilt from them
(:func:`from_arrays`), so the same file drives the numpy kernel and the snntorch reference.

Spiking layers use ``snntorch.Leaky`` with learnable β and threshold, ``reset_mechanism="none"``
and the reset by subtraction written as an input current ``−θ·s[t−1]`` (detached, as snntorch
detaches its own reset). The dynamics are exactly snntorch's default subtract reset
(``reset = H(mem[t−1] − θ)``, ``mem = β·mem + I − reset·θ``); the explicit form fixes the
floating-point order so that the numpy kernel can reproduce it bit for bit (see
``nodes.decoders.kernels``). ``layer.transform`` (None, or a module mapping the synaptic current
``W·x + b`` of shape ``(batch, units)`` to a new current) is the hook for input-current
transforms such as attention.

Shapes: streaming models take ``x`` of shape ``(T, B, C)`` (time first) and return ``(T, B, 2)``;
window models (SNN_3D, ANN) take ``(B, steps, C)`` or ``(B, C)`` and return ``(B, 2)``. Outputs
are in normalised target units (velocity / ``target_scale``).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import snntorch as snn
import torch
from snntorch import surrogate
from torch import nn

from nodes.decoders.attention_torch import attach_attention, export_attention, import_attention
from nodes.decoders.kernels import to_grid

SNN_STREAMING_BETA = (0.9, 0.7, 0.8)
SNN_STREAMING_THRESHOLD = (0.4, 0.6, 0.5)
BETA_MAX = 0.995
"""Largest trained β (a 0.8 s membrane time constant at 4 ms steps): β stays in [0, BETA_MAX]."""
THRESHOLD_MIN = 0.02
"""Smallest trained threshold: θ stays > 0."""


def heterogeneous_beta(units: int, tau_ms: tuple[float, float], step_ms: float = 4.0,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """Per-neuron β = exp(−step/τ) with τ log-uniform in ``tau_ms`` (ms); shape ``(units,)``.

    A spread of membrane time constants gives a layer memories from a few steps to hundreds of
    milliseconds (heterogeneous time constants; Perez-Nieves et al. 2021), which the reaching task
    needs: neural activity leads velocity by ~100 ms and one 4 ms bin says little.
    """
    lo, hi = np.log(tau_ms[0]), np.log(tau_ms[1])
    u = torch.rand(units, generator=generator)
    tau = torch.exp(lo + (hi - lo) * u)
    return torch.clamp(torch.exp(-step_ms / tau), 0.0, BETA_MAX)


class LIFLayer(nn.Module):
    """Linear synapses + snntorch Leaky neurons (reset by subtraction as an input current)."""

    def __init__(self, n_in: int, n_out: int, beta: float | torch.Tensor, threshold: float | torch.Tensor,
                 learn: bool) -> None:
        super().__init__()
        self.fc = nn.Linear(n_in, n_out)
        self.lif = snn.Leaky(beta=beta, threshold=threshold, learn_beta=learn, learn_threshold=learn,
                             reset_mechanism="none", spike_grad=surrogate.atan())
        self.transform: nn.Module | None = None

    def step(self, cur: torch.Tensor, mem: torch.Tensor, spk: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One step from the synaptic current ``cur = W·x + b`` (B, units); returns ``(spk, mem)``."""
        if self.transform is not None:
            cur = self.transform(cur)
        cur = cur - self.lif.threshold * spk.detach()
        spk, mem = self.lif(cur, mem)
        return spk, mem


def _export_lif(layers: list[LIFLayer]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for l, layer in enumerate(layers):
        out[f"W{l}"] = to_grid(layer.fc.weight.detach().numpy())
        out[f"b{l}"] = to_grid(layer.fc.bias.detach().numpy())
        out[f"beta{l}"] = np.atleast_1d(layer.lif.beta.detach().clamp(0, 1).numpy().astype(np.float32))
        out[f"thr{l}"] = np.atleast_1d(to_grid(layer.lif.threshold.detach().numpy()))
    return out


def _fit(a: np.ndarray, shape: torch.Size) -> torch.Tensor:
    t = torch.from_numpy(np.asarray(a, dtype=np.float32))
    return t.reshape(shape) if t.numel() == shape.numel() else t.reshape(-1)[:1].expand(shape)


def _import_lif(layers: list[LIFLayer], arrays: dict[str, np.ndarray]) -> None:
    with torch.no_grad():
        for l, layer in enumerate(layers):
            layer.fc.weight.copy_(torch.from_numpy(np.asarray(arrays[f"W{l}"], dtype=np.float32)))
            layer.fc.bias.copy_(torch.from_numpy(np.asarray(arrays[f"b{l}"], dtype=np.float32)))
            # a file's β/θ may be one per layer (older files) or one per neuron
            beta = _fit(arrays[f"beta{l}"], layer.lif.beta.shape)
            thr = _fit(arrays[f"thr{l}"], layer.lif.threshold.shape)
            layer.lif.beta.copy_(beta)
            layer.lif.threshold.copy_(thr)


class SNNStreaming(nn.Module):
    """SNN_Streaming: binarised 4 ms bin per step → C → 32 → 48 → 2 Leaky, state carried,
    output ``out_scale · mem`` of the last layer.

    ``per_neuron``: every neuron learns its own β and θ (shape ``(units,)`` per layer), hidden
    layers start from heterogeneous time constants (``tau_ms``, see :func:`heterogeneous_beta`)
    and :meth:`constrain` keeps β in [0, BETA_MAX] and θ ≥ THRESHOLD_MIN after every optimiser
    step. Without it, one β and one θ per layer (the paper's setting).
    """

    kind = "snn_streaming"

    def __init__(self, channels: int, hidden: tuple[int, ...] = (32, 48), outputs: int = 2,
                 beta: tuple = SNN_STREAMING_BETA, threshold: tuple = SNN_STREAMING_THRESHOLD,
                 per_neuron: bool = False, tau_ms: tuple[float, float] = (8.0, 400.0)) -> None:
        super().__init__()
        sizes = [channels, *hidden, outputs]
        layers = []
        for i in range(len(sizes) - 1):
            b, th = beta[i], threshold[i]
            if per_neuron:
                n = sizes[i + 1]
                if isinstance(b, (list, tuple)):
                    b = torch.tensor(b, dtype=torch.float32)
                elif i < len(sizes) - 2:
                    b = heterogeneous_beta(n, tau_ms)
                else:
                    b = torch.full((n,), float(b))
                th = torch.tensor(th, dtype=torch.float32) if isinstance(th, (list, tuple)) else torch.full((n,), float(th))
            layers.append(LIFLayer(sizes[i], sizes[i + 1], b, th, learn=True))
        self.layers = nn.ModuleList(layers)
        self.out_scale = nn.Parameter(torch.ones(outputs))
        self.sizes = sizes

    @torch.no_grad()
    def constrain(self) -> None:
        """Keep trained neuron parameters valid: β in [0, BETA_MAX], θ ≥ THRESHOLD_MIN."""
        for layer in self.layers:
            layer.lif.beta.clamp_(0.0, BETA_MAX)
            layer.lif.threshold.clamp_(min=THRESHOLD_MIN)

    def neuron_parameters(self) -> dict[str, list]:
        """Trained β and θ per layer (lists, one value per neuron or one per layer)."""
        return {"beta": [layer.lif.beta.detach().clamp(0, 1).reshape(-1).tolist() for layer in self.layers],
                "threshold": [layer.lif.threshold.detach().reshape(-1).tolist() for layer in self.layers]}

    def init_state(self, batch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [(torch.zeros(batch, s), torch.zeros(batch, s)) for s in self.sizes[1:]]

    def forward(self, x: torch.Tensor, state: list | None = None, record: bool = False, record_grad: bool = False):
        """``x`` (T, B, C) binary → ``(y (T, B, 2), state, spikes)``; spikes: per layer (T, B, units) if ``record``
        (detached unless ``record_grad``: a firing-rate objective needs their gradient)."""
        T, B, _ = x.shape
        state = state if state is not None else self.init_state(B)
        mems = [s[0] for s in state]
        spks = [s[1] for s in state]
        # causal ASA (attention: asa): its window of past currents is a third state entry
        asas = [getattr(layer, "asa", None) for layer in self.layers]
        hists = [s[2] if len(s) > 2 else (a.initial_state(B) if a is not None else None) for s, a in zip(state, asas)]
        # Layer by layer, each over all T steps: the stack is feed-forward (a layer's input current
        # depends on the layer below only), so every layer's synaptic currents and its causal ASA
        # are computed for the whole sequence at once, and only the membranes run step by step.
        # Same arithmetic per step as a step-major loop (batched float32 sums of grid weights and
        # 0/1 inputs are exact in any order; the ASA is float64), and far fewer small tensor ops.
        inp = x
        rec: list[torch.Tensor] = []
        mem_last: list[torch.Tensor] = []
        for l, layer in enumerate(self.layers):
            cur_all = layer.fc(inp)  # (T, B, units)
            if asas[l] is not None:
                cur_all, hists[l], _ = asas[l].forward_seq(cur_all, hists[l])
            out = []
            last = l == len(self.layers) - 1
            for t in range(T):
                spks[l], mems[l] = layer.step(cur_all[t], mems[l], spks[l])
                out.append(spks[l])
                if last:
                    mem_last.append(mems[l])
            inp = torch.stack(out) if out else cur_all.new_zeros((0, B, cur_all.shape[2]))
            if record:
                rec.append(inp if record_grad else inp.detach())
        ys = [m * self.out_scale for m in mem_last]
        spikes = rec if record else None
        state = [(m, s) if h is None else (m, s, h) for m, s, h in zip(mems, spks, hists)]
        y = torch.stack(ys) if ys else x.new_zeros((0, B, self.sizes[-1]))
        return y, state, spikes

    def export(self) -> dict[str, np.ndarray]:
        return {**_export_lif(list(self.layers)), "out_scale": self.out_scale.detach().numpy().astype(np.float32),
                **export_attention(list(self.layers))}

    def load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        _import_lif(list(self.layers), arrays)
        import_attention(list(self.layers), arrays)
        with torch.no_grad():
            self.out_scale.copy_(torch.from_numpy(np.asarray(arrays["out_scale"], dtype=np.float32)))


class SNN3D(nn.Module):
    """SNN_3D: (B, 7, C) step counts → LayerNorm → C → 32 → 48 → 2 LIF (β 0.5, θ 0.5, fixed),
    membranes from zero for each window; output ``out_scale · mem`` of the last layer after the last step."""

    kind = "snn_3d"

    def __init__(self, channels: int, hidden: tuple[int, ...] = (32, 48), outputs: int = 2,
                 beta: float | tuple = 0.5, threshold: float | tuple = 0.5, learn: bool = False) -> None:
        super().__init__()
        sizes = [channels, *hidden, outputs]
        n = len(sizes) - 1
        betas = list(beta) if isinstance(beta, (list, tuple)) else [beta] * n
        thrs = list(threshold) if isinstance(threshold, (list, tuple)) else [threshold] * n
        self.norm = nn.LayerNorm(channels)
        # learn: one trained β and θ per layer (kept valid by constrain()); else fixed (the paper's setting)
        self.layers = nn.ModuleList(LIFLayer(sizes[i], sizes[i + 1], float(betas[i]), float(thrs[i]), learn=learn)
                                    for i in range(n))
        self.out_scale = nn.Parameter(torch.ones(outputs))
        self.sizes = sizes
        self.learn = learn
        # training-only regularisation (identity in eval mode, so kernels and exports are unchanged)
        self.drop = nn.Dropout(0.0)  # on the normalised input and on every hidden layer's spikes
        self.input_noise = 0.0  # std of Gaussian noise added to the normalised input

    @torch.no_grad()
    def constrain(self) -> None:
        """Trained neuron parameters stay valid: β in [0, BETA_MAX], θ ≥ THRESHOLD_MIN."""
        if self.learn:
            for layer in self.layers:
                layer.lif.beta.clamp_(0.0, BETA_MAX)
                layer.lif.threshold.clamp_(min=THRESHOLD_MIN)

    def forward(self, x: torch.Tensor, record: bool = False, record_grad: bool = False):
        """``x`` (B, steps, C) → ``(y (B, 2), spikes)``; spikes: per layer (B, steps, units) if ``record``
        (detached unless ``record_grad``).

        ``layer.transform`` (if set) maps the layer's currents over the whole window, (B, steps, units)."""
        B, steps, _ = x.shape
        inp = self.norm(x)
        if self.training and self.input_noise > 0:
            inp = inp + self.input_noise * torch.randn_like(inp)
        rec = []
        for l, layer in enumerate(self.layers):  # layer by layer over the window: a transform sees (B, steps, units)
            inp = self.drop(inp)  # the input of every layer; identity unless training with dropout
            cur_all = layer.fc(inp)
            if layer.transform is not None:
                cur_all = layer.transform(cur_all)
            mem = torch.zeros(B, cur_all.shape[-1])
            spk = torch.zeros(B, cur_all.shape[-1])
            outs = []
            for k in range(steps):
                cur = cur_all[:, k] - layer.lif.threshold * spk.detach()
                spk, mem = layer.lif(cur, mem)
                outs.append(spk)
            inp = torch.stack(outs, dim=1)
            if record:
                rec.append(inp if record_grad else inp.detach())
        return mem * self.out_scale, (rec if record else None)

    def export(self) -> dict[str, np.ndarray]:
        return {**_export_lif(list(self.layers)), "out_scale": self.out_scale.detach().numpy().astype(np.float32),
                "ln_g": self.norm.weight.detach().numpy().astype(np.float32),
                "ln_b": self.norm.bias.detach().numpy().astype(np.float32),
                **export_attention(list(self.layers))}

    def load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        _import_lif(list(self.layers), arrays)
        import_attention(list(self.layers), arrays)
        with torch.no_grad():
            self.out_scale.copy_(torch.from_numpy(np.asarray(arrays["out_scale"], dtype=np.float32)))
            self.norm.weight.copy_(torch.from_numpy(np.asarray(arrays["ln_g"], dtype=np.float32)))
            self.norm.bias.copy_(torch.from_numpy(np.asarray(arrays["ln_b"], dtype=np.float32)))


class ANN(nn.Module):
    """ANN baseline: z-scored input (B, F) (F = C for 2-D, steps·C for 3-D) → 32 → 48 ReLU → 2."""

    def __init__(self, n_in: int, hidden: tuple[int, ...] = (32, 48), outputs: int = 2, dropout: float = 0.2,
                 in_mean: np.ndarray | None = None, in_std: np.ndarray | None = None) -> None:
        super().__init__()
        sizes = [n_in, *hidden, outputs]
        self.fcs = nn.ModuleList(nn.Linear(sizes[i], sizes[i + 1]) for i in range(len(sizes) - 1))
        self.drop = nn.Dropout(dropout)
        self.register_buffer("in_mean", torch.zeros(n_in) if in_mean is None else torch.as_tensor(in_mean, dtype=torch.float32))
        self.register_buffer("in_std", torch.ones(n_in) if in_std is None else torch.as_tensor(in_std, dtype=torch.float32))
        self.sizes = sizes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = (x.reshape(x.shape[0], -1) - self.in_mean) / self.in_std
        for l, fc in enumerate(self.fcs):
            h = fc(h)
            if l < len(self.fcs) - 1:
                h = self.drop(torch.relu(h))
        return h

    def export(self) -> dict[str, np.ndarray]:
        out = {"in_mean": self.in_mean.numpy().astype(np.float32), "in_std": self.in_std.numpy().astype(np.float32)}
        for l, fc in enumerate(self.fcs):
            out[f"W{l}"] = fc.weight.detach().numpy().astype(np.float32)
            out[f"b{l}"] = fc.bias.detach().numpy().astype(np.float32)
        return out

    def load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        with torch.no_grad():
            self.in_mean.copy_(torch.from_numpy(np.asarray(arrays["in_mean"], dtype=np.float32)))
            self.in_std.copy_(torch.from_numpy(np.asarray(arrays["in_std"], dtype=np.float32)))
            for l, fc in enumerate(self.fcs):
                fc.weight.copy_(torch.from_numpy(np.asarray(arrays[f"W{l}"], dtype=np.float32)))
                fc.bias.copy_(torch.from_numpy(np.asarray(arrays[f"b{l}"], dtype=np.float32)))


class LSTMDecoder(nn.Module):
    """LSTM baseline: (T, B, C) 32 ms counts → LayerNorm → 1-layer LSTM (32) → linear 2, state carried."""

    kind = "lstm"

    def __init__(self, channels: int, hidden: int = 32, outputs: int = 2, zscore: bool = False) -> None:
        super().__init__()
        # input normalisation: LayerNorm over channels (default), or a z-score per channel with the
        # training part's mean and std (arrays in_mean, in_std; as the ANN)
        self.zscore = zscore
        self.norm = None if zscore else nn.LayerNorm(channels)
        self.register_buffer("in_mean", torch.zeros(channels))
        self.register_buffer("in_std", torch.ones(channels))
        self.lstm = nn.LSTM(channels, hidden)
        self.out = nn.Linear(hidden, outputs)
        self.hidden = hidden
        # training-only regularisation (identity in eval mode, so kernels and exports are unchanged)
        self.drop = nn.Dropout(0.0)  # on the normalised input and on h before the readout
        self.input_noise = 0.0  # std of Gaussian noise added to the normalised input

    def init_forget_bias(self, value: float) -> None:
        """Start every cell's forget gate at ``sigmoid(value)`` per 4 ms step (the ``b_ih`` part set to
        ``value``, the ``b_hh`` part to 0): a larger value starts the cells with a longer memory
        (3 → 0.95 per step, a time constant of about 80 ms; torch's default init gives about 0.5)."""
        h = self.hidden
        with torch.no_grad():
            self.lstm.bias_ih_l0[h:2 * h].fill_(float(value))  # gate order i, f, g, o
            self.lstm.bias_hh_l0[h:2 * h].zero_()

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None):
        """``x`` (T, B, C) → ``(y (T, B, 2), (h, c))``."""
        xn = (x - self.in_mean) / self.in_std if self.zscore else self.norm(x)
        if self.training and self.input_noise > 0:
            xn = xn + self.input_noise * torch.randn_like(xn)
        h, state = self.lstm(self.drop(xn), state)
        return self.out(self.drop(h)), state

    def export(self) -> dict[str, np.ndarray]:
        f = lambda t: t.detach().numpy().astype(np.float32)  # noqa: E731
        norm = ({"in_mean": f(self.in_mean), "in_std": f(self.in_std)} if self.zscore
                else {"ln_g": f(self.norm.weight), "ln_b": f(self.norm.bias)})
        return {**norm,
                "w_ih": f(self.lstm.weight_ih_l0), "w_hh": f(self.lstm.weight_hh_l0),
                "b_ih": f(self.lstm.bias_ih_l0), "b_hh": f(self.lstm.bias_hh_l0),
                "w_out": f(self.out.weight), "b_out": f(self.out.bias)}

    def load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        norm = ({"in_mean": self.in_mean, "in_std": self.in_std} if self.zscore
                else {"ln_g": self.norm.weight, "ln_b": self.norm.bias})
        pairs = {**norm, "w_ih": self.lstm.weight_ih_l0,
                 "w_hh": self.lstm.weight_hh_l0, "b_ih": self.lstm.bias_ih_l0, "b_hh": self.lstm.bias_hh_l0,
                 "w_out": self.out.weight, "b_out": self.out.bias}
        with torch.no_grad():
            for name, p in pairs.items():
                p.copy_(torch.from_numpy(np.asarray(arrays[name], dtype=np.float32)))


def build(kind: str, meta: dict[str, Any]) -> nn.Module:
    """An untrained torch model of ``kind`` shaped by ``meta`` (channels, architecture, features,
    and ``attention`` for the SNNs: see :func:`nodes.decoders.attention_torch.attach_attention`)."""
    channels = int(meta["channels"])
    arch = meta["architecture"]
    outputs = int(meta.get("outputs", 2))
    if kind == "snn_streaming":
        return attach_attention(SNNStreaming(channels, tuple(arch["layers"][:-1]), outputs,
                                             tuple(arch["beta"]), tuple(arch["threshold"]),
                                             per_neuron=bool(arch.get("per_neuron", False)),
                                             tau_ms=tuple(arch.get("tau_init_ms", (8.0, 400.0)))), meta)
    if kind == "snn_3d":
        return attach_attention(SNN3D(channels, tuple(arch["layers"][:-1]), outputs, tuple(arch["beta"]),
                                      tuple(arch["threshold"]), learn=bool(arch.get("learn_beta", False))), meta)
    if kind in ("ann", "ann_3d"):
        steps = int(meta["features"].get("steps", 1)) if kind == "ann_3d" else 1
        return ANN(channels * steps, tuple(arch["layers"][:-1]), outputs)
    if kind == "lstm":
        return LSTMDecoder(channels, int(arch["hidden"]), outputs, zscore=str(arch.get("norm", "")).startswith("z-score"))
    raise ValueError(f"unknown decoder kind {kind!r}")


def from_arrays(arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> nn.Module:
    """The torch model of a model file (eval mode), for checking the numpy kernel against it."""
    model = build(meta["kind"], meta)
    model.load_arrays(arrays)
    return model.eval()
