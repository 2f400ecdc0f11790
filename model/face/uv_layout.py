"""The UV layout of a face model at one map size: what a displacement map's texels are on the face.

Built once per (face model, size) in NumPy; its graph ops are gathers and the renderer's fused
interpolation op, differentiable.

Conventions (shared/DESIGN.md): a map is S x S, row-major; texel (row r, col c) has its centre at
(u, v) = ((c + 0.5) / S, 1 - (r + 0.5) / S), so row 0 is the top of the UV image (v = 1). A
texel is covered when its centre lies in a UV triangle of the face model (the first one in
triangle order where triangles share an edge).

The detail mask holds the covered texels whose triangle lies in the skin, nose, lips or brows
(never touching an eye or the mouth interior), made mirror-symmetric. The face model's chart is
mirror-symmetric (mirror twins at mirrored u), so a texel's mirror texel is the one at column
S - 1 - c of the same row.

The dense grid mesh has one vertex per mask texel (in row-major texel order) and two triangles
per quad of four mask texels, counter-clockwise seen from the front like the face model's
triangles; each dense vertex lies on the coarse surface at its texel centre (barycentric
interpolation in the texel's triangle) and is displaced from there.
"""
import numpy as np

DETAIL_REGIONS = ("skin", "nose", "lips", "brows")
EXCLUDED_REGIONS = ("eyes", "mouth_interior")
# Width of the band inside the mask edge over which a displacement map fades to zero (texels):
# the dense mesh meets the coarse mesh there, so the two surfaces must agree at the seam.
TAPER_TEXELS = 3


def texel_centres(size):
    """[S, S, 2] (u, v) of every texel centre."""
    c = (np.arange(size) + 0.5) / size
    u, v = np.meshgrid(c, 1.0 - c)
    return np.stack([u, v], axis=-1)


