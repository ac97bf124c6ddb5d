"""Benchmarks behind the README's performance table; run them with ``spikeloop bench NAME``."""
