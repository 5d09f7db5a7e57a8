// famq eval's harness: answer parsing, suite loading, and a run on the tiny
// random checkpoint whose perplexities must equal ComputePerplexity on the
// same joined tokens.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "engine/perplexity.h"
#include "eval/eval_suite.h"

namespace famq {
namespace {

const std::string kData = std::string(FAMQ_SOURCE_DIR) + "/tests/data";

TEST(ParseFinalAnswer, FindsTheFirstCompleteAnswerLine) {
  EXPECT_EQ(ParseFinalAnswer("7+5=12, write 2 carry 1. so far 12\nThe answer is 12."), 12);
  EXPECT_EQ(ParseFinalAnswer("The answer is -40."), -40);
  EXPECT_EQ(ParseFinalAnswer("The answer is 3. The answer is 4."), 3);
  EXPECT_EQ(ParseFinalAnswer("The answer is 12"), std::nullopt);  // incomplete: no period yet
  EXPECT_EQ(ParseFinalAnswer("The answer is twelve."), std::nullopt);
  EXPECT_EQ(ParseFinalAnswer("The answer is 1,234."), std::nullopt);
  EXPECT_EQ(ParseFinalAnswer("The answer is x. The answer is 8."), 8);
  EXPECT_EQ(ParseFinalAnswer(""), std::nullopt);
}

TEST(EvalSuite, LoadsByNameAndRejectsBadFiles) {
  auto s = LoadEvalSuite("mini", kData + "/eval-mini");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->name, "mini");
  ASSERT_EQ(s->text.size(), 2u);
  EXPECT_EQ(s->ctx, 32);
  EXPECT_FALSE(LoadEvalSuite("nonexistent", kData + "/eval-mini").ok());

  const auto dir = std::filesystem::temp_directory_path() / ("famq-eval-test-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "bad.jsonl") << "{\"prompt_plain\": \"Q\", \"answer\": 1}\n{\"prompt_plain\": \"Q\"}\n";
  auto p = LoadReasoningProblems((dir / "bad.jsonl").string(), 0);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("bad.jsonl:2"), std::string::npos) << p.status().ToString();
  std::ofstream(dir / "s.json") << "{\"ctx\": -3, \"text\": []}";
  EXPECT_FALSE(LoadEvalSuite((dir / "s.json").string(), "").ok());
  std::filesystem::remove_all(dir);
}

TEST(EvalSuite, RunsOnTheTinyCheckpoint) {
  auto suite = LoadEvalSuite("mini", kData + "/eval-mini");
  ASSERT_TRUE(suite.ok());
  auto model = OpenRunnableModel(kData + "/tiny-random-qwen3", "");
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  EngineOptions eo;
  eo.num_threads = 1;
  int reasoning_calls = 0;
  auto r = RunEvalSuite(*suite, *model, eo, [&](std::string_view stage, int, int) { reasoning_calls += stage == "reasoning"; });
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->text.size(), 2u);
  ASSERT_TRUE(r->reasoning.has_value());
  EXPECT_EQ(r->reasoning->all.total, 3);
  EXPECT_EQ(reasoning_calls, 3);
  EXPECT_EQ(r->reasoning->by_format.at("chat").total, 1);
  EXPECT_EQ(r->reasoning->by_difficulty.at(1).total, 2);

  // The prose domain's numbers, recomputed by hand: documents joined by <|endoftext|>.
  std::vector<int32_t> ids;
  ASSERT_TRUE(model->tokenizer.Encode("In the beginning the family was small, and the small model learned from the large one.", &ids).ok());
  ids.push_back(*model->tokenizer.TokenId("<|endoftext|>"));
  ASSERT_TRUE(model->tokenizer.Encode("Calibration data decides what a quantized model remembers; choose it with care.", &ids).ok());
  eo.max_seq_len = 64;
  auto engine = model->CreateEngine(eo);
  ASSERT_TRUE(engine.ok());
  PerplexityOptions po;
  po.ctx = 32;
  auto want = ComputePerplexity(**engine, ids, po);
  ASSERT_TRUE(want.ok());
  EXPECT_EQ(r->text.at("prose").tokens, want->tokens);
  EXPECT_NEAR(r->text.at("prose").nll, want->mean_nll, 1e-9);
}

}  // namespace
}  // namespace famq
