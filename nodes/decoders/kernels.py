"""Streaming inference kernels in numpy (float32): SNN_Streaming, SNN_3D, ANN (2-D/3-D), LSTM.

No torch here: this is the runtime path. Each kernel turns spike counts (4 ms bins) into velocity,
one output row per input row, keeps its state explicitly (``state()``/``restore()``), and can
count its activity (spikes, zero activations, synaptic operations) for evaluation.

Spike-exactness with the snntorch models (``nodes.decoders.torch_models``)
--------------------------------------------------------------------------
Spiking layers use snntorch's ``Leaky`` update in float32, in the same operation order::

    cur = W·x + b − θ·s[t−1]          (reset by subtraction, written as an input current)
    mem = β·mem + cur                 (two roundings: the product, then the sum)
    s[t] = mem > θ

Weights, biases and thresholds of spiking models are exported on a power-of-two grid
(:data:`GRID_BITS`), so every synaptic sum over binary inputs (0/1 spikes or binarised bins) is
exact in float32 whatever the summation order (BLAS blocking, FMA): numpy and torch then produce
the same ``cur`` bit for bit and the same ``mem`` after the elementwise update, hence identical
spikes. (Without this, a one-ulp difference in a sum can flip a spike at a threshold tie and the
two runs diverge.) SNN_3D's first layer takes LayerNorm outputs, which are not on a grid; there
the two implementations agree to about 1e-7 and a tie is possible in principle (the test checks
thousands of windows).

Per-layer input-current hook
----------------------------
``transforms[l]`` (a callable ``f(cur) -> cur``, or None; float32 of shape ``(units,)`` per step for
SNN_Streaming, ``(n, steps, units)`` per window for SNN_3D, ``(n, units)`` for the ANN) rescales
layer ``l``'s synaptic current ``W·x + b`` before the reset term and the membrane update (e.g. an
attention module). SNN_Streaming runs the compiled loop of :mod:`nodes.decoders.lif_loop` (numba),
which gives the same result bit for bit and skips silent inputs; with causal ASA (``attention:
asa``) it runs the compiled ASA loop (``lif_stack_asa_run``, same spikes as the numpy
``CausalASA`` and the torch model); with any other transform set (or ``compiled_asa = False``) it
runs the plain per-step numpy path.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from nodes.decoders.attention import attention_transforms
from nodes.decoders.features import FeatureSpec, features, next_history
from nodes.decoders.lif_loop import asa_ring, lif_stack_asa_run, lif_stack_decode_binary, lif_stack_run, pack_asa

GRID_BITS = 14
"""Spiking models' weights, biases and thresholds are multiples of 2**-GRID_BITS."""

F32 = np.float32
Transform = Callable[[np.ndarray], np.ndarray]


def to_grid(a: np.ndarray, bits: int = GRID_BITS) -> np.ndarray:
    """Round to the nearest multiple of ``2**-bits`` (float32)."""
    scale = float(2 ** bits)
    return (np.round(np.asarray(a, dtype=np.float64) * scale) / scale).astype(F32)


@dataclass
class Activity:
    """Activity counted over the steps a kernel ran (NeuroBench definitions).

    Attributes:
        steps: output steps (4 ms bins) processed.
        acs: synaptic accumulates (layers whose inputs are all in {-1, 0, 1}; nonzero inputs × fan-out).
        macs: multiply-accumulates (other layers; nonzero inputs × fan-out); biases excluded.
        act_total / act_zero: all / zero activations of hidden and output units (spikes, ReLU, h).
        spikes: spikes emitted (spiking models).
        neurons: spiking neurons per step (for spikes per neuron per step).
    """

    steps: int = 0
    acs: int = 0
    macs: int = 0
    act_total: int = 0
    act_zero: int = 0
    spikes: int = 0
    neurons: int = 0
    per_layer_spikes: list[int] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        steps = max(self.steps, 1)
        return {
            "steps": self.steps,
            "acs_per_step": self.acs / steps,
            "macs_per_step": self.macs / steps,
            "activation_sparsity": self.act_zero / self.act_total if self.act_total else float("nan"),
            "spikes_per_neuron_per_step": (self.spikes / (self.neurons * steps)) if self.neurons else float("nan"),
        }


def _nnz(a: np.ndarray) -> int:
    return int(np.count_nonzero(a))


