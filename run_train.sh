#!/usr/bin/env bash
# Trains the coarse stage (train.py --stage=coarse). Edit the settings below, as with the paper's code.
#
#   ./run_train.sh          train; resumes from the latest checkpoint in CHECKPOINT_DIR
#
# Without tfrecords in DATA_DIR it first writes NUM_SYNTHETIC synthetic faces there with
# preprocess/synthesize.py (for real photos, run preprocess/make_tfrecords.py into DATA_DIR instead).
# The fine stage is added by a later issue.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")" && pwd)"
cd "$ROOT"

# ---- settings ----
DATA_DIR=data/synthetic
NUM_SYNTHETIC=4000
SYNTHETIC_SEED=1
CHECKPOINT_DIR=results/coarse
BACKBONE=compact
VGG_FACE_PATH=            # MatConvNet vgg-face.mat: turns the perceptual loss on (empty = off)
BATCH_SIZE=16
LEARNING_RATE=5e-4
LR_DECAY_STEP=1000
LR_DECAY_RATE=0.8
MIN_LEARNING_RATE=1e-6
GRADIENT_CLIP=1.0
STEP=4000
SAVE_STEP=250
LOG_STEP=20
PHOTO_WEIGHT=1.9
LANDMARK_WEIGHT=1.6e-3
PERCEPTUAL_WEIGHT=0.2
ID_WEIGHT=1e-3
EXP_WEIGHT=8e-4
TEX_WEIGHT=1e-3
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
# ------------------

export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
if ! compgen -G "$DATA_DIR/*.tfrecord" > /dev/null; then
  echo "run_train.sh: no tfrecords in $DATA_DIR; synthesizing $NUM_SYNTHETIC faces first"
  "$PYTHON" -m preprocess.synthesize --num="$NUM_SYNTHETIC" --out="$DATA_DIR" --seed="$SYNTHETIC_SEED"
fi

"$PYTHON" train.py --stage=coarse \
  --data_dir="$DATA_DIR" --checkpoint_dir="$CHECKPOINT_DIR" \
  --backbone="$BACKBONE" --vgg_face_path="$VGG_FACE_PATH" \
  --batch_size="$BATCH_SIZE" --learning_rate="$LEARNING_RATE" \
  --lr_decay_step="$LR_DECAY_STEP" --lr_decay_rate="$LR_DECAY_RATE" \
  --min_learning_rate="$MIN_LEARNING_RATE" --gradient_clip="$GRADIENT_CLIP" \
  --step="$STEP" --save_step="$SAVE_STEP" --log_step="$LOG_STEP" \
  --photo_weight="$PHOTO_WEIGHT" --landmark_weight="$LANDMARK_WEIGHT" \
  --perceptual_weight="$PERCEPTUAL_WEIGHT" --id_weight="$ID_WEIGHT" \
  --exp_weight="$EXP_WEIGHT" --tex_weight="$TEX_WEIGHT"
