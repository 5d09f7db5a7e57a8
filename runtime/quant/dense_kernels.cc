#include "quant/dense_kernels.h"

#include "quant/dense_tiles.h"

namespace famq::quant {

DenseKernels GetDenseKernels(Isa isa) {
  switch (isa) {
#if defined(FAMQ_HAVE_X86_KERNELS)
    case Isa::kAvx2: return famq_dense_kernels__avx2();
    case Isa::kAvx512Vnni: return famq_dense_kernels__avx512();
#endif
    // 16-byte vectors: 4 x 8 floats and 4 x 4 doubles per register tile (8
    // accumulators: SSE2's 16 registers, NEON's 32).
    default: return dense::Instantiate<4, 4, 2, 2, 4, 2>();
  }
}

DenseKernels ActiveDenseKernels() {
  const Result<Isa> isa = ActiveIsa();
  return GetDenseKernels(isa.ok() ? isa.value() : Isa::kRef);
}

}  // namespace famq::quant
