"""How much of the synthetic ground-truth detail is pore noise (below the image's resolution)?

    python bench/detail_pore_share.py [N]

For N (default 100) random maps of preprocess/detail.py at map size 256 and each pore RMS range
(the generator's and the one before), prints the maps' RMS over the detail mask (4 texels in from
its edge, as bench/fine_detail_check.py), the RMS without the pores (the same draws), the pores'
share of the mean square, and sqrt(that share): the RMS error, relative to predicting zero, of a
prediction that gets everything but the pores exactly right.
"""
import os, sys
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import numpy as np
from model.face import FaceModel
from model.face.uv_layout import UVLayout
from preprocess import detail

num = int(sys.argv[1]) if len(sys.argv) > 1 else 100
face_model = FaceModel()
layout = UVLayout(face_model, detail.DEFAULT_MAP_SIZE)
landmark_uv = np.asarray(face_model.uv)[np.asarray(face_model.landmarks68)]
inner = layout.mask & (layout.taper > 0.99)
for pores in (detail.PORE_RMS_RANGE_MM, (0.01, 0.04)):
    full, bare = [], []
    for i in range(num):
        full.append(np.mean((detail.displacement_map(np.random.default_rng(i), landmark_uv,
                                                     pore_rms_range=pores) * layout.taper)[inner] ** 2))
        bare.append(np.mean((detail.displacement_map(np.random.default_rng(i), landmark_uv,
                                                     pore_rms_range=(0.0, 0.0)) * layout.taper)[inner] ** 2))
    share = 1.0 - np.mean(bare) / np.mean(full)
    print("pores %s mm: rms %.4f mm, without pores %.4f mm, pores' share of the mean square %.2f, "
          "error of a pore-blind perfect prediction %.2f x zero's"
          % (pores, np.sqrt(np.mean(full)), np.sqrt(np.mean(bare)), share, np.sqrt(share)))
