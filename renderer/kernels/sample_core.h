// Bilinear sampling of images at continuous pixel positions: the plain C++
// core of the BilinearSample and BilinearSampleGrad ops (model/face/unwrap.py's
// bilinear_sample; the TensorFlow formula it replaced is tests/tf_reference.py's
// bilinear_sample_tf, the oracle).
//
// No TensorFlow in here. images [B, H, W, C] (H, W >= 2), positions [B, K, 2]
// (x, y) pixels, x right, y down, pixel (r, c) centred at (c + 0.5, r + 0.5).
// Per sample, in this order of float operations (the TensorFlow formula's):
//
//   x  = clamp(px - 0.5, 0, W - 1)          (min with W - 1, then max with 0)
//   x0 = min(floor(x), W - 2),  fx = x - x0,  gx = 1 - fx    (y likewise)
//   top    = gx a[y0][x0]     + fx a[y0][x0 + 1]
//   bottom = gx a[y0 + 1][x0] + fx a[y0 + 1][x0 + 1]
//   out    = gy top + fy bottom
//
// Every one of these is a single IEEE float operation that the TensorFlow
// version performs too, on the same operands and in the same order (build.py
// compiles without fused multiply-adds), so the forward is bit-identical to it.
//
// The gradient is what TensorFlow's autodiff of that formula gives: floor has
// none (x0 is a constant), clamping passes the gradient where
// 0 <= px - 0.5 <= W - 1 (both ends included: tf.minimum / tf.maximum's
// convention on ties) and none outside, so
//
//   d_top = gy g,  d_bottom = fy g
//   d_a[y0][x0] += gx d_top,  d_a[y0][x0 + 1] += fx d_top     (bottom alike)
//   d_fx = sum_c (d_top a01 - d_top a00) + sum_c (d_bottom a11 - d_bottom a10)
//   d_fy = sum_c g bottom - sum_c g top
//   d_px = d_fx where 0 <= px - 0.5 <= W - 1, else 0   (py likewise)
//
// equal to TensorFlow's to rounding (its channel sums and the accumulation of
// the scattered image gradient run in an order of its own).
//
// Non-finite positions: +-inf clamps to the border (zero position gradient).
// A sample with a NaN coordinate is NaN in every channel, its d_positions are
// NaN (both coordinates), and it adds nothing to d_images (it has no pixel).
#ifndef FACE3D_RENDERER_KERNELS_SAMPLE_CORE_H_
#define FACE3D_RENDERER_KERNELS_SAMPLE_CORE_H_

#include <cmath>
#include <cstdint>

#ifndef FACE3D_HOST_DEVICE
#if defined(__CUDACC__)
#define FACE3D_HOST_DEVICE __host__ __device__
#else
#define FACE3D_HOST_DEVICE
#endif
#endif

