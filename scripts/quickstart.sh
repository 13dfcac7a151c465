#!/usr/bin/env bash
# The main job: set up, then every shipped checkpoint fine-tuned/evaluated on real data and every
# paper table reproduced in quick mode, printed beside the papers' numbers.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export FMZOO_DATA=${FMZOO_DATA:-$(cd .. && pwd)/shared/data}
export OMP_WAIT_POLICY=PASSIVE
.venv/bin/fmzoo list
.venv/bin/fmzoo reproduce --all --quick --jobs 2 --out reproduce_out  # two tables at a time, each in its own process
echo "tables, JSON and plots: reproduce_out/"
