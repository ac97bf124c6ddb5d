"""PyTorch twins of the controller (training, quantisation-aware fine-tuning, benchmarks only).

Imported lazily: the runtime path (graph nodes, numpy kernels) never imports this module.
The layer layout and the export match :mod:`nodes.control.kernels` exactly.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from nodes.control.kernels import CONV_LAYERS, HIDDEN, N_STATE, RANGE_CLIP_M, level_bounds, n_features


class LearnedStepQuantiser(nn.Module):
    """Q(x) = s * clamp(floor(x/s + 1/2), n_min, n_max) with a learned step s.

    Gradients: straight-through for the rounding (d floor / dz := 1), zero outside the clamp;
    the step's gradient is scaled by 1/sqrt(numel * n_max) (learned step size quantisation).
    """

    def __init__(self, levels: int, signed: bool, step: float = 0.1) -> None:
        super().__init__()
        self.n_min, self.n_max = level_bounds(levels, signed)
        self.step = nn.Parameter(torch.tensor(float(step)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = 1.0 / float(np.sqrt(x[0].numel() * self.n_max))
        s = self.step * g + (self.step - self.step * g).detach()
        z = x / s
        z = z + (torch.floor(z + 0.5) - z).detach()
        return torch.clamp(z, self.n_min, self.n_max) * s


class CRNN(nn.Module):
    """Conv1D stack -> RNN of 32 -> steering; ``levels`` set = quantised (QCRNN).

    forward(scans (B, N, 541) metres, state (B, N, 2), h0 (B, 32) or None) -> (steering (B, N), h (B, 32)).
    """

    def __init__(self, levels: int | None = None, conv_layers=CONV_LAYERS, hidden: int = HIDDEN,
                 dropout: float = 0.0) -> None:
        super().__init__()
        # dropout (training only): on the conv features entering the RNN and on the hidden state read
        # out into the steering (never on the recurrent path itself, so h carries over unchanged)
        self.drop = nn.Dropout(dropout)
        convs, c_in = [], 1
        self.conv_layers, self.hidden = tuple(tuple(c) for c in conv_layers), hidden
        for _, c_out, k, s, _ in self.conv_layers:
            convs.append(nn.Conv1d(c_in, c_out, k, stride=s))
            c_in = c_out
        self.convs = nn.ModuleList(convs)
        self.wx = nn.Linear(n_features(self.conv_layers) + N_STATE, hidden)
        self.wh = nn.Linear(hidden, hidden, bias=False)
        self.out = nn.Linear(hidden, 1)
        self.levels = levels
        self.quant_names = tuple(name for name, *_ in self.conv_layers) + ("rnn",)
        self.quant = nn.ModuleDict()
        if levels is not None:
            signed = {name: g for name, _, _, _, g in self.conv_layers} | {"rnn": True}
            for name in self.quant_names:
                self.quant[name] = LearnedStepQuantiser(levels, signed=signed[name])

    def features(self, scans: torch.Tensor) -> torch.Tensor:
        """scans (M, 541) metres -> (M, F) features, flattened position-major as in the numpy kernel."""
        x = torch.clamp(scans, max=RANGE_CLIP_M).unsqueeze(1) / RANGE_CLIP_M
        for (name, _, _, _, signed), conv in zip(self.conv_layers, self.convs):
            x = conv(x)
            if self.levels is not None:
                x = self.quant[name](x)
            elif not signed:
                x = torch.relu(x)
        return x.transpose(1, 2).reshape(x.shape[0], -1)

    def forward(self, scans: torch.Tensor, state: torch.Tensor, h: torch.Tensor | None = None):
        b, n = scans.shape[:2]
        f = self.features(scans.reshape(b * n, -1)).reshape(b, n, -1)
        xin = self.wx(torch.cat([self.drop(f), torch.clamp(state, -1, 1)], dim=-1))
        h = torch.zeros(b, self.hidden, dtype=scans.dtype) if h is None else h
        outs = []
        for t in range(n):
            z = xin[:, t] + self.wh(h)
            h = self.quant["rnn"](z) if self.levels is not None else torch.tanh(z)
            outs.append(self.out(self.drop(h)))
        return torch.cat(outs, dim=1), h

    @torch.no_grad()
    def init_steps(self, scans: torch.Tensor, state: torch.Tensor) -> None:
        """Set each quantiser's step from the float activations on a batch (99.9th percentile / (L-1))."""
        assert self.levels is not None
        levels = self.levels
        self.levels = None
        b, n = scans.shape[:2]
        x = torch.clamp(scans.reshape(b * n, -1), max=RANGE_CLIP_M).unsqueeze(1) / RANGE_CLIP_M
        for (name, _, _, _, signed), conv in zip(self.conv_layers, self.convs):
            x = conv(x)
            top = torch.quantile(x.abs().flatten()[:200000], 0.999).item()
            self.quant[name].step.fill_(max(top, 1e-3) / (levels - 1))
            if not signed:
                x = torch.relu(x)
        self.quant["rnn"].step.fill_(1.0 / (levels - 1))
        self.levels = levels

    def export(self) -> dict[str, np.ndarray]:
        """Arrays for :class:`nodes.control.kernels.CrnnParams` (float32 weights, float64 steps)."""
        arrays: dict[str, np.ndarray] = {}
        for (name, *_), conv in zip(self.conv_layers, self.convs):
            arrays[f"{name}_w"] = conv.weight.detach().numpy().astype(np.float32)
            arrays[f"{name}_b"] = conv.bias.detach().numpy().astype(np.float32)
        arrays["rnn_wx"] = self.wx.weight.detach().numpy().astype(np.float32)
        arrays["rnn_b"] = self.wx.bias.detach().numpy().astype(np.float32)
        arrays["rnn_wh"] = self.wh.weight.detach().numpy().astype(np.float32)
        arrays["out_w"] = self.out.weight.detach().numpy().astype(np.float32)
        arrays["out_b"] = self.out.bias.detach().numpy().astype(np.float32)
        if self.levels is not None:
            for name in self.quant_names:
                arrays[f"{name}_step"] = np.float64(self.quant[name].step.detach().item())
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], levels: int | None = None, conv_layers=CONV_LAYERS,
                    dropout: float = 0.0) -> "CRNN":
        """Build from exported arrays; quantiser steps are loaded when present and ``levels`` is set."""
        model = cls(levels, conv_layers, int(np.asarray(arrays["rnn_wh"]).shape[0]), dropout)
        with torch.no_grad():
            for (name, *_), conv in zip(model.conv_layers, model.convs):
                conv.weight.copy_(torch.from_numpy(np.asarray(arrays[f"{name}_w"], dtype=np.float32)))
                conv.bias.copy_(torch.from_numpy(np.asarray(arrays[f"{name}_b"], dtype=np.float32)))
            model.wx.weight.copy_(torch.from_numpy(np.asarray(arrays["rnn_wx"], dtype=np.float32)))
            model.wx.bias.copy_(torch.from_numpy(np.asarray(arrays["rnn_b"], dtype=np.float32)))
            model.wh.weight.copy_(torch.from_numpy(np.asarray(arrays["rnn_wh"], dtype=np.float32)))
            model.out.weight.copy_(torch.from_numpy(np.asarray(arrays["out_w"], dtype=np.float32)))
            model.out.bias.copy_(torch.from_numpy(np.asarray(arrays["out_b"], dtype=np.float32)))
            if levels is not None and "rnn_step" in arrays:
                for name in model.quant_names:
                    model.quant[name].step.fill_(float(arrays[f"{name}_step"]))
        return model


