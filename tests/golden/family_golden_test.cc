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

  std::unique_ptr<Engine> MakeEngine(int threads) {
    EngineOptions o;
    o.num_threads = threads;
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

}  // namespace
}  // namespace famq
