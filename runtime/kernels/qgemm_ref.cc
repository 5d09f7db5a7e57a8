// Scalar reference of the weight-only kernels: the specification of qgemm.h
// written out literally. Every SIMD kernel is tested against these.
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "kernels/qgemm.h"

namespace famq {

void famq_qd8_f32_quantize__ref(size_t k, const float* x, int8_t* qx, float* sx, int32_t* qsum) {
  for (size_t b = 0; b < k / kQBlock; ++b) {
    const float* xb = x + b * kQBlock;
    int8_t* qb = qx + b * kQBlock;
    float amax = 0.0f;
    for (int j = 0; j < kQBlock; ++j) amax = std::fmax(amax, std::fabs(xb[j]));
    // Written as a negated >= so that a NaN amax also gives a zero block.
    if (!(amax >= kQMinBlockAmax)) {
      for (int j = 0; j < kQBlock; ++j) qb[j] = 0;
      sx[b] = 0.0f;
      qsum[b] = 0;
      continue;
    }
    const float inv = 127.0f / amax;
    int32_t sum = 0;
    for (int j = 0; j < kQBlock; ++j) {
      // fmax/fmin before the cast: a NaN or out-of-range value never reaches
      // the float -> int conversion (undefined behaviour).
      const float v = std::fmin(std::fmax(std::nearbyint(xb[j] * inv), -127.0f), 127.0f);
      qb[j] = static_cast<int8_t>(v);
      sum += qb[j];
    }
    sx[b] = amax / 127.0f;
    qsum[b] = sum;
  }
}

namespace {

// Reads the canonical layout (packing {1, false, 0}): codes [n][k] int8, one
// scale and one int8 zero point per (row, group).
void GemmRef(const QGemmWeights* w, const QGemmActivations* a, size_t m, size_t tile_begin, size_t tile_end,
             const float* bias, float* y, size_t y_stride) {
  const size_t k = w->cols;
  const size_t blocks = k / kQBlock;
  const size_t groups = blocks / w->blocks_per_group;
  const size_t row_end = tile_end < w->rows ? tile_end : w->rows;
  for (size_t r = tile_begin; r < row_end; ++r) {
    const int8_t* codes = reinterpret_cast<const int8_t*>(w->codes) + r * k;
    const float* scales = w->scales + r * groups;
    const int8_t* zeros = reinterpret_cast<const int8_t*>(w->offsets) + r * groups;
    for (size_t i = 0; i < m; ++i) {
      const int8_t* qx = a->qx + i * a->qx_stride;
      const float* sx = a->sx + i * blocks;
      const int32_t* qsum = a->qsum + i * blocks;
      float acc = 0.0f;
      for (size_t b = 0; b < blocks; ++b) {
        const size_t g = b / w->blocks_per_group;
        int32_t dot = 0;
        for (size_t j = b * kQBlock; j < (b + 1) * kQBlock; ++j) dot += int32_t{qx[j]} * int32_t{codes[j]};
        const int32_t t = dot - int32_t{zeros[g]} * qsum[b];
        acc += (scales[g] * sx[b]) * static_cast<float>(t);
      }
      y[i * y_stride + r] = bias != nullptr ? acc + bias[r] : acc;
    }
  }
}

}  // namespace

// 4- and 8-bit codes share the canonical int8 layout, hence one loop.
void famq_q4w_f32_gemm__ref(const QGemmWeights* w, const QGemmActivations* a, size_t m, size_t tile_begin,
                            size_t tile_end, const float* bias, float* y, size_t y_stride) {
  GemmRef(w, a, m, tile_begin, tile_end, bias, y, y_stride);
}

void famq_q8w_f32_gemm__ref(const QGemmWeights* w, const QGemmActivations* a, size_t m, size_t tile_begin,
                            size_t tile_end, const float* bias, float* y, size_t y_stride) {
  GemmRef(w, a, m, tile_begin, tile_end, bias, y, y_stride);
}

}  // namespace famq
