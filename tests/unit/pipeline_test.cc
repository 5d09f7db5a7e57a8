// The host stage's parts on the tiny random checkpoint: calibration input,
// regeneration prompts and groups, scoring, re-normalization, the
// completions service, and the OpenAI backend against misbehaving servers.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <sstream>
#include <mutex>
#include <thread>

#include "pipeline/batch_decoder.h"
#include "pipeline/calib_input.h"
#include "pipeline/family.h"
#include "pipeline/records.h"
#include "pipeline/regenerate.h"
#include "pipeline/renormalize.h"
#include "pipeline/scoring.h"
#include "serve/completions.h"
#include "chat_template/chat_template.h"
#ifdef FAMQ_HAVE_HTTP
#include <httplib.h>

#include "pipeline/openai_backend.h"
#endif

namespace famq {
namespace {

const std::string kModel = std::string(FAMQ_SOURCE_DIR) + "/tests/data/tiny-random-qwen3";

std::string TempFile(const std::string& name, const std::string& content) {
  const auto dir = std::filesystem::temp_directory_path() / ("famq_pipeline_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / name).string();
  std::ofstream(path, std::ios::binary) << content;
  return path;
}

TEST(CalibInput, ReadsJsonlAndPlainText) {
  auto j = LoadCalibration(TempFile("a.jsonl", "{\"text\": \"one\"}\n\n{\"text\": \"two\", \"domain\": \"x\"}\n"));
  ASSERT_TRUE(j.ok()) << j.status().ToString();
  ASSERT_EQ(j->samples.size(), 2u);
  EXPECT_EQ(j->samples[1].text, "two");
  EXPECT_EQ(j->samples[1].line, 3);
  EXPECT_EQ(j->sha256.size(), 64u);
  auto t = LoadCalibration(TempFile("a.txt", "para one\nline two\n\n\npara two\n"));
  ASSERT_TRUE(t.ok());
  ASSERT_EQ(t->samples.size(), 2u);
  EXPECT_EQ(t->samples[0].text, "para one\nline two");
  EXPECT_EQ(t->samples[1].line, 5);
  auto limited = LoadCalibration(TempFile("b.txt", "a\n\nb\n\nc\n"), 2);
  ASSERT_TRUE(limited.ok());
  EXPECT_EQ(limited->samples.size(), 2u);
}

TEST(CalibInput, BadInputNamesTheLine) {
  auto bad = LoadCalibration(TempFile("bad.jsonl", "{\"text\": \"ok\"}\n{\"text\": 3}\n"));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("bad.jsonl:2"), std::string::npos) << bad.status().ToString();
  auto broken = LoadCalibration(TempFile("broken.jsonl", "{\"text\": \"ok\"}\n\n{\"text\n"));
  ASSERT_FALSE(broken.ok());
  EXPECT_NE(broken.status().message().find("broken.jsonl:3"), std::string::npos);
  EXPECT_FALSE(LoadCalibration(TempFile("empty.jsonl", "")).ok());
  EXPECT_FALSE(LoadCalibration(TempFile("blank.txt", "\n\n  \n")).ok());
  EXPECT_FALSE(LoadCalibration("/nonexistent/calib.jsonl").ok());
  auto preset = LoadCalibrationPreset("no-such-preset", std::string(FAMQ_SOURCE_DIR) + "/models");
  ASSERT_FALSE(preset.ok());
  EXPECT_NE(preset.status().message().find("mixture"), std::string::npos) << preset.status().ToString();
}

TEST(CalibInput, DrawIsSeededWithoutReplacementInFileOrder) {
  std::string text;
  for (int i = 0; i < 40; ++i) {  // appended piece by piece: gcc 12's -Wrestrict misfires on "..." + string on armhf
    text += "{\"text\": \"s";
    text += std::to_string(i);
    text += "\"}\n";
  }
  auto all = LoadCalibration(TempFile("draw.jsonl", text));
  ASSERT_TRUE(all.ok());
  auto a = *all, b = *all, c = *all;
  ASSERT_TRUE(DrawCalibSamples(a, 16, 1).ok());
  ASSERT_TRUE(DrawCalibSamples(b, 16, 1).ok());
  ASSERT_TRUE(DrawCalibSamples(c, 16, 2).ok());
  ASSERT_EQ(a.samples.size(), 16u);
  std::vector<int> la, lb, lc;
  for (const auto& s : a.samples) la.push_back(s.line);
  for (const auto& s : b.samples) lb.push_back(s.line);
  for (const auto& s : c.samples) lc.push_back(s.line);
  EXPECT_EQ(la, lb) << "same seed, same draw";
  EXPECT_NE(la, lc) << "another seed, another draw";
  for (size_t i = 1; i < la.size(); ++i) EXPECT_LT(la[i - 1], la[i]) << "file order, no repeats";
  for (const auto& s : a.samples) EXPECT_EQ(s.text, std::string(1, 's').append(std::to_string(s.line - 1)));
  EXPECT_NE(a.source.find("draw 16 seed 1"), std::string::npos) << a.source;
  auto whole = *all;
  ASSERT_TRUE(DrawCalibSamples(whole, 40, 9).ok());
  EXPECT_EQ(whole.samples.size(), 40u);
  auto too_many = *all;
  EXPECT_FALSE(DrawCalibSamples(too_many, 41, 1).ok());
  EXPECT_FALSE(DrawCalibSamples(too_many, 0, 1).ok());
}

TEST(Regenerate, ChatPromptMasksExactlyTheTemplate) {
  auto m = OpenModelDir(kModel);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  PromptOptions o;
  o.style = PromptStyle::kChat;
  auto p = BuildRegenerationPrompt(*m, "hello world", o);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  ASSERT_EQ(p->ids.size(), p->template_mask.size());
  std::vector<int32_t> original;
  ASSERT_TRUE(m->tokenizer.Encode("hello world", &original).ok());
  EXPECT_EQ(p->original_ids, original);
  std::vector<int32_t> unmasked;
  for (size_t i = 0; i < p->ids.size(); ++i) {
    if (p->template_mask[i] == 0) unmasked.push_back(p->ids[i]);
  }
  EXPECT_EQ(unmasked, original);
  EXPECT_EQ(p->ids.front(), *m->tokenizer.TokenId("<|im_start|>"));
  // The default cue opens the reasoning: the prompt ends with "<think>\n".
  std::vector<int32_t> cue;
  ASSERT_TRUE(m->tokenizer.Encode("<think>\n", &cue).ok());
  EXPECT_TRUE(std::equal(cue.rbegin(), cue.rend(), p->ids.rbegin()));
  // --no-cot: no cue, thinking off.
  o.no_cot = true;
  auto q = BuildRegenerationPrompt(*m, "hello world", o);
  ASSERT_TRUE(q.ok());
  EXPECT_NE(q->ids, p->ids);
  // Base: the original's first P tokens, then the cue.
  PromptOptions b;
  b.style = PromptStyle::kBase;
  b.max_original_tokens = 2;
  auto r = BuildRegenerationPrompt(*m, "hello world and more", b);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->original_ids.size(), 2u);
  EXPECT_EQ(std::count(r->template_mask.begin(), r->template_mask.end(), 0), 2);
}

TEST(Regenerate, GroupsAreDeterministicPerCandidateSeed) {
  auto m = OpenModelDir(kModel);
  ASSERT_TRUE(m.ok());
  EngineOptions eo;
  eo.num_threads = 1;
  auto e = Engine::Create(m->checkpoint, eo);
  ASSERT_TRUE(e.ok());
  std::vector<int32_t> prompt{10, 20, 30, 40};
  GroupParams g;
  g.n = 3;
  g.max_new_tokens = 12;
  g.temperature = 5.0f;  // the random checkpoint is sharply peaked
  g.top_p = 1.0f;
  g.seed = GroupSeed(5, 0);
  auto a = GenerateGroup(**e, prompt, g);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  auto b = GenerateGroup(**e, prompt, g);
  ASSERT_TRUE(b.ok());
  ASSERT_EQ(a->size(), 3u);
  for (size_t j = 0; j < 3; ++j) {
    EXPECT_EQ((*a)[j].ids, (*b)[j].ids);
    EXPECT_EQ((*a)[j].ids.size(), 12u);
  }
  EXPECT_NE((*a)[0].ids, (*a)[1].ids);  // different candidate seeds
  // Candidate j alone (n = j + 1) is the same sequence: no cross-talk through the cache.
  g.n = 1;
  auto single = GenerateGroup(**e, prompt, g);
  ASSERT_TRUE(single.ok());
  EXPECT_EQ((*single)[0].ids, (*a)[0].ids);
  g.max_new_tokens = 1000;  // prompt + max_new beyond the 512 context
  EXPECT_FALSE(GenerateGroup(**e, prompt, g).ok());
}

// The batch decoder gives every group exactly GenerateGroup's candidates,
// whatever else is in flight: groups of several sizes (one larger than the
// slots), samplers, lengths and stop tokens submitted from several threads
// at once, with exclusive expert passes in between.
TEST(BatchDecoder, ConcurrentGroupsGetGenerateGroupsCandidates) {
  auto m = OpenModelDir(kModel);
  ASSERT_TRUE(m.ok());
  EngineOptions eo;
  eo.num_threads = 1;
  eo.max_batch = 8;
  auto ref = Engine::Create(m->checkpoint, eo);
  ASSERT_TRUE(ref.ok());
  eo.max_sequences = 4;  // slot 0 + 3 candidates at a time
  auto eng = Engine::Create(m->checkpoint, eo);
  ASSERT_TRUE(eng.ok());
  auto dec = BatchDecoder::Create(eng->get());
  ASSERT_TRUE(dec.ok()) << dec.status().ToString();
  EXPECT_EQ((*dec)->slots(), 3);

  struct Case {
    std::vector<int32_t> prompt;
    GroupParams g;
    std::vector<GeneratedCandidate> want;
  };
  std::vector<Case> cases;
  for (int i = 0; i < 6; ++i) {
    Case c;
    for (int t = 0; t < 3 + 5 * i; ++t) c.prompt.push_back((17 * t + 31 * i) % 200 + 1);
    c.g.n = std::vector<int>{1, 2, 5, 3, 4, 2}[static_cast<size_t>(i)];
    c.g.max_new_tokens = std::vector<int>{7, 20, 11, 1, 16, 9}[static_cast<size_t>(i)];
    c.g.temperature = i == 4 ? 0.0f : 5.0f;  // one greedy group
    c.g.top_p = i % 2 == 0 ? 1.0f : 0.9f;
    c.g.top_k = i == 5 ? 50 : 0;
    c.g.seed = GroupSeed(9, static_cast<uint64_t>(i));
    cases.push_back(std::move(c));
  }
  // Group 1 stops at a token its first candidate samples third.
  auto probe = GenerateGroup(**ref, cases[1].prompt, cases[1].g);
  ASSERT_TRUE(probe.ok());
  cases[1].g.stop_tokens = {(*probe)[0].ids[2]};
  for (auto& c : cases) {
    auto w = GenerateGroup(**ref, c.prompt, c.g);
    ASSERT_TRUE(w.ok()) << w.status().ToString();
    c.want = std::move(*w);
  }
  EXPECT_TRUE(cases[1].want[0].finished);
  EXPECT_LT(cases[1].want[0].ids.size(), 20u);

  const std::vector<int32_t> expert_ids{5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
  double want_lp = 0.0;
  std::vector<float> want_pooled;
  ExpertBuffers ref_buffers;
  ASSERT_TRUE(RunExpertPass(**ref, expert_ids, 4, 4, &want_lp, &want_pooled, &ref_buffers).ok());

  for (int round = 0; round < 2; ++round) {
    std::vector<Result<std::vector<GeneratedCandidate>>> got(cases.size(), Internal("not run"));
    std::vector<std::thread> threads;
    for (size_t i = 0; i < cases.size(); ++i) {
      threads.emplace_back([&, i] { got[i] = (*dec)->Generate(cases[i].prompt, cases[i].g); });
    }
    double lp = 0.0;
    std::vector<float> pooled;
    ExpertBuffers buffers;
    const Status ex = (*dec)->RunExclusive(
        [&](Engine& e) { return RunExpertPass(e, expert_ids, 4, 4, &lp, &pooled, &buffers); });
    for (auto& t : threads) t.join();
    ASSERT_TRUE(ex.ok()) << ex.ToString();
    EXPECT_EQ(lp, want_lp);
    EXPECT_EQ(pooled, want_pooled);
    for (size_t i = 0; i < cases.size(); ++i) {
      ASSERT_TRUE(got[i].ok()) << got[i].status().ToString();
      ASSERT_EQ(got[i]->size(), cases[i].want.size());
      for (size_t j = 0; j < cases[i].want.size(); ++j) {
        EXPECT_EQ((*got[i])[j].ids, cases[i].want[j].ids) << "round " << round << " group " << i << " candidate " << j;
        EXPECT_EQ((*got[i])[j].finished, cases[i].want[j].finished);
      }
    }
  }
}

TEST(BatchDecoder, RefusesBadRequestsAndGoesOn) {
  auto m = OpenModelDir(kModel);
  ASSERT_TRUE(m.ok());
  EngineOptions eo;
  eo.num_threads = 1;
  auto one = Engine::Create(m->checkpoint, eo);
  ASSERT_TRUE(one.ok());
  EXPECT_FALSE(BatchDecoder::Create(one->get()).ok());  // no slot besides the scratch slot
  eo.max_sequences = 2;
  auto eng = Engine::Create(m->checkpoint, eo);
  ASSERT_TRUE(eng.ok());
  auto dec = BatchDecoder::Create(eng->get());
  ASSERT_TRUE(dec.ok());
  const std::vector<int32_t> prompt{3, 4, 5};
  GroupParams g;
  g.n = 0;
  EXPECT_EQ((*dec)->Generate(prompt, g).status().code(), StatusCode::kInvalidArgument);
  g.n = 2;
  g.max_new_tokens = 1000;  // beyond the 512 context
  EXPECT_EQ((*dec)->Generate(prompt, g).status().code(), StatusCode::kInvalidArgument);
  g.max_new_tokens = 4;
  const std::vector<int32_t> bad{3, 1 << 20};
  EXPECT_EQ((*dec)->Generate(bad, g).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ((*dec)->RunExclusive([](Engine&) { return IoError("work failed"); }).code(), StatusCode::kIoError);
  auto ok = (*dec)->Generate(prompt, g);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  auto want = GenerateGroup(**one, prompt, g);
  ASSERT_TRUE(want.ok());
  for (size_t j = 0; j < 2; ++j) EXPECT_EQ((*ok)[j].ids, (*want)[j].ids);
}

TEST(Scoring, FiltersAndRanks) {
  EXPECT_FLOAT_EQ(Distinct2(std::vector<int32_t>{1, 2, 1, 2, 1, 2}), 2.0f / 5.0f);
  EXPECT_FLOAT_EQ(Distinct2(std::vector<int32_t>{1, 2, 3, 4}), 1.0f);
  EXPECT_FLOAT_EQ(Cosine(std::vector<float>{1, 0}, std::vector<float>{0, 1}), 0.0f);
  EXPECT_NEAR(Cosine(std::vector<float>{1, 2}, std::vector<float>{2, 4}), 1.0f, 1e-6);
  ScoreWeights w;
  PenaltyOptions p;
  p.min_new_tokens = 4;
  std::vector<int32_t> good{1, 2, 3, 4, 5, 6}, loop{7, 7, 7, 7, 7, 7}, shortc{1, 2};
  std::vector<ScoreTerms> s = {CombineScore(-2.0, 0.5f, 1.0f, good, true, w, p),
                               CombineScore(-0.1, 0.9f, 1.0f, loop, true, w, p),
                               CombineScore(-0.5, 0.9f, 1.0f, shortc, true, w, p),
                               CombineScore(-1.0, 0.6f, 1.0f, good, false, w, p)};
  EXPECT_NEAR(s[0].total, -2.0f + 0.5f + 0.5f, 1e-6);
  EXPECT_GE(s[1].penalty, kHardFilterPenalty);
  EXPECT_GE(s[2].penalty, kHardFilterPenalty);
  EXPECT_EQ(TopK(s, 1), (std::vector<uint32_t>{3}));
  EXPECT_EQ(TopK(s, 4), (std::vector<uint32_t>{3, 0}));  // the filtered ones never come back
}

// The expert with BF16 weights read in place (famq select --weights bf16)
// against the fp32 expert on the trained famq-tiny-s (a BF16 checkpoint):
// one group of 6 candidates after a shared prompt. The two engines differ only
// in the order of fp32 sums (engine_test's EngineBf16Weights), so fidelity
// (a mean of log-probabilities) and the pooled states agree to rounding:
// measured (x86-64, FAMQ_FORCE_ISA=ref / avx2 / avx512) max |fidelity diff|
// 0.9e-6 to 3.0e-6 and max |pooled diff| 2.0e-6 to 3.3e-6 of max |pooled| 3.3
// (1e-6 relative); the bounds 1e-4 and 2e-5 x max |pooled| leave 20-30x. The group's ranking by fidelity and by
// consistency with the original must be the same (the winners).
TEST(Scoring, Bf16ExpertRanksAGroupAsTheFp32OneDoes) {
  const std::string tiny_s = std::string(FAMQ_SOURCE_DIR) + "/models/famq-tiny-s";
  auto m = OpenModelDir(tiny_s);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EngineOptions eo;
  eo.num_threads = 2;
  eo.max_seq_len = 128;
  auto fp32 = Expert::Create(*m, eo);
  eo.weights = WeightType::kBf16;
  auto bf16 = Expert::Create(*m, eo);
  ASSERT_TRUE(fp32.ok() && bf16.ok()) << (fp32.ok() ? bf16.status() : fp32.status()).ToString();
  std::vector<int32_t> prompt;
  ASSERT_TRUE(m->tokenizer.Encode("Question: what is 12 + 30? Answer:", &prompt).ok());
  const char* continuations[] = {" 42.", " The sum of 12 and 30 is 42.", " 12 + 30 = 42, so the answer is 42.",
                                 " blue green river stone", " 43.", " Let me think. 12 plus 30 gives 42."};
  std::vector<double> fid[2];
  std::vector<std::vector<float>> pooled[2];
  double max_fid_diff = 0, max_pool_diff = 0, max_pool = 0;
  for (const char* text : continuations) {
    std::vector<int32_t> cont, ids = prompt;
    ASSERT_TRUE(m->tokenizer.Encode(text, &cont).ok());
    ids.insert(ids.end(), cont.begin(), cont.end());
    const int from = static_cast<int>(prompt.size());
    for (int w = 0; w < 2; ++w) {
      double mean = 0;
      std::vector<float> p;
      ASSERT_TRUE((w == 0 ? *fp32 : *bf16)->Run(ids, from, from, &mean, &p).ok());
      fid[w].push_back(mean);
      pooled[w].push_back(std::move(p));
    }
    max_fid_diff = std::max(max_fid_diff, std::fabs(fid[0].back() - fid[1].back()));
    for (size_t i = 0; i < pooled[0].back().size(); ++i) {
      max_pool_diff = std::max(max_pool_diff, static_cast<double>(std::fabs(pooled[0].back()[i] - pooled[1].back()[i])));
      max_pool = std::max(max_pool, static_cast<double>(std::fabs(pooled[0].back()[i])));
    }
  }
  std::printf("bf16 vs fp32 expert: max |fidelity diff| %.3g, max |pooled diff| %.3g of max |pooled| %.3g\n",
              max_fid_diff, max_pool_diff, max_pool);
  EXPECT_LE(max_fid_diff, 1e-4);
  EXPECT_LE(max_pool_diff, 2e-5 * max_pool);
  auto order = [](const std::vector<double>& v) {
    std::vector<size_t> o(v.size());
    std::iota(o.begin(), o.end(), 0);
    std::stable_sort(o.begin(), o.end(), [&](size_t a, size_t b) { return v[a] > v[b]; });
    return o;
  };
  EXPECT_EQ(order(fid[0]), order(fid[1]));
  // Consistency: cosine of each candidate's pooled state with the first one's.
  std::vector<double> cons[2];
  for (int w = 0; w < 2; ++w) {
    for (const auto& p : pooled[w]) {
      double dot = 0, na = 0, nb = 0;
      for (size_t i = 0; i < p.size(); ++i) {
        dot += p[i] * pooled[w][0][i];
        na += p[i] * p[i];
        nb += pooled[w][0][i] * pooled[w][0][i];
      }
      cons[w].push_back(dot / std::sqrt(na * nb));
    }
  }
  EXPECT_EQ(order(cons[0]), order(cons[1]));
}

TEST(Scoring, ServedLogprobsAndEmbeddingsEqualTheExpertBitForBit) {
  auto m = OpenModelDir(kModel);
  ASSERT_TRUE(m.ok());
  EngineOptions eo;
  eo.num_threads = 1;
  eo.max_batch = 5;  // several chunks
  auto ex = Expert::Create(*m, eo);
  ASSERT_TRUE(ex.ok()) << ex.status().ToString();
  auto svc = CompletionService::Create(kModel, "", eo, ServeLimits{});
  ASSERT_TRUE(svc.ok());
  std::vector<int32_t> ids{3, 14, 15, 92, 65, 35, 89, 79, 32, 38, 46, 26};
  for (int from : {0, 1, 4, 7, 11, 30}) {
    double mean = 0.0;
    std::vector<float> pooled;
    ASSERT_TRUE((*ex)->Run(ids, from, from, &mean, &pooled).ok());
    EXPECT_EQ(pooled.size(), 64u);
    // Fidelity: the client's mean over [score_from, n) of the echoed prompt logprobs (through JSON text).
    auto r = (*svc)->Complete({{"prompt", ids}, {"max_tokens", 0}, {"echo", true}, {"logprobs", 0}});
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    const auto lp = nlohmann::json::parse((*r)["choices"][0]["logprobs"]["token_logprobs"].dump());
    ASSERT_EQ(lp.size(), ids.size());
    EXPECT_TRUE(lp[0].is_null());
    const int n = static_cast<int>(ids.size()), score_from = std::clamp(from, 1, n);
    double sum = 0.0;
    int count = 0;
    for (int t = score_from; t < n; ++t, ++count) sum += lp[static_cast<size_t>(t)].get<double>();
    EXPECT_EQ(mean, count > 0 ? sum / count : 0.0) << "score_from " << from;
    // Consistency/diversity: the served embedding with pool_from.
    auto e = (*svc)->Embed({{"input", ids}, {"pool_from", from}});
    ASSERT_TRUE(e.ok()) << e.status().ToString();
    const auto data = nlohmann::json::parse((*e)["data"].dump());
    EXPECT_EQ(data[0]["pool_from"].get<int>(), std::min(from, n - 1));
    EXPECT_EQ(data[0]["embedding"].get<std::vector<float>>(), pooled) << "pool_from " << from;
  }
  EXPECT_EQ((*svc)->Embed({{"input", ids}, {"encoding_format", "int8"}}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_FALSE((*svc)->Embed({{"input", ids}, {"pool_from", -1}}).ok());
  EXPECT_FALSE((*svc)->Embed({{"input", nlohmann::json::array()}}).ok());
  EXPECT_EQ((*svc)->Embed({{"input", ids}, {"model", "x"}}).status().code(), StatusCode::kNotFound);
  auto text = (*svc)->Embed({{"input", std::vector<std::string>{"hello world"}}});
  ASSERT_TRUE(text.ok()) << text.status().ToString();
  EXPECT_EQ((*text)["data"][0]["embedding"].size(), 64u);
}

GroupRecord MakeGroup(uint32_t group, std::vector<float> scores, std::vector<uint32_t> kept) {
  GroupRecord g;
  g.group = group;
  g.original_ids = {100, 101, 102};
  g.original_text = "orig";
  g.prompt_ids = {1, 2, 50, 51, 3};
  g.template_mask = {1, 1, 0, 0, 1};
  for (size_t j = 0; j < scores.size(); ++j) {
    CandidateRecord c;
    c.ids = {static_cast<int32_t>(200 + j), 201, 202, 203};
    ScoreTerms t;
    t.total = scores[j];
    c.scores = t;
    g.candidates.push_back(c);
  }
  g.kept = std::move(kept);
  g.selected = true;
  return g;
}

TEST(Renormalize, GroupMassSoftmaxPackingAndMasks) {
  std::vector<GroupRecord> groups = {MakeGroup(0, {1.0f, 0.0f, -1.0f}, {0, 1}), MakeGroup(1, {0.5f, 0.2f}, {0}),
                                     MakeGroup(2, {0.1f}, {})};  // group 2: all filtered
  RenormOptions o;
  o.seq_len = 12;
  o.separator = 9;
  int fallbacks = -1;
  auto s = Renormalize(groups, o, &fallbacks);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(fallbacks, 1);
  ASSERT_EQ(s->size(), 4u);
  double total = 0.0, g0 = 0.0;
  for (const auto& x : *s) {
    total += x.weight;
    if (x.group == 0) g0 += x.weight;
    // Packed to L; the stand-in original runs out of other originals at 11.
    EXPECT_EQ(x.tokens.size(), x.regenerated ? 12u : 11u);
    EXPECT_EQ(x.token_mask[0], 0);  // the attention sink
  }
  EXPECT_NEAR(total, 1.0, 1e-6);
  EXPECT_NEAR(g0, 1.0 / 3.0, 1e-6);
  EXPECT_NEAR((*s)[0].weight / (*s)[1].weight, std::exp(1.0), 1e-4);  // softmax(score / tau)
  EXPECT_NEAR((*s)[2].weight, 1.0 / 3.0, 1e-6);
  // Kept sample: prompt (template masked) + generation, then the separator and the next candidate.
  EXPECT_EQ((*s)[0].tokens, (std::vector<int32_t>{1, 2, 50, 51, 3, 200, 201, 202, 203, 9, 1, 2}));
  EXPECT_EQ((*s)[0].token_mask, (std::vector<uint8_t>{0, 0, 1, 1, 0, 1, 1, 1, 1, 0, 0, 0}));
  EXPECT_TRUE((*s)[0].regenerated);
  EXPECT_FALSE((*s)[3].regenerated);  // the stand-in original of group 2
  EXPECT_EQ((*s)[3].tokens[0], 100);

  RenormOptions orig = o;
  orig.originals_only = true;
  auto base = Renormalize(groups, orig, nullptr);
  ASSERT_TRUE(base.ok());
  ASSERT_EQ(base->size(), 3u);
  EXPECT_EQ((*base)[0].tokens, (std::vector<int32_t>{100, 101, 102, 9, 100, 101, 102, 9, 100, 101, 102}));
  for (const auto& x : *base) EXPECT_NEAR(x.weight, 1.0 / 3.0, 1e-6);

  RenormOptions plain = o;
  plain.no_renorm = true;
  auto nr = Renormalize(groups, plain, nullptr);
  ASSERT_TRUE(nr.ok());
  for (const auto& x : *nr) {
    EXPECT_NEAR(x.weight, 0.25, 1e-6);
    EXPECT_EQ(std::accumulate(x.token_mask.begin(), x.token_mask.end(), 0), static_cast<int>(x.tokens.size()));
  }
  EXPECT_EQ((*nr)[0].tokens.size(), 9u);  // not packed

  RenormOptions mix = o;
  mix.original_mix = 0.25f;
  auto mx = Renormalize(groups, mix, nullptr);
  ASSERT_TRUE(mx.ok());
  double originals = 0.0;
  for (size_t i = 4; i < mx->size(); ++i) originals += (*mx)[i].weight;
  EXPECT_NEAR(originals, 0.25, 1e-6);
  EXPECT_FALSE(Renormalize({MakeGroup(0, {1.0f}, {0})}, RenormOptions{1, 1.0f}, nullptr).ok());  // L < 2
}

TEST(Family, SameTokenizerIsOneFamily) {
  const std::string llama = std::string(FAMQ_SOURCE_DIR) + "/tests/data/tiny-random-llama";
  auto a = OpenModelDir(kModel);
  auto b = OpenModelDir(llama);
  ASSERT_TRUE(a.ok() && b.ok());
  auto ma = DescribeMember(*a, kModel);
  auto mb = DescribeMember(*b, llama);
  ASSERT_TRUE(ma.ok()) << ma.status().ToString();
  ASSERT_TRUE(mb.ok()) << mb.status().ToString();
  EXPECT_GT(ma->parameters, 0u);
  EXPECT_TRUE(CheckSameFamily(*ma, *ma, "regenerator", false).ok());
  // The two fixtures share one tokenizer file: one family, whatever the architecture.
  EXPECT_EQ(ma->tokenizer_sha256, mb->tokenizer_sha256);
  EXPECT_NE(ma->config_sha256, mb->config_sha256);
  EXPECT_TRUE(CheckSameFamily(*ma, *mb, "regenerator", false).ok());
  FamilyMember foreign = *mb;
  foreign.tokenizer_sha256 = std::string(64, '0');
  Status s = CheckSameFamily(*ma, foreign, "regenerator", false);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("--allow-foreign-family"), std::string::npos);
  EXPECT_TRUE(CheckSameFamily(*ma, foreign, "regenerator", true).ok());
}

// The group parameters a completions request with these fields stands for.
GroupParams ServedParams(int n, int max_tokens, uint64_t seed, float temperature, float top_p,
                         std::vector<int32_t> stops) {
  GroupParams g;
  g.n = n;
  g.max_new_tokens = max_tokens;
  g.seed = seed;
  g.temperature = temperature;
  g.top_p = top_p;
  g.stop_tokens = std::move(stops);
  return g;
}

TEST(CompletionService, ValidatesRequests) {
  EngineOptions eo;
  eo.num_threads = 1;
  auto svc = CompletionService::Create(kModel, "tiny", eo, ServeLimits{});
  ASSERT_TRUE(svc.ok());
  auto& s = **svc;
  EXPECT_EQ(s.Models()["data"][0]["id"], "tiny");
  EXPECT_EQ(s.Complete({{"prompt", "hi"}, {"model", "other"}}).status().code(), StatusCode::kNotFound);
  EXPECT_FALSE(s.Complete({{"prompt", "hi"}, {"n", 0}}).ok());
  EXPECT_FALSE(s.Complete({{"prompt", std::vector<int>{1, 100000}}}).ok());
  EXPECT_FALSE(s.Complete({{"prompt", "hi"}, {"max_tokens", 100000}}).ok());
  EXPECT_FALSE(s.Complete({{"prompt", 5}}).ok());
  EXPECT_FALSE(s.Complete(nlohmann::json::array()).ok());
  EXPECT_FALSE(s.Complete({{"prompt", "hi"}, {"temperature", "hot"}}).ok());
  // Same request, same choices; and the choices are GenerateGroup's.
  nlohmann::json req{{"prompt", std::vector<int>{5, 6, 7}}, {"n", 2}, {"max_tokens", 8}, {"seed", 11},
                     {"temperature", 0.9}, {"top_p", 0.9}};
  auto r1 = s.Complete(req), r2 = s.Complete(req);
  ASSERT_TRUE(r1.ok() && r2.ok());
  EXPECT_EQ((*r1)["choices"], (*r2)["choices"]);
  auto m = OpenModelDir(kModel);
  ASSERT_TRUE(m.ok());
  auto e = Engine::Create(m->checkpoint, eo);
  ASSERT_TRUE(e.ok());
  auto direct = GenerateGroup(**e, std::vector<int32_t>{5, 6, 7}, ServedParams(2, 8, 11, 0.9f, 0.9f, m->stop_tokens));
  ASSERT_TRUE(direct.ok());
  for (int j = 0; j < 2; ++j) {
    EXPECT_EQ((*r1)["choices"][j]["token_ids"].get<std::vector<int32_t>>(), (*direct)[static_cast<size_t>(j)].ids);
  }
}

TEST(CompletionService, ChatCompletionsRenderTheTemplateAndValidate) {
  EngineOptions eo;
  eo.num_threads = 1;
  auto svc = CompletionService::Create(kModel, "tiny", eo, ServeLimits{});
  ASSERT_TRUE(svc.ok());
  auto& s = **svc;
  const nlohmann::json msgs = nlohmann::json::array({{{"role", "user"}, {"content", "hello world"}}});
  nlohmann::json req{{"messages", msgs}, {"n", 2}, {"max_tokens", 6}, {"seed", 3}, {"temperature", 0.9},
                     {"chat_template_kwargs", {{"enable_thinking", false}}}};
  auto r = s.ChatComplete(req);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ((*r)["choices"].size(), 2u);
  EXPECT_EQ((*r)["object"], "chat.completion");
  EXPECT_EQ((*r)["choices"][1]["message"]["role"], "assistant");
  EXPECT_TRUE((*r)["choices"][1]["message"]["content"].is_string());
  // The choices are GenerateGroup's over the rendered template (thinking off, generation prompt).
  auto m = OpenModelDir(kModel);
  ASSERT_TRUE(m.ok());
  auto tmpl = ChatTemplate::Parse(m->tokenizer_config->chat_template);
  ASSERT_TRUE(tmpl.ok());
  ChatTemplateOptions opt;
  opt.enable_thinking = false;
  opt.bos_token = m->tokenizer_config->bos_token;
  opt.eos_token = m->tokenizer_config->eos_token;
  auto rendered = tmpl->Render({ChatMessage{"user", "hello world"}}, opt);
  ASSERT_TRUE(rendered.ok());
  std::vector<int32_t> prompt;
  ASSERT_TRUE(m->tokenizer.Encode(*rendered, &prompt).ok());
  EXPECT_EQ((*r)["usage"]["prompt_tokens"].get<size_t>(), prompt.size());
  auto e = Engine::Create(m->checkpoint, eo);
  ASSERT_TRUE(e.ok());
  auto direct = GenerateGroup(**e, prompt, ServedParams(2, 6, 3, 0.9f, 1.0f, m->stop_tokens));
  ASSERT_TRUE(direct.ok());
  for (int j = 0; j < 2; ++j) {
    EXPECT_EQ((*r)["choices"][j]["token_ids"].get<std::vector<int32_t>>(), (*direct)[static_cast<size_t>(j)].ids);
  }
  nlohmann::json mct = req;
  mct.erase("max_tokens");
  mct["max_completion_tokens"] = 3;
  auto short_r = s.ChatComplete(mct);
  ASSERT_TRUE(short_r.ok()) << short_r.status().ToString();
  EXPECT_LE((*short_r)["choices"][0]["token_ids"].size(), 3u);
  // Validation.
  EXPECT_FALSE(s.ChatComplete({{"messages", nlohmann::json::array()}}).ok());
  EXPECT_FALSE(s.ChatComplete({{"messages", "hi"}}).ok());
  EXPECT_FALSE(s.ChatComplete({{"messages", nlohmann::json::array({{{"role", "user"}}})}}).ok());
  EXPECT_FALSE(s.ChatComplete({{"messages", nlohmann::json::array({{{"role", "user"}, {"content", 5}}})}}).ok());
  EXPECT_FALSE(s.ChatComplete({{"messages", msgs}, {"chat_template_kwargs", 1}}).ok());
  EXPECT_FALSE(s.ChatComplete({{"messages", msgs}, {"n", 0}}).ok());
  EXPECT_EQ(s.ChatComplete({{"messages", msgs}, {"model", "x"}}).status().code(), StatusCode::kNotFound);
  // chat-only: n > 1 refused, n = 1 served.
  ServeLimits chat_only;
  chat_only.api = ServeApi::kChatOnly;
  auto co = CompletionService::Create(kModel, "tiny", eo, chat_only);
  ASSERT_TRUE(co.ok());
  auto refused = (*co)->ChatComplete({{"messages", msgs}, {"n", 2}, {"max_tokens", 2}});
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("chat-only"), std::string::npos) << refused.status().ToString();
  EXPECT_TRUE((*co)->ChatComplete({{"messages", msgs}, {"max_tokens", 2}}).ok());
}

#ifdef FAMQ_HAVE_HTTP
// A server that misbehaves in a chosen way, on a free loopback port.
using FakeHandler = std::function<void(const httplib::Request&, httplib::Response&)>;

class FakeServer {
 public:
  // A null handler leaves its route out (404).
  explicit FakeServer(FakeHandler completions, FakeHandler chat = nullptr, FakeHandler embeddings = nullptr) {
    svr_.Get("/v1/models", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(R"({"data":[{"id":"m"}]})", "application/json");
    });
    if (completions) svr_.Post("/v1/completions", completions);
    if (chat) svr_.Post("/v1/chat/completions", chat);
    if (embeddings) svr_.Post("/v1/embeddings", embeddings);
    port_ = svr_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { svr_.listen_after_bind(); });
  }
  ~FakeServer() {
    svr_.stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  httplib::Server svr_;
  int port_ = 0;
  std::thread thread_;
};

TEST(OpenAIBackend, ClearErrorsWhenTheServerMisbehaves) {
  auto m = OpenModelDir(kModel);
  ASSERT_TRUE(m.ok());
  GroupParams g;
  g.n = 2;
  g.max_new_tokens = 4;
  OpenAIBackendOptions o;
  o.retries = 1;
  o.backoff_s = 0.01;
  o.timeout_s = 5;
  {
    FakeServer garbage([](const httplib::Request&, httplib::Response& res) { res.set_content("<html>oops", "text/html"); });
    o.url = garbage.url();
    auto b = MakeOpenAIBackend(o, &m->tokenizer);
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    auto r = (*b)->Generate(GroupRequest{{1, 2}, "hi", false}, g);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("garbage"), std::string::npos) << r.status().ToString();
  }
  {
    int calls = 0;
    FakeServer failing([&](const httplib::Request&, httplib::Response& res) {
      ++calls;
      res.status = 503;
      res.set_content("overloaded", "text/plain");
    });
    o.url = failing.url();
    auto b = MakeOpenAIBackend(o, &m->tokenizer);
    ASSERT_TRUE(b.ok());
    auto r = (*b)->Generate(GroupRequest{{1, 2}, "hi", false}, g);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(calls, 3);  // the probe at connect (no retries), the first attempt, 1 retry
    EXPECT_NE(r.status().message().find("503"), std::string::npos) << r.status().ToString();
  }
  {
    FakeServer few([](const httplib::Request&, httplib::Response& res) {
      res.set_content(R"({"choices":[{"index":0,"text":"a","token_ids":[5],"finish_reason":"length"}]})",
                      "application/json");
    });
    o.url = few.url();
    auto b = MakeOpenAIBackend(o, &m->tokenizer);
    ASSERT_TRUE(b.ok());
    auto r = (*b)->Generate(GroupRequest{{1, 2}, "hi", false}, g);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("expected 2 choices"), std::string::npos) << r.status().ToString();
  }
  {
    FakeServer bad_request([](const httplib::Request&, httplib::Response& res) {
      res.status = 400;
      res.set_content(R"({"error":{"message":"n too large"}})", "application/json");
    });
    o.url = bad_request.url();
    auto b = MakeOpenAIBackend(o, &m->tokenizer);
    ASSERT_TRUE(b.ok());
    auto r = (*b)->Generate(GroupRequest{{1, 2}, "hi", false}, g);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("n too large"), std::string::npos) << r.status().ToString();
  }
  // Nobody listening.
  o.url = "http://127.0.0.1:1";
  o.retries = 0;
  auto down = MakeOpenAIBackend(o, &m->tokenizer);
  ASSERT_FALSE(down.ok());
  EXPECT_NE(down.status().message().find("cannot reach"), std::string::npos) << down.status().ToString();
  o.url = "ftp://x";
  EXPECT_FALSE(MakeOpenAIBackend(o, &m->tokenizer).ok());
}

