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


def _thread_niceness(pid: int) -> list[int]:
    """Niceness of every thread of ``pid`` (field 19 of /proc/<pid>/task/<tid>/stat)."""
    out = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/stat") as f:
            out.append(int(f.read().rsplit(")", 1)[1].split()[16]))
    return out


def test_standby_priority_lowers_only_the_calling_thread_and_restores_it():
    import threading

    from pipeline.runners.realtime import STANDBY_NICENESS, standby_priority

    base = os.getpriority(os.PRIO_PROCESS, 0)
    seen: dict[str, int] = {}

    def work() -> None:
        with standby_priority() as ran_at:
            seen["inside"] = os.getpriority(os.PRIO_PROCESS, 0)
            seen["ran_at"] = ran_at
            seen["main"] = os.getpriority(os.PRIO_PROCESS, threading.main_thread().native_id)
        seen["after"] = os.getpriority(os.PRIO_PROCESS, 0)

    t = threading.Thread(target=work)
    t.start()
    t.join(10)
    if os.geteuid() == 0:  # root may always return to the old priority, so it lowers it
        assert seen["inside"] == seen["ran_at"] == min(19, base + STANDBY_NICENESS)
    assert seen["main"] == base and seen["after"] == base


def test_spare_actor_prepares_and_is_back_at_normal_priority(ray_local):
    """The spare prepares (imports, kernels, liblsl) at standby priority; afterwards none of its
    threads is left niced, so a group it takes over runs at the worker's normal priority."""
    ray = ray_local
    from pipeline.runners.ray_runner import GroupActor

    spare = ray.remote(GroupActor).options(num_cpus=0, max_concurrency=4).remote()
    pid = ray.get(spare.warm.remote(["bessel", "lsl_inlet", "lsl_outlet"]), timeout=120)
    assert ray.get(spare.ping.remote(), timeout=60) == pid
    expected = int(os.environ.get("RAY_worker_niceness", "0"))
    assert set(_thread_niceness(pid)) == {expected}
    ray.kill(spare)