class Kernel:
    """Base: features from counts (with history), target de-normalisation, state.

    Subclasses implement ``_forward(feats (n, ...), activity) -> (n, outputs)`` in model units.
    """

    kind = ""

    def __init__(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        self.arrays = {k: np.asarray(v) for k, v in arrays.items()}
        self.meta = meta
        self.channels = int(meta["channels"])
        self.outputs = int(meta.get("outputs", 2))
        self.spec = FeatureSpec.from_dict(meta["features"])
        self.target_scale = self._get("target_scale")
        self.target_mean = self._get("target_mean")
        self.transforms: list[Transform | None] = []
        self.record = False
        self.last_record: dict[str, Any] = {}
        self._hist = np.zeros((self.spec.history, self.channels), dtype=F32)

    def _get(self, name: str) -> np.ndarray:
        if name not in self.arrays:
            raise ValueError(f"{self.kind} model file has no array {name!r}")
        return np.ascontiguousarray(self.arrays[name], dtype=F32)

    def run_counts(self, data: np.ndarray, activity: Activity | None = None) -> tuple[np.ndarray, int]:
        """Decode a packet's ``data`` (shape ``(n, C)``, spike counts per 4 ms bin, any real dtype) with
        non-finite counts read as 0: ``(velocity (n, outputs) float32 in mm/s, non-finite counts seen)``."""
        counts = np.asarray(data, dtype=F32)
        bad = 0
        if not np.isfinite(counts).all():
            nonfinite = ~np.isfinite(counts)
            bad = int(nonfinite.sum())
            counts = np.where(nonfinite, np.float32(0), counts)
        return self.run(counts, activity), bad

    def run(self, counts: np.ndarray, activity: Activity | None = None) -> np.ndarray:
        """Decode ``counts`` (shape ``(n, C)``, spike counts per 4 ms bin) into shape ``(n, outputs)``
        velocity in the training target's units (mm/s), float32, carrying state across calls."""
        counts = np.asarray(counts, dtype=F32)
        if counts.ndim != 2 or counts.shape[1] != self.channels:
            raise ValueError(f"{self.kind}: expected counts of shape (n, {self.channels}), got {counts.shape}")
        if counts.shape[0] == 0:
            return np.zeros((0, self.outputs), dtype=F32)
        feats = features(self.spec, counts, self._hist)
        self._hist = next_history(self.spec, counts, self._hist)
        y = self._forward(feats, activity)
        if activity is not None:
            activity.steps += counts.shape[0]
        return y * self.target_scale + self.target_mean

    def _forward(self, feats: np.ndarray, activity: Activity | None) -> np.ndarray:
        raise NotImplementedError

    def warm(self, row: np.ndarray, activity: Activity | None = None) -> None:
        """Bring what decoding ``row`` (shape ``(1, C)``) touches into the caches without changing the
        state (see :meth:`pipeline.node.Node.warm`). Default: nothing."""

    def reset(self) -> None:
        self._hist = np.zeros_like(self._hist)
        for t in self.transforms:  # stateful transforms (causal ASA) start empty too
            if t is not None and hasattr(t, "reset"):
                t.reset()

    def state(self) -> dict[str, np.ndarray]:
        out = {"hist": self._hist.copy()}
        for l, t in enumerate(self.transforms):  # e.g. the causal ASA's window of past currents
            if t is not None and hasattr(t, "state"):
                out.update({f"transform{l}.{k}": v for k, v in t.state().items()})
        return out

    def restore(self, state: dict[str, np.ndarray]) -> None:
        self._hist = np.array(state["hist"], dtype=F32)
        for l, t in enumerate(self.transforms):
            if t is not None and hasattr(t, "restore"):
                p = f"transform{l}."
                t.restore({k[len(p):]: v for k, v in state.items() if k.startswith(p)})

    def footprint_bytes(self) -> int:
        """Bytes of parameters and buffers (all model arrays, float32) — NeuroBench footprint."""
        return int(sum(np.asarray(a).nbytes for a in self.arrays.values()))


def _lif_params(arrays: dict[str, np.ndarray], n_layers: int) -> tuple[list, list, list, list]:
    W = [np.ascontiguousarray(arrays[f"W{l}"], dtype=F32) for l in range(n_layers)]
    b = [np.ascontiguousarray(arrays[f"b{l}"], dtype=F32) for l in range(n_layers)]
    beta = [np.ascontiguousarray(np.broadcast_to(arrays[f"beta{l}"], b[l].shape), dtype=F32) for l in range(n_layers)]
    thr = [np.ascontiguousarray(np.broadcast_to(arrays[f"thr{l}"], b[l].shape), dtype=F32) for l in range(n_layers)]
    return W, b, beta, thr


class SNNStreamingKernel(Kernel):
    """SNN_Streaming: binarised bin → LIF layers (C → 32 → 48 → 2), state carried; output
    ``out_scale · mem`` of the last layer. State: membranes and last spikes, shape ``(82,)`` each."""

    kind = "snn_streaming"

    def __init__(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        super().__init__(arrays, meta)
        n_layers = len(meta["architecture"]["layers"])
        self.W, self.b, self.beta_l, self.thr_l = _lif_params(self.arrays, n_layers)
        self.sizes = [w.shape[0] for w in self.W]
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)]).astype(np.int64)
        n = int(self.offsets[-1])
        self.n_neurons = n
        self.out_scale = self._get("out_scale")
        self.beta = np.concatenate(self.beta_l)
        self.thr = np.concatenate(self.thr_l)
        # Inputs of every neuron, transposed for the compiled loop: (C + N, N).
        c = self.channels
        w_in_t = np.zeros((c + n, n), dtype=F32)
        o = self.offsets
        w_in_t[:c, o[0]:o[1]] = self.W[0].T
        for l in range(1, n_layers):
            w_in_t[c + o[l - 1]:c + o[l], o[l]:o[l + 1]] = self.W[l].T
        self.w_in_t = w_in_t
        self.bias = np.concatenate(self.b)
        self.transforms = attention_transforms(self.arrays, meta, self.sizes)  # attention: asa → causal ASA
        self._asa = self._pack_asa()
        outputs = self.sizes[-1]
        self._readout = tuple(np.ascontiguousarray(np.broadcast_to(a, (outputs,)), dtype=F32)
                              for a in (self.out_scale, self.target_scale, self.target_mean))
        self.compiled_asa = self._asa is not None  # False: the per-step numpy CausalASA path (keeps last_gain)
        self._warm_state: tuple[np.ndarray, np.ndarray] | None = None  # warm()'s scratch (mem, spk)
        self.reset()
        self._run_compiled(np.zeros((0, c), dtype=F32))  # compile (or load the cache) now, not on the first live step
        for dtype in (F32, np.float64):  # compile (or load the cache) the one-call path for both input dtypes
            lif_stack_decode_binary(np.zeros((0, self.channels), dtype=dtype), self.w_in_t, self.bias, self.beta,
                                    self.thr, self.offsets, self.mem, self.spk, *self._readout)
        if self._asa is not None:
            self._run_compiled_asa(np.zeros((0, c), dtype=F32))

    def _pack_asa(self) -> dict[str, Any] | None:
        """The causal ASA modules as arrays for :func:`lif_stack_asa_run`, or None (no ASA, or a
        transform the compiled loop does not know)."""
        from nodes.decoders.attention import CausalASA

        if not any(t is not None for t in self.transforms):
            return None
        if not all(t is None or (type(t) is CausalASA and t.batch == 1) for t in self.transforms):
            return None
        mods = {l: t for l, t in enumerate(self.transforms) if t is not None}
        windows = {t.window for t in mods.values()}
        if len(windows) != 1:
            return None
        K = windows.pop()
        L = len(self.sizes)
        has_fc2 = any(t.fc2 is not None for t in mods.values())
        if has_fc2 and not all(t.fc2 is not None for t in mods.values()):
            return None
        H = max(self.arrays[f"asa{l}.fc1"].shape[0] for l in mods)
        ks = {np.asarray(self.arrays[f"asa{l}.conv_im"]).shape[2] for l in mods}
        if len(ks) != 1:
            return None
        k = ks.pop()
        fc1 = np.zeros((L, H, K))
        fc2 = np.zeros((L, H))
        conv_im, conv_rest = np.zeros((L, 2, k)), np.zeros((L, 2, k))
        ratio, top_k = np.full(L, 0.5), np.zeros(L, dtype=np.int64)
        attended = np.zeros(L, dtype=np.bool_)
        offs = np.zeros((L, 2))
        for l, t in mods.items():
            offs[l] = t.bias
            attended[l] = True
            f1 = np.asarray(self.arrays[f"asa{l}.fc1"], dtype=np.float64)
            fc1[l, :f1.shape[0]] = f1
            if has_fc2:
                fc2[l, :f1.shape[0]] = np.asarray(self.arrays[f"asa{l}.fc2"], dtype=np.float64).reshape(-1)
            conv_im[l] = np.asarray(self.arrays[f"asa{l}.conv_im"], dtype=np.float64).reshape(2, k)
            conv_rest[l] = np.asarray(self.arrays[f"asa{l}.conv_rest"], dtype=np.float64).reshape(2, k)
            ratio[l], top_k[l] = t.ratio, t.k
        asa_f, asa_i = pack_asa(L, attended, fc1, fc2, bool(has_fc2), conv_im, conv_rest, ratio, top_k, offs,
                                 neurons=self.n_neurons)
        return {"asa_f": asa_f, "asa_i": asa_i, "window": K, "layers": sorted(mods)}

    def _asa_ring(self) -> np.ndarray:
        """The compiled loop's ring of past currents ``(K, N)``, a view into its packed array
        (taken afresh each time: a copied kernel must not share a stale view)."""
        return asa_ring(self._asa["asa_f"], self._asa["asa_i"], self.n_neurons)

    def reset(self) -> None:
        super().reset()
        self.mem = np.zeros(self.n_neurons, dtype=F32)
        self.spk = np.zeros(self.n_neurons, dtype=F32)
        if getattr(self, "_asa", None) is not None:
            self._asa_ring()[:] = 0.0  # the compiled loop's ring
            self._asa["asa_i"][4] = 0  # ring slot written next

    def run_counts(self, data: np.ndarray, activity: Activity | None = None) -> tuple[np.ndarray, int]:
        """As :meth:`Kernel.run_counts`; a plain binary-input network with nothing recorded or counted
        decodes in one compiled call (:func:`lif_stack_decode_binary`, bit-identical; tested)."""
        if not self._one_call(data, activity):
            return super().run_counts(data, activity)
        out_scale, target_scale, target_mean = self._readout
        return lif_stack_decode_binary(data, self.w_in_t, self.bias, self.beta, self.thr, self.offsets,
                                       self.mem, self.spk, out_scale, target_scale, target_mean)

    def _one_call(self, data: np.ndarray, activity: Activity | None) -> bool:
        """True when ``data`` decodes through the one-call path (see :meth:`run_counts`)."""
        return not (activity is not None or self.record or self.spec.kind != "binary" or self._asa is not None
                    or self.transforms.count(None) != len(self.transforms) or data.ndim != 2
                    or data.shape[1] != self.channels or data.dtype.kind not in "fiu" or data.dtype.itemsize < 4)

    def warm(self, row: np.ndarray, activity: Activity | None = None) -> None:
        """Decode ``row`` (shape ``(1, C)``, a zero sample of the live stream's dtype) through the
        one-call path with scratch copies of the membranes and spikes: the weights and the compiled
        loop come into the caches, the state does not change (nothing when that path does not apply)."""
        if not self._one_call(row, activity):
            return
        scratch = self._warm_state
        if scratch is None or scratch[0].shape != self.mem.shape:
            scratch = self._warm_state = (np.empty_like(self.mem), np.empty_like(self.spk))
        mem, spk = scratch
        np.copyto(mem, self.mem)
        np.copyto(spk, self.spk)
        lif_stack_decode_binary(row, self.w_in_t, self.bias, self.beta, self.thr, self.offsets, mem, spk,
                                *self._readout)

    def _asa_active(self) -> bool:
        return self._asa is not None and self.compiled_asa

    def state(self) -> dict[str, np.ndarray]:
        out = {**super().state(), "mem": self.mem.copy(), "spk": self.spk.copy()}
        if self._asa_active():  # the compiled loop's ring, in the numpy CausalASA's format (interchangeable)
            K, o, p = self._asa["window"], self.offsets, int(self._asa["asa_i"][4])
            idx = [(p + 1 + i) % K for i in range(K - 1)]  # the last K − 1 currents, oldest first
            for l in self._asa["layers"]:
                out[f"transform{l}.hist"] = self._asa_ring()[idx, o[l]:o[l + 1]][None].copy()
        return out

    def restore(self, state: dict[str, np.ndarray]) -> None:
        super().restore(state)
        self.mem = np.array(state["mem"], dtype=F32)
        self.spk = np.array(state["spk"], dtype=F32)
        if self._asa is not None:
            K, o = self._asa["window"], self.offsets
            ring = self._asa_ring()
            ring[:] = 0.0
            self._asa["asa_i"][4] = 0  # next write at slot 0: slots 1..K−1 hold the history
            for l in self._asa["layers"]:
                hist = np.asarray(state[f"transform{l}.hist"], dtype=np.float64)  # checked by CausalASA.restore
                ring[1:, o[l]:o[l + 1]] = hist[0]

    def _forward(self, x: np.ndarray, activity: Activity | None) -> np.ndarray:
        if self._asa_active():
            spikes, mem_out = self._run_compiled_asa(x)
        elif any(t is not None for t in self.transforms):
            spikes, mem_out = self._run_plain(x)
        else:
            spikes, mem_out = self._run_compiled(x)
        if self.record:
            self.last_record = {"spikes": spikes, "mem_out": mem_out}
        if activity is not None:
            counts = [int(s.sum()) for s in spikes]
            n = x.shape[0]
            fan_out = self.sizes
            activity.acs += _nnz(x) * fan_out[0] + sum(counts[l - 1] * fan_out[l] for l in range(1, len(fan_out)))
            activity.act_total += n * self.n_neurons
            activity.act_zero += n * self.n_neurons - sum(counts)
            activity.spikes += sum(counts)
            activity.neurons = self.n_neurons
            if not activity.per_layer_spikes:
                activity.per_layer_spikes = [0] * len(counts)
            activity.per_layer_spikes = [a + c for a, c in zip(activity.per_layer_spikes, counts)]
        return mem_out * self.out_scale

    def _run_compiled(self, x: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        """All steps of ``x`` (shape ``(n, C)``) in the compiled loop (:mod:`nodes.decoders.lif_loop`)."""
        n, o = x.shape[0], self.offsets
        spikes_all = np.empty((n, self.n_neurons), dtype=np.bool_)
        mem_out = np.empty((n, self.sizes[-1]), dtype=F32)
        lif_stack_run(np.ascontiguousarray(x, dtype=F32), self.w_in_t, self.bias, self.beta, self.thr,
                      self.offsets, self.mem, self.spk, spikes_all, mem_out)
        return [spikes_all[:, o[l]:o[l + 1]] for l in range(len(self.sizes))], mem_out

    def _run_compiled_asa(self, x: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        """All steps of ``x`` in the compiled loop with the causal ASA (:func:`lif_stack_asa_run`)."""
        n, o, a = x.shape[0], self.offsets, self._asa
        spikes_all = np.empty((n, self.n_neurons), dtype=np.bool_)
        mem_out = np.empty((n, self.sizes[-1]), dtype=F32)
        lif_stack_asa_run(np.ascontiguousarray(x, dtype=F32), self.w_in_t, self.bias, self.beta, self.thr,
                          self.offsets, self.mem, self.spk, spikes_all, mem_out, a["asa_f"], a["asa_i"])
        return [spikes_all[:, o[l]:o[l + 1]] for l in range(len(self.sizes))], mem_out

    def _run_plain(self, x: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        """Reference per-step, per-layer loop (used when an input-current transform is set)."""
        n, L, o = x.shape[0], len(self.sizes), self.offsets
        mem = [self.mem[o[l]:o[l + 1]].copy() for l in range(L)]
        spk = [self.spk[o[l]:o[l + 1]].copy() for l in range(L)]
        spikes = [np.zeros((n, s), dtype=bool) for s in self.sizes]
        mem_out = np.zeros((n, self.sizes[-1]), dtype=F32)
        for t in range(n):
            inp = x[t]
            for l in range(L):
                cur = self.W[l] @ inp + self.b[l]
                if self.transforms[l] is not None:
                    cur = np.asarray(self.transforms[l](cur), dtype=F32)
                cur = cur - self.thr_l[l] * spk[l]
                mem[l] = self.beta_l[l] * mem[l] + cur
                spk[l] = (mem[l] > self.thr_l[l]).astype(F32)
                spikes[l][t] = spk[l] > 0
                inp = spk[l]
            mem_out[t] = mem[L - 1]
        self.mem = np.concatenate(mem)
        self.spk = np.concatenate(spk)
        return spikes, mem_out


def layer_norm(x: np.ndarray, gain: np.ndarray, bias: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """LayerNorm over the last axis in float32 (population variance), as ``torch.nn.LayerNorm``."""
    mu = x.mean(axis=-1, keepdims=True, dtype=F32)
    d = x - mu
    var = (d * d).mean(axis=-1, keepdims=True, dtype=F32)
    return (d / np.sqrt(var + F32(eps))) * gain + bias


class SNN3DKernel(Kernel):
    """SNN_3D: the last 196 ms as 7 steps of 28 ms counts → LayerNorm → LIF C → 32 → 48 → 2,
    membranes reset for every window; output ``out_scale · mem`` of the last layer after the
    last step. Windows are independent, so a chunk is computed as one batch."""

    kind = "snn_3d"

    def __init__(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        super().__init__(arrays, meta)
        n_layers = len(meta["architecture"]["layers"])
        self.W, self.b, self.beta_l, self.thr_l = _lif_params(self.arrays, n_layers)
        self.sizes = [w.shape[0] for w in self.W]
        self.ln_g, self.ln_b = self._get("ln_g"), self._get("ln_b")
        self.out_scale = self._get("out_scale")
        # attention: asa → a clip ASA per layer, applied to the layer's currents over the whole window
        self.transforms = attention_transforms(self.arrays, meta, self.sizes)

    def _forward(self, x: np.ndarray, activity: Activity | None) -> np.ndarray:
        # layer by layer over all 7 steps (a feed-forward SNN: identical to step by step), so a
        # transform sees a layer's whole window of currents, shape (n, steps, units)
        n, steps, _ = x.shape
        inp = layer_norm(x, self.ln_g, self.ln_b)
        nz_in = _nnz(inp)
        L = len(self.sizes)
        spikes, counts = [], []
        for l in range(L):
            cur_all = inp @ self.W[l].T + self.b[l]  # (n, steps, units)
            if self.transforms[l] is not None:
                cur_all = np.asarray(self.transforms[l](cur_all), dtype=F32)
            mem = np.zeros((n, self.sizes[l]), dtype=F32)
            spk = np.zeros((n, self.sizes[l]), dtype=F32)
            out = np.empty((n, steps, self.sizes[l]), dtype=F32)
            for k in range(steps):
                cur = cur_all[:, k] - self.thr_l[l] * spk
                mem = self.beta_l[l] * mem + cur
                spk = (mem > self.thr_l[l]).astype(F32)
                out[:, k] = spk
            spikes.append(out)
            counts.append(int(out.sum()))
            inp = out
        if self.record:
            self.last_record = {"spikes": [s > 0 for s in spikes], "mem_out": mem.copy()}
        if activity is not None:
            neurons = sum(self.sizes)
            activity.macs += nz_in * self.sizes[0]
            activity.acs += sum(counts[l - 1] * self.sizes[l] for l in range(1, L))
            activity.act_total += n * steps * neurons
            activity.act_zero += n * steps * neurons - sum(counts)
            activity.spikes += sum(counts)
            activity.neurons = neurons
            activity.per_layer_spikes = [a + c for a, c in zip(activity.per_layer_spikes or [0] * L, counts)]
        return mem * self.out_scale


class ANNKernel(Kernel):
    """ANN baseline (2-D: 200 ms counts per channel; 3-D: 7 × 28 ms steps, flattened):
    z-scored input → ReLU MLP (32, 48) → linear 2. Stateless apart from the bin history."""

    kind = "ann"

    def __init__(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        super().__init__(arrays, meta)
        n_layers = len(meta["architecture"]["layers"])
        self.W = [self._get(f"W{l}") for l in range(n_layers)]
        self.b = [self._get(f"b{l}") for l in range(n_layers)]
        self.in_mean, self.in_std = self._get("in_mean"), self._get("in_std")
        self.transforms = [None] * n_layers

    def _forward(self, x: np.ndarray, activity: Activity | None) -> np.ndarray:
        n = x.shape[0]
        h = (x.reshape(n, -1) - self.in_mean) / self.in_std
        L = len(self.W)
        for l in range(L):
            if activity is not None:
                activity.macs += _nnz(h) * self.W[l].shape[0]
            h = h @ self.W[l].T + self.b[l]
            if self.transforms[l] is not None:
                h = np.asarray(self.transforms[l](h), dtype=F32)
            if l < L - 1:
                h = np.maximum(h, F32(0))
                if activity is not None:
                    activity.act_total += h.size
                    activity.act_zero += h.size - _nnz(h)
        return h


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return F32(1) / (F32(1) + np.exp(-x))


class LSTMKernel(Kernel):
    """LSTM baseline: 32 ms counts every 4 ms → LayerNorm (or a per-channel z-score, arrays
    ``in_mean``/``in_std``) → 1-layer LSTM (32) → linear 2, state ``(h, c)`` carried. Gate order i, f, g, o as in ``torch.nn.LSTM``."""

    kind = "lstm"

    def __init__(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        super().__init__(arrays, meta)
        self.zscore = "in_mean" in self.arrays  # z-score per channel (train mean/std) instead of LayerNorm
        if self.zscore:
            self.in_mean, self.in_std = self._get("in_mean"), self._get("in_std")
        else:
            self.ln_g, self.ln_b = self._get("ln_g"), self._get("ln_b")
        self.w_ih, self.w_hh = self._get("w_ih"), self._get("w_hh")
        self.b_ih, self.b_hh = self._get("b_ih"), self._get("b_hh")
        self.w_out, self.b_out = self._get("w_out"), self._get("b_out")
        self.hidden = self.w_hh.shape[1]
        self.reset()

    def reset(self) -> None:
        super().reset()
        self.h = np.zeros(self.hidden, dtype=F32)
        self.c = np.zeros(self.hidden, dtype=F32)

    def state(self) -> dict[str, np.ndarray]:
        return {**super().state(), "h": self.h.copy(), "c": self.c.copy()}

    def restore(self, state: dict[str, np.ndarray]) -> None:
        super().restore(state)
        self.h = np.array(state["h"], dtype=F32)
        self.c = np.array(state["c"], dtype=F32)

    def _forward(self, x: np.ndarray, activity: Activity | None) -> np.ndarray:
        n, H = x.shape[0], self.hidden
        xn = (x - self.in_mean) / self.in_std if self.zscore else layer_norm(x, self.ln_g, self.ln_b)
        gx = xn @ self.w_ih.T + (self.b_ih + self.b_hh)  # (n, 4H)
        hs = np.empty((n, H), dtype=F32)
        h, c = self.h, self.c
        nz_h = 0
        for t in range(n):
            nz_h += _nnz(h)
            g = gx[t] + self.w_hh @ h
            i, f = _sigmoid(g[:H]), _sigmoid(g[H:2 * H])
            gg, o = np.tanh(g[2 * H:3 * H]), _sigmoid(g[3 * H:])
            c = f * c + i * gg
            h = o * np.tanh(c)
            hs[t] = h
        self.h, self.c = h, c
        if activity is not None:
            # gates: nonzero inputs × 4H; the cell's elementwise products f·c, i·g, o·tanh(c) (3H per
            # step, as NeuroBench counts an LSTM cell: 16,544 MACs per step for 96 → 32 → 2)
            activity.macs += (_nnz(xn) + nz_h) * 4 * H + 3 * H * n + _nnz(hs) * self.w_out.shape[0]
            activity.act_total += hs.size
            activity.act_zero += hs.size - _nnz(hs)
        return hs @ self.w_out.T + self.b_out


KERNELS: dict[str, type[Kernel]] = {
    "snn_streaming": SNNStreamingKernel,
    "snn_3d": SNN3DKernel,
    "ann": ANNKernel,
    "ann_3d": ANNKernel,
    "lstm": LSTMKernel,
}


def make_kernel(arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Kernel:
    """The numpy kernel for a decoder model file's ``(arrays, metadata)``."""
    kind = meta.get("kind")
    if kind not in KERNELS:
        raise ValueError(f"unknown decoder kind {kind!r}; known: {', '.join(KERNELS)}")
    return KERNELS[kind](arrays, meta)