// Issue 15 item 8: a server's junk token ids (std::stol threw), ids outside
// the vocabulary, float indices (undefined behaviour as int) and deeply
// nested replies (dumping them overflowed the stack) are clear errors.
TEST(OpenAIBackend, JunkRepliesAreClearErrors) {
  auto m = OpenModelDir(kModel);
  ASSERT_TRUE(m.ok());
  GroupParams g;
  g.n = 1;
  g.max_new_tokens = 2;
  OpenAIBackendOptions o;
  o.retries = 0;
  o.timeout_s = 5;
  const std::string deep = R"({"choices": )" + std::string(300000, '[') + std::string(300000, ']') + "}";
  const struct {
    std::string reply, error;
  } cases[] = {
      {R"({"choices":[{"index":0,"text":"a","logprobs":{"tokens":["token_id:12junk"]}}]})", "'token_id:12junk'"},
      {R"({"choices":[{"index":0,"text":"a","logprobs":{"tokens":["token_id:"]}}]})", "outside the vocabulary"},
      {R"({"choices":[{"index":0,"text":"a","logprobs":{"tokens":["token_id:99999999999999999999"]}}]})",
       "outside the vocabulary"},
      {R"({"choices":[{"index":0,"text":"a","logprobs":{"tokens":["token_id:-3"]}}]})", "outside the vocabulary"},
      {R"({"choices":[{"index":0,"text":"a","token_ids":[5, 384]}]})", "token id 384, outside the vocabulary of 384"},
      {R"({"choices":[{"index":0,"text":"a","token_ids":[4294967301]}]})", "outside the vocabulary"},
      {R"({"choices":[{"index":0,"text":"a","token_ids":[18446744073709551615]}]})", "outside the vocabulary"},
      {R"({"choices":[{"index":1e30,"text":"a","token_ids":[5]}]})", "choice index out of range"},
      {R"({"choices":[{"index":0.5,"text":"a","token_ids":[5]}]})", "choice index out of range"},
      {deep, "nest"},
  };
  for (const auto& c : cases) {
    FakeServer junk([&](const httplib::Request&, httplib::Response& res) { res.set_content(c.reply, "application/json"); });
    o.url = junk.url();
    auto b = MakeOpenAIBackend(o, &m->tokenizer);
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    auto r = (*b)->Generate(GroupRequest{{1, 2}, "hi", false}, g);
    ASSERT_FALSE(r.ok()) << c.reply.substr(0, 100);
    EXPECT_NE(r.status().message().find(c.error), std::string::npos) << r.status().ToString();
  }
  // Scoring: an embedding outside float's range (undefined behaviour as float) and a deep reply.
  FakeHandler echo = [](const httplib::Request&, httplib::Response& res) {
    res.set_content(R"({"choices":[{"index":0,"text":"","logprobs":{"token_logprobs":[null,-1.5]}}]})",
                    "application/json");
  };
  for (const std::string& reply : {std::string(R"({"data":[{"index":0,"embedding":[1e300],"pool_from":1}]})"),
                                   R"({"data": )" + std::string(300000, '[') + std::string(300000, ']') + "}"}) {
    FakeServer bad_embed(echo, nullptr, [&](const httplib::Request&, httplib::Response& res) {
      res.set_content(reply, "application/json");
    });
    o.url = bad_embed.url();
    auto p = ProbeOpenAIScorer(o, 512);
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    EXPECT_FALSE(p->exact());  // refused: neither embeddings path from this server
    EXPECT_EQ(p->server->pool_path(), "");
    EXPECT_FALSE(p->pool_detail.empty());
  }
}

