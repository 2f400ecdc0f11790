"""The model mesh as a fixed linear function of the hm08 base mesh: the face cut, subdivision,
hole fills and the mirror map.

The front of the head is cut out of the body mesh along a smooth curve (CUT_*): an ellipse in
(azimuth, elevation) seen from the middle of the head, from the forehead to below the chin and
round to the ears. The base quads that reach inside it are subdivided once (edge midpoints
and centre, four quads, eight triangles each) and the triangles are clipped by the curve, so the
outline runs across the triangles instead of along the quads' edges (which rendered as a
sawtooth). Every model vertex is a fixed linear combination of base vertices (a midpoint, a
centre, a point on a clipped edge), so morph targets carry over exactly, and the hm08 mirror
table extends exactly to the new vertices (the cut is mirror-symmetric).
"""
import collections

import numpy as np
import scipy.sparse
import scipy.sparse.csgraph

from model.face.builder.assets import quad_labels

# The face cut, in base-mesh units (decimetres, y up, z forward): a point belongs to the face
# when |azimuth / CUT_HALF_AZIMUTH|^3 + ((elevation - CUT_MID_ELEVATION) / CUT_HALF_ELEVATION)^2
# < 1 (the cube keeps the sides near the ears over more of the height), both angles seen from
# CUT_CENTRE (x = 0, y, z: the middle of the head at ear height): azimuth about the vertical,
# 0 straight ahead; elevation above the horizontal. Angles from inside the head cross the
# face's surface at a steep angle everywhere; a cut by height alone grazes the underside of
# the chin and zigzags there.
CUT_CENTRE = np.array([0.0, 7.15, 0.55])
CUT_HALF_AZIMUTH = np.deg2rad(80.0)
CUT_MID_ELEVATION = np.deg2rad(-5.0)
CUT_HALF_ELEVATION = np.deg2rad(55.0)
# A clipped edge whose cut point falls within this fraction of its length from an end is cut at
# that end instead, so that no sliver triangles line the outline.
CUT_SNAP = 0.3
CAVITY_DEPTH = 0.25  # mouth cavity quads kept: within this depth behind its front (decimetres)


def cut_value(points):
    """The face cut's implicit function [P] at base-frame points [P, 3]: negative inside."""
    p = points - CUT_CENTRE
    azimuth = np.arctan2(p[:, 0], p[:, 2])
    elevation = np.arctan2(p[:, 1], np.hypot(p[:, 0], p[:, 2]))
    return (np.abs(azimuth / CUT_HALF_AZIMUTH) ** 3
            + ((elevation - CUT_MID_ELEVATION) / CUT_HALF_ELEVATION) ** 2 - 1.0)


def select_face_quads(assets):
    """Indices [Q] into assets.quads of the body quads that reach inside the face cut, largest
    connected piece (FaceTopology clips them to the cut).

    Mouth-cavity quads deeper than CAVITY_DEPTH behind the cavity's front are dropped. The rules
    are mirror-symmetric, so the selection is symmetric.
    """
    corners = assets.vertices[assets.quads]
    inside = cut_value(corners.reshape(-1, 3)).reshape(corners.shape[:2]) < 0
    body = assets.groups == "body"
    selected = body & inside.any(axis=1)
    # The mouth cavity runs back into the throat, which the cut leaves open below the chin: a
    # face pitched up then shows the cavity's inside under the chin. Keep only its front part,
    # behind the lips; the fan that closes its cut (FaceTopology) faces into the mouth, so from
    # outside the head only back faces of the cavity remain (culled by the renderer).
    cavity = quad_labels(assets, assets.quad_texcoords) == "mouth_cavity"
    front = corners[..., 2][selected & cavity].max()
    selected &= ~(cavity & (corners[..., 2].min(axis=1) < front - CAVITY_DEPTH))
    ids = np.flatnonzero(selected)
    quads = assets.quads[ids]
    labels = component_labels(np.concatenate([quads[:, :3], quads[:, [0, 2, 3]]]), len(assets.vertices))
    largest = np.bincount(labels[quads[:, 0]]).argmax()
    return ids[labels[quads[:, 0]] == largest]


def component_labels(triangles, num_vertices):
    """Connected-component label [num_vertices] of each vertex of a triangle (or quad) list."""
    edges = np.concatenate([triangles[:, [i, (i + 1) % triangles.shape[1]]]
                            for i in range(triangles.shape[1])])
    adjacency = scipy.sparse.coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])),
                                        (num_vertices, num_vertices))
    return scipy.sparse.csgraph.connected_components(adjacency, directed=False)[1]


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


