"""``spikeloop sessions``: list the named sessions running on a Ray cluster, or stop one."""
from __future__ import annotations

import argparse
import time
from typing import Any

from pipeline.errors import UserError
from pipeline.sessions import STALE_AFTER_S

EPILOG = """\
A session is a `spikeloop run CONFIG --runner ray --address ADDR [--session NAME]`: it registers
in a small registry actor on the cluster (namespace "spikeloop") and updates its figures every 2 s.
--stop NAME sets the session's stop flag; the run ends at its next update as on Ctrl-C (summary
printed and written as usual) and its entry stays, marked ended.
A session whose driver died (killed, crashed, machine lost) is marked "dead: driver gone" as soon
as Ray reports its driver's job dead (Ray also ends its actors), with the time it was last seen; one
silent for 10 s is shown as stale, and after 120 s without a heartbeat (SPIKELOOP_SESSION_LOST_S
in the run's environment sets another time) it is marked lost, its last figures kept.
--prune forgets every ended, dead or lost entry.

examples:
  spikeloop sessions --address 10.0.0.5:6379
  spikeloop sessions --address 10.0.0.5:6379 --stop rig3
  spikeloop sessions --address 10.0.0.5:6379 --prune
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sessions", help="list the named sessions on a Ray cluster, or stop one cleanly",
                       description="List the named sessions (spikeloop run --address) on a Ray cluster, or stop one.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--address", default="auto",
                   help="Ray cluster address, e.g. 10.0.0.5:6379 (default: auto, the cluster `ray start` started here)")
    p.add_argument("--stop", metavar="NAME", help="stop session NAME cleanly (as Ctrl-C would), then list")
    p.add_argument("--json", action="store_true", help="print the entries as JSON (one list) instead of the table")
    p.add_argument("--prune", action="store_true", help="forget the ended, dead and lost entries, then list")
    p.add_argument("--timeout", type=float, default=30.0, metavar="S",
                   help="with --stop: longest wait for the session to end (default 30)")
    p.set_defaults(func=run)


def _ago(t: float | None) -> str:
    if not t:
        return "-"
    s = max(0.0, time.time() - t)
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.0f} min" if s < 7200 else f"{s / 3600:.1f} h"


def _seen(t: float | None) -> str:
    """``last seen 21:04:05 (12 s ago)`` (local clock time)."""
    if not t:
        return "never seen"
    return f"last seen {time.strftime('%H:%M:%S', time.localtime(t))} ({_ago(t)} ago)"


def _f(v: Any, d: int = 1) -> str:
    return "-" if v is None else f"{v:.{d}f}"


def print_sessions(rows: list[dict[str, Any]], address: str) -> None:
    from rich.table import Table

    from pipeline.console import console

    table = Table(title=f"sessions on {address}", title_justify="left")
    for col in ("name", "config", "runner", "host:pid", "uptime", "state", "in / out samples", "rate Hz",
                "in-graph p50 ms", "e2e p50 ms", "counters"):
        table.add_column(col, justify="right" if col in ("uptime", "in / out samples", "rate Hz") or "ms" in col else "left")
    for s in sorted(rows, key=lambda r: r.get("started", 0)):
        st = s.get("stats", {})
        if s.get("dead") or s.get("lost"):
            state = f"{s.get('stopped_by', 'dead')}; {_seen(s.get('last_seen'))}"
            io = f"{st.get('source_samples', '-')} / {st.get('sink_samples', '-')}"
            up = f"{max(0.0, s.get('last_seen', s['started']) - s['started']):.0f} s"
        elif s.get("ended"):
            state = f"ended: {s.get('stopped_by', '?')}"
            final = s.get("final") or {}
            io = f"{final.get('source_samples', st.get('source_samples', '-'))} / {final.get('sink_samples', st.get('sink_samples', '-'))}"
            up = f"{(s['ended'] - s['started']):.0f} s"
        else:
            state = "stopping" if s.get("stop") else "running"
            if time.time() - s.get("last_seen", 0) > STALE_AFTER_S:
                state = f"stale ({state}, no heartbeat; {_seen(s.get('last_seen'))})"
            io = f"{st.get('source_samples', '-')} / {st.get('sink_samples', '-')}"
            up = _ago(s.get("started"))
        counters = ", ".join(f"{k}={v}" for k, v in sorted(st.get("counters", {}).items()))
        table.add_row(s["name"], s.get("config", "-"), s.get("runner", "-"), f"{s.get('host', '?')}:{s.get('pid', '?')}",
                      up, state, io, _f(st.get("rate_hz")), _f(st.get("in_graph_p50_ms"), 3), _f(st.get("e2e_p50_ms"), 3),
                      counters[:60] or "-")
    console().print(table)


def run(args: argparse.Namespace) -> int:
    import logging
    import os

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    from pipeline.sessions import registry

    try:
        if args.address.rsplit(":", 1)[0] in ("127.0.0.1", "localhost"):
            from ray._private import ray_constants

            os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
            ray_constants.ENABLE_RAY_CLUSTER = False
        ray.init(address=args.address, logging_level=logging.WARNING, log_to_driver=False)
    except Exception as exc:  # noqa: BLE001 - Ray raises bare exceptions for unreachable clusters
        raise UserError(f"spikeloop sessions: could not join the Ray cluster at {args.address!r}: "
                        f"{' '.join(str(exc).split())[:300]}") from None
    try:
        reg = registry(create=False)
        if reg is None:
            if args.stop:
                raise UserError(f"spikeloop sessions: no session {args.stop!r}: no sessions registered on {args.address}")
            print("[]" if args.json else f"no sessions registered on {args.address}")
            return 0
        if args.stop:
            answer = ray.get(reg.request_stop.remote(args.stop), timeout=10.0)
            if answer == "unknown":
                names = sorted(s["name"] for s in ray.get(reg.list.remote(), timeout=10.0))
                raise UserError(f"spikeloop sessions: no session {args.stop!r} (sessions: {', '.join(names) or 'none'})")
            if answer == "requested":
                print(f"stop requested for session {args.stop!r}; waiting up to {args.timeout:g} s for it to end")
                end = time.monotonic() + args.timeout
                while time.monotonic() < end:
                    rows = ray.get(reg.list.remote(), timeout=10.0)
                    if any(s["name"] == args.stop and s.get("ended") for s in rows):
                        print(f"session {args.stop!r} ended")
                        break
                    time.sleep(0.5)
                else:
                    print(f"session {args.stop!r} has not ended within {args.timeout:g} s (its stop flag stays set)")
            else:
                print(f"session {args.stop!r} had already ended")
        if args.prune:
            gone = ray.get(reg.prune.remote(), timeout=10.0)
            print(f"forgot {len(gone)} ended session(s){': ' + ', '.join(gone) if gone else ''}")
        rows = ray.get(reg.list.remote(), timeout=10.0)
        if args.json:
            import json

            print(json.dumps(sorted(rows, key=lambda r: r.get("started", 0)), default=str))
        else:
            print_sessions(rows, args.address)
        return 0
    finally:
        ray.shutdown()
