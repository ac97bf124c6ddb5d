#!/usr/bin/env bash
# The test suite: set up .venv with the dev extras (torch CPU, snntorch, pytest), then run pytest.
# Tests use real liblsl on loopback, a real local Ray and real scipy/snntorch.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
EXTRAS="[dev]" source scripts/setup.sh
exec .venv/bin/python -m pytest -q --durations=15 "$@"
