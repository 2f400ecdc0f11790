#!/usr/bin/env bash
# Trains the coarse stage, then the fine network's supervised warm start, then the fine stage on top
# of both (train.py --stage=coarse, --stage=fine --fine_pretrain, --stage=fine --fine_init).
# Edit the settings below, as with the paper's code.
#
#   ./run_train.sh [--flag=value ...]   train both stages; each resumes from the latest checkpoint in
#                                        its CHECKPOINT_DIR; extra flags go to every train.py run
#   STAGES=fine ./run_train.sh           one stage only (STAGES="coarse pretrain fine" is the default)
#
# The fine stage starts from the coarse stage's export, $COARSE_CHECKPOINT_DIR/network (set
# FINE_COARSE_CHECKPOINT=results/release/coarse to build on the released coarse network instead).
# Without tfrecords in DATA_DIR it first writes NUM_SYNTHETIC synthetic faces there with
# preprocess/synthesize.py. Real photos: run preprocess/make_tfrecords.py into a folder and name it
# in PHOTO_DIR; its records are then mixed with DATA_DIR's (DATA_RATIO: photos' weight last), in
# both stages. The pretrain stage (synthetic records only) trains the fine network supervised on the
# ground-truth coarse faces: PRETRAIN_PLAIN_STEP steps on PRETRAIN_PLAIN_DIR (plain synthetic faces,
# written there first if missing), then on to PRETRAIN_STEP on DATA_DIR; the fine stage starts its
# network from that export when it exists (results/README.md: from scratch it learns only the
# average map).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")" && pwd)"
cd "$ROOT"

# ---- settings ----
STAGES="${STAGES:-coarse pretrain fine}"
DATA_DIR="${DATA_DIR:-data/synthetic}"   # or DATA_DIR=... ./run_train.sh
NUM_SYNTHETIC=6000
SYNTHETIC_SEED=1
SYNTHETIC_FLAGS="--max_pitch=30 --max_roll=35"   # synthesize.py flags of DATA_DIR's faces (defaults: pitch 20, roll 15; real heads tilt further)
PHOTO_DIR=                # make_tfrecords.py output to mix in (empty = synthetic faces only)
DATA_RATIO=               # sampling weights DATA_DIR,PHOTO_DIR, e.g. 1,2 (empty = by record counts)
# coarse stage
COARSE_CHECKPOINT_DIR=results/coarse
BACKBONE=compact
VGG_FACE_PATH=            # MatConvNet vgg-face.mat: turns the perceptual loss on (empty = off)
COARSE_STEP=5000
GT_SHAPE_WEIGHT=0.05      # synthetic shape supervision, per mm^2 (not in the paper: 0 = self-supervised only)
# fine network's warm start (pretrain stage)
PRETRAIN_CHECKPOINT_DIR=results/fine_pretrain
PRETRAIN_PLAIN_DIR=data/synthetic_plain   # preprocess/synthesize.py --plain (no appearance options)
NUM_PLAIN=2000
PRETRAIN_PLAIN_STEP=600   # steps on the plain faces, then on DATA_DIR up to PRETRAIN_STEP
PRETRAIN_STEP=1000
PRETRAIN_LEARNING_RATE=1e-3
# fine stage
FINE_CHECKPOINT_DIR=results/fine
FINE_COARSE_CHECKPOINT="${FINE_COARSE_CHECKPOINT:-$COARSE_CHECKPOINT_DIR/network}"
UV_SIZE=256               # 512 as the paper (4 x the work per step)
MAX_CHANNELS=128          # 512 = the paper's U-Net widths (a 66 MB network at UV 256)
MAX_DISPLACEMENT=1.0      # mm (the paper's; with GT_DISP_WEIGHT=0 use 0.25: the synthetic detail is ~0.05 mm RMS)
DISPLACEMENT_DIRECTION=normal   # or z, as the paper
DISPLACEMENT_HIGHPASS=0   # texels: the map minus its Gaussian blur of this sigma (0 = the paper's free map; 4 without GT_DISP_WEIGHT)
PHOTO_WEIGHTS="--fine_photo_weight=0 --photo_gain_weight=1"   # gain-normalised photometric term (the paper: 1 and 0)
TRAIN_COARSE=false        # true: fine-tune the coarse network too
FINE_BATCH_SIZE=4         # the paper: 48
FINE_LEARNING_RATE=1e-3   # the paper: 1e-5, x 0.99 every 5,000 steps (1e-4 learns only the average map here)
SHADING_CUE=true          # the network also reads how the coarse shading answers a slope (not in the paper)
FINE_STEP=6000            # the paper: 10,001 (results/README.md: 1,500 steps 0.79 x no detail, 3,000 0.75 x, 6,000 0.73 x)
GT_DISP_WEIGHT=1e5        # synthetic detail supervision, per mm^2 (not in the paper: 0 = self-supervised only)
GT_CHART=own              # where that supervision compares: own = the true detail where the photo shows it, in the
                          # coarse face's chart; true = the records' map in the true face's chart
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
# ------------------
# Every other train.py flag keeps its default (train.py --helpfull lists them: learning rate
# schedule, loss weights, ...); to change one, add it here or pass it: ./run_train.sh --save_step=100

