// CPU loops of bilinear sampling; the arithmetic is in sample_core.h.
#include "sample_core.h"

namespace face3d {
namespace {

// kChannels > 0 fixes the channel count at compile time (the channel loops
// unroll); 0 reads it from params.
template <int kChannels>
void ForwardLoop(const SampleParams& p, int64_t item_begin, int64_t item_end, float* out) {
  const int channels = kChannels > 0 ? kChannels : p.channels;
  const int64_t image_size = p.pixels() * channels;
  if (item_begin >= item_end) return;  // (also: no samples, no division by 0)
  // Image by image (no division per sample).
  for (int64_t b = item_begin / p.samples, item = item_begin; item < item_end; ++b) {
    const float* image = p.images + b * image_size;
    const int64_t image_end = (b + 1) * p.samples < item_end ? (b + 1) * p.samples : item_end;
    for (; item < image_end; ++item) {
      const SampleTap tap = SampleTapAt(p.positions + 2 * item, p.height, p.width);
      SampleOne(image, tap, p.width, channels, out + item * channels);
    }
  }
}

template <int kChannels>
void BackwardLoop(const SampleParams& p, const float* d_out, int64_t item_begin,
                  int64_t item_end, float* d_images, float* d_positions) {
  const int channels = kChannels > 0 ? kChannels : p.channels;
  const int64_t image_size = p.pixels() * channels;
  if (item_begin >= item_end) return;
  for (int64_t b = item_begin / p.samples, item = item_begin; item < item_end; ++b) {
    const float* image = p.images + b * image_size;
    float* d_image = d_images + b * image_size;
    const int64_t image_end = (b + 1) * p.samples < item_end ? (b + 1) * p.samples : item_end;
    for (; item < image_end; ++item) {
      const SampleTap tap = SampleTapAt(p.positions + 2 * item, p.height, p.width);
      SampleOneGradient(image, tap, p.width, channels, d_out + item * channels, d_image,
                        d_positions + 2 * item);
    }
  }
}

}  // namespace

void BilinearSampleForward(const SampleParams& params, int64_t item_begin, int64_t item_end,
                           float* out) {
  switch (params.channels) {
    case 1: return ForwardLoop<1>(params, item_begin, item_end, out);
    case 3: return ForwardLoop<3>(params, item_begin, item_end, out);
    case 4: return ForwardLoop<4>(params, item_begin, item_end, out);
    case 6: return ForwardLoop<6>(params, item_begin, item_end, out);
    default: return ForwardLoop<0>(params, item_begin, item_end, out);
  }
}

void BilinearSampleBackward(const SampleParams& params, const float* d_out, int64_t item_begin,
                            int64_t item_end, float* d_images, float* d_positions) {
  switch (params.channels) {
    case 1: return BackwardLoop<1>(params, d_out, item_begin, item_end, d_images, d_positions);
    case 3: return BackwardLoop<3>(params, d_out, item_begin, item_end, d_images, d_positions);
    case 4: return BackwardLoop<4>(params, d_out, item_begin, item_end, d_images, d_positions);
    case 6: return BackwardLoop<6>(params, d_out, item_begin, item_end, d_images, d_positions);
    default:
      return BackwardLoop<0>(params, d_out, item_begin, item_end, d_images, d_positions);
  }
}

}  // namespace face3d
