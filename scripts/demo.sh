#!/usr/bin/env bash
# The main job: set up .venv, then replay the bundled sample recording through the SNN decoder
# and the Bessel filter (configs/replay_decode.yaml) and print the run summary.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
EXTRAS="" source scripts/setup.sh
exec .venv/bin/spikeloop run configs/replay_decode.yaml "$@"