for stage in $STAGES; do
  case "$stage" in coarse|pretrain|fine) ;; *) echo "run_train.sh: STAGES holds '$stage'; the stages are coarse, pretrain and fine" >&2; exit 2;; esac
done

export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
if ! compgen -G "$DATA_DIR/*.tfrecord" > /dev/null; then
  echo "run_train.sh: no tfrecords in $DATA_DIR; synthesizing $NUM_SYNTHETIC faces first"
  "$PYTHON" -m preprocess.synthesize --num="$NUM_SYNTHETIC" --out="$DATA_DIR" --seed="$SYNTHETIC_SEED" $SYNTHETIC_FLAGS
fi

for stage in $STAGES; do
  if [ "$stage" = coarse ]; then
    echo "run_train.sh: coarse stage -> $COARSE_CHECKPOINT_DIR"
    "$PYTHON" train.py --stage=coarse --data_dir="$DATA_DIR${PHOTO_DIR:+,$PHOTO_DIR}" --data_ratio="$DATA_RATIO" \
      --checkpoint_dir="$COARSE_CHECKPOINT_DIR" \
      --backbone="$BACKBONE" --vgg_face_path="$VGG_FACE_PATH" --gt_shape_weight="$GT_SHAPE_WEIGHT" \
      --step="$COARSE_STEP" "$@"
  elif [ "$stage" = pretrain ]; then
    if ! compgen -G "$PRETRAIN_PLAIN_DIR/*.tfrecord" > /dev/null; then
      echo "run_train.sh: no tfrecords in $PRETRAIN_PLAIN_DIR; synthesizing $NUM_PLAIN plain faces first"
      "$PYTHON" -m preprocess.synthesize --plain --num="$NUM_PLAIN" --out="$PRETRAIN_PLAIN_DIR" --seed="$SYNTHETIC_SEED"
    fi
    pretrain_flags=(--stage=fine --fine_pretrain --checkpoint_dir="$PRETRAIN_CHECKPOINT_DIR"
      --coarse_checkpoint="$FINE_COARSE_CHECKPOINT" --uv_size="$UV_SIZE" --max_channels="$MAX_CHANNELS"
      --max_displacement="$MAX_DISPLACEMENT" --displacement_direction="$DISPLACEMENT_DIRECTION"
      --displacement_highpass="$DISPLACEMENT_HIGHPASS" --shading_cue="$SHADING_CUE"
      --batch_size="$FINE_BATCH_SIZE" --learning_rate="$PRETRAIN_LEARNING_RATE")
    echo "run_train.sh: fine warm start on $PRETRAIN_PLAIN_DIR, then $DATA_DIR -> $PRETRAIN_CHECKPOINT_DIR"
    "$PYTHON" train.py "${pretrain_flags[@]}" --data_dir="$PRETRAIN_PLAIN_DIR" --step="$PRETRAIN_PLAIN_STEP" "$@"
    "$PYTHON" train.py "${pretrain_flags[@]}" --data_dir="$DATA_DIR" --step="$PRETRAIN_STEP" "$@"
  else
    FINE_INIT=
    if [ -d "$PRETRAIN_CHECKPOINT_DIR/network" ]; then FINE_INIT="$PRETRAIN_CHECKPOINT_DIR/network"; fi
    echo "run_train.sh: fine stage on $FINE_COARSE_CHECKPOINT${FINE_INIT:+, network from $FINE_INIT} -> $FINE_CHECKPOINT_DIR"
    "$PYTHON" train.py --stage=fine --data_dir="$DATA_DIR${PHOTO_DIR:+,$PHOTO_DIR}" --data_ratio="$DATA_RATIO" \
      --checkpoint_dir="$FINE_CHECKPOINT_DIR" \
      --coarse_checkpoint="$FINE_COARSE_CHECKPOINT" --uv_size="$UV_SIZE" --max_channels="$MAX_CHANNELS" \
      --max_displacement="$MAX_DISPLACEMENT" --displacement_direction="$DISPLACEMENT_DIRECTION" \
      --displacement_highpass="$DISPLACEMENT_HIGHPASS" $PHOTO_WEIGHTS \
      --train_coarse="$TRAIN_COARSE" --batch_size="$FINE_BATCH_SIZE" --learning_rate="$FINE_LEARNING_RATE" \
      --gt_disp_weight="$GT_DISP_WEIGHT" --gt_chart="$GT_CHART" --shading_cue="$SHADING_CUE" \
      --fine_init="$FINE_INIT" --step="$FINE_STEP" "$@"
  fi
done
