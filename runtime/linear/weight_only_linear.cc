#include "linear/weight_only_linear.h"

#include <algorithm>
#include <cstring>

#include "kernels/qgemm_pack.h"

namespace famq {
namespace {

// Cache-line alignment for every array: vector loads never split lines, and
// neighbouring arrays never share one.
constexpr size_t kAlign = kCacheLine;

size_t RoundUp(size_t n, size_t to) { return (n + to - 1) / to * to; }

// The array of T at byte offset `at` of an AllocateAligned buffer; `at` is a
// multiple of kAlign, so the cast through void* (which -Wcast-align accepts on
// strict-alignment targets such as armv7) is aligned.
template <typename T>
T* ArrayAt(uint8_t* base, size_t at) {
  return static_cast<T*>(static_cast<void*>(base + at));
}

struct QuantizeTask {
  QuantizeRowFn quantize_row;
  const float* x;
  size_t k;
  int8_t* qx;
  size_t qx_stride;
  float* sx;
  int32_t* qsum;
};

void RunQuantizeRow(void* context, size_t i) {
  const auto* task = static_cast<const QuantizeTask*>(context);
  const size_t blocks = task->k / kQBlock;
  task->quantize_row(task->k, task->x + i * task->k, task->qx + i * task->qx_stride, task->sx + i * blocks,
                     task->qsum + i * blocks);
}

struct GemmTask {
  QGemmFn gemm;
  const QGemmWeights* weights;
  const QGemmActivations* activations;
  size_t m;
  size_t tiles;
  size_t tiles_per_item;
  const float* bias;
  float* y;
  size_t y_stride;
};

void RunGemmItem(void* context, size_t item) {
  const auto* task = static_cast<const GemmTask*>(context);
  const size_t begin = item * task->tiles_per_item;
  const size_t end = std::min(begin + task->tiles_per_item, task->tiles);
  task->gemm(task->weights, task->activations, task->m, begin, end, task->bias, task->y, task->y_stride);
}

struct PackTask {
  const QMatrixView* w;
  const QGemmPacking* packing;
  size_t tiles_per_item, tiles;
  uint8_t* codes;
  float* scales;
  uint8_t* offsets;
};

void RunPackItem(void* context, size_t item) {
  const auto* task = static_cast<const PackTask*>(context);
  const size_t begin = item * task->tiles_per_item;
  const size_t end = std::min(begin + task->tiles_per_item, task->tiles);
  PackQMatrixTiles(*task->w, *task->packing, begin, end, task->codes, task->scales, task->offsets);
}

}  // namespace

Result<WeightOnlyLinear> WeightOnlyLinear::Create(const QMatrix& w, std::span<const float> bias, int max_batch, Isa isa,
                                                  const std::string& name) {
  return Create(ViewOf(w), bias, max_batch, isa, name, nullptr);
}

Result<WeightOnlyLinear> WeightOnlyLinear::Create(const QMatrixView& w, std::span<const float> bias, int max_batch,
                                                  Isa isa, const std::string& name, pthreadpool_t pack_pool,
                                                  std::shared_ptr<HugePageArena> arena) {
  FAMQ_RETURN_IF_ERROR(ValidateQMatrixView(w, name));
  if (!bias.empty() && bias.size() != static_cast<size_t>(w.rows)) {
    return InvalidArgument(name + ": bias has " + std::to_string(bias.size()) + " values for " +
                           std::to_string(w.rows) + " output features");
  }
  if (max_batch < 1) return InvalidArgument(name + ": max_batch " + std::to_string(max_batch) + " is not >= 1");
  if (!IsaAvailable(isa)) {
    return Unsupported(name + ": ISA '" + IsaName(isa) + "' is not available on this CPU or in this build");
  }
  const QGemmKernels* kernels = GetQGemmKernels(isa);
  if (kernels == nullptr) return Internal(name + ": no kernel table for available ISA '" + IsaName(isa) + "'");

  WeightOnlyLinear lin;
  lin.kernels_ = kernels;
  lin.name_ = name;
  lin.in_features_ = w.cols;
  lin.out_features_ = w.rows;
  lin.bits_ = w.bits;
  lin.max_batch_ = max_batch;
  // 2-, 3- and 6-bit codes run on the 8-bit packing and kernels (exact for any
  // code in [-128, 127], runtime/kernels/qgemm.h): one byte per weight in memory.
  const QGemmPacking& packing = w.bits == 4 ? kernels->w4_packing : kernels->w8_packing;
  lin.gemm_ = w.bits == 4 ? kernels->gemm_w4 : kernels->gemm_w8;
  lin.tile_rows_ = static_cast<size_t>(packing.tile_rows);
  lin.packing_ = packing;

  // packed_: codes | scales | offsets | bias (padded to whole tiles).
  const QGemmPackedSizes sizes = PackedSizes(w, packing);
  lin.tiles_ = sizes.tiles;
  const size_t padded_rows = sizes.tiles * lin.tile_rows_;
  const size_t scales_at = RoundUp(sizes.code_bytes, kAlign);
  const size_t offsets_at = scales_at + RoundUp(sizes.scale_count * sizeof(float), kAlign);
  const size_t bias_at = offsets_at + RoundUp(sizes.offset_bytes, kAlign);
  const size_t packed_total = bias_at + RoundUp(bias.empty() ? 0 : padded_rows * sizeof(float), kAlign);
  // Huge pages: decode streams the packed weights once per token, and with
  // 4 KiB pages every 4 KiB costs a TLB miss and stops the hardware prefetchers.
  uint8_t* base = nullptr;
  if (arena != nullptr) {
    base = arena->Allocate(packed_total);
    lin.packed_owner_ = std::move(arena);
  } else {
    base = AllocateAligned(packed_total, /*huge_pages=*/true);
    if (base != nullptr) lin.packed_owner_ = std::shared_ptr<void>(base, FreeDeleter{});
  }
  if (base == nullptr) {
    return OutOfMemory(name + ": cannot allocate " + std::to_string(packed_total) + " bytes of packed weights");
  }
  auto* scales = ArrayAt<float>(base, scales_at);
  PackTask pack{&w, &packing, sizes.tiles, sizes.tiles, base, scales, base + offsets_at};
  const size_t pack_threads = pack_pool != nullptr ? pthreadpool_get_threads_count(pack_pool) : 1;
  if (pack_threads > 1 && sizes.tiles > 1) {
    pack.tiles_per_item = std::max<size_t>(1, (sizes.tiles + pack_threads * 4 - 1) / (pack_threads * 4));
    const size_t items = (sizes.tiles + pack.tiles_per_item - 1) / pack.tiles_per_item;
    pthreadpool_parallelize_1d(pack_pool, RunPackItem, &pack, items, /*flags=*/0);
  } else {
    RunPackItem(&pack, 0);
  }
  lin.packed_bytes_ = sizes.code_bytes + sizes.scale_count * sizeof(float) + sizes.offset_bytes;
  if (!bias.empty()) {
    auto* padded_bias = ArrayAt<float>(base, bias_at);
    std::copy(bias.begin(), bias.end(), padded_bias);
    std::fill(padded_bias + bias.size(), padded_bias + padded_rows, 0.0f);
    lin.bias_ = padded_bias;
  }
  lin.weights_ = QGemmWeights{base,
                              scales,
                              base + offsets_at,
                              static_cast<size_t>(w.rows),
                              static_cast<size_t>(w.cols),
                              static_cast<size_t>(w.group_size / kQBlock)};

  // scratch_: qx [max_batch][qx_stride] | sx | qsum [max_batch][blocks].
  const size_t batch = static_cast<size_t>(max_batch);
  const size_t blocks = static_cast<size_t>(w.cols) / kQBlock;
  lin.qx_stride_ = RoundUp(static_cast<size_t>(w.cols), kAlign);
  const size_t sx_at = batch * lin.qx_stride_;
  const size_t qsum_at = sx_at + RoundUp(batch * blocks * sizeof(float), kAlign);
  const size_t scratch_total = qsum_at + RoundUp(batch * blocks * sizeof(int32_t), kAlign);
  lin.scratch_.reset(AllocateAligned(scratch_total, /*huge_pages=*/false));
  if (!lin.scratch_) {
    return OutOfMemory(name + ": cannot allocate " + std::to_string(scratch_total) + " bytes of activation scratch");
  }
  lin.qx_ = ArrayAt<int8_t>(lin.scratch_.get(), 0);
  lin.sx_ = ArrayAt<float>(lin.scratch_.get(), sx_at);
  lin.qsum_ = ArrayAt<int32_t>(lin.scratch_.get(), qsum_at);
  return lin;
}

QGemmPackedRows WeightOnlyLinear::packed_rows() const {
  QGemmPackedRows p;
  p.weights = weights_;
  p.packing = packing_;
  p.bits = bits_;
  p.groups = weights_.blocks_per_group == 0 ? 0 : static_cast<size_t>(in_features_) / kQBlock / weights_.blocks_per_group;
  return p;
}

Status WeightOnlyLinear::Run(const float* x, float* y, size_t batch, pthreadpool_t pool) const {
  if (batch > static_cast<size_t>(max_batch_)) {
    return InvalidArgument(name_ + ": batch " + std::to_string(batch) + " exceeds max_batch " +
                           std::to_string(max_batch_) + " given at Create");
  }
  if (batch == 0) return Status::Ok();
  if (x == nullptr || y == nullptr) return InvalidArgument(name_ + ": null input or output");

  const size_t k = static_cast<size_t>(in_features_);
  const size_t threads = pool != nullptr ? pthreadpool_get_threads_count(pool) : 1;
  QuantizeTask quantize{kernels_->quantize_row, x, k, qx_, qx_stride_, sx_, qsum_};
  if (threads > 1 && batch > 1) {
    pthreadpool_parallelize_1d(pool, RunQuantizeRow, &quantize, batch, /*flags=*/0);
  } else {
    for (size_t i = 0; i < batch; ++i) RunQuantizeRow(&quantize, i);
  }

  const QGemmActivations activations{qx_, sx_, qsum_, qx_stride_};
  GemmTask gemm{gemm_, &weights_, &activations, batch, tiles_, tiles_, bias_, y, static_cast<size_t>(out_features_)};
  if (threads > 1 && tiles_ > 1) {
    // About 8 items per thread: pthreadpool balances them (work stealing), and
    // each item still covers whole tiles that stream contiguous memory.
    gemm.tiles_per_item = std::max<size_t>(1, (tiles_ + threads * 8 - 1) / (threads * 8));
    const size_t items = (tiles_ + gemm.tiles_per_item - 1) / gemm.tiles_per_item;
    pthreadpool_parallelize_1d(pool, RunGemmItem, &gemm, items, /*flags=*/0);
  } else {
    RunGemmItem(&gemm, 0);
  }
  return Status::Ok();
}

}  // namespace famq
