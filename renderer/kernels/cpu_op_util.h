// Helpers of the ops' CPU kernels (rasterize_op.cc, interpolate_op.cc,
// normals_op.cc, shading_op.cc, group_norm_op.cc): work split over
// TensorFlow's intra-op CPU thread pool.
#ifndef FACE3D_RENDERER_KERNELS_CPU_OP_UTIL_H_
#define FACE3D_RENDERER_KERNELS_CPU_OP_UTIL_H_

#include <cstdint>
#include <functional>

#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/util/work_sharder.h"

namespace face3d {
namespace cpu_op {

// work(begin, end) over [0, units) in shards on the op's CPU worker threads;
// cost_per_unit (rough cycles) tells the sharder how finely to split.
inline void RunSharded(::tensorflow::OpKernelContext* context, int64_t units,
                       int64_t cost_per_unit,
                       const std::function<void(int64_t, int64_t)>& work) {
  auto* workers = context->device()->tensorflow_cpu_worker_threads();
  ::tensorflow::Shard(workers->num_threads, workers->workers, units, cost_per_unit, work);
}

// work(unit) for each unit of [0, units), sharded as RunSharded.
inline void RunPerUnit(::tensorflow::OpKernelContext* context, int64_t units,
                       int64_t cost_per_unit, const std::function<void(int64_t)>& work) {
  RunSharded(context, units, cost_per_unit, [&](int64_t begin, int64_t end) {
    for (int64_t unit = begin; unit < end; ++unit) work(unit);
  });
}

}  // namespace cpu_op
}  // namespace face3d

#endif  // FACE3D_RENDERER_KERNELS_CPU_OP_UTIL_H_
