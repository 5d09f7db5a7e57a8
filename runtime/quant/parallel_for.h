// ParallelFor: the quantization kernels' one way onto a pthreadpool. Tasks
// own disjoint outputs, so a result never depends on how many threads ran
// it (nor on the order they ran in). Internal to runtime/quant.
#pragma once

#include <pthreadpool.h>

#include <cstddef>
#include <type_traits>

namespace famq::quant {

// Runs f(i) for every i in [0, n): on `pool`'s threads, or inline when pool
// is null, has one thread, or n <= 1.
template <class F>
void ParallelFor(pthreadpool_t pool, size_t n, F&& f) {
  if (pool == nullptr || n <= 1 || pthreadpool_get_threads_count(pool) <= 1) {
    for (size_t i = 0; i < n; ++i) f(i);
    return;
  }
  using Fn = std::remove_reference_t<F>;
  pthreadpool_parallelize_1d(
      pool, [](void* context, size_t i) { (*static_cast<Fn*>(context))(i); },
      const_cast<void*>(static_cast<const void*>(&f)), n, /*flags=*/0);
}

}  // namespace famq::quant
