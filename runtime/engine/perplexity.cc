#include "engine/perplexity.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "engine/ops.h"
#include "engine/sampler.h"

namespace famq {

Result<PerplexityResult> ComputePerplexity(Engine& engine, std::span<const int32_t> ids,
                                           const PerplexityOptions& options) {
  if (ids.size() < 2) return InvalidArgument("perplexity: fewer than 2 tokens, nothing to predict");
  const int ctx = options.ctx;
  if (ctx < 2 || ctx > engine.max_seq_len()) {
    return InvalidArgument("perplexity: window of " + std::to_string(ctx) + " tokens does not fit the KV cache of " +
                           std::to_string(engine.max_seq_len()));
  }
  const size_t vocab = static_cast<size_t>(engine.vocab_size());
  std::vector<float> logits(static_cast<size_t>(engine.max_batch()) * vocab);
  int planned = static_cast<int>((ids.size() - 2) / static_cast<size_t>(ctx) + 1);
  if (options.max_windows > 0) planned = std::min(planned, options.max_windows);

  PerplexityResult r;
  double nll = 0.0;
  for (size_t w = 0; w + 1 < ids.size() && r.windows < planned; w += static_cast<size_t>(ctx)) {
    const int len = static_cast<int>(std::min<size_t>(static_cast<size_t>(ctx), ids.size() - w));
    const int32_t* win = ids.data() + w;
    const double nll_before = nll;
    const int64_t tokens_before = r.tokens;
    for (int start = 0; start < len; start += engine.max_batch()) {
      const int n = std::min(engine.max_batch(), len - start);
      FAMQ_RETURN_IF_ERROR(
          engine.Forward(std::span<const int32_t>(win + start, static_cast<size_t>(n)), start, logits.data(), true));
      for (int row = 0; row < n; ++row) {
        const int p = start + row;
        if (p + 1 >= len) break;
        const float* l = logits.data() + static_cast<size_t>(row) * vocab;
        const int32_t target = win[p + 1];
        nll += ops::LogSumExp(l, vocab) - l[target];
        r.correct += Argmax(l, static_cast<int>(vocab)) == target;
        ++r.tokens;
      }
    }
    r.window_nll.push_back(nll - nll_before);
    r.window_tokens.push_back(r.tokens - tokens_before);
    ++r.windows;
    if (options.on_window && !options.on_window(r.windows, planned)) return Cancelled("perplexity: cancelled");
  }
  r.mean_nll = nll / static_cast<double>(r.tokens);
  r.ppl = std::exp(r.mean_nll);
  return r;
}

}  // namespace famq
