"""Shared test helpers. Tests use real parts: real liblsl on loopback, a real local Ray, real scipy."""
from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LIDAR_DATASET = REPO.parent / "shared" / "datasets" / "icra2020-lidar"


@pytest.fixture
def write_config(tmp_path):
    """Write a YAML text to a temporary config file and return its path."""

    def write(text: str, name: str = "graph.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write
