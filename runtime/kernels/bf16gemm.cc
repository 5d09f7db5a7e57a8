// The BF16-weight GEMM: the scalar reference (the specification in
// bf16gemm.h) and the ISA dispatch.
#include "kernels/bf16gemm.h"

#include <cstring>

namespace famq {

void famq_bf16w_f32_gemm__ref(const uint8_t* w, size_t in, size_t r0, size_t r1, const float* x, size_t batch,
                              const float* bias, float* y, size_t y_stride) {
  for (size_t t = 0; t < batch; ++t) {
    const float* xt = x + t * in;
    for (size_t r = r0; r < r1; ++r) {
      const uint8_t* row = w + r * in * 2;
      float acc = 0.0f;
      for (size_t k = 0; k < in; ++k) {
        uint16_t h;
        std::memcpy(&h, row + 2 * k, sizeof h);
        const uint32_t bits = static_cast<uint32_t>(h) << 16;
        float wk;
        std::memcpy(&wk, &bits, sizeof wk);
        acc += xt[k] * wk;
      }
      y[t * y_stride + r] = bias != nullptr ? acc + bias[r] : acc;
    }
  }
}

Bf16GemmFn GetBf16GemmFn(Isa isa) {
  switch (isa) {
#if defined(FAMQ_HAVE_X86_KERNELS)
    case Isa::kAvx2: return famq_bf16w_f32_gemm__avx2;
    case Isa::kAvx512Vnni: return famq_bf16w_f32_gemm__avx512;
#endif
#if defined(FAMQ_HAVE_ARM_KERNELS)
    case Isa::kNeon:
    case Isa::kNeonDot: return famq_bf16w_f32_gemm__neon;
#endif
    default: return famq_bf16w_f32_gemm__ref;
  }
}

}  // namespace famq
