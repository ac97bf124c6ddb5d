"""A local Ray started by the runners runs its workers at normal priority (Ray's default is nice 15).

At niceness 15 a live group actor gets a few % of a core's share against any normal process, so
its samples wait tens of ms on a busy machine (docs/RESULTS.md, "Live latency: where the time
goes"). The runners start a local Ray with ``RAY_worker_niceness=0`` unless the user set it.
"""
from __future__ import annotations

import os


def test_workers_of_the_runners_local_ray_are_not_niced(ray_local):
    ray = ray_local
    if os.environ.get("RAY_worker_niceness", "0") != "0":  # the user's own choice wins
        return

    @ray.remote(num_cpus=0)
    def niceness() -> int:
        return os.getpriority(os.PRIO_PROCESS, 0)

    assert ray.get(niceness.remote(), timeout=120) == 0