def rasterize_uv(uv, triangles, size):
    """Per texel: triangle id [S, S] int32 (-1 where uncovered) and barycentrics [S, S, 3].

    uv [N, 2] in [0, 1]^2; triangles [T, 3] counter-clockwise in UV. A texel centre on a shared
    edge goes to the first triangle in order.
    """
    corners = uv[triangles] * size                                     # [T, 3, 2] texel units
    # Texel coordinates: x = u S (columns), y = (1 - v) S (rows), centres at +0.5.
    corners[..., 1] = size - corners[..., 1]
    low = np.clip(np.floor(corners.min(axis=1) - 0.5).astype(int), 0, size - 1)
    high = np.clip(np.ceil(corners.max(axis=1) - 0.5).astype(int), 0, size - 1)
    extent = high - low + 1                                            # [T, 2] texels
    a = corners[:, 0]
    m = np.stack([corners[:, 1] - a, corners[:, 2] - a], axis=-1)      # [T, 2, 2] columns
    det = m[:, 0, 0] * m[:, 1, 1] - m[:, 0, 1] * m[:, 1, 0]
    usable = np.abs(det) > 1e-14
    found_texel, found_triangle, found_weights = [], [], []
    # Triangles in chunks of similar bounding boxes, each chunk tested against the texels of
    # its largest box.
    order = np.argsort(extent.prod(axis=1), kind="stable")
    order = order[usable[order]]
    for chunk in np.array_split(order, max(1, len(order) // 1024)):
        if len(chunk) == 0:
            continue
        w, h = extent[chunk].max(axis=0)
        dy, dx = np.mgrid[0:h, 0:w]
        cols = low[chunk, 0][:, None] + dx.ravel()[None]               # [C, h w]
        rows = low[chunk, 1][:, None] + dy.ravel()[None]
        px = cols + 0.5 - a[chunk, 0][:, None]
        py = rows + 0.5 - a[chunk, 1][:, None]
        inv = 1.0 / det[chunk][:, None]
        mc = m[chunk]
        w1 = (mc[:, 1, 1][:, None] * px - mc[:, 0, 1][:, None] * py) * inv
        w2 = (-mc[:, 1, 0][:, None] * px + mc[:, 0, 0][:, None] * py) * inv
        w0 = 1.0 - w1 - w2
        inside = ((w0 >= -1e-9) & (w1 >= -1e-9) & (w2 >= -1e-9)
                  & (cols <= high[chunk, 0][:, None]) & (rows <= high[chunk, 1][:, None]))
        k, j = np.nonzero(inside)
        found_texel.append(rows[k, j] * size + cols[k, j])
        found_triangle.append(chunk[k])
        found_weights.append(np.stack([w0[k, j], w1[k, j], w2[k, j]], axis=1))
    texel = np.concatenate(found_texel)
    triangle = np.concatenate(found_triangle)
    weights = np.concatenate(found_weights)
    first = np.lexsort((triangle, texel))
    texel, triangle, weights = texel[first], triangle[first], weights[first]
    keep = np.concatenate([[True], texel[1:] != texel[:-1]])
    triangle_id = np.full(size * size, -1, dtype=np.int32)
    barycentrics = np.zeros((size * size, 3))
    triangle_id[texel[keep]] = triangle[keep]
    weights = np.clip(weights[keep], 0.0, 1.0)
    barycentrics[texel[keep]] = weights / weights.sum(axis=1, keepdims=True)
    return triangle_id.reshape(size, size), barycentrics.reshape(size, size, 3)


class UVLayout:
    """Texel tables, detail mask, mirror texels and the dense grid mesh of a face model at size S.

    Attributes:
      size: S.
      triangle_id: int32 [S, S], the face model triangle under each texel centre, -1 if none.
      barycentrics: float32 [S, S, 3] of the texel centre in that triangle (0 where uncovered).
      covered: bool [S, S], triangle_id >= 0.
      mask: bool [S, S], the detail mask (module docstring), mirror-symmetric.
      taper: float32 [S, S] in [0, 1]: 0 outside the mask and on its edge, rising to 1 over
        TAPER_TEXELS inside it; multiply a displacement map by it so the dense mesh meets the
        coarse one.
      mirror_texel: int32 [S, S], flat index (r S + c) of each texel's mirror texel.
      dense_texels: int32 [M], flat index of each dense-mesh vertex's texel (mask, row-major).
      dense_triangles: int32 [F, 3] into the M dense vertices.
      dense_uv: float32 [M, 2] texel centres.
      coarse_triangles_outside: int32 [T', 3], the face model triangles the dense mesh does not
        replace (those not lying wholly inside the mask's inner part); a render of the detailed
        face draws these and the dense mesh.
    """

    def __init__(self, face_model, size):
        if size < 8:
            raise ValueError("UV layout size must be at least 8, got %d" % size)
        self.size = size
        uv = np.asarray(face_model.uv, dtype=np.float64)
        triangles = np.asarray(face_model.triangles, dtype=np.int64)
        self._triangles = triangles.astype(np.int32)
        self.triangle_id, barycentrics = rasterize_uv(uv, triangles, size)
        self.barycentrics = barycentrics.astype(np.float32)
        self.covered = self.triangle_id >= 0
        regions = face_model.regions
        n = face_model.num_vertices
        detail = np.zeros(n, dtype=bool)
        for name in DETAIL_REGIONS:
            detail |= regions.get(name, np.zeros(n, dtype=bool))
        for name in EXCLUDED_REGIONS:
            detail &= ~regions.get(name, np.zeros(n, dtype=bool))
        detail_triangle = detail[triangles].all(axis=1)
        mask = self.covered & detail_triangle[np.maximum(self.triangle_id, 0)]
        self.mask = mask & mask[:, ::-1]
        rows, cols = np.mgrid[0:size, 0:size]
        self.mirror_texel = (rows * size + (size - 1 - cols)).astype(np.int32)
        self.dense_texels = np.flatnonzero(self.mask.ravel()).astype(np.int32)
        self.dense_uv = texel_centres(size).reshape(-1, 2)[self.dense_texels].astype(np.float32)
        self.dense_triangles = self._grid_triangles()
        self.taper = self._taper()
        self.coarse_triangles_outside = self._coarse_outside(uv, triangles)

    @property
    def triangles(self):
        """int32 [T, 3], the face model's triangles (what triangle_id indexes)."""
        return self._triangles

    @property
    def num_dense_vertices(self):
        return len(self.dense_texels)

    def _grid_triangles(self):
        s = self.size
        index = np.full(s * s, -1, dtype=np.int64)
        index[self.dense_texels] = np.arange(len(self.dense_texels))
        index = index.reshape(s, s)
        a, b = index[:-1, :-1], index[1:, :-1]       # (r, c), (r + 1, c)
        c, d = index[1:, 1:], index[:-1, 1:]         # (r + 1, c + 1), (r, c + 1)
        full = (a >= 0) & (b >= 0) & (c >= 0) & (d >= 0)
        # Rows run down (v falls), columns right (u grows): (r, c) -> (r+1, c) -> (r+1, c+1) is
        # counter-clockwise in (u, v), as the face model's triangles are.
        first = np.stack([a[full], b[full], c[full]], axis=1)
        second = np.stack([a[full], c[full], d[full]], axis=1)
        return np.concatenate([first, second]).astype(np.int32)

    def _inner(self, width):
        """Mask texels at least `width` texels (chessboard) inside the mask's edge."""
        from scipy import ndimage
        return ndimage.binary_erosion(self.mask, np.ones((3, 3), bool), iterations=width)

    def _taper(self):
        from scipy import ndimage
        distance = ndimage.distance_transform_edt(self.mask)
        return np.clip((distance - 1.0) / TAPER_TEXELS, 0.0, 1.0).astype(np.float32)

    def _coarse_outside(self, uv, triangles):
        """The face model triangles not lying wholly inside the mask's inner part (2 texels in)."""
        s = self.size
        inner = self._inner(2)
        table = np.zeros((s + 1, s + 1))
        table[1:, 1:] = np.cumsum(np.cumsum(inner, axis=0), axis=1)
        corners = uv[triangles] * s
        x0 = np.clip(np.floor(corners[..., 0].min(axis=1)).astype(int), 0, s - 1)
        x1 = np.clip(np.floor(corners[..., 0].max(axis=1)).astype(int), 0, s - 1)
        y0 = np.clip(np.floor(s - corners[..., 1].max(axis=1)).astype(int), 0, s - 1)
        y1 = np.clip(np.floor(s - corners[..., 1].min(axis=1)).astype(int), 0, s - 1)
        count = table[y1 + 1, x1 + 1] - table[y0, x1 + 1] - table[y1 + 1, x0] + table[y0, x0]
        inside = count == (x1 - x0 + 1) * (y1 - y0 + 1)
        return triangles[~inside].astype(np.int32)

    # ------------------------------------------------------------------ graph ops

    def interpolate_at_texels(self, attributes, flat_texels):
        """Per-vertex attributes [B, N, C] -> [B, K, C] at the centres of the texels flat_texels [K]
        (flat indices r S + c): barycentric interpolation in each texel's triangle, 0 on uncovered
        texels. float32: one fused op (renderer.interpolate, the rasterizer's; its gradient with
        respect to the attributes too) with the layout's triangle ids and barycentrics as a 1 x K
        image; another float type: a gather of the [B, K, 3, C] corners, weighted and summed."""
        import tensorflow.compat.v1 as tf
        import renderer
        attributes = tf.convert_to_tensor(attributes)
        flat_texels = np.asarray(flat_texels)
        ids = np.maximum(self.triangle_id.ravel()[flat_texels], 0).astype(np.int32)
        weights = self.barycentrics.reshape(-1, 3)[flat_texels]
        if attributes.dtype != tf.float32:
            gathered = tf.gather(attributes, self._triangles[ids], axis=1)                 # [B, K, 3, C]
            return tf.reduce_sum(gathered * weights.astype(attributes.dtype.as_numpy_dtype)[None, :, :, None], axis=2)
        batch = tf.shape(attributes)[0]
        pixels = renderer.Rasterized(tf.tile(ids[None, None], tf.stack([batch, 1, 1])), None,
                                     tf.tile(weights[None, None], tf.stack([batch, 1, 1, 1])), None)
        return renderer.interpolate(attributes, self._triangles, pixels)[:, 0]

    def dense_from_vertices(self, attributes):
        """Per-vertex attributes [B, N, C] -> the dense-mesh vertices [B, M, C] (barycentric
        interpolation at the mask texels' centres: positions, normals, albedo alike)."""
        return self.interpolate_at_texels(attributes, self.dense_texels)

    def vertices_to_uv(self, attributes):
        """Per-vertex attributes [B, N, C] -> UV image [B, S, S, C], interpolated at every covered
        texel's centre, 0 elsewhere."""
        import tensorflow.compat.v1 as tf
        values = self.interpolate_at_texels(attributes, np.arange(self.size * self.size))
        return tf.reshape(values, [-1, self.size, self.size, int(attributes.shape[-1])])

    def uv_to_dense(self, uv_image):
        """UV image [B, S, S, C] -> its values at the dense-mesh vertices [B, M, C]."""
        import tensorflow.compat.v1 as tf
        channels = uv_image.shape[-1]
        flat = tf.reshape(uv_image, [-1, self.size * self.size, channels])
        return tf.gather(flat, self.dense_texels, axis=1)

    def displaced_dense_vertices(self, vertices, normals, displacement):
        """The dense mesh displaced along the coarse surface's normals.

        Args:
          vertices: [B, N, 3] coarse vertices (mm); normals: [B, N, 3] their unit normals.
          displacement: [B, S, S] or [B, S, S, 1] map (mm, outward positive).
        Returns:
          [B, M, 3] dense vertices (mm): the coarse surface point at each mask texel plus the
          displacement along the interpolated, renormalised normal.
        """
        import tensorflow.compat.v1 as tf
        if displacement.shape.ndims == 3:
            displacement = displacement[..., tf.newaxis]
        base = self.dense_from_vertices(vertices)
        direction = tf.math.l2_normalize(self.dense_from_vertices(normals), axis=-1)
        return base + self.uv_to_dense(displacement) * direction

    def detail_normals(self, base, displaced, smooth_normals):
        """Unit shading normals [B, M, 3] of the displaced dense mesh.

        The dense vertices lie on the coarse mesh's flat triangles, so the dense mesh's own
        normals show the coarse facets; the coarse surface is shaded with smooth (interpolated)
        normals instead. This keeps that: the smooth normal plus what the displacement changes,
        normalise(smooth + n(displaced) - n(base)), n the dense mesh's vertex normals.

        Args:
          base: [B, M, 3] undisplaced dense vertices (dense_from_vertices of the coarse ones).
          displaced: [B, M, 3] displaced dense vertices.
          smooth_normals: [B, M, 3] interpolated coarse normals (dense_from_vertices).
        """
        import tensorflow.compat.v1 as tf
        from renderer import shading
        detail = (shading.vertex_normals(displaced, self.dense_triangles)
                  - shading.vertex_normals(base, self.dense_triangles))
        return tf.math.l2_normalize(smooth_normals + detail, axis=-1)
