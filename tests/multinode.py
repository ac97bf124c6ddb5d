"""A multi-node Ray cluster on this machine for tests: a head and worker nodes (Ray's ``cluster_utils``).

Every node is a real Ray node (its own raylet and object store) on loopback, with the custom
resources it is given (``{"rig": 1}``, ``{"gpu_box": 1}``), so Ray's scheduler places actors by
resource exactly as it would across machines. Token authentication with this cluster's own token
(see :class:`benchmarks.sessions.LocalCluster`); ``stop()`` ends exactly these processes.

``where(address, env)`` asks the cluster (from a separate process, so the test process's own Ray
is not disturbed) for its nodes and every actor it has seen, with the actor's pid and node id.
"""
from __future__ import annotations

import json
import os
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


_HOST = r"""
import json, sys
import ray._private.utils
ray._private.utils.write_ray_address = lambda *a, **k: None  # no /tmp/ray/ray_current_cluster: "auto" stays someone else's
from ray.cluster_utils import Cluster
head_cpus, workers, temp_dir = int(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
common = {"node_ip_address": "127.0.0.1", "object_store_memory": 80 * 2**20}
cluster = Cluster(initialize_head=True, head_node_args=dict(common, num_cpus=head_cpus, include_dashboard=False,
                                                          temp_dir=temp_dir))
for w in workers:
    cluster.add_node(**common, num_cpus=int(w.get("num_cpus", 0)), resources=dict(w.get("resources", {})))
cluster.wait_for_nodes()
print("ADDRESS " + cluster.address, flush=True)
try:
    sys.stdin.read()  # until the test closes our stdin (or ends us)
finally:
    cluster.shutdown()
"""


class MultiNodeCluster(LocalCluster):
    """A head node (``head_cpus`` CPUs) and one worker node per entry of ``workers``, on loopback.

    Built with Ray's own test-cluster utility (``ray.cluster_utils.Cluster``) in a host process of
    its own (``ray start`` cannot join a loopback-only head: a joining node swaps 127.0.0.1 for the
    machine's network address). Each node is a real raylet with its own object store and resources.

    Args:
        head_cpus: CPUs of the head node.
        workers: per worker node ``{"num_cpus": N, "resources": {"rig": 1}}``.
        startup_s: longest wait for the whole cluster to come up (s).
    """

    def __init__(self, head_cpus: int, workers: list[dict[str, Any]], startup_s: float = 180.0) -> None:
        import tempfile
        import uuid

        # what LocalCluster.__init__ sets up, without its `ray start` head
        self.temp_dir = Path(tempfile.mkdtemp(prefix="slm_", dir="/tmp"))
        self.env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",
                        RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=uuid.uuid4().hex + uuid.uuid4().hex)
        self._seen: dict[int, float] = {}
        self.log_path = self.temp_dir / "host.log"
        self.proc = subprocess.Popen([sys.executable, "-c", _HOST, str(head_cpus), json.dumps(workers),
                                      str(self.temp_dir)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=open(self.log_path, "w"), env=self.env, text=True, start_new_session=True)
        try:
            self.address = self._read_address(startup_s)
            self.pids()
            self.wait_for_nodes(1 + len(workers), startup_s)
        except BaseException:
            self.stop()
            raise

    def _read_address(self, timeout_s: float) -> str:
        import selectors

        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if sel.select(timeout=0.5):
                line = self.proc.stdout.readline()
                if line.startswith("ADDRESS "):
                    return line.split()[1]
                if not line and self.proc.poll() is not None:
                    break
            self.pids()
        tail = self.log_path.read_text(errors="replace").strip().splitlines()[-2:] or ["(no output)"]
        raise RuntimeError(f"multi-node Ray cluster did not come up within {timeout_s:g} s: {' | '.join(tail)}")

    def wait_for_nodes(self, n: int, timeout_s: float) -> dict[str, Any]:
        """Wait until ``n`` nodes are alive; the cluster query's answer (see :func:`where`)."""
        end = time.monotonic() + timeout_s
        while True:
            found = where(self.address, self.env)
            if sum(node["alive"] for node in found["nodes"]) >= n:
                return found
            if time.monotonic() > end:
                raise RuntimeError(f"only {sum(x['alive'] for x in found['nodes'])} of {n} Ray nodes alive "
                                   f"after {timeout_s:g} s")
            time.sleep(0.5)

    def stop(self, grace_s: float = 10.0) -> None:
        """Close the host's stdin (it shuts the cluster down), then end whatever is left of its tree."""
        self.pids()
        try:
            if self.proc.stdin and not self.proc.stdin.closed:
                self.proc.stdin.close()
            self.proc.wait(30.0)
        except (subprocess.TimeoutExpired, OSError):
            pass
        super().stop(grace_s)


def where(address: str, env: dict[str, str], timeout: float = 60.0) -> dict[str, Any]:
    """The cluster's nodes, actors (pid, node id, state, job) and jobs (driver pid, dead), as JSON."""
    out = subprocess.run([sys.executable, "-c", _QUERY, address], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=timeout)
    line = next((x for x in out.stdout.splitlines() if x.startswith("QUERY")), None)
    if line is None:
        raise RuntimeError(f"cluster query failed (rc {out.returncode}): {(out.stderr.strip().splitlines() or ['?'])[-1]}")
    return json.loads(line[5:])
