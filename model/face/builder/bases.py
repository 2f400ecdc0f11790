"""Identity and expression bases of the default model, from MakeHuman morph targets.

Identity: PCA of random MakeHuman mixes (macro targets as MakeHuman weights them, face targets
with signed random weights, left/right targets tied), translation, overall size and rotation
removed (the size and rotation directions of the mean face are projected out of every target
offset before the PCA: under the scaled-orthographic camera a uniformly larger face is the same
image at a smaller camera scale, and a slightly rotated face the same image at a rotated pose, so
they are the camera's, not the identity's; see `remove_camera_directions`). Expression: the face
units as independent activations uniform in [0, 1]; principal directions of their second-moment
matrix, so coefficient 0 is the neutral face.
"""
import collections

import numpy as np

from model.face.builder.assets import MM_PER_UNIT
from model.face.builder.topology import target_offsets

FACE_TARGET_GROUPS = ("nose", "mouth", "chin", "cheek", "eyes", "eyebrows", "forehead", "head")
ETHNICITIES = ("african", "asian", "caucasian")
# Face targets come in opposing pairs (decr/incr, down/up, ...): a signed weight drawn from this
# normal (clipped to [-1, 1]) picks one side. Singletons (head shapes) get |weight|.
FACE_TARGET_SIGMA = 0.4
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


# The directions a camera change makes of the mean face, which no image can tell from a change
# of identity: overall size (the scaled-orthographic camera's scale) and the three rotations
# (the pose; translation is removed from every target already).
CAMERA_DIRECTIONS = ("size", "pitch", "yaw", "roll")


def camera_directions(mean_shape, mask):
    """[4, N, 3]: the displacement fields of a unit scaling and of unit rotations about x, y, z of
    `mean_shape` about the centroid of its `mask` vertices (CAMERA_DIRECTIONS order)."""
    centred = mean_shape - mean_shape[mask].mean(axis=0)
    return np.stack([centred] + [np.cross(axis, centred) for axis in np.eye(3)])


def remove_camera_directions(offsets, mean_shape, mask):
    """Projects size and rotation of `mean_shape` out of each offset: [M, 3N] -> [M, 3N].

    With D the fields of `camera_directions` (a face scaled by (1 + e) about the masked centroid c
    is X + e D_size; rotated by a small angle w about axis k, X + w D_k), each offset o loses its
    least-squares fit by them over the masked vertices, o - sum_j a_j D_j with
    a = argmin |o - sum_j a_j D_j|^2 over the mask (the rotations are not mutually orthogonal, so a
    joint fit), then its mean translation over all vertices again (the D_j have none over the mask;
    a translation is orthogonal to every D_j over the mask, so this keeps the first property).
    Afterwards every mix Y = X + sum_j w_j o_j is aligned to X by the identity transform to first
    order: the least-squares scale of Y relative to X about c over the mask is exactly
    1 + <Y - X, D_size> / <D_size, D_size> = 1 (D_size is orthogonal to the rotations), and the
    linearised least-squares rotation is exactly 0.

    Args:
      offsets: [M, 3N] translation-free target offsets (mm, xyz interleaved).
      mean_shape: [N, 3] the model's mean shape.
      mask: bool [N]: the vertices the camera sees (the model's face regions).
    Returns the projected offsets and, per offset, the fraction of its squared norm over the mask
    that was removed ([M]).
    """
    num_vertices = len(mean_shape)
    o = offsets.reshape(len(offsets), num_vertices, 3)
    fields = camera_directions(mean_shape, mask)
    masked = fields[:, mask].reshape(len(fields), -1)
    o_masked = o[:, mask].reshape(len(o), -1)
    fit = np.linalg.solve(masked @ masked.T, masked @ o_masked.T).T  # [M, 4]
    removed = np.sum((fit @ masked) ** 2, axis=1) / np.maximum(np.sum(o_masked ** 2, axis=1), 1e-300)
    projected = o - np.einsum("mj,jvk->mvk", fit, fields)
    return remove_translation(projected.reshape(len(offsets), -1), num_vertices), removed


def identity_samples(assets, topology, num_samples, rng):
    """The identity population: weights [S, M] of M target offsets [M, 3N] (mm, translation-free).

    Returns (offsets, weights, target names); sample s is weights[s] @ offsets.
    """
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
    return offsets, weights, names


def identity_basis(offsets, weights, num_components, mean_shape, mask):
    """The identity basis: PCA of the population with size and rotation projected out.

    The PCA is of the projected samples (not a projection of the PCA's basis), so the columns are
    orthogonal principal directions of the projected population times its true standard
    deviations, and the kept components are the largest of that population.
    Returns basis [3N, K], variances of all components of the projected population, and dict
    direction -> fraction of the population's variance over the `mask` vertices along that
    direction before the projection (CAMERA_DIRECTIONS, and "all" for the four together).
    """
    projected, _ = remove_camera_directions(offsets, mean_shape, mask)
    _, basis, variances = pca_of_mixes(projected, weights, num_components)
    fields = camera_directions(mean_shape, mask)[:, mask].reshape(len(CAMERA_DIRECTIONS), -1)
    o = offsets.reshape(len(offsets), len(mean_shape), 3)[:, mask].reshape(len(offsets), -1)
    centred = weights - weights.mean(axis=0)  # samples over the mask: centred @ o, never formed
    total = np.sum((centred.T @ centred) * (o @ o.T))
    fractions = {}
    for name, field in zip(CAMERA_DIRECTIONS, fields):
        fractions[name] = float(np.sum((centred @ (o @ field)) ** 2) / (field @ field) / total)
    q, _ = np.linalg.qr(fields.T)
    fractions["all"] = float(np.sum((centred @ (o @ q)) ** 2) / total)
    return basis, variances, fractions


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



def explained(variances, k):
    return float(np.sum(variances[:k]) / np.sum(variances))

