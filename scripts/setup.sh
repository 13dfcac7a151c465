#!/usr/bin/env bash
# Create (or update) .venv with every fmzoo package installed editable, torch pinned through
# shared/constraints.txt. Idempotent: does nothing when the inputs have not changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-$(command -v python3.11 || command -v python3)}
packages=()
for p in packages/*/pyproject.toml; do packages+=("-e" "$(dirname "$p")"); done
# Debian packages some domain packages need at run time (audio synthesis for speech pretraining data). Checked
# on every call (dpkg -s is cheap), so a .venv made before a package was added still gets it.
if [[ -f shared/apt-packages.txt ]] && command -v apt-get >/dev/null; then
  missing=$(for p in $(grep -v '^#' shared/apt-packages.txt); do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
  if [[ -n "$missing" ]]; then
    as_root=""; [[ $(id -u) == 0 ]] || as_root="sudo -n"
    echo "[setup] apt-get install" $missing
    ($as_root apt-get update -qq && DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y -qq $missing) >/dev/null 2>&1 \
      || echo "[setup] warning: apt-get failed for:" $missing "(install them by hand; see shared/apt-packages.txt)"
  fi
fi
stamp_src=$(cat shared/constraints.txt shared/requirements-dev.txt shared/requirements-nodeps.txt packages/*/pyproject.toml | sha256sum | cut -c1-16)
if [[ -x .venv/bin/python && -f .venv/.fmzoo-stamp && "$(cat .venv/.fmzoo-stamp)" == "$stamp_src" ]]; then
  exit 0
fi
free_kb=$(df -Pk . | awk 'NR==2 {print $4}')
if [[ ! -x .venv/bin/python && "$free_kb" -lt $((8 * 1024 * 1024)) ]]; then
  echo "[setup] warning: $((free_kb / 1024)) MB free here; a new .venv needs about 7 GB"
fi
echo "[setup] creating .venv with $($PY --version)"
[[ -x .venv/bin/python ]] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
echo "[setup] installing $(( ${#packages[@]} / 2 )) editable packages (torch pinned by shared/constraints.txt)"
if ! .venv/bin/python -m pip install -q -c shared/constraints.txt -r shared/requirements-dev.txt "${packages[@]}" \
    > .venv/setup.log 2>&1; then
  grep -v "^WARNING: Location" .venv/setup.log | tail -40
  if grep -q "No space left on device" .venv/setup.log; then
    echo "[setup] the disk is full: a new .venv needs about 7 GB (torch's pinned build brings its CUDA libraries);" \
         "free now under $(pwd): $(df -Ph . | awk 'NR==2 {print $4}')"
  fi
  echo "[setup] pip install failed (full log: .venv/setup.log)"; exit 1
fi
if ! .venv/bin/python -m pip install -q --no-deps -c shared/constraints.txt -r shared/requirements-nodeps.txt \
    >> .venv/setup.log 2>&1; then
  tail -20 .venv/setup.log; echo "[setup] pip install --no-deps of shared/requirements-nodeps.txt failed"; exit 1
fi
.venv/bin/python -c "import torch, fmzoo.core; print('[setup] torch', torch.__version__)"
echo "$stamp_src" > .venv/.fmzoo-stamp
