// Golden tests of the fp32 engine on a trained family member (famq-tiny-s),
// against what the PyTorch reference computed (tests/golden/make_family_golden.py):
// one prompt per domain; logits at every prompt position within 1e-4 of the
// reference (max |diff| / max |ref|), 32 greedy tokens identical.
//
// Like golden_tests, the same expected files serve the host and the aarch64
// build under qemu.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/file.h"
#include "core/npy.h"
#include "engine/engine.h"
#include "engine/generate.h"
#include "engine/sampler.h"
#include "model/model_dir.h"
#include "rel_error.h"

namespace famq {
namespace {

constexpr double kMaxRelLogitError = 1e-4;
constexpr const char* kModel = "famq-tiny-s";

struct FamilyPrompt {
  std::string domain, text;
  std::vector<int32_t> ids, greedy;
};

using testing::RelError;

class FamilyGoldenTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string root = FAMQ_SOURCE_DIR;
    auto dir = OpenModelDir(root + "/models/" + kModel);
    ASSERT_TRUE(dir.ok()) << dir.status().ToString();
    model_ = std::make_unique<ModelDir>(std::move(*dir));
    golden_dir_ = root + "/tests/data/" + kModel + ".golden";
    auto text = ReadFile(golden_dir_ + "/golden.json");
    ASSERT_TRUE(text.ok()) << text.status().ToString();
    auto j = nlohmann::json::parse(*text);
    for (const auto& p : j["prompts"]) {
      prompts_.push_back({p["domain"].get<std::string>(), p["text"].get<std::string>(),
                          p["ids"].get<std::vector<int32_t>>(), p["greedy"].get<std::vector<int32_t>>()});
    }
    ASSERT_EQ(prompts_.size(), 5u);
  }

  std::unique_ptr<Engine> MakeEngine(int threads, int sequences = 1) {
    EngineOptions o;
    o.num_threads = threads;
    o.max_sequences = sequences;
    o.max_batch = 64;
    o.max_seq_len = 128;
    auto e = Engine::Create(model_->checkpoint, o);
    EXPECT_TRUE(e.ok()) << e.status().ToString();
    return e.ok() ? std::move(*e) : nullptr;
  }

  std::unique_ptr<ModelDir> model_;
  std::string golden_dir_;
  std::vector<FamilyPrompt> prompts_;
};

TEST_F(FamilyGoldenTest, TokenizerGivesTheRecordedIds) {
  for (const auto& p : prompts_) {
    std::vector<int32_t> ids;
    ASSERT_TRUE(model_->tokenizer.Encode(p.text, &ids).ok());
    EXPECT_EQ(ids, p.ids) << p.domain;
  }
}

TEST_F(FamilyGoldenTest, PromptLogitsMatchPyTorch) {
  for (int threads : {1, 2}) {
    auto engine = MakeEngine(threads);
    ASSERT_NE(engine, nullptr);
    const size_t vocab = static_cast<size_t>(engine->vocab_size());
    for (size_t i = 0; i < prompts_.size(); ++i) {
      const auto& p = prompts_[i];
      auto want = ReadNpyF32(golden_dir_ + "/logits_" + std::to_string(i) + ".npy");
      ASSERT_TRUE(want.ok()) << want.status().ToString();
      ASSERT_EQ(want->shape, (std::vector<int64_t>{static_cast<int64_t>(p.ids.size()), static_cast<int64_t>(vocab)}));
      std::vector<float> logits(p.ids.size() * vocab);
      ASSERT_TRUE(engine->Forward(p.ids, 0, logits.data(), true).ok());
      const double err = RelError(logits.data(), want->data.data(), logits.size());
      EXPECT_LE(err, kMaxRelLogitError) << p.domain << " threads=" << threads;
      RecordProperty(p.domain + "_rel_error_threads_" + std::to_string(threads), std::to_string(err));
    }
  }
}

TEST_F(FamilyGoldenTest, GreedyTokensMatchPyTorch) {
  auto engine = MakeEngine(2);
  ASSERT_NE(engine, nullptr);
  for (const auto& p : prompts_) {
    GenerateParams params;  // greedy, no stop tokens: the reference ignored eos too
    params.max_new_tokens = static_cast<int>(p.greedy.size());
    Generator gen(engine.get(), params);
    std::vector<int32_t> out;
    GenerateStats stats;
    ASSERT_TRUE(gen.Run(p.ids, &out, nullptr, &stats).ok()) << p.domain;
    EXPECT_EQ(out, p.greedy) << p.domain;
    EXPECT_EQ(p.greedy.size(), 32u);
  }
}


