"""Advance Spatial Attention (ASA) for streaming inference, in numpy (runtime path: no torch).

The numpy twins of :mod:`nodes.decoders.attention_torch` (read its docs for the method). They
load the arrays that ``CausalASA.export`` / ``ClipASA.export`` write into a model file and give
the same output bit for bit in practice: the attention arithmetic runs in float64 and only the
final gain is rounded to the current's dtype (float32) before the product.

* :class:`CausalASA` — one step at a time, input current shape ``(C,)`` (batch 1) or ``(B, C)``;
  uses only the current step and the ``window − 1`` previous steps of the same sample, held in an
  explicit ring buffer that ``state()`` / ``restore()`` save and resume. Usable directly as a
  decoder kernel's per-layer input-current transform (``kernel.transforms[l] = asa``).
* :class:`ClipASA` — a whole window ``(N, T, C)`` at once, each sample on its own (SNN_3D).

Both keep the last gains and masks (``last_gain``, ``last_mask``) for inspection and plots.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import expit

F64 = np.float64


def top_k_count(channels: int, ratio: float, what: str = "channels") -> int:
    """``int(ratio · channels)``, checked to split ``channels`` into two non-empty parts."""
    if not (0.0 < ratio < 1.0):
        raise ValueError(f"asa_ratio must be in (0, 1), got {ratio!r}")
    k = int(channels * ratio)
    if not (1 <= k <= channels - 1):
        raise ValueError(
            f"asa_ratio {ratio} splits {channels} {what} into {k} important and {channels - k} others; "
            "both parts must be non-empty"
        )
    return k


def _array(arrays: dict[str, np.ndarray], name: str) -> np.ndarray:
    if name not in arrays:
        raise ValueError(f"ASA: model arrays have no {name!r} (was the model trained with attention: asa?)")
    return np.asarray(arrays[name], dtype=F64)


def conv_matrix(weight: np.ndarray, channels: int, scale: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
    """A ``Conv1d(2 → 1, k, padding k//2, no bias)`` over channels as a matrix.

    Args:
        weight: conv weight, shape ``(1, 2, k)`` (torch layout), k odd.
        channels: C.
        scale: factors folded into the two input maps (mean map ÷ λ, max map × 1).

    Returns:
        ``M`` of shape ``(2·C, C)`` with ``maps.reshape(-1) @ M == conv(maps)`` for maps ``(2, C)``.
    """
    w = np.asarray(weight, dtype=F64)
    if w.ndim != 3 or w.shape[:2] != (1, 2) or w.shape[2] % 2 == 0:
        raise ValueError(f"ASA conv weight must have shape (1, 2, odd k), got {w.shape}")
    k = w.shape[2]
    p = k // 2
    m = np.zeros((2 * channels, channels), dtype=F64)
    for i in range(2):
        for j in range(k):
            # out[c] += w[i, j] * in[i, c + j - p]
            for c in range(channels):
                src = c + j - p
                if 0 <= src < channels:
                    m[i * channels + src, c] += w[0, i, j] * scale[i]
    return m


class CausalASA:
    """Causal, per-sample ASA for one streaming layer (numpy twin of the torch ``CausalASA``).

    Args:
        arrays: ``{prefix}fc1`` ``(h, window)``, optional ``{prefix}fc2`` ``(1, h)``,
            ``{prefix}conv_im`` and ``{prefix}conv_rest`` ``(1, 2, k)``, optional ``{prefix}bias``
            ``(2,)`` (offsets of the important / rest pre-activations; 0 if absent) (from
            ``CausalASA.export``).
        channels: C, neurons of the layer.
        ratio: λ (the model file's ``asa_ratio``).
        batch: independent streams processed together (1 for a live decoder).
        prefix: name prefix of the arrays.

    Call ``asa(cur)`` with ``cur`` shape ``(C,)`` (batch 1) or ``(batch, C)``, float32 synaptic
    current of this step; returns the rescaled current, same shape and dtype.
    """

    def __init__(self, arrays: dict[str, np.ndarray], channels: int, ratio: float, batch: int = 1,
                 prefix: str = "") -> None:
        self.channels, self.ratio, self.batch = int(channels), float(ratio), int(batch)
        self.k = top_k_count(self.channels, self.ratio)
        fc1 = _array(arrays, f"{prefix}fc1")
        self.fc2 = _array(arrays, f"{prefix}fc2") if f"{prefix}fc2" in arrays else None
        if fc1.ndim != 2 or (self.fc2 is None and fc1.shape[0] != 1):
            raise ValueError(f"ASA: {prefix}fc1 has shape {fc1.shape}; expected (1, window) or (h, window) with fc2")
        self.window = K = fc1.shape[1]
        # Ring buffer of the last K currents; slot `pos` is written next. Weights rotated per
        # position so that a ring slot gets the weight of its place in the time-ordered window.
        rot = [np.array([(j - pos - 1) % K for j in range(K)]) for pos in range(K)]
        # Work rows z (5, B, C): [max·m, mean·m, max, mean, −score]; one matmul fills the last two.
        if self.fc2 is None:
            self._w = [np.stack([np.full(K, 1.0 / K), -fc1[0, r]]) for r in rot]
        else:
            self._w = [fc1[:, r] for r in rot]
            self._neg_fc2 = -self.fc2
        C = self.channels
        # conv_rest(maps·(1−m)) is written as conv_rest(maps) − conv_rest(maps·m) (it is linear);
        # the product of z[0:4] (per sample, 4C) with `big` gives [important | rest] pre-activations.
        m_im = conv_matrix(_array(arrays, f"{prefix}conv_im"), C, (1.0 / self.ratio, 1.0))
        m_rest = conv_matrix(_array(arrays, f"{prefix}conv_rest"), C, (1.0 / (1.0 - self.ratio), 1.0))
        swap = np.r_[C:2 * C, 0:C]  # conv_matrix rows are [mean, max]; z rows are [max, mean]
        big = np.zeros((4 * C, 2 * C), dtype=F64)
        big[:2 * C, :C] = m_im[swap]
        big[:2 * C, C:] = -m_rest[swap]
        big[2 * C:, C:] = m_rest[swap]
        self._big = big
        # optional learned offsets of the two pre-activations ({prefix}bias = [important, rest])
        bias = _array(arrays, f"{prefix}bias") if f"{prefix}bias" in arrays else np.zeros(2, dtype=F64)
        if bias.shape != (2,):
            raise ValueError(f"ASA: {prefix}bias has shape {bias.shape}, expected (2,)")
        self.bias = bias
        self._bias_row = np.r_[np.full(C, bias[0]), np.full(C, bias[1])] if np.any(bias) else None
        self._z = np.zeros((5, self.batch, C), dtype=F64)
        self._gain = np.zeros((self.batch, C), dtype=np.float32)
        self.last_gain: np.ndarray | None = None
        self.last_mask: np.ndarray | None = None
        self.reset()

    def reset(self) -> None:
        """Empty history (zeros: no current before the stream began)."""
        self._ring = np.zeros((self.window, self.batch, self.channels), dtype=F64)
        self._pos = 0

    def state(self) -> dict[str, np.ndarray]:
        """``{"hist": (batch, window − 1, C)}``, the past currents, oldest first (float64)."""
        K = self.window
        idx = [(self._pos + 1 + i) % K for i in range(K - 1)]
        return {"hist": self._ring[idx].transpose(1, 0, 2).copy()}

    def restore(self, state: dict[str, Any]) -> None:
        hist = np.asarray(state["hist"], dtype=F64)
        want = (self.batch, self.window - 1, self.channels)
        if hist.shape != want:
            raise ValueError(f"ASA state 'hist' has shape {hist.shape}, expected {want}")
        self._ring = np.zeros((self.window, self.batch, self.channels), dtype=F64)
        self._ring[1:] = hist.transpose(1, 0, 2)
        self._pos = 0

    def __call__(self, cur: np.ndarray) -> np.ndarray:
        x = np.asarray(cur)
        one = x.ndim == 1
        x2 = x.reshape(1, -1) if one else x
        if x2.shape != (self.batch, self.channels):
            raise ValueError(f"ASA: current of shape {x.shape}, expected ({self.batch}, {self.channels})"
                             + (f" or ({self.channels},)" if self.batch == 1 else ""))
        K, B, C, k = self.window, self.batch, self.channels, self.k
        ring, z = self._ring, self._z
        ring[self._pos] = x2
        w = self._w[self._pos]
        self._pos = (self._pos + 1) % K
        if self.fc2 is None:
            np.dot(w, ring.reshape(K, B * C), out=z[3:5].reshape(2, B * C))  # mean, −score
        else:
            z[4] = (self._neg_fc2 @ np.maximum(w @ ring.reshape(K, B * C), 0.0)).reshape(B, C)
            z[3] = ring.mean(axis=0)
        np.maximum.reduce(ring, axis=0, out=z[2])
        neg = z[4]
        # the k largest scores of each sample: threshold at the k-th, exact ties → lower index
        m = neg <= np.partition(neg, k - 1, axis=1)[:, k - 1:k]
        if np.count_nonzero(m) != B * k:
            for b in np.flatnonzero(m.sum(axis=1) != k):
                m[b] = False
                m[b, np.argsort(neg[b], kind="stable")[:k]] = True
        np.multiply(z[2:4], m, out=z[0:2])
        zin = z[0:4].reshape(1, 4 * C) if B == 1 else z[0:4].transpose(1, 0, 2).reshape(B, 4 * C)
        pre = zin @ self._big
        if self._bias_row is not None:
            pre += self._bias_row
        g = expit(pre)  # (B, 2C): important | rest
        gain = self._gain
        np.copyto(gain, g[:, C:], casting="same_kind")
        np.copyto(gain, g[:, :C], casting="same_kind", where=m)
        gain = gain.astype(x.dtype, copy=False)
        self.last_gain, self.last_mask = gain, m
        y = x2 * gain
        return y[0] if one else y


class ClipASA:
    """ASA over a whole window ``(N, T, C)``, each sample on its own (numpy twin of the torch
    ``ClipASA`` with ``spatial=0``). Stateless: every window is attended on its own.

    Args:
        arrays: ``{prefix}fc1`` ``(T, T)`` or ``(h, T)`` with ``{prefix}fc2`` ``(T, h)``,
            ``{prefix}conv_im`` / ``{prefix}conv_rest`` ``(1, 2, k)``.
        steps: T.
        channels: C.
        ratio: λ.
        prefix: name prefix of the arrays.
    """

    def __init__(self, arrays: dict[str, np.ndarray], steps: int, channels: int, ratio: float,
                 prefix: str = "") -> None:
        self.steps, self.channels, self.ratio = int(steps), int(channels), float(ratio)
        self.kc = top_k_count(self.channels, self.ratio)
        self.kt = top_k_count(self.steps, self.ratio, "time steps") if self.steps > 1 else 0
        self.fc1 = _array(arrays, f"{prefix}fc1")
        self.fc2 = _array(arrays, f"{prefix}fc2") if f"{prefix}fc2" in arrays else None
        if self.fc1.shape[1] != self.steps:
            raise ValueError(f"ASA: {prefix}fc1 has shape {self.fc1.shape}, expected (.., {self.steps})")
        C = self.channels
        self._m_im = conv_matrix(_array(arrays, f"{prefix}conv_im"), C, (1.0 / self.ratio, 1.0))
        self._m_rest = conv_matrix(_array(arrays, f"{prefix}conv_rest"), C, (1.0 / (1.0 - self.ratio), 1.0))
        self.last_gain: np.ndarray | None = None
        self.last_mask: np.ndarray | None = None

    def mask(self, x64: np.ndarray) -> np.ndarray:
        """Important-part mask ``(N, T, C)`` (bool), per sample."""
        z = x64.transpose(0, 2, 1)  # (N, C, T)
        h = z @ self.fc1.T
        if self.fc2 is not None:
            h = np.maximum(h, 0.0) @ self.fc2.T
        neg = -h.transpose(0, 2, 1)  # −score (N, T, C)
        m_c = np.zeros(neg.shape, dtype=bool)
        np.put_along_axis(m_c, np.argsort(neg, axis=2, kind="stable")[:, :, :self.kc], True, axis=2)
        if self.kt == 0:
            return m_c
        m_t = np.zeros(neg.shape, dtype=bool)
        np.put_along_axis(m_t, np.argsort(neg, axis=1, kind="stable")[:, :self.kt, :], True, axis=1)
        return m_c != m_t

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Rescale a window of currents ``x`` (shape ``(N, T, C)``, float32); same shape and dtype."""
        x = np.asarray(x)
        if x.ndim != 3 or x.shape[1:] != (self.steps, self.channels):
            raise ValueError(f"ASA: window of shape {x.shape}, expected (N, {self.steps}, {self.channels})")
        n = x.shape[0]
        x64 = x.astype(F64)
        m = self.mask(x64)
        im = x64 * m
        re = x64 * ~m
        maps_im = np.concatenate([im.mean(axis=1), im.max(axis=1)], axis=1)  # (N, 2C)
        maps_re = np.concatenate([re.mean(axis=1), re.max(axis=1)], axis=1)
        g_im = expit(maps_im @ self._m_im)[:, None, :]  # (N, 1, C)
        g_re = expit(maps_re @ self._m_rest)[:, None, :]
        gain = np.where(m, g_im, g_re).astype(x.dtype)
        self.last_gain, self.last_mask = gain, m
        return x * gain if n else x.copy()


# ------------------------------------------------------------ model files: metadata and kernels

ATTENTION_KINDS = ("none", "asa")
DEFAULT_WINDOW = 4  # causal ASA: current step + 3 past steps (16 ms at 250 Hz)


def attention_metadata(model_kind: str, attention: str | None = "none", ratio: float = 0.5,
                       reduction: int = 1, window: int = DEFAULT_WINDOW, steps: int = 7,
                       layers: list[int] | None = None, hidden: int = 2, bias: bool = False) -> dict[str, Any]:
    """The ``attention`` entry of a decoder model file's metadata.

    Args:
        model_kind: ``snn_streaming`` (causal form) or ``snn_3d`` (clip form over its window).
        attention: ``"none"`` or ``"asa"``.
        ratio: λ (``asa_ratio``), fraction of a layer's channels in the important part.
        reduction: ``asa_reduction`` of the scoring ``fc`` over time.
        window: steps the causal form sees (current + ``window − 1`` past), snn_streaming only.
        steps: time steps of a window (snn_3d: 7 steps of 28 ms).
        layers: layers whose input current is attended (default: the ``hidden`` hidden layers;
            the output layer's membrane is the readout and has no spikes to save).
        bias: causal form: learn an offset of each part's pre-activation (``asa{l}.bias``), so a
            part's gain can go to ~0 for every input (silencing the "rest" neurons).
    """
    attention = attention or "none"
    if attention not in ATTENTION_KINDS:
        raise ValueError(f"attention must be one of {', '.join(ATTENTION_KINDS)}, got {attention!r}")
    if attention == "none":
        return {"kind": "none"}
    if model_kind not in ("snn_streaming", "snn_3d"):
        raise ValueError(f"attention: asa is available for snn_streaming and snn_3d, not {model_kind!r}")
    if not (0.0 < float(ratio) < 1.0):
        raise ValueError(f"asa_ratio must be in (0, 1), got {ratio!r}")
    if int(reduction) < 1:
        raise ValueError(f"asa_reduction must be >= 1, got {reduction!r}")
    if bias and model_kind != "snn_streaming":
        raise ValueError("asa bias (learned offsets before the sigmoid) is available for the causal form (snn_streaming) only")
    meta: dict[str, Any] = {"kind": "asa", "ratio": float(ratio), "reduction": int(reduction), "kernel_size": 3,
                            "layers": list(layers if layers is not None else range(hidden)),
                            "paper": "Yao et al., Inherent Redundancy in SNNs (ICCV 2023), Advance Spatial Attention"}
    if model_kind == "snn_streaming":
        if int(window) < 1:
            raise ValueError(f"asa_window must be >= 1, got {window!r}")
        meta.update(form="causal", window=int(window), bias=bool(bias),
                    note="causal and per sample: current + window-1 past currents of the same stream")
    else:
        meta.update(form="clip", steps=int(steps), note="per-sample clip ASA over each 7-step window")
    return meta


def attention_transforms(arrays: dict[str, np.ndarray], meta: dict[str, Any], sizes: list[int],
                         batch: int = 1) -> list[Any]:
    """Per-layer ASA modules of a model file (None where a layer has none): :class:`CausalASA`
    for ``form: causal``, :class:`ClipASA` for ``form: clip``. ``sizes`` are the layers' units."""
    att = meta.get("attention") or {"kind": "none"}
    out: list[Any] = [None] * len(sizes)
    if att.get("kind", "none") == "none":
        return out
    if att["kind"] != "asa":
        raise ValueError(f"model file: unknown attention kind {att['kind']!r}; known: {', '.join(ATTENTION_KINDS)}")
    for l in att["layers"]:
        if not 0 <= l < len(sizes):
            raise ValueError(f"model file: attention layer {l} out of range (model has {len(sizes)} layers)")
        if att["form"] == "causal":
            out[l] = CausalASA(arrays, sizes[l], att["ratio"], batch=batch, prefix=f"asa{l}.")
        else:
            out[l] = ClipASA(arrays, att["steps"], sizes[l], att["ratio"], prefix=f"asa{l}.")
    return out


def attention_ops_per_step(meta: dict[str, Any], sizes: list[int]) -> int:
    """Multiply-accumulates of the attention itself per output step (score fc, pooling, convs;
    sorting and the sigmoid not counted) — reported next to the synaptic operations."""
    att = meta.get("attention") or {"kind": "none"}
    if att.get("kind", "none") == "none":
        return 0
    total = 0
    k = att.get("kernel_size", 3)
    for l in att["layers"]:
        C = sizes[l]
        T = att["window"] if att["form"] == "causal" else att["steps"]
        fc = T * (T if att["form"] == "clip" else 1)
        per = C * fc + 2 * C * T + 2 * 2 * k * C + C  # score, mean+max, two convs, rescale (the bias adds are not MACs)
        total += per
    return int(total)
