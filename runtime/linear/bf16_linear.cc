#include "linear/bf16_linear.h"

#include <algorithm>

namespace famq {

Result<Bf16Linear> Bf16Linear::Create(const std::vector<const TensorView*>& blocks,
                                      const std::vector<const std::optional<TensorView>*>& biases, Isa isa,
                                      const std::string& name) {
  if (blocks.empty()) return InvalidArgument(name + ": no weight blocks");
  if (!IsaAvailable(isa)) {
    return Unsupported(name + ": ISA '" + IsaName(isa) + "' is not available on this CPU or in this build");
  }
  Bf16Linear lin;
  lin.name_ = name;
  lin.isa_ = isa;
  lin.gemm_ = GetBf16GemmFn(isa);
  size_t out = 0;
  int64_t in = -1;
  for (const TensorView* b : blocks) {
    if (b->dtype != DType::kBF16) {
      return InvalidArgument(name + ": weight '" + b->name + "' is " + DTypeName(b->dtype) +
                             ", and BF16 weights are read only from BF16 tensors (use fp32 weights)");
    }
    if (b->shape.size() != 2 || b->shape[0] < 1 || b->shape[1] < 1 || (in >= 0 && b->shape[1] != in)) {
      return InvalidArgument(name + ": weight '" + b->name + "' has shape " + b->ShapeString() +
                             "; the blocks must be 2-D with the same input size");
    }
    in = b->shape[1];
    if (b->num_bytes != static_cast<uint64_t>(b->numel()) * 2) {
      return InvalidArgument(name + ": weight '" + b->name + "' holds " + std::to_string(b->num_bytes) +
                             " bytes for " + std::to_string(b->numel()) + " BF16 values");
    }
    lin.blocks_.push_back(Block{b->data, static_cast<size_t>(b->shape[0]), out});
    out += static_cast<size_t>(b->shape[0]);
  }
  if (in > (int64_t{1} << 30) || out > (size_t{1} << 30)) return InvalidArgument(name + ": absurd weight shape");
  lin.in_ = static_cast<int>(in);
  lin.out_ = static_cast<int>(out);

  const bool has_bias = std::any_of(biases.begin(), biases.end(), [](const auto* b) { return b->has_value(); });
  if (has_bias) {
    if (biases.size() != blocks.size()) return InvalidArgument(name + ": one bias per weight block, or none");
    lin.bias_.assign(out, 0.0f);
    for (size_t i = 0; i < blocks.size(); ++i) {
      if (!biases[i]->has_value()) continue;  // a block without bias adds 0
      const TensorView& t = biases[i]->value();
      if (t.numel() != static_cast<int64_t>(lin.blocks_[i].rows)) {
        return InvalidArgument(name + ": bias '" + t.name + "' has " + std::to_string(t.numel()) + " values for " +
                               std::to_string(lin.blocks_[i].rows) + " rows");
      }
      ConvertToF32(t.dtype, t.data, static_cast<size_t>(t.numel()), lin.bias_.data() + lin.blocks_[i].col);
    }
  }

  // Tiles of about 128 KiB of weights (a multiple of 4 rows, 8 to 64): small
  // enough that a tile stays in L2 while every group of tokens passes over
  // it, and many enough per block that the threads balance.
  const size_t row_bytes = static_cast<size_t>(in) * 2;
  const size_t tile_rows = std::clamp<size_t>((size_t{128} << 10) / row_bytes / 4 * 4, 8, 64);
  for (size_t bi = 0; bi < lin.blocks_.size(); ++bi) {
    for (size_t r = 0; r < lin.blocks_[bi].rows; r += tile_rows) {
      lin.tiles_.push_back(Tile{bi, r, std::min(r + tile_rows, lin.blocks_[bi].rows)});
    }
  }
  return lin;
}

size_t Bf16Linear::weight_bytes() const {
  return static_cast<size_t>(in_) * static_cast<size_t>(out_) * 2 + bias_.size() * sizeof(float);
}

Status Bf16Linear::Run(const float* x, float* y, size_t batch, pthreadpool_t pool) const {
  if (batch == 0) return Status::Ok();
  if (x == nullptr || y == nullptr) return InvalidArgument(name_ + ": null input or output");
  struct Task {
    const Bf16Linear* self;
    const float* x;
    float* y;
    size_t batch;
  } task{this, x, y, batch};
  const auto run_tile = [](void* context, size_t i) {
    const auto& t = *static_cast<const Task*>(context);
    const Bf16Linear& l = *t.self;
    const Tile& tile = l.tiles_[i];
    const Block& b = l.blocks_[tile.block];
    const size_t out = static_cast<size_t>(l.out_);
    l.gemm_(b.w, static_cast<size_t>(l.in_), tile.r0, tile.r1, t.x, t.batch,
            l.bias_.empty() ? nullptr : l.bias_.data() + b.col, t.y + b.col, out);
  };
  const size_t threads = pool != nullptr ? pthreadpool_get_threads_count(pool) : 1;
  if (threads > 1 && tiles_.size() > 1) {
    pthreadpool_parallelize_1d(pool, run_tile, &task, tiles_.size(), /*flags=*/0);
  } else {
    for (size_t i = 0; i < tiles_.size(); ++i) run_tile(&task, i);
  }
  return Status::Ok();
}

}  // namespace famq