TEST(OpenAIBackend, ChatOnlyServersRegenerateOneRequestPerCandidate) {
  auto m = OpenModelDir(kModel);
  ASSERT_TRUE(m.ok());
  std::vector<nlohmann::json> seen;
  std::mutex mu;
  FakeServer chat_only(nullptr, [&](const httplib::Request& req, httplib::Response& res) {
    std::lock_guard<std::mutex> lock(mu);
    seen.push_back(nlohmann::json::parse(req.body));
    // The third answer splits its thinking off, like vLLM's reasoning parsers.
    const std::string reasoning = seen.size() == 3 ? R"(,"reasoning_content":"why")" : "";
    res.set_content(R"({"choices":[{"index":0,"message":{"role":"assistant","content":"hello")" + reasoning +
                        R"(},"finish_reason":"stop"}]})",
                    "application/json");
  });
  OpenAIBackendOptions o;
  o.url = chat_only.url();
  o.retries = 0;
  auto b = MakeOpenAIBackend(o, &m->tokenizer);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ((*b)->Describe(), "openai-chat:" + chat_only.url());
  GroupParams g;
  g.n = 3;
  g.max_new_tokens = 4;
  g.seed = 77;
  g.stop_tokens = m->stop_tokens;
  auto r = (*b)->Generate(GroupRequest{{1, 2}, "the original", true}, g);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 3u);
  ASSERT_EQ(seen.size(), 3u);
  std::vector<int32_t> hello;
  ASSERT_TRUE(m->tokenizer.Encode("hello", &hello).ok());
  hello.push_back(m->stop_tokens.front());  // finished: the stop token is kept like the engine keeps it
  std::vector<int32_t> thought;
  ASSERT_TRUE(m->tokenizer.Encode("<think>\nwhy\n</think>\n\nhello", &thought).ok());
  thought.push_back(m->stop_tokens.front());
  for (uint64_t j = 0; j < 3; ++j) {
    EXPECT_EQ(seen[j]["n"], 1);
    EXPECT_EQ(seen[j]["seed"].get<uint64_t>(), CandidateSeed(77, j));
    EXPECT_EQ(seen[j]["messages"][0]["content"], "the original");
    EXPECT_EQ(seen[j]["chat_template_kwargs"]["enable_thinking"], false);
    EXPECT_EQ((*r)[j].ids, j == 2 ? thought : hello);
    EXPECT_TRUE((*r)[j].finished);
  }
}

