#!/usr/bin/env bash
# Installs everything this repository needs and compiles the rasterizer kernel (with its CUDA
# kernels where nvcc and a CUDA build of TensorFlow are present; otherwise build.py says which
# is missing and builds the CPU kernel).
#
#   ./install.sh            create (or update) the virtual environment .venv and build the kernel
#   ./install.sh --system   use the current Python environment instead of .venv
#
# Safe to run again: an existing .venv is reused, satisfied requirements are skipped, and the
# kernel is rebuilt only when its sources changed.
set -uo pipefail
cd "$(dirname "$0")"

use_system=0
for arg in "$@"; do
  case "$arg" in
    --system) use_system=1 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown argument '$arg' (see ./install.sh --help)" >&2; exit 2 ;;
  esac
done

step=""
run_step() {  # run_step "description" command...
  step="$1"; shift
  echo "==> $step"
  if ! "$@"; then
    echo "install.sh: FAILED at step: $step" >&2
    exit 1
  fi
}

python_ok() {
  "$1" - <<'PY'
import sys
if not ((3, 10) <= sys.version_info[:2] <= (3, 13)):
    sys.exit("Python %d.%d found; TensorFlow 2.21 needs Python 3.10 to 3.13" % sys.version_info[:2])
PY
}

if [ "$use_system" = 1 ]; then
  PY="$(command -v python3 || true)"
  [ -n "$PY" ] || { echo "install.sh: FAILED at step: find python3 (not on PATH)" >&2; exit 1; }
  run_step "check Python version ($PY)" python_ok "$PY"
else
  run_step "check Python version ($(command -v python3))" python_ok python3
  if [ ! -x .venv/bin/python ]; then
    run_step "create virtual environment .venv" python3 -m venv .venv
  else
    echo "==> reuse virtual environment .venv"
  fi
  PY="$PWD/.venv/bin/python"
fi

run_step "upgrade pip" "$PY" -m pip install --quiet --upgrade pip
run_step "install pinned requirements (requirements.txt)" "$PY" -m pip install --quiet -r requirements.txt
run_step "compile the rasterizer kernel (renderer/kernels/build.py)" "$PY" renderer/kernels/build.py
run_step "load the compiled kernel" "$PY" -c "import renderer; renderer.load_op(); print('    rasterizer op loads')"

echo
echo "Installed. Python: $PY"
echo "Run the tests:        .venv/bin/python -m pytest tests"
echo "Reconstruct a photo:  ./run_test.sh [PHOTO_OR_FOLDER]"
