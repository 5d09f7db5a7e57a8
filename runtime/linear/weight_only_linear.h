// A linear layer y = x W^T (+ b) with W quantized group-wise to 2, 3, 4 or 8 bits
// (2 and 3 bits are held and run as 8-bit codes; weight-only: activations
// stay fp32 at the interface and are quantized to int8 per block of 32
// inside, see the specification in qgemm.h).
//
// Create packs W once for one ISA's kernels and allocates all scratch; Run
// then never allocates. Run is not reentrant: one object serves one thread of
// control at a time (its scratch holds the quantized activations).
#pragma once

#include <pthreadpool.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "core/aligned_buffer.h"
#include "core/huge_page_arena.h"
#include "core/status.h"
#include "kernels/isa.h"
#include "kernels/qgemm.h"
#include "kernels/qgemm_pack.h"
#include "core/qmatrix.h"

namespace famq {

class WeightOnlyLinear {
 public:
  // w: the quantized weights [out_features][in_features]; copied (packed),
  //    not referenced afterwards.
  // bias: out_features floats, or empty for none; copied.
  // max_batch: the largest batch Run will be given (>= 1); sizes the scratch.
  // isa: whose kernels to use, normally ActiveIsa().
  // name: the layer's name, prefixed to every error message.
  // Returns: the layer; InvalidArgument for a malformed or unsupported shape
  // of w (see ValidateQMatrix), a bias of the wrong length or max_batch < 1;
  // Unsupported when isa is not available here; OutOfMemory when packing or
  // scratch cannot be allocated.
  static Result<WeightOnlyLinear> Create(const QMatrix& w, std::span<const float> bias, int max_batch, Isa isa,
                                         const std::string& name);
  // The same from weights read in place (a quantized model's record, see
  // QMatrixView; ValidateQMatrixView's checks), packed on `pack_pool`'s
  // threads (nullptr: inline). The view is not referenced afterwards.
  // arena: where the packed weights go (shared by an engine's linears, kept
  // alive by each of them); nullptr: a buffer of their own.
  static Result<WeightOnlyLinear> Create(const QMatrixView& w, std::span<const float> bias, int max_batch, Isa isa,
                                         const std::string& name, pthreadpool_t pack_pool,
                                         std::shared_ptr<HugePageArena> arena = nullptr);

  WeightOnlyLinear(WeightOnlyLinear&&) noexcept = default;
  WeightOnlyLinear& operator=(WeightOnlyLinear&&) noexcept = default;
  WeightOnlyLinear(const WeightOnlyLinear&) = delete;
  WeightOnlyLinear& operator=(const WeightOnlyLinear&) = delete;
  ~WeightOnlyLinear() = default;

  // x: [batch][in_features] floats; y: [batch][out_features] floats, written
  // in full; they must not overlap. batch: rows, <= max_batch (0 does
  // nothing). pool: parallelizes over output-row tiles; nullptr runs inline.
  // Does not allocate.
  // Returns: Ok; InvalidArgument when batch > max_batch or x/y is null.
  Status Run(const float* x, float* y, size_t batch, pthreadpool_t pool) const;

  int in_features() const { return in_features_; }
  int out_features() const { return out_features_; }
  int bits() const { return bits_; }
  Isa isa() const { return kernels_->isa; }
  // Bytes of packed weights a run streams: codes, scales, zero-point offsets.
  size_t packed_bytes() const { return packed_bytes_; }
  // The packed weights, to read rows back (DequantPackedRow); valid while
  // this object lives (moving it keeps them valid).
  QGemmPackedRows packed_rows() const;

 private:
  WeightOnlyLinear() = default;

  const QGemmKernels* kernels_ = nullptr;
  QGemmFn gemm_ = nullptr;
  QGemmWeights weights_{};  // points into packed_
  size_t tiles_ = 0;
  size_t tile_rows_ = 0;
  QGemmPacking packing_{};
  int in_features_ = 0;
  int out_features_ = 0;
  int bits_ = 0;
  int max_batch_ = 0;
  size_t packed_bytes_ = 0;
  const float* bias_ = nullptr;  // padded to tiles_ * tile_rows_, in packed_; nullptr: none
  // codes | scales | offsets | bias: an AlignedBuffer's or an arena's, kept alive by this pointer.
  std::shared_ptr<void> packed_owner_;
  AlignedBuffer scratch_;        // qx [max_batch][qx_stride] | sx | qsum [max_batch][blocks]
  int8_t* qx_ = nullptr;
  float* sx_ = nullptr;
  int32_t* qsum_ = nullptr;
  size_t qx_stride_ = 0;
  std::string name_;
};

}  // namespace famq
