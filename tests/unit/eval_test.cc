// famq eval's harness: answer parsing, suite loading, and a run on the tiny
// random checkpoint whose perplexities must equal ComputePerplexity on the
// same joined tokens.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "engine/perplexity.h"
#include "eval/eval_compare.h"
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
  // A stride keeps every k-th problem from the first, and still checks every line.
  {
    std::ofstream f(dir / "five.jsonl");
    for (int i = 0; i < 5; ++i) f << "{\"prompt_plain\": \"Q\", \"answer\": " << i << "}\n";
  }
  auto every2 = LoadReasoningProblems((dir / "five.jsonl").string(), 0, 2);
  ASSERT_TRUE(every2.ok()) << every2.status().ToString();
  ASSERT_EQ(every2->size(), 3u);
  EXPECT_EQ((*every2)[0].answer, 0);
  EXPECT_EQ((*every2)[1].answer, 2);
  EXPECT_EQ((*every2)[2].answer, 4);
  auto every2_limit = LoadReasoningProblems((dir / "five.jsonl").string(), 2, 2);
  ASSERT_TRUE(every2_limit.ok());
  EXPECT_EQ(every2_limit->size(), 2u);
  EXPECT_FALSE(LoadReasoningProblems((dir / "bad.jsonl").string(), 0, 2).ok()) << "line 2 is skipped but still checked";
  EXPECT_FALSE(LoadReasoningProblems((dir / "five.jsonl").string(), 0, 0).ok());
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
  // Per window (for statistics over windows): one entry each, and they add up.
  for (const auto& [domain, t] : r->text) {
    SCOPED_TRACE(domain);
    ASSERT_EQ(t.window_nll.size(), static_cast<size_t>(t.windows));
    ASSERT_EQ(t.window_tokens.size(), static_cast<size_t>(t.windows));
    double nll = 0;
    int64_t tokens = 0;
    for (int w = 0; w < t.windows; ++w) {
      EXPECT_GT(t.window_tokens[static_cast<size_t>(w)], 0);
      nll += t.window_nll[static_cast<size_t>(w)];
      tokens += t.window_tokens[static_cast<size_t>(w)];
    }
    EXPECT_EQ(tokens, t.tokens);
    EXPECT_NEAR(nll / static_cast<double>(tokens), t.nll, 1e-12 * t.nll);
  }
  ASSERT_GE(want->windows, 2);  // ctx 32 cuts the prose into several windows
  EXPECT_EQ(r->text.at("prose").window_nll, want->window_nll);
  ASSERT_EQ(r->reasoning->correct_by_problem.size(), 3u);
  int correct = 0;
  for (uint8_t c : r->reasoning->correct_by_problem) correct += c;
  EXPECT_EQ(correct, r->reasoning->all.correct);
}

TEST(EvalCompare, LossAndGainFromEvalResults) {
  const auto fp = nlohmann::json::parse(R"({"suite": "s", "text": {
      "a": {"ppl": 100.0, "top1_accuracy": 0.30}, "b": {"ppl": 50.0, "top1_accuracy": 0.20}},
      "reasoning": {"accuracy": 0.25, "total": 40}})");
  const auto q = nlohmann::json::parse(R"({"suite": "s", "text": {
      "a": {"ppl": 102.0, "top1_accuracy": 0.29}, "b": {"ppl": 50.5, "top1_accuracy": 0.21}},
      "reasoning": {"accuracy": 0.20, "total": 40}})");
  auto loss = ComputeEvalLoss(fp, q);
  ASSERT_TRUE(loss.ok()) << loss.status().ToString();
  EXPECT_NEAR(loss->ppl_pct, (2.0 + 1.0) / 2, 1e-9);       // +2 % and +1 %
  EXPECT_NEAR(loss->top1_points, (1.0 - 1.0) / 2, 1e-9);   // one point worse, one better
  ASSERT_TRUE(loss->reasoning_points.has_value());
  EXPECT_NEAR(*loss->reasoning_points, 5.0, 1e-9);
  EXPECT_EQ(loss->reasoning_total, 40);

  EXPECT_NEAR(*FaqGain(0.75, 1.5, 0.02), 0.5, 1e-12);
  EXPECT_NEAR(*FaqGain(3.0, 1.5, 0.02), -1.0, 1e-12);       // worse than the baseline: negative gain
  EXPECT_FALSE(FaqGain(0.01, 0.015, 0.02).has_value());     // baseline within the resolution
  EXPECT_FALSE(FaqGain(0.01, -0.5, 0.0).has_value());       // no loss to cut

  auto other = q;
  other["suite"] = "t";
  EXPECT_FALSE(ComputeEvalLoss(fp, other).ok());
  auto missing = q;
  missing["text"].erase("b");
  EXPECT_FALSE(ComputeEvalLoss(fp, missing).ok());
  EXPECT_FALSE(ComputeEvalLoss(fp, nlohmann::json::parse("[1, 2]")).ok());
}

}  // namespace
}  // namespace famq