def subdivide(quads):
    """Each quad into four (edge midpoints and centre), each of those into two triangles.

    Returns (keys, rows, triangles [T, 3], owner [T]): keys maps ("v", b) / ("e", b0, b1) /
    ("f", b0..b3) (sorted base ids) to the vertex id, rows[i] its (base id, weight) list, owner
    the index of each triangle's quad.
    """
    keys, rows = {}, []

    def vertex(key, weights):
        if key not in keys:
            keys[key] = len(rows)
            rows.append(weights)
        return keys[key]

    triangles, owner = [], []
    for q, quad in enumerate(quads):
        c = [vertex(("v", b), [(b, 1.0)]) for b in quad]
        m = [vertex(("e",) + tuple(sorted((quad[i], quad[(i + 1) % 4]))),
                    [(quad[i], 0.5), (quad[(i + 1) % 4], 0.5)]) for i in range(4)]
        centre = vertex(("f",) + tuple(sorted(quad)), [(b, 0.25) for b in quad])
        for i in range(4):
            sub = (c[i], m[i], centre, m[(i - 1) % 4])
            triangles += [(sub[0], sub[1], sub[2]), (sub[0], sub[2], sub[3])]
            owner += [q, q]
    return keys, rows, np.array(triangles, dtype=np.int64), np.array(owner)


def clip_triangles(triangles, values):
    """Clips triangles [T, 3] to {values <= 0} (values [N], one per vertex).

    Returns (triangles [T', 3] with new vertex ids N + k for the cut points, cut_edges [K, 2]
    (vertex pairs a < b), cut_t [K] (the cut point is (1 - t) a + t b), source [T'] (the input
    triangle each came from)). Orientation is kept. Cut points shared by two triangles are
    one vertex.
    """
    n = len(values)
    cuts = {}

    def cut(a, b):
        a, b = min(a, b), max(a, b)
        if (a, b) not in cuts:
            cuts[(a, b)] = (n + len(cuts), values[a] / (values[a] - values[b]))
        return cuts[(a, b)][0]

    out, source = [], []
    for k, tri in enumerate(triangles):
        f = values[tri]
        if (f <= 0).all():
            out.append(tri)
            source.append(k)
            continue
        if (f >= 0).all():
            continue
        polygon = []
        for i in range(3):
            a, b = tri[i], tri[(i + 1) % 3]
            if values[a] <= 0:
                polygon.append(a)
            if values[a] * values[b] < 0:
                polygon.append(cut(a, b))
        for i in range(1, len(polygon) - 1):
            out.append((polygon[0], polygon[i], polygon[i + 1]))
            source.append(k)
    edges = np.array(sorted(cuts, key=lambda e: cuts[e][0]), dtype=np.int64).reshape(-1, 2)
    t = np.array([cuts[tuple(e)][1] for e in edges])
    return np.array(out, dtype=np.int64), edges, t, np.array(source)


def snap_to_cut(triangles, values):
    """Values [N] with 0 at the vertices that a cut point would fall within CUT_SNAP of."""
    edges = np.unique(np.sort(np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]],
                                              triangles[:, [2, 0]]]), axis=1), axis=0)
    fa, fb = values[edges[:, 0]], values[edges[:, 1]]
    crossing = fa * fb < 0
    t = np.where(crossing, fa / np.where(crossing, fa - fb, 1.0), 0.5)
    values = values.copy()
    values[edges[crossing & (t < CUT_SNAP), 0]] = 0.0
    values[edges[crossing & (t > 1 - CUT_SNAP), 1]] = 0.0
    return values


