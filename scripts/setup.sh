#!/usr/bin/env bash
# Create ./.venv (if missing) and install spikeloop into it. Sourced by demo.sh and test.sh.
# EXTRAS="" installs the runtime only; EXTRAS="[dev]" adds torch (CPU), snntorch and pytest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
fi
stamp=".venv/.spikeloop-installed${EXTRAS:-}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "[setup] installing spikeloop${EXTRAS:-} (first run takes a few minutes)"
  .venv/bin/python -m pip install --quiet -e ".${EXTRAS:-}"
  touch "$stamp"
fi
