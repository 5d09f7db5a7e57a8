// Perplexity and next-token accuracy of a token sequence, evaluated in
// non-overlapping windows that each start from an empty KV cache:
// PPL = exp(mean NLL over every token predicted inside a window).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "core/status.h"
#include "engine/engine.h"

namespace famq {

struct PerplexityOptions {
  int ctx = 512;        // window length in tokens; must be <= engine.max_seq_len()
  int max_windows = 0;  // 0: all windows
  // Called after each window with (windows done, windows planned); return
  // false to cancel (the call then returns kCancelled).
  std::function<bool(int, int)> on_window;
};

struct PerplexityResult {
  double ppl = 0.0;
  double mean_nll = 0.0;
  int64_t tokens = 0;   // predicted tokens
  int64_t correct = 0;  // argmax == next token
  int windows = 0;
  std::vector<double> window_nll;      // per window: summed NLL of its predicted tokens
  std::vector<int64_t> window_tokens;  // per window: tokens it predicted
  double top1_accuracy() const { return tokens ? static_cast<double>(correct) / static_cast<double>(tokens) : 0.0; }
};

// Runs `ids` (at least two tokens) through `engine` window by window.
// Returns InvalidArgument for too few tokens or a window larger than the cache.
Result<PerplexityResult> ComputePerplexity(Engine& engine, std::span<const int32_t> ids,
                                           const PerplexityOptions& options);

}  // namespace famq