class FaceTopology:
    """The model mesh as a linear function of the base mesh.

    Attributes:
      base_ids: [B] base-mesh vertex ids used by the model.
      S: sparse [N, B] so that model vertices = S @ base_vertices[base_ids].
      triangles: [T, 3] int32, counter-clockwise seen from the front.
      mirror: [N] model vertex id of each vertex's mirror twin.
      base_quad_of_triangle: [T] index into the selected quads (-1 for hole fills).
      outer_loop: the outline's vertex ids, in the faces' edge order.
    """

    def __init__(self, quads, base_vertices, base_mirror):
        """quads [Q, 4] base-mesh vertex ids (select_face_quads); base_vertices [V, 3] the base
        mesh (decimetres), base_mirror [V] its mirror table."""
        self.base_ids = np.unique(quads)
        local = np.full(len(base_vertices), -1)
        local[self.base_ids] = np.arange(len(self.base_ids))
        keys, rows, triangles, owner = subdivide(quads)
        S = scipy.sparse.csr_matrix(
            ([w for row in rows for _, w in row],
             ([i for i, row in enumerate(rows) for _ in row], [local[b] for row in rows for b, _ in row])),
            shape=(len(rows), len(self.base_ids)))

        def mirror_key(key):
            return (key[0],) + tuple(sorted(int(base_mirror[b]) for b in key[1:]))

        mirror = np.array([keys[mirror_key(k)] for k in sorted(keys, key=keys.get)])
        # The cut function, made exactly symmetric (the mirror twins' values averaged), so that
        # the clipped mesh is exactly mirror-symmetric too.
        values = cut_value(S @ base_vertices[self.base_ids])
        values = snap_to_cut(triangles, 0.5 * (values + values[mirror]))
        triangles, cut_edges, cut_t, source = clip_triangles(triangles, values)
        owner = owner[source]
        weights = scipy.sparse.coo_matrix(
            (np.concatenate([1 - cut_t, cut_t]),
             (np.tile(np.arange(len(cut_edges)), 2), np.concatenate([cut_edges[:, 0], cut_edges[:, 1]]))),
            shape=(len(cut_edges), S.shape[0]))
        S = scipy.sparse.vstack([S, weights @ S]).tocsr()
        cut_ids = {tuple(e): len(mirror) + i for i, e in enumerate(cut_edges)}
        mirror = np.concatenate([mirror, [cut_ids[tuple(sorted(mirror[e]))] for e in cut_edges]])
        # Keep the largest connected piece and renumber its vertices.
        labels = component_labels(triangles, S.shape[0])
        largest = np.bincount(labels[triangles[:, 0]]).argmax()
        keep_triangles = labels[triangles[:, 0]] == largest
        triangles, owner = triangles[keep_triangles], owner[keep_triangles]
        used = np.unique(triangles)
        new_id = np.full(S.shape[0], -1)
        new_id[used] = np.arange(len(used))
        if (new_id[mirror[used]] < 0).any():
            raise ValueError("the face cut is not mirror-symmetric")
        triangles, mirror, S = new_id[triangles], new_id[mirror[used]], S[used]

        loops = boundary_loops(triangles)
        loops.sort(key=len)
        self.outer_loop = loops.pop()
        num_cut_vertices = S.shape[0]
        fills = []
        for loop in loops:
            centre = S.shape[0]
            S = scipy.sparse.vstack([S, scipy.sparse.csr_matrix(S[loop].mean(axis=0))]).tocsr()
            # A hole's border runs against the faces around it; the fill runs the other way.
            fills += [(loop[(i + 1) % len(loop)], loop[i], centre) for i in range(len(loop))]
            mirror = np.append(mirror, centre)
        for i, loop in enumerate(loops):
            twin = [j for j, other in enumerate(loops) if set(mirror[loop]) == set(other)]
            mirror[num_cut_vertices + i] = num_cut_vertices + twin[0]
        self.S = S
        self.triangles = np.concatenate([triangles, np.array(fills, dtype=np.int64).reshape(-1, 3)])
        self.triangles = self.triangles.astype(np.int32)
        self.base_quad_of_triangle = np.concatenate([owner, -np.ones(len(fills), dtype=np.int64)])
        self.mirror = mirror
        self.num_vertices = S.shape[0]

    def apply(self, base_field):
        """Maps a per-base-vertex field [num_base_vertices, C] to the model vertices [N, C]."""
        return self.S @ base_field[self.base_ids]


def target_offsets(assets, topology, name):
    """A morph target on the model vertices: [N, 3] in base-mesh units."""
    ids, offsets = assets.target(name)
    dense = np.zeros((len(assets.vertices), 3))
    dense[ids] = offsets
    return topology.apply(dense)


def vertices_only_in(triangles, num_vertices, triangle_selected):
    """Bool [N]: vertices all of whose triangles are selected."""
    outside = np.zeros(num_vertices, dtype=bool)
    outside[triangles[~triangle_selected].ravel()] = True
    inside = np.zeros(num_vertices, dtype=bool)
    inside[triangles[triangle_selected].ravel()] = True
    return inside & ~outside
