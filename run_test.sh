#!/usr/bin/env bash
# Reconstructs the faces of photos with the coarse stage (see test.py for the outputs).
#
#   ./run_test.sh                          the example photo resources/examples/astronaut.png
#   ./run_test.sh PHOTO_OR_FOLDER [OUT]    your photos; results in OUT (default results/test)
#
# Uses the released checkpoint results/release/coarse unless CHECKPOINT is set, then FIT_STEPS steps of
# test-time fitting (model/fitting.py; FIT_STEPS=0 keeps the network alone). The fine stage is
# added by a later issue.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")" && pwd)"

# ---- settings ----
INPUT="${1:-$ROOT/resources/examples/astronaut.png}"
OUTPUT_DIR="${2:-$ROOT/results/test}"
CHECKPOINT="${CHECKPOINT:-$ROOT/results/release/coarse}"
BACKBONE=compact
DETECTOR=hog
FIT_STEPS="${FIT_STEPS:-50}"   # test-time fitting steps after the network (0 = the network alone)
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
# ------------------

export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
exec "$PYTHON" "$ROOT/test.py" --input="$INPUT" --output_dir="$OUTPUT_DIR" \
  --checkpoint="$CHECKPOINT" --backbone="$BACKBONE" --detector="$DETECTOR" --fit_steps="$FIT_STEPS"
