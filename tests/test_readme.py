"""The README's Python examples run as written (from the repository root) and print what they say."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _python_blocks() -> dict[str, str]:
    text = (REPO / "README.md").read_text()
    out = {}
    for m in re.finditer(r"^## (.+?)\n(.*?)(?=^## |\Z)", text, re.S | re.M):
        blocks = re.findall(r"```python\n(.*?)```", m.group(2), re.S)
        if blocks:
            out[m.group(1).strip()] = "\n".join(blocks)
    return out


def test_readme_has_both_examples():
    assert set(_python_blocks()) >= {"Write a node", "Run a graph from Python"}


def test_write_a_node_example_runs(capsys):
    exec(compile(_python_blocks()["Write a node"], "README.md:write-a-node", "exec"), {})
    assert capsys.readouterr().out.strip() == "[[5.]]"


@pytest.mark.skipif(not (REPO / "models" / "snn_streaming_sample.npz").exists(), reason="sample model missing")
def test_run_a_graph_example_runs(capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    exec(compile(_python_blocks()["Run a graph from Python"], "README.md:run-a-graph", "exec"), {})
    r2, samples = capsys.readouterr().out.split()
    assert int(samples) == 15000 and 0.0 < float(r2) < 1.0


def test_readme_is_an_entry_point():
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= 170
    for heading in ("## Two commands", "## A live session", "## Your own data", "## Write a node",
                    "## Run a graph from Python", "## Live sessions and exposure", "## Running on a cluster",
                    "## Reliability"):
        assert heading in lines or any(line.startswith(heading) for line in lines), heading
