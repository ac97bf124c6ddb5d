"""Advance Spatial Attention (ASA, Yao et al., ICCV 2023) for training, in PyTorch.

Training side only (imported lazily by trainers); the runtime twin is
:mod:`nodes.decoders.attention` (numpy, no torch). Both implement the same arithmetic, so a
model trained here runs spike-for-spike identically there.

What ASA does
-------------
ASA rescales a spiking layer's input current ``I`` (``W·x + b``) *before* the membrane update,
``I' = gain ⊙ I`` with ``gain ∈ (0, 1)``. Positions are split by a ratio ``λ`` (``ratio``) into an
"important" part (top-λ by a pooled score) and "the rest"; each part gets its own spatial
attention sub-module: mean and max maps of its masked current → small conv → sigmoid. Scaling the
"rest" down is what removes redundant (noise) spikes.

Two forms
---------
:class:`CausalASA` (streaming, ``SNN_Streaming``): one step at a time, input ``(B, C)``. It sees
only the current step and the ``window − 1`` previous steps of *the same sample* (an explicit
history buffer, returned as state). Per step and per sample:

* score ``s[c] = fc(window[:, c])`` — a small MLP over the window's time axis (the paper's
  ``fc`` over T, restricted to past steps); ``reduction = 1`` is one linear ``window → 1``
  (initialised to the window mean), ``r > 1`` is ``window → window//r → 1`` with ReLU;
* mask ``m[c] = 1`` for the ``k = int(λ·C)`` largest scores of *this sample* (ties → lower channel
  index), else 0. As in the paper's code, the score only selects; it gets no gradient;
* maps over the window: ``mean_im = mean_t(m·I)/λ``, ``max_im = max_t(m·I)`` and the same with
  ``1 − m`` (and ``1 − λ``) for the rest — shape ``(B, 2, C)`` each;
* ``g_im = σ(conv_im(maps_im))``, ``g_rest = σ(conv_rest(maps_rest))``: ``Conv1d(2 → 1)`` over the
  channel axis (the layer's neurons play the part of the paper's H×W positions), kernel
  ``kernel_size``, zero padding, no bias;
* ``I' = I ⊙ (m·g_im + (1 − m)·g_rest)``.
* optional (``bias=True``, metadata ``bias: true``, arrays ``asa{l}.bias``): a learned offset per
  part added before each sigmoid, starting at 0. Without it the conv has no bias (as in the
  paper), so a neuron whose window current is near 0 always gets a gain near 0.5 and the rate
  penalty cannot drive a whole part's gains to 0; with it, ``σ(conv + b_rest)`` can go to ~0 and
  silence the "rest" neurons (the rank keeps at most ``k`` neurons per step near full gain).

Training uses :meth:`CausalASA.forward_seq` (a whole sequence of one layer's currents at once: the
stack is feed-forward, so a layer's currents are known for the whole window before its membranes
run); :meth:`CausalASA.forward` is the same arithmetic one step at a time.

Only the paper's per-(t, c) channel split is kept (the time split of the clip form needs future
steps). The window starts as zeros (no current before the stream began).

:class:`ClipASA` (clip level, ``SNN_3D`` windows; or C×H×W frames): the paper's module for a
whole clip ``(N, T, C)`` or ``(N, T, C, H, W)`` with two fixes —

* batch size 1 works (explicit reshapes, no ``squeeze`` that also drops the batch axis);
* no statistic crosses samples: every top-k is taken per sample (the public code writes each
  sample's top-k indices into *every* sample's mask).

For ``(N, T, C, H, W)`` it follows the paper: average and max pooling over H×W, ``map = ½(avg +
max) + α·avg + β·max``, ``fc`` over T, top-k channels per (n, t) and top-k steps per (n, c),
important = selected by exactly one of the two (the combination rule of the authors' code),
maps = mean over (t, c) / λ and max over (t, c) of each part, ``Conv2d(2 → 1, 3×3)`` + sigmoid
per part, output = sum of the two rescaled parts. For ``(N, T, C)`` (a fully connected layer, no
H×W) the channel axis takes the place of H×W for the attention maps: maps are pooled over T per
channel, conv is ``Conv1d`` over channels, as in :class:`CausalASA`; the score is ``fc`` over T
of the current itself (avg = max there, so α, β would only rescale it and are left out).

Numerics (why the twins agree bit for bit)
------------------------------------------
The attention arithmetic runs in float64 and only the final gain is rounded to the current's
dtype (float32), then multiplied. The float64 results of torch and numpy differ by ~1e-16, so
the rounded gains are identical except with probability ~1e-9 per value, and the product with a
float32 current is then the same bit for bit: spikes match. Top-k uses a stable descending sort
on both sides, so exact ties resolve to the lower index in both.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nodes.decoders.attention import top_k_count  # one definition for both twins

ATTENTION_KINDS = ("none", "asa")


def _top_mask(score: torch.Tensor, k: int, dim: int) -> torch.Tensor:
    """0/1 mask of the ``k`` largest entries along ``dim``, per position of the other axes
    (so per sample); ties go to the lower index (stable sort)."""
    order = torch.argsort(score, dim=dim, descending=True, stable=True)
    return torch.zeros_like(score).scatter_(dim, order.narrow(dim, 0, k), 1.0)


class _Scorer(nn.Module):
    """``fc`` over a time axis of length ``steps``: ``Linear(steps → out)`` for reduction 1,
    else ``Linear(steps → steps//r) → ReLU → Linear(→ out)``; no biases."""

    def __init__(self, steps: int, out: int, reduction: int, mean_init: bool) -> None:
        super().__init__()
        if reduction < 1:
            raise ValueError(f"asa_reduction must be >= 1, got {reduction!r}")
        self.reduction = int(reduction)
        if reduction == 1:
            self.fc1 = nn.Linear(steps, out, bias=False)
            self.fc2 = None
            if mean_init:
                with torch.no_grad():
                    self.fc1.weight.fill_(1.0 / steps)
        else:
            hidden = max(1, steps // reduction)
            self.fc1 = nn.Linear(steps, hidden, bias=False)
            self.fc2 = nn.Linear(hidden, out, bias=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # z (..., steps) float64
        h = F.linear(z, self.fc1.weight.double())
        if self.fc2 is not None:
            h = F.linear(torch.relu(h), self.fc2.weight.double())
        return h

    def export(self, prefix: str) -> dict[str, np.ndarray]:
        out = {f"{prefix}fc1": self.fc1.weight.detach().double().numpy().copy()}
        if self.fc2 is not None:
            out[f"{prefix}fc2"] = self.fc2.weight.detach().double().numpy().copy()
        return out


class CausalASA(nn.Module):
    """Causal, per-sample ASA for one streaming layer (see the module docs).

    Args:
        channels: neurons of the layer (C).
        ratio: λ, fraction of channels in the "important" part (``int(λ·C)`` of them).
        reduction: reduction of the scoring MLP over the window (1 = one linear layer).
        window: steps of current the module sees (the current step and ``window − 1`` past ones).
        kernel_size: odd kernel of the two ``Conv1d`` over channels.

    ``forward(cur (B, C), hist (B, window−1, C)) -> (cur' (B, C), hist', gain (B, C))``.
    """

    def __init__(self, channels: int, ratio: float = 0.5, reduction: int = 1, window: int = 4,
                 kernel_size: int = 3, bias: bool = False) -> None:
        super().__init__()
        if window < 1:
            raise ValueError(f"asa_window must be >= 1, got {window!r}")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"asa kernel_size must be odd and >= 1, got {kernel_size!r}")
        self.channels, self.ratio, self.window = int(channels), float(ratio), int(window)
        self.kernel_size = int(kernel_size)
        self.k = top_k_count(self.channels, self.ratio)
        self.scorer = _Scorer(self.window, 1, reduction, mean_init=True)
        self.conv_im = nn.Conv1d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)
        self.conv_rest = nn.Conv1d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)
        # optional learned offsets of the two pre-activations [important, rest] (start at 0: gains
        # unchanged); a negative offset lowers a part's gain towards 0 for every input, which is how
        # the attention can silence the "rest" neurons (without it, a zero current always gets 0.5)
        self.gain_bias = nn.Parameter(torch.zeros(2, dtype=torch.float64)) if bias else None

    def config(self) -> dict:
        """Hyper-parameters for a model file's metadata."""
        return {"kind": "asa", "form": "causal", "ratio": self.ratio, "reduction": self.scorer.reduction,
                "window": self.window, "kernel_size": self.kernel_size, "channels": self.channels,
                "bias": self.gain_bias is not None}

    def initial_state(self, batch: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """History buffer of zeros, shape ``(batch, window − 1, channels)``."""
        return torch.zeros(batch, self.window - 1, self.channels, dtype=dtype)

    def forward(self, cur: torch.Tensor, hist: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if cur.dim() != 2 or cur.shape[1] != self.channels:
            raise ValueError(f"CausalASA: expected current of shape (B, {self.channels}), got {tuple(cur.shape)}")
        win = torch.cat([hist.to(cur.dtype), cur.unsqueeze(1)], dim=1)  # (B, K, C), oldest first
        w64 = win.double()
        score = self.scorer(w64.transpose(1, 2)).squeeze(2)  # (B, C)
        with torch.no_grad():
            m = _top_mask(score, self.k, dim=1)
        mean, mx = w64.mean(dim=1), w64.amax(dim=1)  # (B, C)
        rest = 1.0 - m
        maps_im = torch.stack([mean * m / self.ratio, mx * m], dim=1)  # (B, 2, C)
        maps_rest = torch.stack([mean * rest / (1.0 - self.ratio), mx * rest], dim=1)
        pad = self.kernel_size // 2
        z_im = F.conv1d(maps_im, self.conv_im.weight.double(), padding=pad).squeeze(1)
        z_rest = F.conv1d(maps_rest, self.conv_rest.weight.double(), padding=pad).squeeze(1)
        if self.gain_bias is not None:
            z_im, z_rest = z_im + self.gain_bias[0], z_rest + self.gain_bias[1]
        g_im, g_rest = torch.sigmoid(z_im), torch.sigmoid(z_rest)
        gain = (m * g_im + rest * g_rest).to(cur.dtype)
        return cur * gain, win[:, 1:], gain

    def forward_seq(self, cur: torch.Tensor, hist: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """All steps of a sequence at once: ``cur`` (T, B, C) → ``(cur' (T, B, C), hist', gain (T, B, C))``.

        The same arithmetic as :meth:`forward` applied step by step (each step's window is the
        ``window − 1`` currents before it, from ``hist`` at the start), batched over time: the
        attention of a layer depends only on that layer's input currents, which a feed-forward
        stack can compute for a whole sequence before the membranes run (training speed)."""
        T, B, C = cur.shape
        if C != self.channels:
            raise ValueError(f"CausalASA: expected currents of shape (T, B, {self.channels}), got {tuple(cur.shape)}")
        K = self.window
        padded = torch.cat([hist.to(cur.dtype).transpose(0, 1), cur], dim=0)  # (T + K − 1, B, C)
        win = padded.double().unfold(0, K, 1)  # (T, B, C, K), each window oldest first
        score = self.scorer(win).squeeze(3)  # (T, B, C)
        with torch.no_grad():
            m = _top_mask(score, self.k, dim=2)
        mean, mx = win.mean(dim=3), win.amax(dim=3)  # (T, B, C)
        rest = 1.0 - m
        maps_im = torch.stack([mean * m / self.ratio, mx * m], dim=2).reshape(T * B, 2, C)
        maps_rest = torch.stack([mean * rest / (1.0 - self.ratio), mx * rest], dim=2).reshape(T * B, 2, C)
        pad = self.kernel_size // 2
        z_im = F.conv1d(maps_im, self.conv_im.weight.double(), padding=pad).reshape(T, B, C)
        z_rest = F.conv1d(maps_rest, self.conv_rest.weight.double(), padding=pad).reshape(T, B, C)
        if self.gain_bias is not None:
            z_im, z_rest = z_im + self.gain_bias[0], z_rest + self.gain_bias[1]
        gain = (m * torch.sigmoid(z_im) + rest * torch.sigmoid(z_rest)).to(cur.dtype)
        new_hist = padded[T:].transpose(0, 1) if K > 1 else hist
        return cur * gain, new_hist, gain

    def export(self, prefix: str = "") -> dict[str, np.ndarray]:
        """Arrays for :class:`nodes.decoders.attention.CausalASA` (float64), names prefixed
        (``{prefix}bias``, shape ``(2,)`` [important, rest], only with ``bias``)."""
        out = {**self.scorer.export(prefix),
               f"{prefix}conv_im": self.conv_im.weight.detach().double().numpy().copy(),
               f"{prefix}conv_rest": self.conv_rest.weight.detach().double().numpy().copy()}
        if self.gain_bias is not None:
            out[f"{prefix}bias"] = self.gain_bias.detach().double().numpy().copy()
        return out


class ClipASA(nn.Module):
    """ASA over a whole clip, per sample (see the module docs).

    Args:
        steps: T, time steps of the clip.
        channels: C.
        ratio: λ for both top-k selections (``int(λ·C)`` channels per step, ``int(λ·T)`` steps per channel).
        reduction: reduction of ``fc`` over T (1 = one ``Linear(T → T)``).
        spatial: 0 for ``(N, T, C)`` inputs (fully connected layers), 2 for ``(N, T, C, H, W)``.
        kernel_size: odd conv kernel (``Conv1d`` over channels, or ``k×k`` ``Conv2d`` over H×W).

    ``forward(x) -> (y, gain)``, ``y`` and ``gain`` shaped like ``x``.
    """

    def __init__(self, steps: int, channels: int, ratio: float = 0.5, reduction: int = 1,
                 spatial: int = 0, kernel_size: int = 3) -> None:
        super().__init__()
        if spatial not in (0, 2):
            raise ValueError(f"ClipASA: spatial must be 0 (N, T, C) or 2 (N, T, C, H, W), got {spatial!r}")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"asa kernel_size must be odd and >= 1, got {kernel_size!r}")
        self.steps, self.channels, self.ratio = int(steps), int(channels), float(ratio)
        self.spatial, self.kernel_size = spatial, int(kernel_size)
        self.kc = top_k_count(self.channels, self.ratio)
        self.kt = top_k_count(self.steps, self.ratio, "time steps") if self.steps > 1 else 0
        # reduction 1: Linear(T -> T), initialised to identity (score = the current itself)
        self.scorer = _Scorer(self.steps, self.steps, reduction, mean_init=False)
        if reduction == 1:
            with torch.no_grad():
                self.scorer.fc1.weight.copy_(torch.eye(self.steps))
        conv = nn.Conv1d if spatial == 0 else nn.Conv2d
        self.conv_im = conv(2, 1, kernel_size, padding=kernel_size // 2, bias=False)
        self.conv_rest = conv(2, 1, kernel_size, padding=kernel_size // 2, bias=False)
        if spatial:
            self.alpha = nn.Parameter(torch.tensor([0.5]))
            self.beta = nn.Parameter(torch.tensor([0.5]))

    def config(self) -> dict:
        return {"kind": "asa", "form": "clip", "ratio": self.ratio, "reduction": self.scorer.reduction,
                "steps": self.steps, "channels": self.channels, "spatial": self.spatial,
                "kernel_size": self.kernel_size}

    def mask(self, x64: torch.Tensor) -> torch.Tensor:
        """Important-part mask ``(N, T, C)`` (0/1, float64) of a clip, per sample."""
        n = x64.shape[0]
        if self.spatial:
            flat = x64.reshape(n, self.steps, self.channels, -1)
            avg, mx = flat.mean(dim=3), flat.amax(dim=3)
            pooled = 0.5 * (avg + mx) + self.alpha.double() * avg + self.beta.double() * mx
        else:
            pooled = x64
        score = self.scorer(pooled.transpose(1, 2)).transpose(1, 2)  # fc over T: (N, T, C)
        with torch.no_grad():
            m_c = _top_mask(score, self.kc, dim=2)  # top channels of each step, per sample
            if self.kt == 0:
                return m_c
            m_t = _top_mask(score, self.kt, dim=1)  # top steps of each channel, per sample
            return (m_c != m_t).to(score.dtype)  # selected by exactly one (authors' rule)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        want = 3 if self.spatial == 0 else 5
        if x.dim() != want or x.shape[1] != self.steps or x.shape[2] != self.channels:
            shape = "(N, T, C)" if want == 3 else "(N, T, C, H, W)"
            raise ValueError(f"ClipASA: expected {shape} with T={self.steps}, C={self.channels}; got {tuple(x.shape)}")
        x64 = x.double()
        m = self.mask(x64)
        n = x.shape[0]
        pad = self.kernel_size // 2
        if self.spatial == 0:
            rest = 1.0 - m
            im, re = x64 * m, x64 * rest  # (N, T, C)
            maps_im = torch.stack([im.mean(dim=1) / self.ratio, im.amax(dim=1)], dim=1)  # (N, 2, C)
            maps_re = torch.stack([re.mean(dim=1) / (1.0 - self.ratio), re.amax(dim=1)], dim=1)
            g_im = torch.sigmoid(F.conv1d(maps_im, self.conv_im.weight.double(), padding=pad))  # (N, 1, C)
            g_re = torch.sigmoid(F.conv1d(maps_re, self.conv_rest.weight.double(), padding=pad))
            gain = m * g_im + rest * g_re
        else:
            h, w = x.shape[3], x.shape[4]
            m5 = m.reshape(n, self.steps, self.channels, 1, 1)
            rest5 = 1.0 - m5
            im = (x64 * m5).reshape(n, self.steps * self.channels, h, w)
            re = (x64 * rest5).reshape(n, self.steps * self.channels, h, w)
            maps_im = torch.cat([im.mean(dim=1, keepdim=True) / self.ratio, im.amax(dim=1, keepdim=True)], dim=1)
            maps_re = torch.cat([re.mean(dim=1, keepdim=True) / (1.0 - self.ratio), re.amax(dim=1, keepdim=True)], dim=1)
            g_im = torch.sigmoid(F.conv2d(maps_im, self.conv_im.weight.double(), padding=pad))  # (N, 1, H, W)
            g_re = torch.sigmoid(F.conv2d(maps_re, self.conv_rest.weight.double(), padding=pad))
            gain = m5 * g_im.unsqueeze(1) + rest5 * g_re.unsqueeze(1)
        gain = gain.to(x.dtype)
        return x * gain, gain

    def export(self, prefix: str = "") -> dict[str, np.ndarray]:
        """Arrays for :class:`nodes.decoders.attention.ClipASA` (float64), names prefixed."""
        out = {**self.scorer.export(prefix),
               f"{prefix}conv_im": self.conv_im.weight.detach().double().numpy().copy(),
               f"{prefix}conv_rest": self.conv_rest.weight.detach().double().numpy().copy()}
        if self.spatial:
            out[f"{prefix}alpha"] = self.alpha.detach().double().numpy().copy()
            out[f"{prefix}beta"] = self.beta.detach().double().numpy().copy()
        return out


def make_attention(form: str, channels: int, ratio: float, reduction: int, window: int = 4,
                   steps: int = 7, kernel_size: int = 3) -> nn.Module:
    """An ASA module for a layer: ``form`` ``"causal"`` (streaming) or ``"clip"`` (windows)."""
    if form == "causal":
        return CausalASA(channels, ratio, reduction, window, kernel_size)
    if form == "clip":
        return ClipASA(steps, channels, ratio, reduction, 0, kernel_size)
    raise ValueError(f"unknown ASA form {form!r}; expected 'causal' or 'clip'")


def attach_attention(model: nn.Module, meta: dict) -> nn.Module:
    """Give ``model.layers[l]`` an ``asa`` module for each layer listed in ``meta["attention"]``
    (see :func:`nodes.decoders.attention.attention_metadata`); no-op for ``kind: none``."""
    att = meta.get("attention") or {"kind": "none"}
    if att.get("kind", "none") == "none":
        return model
    if att["kind"] != "asa":
        raise ValueError(f"unknown attention kind {att['kind']!r}; expected 'none' or 'asa'")
    for l in att["layers"]:
        units = model.layers[l].fc.out_features
        if att["form"] == "causal":
            model.layers[l].asa = CausalASA(units, att["ratio"], att["reduction"], att["window"], att["kernel_size"],
                                            bias=bool(att.get("bias", False)))
        else:
            asa = ClipASA(att["steps"], units, att["ratio"], att["reduction"], 0, att["kernel_size"])
            model.layers[l].asa = asa  # exported/imported as asa{l}.*
            model.layers[l].transform = ClipTransform(asa)  # SNN3D applies layer.transform to (B, steps, units)
    return model


class ClipTransform(nn.Module):
    """``layer.transform`` hook of a window model: the clip ASA's rescaled currents only."""

    def __init__(self, asa: ClipASA) -> None:
        super().__init__()
        self.asa = asa

    def forward(self, cur: torch.Tensor) -> torch.Tensor:
        return self.asa(cur)[0]


def export_attention(layers: list[nn.Module]) -> dict[str, np.ndarray]:
    """Arrays ``asa{l}.*`` of every layer that has an ``asa`` module."""
    out: dict[str, np.ndarray] = {}
    for l, layer in enumerate(layers):
        if getattr(layer, "asa", None) is not None:
            out.update(layer.asa.export(f"asa{l}."))
    return out


def import_attention(layers: list[nn.Module], arrays: dict[str, np.ndarray]) -> None:
    """Load ``asa{l}.*`` arrays into the layers' ``asa`` modules (inverse of :func:`export_attention`)."""
    with torch.no_grad():
        for l, layer in enumerate(layers):
            asa = getattr(layer, "asa", None)
            if asa is None:
                continue
            p = f"asa{l}."
            params = {"fc1": asa.scorer.fc1.weight, "conv_im": asa.conv_im.weight, "conv_rest": asa.conv_rest.weight}
            if asa.scorer.fc2 is not None:
                params["fc2"] = asa.scorer.fc2.weight
            if isinstance(asa, ClipASA) and asa.spatial:
                params.update(alpha=asa.alpha, beta=asa.beta)
            if getattr(asa, "gain_bias", None) is not None:
                params["bias"] = asa.gain_bias
            for name, param in params.items():
                if p + name not in arrays:
                    raise ValueError(f"model arrays have no {p + name!r} for the attention of layer {l}")
                param.copy_(torch.from_numpy(np.asarray(arrays[p + name])).to(param.dtype).reshape(param.shape))
