"""A multi-node Ray cluster on this machine for tests: a head and worker nodes, each its own ``ray start``.

Every node is a real Ray node (its own raylet and object store) on loopback, with the custom
resources it is given (``{"rig": 1}``, ``{"gpu_box": 1}``), so Ray's scheduler places actors by
resource exactly as it would across machines. Token authentication with this cluster's own token
(see :class:`benchmarks.sessions.LocalCluster`); ``stop()`` ends exactly these processes.

``where(address, env)`` asks the cluster (from a separate process, so the test process's own Ray
is not disturbed) for its nodes and every actor it has seen, with the actor's pid and node id.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.sessions import REPO, LocalCluster

_QUERY = r"""
import json, sys
import ray
from ray._private import state
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
nodes = [{"id": n["NodeID"], "alive": bool(n["Alive"]), "resources": n["Resources"]} for n in ray.nodes()]
table = state.actors()
rows = table.values() if isinstance(table, dict) else table
actors = [{"id": a["ActorID"], "cls": a["ActorClassName"], "pid": a["Pid"], "node": a["Address"]["NodeID"],
           "state": a["State"], "job": a["JobID"], "name": a["Name"]} for a in rows]
jobs = [{"id": j["JobID"], "pid": j["DriverPid"], "dead": bool(j["IsDead"])} for j in state.jobs()]
print("QUERY" + json.dumps({"nodes": nodes, "actors": actors, "jobs": jobs}))
ray.shutdown()
"""


class MultiNodeCluster(LocalCluster):
    """A head node (``head_cpus`` CPUs) and one worker node per entry of ``workers``.

    Args:
        head_cpus: CPUs of the head node.
        workers: per worker node ``{"num_cpus": N, "resources": {"rig": 1}}``.
        startup_s: longest wait for each node to come up (s).
    """

    def __init__(self, head_cpus: int, workers: list[dict[str, Any]], startup_s: float = 120.0) -> None:
        super().__init__(num_cpus=head_cpus, startup_s=startup_s)
        self.workers: list[subprocess.Popen] = []
        try:
            for w in workers:
                self.add_node(int(w.get("num_cpus", 0)), dict(w.get("resources", {})), startup_s)
            self.wait_for_nodes(1 + len(workers), startup_s)
        except BaseException:
            self.stop()
            raise

    def add_node(self, num_cpus: int, resources: dict[str, float], startup_s: float) -> None:
        """Start a worker node (``ray start --address HEAD --block``) and wait until it says it runs."""
        ray_bin = Path(sys.executable).with_name("ray")
        log = self.temp_dir / f"worker{len(self.workers)}.log"
        cmd = [str(ray_bin) if ray_bin.exists() else "ray", "start", f"--address={self.address}", "--block",
               "--node-ip-address=127.0.0.1", f"--num-cpus={num_cpus}", f"--resources={json.dumps(resources)}",
               "--disable-usage-stats"]
        proc = subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT, env=self.env,
                                start_new_session=True)
        self.workers.append(proc)
        end = time.monotonic() + startup_s
        while "Ray runtime started" not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > end:
                tail = log.read_text(errors="replace").strip().splitlines()[-3:] or ["(no output)"]
                raise RuntimeError(f"worker node {resources} did not come up within {startup_s:g} s: {' | '.join(tail)}")
            time.sleep(0.2)
        self.pids()

    def wait_for_nodes(self, n: int, timeout_s: float) -> dict[str, Any]:
        """Wait until ``n`` nodes are alive (the raylets register with the head); the query's answer."""
        end = time.monotonic() + timeout_s
        while True:
            found = where(self.address, self.env)
            if sum(node["alive"] for node in found["nodes"]) >= n:
                return found
            if time.monotonic() > end:
                raise RuntimeError(f"only {sum(x['alive'] for x in found['nodes'])} of {n} Ray nodes alive "
                                   f"after {timeout_s:g} s")
            time.sleep(0.5)

    def pids(self) -> list[int]:
        import psutil

        pids = super().pids()
        for proc in getattr(self, "workers", []):
            try:
                root = psutil.Process(proc.pid)
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                continue
            for p in procs:
                try:
                    self._seen.setdefault(p.pid, p.create_time())
                    pids.append(p.pid)
                except psutil.Error:
                    continue
        return pids

    def stop(self, grace_s: float = 10.0) -> None:
        super().stop(grace_s)
        for proc in getattr(self, "workers", []):
            try:
                proc.wait(5.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5.0)


def where(address: str, env: dict[str, str], timeout: float = 60.0) -> dict[str, Any]:
    """The cluster's nodes, actors (pid, node id, state, job) and jobs (driver pid, dead), as JSON."""
    out = subprocess.run([sys.executable, "-c", _QUERY, address], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=timeout)
    line = next((x for x in out.stdout.splitlines() if x.startswith("QUERY")), None)
    if line is None:
        raise RuntimeError(f"cluster query failed (rc {out.returncode}): {(out.stderr.strip().splitlines() or ['?'])[-1]}")
    return json.loads(line[5:])
