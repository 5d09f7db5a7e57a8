// MatMulF32 and GemmF64 with 32-byte vectors (runtime/quant/dense_tiles.h
// is the code and says why the bits equal the portable build's). Compiled
// with -mavx2 -ffp-contract=off: products are rounded before they are added.
#include "quant/dense_kernels.h"
#include "quant/dense_tiles.h"

namespace famq::quant {

// 4 x 16 floats, 4 x 8 doubles: 8 accumulators of the 16 ymm registers.
DenseKernels famq_dense_kernels__avx2() { return dense::Instantiate<8, 4, 2, 4, 4, 2>(); }

}  // namespace famq::quant
