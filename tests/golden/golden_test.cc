// Golden tests of the fp32 engine against the PyTorch reference
// (scripts/reference/famq_ref.py), on the committed seeded random checkpoints
// written by tests/golden/make_fixtures.py: one Qwen3 (BF16, tied, QK-norm),
// one Qwen2 (F32, qkv bias), one Llama (F16, untied, two shards).
//
// The same expected files serve the host and the aarch64 build (under qemu),
// so passing on both also means x86 and aarch64 produce identical greedy tokens.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "alloc_counter.h"
#include "rel_error.h"
#include "core/file.h"
#include "core/npy.h"
#include "engine/engine.h"
#include "engine/generate.h"
#include "engine/sampler.h"
#include "model/checkpoint.h"

namespace famq {
namespace {

// The acceptance bound: max |famq - torch| / max |torch| over all logits.
constexpr double kMaxRelLogitError = 1e-4;

struct Golden {
  std::vector<int32_t> prompt, greedy;
  NpyF32 logits;
};

Golden LoadGolden(const std::string& dir) {
  Golden g;
  auto text = ReadFile(dir + "/golden.json");
  EXPECT_TRUE(text.ok()) << text.status().ToString();
  if (!text.ok()) return g;
  auto j = nlohmann::json::parse(*text);
  g.prompt = j["prompt_ids"].get<std::vector<int32_t>>();
  g.greedy = j["greedy"].get<std::vector<int32_t>>();
  auto npy = ReadNpyF32(dir + "/golden_logits.npy");
  EXPECT_TRUE(npy.ok()) << npy.status().ToString();
  if (npy.ok()) g.logits = std::move(*npy);
  return g;
}

using testing::RelError;

class GoldenTest : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    dir_ = std::string(FAMQ_SOURCE_DIR) + "/tests/data/" + GetParam();
    auto ckpt = Checkpoint::Open(dir_);
    ASSERT_TRUE(ckpt.ok()) << ckpt.status().ToString();
    ckpt_ = std::make_unique<Checkpoint>(std::move(*ckpt));
    golden_ = LoadGolden(dir_);
    ASSERT_EQ(golden_.prompt.size(), 64u);
    ASSERT_EQ(golden_.greedy.size(), 32u);
    ASSERT_EQ(golden_.logits.shape,
              (std::vector<int64_t>{64, static_cast<int64_t>(ckpt_->config().vocab_size)}));
  }

  std::unique_ptr<Engine> MakeEngine(int threads, int max_batch) {
    EngineOptions o;
    o.num_threads = threads;
    o.max_batch = max_batch;
    o.max_seq_len = 128;
    auto e = Engine::Create(*ckpt_, o);
    EXPECT_TRUE(e.ok()) << e.status().ToString();
    return e.ok() ? std::move(*e) : nullptr;
  }

  std::string dir_;
  std::unique_ptr<Checkpoint> ckpt_;
  Golden golden_;
};

TEST_P(GoldenTest, BatchedPrefillLogitsMatchPyTorch) {
  for (int threads : {1, 2}) {
    auto engine = MakeEngine(threads, 64);
    ASSERT_NE(engine, nullptr);
    const size_t vocab = static_cast<size_t>(engine->vocab_size());
    std::vector<float> logits(64 * vocab);
    ASSERT_TRUE(engine->Forward(golden_.prompt, 0, logits.data(), true).ok());
    const double err = RelError(logits.data(), golden_.logits.data.data(), logits.size());
    EXPECT_LE(err, kMaxRelLogitError) << GetParam() << " threads=" << threads;
    RecordProperty(std::string("rel_error_threads_") + std::to_string(threads), std::to_string(err));
  }
}