namespace face3d {

struct SampleParams {
  const float* images;     // [batch, height, width, channels]
  const float* positions;  // [batch, samples, 2]
  int64_t batch;
  int64_t samples;         // K, per image
  int64_t height, width;   // both >= 2 (and at most 2^24: exact as floats)
  int channels;
  int64_t pixels() const { return height * width; }
};

// Where one sample reads: the top-left corner's flat pixel index in its image,
// the fractions, and whether each coordinate is inside the clamp range (where
// the position gradient passes). valid is false for a NaN coordinate.
struct SampleTap {
  int64_t pixel;   // y0 * width + x0
  float fx, fy;
  bool pass_x, pass_y;
  bool valid;
};

// One coordinate: x = clamp(p - 0.5, 0, size - 1), x0 = min(floor(x), size - 2)
// (p not NaN). x is in [0, size - 1] (+0, not -0, at the low end) and size is at
// most 2^24, so floor(x) is the truncation to an integer, exactly: the same
// float as floorf, without its library call on baseline x86-64.
FACE3D_HOST_DEVICE inline void SampleAxis(float p, int64_t size, int64_t* index,
                                          float* fraction, bool* pass) {
  const float high = static_cast<float>(size - 1);
  const float shifted = p - 0.5f;
  float x = shifted < high ? shifted : high;  // tf.minimum
  x = x > 0.0f ? x : 0.0f;                    // tf.maximum
  *pass = shifted <= high && shifted >= 0.0f;
  int64_t x0 = static_cast<int64_t>(x);
  x0 = x0 < size - 2 ? x0 : size - 2;
  *index = x0;
  *fraction = x - static_cast<float>(x0);
}

FACE3D_HOST_DEVICE inline SampleTap SampleTapAt(const float* position, int64_t height,
                                                int64_t width) {
  SampleTap tap;
  const float px = position[0], py = position[1];
  tap.valid = !(px != px) && !(py != py);
  if (!tap.valid) {
    tap.pixel = 0;
    tap.fx = tap.fy = 0.0f;
    tap.pass_x = tap.pass_y = false;
    return tap;
  }
  int64_t ix, iy;
  SampleAxis(px, width, &ix, &tap.fx, &tap.pass_x);
  SampleAxis(py, height, &iy, &tap.fy, &tap.pass_y);
  tap.pixel = iy * width + ix;
  return tap;
}

// out[c] for one sample; image is the sample's image [height * width, channels].
FACE3D_HOST_DEVICE inline void SampleOne(const float* image, const SampleTap& tap,
                                         int64_t width, int channels, float* out) {
  if (!tap.valid) {
    for (int c = 0; c < channels; ++c) out[c] = NAN;
    return;
  }
  const float* a00 = image + tap.pixel * channels;
  const float* a01 = a00 + channels;
  const float* a10 = a00 + width * channels;
  const float* a11 = a10 + channels;
  const float fx = tap.fx, fy = tap.fy;
  const float gx = 1.0f - fx, gy = 1.0f - fy;
  for (int c = 0; c < channels; ++c) {
    const float top = gx * a00[c] + fx * a01[c];
    const float bottom = gx * a10[c] + fx * a11[c];
    out[c] = gy * top + fy * bottom;
  }
}

// The gradient of one sample given its upstream gradient g [channels]: writes
// d_position [2] and adds into d_image [height * width, channels] (nothing for
// a NaN sample) with plain +=: the caller keeps other samples of the image off
// it meanwhile (on the CPU, one thread per image; a CUDA twin would add
// atomically, or per image in sample order to keep the CPU's sums).
FACE3D_HOST_DEVICE inline void SampleOneGradient(const float* image, const SampleTap& tap,
                                                 int64_t width, int channels, const float* g,
                                                 float* d_image, float* d_position) {
  if (!tap.valid) {
    d_position[0] = d_position[1] = NAN;
    return;
  }
  const int64_t o00 = tap.pixel * channels;
  const int64_t o01 = o00 + channels;
  const int64_t o10 = o00 + width * channels;
  const int64_t o11 = o10 + channels;
  const float fx = tap.fx, fy = tap.fy;
  const float gx = 1.0f - fx, gy = 1.0f - fy;
  float top_00 = 0.0f, top_01 = 0.0f, bottom_10 = 0.0f, bottom_11 = 0.0f;
  float g_top = 0.0f, g_bottom = 0.0f;
  for (int c = 0; c < channels; ++c) {
    const float a00 = image[o00 + c], a01 = image[o01 + c];
    const float a10 = image[o10 + c], a11 = image[o11 + c];
    const float top = gx * a00 + fx * a01;
    const float bottom = gx * a10 + fx * a11;
    const float d_top = gy * g[c];
    const float d_bottom = fy * g[c];
    top_00 += d_top * a00;
    top_01 += d_top * a01;
    bottom_10 += d_bottom * a10;
    bottom_11 += d_bottom * a11;
    g_top += g[c] * top;
    g_bottom += g[c] * bottom;
    d_image[o00 + c] += gx * d_top;
    d_image[o01 + c] += fx * d_top;
    d_image[o10 + c] += gx * d_bottom;
    d_image[o11 + c] += fx * d_bottom;
  }
  const float d_fx = (top_01 - top_00) + (bottom_11 - bottom_10);
  const float d_fy = g_bottom - g_top;
  d_position[0] = tap.pass_x ? d_fx : 0.0f;
  d_position[1] = tap.pass_y ? d_fy : 0.0f;
}

// out [batch, samples, channels] for the work items [item_begin, item_end) of
// the whole batch (item = b * samples + k).
void BilinearSampleForward(const SampleParams& params, int64_t item_begin, int64_t item_end,
                           float* out);

// The gradient of the work items [item_begin, item_end) given d_out
// [batch, samples, channels]: writes their d_positions [batch, samples, 2] and
// adds their share into d_images [batch, height, width, channels] (not zeroed
// here). Items are visited in order, so the sums are deterministic; two calls
// at once must not hold items of the same image (they add into it).
void BilinearSampleBackward(const SampleParams& params, const float* d_out, int64_t item_begin,
                            int64_t item_end, float* d_images, float* d_positions);

}  // namespace face3d

#endif  // FACE3D_RENDERER_KERNELS_SAMPLE_CORE_H_
