"""Shared test helpers. Tests use real parts: real liblsl on loopback, a real local Ray, real scipy."""
from __future__ import annotations

import os
from pathlib import Path

# LSL stays on this machine in every test (set before pipeline or pylsl is imported; see
# pipeline/lsl_scope.py): discovery on 127.0.0.1 only, responders bound to loopback, no IPv6.
os.environ["SPIKELOOP_LSL_LOCAL"] = "1"

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
# The ICRA 2020 LiDAR traces are not in the repository: SPIKELOOP_LIDAR_DATASET points at them
# (default: ../shared/datasets/icra2020-lidar beside the checkout). Tests that need them skip, with
# the path in the reason, when they are missing.
LIDAR_DATASET = Path(os.environ.get("SPIKELOOP_LIDAR_DATASET",
                                    REPO.parent / "shared" / "datasets" / "icra2020-lidar"))


@pytest.fixture
def write_config(tmp_path):
    """Write a YAML text to a temporary config file and return its path."""

    def write(text: str, name: str = "graph.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


@pytest.fixture(scope="session")
def ray_local():
    """A local Ray on loopback (2 CPUs), started once and shared by every Ray test of the session."""
    import ray

    from pipeline.runners.ray_runner import ensure_ray

    if not ray.is_initialized():
        ensure_ray({"num_cpus": 2}, None)
    yield ray



def pytest_sessionfinish(session, exitstatus):
    """Stop the shared Ray before pytest prints its summary, so Ray's forwarded worker logs come
    first and the summary stays the last line of the run (CI reads it)."""
    import sys

    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()