// Prefill in odd chunks, then the rest one token at a time through the KV
// cache (the decode path): every position must still match.
TEST_P(GoldenTest, ChunkedPrefillAndDecodeMatchPyTorch) {
  auto engine = MakeEngine(2, 7);
  ASSERT_NE(engine, nullptr);
  const size_t vocab = static_cast<size_t>(engine->vocab_size());
  std::vector<float> logits(64 * vocab);
  size_t pos = 0;
  for (; pos < 40; pos += 7) {
    const size_t n = std::min<size_t>(7, 40 - pos);
    ASSERT_TRUE(engine->Forward(std::span<const int32_t>(golden_.prompt).subspan(pos, n), static_cast<int>(pos),
                                logits.data() + pos * vocab, true)
                    .ok());
  }
  for (pos = 40; pos < 64; ++pos) {
    ASSERT_TRUE(engine->Forward(std::span<const int32_t>(golden_.prompt).subspan(pos, 1), static_cast<int>(pos),
                                logits.data() + pos * vocab, false)
                    .ok());
  }
  EXPECT_LE(RelError(logits.data(), golden_.logits.data.data(), logits.size()), kMaxRelLogitError);
}

TEST_P(GoldenTest, GreedyTokensMatchPyTorch) {
  auto engine = MakeEngine(2, 64);
  ASSERT_NE(engine, nullptr);
  GenerateParams p;  // greedy, no stop tokens: the reference ignored eos too
  p.max_new_tokens = 32;
  Generator gen(engine.get(), p);
  std::vector<int32_t> out;
  out.reserve(32);
  GenerateStats stats;
  ASSERT_TRUE(gen.Run(golden_.prompt, &out, nullptr, &stats).ok());
  EXPECT_EQ(out, golden_.greedy);
  EXPECT_EQ(stats.generated_tokens, 32);
}

// The decode loop (one-token Forward + sampling) allocates nothing once the
// engine and sampler exist.
TEST_P(GoldenTest, DecodeLoopDoesNotAllocate) {
  auto engine = MakeEngine(2, 64);
  ASSERT_NE(engine, nullptr);
  std::vector<float> logits(static_cast<size_t>(engine->vocab_size()));
  Sampler sampler(engine->vocab_size(), SamplingParams{0.8f, 20, 0.9f, 5});
  ASSERT_TRUE(engine->Forward(golden_.prompt, 0, logits.data(), false).ok());
  int32_t tok = sampler.Sample(logits.data());
  const long before = testing::AllocationCount();
  if (before < 0) GTEST_SKIP() << "allocation counting is off in sanitizer builds";
  {  // the counter itself works
    auto probe = std::make_unique<std::vector<int>>(16);
    ASSERT_GE(testing::AllocationCount() - before, 2);
  }
  const long loop_start = testing::AllocationCount();
  bool ok = true;
  for (int i = 0; i < 16; ++i) {
    ok = ok && engine->Forward(std::span<const int32_t>(&tok, 1), 64 + i, logits.data(), false).ok();
    tok = sampler.Sample(logits.data());
  }
  const long allocations = testing::AllocationCount() - loop_start;
  EXPECT_TRUE(ok);
  EXPECT_EQ(allocations, 0);
}

TEST_P(GoldenTest, RejectsPromptsBeyondTheCache) {
  auto engine = MakeEngine(1, 64);
  ASSERT_NE(engine, nullptr);
  std::vector<float> logits(static_cast<size_t>(engine->vocab_size()));
  std::vector<int32_t> one{golden_.prompt[0]};
  EXPECT_FALSE(engine->Forward(one, engine->max_seq_len(), logits.data(), false).ok());
  std::vector<int32_t> bad_token{engine->vocab_size()};
  EXPECT_FALSE(engine->Forward(bad_token, 0, logits.data(), false).ok());
}

INSTANTIATE_TEST_SUITE_P(Fixtures, GoldenTest,
                         ::testing::Values("tiny-random-qwen3", "tiny-random-qwen2", "tiny-random-llama"),
                         [](const auto& param_info) {
                           std::string s = param_info.param;
                           std::replace(s.begin(), s.end(), '-', '_');
                           return s;
                         });

}  // namespace
}  // namespace famq