std::string Fixture(const std::string& name) {
  std::ifstream f(std::string(FAMQ_SOURCE_DIR) + "/tests/unit/openai_fixtures/" + name);
  std::stringstream ss;
  ss << f.rdbuf();
  EXPECT_FALSE(ss.str().empty()) << name;
  return ss.str();
}

// Issue 19: the sampled ids come from what llama-server and vLLM send
// (replies shaped like theirs, tests/unit/openai_fixtures/), re-tokenizing
// only when they send none; the source is recorded per candidate.
TEST(OpenAIBackend, TokenIdsFromWhatServersSend) {
  auto m = OpenModelDir(kModel);
  ASSERT_TRUE(m.ok());
  OpenAIBackendOptions o;
  o.retries = 0;
  o.timeout_s = 5;
  GroupParams g;
  g.max_new_tokens = 4;
  g.stop_tokens = m->stop_tokens;
  const int32_t stop = m->stop_tokens.front();
  struct Case {
    std::string fixture;
    bool chat;
    int n;
    std::vector<std::vector<int32_t>> ids;
    std::string from;
    bool asks_logprobs;  // the generation request asked for logprobs (no token_ids in the probe's answer)
  };
  const Case cases[] = {
      {"llama_server_completions.json", false, 1, {{64, 65, 220, 66}}, "logprobs.content.id", true},
      {"llama_server_chat.json", true, 1, {{66, 64, 65, stop}}, "logprobs.content.id", true},
      {"vllm_completions.json", false, 2, {{64, 65, 66}, {66, 64, stop}}, "token_ids", false},
      {"vllm_chat.json", true, 1, {{64, 65, 64, stop}}, "token_ids", true},
      {"vllm_old_completions.json", false, 1, {{65, 64}}, "logprobs.tokens", true},
  };
  for (const Case& c : cases) {
    const std::string reply = Fixture(c.fixture);
    std::vector<nlohmann::json> seen;
    std::mutex mu;
    FakeHandler handler = [&](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard<std::mutex> lock(mu);
      seen.push_back(nlohmann::json::parse(req.body));
      res.set_content(reply, "application/json");
    };
    FakeServer server(c.chat ? nullptr : handler, c.chat ? handler : nullptr);
    o.url = server.url();
    auto b = MakeOpenAIBackend(o, &m->tokenizer);
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    g.n = c.n;
    auto r = (*b)->Generate(GroupRequest{{1, 2}, "hi", false}, g);
    ASSERT_TRUE(r.ok()) << c.fixture << ": " << r.status().ToString();
    ASSERT_EQ(r->size(), c.ids.size()) << c.fixture;
    for (size_t j = 0; j < c.ids.size(); ++j) {
      EXPECT_EQ((*r)[j].ids, c.ids[j]) << c.fixture << " choice " << j;
      EXPECT_EQ((*r)[j].ids_from, c.from) << c.fixture;
    }
    ASSERT_FALSE(seen.empty());
    const nlohmann::json& last = seen.back();
    EXPECT_EQ(last.value("return_token_ids", false), true) << c.fixture;
    EXPECT_EQ(last.contains("logprobs"), c.asks_logprobs) << c.fixture << ": " << last.dump();
    if (c.asks_logprobs && !c.chat) {
      EXPECT_EQ(last["logprobs"], 1);  // llama-server sends none for 0
    }
    if (c.asks_logprobs && c.chat) {
      EXPECT_EQ(last["top_logprobs"], 1);
    }
  }
  // A chat server that sends token_ids is not asked for logprobs again.
  {
    std::vector<nlohmann::json> seen;
    FakeServer vllm_chat(nullptr, [&](const httplib::Request& req, httplib::Response& res) {
      seen.push_back(nlohmann::json::parse(req.body));
      res.set_content(Fixture("vllm_chat.json"), "application/json");
    });
    o.url = vllm_chat.url();
    auto b = MakeOpenAIBackend(o, &m->tokenizer);
    ASSERT_TRUE(b.ok());
    g.n = 2;
    ASSERT_TRUE((*b)->Generate(GroupRequest{{1, 2}, "hi", false}, g).ok());
    ASSERT_EQ(seen.size(), 2u);
    EXPECT_TRUE(seen[0].contains("logprobs"));
    EXPECT_FALSE(seen[1].contains("logprobs"));
  }
  // No ids at all: re-tokenized, and marked so.
  {
    FakeServer plain([](const httplib::Request&, httplib::Response& res) {
      res.set_content(R"({"choices":[{"index":0,"text":"hello","logprobs":null,"finish_reason":"length"}]})",
                      "application/json");
    });
    o.url = plain.url();
    auto b = MakeOpenAIBackend(o, &m->tokenizer);
    ASSERT_TRUE(b.ok());
    g.n = 1;
    auto r = (*b)->Generate(GroupRequest{{1, 2}, "hi", false}, g);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    std::vector<int32_t> hello;
    ASSERT_TRUE(m->tokenizer.Encode("hello", &hello).ok());
    EXPECT_EQ((*r)[0].ids, hello);
    EXPECT_EQ((*r)[0].ids_from, "retokenized");
  }
  // Wrong types and inconsistent counts: clear errors, never a crash.
  const struct {
    std::string reply, error;
  } bad[] = {
      {R"({"choices":[{"index":0,"text":"a","logprobs":{"content":[{"id":"64","token":"a"}]}}]})",
       "logprobs.content[].id holds a non-integer"},
      {R"({"choices":[{"index":0,"text":"a","logprobs":{"content":[{"id":64.5,"token":"a"}]}}]})",
       "non-integer"},
      {R"({"choices":[{"index":0,"text":"a","logprobs":{"content":[{"id":999,"token":"a"}]}}]})",
       "token id 999, outside the vocabulary of 384"},
      {R"({"choices":[{"index":0,"text":"a","logprobs":{"content":[{"id":-1,"token":"a"}]}}]})",
       "outside the vocabulary"},
      {R"({"choices":[{"index":0,"text":"a","token_ids":"64"}]})", "token_ids is not an array"},
      {R"({"choices":[{"index":0,"text":"a","token_ids":[64],"logprobs":{"content":[{"id":65,"token":"b"}]}}]})",
       "disagree"},
      {R"({"choices":[{"index":0,"text":"a","token_ids":[64,65,66,67,68]}],"usage":{"completion_tokens":1}})",
       "sent 5 token ids but counts 1 completion tokens"},
      {R"({"choices":[{"index":0,"text":"a","token_ids":[64]}],"usage":{"completion_tokens":"one"}})",
       "usage.completion_tokens is not a count"},
  };
  for (const auto& c : bad) {
    FakeServer junk([&](const httplib::Request&, httplib::Response& res) { res.set_content(c.reply, "application/json"); });
    o.url = junk.url();
    auto b = MakeOpenAIBackend(o, &m->tokenizer);
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    auto r = (*b)->Generate(GroupRequest{{1, 2}, "hi", false}, g);
    ASSERT_FALSE(r.ok()) << c.reply;
    EXPECT_NE(r.status().message().find(c.error), std::string::npos) << r.status().ToString();
  }
}

