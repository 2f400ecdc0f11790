#!/usr/bin/env bash
# Trains the coarse stage (train.py --stage=coarse). Edit the settings below, as with the paper's code.
#
#   ./run_train.sh [--flag=value ...]   train; resumes from the latest checkpoint in CHECKPOINT_DIR;
#                                        extra flags go to train.py
#
# Without tfrecords in DATA_DIR it first writes NUM_SYNTHETIC synthetic faces there with
# preprocess/synthesize.py. Real photos: run preprocess/make_tfrecords.py into a folder and name it
# in PHOTO_DIR; its records are then mixed with DATA_DIR's (DATA_RATIO: photos' weight last).
# The fine stage is added by a later issue.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")" && pwd)"
cd "$ROOT"

# ---- settings ----
DATA_DIR=data/synthetic
NUM_SYNTHETIC=2000
SYNTHETIC_SEED=1
PHOTO_DIR=                # make_tfrecords.py output to mix in (empty = synthetic faces only)
DATA_RATIO=               # sampling weights DATA_DIR,PHOTO_DIR, e.g. 1,2 (empty = by record counts)
CHECKPOINT_DIR=results/coarse
BACKBONE=compact
VGG_FACE_PATH=            # MatConvNet vgg-face.mat: turns the perceptual loss on (empty = off)
STEP=2000
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
# ------------------
# Every other train.py flag keeps its default (train.py --helpfull lists them: batch size, learning
# rate schedule, loss weights, ...); to change one, add it here or pass it: ./run_train.sh --batch_size=8

export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
if ! compgen -G "$DATA_DIR/*.tfrecord" > /dev/null; then
  echo "run_train.sh: no tfrecords in $DATA_DIR; synthesizing $NUM_SYNTHETIC faces first"
  "$PYTHON" -m preprocess.synthesize --num="$NUM_SYNTHETIC" --out="$DATA_DIR" --seed="$SYNTHETIC_SEED"
fi

"$PYTHON" train.py --stage=coarse --data_dir="$DATA_DIR${PHOTO_DIR:+,$PHOTO_DIR}" \
  --data_ratio="$DATA_RATIO" --checkpoint_dir="$CHECKPOINT_DIR" \
  --backbone="$BACKBONE" --vgg_face_path="$VGG_FACE_PATH" --step="$STEP" "$@"
