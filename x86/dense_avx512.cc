// MatMulF32 and GemmF64 with 64-byte vectors (runtime/quant/dense_tiles.h
// is the code and says why the bits equal the portable build's). Compiled
// with -mavx512f -ffp-contract=off: products are rounded before they are added.
#include "quant/dense_kernels.h"
#include "quant/dense_tiles.h"

namespace famq::quant {

// 8 x 32 floats, 8 x 16 doubles: 16 accumulators of the 32 zmm registers.
DenseKernels famq_dense_kernels__avx512() { return dense::Instantiate<16, 8, 2, 8, 8, 2>(); }

}  // namespace famq::quant