// llama-server builds that refuse n > 1 ("Only one completion choice is
// allowed"): one completions request per candidate, the prompt still famq's
// token ids, seeds CandidateSeed(group seed, j).
TEST(OpenAIBackend, ServersThatRefuseNGetOneRequestPerCandidate) {
  auto m = OpenModelDir(kModel);
  ASSERT_TRUE(m.ok());
  const std::string reply = Fixture("llama_server_completions.json");
  std::vector<nlohmann::json> seen;
  std::mutex mu;
  FakeServer llama([&](const httplib::Request& req, httplib::Response& res) {
    std::lock_guard<std::mutex> lock(mu);
    seen.push_back(nlohmann::json::parse(req.body));
    if (seen.back().value("n", 1) != 1) {
      res.status = 400;
      res.set_content(R"({"error":{"code":400,"message":"Only one completion choice is allowed",)"
                      R"("type":"invalid_request_error"}})",
                      "application/json");
      return;
    }
    res.set_content(reply, "application/json");
  });
  OpenAIBackendOptions o;
  o.url = llama.url();
  o.retries = 0;
  auto b = MakeOpenAIBackend(o, &m->tokenizer);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ((*b)->Describe(), "openai:" + llama.url() + " (n = 1 per candidate)");
  GroupParams g;
  g.n = 3;
  g.max_new_tokens = 4;
  g.seed = 11;
  const size_t probes = seen.size();
  EXPECT_EQ(probes, 2u);  // n = 2 refused, n = 1 answered
  auto r = (*b)->Generate(GroupRequest{{1, 2, 3}, "hi", false}, g);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 3u);
  ASSERT_EQ(seen.size(), probes + 3);
  for (uint64_t j = 0; j < 3; ++j) {
    const auto& req = seen[probes + j];
    EXPECT_EQ(req["n"], 1);
    EXPECT_EQ(req["seed"].get<uint64_t>(), CandidateSeed(11, j));
    EXPECT_EQ(req["prompt"], nlohmann::json::array({1, 2, 3}));
    EXPECT_EQ((*r)[j].ids, (std::vector<int32_t>{64, 65, 220, 66}));
    EXPECT_EQ((*r)[j].ids_from, "logprobs.content.id");
  }
}

