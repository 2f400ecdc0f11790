"""The face model: everything that defines "a face" for the rest of the project.

  model/face/model.py        FaceModel: the morphable model's graph ops (coefficients -> mesh)
  model/face/file_format.py  the .npz file format: REQUIRED_KEYS, the one writer, the reader
  model/face/framing.py      the crop framing rule (300 x 300 crop from 68 landmarks)
  model/face/landmarks68.py  the 68-point iBUG layout, its groups and its mirror permutation
  model/face/uv_layout.py    UVLayout: texel tables, detail mask, dense grid mesh of a map size
  model/face/builder/        library of the model builders (resources/build_face_model.py, ...)

Dependencies point one way: renderer <- model.face <- {model networks, preprocess, resources}.
Nothing here imports preprocess/ or the networks, and TensorFlow is imported only by graph ops,
so that preprocessing workers can use the crop rule and read a model without it.
"""
from model.face.file_format import REGION_NAMES, REQUIRED_KEYS, save_face_model
from model.face.framing import CROP_SIZE, ENCODER_SIZE
from model.face.model import (COEFFICIENT_PARTS, DEFAULT_PATH, NUM_LIGHT, NUM_POSE,
                              FaceModel)

__all__ = ["COEFFICIENT_PARTS", "CROP_SIZE", "DEFAULT_PATH", "ENCODER_SIZE", "FaceModel",
           "NUM_LIGHT", "NUM_POSE", "REGION_NAMES", "REQUIRED_KEYS", "save_face_model"]
