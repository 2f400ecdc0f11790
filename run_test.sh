#!/usr/bin/env bash
# Reconstructs the faces of photos: coarse stage, test-time fitting, and the fine stage's detail when
# a fine checkpoint is there (see test.py for the outputs).
#
#   ./run_test.sh                          the example photo resources/examples/astronaut.png
#   ./run_test.sh PHOTO_OR_FOLDER [OUT]    your photos; results in OUT (default results/test)
#
# Uses the released checkpoint (results/release/fine when it exists, else results/release/coarse)
# unless CHECKPOINT is set (its stage config stage.json gives the stage, the backbone and names the
# face model it needs); STAGE=coarse writes the coarse results only (also from a fine checkpoint),
# STAGE=fine insists on the detail. FIT_STEPS steps of test-time fitting (model/fitting.py;
# FIT_STEPS=0 keeps the network alone) come before the fine network.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")" && pwd)"

# ---- settings ----
INPUT="${1:-$ROOT/resources/examples/astronaut.png}"
OUTPUT_DIR="${2:-$ROOT/results/test}"
CHECKPOINT="${CHECKPOINT:-}"   # empty = the released one of STAGE
STAGE="${STAGE:-auto}"         # auto (the checkpoint's), coarse or fine
DETECTOR=hog
FIT_STEPS="${FIT_STEPS:-50}"   # test-time fitting steps after the network (0 = the network alone)
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
# ------------------

export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
exec "$PYTHON" "$ROOT/test.py" --input="$INPUT" --output_dir="$OUTPUT_DIR" \
  --checkpoint="$CHECKPOINT" --stage="$STAGE" --detector="$DETECTOR" --fit_steps="$FIT_STEPS"