// Issue 19: --api-key / FAMQ_BACKEND_API_KEY goes as "Authorization: Bearer"
// to every request (models, regeneration, scoring); 401/403 are clear errors
// (also in the scoring probe: not a fallback), and no message holds the key.
TEST(OpenAIBackend, ApiKeyIsSentAndNeverShown) {
  auto m = OpenModelDir(kModel);
  ASSERT_TRUE(m.ok());
  const std::string key = "sk-test-Zq81xK2v";
  httplib::Server svr;
  std::mutex mu;
  std::vector<std::string> seen;  // "path auth" per request
  const auto authorized = [&](const httplib::Request& req, httplib::Response& res) {
    std::lock_guard<std::mutex> lock(mu);
    seen.push_back(req.path + " " + req.get_header_value("Authorization"));
    if (req.get_header_value("Authorization") == "Bearer " + key) return true;
    res.status = req.has_header("Authorization") ? 403 : 401;
    // Some servers quote what they got: the client must not print it.
    res.set_content(R"({"error":{"message":"bad key: )" + req.get_header_value("Authorization") + R"("}})",
                    "application/json");
    return false;
  };
  svr.Get("/v1/models", [&](const httplib::Request& req, httplib::Response& res) {
    // Public, like llama-server's /v1/models: the key is checked on the work routes.
    std::lock_guard<std::mutex> lock(mu);
    seen.push_back(req.path + " " + req.get_header_value("Authorization"));
    res.set_content(R"({"data":[{"id":"m"}]})", "application/json");
  });
  svr.Post("/v1/completions", [&](const httplib::Request& req, httplib::Response& res) {
    if (!authorized(req, res)) return;
    const auto body = nlohmann::json::parse(req.body);
    if (body.value("echo", false)) {
      res.set_content(R"({"choices":[{"index":0,"text":"","logprobs":{"token_logprobs":[null,-1.5]}}]})",
                      "application/json");
    } else {
      res.set_content(R"({"choices":[{"index":0,"text":"a","token_ids":[64],"finish_reason":"length"}]})",
                      "application/json");
    }
  });
  svr.Post("/v1/embeddings", [&](const httplib::Request& req, httplib::Response& res) {
    if (!authorized(req, res)) return;
    res.set_content(R"({"data":[{"index":0,"embedding":[0.5,0.25],"pool_from":1}]})", "application/json");
  });
  const int port = svr.bind_to_any_port("127.0.0.1");
  std::thread t([&] { svr.listen_after_bind(); });
  OpenAIBackendOptions o;
  o.url = "http://127.0.0.1:" + std::to_string(port);
  o.retries = 0;
  o.timeout_s = 5;
  GroupParams g;
  g.n = 1;
  g.max_new_tokens = 1;
  // The right key: every request carries it.
  o.api_key = key;
  {
    auto b = MakeOpenAIBackend(o, &m->tokenizer);
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    auto r = (*b)->Generate(GroupRequest{{1, 2}, "hi", false}, g);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    auto p = ProbeOpenAIScorer(o, 512);
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    ASSERT_TRUE(p->exact()) << p->missing();
    double mean = 0;
    std::vector<float> pooled;
    ASSERT_TRUE(p->server->Run(std::vector<int32_t>{4, 5}, 1, 1, &mean, &pooled).ok());
    std::lock_guard<std::mutex> lock(mu);
    ASSERT_GE(seen.size(), 6u);
    for (const auto& s : seen) EXPECT_NE(s.find(" Bearer " + key), std::string::npos) << s;
    seen.clear();
  }
  // No key, then a wrong one: clear errors at connect (regeneration) and at the probe (scoring).
  for (const std::string& given : {std::string(), std::string("sk-wrong-") + key}) {
    o.api_key = given;
    auto b = MakeOpenAIBackend(o, &m->tokenizer);
    ASSERT_FALSE(b.ok());
    const std::string& msg = b.status().message();
    EXPECT_NE(msg.find(given.empty() ? "HTTP 401 (the server wants an API key: give --api-key"
                                     : "HTTP 403 (the server does not accept the API key"),
              std::string::npos)
        << msg;
    auto p = ProbeOpenAIScorer(o, 512);
    ASSERT_FALSE(p.ok()) << "a refused key must not fall back to the in-process expert";
    for (const std::string& text : {msg, p.status().message()}) {
      EXPECT_EQ(text.find(key), std::string::npos) << text;
      if (!given.empty()) {
        EXPECT_NE(text.find("***"), std::string::npos) << text;
      }
    }
  }
  svr.stop();
  t.join();
}

