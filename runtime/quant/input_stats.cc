#include "quant/input_stats.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "quant/matmul_f32.h"
#include "quant/parallel_for.h"

namespace famq::quant {
namespace {

Status CheckWeights(const float* token_weights, size_t tokens) {
  for (size_t t = 0; t < tokens; ++t) {
    if (!(token_weights[t] >= 0) || !std::isfinite(token_weights[t])) {
      return InvalidArgument("token weight [" + std::to_string(t) + "] = " + std::to_string(token_weights[t]) +
                             " is not a finite value >= 0");
    }
  }
  return Status::Ok();
}

constexpr size_t kChunkTokens = 256;  // float partial sums over at most this many terms
constexpr size_t kBlock = 256;        // h is built in kBlock x kBlock float blocks

// One block of h's upper part, rows i0.., columns j0.. (j0 >= i0): h +=
// x^T xw over one chunk, for x, xw [n][k] (xw = the rows scaled by their
// token weights) and xt [k][n] = x transposed. Inside a diagonal block only
// j >= i is added; `mirror` also adds each value to its mirror element.
void AccumulateBlock(const float* xt, const float* xw, size_t n, size_t k, size_t i0, size_t j0, bool mirror,
                     double* h, float* block) {
  const size_t mi = std::min(kBlock, k - i0), nj = std::min(kBlock, k - j0);
  MatMulF32(xt + i0 * n, n, xw + j0, k, block, kBlock, mi, n, nj);
  for (size_t i = 0; i < mi; ++i) {
    const float* bi = block + i * kBlock;
    double* hi = h + (i0 + i) * k;
    for (size_t j = j0 == i0 ? i : 0; j < nj; ++j) {
      hi[j0 + j] += bi[j];
      if (mirror && j0 + j != i0 + i) h[(j0 + j) * k + i0 + i] += bi[j];
    }
  }
}

// The (i0, j0) block pairs on or above the diagonal.
std::vector<std::pair<size_t, size_t>> UpperBlocks(size_t k) {
  std::vector<std::pair<size_t, size_t>> blocks;
  for (size_t i0 = 0; i0 < k; i0 += kBlock)
    for (size_t j0 = i0; j0 < k; j0 += kBlock) blocks.emplace_back(i0, j0);
  return blocks;
}

// Calls chunk(xt, xw, n) for each run of at most kChunkTokens counted
// tokens (weight > 0) of x [tokens][k]: xt [k][n] transposed, xw [n][k] weighted.
template <class F>
void ForEachChunk(const float* x, const float* token_weights, size_t tokens, size_t K, F&& chunk) {
  std::vector<float> xt(K * kChunkTokens), xw(kChunkTokens * K);
  std::vector<size_t> rows;
  rows.reserve(kChunkTokens);
  auto flush = [&] {
    const size_t n = rows.size();
    if (n == 0) return;
    for (size_t i = 0; i < n; ++i) {
      const float* xr = x + rows[i] * K;
      const float wt = token_weights[rows[i]];
      float* yr = xw.data() + i * K;
      for (size_t j = 0; j < K; ++j) {
        xt[j * n + i] = xr[j];
        yr[j] = wt * xr[j];
      }
    }
    chunk(xt.data(), xw.data(), n);
    rows.clear();
  };
  for (size_t t = 0; t < tokens; ++t) {
    if (token_weights[t] == 0) continue;
    rows.push_back(t);
    if (rows.size() == kChunkTokens) flush();
  }
  flush();
}

}  // namespace

Status AccumulateHessian(const float* x, const float* token_weights, size_t tokens, int k, double* h) {
  if (k <= 0) return InvalidArgument("Hessian accumulation over " + std::to_string(k) + " features");
  FAMQ_RETURN_IF_ERROR(CheckWeights(token_weights, tokens));
  const size_t K = static_cast<size_t>(k);
  std::vector<float> block(kBlock * kBlock);
  const auto blocks = UpperBlocks(K);
  ForEachChunk(x, token_weights, tokens, K, [&](const float* xt, const float* xw, size_t n) {
    for (const auto& [i0, j0] : blocks) AccumulateBlock(xt, xw, n, K, i0, j0, /*mirror=*/true, h, block.data());
  });
  return Status::Ok();
}

Status AccumulateHessianUpper(const float* x, const float* token_weights, size_t tokens, int k, double* h,
                              pthreadpool_t pool) {
  if (k <= 0) return InvalidArgument("Hessian accumulation over " + std::to_string(k) + " features");
  UpperHessianBatcher batcher(k, h, pool, /*pending_tokens=*/tokens);
  FAMQ_RETURN_IF_ERROR(batcher.Add(x, token_weights, tokens));
  batcher.Flush();
  return Status::Ok();
}

UpperHessianBatcher::UpperHessianBatcher(int k, double* h, pthreadpool_t pool, size_t pending_tokens)
    : k_(static_cast<size_t>(std::max(k, 1))), h_(h), pool_(pool), pending_limit_(std::max<size_t>(pending_tokens, 1)) {}

Status UpperHessianBatcher::Add(const float* x, const float* token_weights, size_t tokens) {
  FAMQ_RETURN_IF_ERROR(CheckWeights(token_weights, tokens));
  ForEachChunk(x, token_weights, tokens, k_, [&](const float* xt, const float* xw, size_t n) {
    const size_t at = chunk_data_.size();
    chunk_data_.resize(at + 2 * n * k_);
    std::copy(xt, xt + n * k_, chunk_data_.begin() + static_cast<std::ptrdiff_t>(at));
    std::copy(xw, xw + n * k_, chunk_data_.begin() + static_cast<std::ptrdiff_t>(at + n * k_));
    chunks_.push_back({at, n});
    pending_ += n;
  });
  if (pending_ >= pending_limit_) Flush();
  return Status::Ok();
}

void UpperHessianBatcher::Flush() {
  if (chunks_.empty()) return;
  const auto blocks = UpperBlocks(k_);
  const size_t threads = pool_ != nullptr ? pthreadpool_get_threads_count(pool_) : 1;
  // Task s handles blocks s, s + tasks, ... (disjoint parts of h), each
  // block through every pending chunk in arrival order while it is in cache.
  const size_t tasks = std::min(blocks.size(), 3 * std::max<size_t>(threads, 1));
  scratch_.resize(tasks * kBlock * kBlock);
  ParallelFor(pool_, tasks, [&](size_t s) {
    float* block = scratch_.data() + s * kBlock * kBlock;
    for (size_t b = s; b < blocks.size(); b += tasks) {
      for (const Chunk& c : chunks_) {
        const float* xt = chunk_data_.data() + c.offset;
        AccumulateBlock(xt, xt + c.tokens * k_, c.tokens, k_, blocks[b].first, blocks[b].second, /*mirror=*/false,
                        h_, block);
      }
    }
  });
  chunks_.clear();
  chunk_data_.clear();
  pending_ = 0;
}

void MirrorUpperToLower(double* h, int k) {
  const size_t K = static_cast<size_t>(std::max(k, 0));
  constexpr size_t kTile = 64;  // transposed in tiles: both sides stay in cache
  for (size_t i0 = 0; i0 < K; i0 += kTile)
    for (size_t j0 = i0; j0 < K; j0 += kTile)
      for (size_t i = i0; i < std::min(i0 + kTile, K); ++i)
        for (size_t j = std::max(j0, i + 1); j < std::min(j0 + kTile, K); ++j) h[j * K + i] = h[i * K + j];
}

LinearInputStats::LinearInputStats(int k, const LinearInputStatsOptions& options) : k_(k) {
  const size_t K = static_cast<size_t>(std::max(k, 0));
  if (options.hessian) hessian_.assign(K * K, 0.0);
  if (options.mean_abs) sum_abs_.assign(K, 0.0);
  if (options.max_abs) max_abs_.assign(K, 0.0f);
}

Status LinearInputStats::Accumulate(const float* x, const float* token_weights, size_t tokens) {
  if (k_ <= 0) return InvalidArgument("LinearInputStats over " + std::to_string(k_) + " features");
  FAMQ_RETURN_IF_ERROR(CheckWeights(token_weights, tokens));
  const size_t K = static_cast<size_t>(k_);
  if (!hessian_.empty()) FAMQ_RETURN_IF_ERROR(AccumulateHessian(x, token_weights, tokens, k_, hessian_.data()));
  for (size_t t = 0; t < tokens; ++t) {
    const float wt = token_weights[t];
    if (wt == 0) continue;
    const float* xt = x + t * K;
    total_weight_ += wt;
    ++tokens_counted_;
    if (!sum_abs_.empty()) {
      for (size_t j = 0; j < K; ++j) sum_abs_[j] += static_cast<double>(wt) * std::fabs(xt[j]);
    }
    if (!max_abs_.empty()) {
      for (size_t j = 0; j < K; ++j) max_abs_[j] = std::max(max_abs_[j], std::fabs(xt[j]));
    }
  }
  return Status::Ok();
}

std::vector<double> LinearInputStats::mean_abs() const {
  std::vector<double> out(sum_abs_.size(), 0.0);
  if (total_weight_ > 0) {
    for (size_t j = 0; j < out.size(); ++j) out[j] = sum_abs_[j] / total_weight_;
  }
  return out;
}

}  // namespace famq::quant
