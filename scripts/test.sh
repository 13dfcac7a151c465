#!/usr/bin/env bash
# The whole test suite (what CI runs): set up if needed, then pytest over every package and tests/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export FMZOO_DATA=${FMZOO_DATA:-$(cd .. && pwd)/shared/data}
export OMP_WAIT_POLICY=PASSIVE FMZOO_OFFLINE=1
exec .venv/bin/python -m pytest -q -n 2 --durations=15 "$@"