// The source of the ids survives the stage file; the engine's candidates carry none.
TEST(Records, IdsFromRoundTrips) {
  GroupRecord g;
  g.prompt_ids = {1};
  g.template_mask = {1};
  g.candidates.resize(2);
  g.candidates[0].ids = {5};
  g.candidates[0].ids_from = "logprobs.content.id";
  g.candidates[1].ids = {6};
  const nlohmann::ordered_json j = GroupToJson(g);
  EXPECT_EQ(j["candidates"][0]["ids_from"], "logprobs.content.id");
  EXPECT_FALSE(j["candidates"][1].contains("ids_from"));
  auto back = GroupFromJson(nlohmann::json::parse(j.dump()), "t");
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->candidates[0].ids_from, "logprobs.content.id");
  EXPECT_EQ(back->candidates[1].ids_from, "");
}

TEST(OpenAIBackend, ScoringProbeSaysWhatTheServerLacks) {
  FakeHandler echo = [](const httplib::Request&, httplib::Response& res) {
    res.set_content(R"({"choices":[{"index":0,"text":"","logprobs":{"token_logprobs":[null,-1.5]}}]})",
                    "application/json");
  };
  FakeHandler no_logprobs = [](const httplib::Request&, httplib::Response& res) {
    res.set_content(R"({"choices":[{"index":0,"text":"","logprobs":null}]})", "application/json");
  };
  FakeHandler embeddings = [](const httplib::Request&, httplib::Response& res) {
    res.set_content(R"({"data":[{"index":0,"embedding":[0.5,0.25],"pool_from":1}]})", "application/json");
  };
  FakeHandler plain_embeddings = [](const httplib::Request&, httplib::Response& res) {
    res.set_content(R"({"data":[{"index":0,"embedding":[0.5,0.25]}]})", "application/json");
  };
  OpenAIBackendOptions o;
  o.retries = 0;
  {
    FakeServer full(echo, nullptr, embeddings);
    o.url = full.url();
    auto p = ProbeOpenAIScorer(o, 512);
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    ASSERT_TRUE(p->exact()) << p->missing();
    EXPECT_EQ(p->server->fidelity_path(), "echo");
    EXPECT_EQ(p->server->pool_path(), "pool_from");
    EXPECT_EQ(p->server->Describe(), "openai:" + full.url());
    double mean = 0.0;
    std::vector<float> pooled;
    ASSERT_TRUE(p->server->Run(std::vector<int32_t>{4, 5}, 1, 1, &mean, &pooled).ok());
    EXPECT_EQ(mean, -1.5);
    EXPECT_EQ(pooled, (std::vector<float>{0.5f, 0.25f}));
  }
  {
    FakeServer chat_only(nullptr, echo, embeddings);
    o.url = chat_only.url();
    auto p = ProbeOpenAIScorer(o, 512);
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    EXPECT_FALSE(p->exact());
    EXPECT_EQ(p->server->fidelity_path(), "");
    EXPECT_EQ(p->server->pool_path(), "pool_from");
    EXPECT_EQ(p->fidelity_missing, chat_only.url() + " has no /v1/completions with echo logprobs or prompt_logprobs");
  }
  {
    FakeServer null_logprobs(no_logprobs, nullptr, embeddings);
    o.url = null_logprobs.url();
    auto p = ProbeOpenAIScorer(o, 512);
    ASSERT_TRUE(p.ok());
    EXPECT_FALSE(p->exact());
    EXPECT_NE(p->fidelity_missing.find("echo logprobs"), std::string::npos);
  }
  {
    FakeServer no_embeddings(echo, nullptr, nullptr);
    o.url = no_embeddings.url();
    auto p = ProbeOpenAIScorer(o, 512);
    ASSERT_TRUE(p.ok());
    EXPECT_FALSE(p->exact());
    EXPECT_EQ(p->pool_missing, no_embeddings.url() + " has no /v1/embeddings (with pool_from or plain)");
  }
  {
    // A standard /v1/embeddings (no pool_from echoed): the server's pooling of a text.
    std::vector<nlohmann::json> seen;
    std::mutex mu;
    FakeServer standard(echo, nullptr, [&](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard<std::mutex> lock(mu);
      seen.push_back(nlohmann::json::parse(req.body));
      plain_embeddings(req, res);
    });
    o.url = standard.url();
    auto p = ProbeOpenAIScorer(o, 512);
    ASSERT_TRUE(p.ok());
    EXPECT_FALSE(p->exact());
    EXPECT_EQ(p->server->pool_path(), "embeddings");
    std::vector<float> v;
    ASSERT_TRUE(p->server->EmbedText("some text", &v).ok());
    EXPECT_EQ(v, (std::vector<float>{0.5f, 0.25f}));
    EXPECT_EQ(seen.back()["input"], "some text");
    EXPECT_FALSE(seen.back().contains("pool_from"));
  }
  {
    // vLLM's prompt_logprobs (no echo): fidelity from the prompt's own logprobs.
    const std::string vllm = Fixture("vllm_prompt_logprobs.json");
    FakeServer prompt_lp([&](const httplib::Request& req, httplib::Response& res) {
      const auto body = nlohmann::json::parse(req.body);
      if (body.value("echo", false)) {
        res.status = 400;
        res.set_content(R"({"error":{"message":"echo not supported"}})", "application/json");
        return;
      }
      res.set_content(body.contains("prompt_logprobs") ? vllm : R"({"choices":[]})", "application/json");
    }, nullptr, embeddings);
    o.url = prompt_lp.url();
    auto p = ProbeOpenAIScorer(o, 512);
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    EXPECT_EQ(p->server->fidelity_path(), "prompt_logprobs");
    EXPECT_TRUE(p->exact());
    double mean = 0.0;
    ASSERT_TRUE(p->server->Fidelity(std::vector<int32_t>{0, 64, 64}, 1, &mean).ok());
    EXPECT_DOUBLE_EQ(mean, (-0.4 + -0.75) / 2);
    ASSERT_TRUE(p->server->Fidelity(std::vector<int32_t>{0, 64, 64}, 2, &mean).ok());
    EXPECT_DOUBLE_EQ(mean, -0.75);
    // The fixture names no logprob for token 1 at position 1: an error, not a guess.
    EXPECT_FALSE(p->server->Fidelity(std::vector<int32_t>{0, 2, 64}, 1, &mean).ok());
  }
  o.url = "http://127.0.0.1:1";
  EXPECT_FALSE(ProbeOpenAIScorer(o, 512).ok());  // down: an error, not a fallback
}

