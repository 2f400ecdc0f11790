// Triangle rasterization in clip space: the plain C++ core of the rasterizer op.
//
// No TensorFlow in here, so the core can be compiled and tested alone and later
// twinned for CUDA. Every function works on one image (one batch element) and a
// band of its rows, so callers parallelise over batch elements and row bands
// without locks: bands of one image write disjoint pixels, and gradient bands
// accumulate into buffers of their own.
//
// Conventions (shared with renderer/rasterizer.py):
//  * Clip-space vertices are [vertex_count, 4] floats (x, y, z, w), OpenGL style:
//    NDC = xyz / w, x right, y up, z into the screen (smaller NDC z is closer).
//  * Images are row-major [height, width]; row 0 is the top of the image
//    (NDC y = +1). Pixel (row r, column c) is sampled at its centre,
//    NDC x = 2 (c + 0.5) / width - 1, NDC y = 1 - 2 (r + 0.5) / height.
//  * Front faces are counter-clockwise in NDC (x right, y up).
//  * A pixel belongs to a triangle when its centre is inside or on the edge.
//    Triangles that share an edge compute that edge's function as exact
//    negatives of each other, so meshes have no cracks and no double coverage;
//    a pixel exactly on a shared edge goes to the depth test, and on equal
//    depth the triangle with the larger id wins.
//  * Pixels whose NDC depth lies outside [-1, 1] are not drawn (near and far
//    clipping per pixel).
//  * Triangles whose vertices all project within the fast path's range (w > 0
//    and 1 / w in [2^-40, 2^40], see rasterize_pixel.h) take the fast path, in
//    pixel coordinates. The others (a vertex at or behind the eye, w outside
//    that range, or a million pixels away) take a slow path with homogeneous
//    edge functions in double (Olano and Greer, "Triangle Scan Conversion
//    using 2D Homogeneous Coordinates", 1997), which draws exactly their part
//    in front of the eye; it tests the pixels of the bounding box of the
//    triangle clipped to the view frustum.
//  * The per-pixel arithmetic lives in rasterize_pixel.h, shared with the
//    CUDA twin (rasterize_cuda.cu).
#ifndef FACE3D_RENDERER_KERNELS_RASTERIZE_CORE_H_
#define FACE3D_RENDERER_KERNELS_RASTERIZE_CORE_H_

#include <cstdint>

#include "rasterize_pixel.h"

namespace face3d {

// Returns the index of the first triangle with a vertex index outside
// [0, vertex_count), or -1 when all are valid.
int64_t FindInvalidTriangle(const int32_t* triangles, int64_t triangle_count,
                            int64_t vertex_count);

// Projects clip-space vertices [vertex_count, 4] for an image of the given
// size (ProjectVertex, in 4-float vectors). A vertex that is non-finite, has
// 1 / w outside [kMinFastInvW, kMaxFastInvW] (at or behind the eye, too near
// or too far), or projects a million pixels or more away gets x = y =
// +infinity, sending its triangles to the slow path.
void ProjectVertices(const float* clip, int64_t vertex_count, int width,
                     int height, ProjectedVertex* projected);

// Rasterizes `triangles` [triangle_count, 3] (indices already validated) into
// rows [row_begin, row_end) of one image. Clears those rows first.
// Outputs (whole-image pointers): triangle_ids [height, width] (0 where
// uncovered), mask [height, width] (1 covered, 0 not), barycentrics
// [height, width, 3] perspective-correct (0 where uncovered), depth
// [height, width] NDC z (kBackgroundDepth where uncovered).
// Triangles with a non-finite vertex are dropped; with cull_backfaces,
// clockwise (back-facing) triangles are dropped too.
void RasterizeRows(const float* clip, const ProjectedVertex* projected,
                   const int32_t* triangles, int64_t triangle_count, int width,
                   int height, int row_begin, int row_end, bool cull_backfaces,
                   int32_t* triangle_ids, float* mask, float* barycentrics,
                   float* depth);

// Adds the gradient of a loss through the barycentrics and depth of rows
// [row_begin, row_end), given d_barycentrics [height, width, 3] and d_depth
// [height, width] (either may be null, meaning zero), to two accumulators of
// [vertex_count, 4] floats: d_projected, with respect to each vertex's
// projected (x, y, z, inv_w), from fast-path pixels; and d_clip_slow, with
// respect to clip (x, y, z, w), from slow-path pixels. Coverage (which
// triangle a pixel shows) is held fixed, as in any rasterizer gradient.
// d_clip_slow may be null: the function then returns false, having stopped,
// at the first slow-path pixel (the caller retries with a buffer, after
// zeroing d_projected again); otherwise it returns true.
bool AccumulateGradientRows(const float* clip, const ProjectedVertex* projected,
                            const int32_t* triangles,
                            const int32_t* triangle_ids, const float* mask,
                            const float* d_barycentrics, const float* d_depth,
                            int width, int height, int row_begin, int row_end,
                            float* d_projected, float* d_clip_slow);

// For vertices [vertex_begin, vertex_end) of one image, writes d_clip
// [vertex_count, 4]: the sums over `band_count` accumulators of
// AccumulateGradientRows, d_projected[band] chained through the projection
// plus d_clip_slow[band] (d_clip_slow or any of its entries may be null,
// meaning zeros). d_clip may be
// d_projected[0]: each vertex is read before it is written.
void FinishGradient(const float* clip, const float* const* d_projected,
                    const float* const* d_clip_slow, int band_count,
                    int64_t vertex_begin, int64_t vertex_end, int width,
                    int height, float* d_clip);

}  // namespace face3d

#endif  // FACE3D_RENDERER_KERNELS_RASTERIZE_CORE_H_
