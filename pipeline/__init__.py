"""spikeloop runtime: packets, the node contract, graph configs, runners, recordings and the CLI."""
from pipeline.lsl_scope import apply_local_scope as _apply_local_scope

__version__ = "0.1.0"

_apply_local_scope()  # SPIKELOOP_LSL_LOCAL=1: LSL stays on this machine (before any LSL object exists)
