"""The decoder model kinds: architecture and input features, as recorded in model-file metadata.

Rates and windows assume 4 ms bins (250 Hz), as in the iBMI paper and NeuroBench.
"""
from __future__ import annotations

from typing import Any

from nodes.decoders.features import FeatureSpec

MODEL_KINDS = ("snn_streaming", "snn_3d", "ann", "ann_3d", "lstm")

_FEATURES: dict[str, FeatureSpec] = {
    "snn_streaming": FeatureSpec("binary"),
    "snn_3d": FeatureSpec("steps", steps=7, step_bins=7),  # 7 steps of 28 ms over the last 196 ms
    "ann": FeatureSpec("sum", width=50),  # counts over the last 200 ms
    "ann_3d": FeatureSpec("steps", steps=7, step_bins=7),
    "lstm": FeatureSpec("sum", width=8),  # counts over the last 32 ms, every 4 ms
}

_ARCH: dict[str, dict[str, Any]] = {
    "snn_streaming": {"layers": [32, 48, 2], "neuron": "snntorch.Leaky (reset by subtraction)",
                      # initial values; training replaces 'beta'/'threshold' by the TRAINED ones
                      # (one per neuron) and keeps these under 'beta_init'/'threshold_init'
                      "beta": [0.9, 0.7, 0.8], "threshold": [0.4, 0.6, 0.5], "learn_beta": True,
                      "learn_threshold": True, "per_neuron": True, "tau_init_ms": [8.0, 400.0],
                      "beta_range": [0.0, 0.995], "threshold_min": 0.02,
                      "readout": "out_scale * membrane of last layer", "state": "carried"},
    "snn_3d": {"layers": [32, 48, 2], "neuron": "snntorch.Leaky (reset by subtraction)", "norm": "LayerNorm",
               "beta": [0.5, 0.5, 0.5], "threshold": [0.5, 0.5, 0.5], "learn_beta": False, "learn_threshold": False,
               "readout": "out_scale * membrane of last layer after the last step", "state": "reset per window"},
    "ann": {"layers": [32, 48, 2], "activation": "relu", "norm": "z-score (train mean/std)", "input": "2-D"},
    "ann_3d": {"layers": [32, 48, 2], "activation": "relu", "norm": "z-score (train mean/std)", "input": "3-D (flattened)"},
    "lstm": {"hidden": 32, "layers": 1, "norm": "LayerNorm", "readout": "linear", "state": "carried"},
}


def base_metadata(kind: str, channels: int, rate_hz: float = 250.0) -> dict[str, Any]:
    """Metadata of a decoder model file of ``kind`` (without training details)."""
    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown decoder model {kind!r}; choose one of: {', '.join(MODEL_KINDS)}")
    return {
        "family": "decoder",
        "kind": kind,
        "architecture": dict(_ARCH[kind]),
        "features": _FEATURES[kind].to_dict(),
        "channels": int(channels),
        "rate_hz": float(rate_hz),
        "outputs": 2,
        "output_labels": ["vx", "vy"],
        "input": "spike counts per 4 ms bin (stream type SpikeCounts)",
        "normalisation": "output = model_output * target_scale + target_mean (arrays); see architecture.norm for inputs",
    }
