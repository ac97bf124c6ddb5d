"""``spikeloop bench NAME``: run a benchmark from ``benchmarks/`` and print medians/percentiles.

Each benchmark module exposes ``add_arguments(parser)`` and ``run(args) -> int``.
"""
from __future__ import annotations

import argparse
import importlib

BENCHMARKS: dict[str, tuple[str, str]] = {
    # name: (module, one-line help)
    "decoder": ("benchmarks.decoder", "decoder step: numpy kernel vs snntorch (median, p99), offline speed in x real time"),
    "latency": ("benchmarks.latency", "live LSL in -> Bessel -> SNN decoder -> LSL out: push-to-output latency p50/p99/max and lost samples per runner, with the bare LSL floors"),
    "latency-path": ("benchmarks.latency_path", "where a live graph's time goes per sample (probe): CPU µs per stage (pull, wait, each node, runner bookkeeping), wake-up vs arrival, GC, busiest threads, per runner"),
    "controller": ("benchmarks.controller", "spiking collision-avoidance controller: decision time numpy vs PyTorch (median, p99), simulator episode time, MSE vs T"),
    "restarts": ("benchmarks.restarts", "ray runner: actor kill -> first live output after the restart (p50 over kills), checkpoint cost on replay throughput"),
    "fanout": ("benchmarks.fanout", "spikeloop evaluate --jobs N: wall time serial vs Ray tasks (1 and N in flight), scheduling overhead, Ray start-up"),
    "attention": ("benchmarks.attention", "decoders with vs without ASA: R2, spikes per step and per layer, SynOps, step time p50/p99, over seeds"),
    "sessions": ("benchmarks.sessions", "N concurrent live sessions (96 ch, 250 Hz, LSL -> Bessel -> SNN -> LSL) on one loopback Ray cluster: per-session p50/p99, lost, CPU"),
    "soak": ("benchmarks.soak", "memory soak: looping full-speed replay and a live 250 Hz chain for N minutes each, RSS start/end/growth and MB/hour"),
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="run a benchmark (timings as medians and percentiles, compared side by side)",
        description="Benchmarks measure timing goals; results print as a table and optionally JSON.",
    )
    names = p.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    for name, (module_name, help_text) in BENCHMARKS.items():
        module = importlib.import_module(module_name)
        bp = names.add_parser(name, help=help_text, description=help_text, epilog=getattr(module, "EPILOG", None),
                              formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(bp)
        bp.set_defaults(func=module.run)