// Batched decoding (ForwardRows over several sequence slots) gives every
// sequence exactly the logits it gets decoded alone through Forward: a row's
// result must not depend on the other rows of the batch.
TEST_F(FamilyGoldenTest, BatchedDecodeMatchesOneSequenceAtATime) {
  constexpr int kSeqs = 3, kSteps = 12;
  auto solo = MakeEngine(2);
  auto batched = MakeEngine(2, kSeqs);
  ASSERT_NE(solo, nullptr);
  ASSERT_NE(batched, nullptr);
  const size_t vocab = static_cast<size_t>(solo->vocab_size());
  // Reference: each prompt prefilled, then greedy decoding one token at a time.
  std::vector<std::vector<float>> want(kSeqs);  // [step][vocab] per sequence
  std::vector<std::vector<int32_t>> tokens(kSeqs);
  for (int s = 0; s < kSeqs; ++s) {
    const auto& ids = prompts_[static_cast<size_t>(s)].ids;
    std::vector<float> logits(vocab);
    ASSERT_TRUE(solo->Forward(ids, 0, logits.data(), false).ok());
    for (int step = 0; step < kSteps; ++step) {
      const int32_t tok = Argmax(logits.data(), static_cast<int>(vocab));
      tokens[static_cast<size_t>(s)].push_back(tok);
      ASSERT_TRUE(solo->Forward(std::span<const int32_t>(&tok, 1), static_cast<int>(ids.size()) + step,
                                logits.data(), false).ok());
      want[static_cast<size_t>(s)].insert(want[static_cast<size_t>(s)].end(), logits.begin(), logits.end());
    }
  }
  // Prompts 1.. go through slot 0 into their own slots, prompt 0 stays in slot 0.
  std::vector<float> scratch(vocab);
  for (int s = kSeqs - 1; s >= 0; --s) {
    const auto& ids = prompts_[static_cast<size_t>(s)].ids;
    ASSERT_TRUE(batched->Forward(ids, 0, scratch.data(), false).ok());
    ASSERT_TRUE(batched->CopySequence(0, s, static_cast<int>(ids.size())).ok());
  }
  std::vector<float> rows(kSeqs * vocab);
  for (int step = 0; step < kSteps; ++step) {
    // Sequence s joins at step s, so the batch has 1, 2 and 3 rows.
    std::vector<int32_t> tok, pos, seq;
    std::vector<int> which;
    for (int s = 0; s < kSeqs; ++s) {
      const int own = step - s;
      if (own < 0) continue;
      tok.push_back(tokens[static_cast<size_t>(s)][static_cast<size_t>(own)]);
      pos.push_back(static_cast<int32_t>(prompts_[static_cast<size_t>(s)].ids.size()) + own);
      seq.push_back(s);
      which.push_back(s);
    }
    ASSERT_TRUE(batched->ForwardRows(tok, pos, seq, rows.data()).ok());
    for (size_t r = 0; r < which.size(); ++r) {
      const int s = which[r];
      const float* w = &want[static_cast<size_t>(s)][static_cast<size_t>(step - s) * vocab];
      EXPECT_TRUE(std::equal(w, w + vocab, &rows[r * vocab])) << "sequence " << s << " step " << step - s << " of a "
                                                              << which.size() << "-row batch";
    }
  }
  // Bad rows are refused before anything runs.
  const std::vector<int32_t> two_tok{1, 2}, same_pos{5, 5}, same_seq{1, 1};
  EXPECT_FALSE(batched->ForwardRows(two_tok, same_pos, same_seq, rows.data()).ok());
  const std::vector<int32_t> one_tok{1}, one_pos{5}, bad_seq{kSeqs};
  EXPECT_FALSE(batched->ForwardRows(one_tok, one_pos, bad_seq, rows.data()).ok());
  EXPECT_FALSE(batched->CopySequence(0, kSeqs, 4).ok());
  EXPECT_FALSE(solo->CopySequence(0, 1, 4).ok());
}

}  // namespace
}  // namespace famq