// Bad answers on the standard paths: clear errors, never a crash or a silent number.
TEST(OpenAIBackend, StandardScoringPathsRefuseBadAnswers) {
  FakeHandler echo = [](const httplib::Request&, httplib::Response& res) {
    res.set_content(R"({"choices":[{"index":0,"text":"","logprobs":{"token_logprobs":[null,-1.5]}}]})",
                    "application/json");
  };
  OpenAIBackendOptions o;
  o.retries = 0;
  o.timeout_s = 5;
  const struct {
    std::string reply, error;
  } bad[] = {
      {R"({"data":[]})", "without one embedding"},
      {R"({"object":"list"})", "without one embedding"},
      {R"({"data":[{"embedding":[0.1],"index":0},{"embedding":[0.2],"index":1}]})", "without one embedding"},
      {R"({"data":[{"embedding":"AAAA","index":0}]})", "not a non-empty array of numbers"},
      {R"({"data":[{"embedding":[],"index":0}]})", "not a non-empty array of numbers"},
      {R"({"data":[{"embedding":[0.1,"x"],"index":0}]})", "non-number"},
      {R"({"data":[{"embedding":[0.1,null],"index":0}]})", "non-number"},
      {R"({"data":[{"embedding":[1e300],"index":0}]})", "outside float's range"},
      {R"({"data":[{"embedding":[NaN],"index":0}]})", "garbage"},
      {R"({"data": )" + std::string(100000, '[') + std::string(100000, ']') + "}", "garbage"},
  };
  for (const auto& c : bad) {
    std::atomic<int> calls{0};
    FakeServer server(echo, nullptr, [&](const httplib::Request&, httplib::Response& res) {
      // The probe's two requests (pool_from, plain) get a good answer; the scoring request the bad one.
      res.set_content(calls++ >= 2 ? c.reply : R"({"data":[{"index":0,"embedding":[0.5]}]})", "application/json");
    });
    o.url = server.url();
    auto p = ProbeOpenAIScorer(o, 512);
    ASSERT_TRUE(p.ok());
    ASSERT_EQ(p->server->pool_path(), "embeddings");
    std::vector<float> v;
    const Status st = p->server->EmbedText("text", &v);
    ASSERT_FALSE(st.ok()) << c.reply.substr(0, 80);
    EXPECT_NE(st.message().find(c.error), std::string::npos) << st.ToString();
  }
  // A server that dies after the probe: an IoError naming it.
  auto server = std::make_unique<FakeServer>(echo, nullptr, [](const httplib::Request&, httplib::Response& res) {
    res.set_content(R"({"data":[{"index":0,"embedding":[0.5]}]})", "application/json");
  });
  o.url = server->url();
  auto p = ProbeOpenAIScorer(o, 512);
  ASSERT_TRUE(p.ok());
  server.reset();
  std::vector<float> v;
  const Status gone = p->server->EmbedText("text", &v);
  EXPECT_EQ(gone.code(), StatusCode::kIoError) << gone.ToString();
  EXPECT_NE(gone.message().find("cannot reach the server"), std::string::npos) << gone.ToString();
}

// The logprobs servers report for sampled tokens are kept per candidate, all or none.
TEST(OpenAIBackend, SampledLogprobsAreKeptAllOrNone) {
  auto m = OpenModelDir(kModel);
  ASSERT_TRUE(m.ok());
  OpenAIBackendOptions o;
  o.retries = 0;
  o.timeout_s = 5;
  GroupParams g;
  g.n = 1;
  g.max_new_tokens = 4;
  g.stop_tokens = m->stop_tokens;
  const struct {
    std::string reply;
    std::vector<double> logprobs;
  } cases[] = {
      {Fixture("llama_server_completions.json"), {-0.51, -1.2, -0.7, -2.0}},
      {R"({"choices":[{"index":0,"text":"ab","finish_reason":"stop","logprobs":{"tokens":["token_id:64","token_id:65"],"token_logprobs":[-0.25,-0.5]}}]})",
       {-0.25, -0.5}},
      {R"({"choices":[{"index":0,"text":"ab","logprobs":{"content":[{"id":64,"logprob":-0.1},{"id":65,"logprob":0.3}]}}]})",
       {}},  // a positive "logprob"
      {R"({"choices":[{"index":0,"text":"ab","logprobs":{"content":[{"id":64,"logprob":-0.1},{"id":65}]}}]})", {}},
      {R"({"choices":[{"index":0,"text":"ab","logprobs":{"content":[{"id":64,"logprob":-0.1},{"id":65,"logprob":"-1"}]}}]})",
       {}},
      {R"({"choices":[{"index":0,"text":"ab","token_ids":[64,65],"logprobs":null}]})", {}},
  };
  for (const auto& c : cases) {
    FakeServer server([&](const httplib::Request&, httplib::Response& res) { res.set_content(c.reply, "application/json"); });
    o.url = server.url();
    auto b = MakeOpenAIBackend(o, &m->tokenizer);
    ASSERT_TRUE(b.ok());
    auto r = (*b)->Generate(GroupRequest{{1, 2}, "hi", false}, g);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ((*r)[0].logprobs, c.logprobs) << c.reply;
  }
}

// A server whose embeddings change length between requests: select stops
// with a clear error; one without any fidelity path scores fidelity in
// process and records why.
TEST(OpenAIBackend, SelectRefusesEmbeddingsOfDifferentLengths) {
  RegenerateConfig rc;
  rc.target = rc.regenerator = kModel;
  rc.self_calibration = true;
  auto calib = LoadCalibration(TempFile("lengths.jsonl", "{\"text\": \"one two three\"}\n{\"text\": \"four five\"}\n"));
  ASSERT_TRUE(calib.ok());
  rc.calib = *calib;
  rc.prompt.style = PromptStyle::kBase;
  rc.group.n = 2;
  rc.group.max_new_tokens = 4;
  rc.engine.num_threads = 1;
  rc.progress = ProgressMode::kQuiet;
  const std::string regen = ::testing::TempDir() + "/lengths-regen-" + std::to_string(::getpid()) + ".jsonl";
  std::remove(regen.c_str());
  ASSERT_TRUE(RunRegenerate(rc, regen).ok());
  std::atomic<int> calls{0};
  std::atomic<bool> varying{true};
  FakeServer server(
      [](const httplib::Request&, httplib::Response& res) {
        res.status = 400;
        res.set_content(R"({"error":{"message":"Only no echo is supported"}})", "application/json");
      },
      nullptr,
      [&](const httplib::Request&, httplib::Response& res) {
        const bool longer = varying && calls++ % 2 == 1;
        res.set_content(longer ? R"({"data":[{"index":0,"embedding":[0.5,0.25,0.125]}]})"
                               : R"({"data":[{"index":0,"embedding":[0.5,0.25]}]})",
                        "application/json");
      });
  SelectConfig sc;
  sc.scoring_backend = "openai:" + server.url();
  sc.retries = 0;
  sc.penalties.min_new_tokens = 0;
  sc.engine.num_threads = 1;
  sc.progress = ProgressMode::kQuiet;
  const std::string sel = ::testing::TempDir() + "/lengths-select-" + std::to_string(::getpid()) + ".jsonl";
  std::remove(sel.c_str());
  const Status st = RunSelect(sc, regen, sel);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("the pooled vectors differ in length"), std::string::npos) << st.ToString();
  // The same server with one length: scored, fidelity in process (the reason recorded).
  varying = false;
  std::remove(sel.c_str());
  ASSERT_TRUE(RunSelect(sc, regen, sel).ok());
  auto f = ReadStageFile(sel, "select");
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ(f->header["scoring_paths"], (nlohmann::ordered_json{{"fidelity", "engine"}, {"consistency", "embeddings"}}));
  const std::string backend = f->header["scoring_backend"];
  EXPECT_NE(backend.find("(fidelity: engine (fallback: " + server.url() +
                         " has no /v1/completions with echo logprobs or prompt_logprobs, and "),
            std::string::npos)
      << backend;
  EXPECT_NE(backend.find("; consistency: embeddings)"), std::string::npos) << backend;
  ASSERT_EQ(f->groups.size(), 2u);
  for (const auto& g : f->groups) {
    for (const auto& c : g.candidates) {
      ASSERT_TRUE(c.scores.has_value());
      EXPECT_LT(c.scores->fidelity, 0.0f);  // the in-process expert's mean logprob
    }
  }
  std::remove(regen.c_str());
  std::remove(sel.c_str());
}

// The sampled logprobs survive the stage file; a positive one is refused.
TEST(Records, LogprobsRoundTrip) {
  GroupRecord g;
  g.prompt_ids = {1};
  g.template_mask = {1};
  g.candidates.resize(2);
  g.candidates[0].ids = {5, 6};
  g.candidates[0].logprobs = {-0.125, -2.5};
  g.candidates[1].ids = {6};
  const nlohmann::ordered_json j = GroupToJson(g);
  EXPECT_FALSE(j["candidates"][1].contains("logprobs"));
  auto back = GroupFromJson(nlohmann::json::parse(j.dump()), "t");
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->candidates[0].logprobs, (std::vector<double>{-0.125, -2.5}));
  EXPECT_TRUE(back->candidates[1].logprobs.empty());
  nlohmann::json bad = nlohmann::json::parse(j.dump());
  bad["candidates"][0]["logprobs"][1] = 0.5;
  EXPECT_FALSE(GroupFromJson(bad, "t").ok());
}
#endif

}  // namespace
}  // namespace famq