class TorchBif:
    """The spiking (BIF) controller stepped in PyTorch, for the decision-time benchmark only.

    Same algorithm and weights as :class:`nodes.control.kernels.BifKernel` (batch 1, float64,
    torch.nn.functional.conv1d); ``step(scan (1, 541), state (1, 2)) -> steering (1,)``.
    """

    def __init__(self, params, timesteps: int) -> None:
        import torch.nn.functional as F

        a = params.arrays
        self.F, self.T = F, timesteps
        t = lambda k: torch.from_numpy(np.asarray(a[k], dtype=np.float64))  # noqa: E731
        self.convs = [(t(f"{n}_w"), t(f"{n}_b"), s) for n, _, _, s, _ in params.conv_layers]
        self.q = [(params.step_of(n), *params.bounds(n)) for n in params.quant_layers]
        self.wx, self.wh, self.b = t("rnn_wx"), t("rnn_wh"), t("rnn_b")
        self.wo, self.bo = t("out_w"), t("out_b")
        self.hidden = self.wh.shape[0]
        self.fill = params.fill
        self.reflex = params.reflex  # (weights (54,), bias, step) or None
        self.levels = params.levels
        self.h = torch.zeros(1, self.hidden, dtype=torch.float64)

    @staticmethod
    def _fire(v, s, theta, n_min, n_max):
        spikes = ((v >= theta) & (s < n_max)).double() - ((v < 0) & (s > n_min)).double()
        v -= spikes * theta
        s += spikes
        return spikes

    @torch.no_grad()
    def step(self, scan: np.ndarray, state: np.ndarray) -> np.ndarray:
        F = self.F
        from nodes.control.kernels import fill_invalid

        r = fill_invalid(scan) if self.fill else np.asarray(scan, dtype=np.float64)
        x = torch.clamp(torch.from_numpy(r), max=RANGE_CLIP_M).unsqueeze(1) / RANGE_CLIP_M
        n_in, vs, ss = x.shape[-1], [], []
        for (w, _, stride), (theta, *_rest) in zip(self.convs, self.q):
            n_in = (n_in - w.shape[-1]) // stride + 1
            vs.append(torch.full((1, w.shape[0], n_in), theta / 2, dtype=torch.float64))
            ss.append(torch.zeros((1, w.shape[0], n_in), dtype=torch.float64))
        theta_h, hmin, hmax = self.q[-1]
        vh = torch.full((1, self.hidden), theta_h / 2, dtype=torch.float64)
        sh = torch.zeros((1, self.hidden), dtype=torch.float64)
        st = torch.clamp(torch.from_numpy(np.asarray(state, dtype=np.float64)), -1, 1)
        acc = self.bo.clone().unsqueeze(0)
        for t in range(self.T):
            inp = x
            for i, ((w, b, stride), q) in enumerate(zip(self.convs, self.q)):
                if i == 0:
                    cur = F.conv1d(x, w, b, stride=stride) if t == 0 else None
                else:
                    cur = F.conv1d(inp * self.q[i - 1][0], w, b if t == 0 else None, stride=stride)
                if cur is not None:
                    vs[i] += cur
                inp = self._fire(vs[i], ss[i], *q)
            feats = inp.transpose(1, 2).reshape(1, -1)  # position-major, as the numpy kernel
            cur = (feats * self.q[-2][0]) @ self.wx[:, :-2].T
            if t == 0:
                cur = cur + st @ self.wx[:, -2:].T + self.h @ self.wh.T + self.b
            vh += cur
            hs = self._fire(vh, sh, theta_h, hmin, hmax)
            acc += (hs * theta_h) @ self.wo.T
        if self.reflex is not None:  # the near-obstacle reflex: one BIF population on the analog scan
            from nodes.control.kernels import reflex_input

            rw, rbias, rstep = self.reflex
            xi = torch.clamp(torch.from_numpy(r), max=RANGE_CLIP_M).reshape(1, -1) / RANGE_CLIP_M
            cur = torch.from_numpy(reflex_input(xi.numpy(), rbias, len(rw)))
            vr = torch.full_like(cur, rstep / 2)
            sr = torch.zeros_like(cur)
            w = torch.from_numpy(rw)
            for t in range(self.T):
                if t == 0:
                    vr += cur
                rs = self._fire(vr, sr, rstep, 0, self.levels - 1)
                acc += ((rs * rstep) @ w).reshape(1, 1)
        self.h = theta_h * sh
        return acc[:, 0].numpy()
