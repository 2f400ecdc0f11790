"""The training-data tfrecord schema: one `tf.train.Example` per face crop.

Written by `preprocess/make_tfrecords.py` (photos) and `preprocess/synthesize.py` (synthetic
faces); read by `model/data.py`. This module holds only constants, so that writers running in
worker processes need not import TensorFlow.

Keys, types and shapes (every float is float32):
  image                 bytes    PNG or JPEG, RGB, CROP_SIZE x CROP_SIZE x 3
  landmarks             float[136]  68 (x, y) continuous pixels of the crop, dlib order
  segmentation          bytes    PNG, uint8 labels CROP_SIZE x CROP_SIZE (SEGMENTATION_LABELS)
  source/filename       bytes    photo path (photos) or "synthetic/<seed>/<index>" (synthetic)
  crop/matrix           float[6] row-major 2x3 affine, original photo pixels -> crop pixels
                                 (identity for synthetic samples, rendered in crop space)
Synthetic samples add ground truth:
  gt/coefficients       float[C] the face model's coefficient vector (C = FaceModel.coeff_size:
                                 identity | expression | albedo | pose 6 | light 27)
  gt/displacement       float[S*S] UV displacement map in the layout of model/face/uv_layout.py
                                 (UVLayout(face_model, S)), millimetres along the coarse surface
                                 normal (outward positive), row-major, row 0 = v = 1 (top of the
                                 UV image); the map as rendered (zero outside the detail mask)
  gt/displacement_size  int64    S
  gt/points_px          float[3N] the coarse model vertices in crop space: (u, v, depth) per
                                 vertex, pixels, as FaceModel.project returns them
"""
from model.face.framing import CROP_SIZE

IMAGE = "image"
LANDMARKS = "landmarks"
SEGMENTATION = "segmentation"
SOURCE_FILENAME = "source/filename"
CROP_MATRIX = "crop/matrix"
GT_COEFFICIENTS = "gt/coefficients"
GT_DISPLACEMENT = "gt/displacement"
GT_DISPLACEMENT_SIZE = "gt/displacement_size"
GT_POINTS_PX = "gt/points_px"

REQUIRED_KEYS = (IMAGE, LANDMARKS, SEGMENTATION, SOURCE_FILENAME, CROP_MATRIX)
GROUND_TRUTH_KEYS = (GT_COEFFICIENTS, GT_DISPLACEMENT, GT_DISPLACEMENT_SIZE, GT_POINTS_PX)

NUM_LANDMARKS = 68
IMAGE_SHAPE = (CROP_SIZE, CROP_SIZE, 3)

BACKGROUND = 0
SKIN = 1
NOSE = 2
EYES = 3
BROWS = 4
LIPS = 5
MOUTH_INTERIOR = 6
OTHER = 7
SEGMENTATION_LABELS = {
    BACKGROUND: "background", SKIN: "skin", NOSE: "nose", EYES: "eyes", BROWS: "brows",
    LIPS: "lips", MOUTH_INTERIOR: "mouth interior", OTHER: "other",
}
NUM_SEGMENTATION_LABELS = len(SEGMENTATION_LABELS)

SHARD_SUFFIX = ".tfrecord"
