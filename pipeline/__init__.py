"""spikeloop runtime: packets, the node contract, graph configs, runners, recordings and the CLI."""
__version__ = "0.1.0"
