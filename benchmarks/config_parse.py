"""Cost of strict config reading: a YAML alias bomb refused, and the strict loader vs ``yaml.safe_load``.

Run: ``python -m benchmarks.config_parse [--repeats N]`` from the repository root. Prints medians and
p90 in milliseconds (timings on a shared machine are noisy; compare the two loaders in the same run).
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import yaml

from pipeline.graph import MAX_YAML_NODES, parse_yaml_text


def alias_bomb(levels: int = 12, width: int = 10) -> str:
    """A document of ``width ** levels`` nodes once aliases are expanded (10^12 by default), ~1 kB of text."""
    lines = ["description:", "  l0: &l0 [" + ", ".join(["x"] * width) + "]"]
    lines += [f"  l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def _times_ms(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        try:
            fn()
        except ValueError:
            pass
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def _row(name: str, ts: list[float]) -> str:
    ts = sorted(ts)
    return f"{name:<40} p50 {statistics.median(ts):8.2f} ms   p90 {ts[int(0.9 * (len(ts) - 1))]:8.2f} ms   max {ts[-1]:8.2f} ms"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                epilog="example: python -m benchmarks.config_parse --repeats 200")
    p.add_argument("--repeats", type=int, default=200, help="timed repeats per row (default 200)")
    args = p.parse_args(argv)
    bomb = alias_bomb()
    print(_row(f"alias bomb refused (limit {MAX_YAML_NODES:,} nodes)", _times_ms(lambda: parse_yaml_text(bomb), args.repeats)))
    text = Path("configs/replay_decode.yaml").read_text()
    print(_row("configs/replay_decode.yaml, strict", _times_ms(lambda: parse_yaml_text(text), args.repeats)))
    print(_row("configs/replay_decode.yaml, safe_load", _times_ms(lambda: yaml.safe_load(text), args.repeats)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
