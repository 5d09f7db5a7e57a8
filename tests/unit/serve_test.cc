// famq serve against hostile requests (issue 15): deep nesting, integers out
// of range, unbounded stop lists, oversized prompts, deadlines, cancellation,
// and over HTTP slow clients, body caps, the concurrency cap and API keys.
// The tiny random checkpoint (512-token context, 384 ids) keeps each fast.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <set>
#include <sstream>
#include <cmath>
#include <cstring>
#include <string>
#include <thread>

#include "pipeline/batch_decoder.h"
#include "serve/completions.h"
#ifdef FAMQ_HAVE_HTTP
#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "serve/http_server.h"
#endif

namespace famq {
namespace {

using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;

const std::string kModel = std::string(FAMQ_SOURCE_DIR) + "/tests/data/tiny-random-qwen3";

std::unique_ptr<CompletionService> MakeService(const ServeLimits& limits = ServeLimits{}) {
  EngineOptions eo;
  eo.num_threads = 1;
  auto s = CompletionService::Create(kModel, "tiny", eo, limits);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? std::move(*s) : nullptr;
}

// `depth` nested arrays around `inner`: "[[[...inner...]]]".
std::string Nested(size_t depth, const std::string& inner = "1") {
  return std::string(depth, '[') + inner + std::string(depth, ']');
}

Status CompleteStatus(CompletionService& s, const std::string& body) {
  auto req = CompletionService::ParseRequest(body);
  if (!req.ok()) return req.status();
  return s.Complete(*req).status();
}

const Json kMsgs = Json::array({{{"role", "user"}, {"content", "hello world"}}});

// Issue 15 item 1: nlohmann's copies and dumps recurse per nesting level; a
// 300,000-level prompt or extra chat field crashed the server.
TEST(ServeRequest, DeepNestingIsRefusedBeforeAnyCopy) {
  auto s = MakeService();
  ASSERT_TRUE(s);
  const std::string deep_prompt = R"({"prompt": )" + Nested(300000) + "}";
  auto r = CompletionService::ParseRequest(deep_prompt);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("nest"), std::string::npos) << r.status().ToString();
  const std::string deep_chat =
      R"({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, "extra": )" + Nested(300000) + "}";
  EXPECT_EQ(CompletionService::ParseRequest(deep_chat).status().code(), StatusCode::kInvalidArgument);
  // Within the limit the service answers, and neither copies nor echoes the extra field.
  const std::string ok_chat =
      R"({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, "extra": )" + Nested(60) + "}";
  auto req = CompletionService::ParseRequest(ok_chat);
  ASSERT_TRUE(req.ok()) << req.status().ToString();
  auto chat = s->ChatComplete(*req);
  ASSERT_TRUE(chat.ok()) << chat.status().ToString();
  EXPECT_FALSE(chat->dump().find("[[[[") != std::string::npos);
  // A nested prompt within the limit is a clear 400 that does not echo it.
  Status nested = CompleteStatus(*s, R"({"prompt": )" + Nested(60) + "}");
  EXPECT_EQ(nested.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(nested.message().find("[["), std::string::npos) << nested.ToString();
  EXPECT_FALSE(CompletionService::ParseRequest("[1, 2]").ok());  // not an object
  EXPECT_FALSE(CompletionService::ParseRequest("{\"prompt\": ").ok());
}

// Item 8: integers were read with get<int>: 1e30 undefined, 2^32+16 became 16.
TEST(ServeRequest, IntegersAreRangeCheckedBeforeConversion) {
  auto s = MakeService();
  ASSERT_TRUE(s);
  const std::string base = R"({"prompt": [5, 6, 7], "max_tokens": 2, )";
  for (const char* field : {"n", "max_tokens", "top_k", "seed", "logprobs"}) {
    for (const char* bad : {"1e30", "4294967312", "-1e30", "2.5", "\"3\"", "[1]", "18446744073709551616"}) {
      if (std::string(field) == "seed" && std::string(bad) == "4294967312") continue;  // seeds are 64-bit
      const std::string body = base + "\"" + field + "\": " + bad + "}";
      Status st = CompleteStatus(*s, body);
      EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << body << " -> " << st.ToString();
    }
  }
  for (const char* bad : {R"("n": -1)", R"("n": 0)", R"("n": 65)", R"("max_tokens": -1)", R"("seed": -1)",
                          R"("top_k": -2)", R"("logprobs": 21)", R"("temperature": 1e300)", R"("temperature": -1)",
                          R"("top_p": 0)", R"("top_p": 1e300)", R"("echo": 1)"}) {
    const std::string body = base + bad + "}";
    EXPECT_EQ(CompleteStatus(*s, body).code(), StatusCode::kInvalidArgument) << body;
  }
  for (const char* pool_from : {"1e30", "9223372036854775807.0", "-1", "0.5"}) {
    auto embed = CompletionService::ParseRequest(std::string(R"({"input": [5, 6], "pool_from": )") + pool_from + "}");
    ASSERT_TRUE(embed.ok());
    EXPECT_EQ(s->Embed(*embed).status().code(), StatusCode::kInvalidArgument) << pool_from;
  }
  // In range they are served: integral floats, the largest seed, top_k -1 (off).
  for (const char* good : {R"("n": 2.0)", R"("seed": 18446744073709551615)", R"("top_k": -1)", R"("logprobs": 20)",
                           R"("max_tokens": 0)"}) {
    const std::string body = base + good + "}";
    Status st = CompleteStatus(*s, body);
    EXPECT_TRUE(st.ok()) << body << " -> " << st.ToString();
  }
  // The same request with n 2.0 and n 2 gives the same choices.
  auto a = s->Complete(CompletionService::ParseRequest(base + R"("n": 2.0, "seed": 4})").value());
  auto b = s->Complete(CompletionService::ParseRequest(base + R"("n": 2, "seed": 4})").value());
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ((*a)["choices"], (*b)["choices"]);
}

// Item 4: stop strings and stop_token_ids are bounded in count, length and range.
TEST(ServeRequest, StopListsAreBounded) {
  ServeLimits limits;
  limits.max_stop = 4;
  limits.max_stop_bytes = 8;
  limits.max_stop_token_ids = 3;
  auto s = MakeService(limits);
  ASSERT_TRUE(s);
  Json req{{"prompt", std::vector<int>{5, 6, 7}}, {"max_tokens", 4}};
  const auto with = [&](const char* key, const Json& v) {
    Json r = req;
    r[key] = v;
    return s->Complete(r).status();
  };
  EXPECT_TRUE(with("stop", Json::array({"a", "b", "c", "d"})).ok());
  EXPECT_EQ(with("stop", Json::array({"a", "b", "c", "d", "e"})).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(with("stop", "12345678").ok());
  EXPECT_EQ(with("stop", "123456789").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(with("stop", Json::array({"a", 1})).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(with("stop", 5).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(with("stop_token_ids", Json::array({0, 100, 383})).ok());
  EXPECT_EQ(with("stop_token_ids", Json::array({0, 1, 2, 3})).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(with("stop_token_ids", Json::array({-1})).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(with("stop_token_ids", Json::array({384})).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(with("stop_token_ids", Json::array({4294967312LL})).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(with("stop_token_ids", Json::array({1.5})).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(with("stop_token_ids", 7).code(), StatusCode::kInvalidArgument);
  // A stop id ends a candidate at that token (it was silently ignored when out of range before).
  auto free_run = s->Complete(Json{{"prompt", std::vector<int>{5, 6, 7}}, {"max_tokens", 8}, {"temperature", 0}});
  ASSERT_TRUE(free_run.ok());
  const auto ids = (*free_run)["choices"][0]["token_ids"].get<std::vector<int32_t>>();
  ASSERT_GE(ids.size(), 3u);
  auto stopped = s->Complete(Json{{"prompt", std::vector<int>{5, 6, 7}}, {"max_tokens", 8}, {"temperature", 0},
                                  {"stop_token_ids", Json::array({ids[2]})}});
  ASSERT_TRUE(stopped.ok());
  const auto cut = (*stopped)["choices"][0]["token_ids"].get<std::vector<int32_t>>();
  EXPECT_LE(cut.size(), 3u);
  EXPECT_EQ(cut.back(), ids[2]);
}

// Stop strings cut where the old per-prefix scan cut (the first token whose
// prefix holds one, the text before it), without decoding every prefix.
TEST(ServeRequest, StopStringsCutAtTheFirstOccurrence) {
  auto s = MakeService();
  ASSERT_TRUE(s);
  auto m = OpenModelDir(kModel);
  ASSERT_TRUE(m.ok());
  const Json base{{"prompt", std::vector<int>{5, 6, 7}}, {"max_tokens", 40}, {"temperature", 0}};
  auto free_run = s->Complete(base);
  ASSERT_TRUE(free_run.ok());
  const auto ids = (*free_run)["choices"][0]["token_ids"].get<std::vector<int32_t>>();
  const std::string text = m->tokenizer.Decode(ids);
  ASSERT_GE(text.size(), 12u) << "the tiny model decodes to too little text for this test";
  int checked = 0;
  for (size_t at : {text.size() / 3, text.size() / 2, text.size() - 3}) {
    const std::string stop = text.substr(at, 3);
    // The reference: the old scan, decoding every prefix.
    size_t k = 0;
    while (k < ids.size() &&
           m->tokenizer.Decode(std::vector<int32_t>(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(k + 1)))
                   .find(stop) == std::string::npos) {
      ++k;
    }
    ASSERT_LT(k, ids.size());
    const std::vector<int32_t> want_ids(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(k + 1));
    std::string want_text = m->tokenizer.Decode(want_ids);
    want_text.resize(want_text.find(stop));
    Json req = base;
    req["stop"] = Json::array({"\x01never", stop});
    auto r = s->Complete(req);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ((*r)["choices"][0]["token_ids"].get<std::vector<int32_t>>(), want_ids) << "stop '" << stop << "'";
    EXPECT_EQ((*r)["choices"][0]["text"], want_text);
    EXPECT_EQ((*r)["choices"][0]["finish_reason"], "stop");
    ++checked;
  }
  EXPECT_EQ(checked, 3);
}

// Item 4: prompt bytes are checked before tokenizing, token arrays against the context.
TEST(ServeRequest, PromptBytesAreCheckedBeforeTokenizing) {
  auto def = MakeService();
  ASSERT_TRUE(def);
  auto m = OpenModelDir(kModel);
  ASSERT_TRUE(m.ok());
  size_t longest = 1;
  for (int32_t id = 0; id < m->tokenizer.vocab_size(); ++id) longest = std::max(longest, m->tokenizer.TokenBytes(id).size());
  EXPECT_EQ(def->max_prompt_bytes(), 512 * longest);  // the context rule
  EXPECT_EQ(def->DefaultMaxBodyBytes(), std::min<size_t>(16 << 20, (64 << 10) + 6 * 512 * longest));
  ServeLimits limits;
  limits.max_prompt_bytes = 100;
  auto s = MakeService(limits);
  ASSERT_TRUE(s);
  EXPECT_TRUE(s->Complete(Json{{"prompt", std::string(100, 'a')}, {"max_tokens", 1}}).ok());
  auto big = s->Complete(Json{{"prompt", std::string(101, 'a')}, {"max_tokens", 1}});
  EXPECT_EQ(big.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(big.status().message().find("101 bytes"), std::string::npos) << big.status().ToString();
  auto chat = s->ChatComplete(Json{{"messages", Json::array({{{"role", "user"}, {"content", std::string(200, 'a')}}})}});
  EXPECT_EQ(chat.status().code(), StatusCode::kInvalidArgument);
  // The rendered chat counts too: the template adds bytes to a content that fits alone.
  auto rendered = s->ChatComplete(Json{{"messages", Json::array({{{"role", "user"}, {"content", std::string(90, 'a')}}})},
                                       {"max_tokens", 1}});
  EXPECT_EQ(rendered.status().code(), StatusCode::kInvalidArgument) << rendered.status().ToString();
  auto ids = s->Complete(Json{{"prompt", std::vector<int>(513, 5)}, {"max_tokens", 0}});
  EXPECT_EQ(ids.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(ids.status().message().find("context"), std::string::npos) << ids.status().ToString();
}

// A request that takes a while on the tiny model: 64 candidates x 400 tokens.
const Json kLong{{"prompt", std::vector<int>{5, 6, 7}}, {"n", 64}, {"max_tokens", 400}, {"seed", 1},
                 {"stop_token_ids", Json::array()}, {"temperature", 1.0}};

// Item 4: a request stops at its deadline or when its client is gone, frees
// its slots, and requests beside it get exactly what they get alone.
TEST(ServeRequest, DeadlineAndClientGoneStopTheRequest) {
  ServeLimits limits;
  limits.decode_slots = 4;
  auto s = MakeService(limits);
  ASSERT_TRUE(s);
  RequestControl past;
  past.deadline = Clock::now();
  past.deadline_what = "the test's deadline";
  auto late = s->Complete(kLong, &past);
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.status().code(), StatusCode::kCancelled);
  EXPECT_EQ(past.stopped.load(), RequestControl::Stop::kDeadline);
  EXPECT_NE(late.status().message().find("the test's deadline"), std::string::npos);

  const Json small{{"prompt", std::vector<int>{9, 10}}, {"n", 3}, {"max_tokens", 20}, {"seed", 5}};
  auto alone = s->Complete(small);
  ASSERT_TRUE(alone.ok());
  // The client goes away after 300 polls: the long request stops
  // mid-generation (polled between decode steps) while a small one decodes
  // beside it.
  RequestControl gone;
  std::atomic<int> polls{0};
  gone.client_gone = [&polls] { return ++polls > 300; };
  Result<nlohmann::ordered_json> beside = InvalidArgument("not run");
  std::thread t([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    beside = s->Complete(small);
  });
  auto stopped = s->Complete(kLong, &gone);
  t.join();
  ASSERT_FALSE(stopped.ok());
  EXPECT_EQ(stopped.status().code(), StatusCode::kCancelled);
  EXPECT_EQ(gone.stopped.load(), RequestControl::Stop::kClientGone);
  EXPECT_EQ(polls.load(), 301);  // it stopped at the first poll that said so
  ASSERT_TRUE(beside.ok()) << beside.status().ToString();
  EXPECT_EQ((*beside)["choices"], (*alone)["choices"]);
  // Its slots are free again: the same request alone still gives the same answer.
  auto again = s->Complete(small);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)["choices"], (*alone)["choices"]);
}

// The events of one streamed request (RunStream), parsed; `raw` keeps the text.
struct Streamed {
  std::vector<Json> chunks;
  bool done = false;  // ended with data: [DONE]
  std::string raw;
  Status status;
};

Streamed RunStreamed(CompletionService& s, const Json& req, bool chat, const RequestControl* control = nullptr,
                     int fail_after = -1) {
  Streamed out;
  auto prepared = s.PrepareStream(req, chat);
  if (!prepared.ok()) {
    out.status = prepared.status();
    return out;
  }
  int writes = 0;
  out.status = s.RunStream(*prepared, control, [&](const std::string& event) {
    if (fail_after >= 0 && writes >= fail_after) return false;
    ++writes;
    out.raw += event;
    EXPECT_EQ(event.rfind("data: ", 0), 0u) << event;
    EXPECT_EQ(event.substr(event.size() - 2), "\n\n");
    const std::string data = event.substr(6, event.size() - 8);
    if (data == "[DONE]") {
      out.done = true;
    } else {
      EXPECT_FALSE(out.done) << "an event after [DONE]";
      out.chunks.push_back(Json::parse(data));
    }
    return true;
  });
  return out;
}

Json Patched(Json j, const Json& patch) {
  j.merge_patch(patch);
  return j;
}

// Issue 19: stream: true. The deltas of each choice concatenate to exactly
// the non-streaming text (stop strings cut, never leaked, even in part), the
// finish reasons and usage agree, n > 1 interleaves by index, and the shapes
// are OpenAI's (text_completion / chat.completion.chunk, the role first,
// include_usage's last chunk, [DONE]).
TEST(ServeStream, DeltasConcatenateToTheNonStreamingAnswer) {
  auto s = MakeService();
  ASSERT_TRUE(s);
  const Json base{{"prompt", std::vector<int>{5, 6, 7}}, {"max_tokens", 40}, {"temperature", 0}};
  auto free_run = s->Complete(base);
  ASSERT_TRUE(free_run.ok());
  const std::string text = (*free_run)["choices"][0]["text"];
  ASSERT_GE(text.size(), 12u);
  const std::vector<Json> requests = {
      base,
      // A stop string in the middle, and one whose first bytes keep matching the tail but never completes.
      Patched(base, {{"stop", Json::array({text.substr(text.size() / 2, 3)})}}),
      Patched(base, {{"stop", Json::array({text.substr(text.size() - 2) + "\x01"})}}),
      Json{{"prompt", "Hello"}, {"n", 3}, {"max_tokens", 12}, {"seed", 9}, {"stop", "oo"}},
      Json{{"prompt", std::vector<int>{9, 10}}, {"n", 2}, {"max_tokens", 10}, {"seed", 4},
           {"stream_options", {{"include_usage", true}}}},
  };
  int with_stop_cut = 0;
  for (const Json& req : requests) {
    auto whole = s->Complete(req);
    ASSERT_TRUE(whole.ok()) << whole.status().ToString();
    const Streamed st = RunStreamed(*s, Patched(req, {{"stream", true}}), false);
    ASSERT_TRUE(st.status.ok()) << st.status.ToString();
    EXPECT_TRUE(st.done);
    const size_t n = (*whole)["choices"].size();
    std::vector<std::string> got(n), finish(n);
    std::vector<int> order;
    const bool usage = req.contains("stream_options");
    for (size_t i = 0; i < st.chunks.size(); ++i) {
      const Json& c = st.chunks[i];
      EXPECT_EQ(c["object"], "text_completion");
      EXPECT_EQ(c["model"], "tiny");
      EXPECT_EQ(c.contains("usage"), usage);
      if (c["choices"].empty()) {
        ASSERT_TRUE(usage);
        EXPECT_EQ(c["usage"], Json::parse((*whole)["usage"].dump()));
        EXPECT_EQ(i + 1, st.chunks.size()) << "the usage chunk comes last";
        continue;
      }
      ASSERT_EQ(c["choices"].size(), 1u);
      const Json& ch = c["choices"][0];
      const size_t j = ch["index"];
      ASSERT_LT(j, n);
      EXPECT_TRUE(finish[j].empty()) << "a delta after the finish chunk";
      got[j] += ch["text"].get<std::string>();
      if (!ch["finish_reason"].is_null()) finish[j] = ch["finish_reason"];
      order.push_back(static_cast<int>(j));
    }
    for (size_t j = 0; j < n; ++j) {
      EXPECT_EQ(got[j], (*whole)["choices"][j]["text"]) << req.dump() << " choice " << j;
      EXPECT_EQ(finish[j], (*whole)["choices"][j]["finish_reason"]) << req.dump();
      if (finish[j] == "stop" && req.contains("stop")) ++with_stop_cut;
    }
    if (n > 1 && !req.contains("stop")) {  // interleaved: choice 1 speaks before choice 0 has finished
      const auto first1 = std::find(order.begin(), order.end(), 1);
      ASSERT_NE(first1, order.end());
      const auto last0 = std::find(order.rbegin(), order.rend(), 0);
      EXPECT_LT(first1 - order.begin(), (order.rend() - last0) - 1) << "not interleaved";
    }
    if (req.contains("stop")) {
      const Json stops = req["stop"].is_array() ? req["stop"] : Json::array({req["stop"]});
      for (const auto& x : stops) {
        const std::string stop = x;
        for (size_t j = 0; j < n; ++j) EXPECT_EQ(got[j].find(stop), std::string::npos) << "leaked '" << stop << "'";
      }
    }
  }
  EXPECT_GE(with_stop_cut, 2);  // the stop strings did cut
  // Chat: the role first, then content deltas, then {} with the finish reason.
  const Json chat{{"messages", kMsgs}, {"max_tokens", 12}, {"n", 2}, {"seed", 3}};
  auto whole = s->ChatComplete(chat);
  ASSERT_TRUE(whole.ok());
  const Streamed st = RunStreamed(*s, Patched(chat, {{"stream", true}}), true);
  ASSERT_TRUE(st.status.ok()) << st.status.ToString();
  EXPECT_TRUE(st.done);
  std::vector<std::string> got(2), finish(2);
  std::vector<bool> role(2, false);
  for (const Json& c : st.chunks) {
    EXPECT_EQ(c["object"], "chat.completion.chunk");
    EXPECT_FALSE(c.contains("usage"));
    const Json& ch = c["choices"][0];
    const size_t j = ch["index"];
    const Json& delta = ch["delta"];
    if (delta.contains("role")) {
      EXPECT_FALSE(role[j]);
      EXPECT_TRUE(got[j].empty());
      EXPECT_EQ(delta["role"], "assistant");
      role[j] = true;
    }
    ASSERT_TRUE(role[j]) << "content before the role";
    if (delta.contains("content")) got[j] += delta["content"].get<std::string>();
    if (!ch["finish_reason"].is_null()) {
      finish[j] = ch["finish_reason"];
      EXPECT_EQ(delta, Json::object());
    }
  }
  for (size_t j = 0; j < 2; ++j) {
    EXPECT_EQ(got[j], (*whole)["choices"][j]["message"]["content"]);
    EXPECT_EQ(finish[j], (*whole)["choices"][j]["finish_reason"]);
  }
}

TEST(ServeStream, RefusalsDeadlinesAndAClientThatLeaves) {
  ServeLimits limits;
  limits.decode_slots = 4;
  auto s = MakeService(limits);
  ASSERT_TRUE(s);
  // Refused before any event: wrong types, echo and logprobs with stream, the usual checks.
  EXPECT_FALSE(CompletionService::WantsStream(Json{{"stream", "yes"}}).ok());
  auto no_stream = CompletionService::WantsStream(Json{{"stream", false}});
  ASSERT_TRUE(no_stream.ok());
  EXPECT_FALSE(*no_stream);
  const Json p{{"prompt", std::vector<int>{5}}, {"stream", true}};
  for (const Json& bad : {Patched(p, {{"echo", true}}), Patched(p, {{"logprobs", 1}}),
                          Patched(p, {{"stream_options", 3}}), Patched(p, {{"stream_options", {{"include_usage", "y"}}}}),
                          Patched(p, {{"n", 0}}), Patched(p, {{"model", "other"}})}) {
    const Streamed st = RunStreamed(*s, bad, false);
    EXPECT_FALSE(st.status.ok()) << bad.dump();
    EXPECT_TRUE(st.raw.empty());
  }
  EXPECT_FALSE(RunStreamed(*s, Json{{"messages", kMsgs}, {"stream", true}, {"logprobs", true}}, true).status.ok());
  const Json long_stream = Patched(kLong, {{"stream", true}});
  // The deadline: an error event, no [DONE].
  RequestControl past;
  past.deadline = Clock::now() + std::chrono::milliseconds(200);
  const auto t0 = Clock::now();
  const Streamed late = RunStreamed(*s, long_stream, false, &past);
  EXPECT_EQ(late.status.code(), StatusCode::kCancelled);
  EXPECT_EQ(past.stopped.load(), RequestControl::Stop::kDeadline);
  EXPECT_FALSE(late.done);
  ASSERT_FALSE(late.chunks.empty());
  EXPECT_TRUE(late.chunks.back().contains("error")) << late.chunks.back().dump();
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - t0).count(), 10.0);
  // A write that fails (the client is gone): generation stops at the next step.
  const auto t1 = Clock::now();
  const Streamed left = RunStreamed(*s, long_stream, false, nullptr, 3);
  EXPECT_EQ(left.status.code(), StatusCode::kCancelled) << left.status.ToString();
  EXPECT_EQ(left.chunks.size(), 3u);
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - t1).count(), 10.0);
  // The decoder is free again: a stream after it runs to [DONE].
  const Streamed after = RunStreamed(*s, Json{{"prompt", std::vector<int>{5}}, {"max_tokens", 3}, {"stream", true}}, false);
  EXPECT_TRUE(after.status.ok());
  EXPECT_TRUE(after.done);
}

// encoding_format "base64": the same floats, little-endian float32, base64.
TEST(ServeRequest, Base64Embeddings) {
  auto s = MakeService();
  ASSERT_TRUE(s);
  const Json req{{"input", "hello world"}, {"pool_from", 1}};
  auto f = s->Embed(req);
  auto b = s->Embed(Patched(req, {{"encoding_format", "base64"}}));
  ASSERT_TRUE(f.ok() && b.ok());
  const std::vector<float> want = (*f)["data"][0]["embedding"];
  const std::string b64 = (*b)["data"][0]["embedding"];
  ASSERT_EQ(b64.size(), (want.size() * 4 + 2) / 3 * 4);
  std::vector<uint8_t> bytes;  // RFC 4648 decoded
  uint32_t acc = 0;
  int bits = 0;
  const char* abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (char c : b64) {
    if (c == '=') break;
    const char* at = std::strchr(abc, c);
    ASSERT_NE(at, nullptr) << c;
    acc = (acc << 6) | static_cast<uint32_t>(at - abc);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      bytes.push_back(static_cast<uint8_t>(acc >> bits));
    }
  }
  ASSERT_EQ(bytes.size(), want.size() * 4);
  for (size_t i = 0; i < want.size(); ++i) {
    const uint32_t u = uint32_t{bytes[4 * i]} | uint32_t{bytes[4 * i + 1]} << 8 | uint32_t{bytes[4 * i + 2]} << 16 |
                       uint32_t{bytes[4 * i + 3]} << 24;
    float v;
    std::memcpy(&v, &u, 4);
    EXPECT_EQ(v, want[i]) << i;
  }
  EXPECT_FALSE(s->Embed(Patched(req, {{"encoding_format", "int8"}})).ok());
}

// Issue 19: `famq serve --api standard` answers in llama-server's shapes
// (tests/unit/openai_fixtures/llama_server_*.json) and nothing more: no
// token_ids, no pool_from, no echo.
std::string ReadFixture(const std::string& name) {
  std::ifstream f(std::string(FAMQ_SOURCE_DIR) + "/tests/unit/openai_fixtures/" + name);
  std::stringstream ss;
  ss << f.rdbuf();
  EXPECT_FALSE(ss.str().empty()) << name;
  return ss.str();
}

std::string TypeName(const Json& j) {
  if (j.is_number()) return "number";
  return j.type_name();
}

// The differences between `got` and the engine's `want`: fields `got` has
// that `want` lacks or has with another type, and fields `want` has that
// `got` lacks (unless their path is in `may_lack`). Arrays compare their
// first elements.
void ShapeDiff(const Json& want, const Json& got, const std::string& path, const std::set<std::string>& may_lack,
               std::vector<std::string>* diffs) {
  if (want.is_null() || got.is_null()) return;  // a null field may hold anything
  if (TypeName(want) != TypeName(got)) {
    diffs->push_back(path + ": " + TypeName(got) + " where the engine sends " + TypeName(want));
    return;
  }
  if (got.is_object()) {
    for (const auto& [k, v] : got.items()) {
      if (!want.contains(k)) {
        diffs->push_back(path + "." + k + ": not sent by the engine");
      } else {
        ShapeDiff(want[k], v, path + "." + k, may_lack, diffs);
      }
    }
    for (const auto& [k, v] : want.items()) {
      if (!got.contains(k) && !may_lack.count(path + "." + k)) diffs->push_back(path + "." + k + ": missing");
    }
  } else if (got.is_array() && !got.empty() && !want.empty()) {
    ShapeDiff(want[0], got[0], path + "[]", may_lack, diffs);
  }
}

std::vector<std::string> ShapeDiffs(const std::string& fixture, const nlohmann::ordered_json& got,
                                    std::set<std::string> may_lack = {}) {
  may_lack.insert({".system_fingerprint", ".timings", ".usage.prompt_tokens_details"});
  std::vector<std::string> diffs;
  ShapeDiff(Json::parse(ReadFixture(fixture)), Json::parse(got.dump()), "", may_lack, &diffs);
  return diffs;
}

TEST(ServeStandard, ResponsesHaveTheShapesOfLlamaServer) {
  ServeLimits standard;
  standard.api = ServeApi::kStandard;
  auto s = MakeService(standard);
  auto full = MakeService();
  ASSERT_NE(s, nullptr);
  ASSERT_NE(full, nullptr);
  const Json completion{{"prompt", Json::array({1, 2, 3})}, {"max_tokens", 4}, {"n", 2}, {"seed", 7},
                        {"logprobs", 1}, {"stop_token_ids", Json::array()}};
  auto c = s->Complete(completion);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(ShapeDiffs("llama_server_completions.json", *c), std::vector<std::string>());
  // The ids and logprobs are the model's: the same tokens as full mode's token_ids.
  auto cf = full->Complete(completion);
  ASSERT_TRUE(cf.ok());
  for (size_t j = 0; j < 2; ++j) {
    const auto& content = (*c)["choices"][j]["logprobs"]["content"];
    const auto& ids = (*cf)["choices"][j]["token_ids"];
    ASSERT_EQ(content.size(), ids.size());
    for (size_t t = 0; t < ids.size(); ++t) {
      EXPECT_EQ(content[t]["id"], ids[t]);
      EXPECT_EQ(content[t]["logprob"], (*cf)["choices"][j]["logprobs"]["token_logprobs"][t]);
      EXPECT_LE(content[t]["logprob"].get<double>(), 0.0);
    }
  }
  // The full mode's answer is not the engine's shape: the check can fail.
  EXPECT_FALSE(ShapeDiffs("llama_server_completions.json", *cf).empty());

  const Json chat{{"messages", kMsgs}, {"max_tokens", 3}, {"seed", 1}};
  auto ch = s->ChatComplete(chat);
  ASSERT_TRUE(ch.ok()) << ch.status().ToString();
  EXPECT_EQ(ShapeDiffs("llama_server_chat.json", *ch, {".choices[].logprobs"}), std::vector<std::string>());
  auto chf = full->ChatComplete(chat);
  ASSERT_TRUE(chf.ok());
  EXPECT_EQ(ShapeDiffs("llama_server_chat.json", *chf, {".choices[].logprobs"}),
            std::vector<std::string>({".choices[].token_ids: not sent by the engine"}));

  const Json embed{{"input", Json::array({4, 5, 6})}, {"pool_from", 2}};
  auto e = s->Embed(embed);
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_EQ(ShapeDiffs("llama_server_embeddings.json", *e), std::vector<std::string>());
  auto ef = full->Embed(embed);
  ASSERT_TRUE(ef.ok());
  EXPECT_EQ(ShapeDiffs("llama_server_embeddings.json", *ef),
            std::vector<std::string>({".data[].pool_from: not sent by the engine"}));
  // Standard pooling: the mean over the whole input (pool_from ignored), L2-normalized.
  auto e0 = full->Embed(Json{{"input", Json::array({4, 5, 6})}});
  ASSERT_TRUE(e0.ok());
  const auto& v = (*e)["data"][0]["embedding"];
  const auto& raw = (*e0)["data"][0]["embedding"];
  ASSERT_EQ(v.size(), raw.size());
  double norm = 0.0, raw_norm = 0.0;
  for (size_t d = 0; d < v.size(); ++d) {
    norm += v[d].get<double>() * v[d].get<double>();
    raw_norm += raw[d].get<double>() * raw[d].get<double>();
  }
  EXPECT_NEAR(norm, 1.0, 1e-5);
  for (size_t d = 0; d < v.size(); ++d) EXPECT_NEAR(v[d].get<double>(), raw[d].get<double>() / std::sqrt(raw_norm), 1e-6);

  // Echo is refused as llama-server refuses it; logprobs 0 gives none (llama-server's n_probs 0).
  auto echo = s->Complete(Json{{"prompt", Json::array({1, 2})}, {"max_tokens", 0}, {"echo", true}, {"logprobs", 0}});
  ASSERT_FALSE(echo.ok());
  EXPECT_EQ(echo.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(echo.status().message(), "Only no echo is supported");
  auto lp0 = s->Complete(Json{{"prompt", Json::array({1, 2})}, {"max_tokens", 2}, {"logprobs", 0}});
  ASSERT_TRUE(lp0.ok());
  EXPECT_TRUE((*lp0)["choices"][0]["logprobs"].is_null());
}


#ifdef FAMQ_HAVE_HTTP
TEST(ServeHttp, ApiKeyRequiredOffLoopback) {
  EXPECT_TRUE(IsLoopbackHost("127.0.0.1"));
  EXPECT_TRUE(IsLoopbackHost("127.1.2.3"));
  EXPECT_TRUE(IsLoopbackHost("::1"));
  EXPECT_TRUE(IsLoopbackHost("::ffff:127.0.0.1"));
  EXPECT_TRUE(IsLoopbackHost("localhost"));
  EXPECT_FALSE(IsLoopbackHost("0.0.0.0"));
  EXPECT_FALSE(IsLoopbackHost("::"));
  EXPECT_FALSE(IsLoopbackHost("192.168.1.2"));
  EXPECT_FALSE(IsLoopbackHost("example.com"));
  HttpServeOptions o;
  o.host = "0.0.0.0";
  Status s = CheckHttpServeOptions(o);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("--api-key"), std::string::npos) << s.ToString();
  o.api_key = "k";
  EXPECT_TRUE(CheckHttpServeOptions(o).ok());
  o.max_concurrent = 0;
  EXPECT_FALSE(CheckHttpServeOptions(o).ok());
}

TEST(ServeHttp, PeerClosedSeesTheOtherEnd) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  EXPECT_FALSE(PeerClosed(fds[0]));
  ASSERT_EQ(::write(fds[1], "x", 1), 1);
  EXPECT_FALSE(PeerClosed(fds[0]));  // data waiting is not a close
  ::close(fds[1]);
  char c;
  ASSERT_EQ(::read(fds[0], &c, 1), 1);
  EXPECT_TRUE(PeerClosed(fds[0]));
  ::close(fds[0]);
}

// A server on a free loopback port for one test.
class TestServer {
 public:
  TestServer(CompletionService& service, HttpServeOptions o) {
    o.host = "127.0.0.1";
    o.port = 0;
    o.log_requests = false;
    auto s = HttpServer::Create(service, o);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    server_ = std::move(*s);
    thread_ = std::thread([this] { (void)server_->Run(); });
    // Run() starts listening at once; wait until it answers.
    for (int i = 0; i < 200; ++i) {
      httplib::Client cli("127.0.0.1", port());
      if (cli.Get("/v1/models")) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  ~TestServer() {
    server_->Stop();
    thread_.join();
  }
  int port() const { return server_->port(); }
  const HttpServeCounters& counters() const { return server_->counters(); }
  httplib::Client Client(double timeout_s = 30) const {
    httplib::Client cli("127.0.0.1", port());
    cli.set_read_timeout(static_cast<time_t>(timeout_s), 0);
    return cli;
  }

 private:
  std::unique_ptr<HttpServer> server_;
  std::thread thread_;
};

// A raw TCP connection to 127.0.0.1:port.
int Connect(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  return fd;
}

// Everything the server sends until it closes (or `timeout_s`).
std::string ReadAll(int fd, double timeout_s) {
  timeval tv{static_cast<time_t>(timeout_s), 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof(buf), 0)) > 0;) out.append(buf, static_cast<size_t>(n));
  return out;
}

TEST(ServeHttp, DeepNestingOverHttpIs400AndTheServerStaysUp) {
  auto s = MakeService();
  ASSERT_TRUE(s);
  HttpServeOptions o;
  o.max_body_bytes = 1 << 20;
  TestServer srv(*s, o);
  auto cli = srv.Client();
  auto r = cli.Post("/v1/completions", R"({"prompt": )" + Nested(300000) + "}", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("nest"), std::string::npos) << r->body;
  auto chat = cli.Post("/v1/chat/completions",
                       R"({"messages": [{"role": "user", "content": "hi"}], "x": )" + Nested(300000, "{}") + "}",
                       "application/json");
  ASSERT_TRUE(chat);
  EXPECT_EQ(chat->status, 400);
  auto ok = cli.Post("/v1/completions", R"({"prompt": [5, 6], "max_tokens": 2})", "application/json");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200) << ok->body;
}

TEST(ServeHttp, BodyCapAndApiKey) {
  auto s = MakeService();
  ASSERT_TRUE(s);
  HttpServeOptions o;
  o.max_body_bytes = 1000;
  o.api_key = "secret";
  TestServer srv(*s, o);
  const long long probes = srv.counters().unauthorized.load();  // TestServer's readiness probes
  auto cli = srv.Client();
  const std::string body = R"({"prompt": [5, 6], "max_tokens": 2})";
  auto none = cli.Post("/v1/completions", body, "application/json");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->status, 401);
  EXPECT_EQ(cli.Get("/v1/models")->status, 401);
  httplib::Headers wrong{{"Authorization", "Bearer secreT"}};
  EXPECT_EQ(cli.Post("/v1/completions", wrong, body, "application/json")->status, 401);
  httplib::Headers right{{"Authorization", "Bearer secret"}};
  auto ok = cli.Post("/v1/completions", right, body, "application/json");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200) << ok->body;
  auto big = cli.Post("/v1/completions", right, R"({"prompt": ")" + std::string(2000, 'a') + "\"}", "application/json");
  ASSERT_TRUE(big);
  EXPECT_EQ(big->status, 413);
  EXPECT_NE(big->body.find("--max-body-bytes"), std::string::npos) << big->body;
  EXPECT_EQ(srv.counters().unauthorized.load() - probes, 3);
}

// Item 4: one header byte every 300 ms used to hold a worker for as long as
// the client liked; now the headers have a deadline (and the body its own).
TEST(ServeHttp, SlowHeadersAndBodiesGet408AtTheirDeadline) {
  auto s = MakeService();
  ASSERT_TRUE(s);
  HttpServeOptions o;
  o.header_timeout_s = 1.0;
  o.body_timeout_s = 1.0;
  TestServer srv(*s, o);
  {
    const int fd = Connect(srv.port());
    const auto t0 = Clock::now();
    const std::string request = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}";
    std::string got;
    for (char c : request) {  // 52 bytes at 300 ms: 15 s if the server waited
      if (::send(fd, &c, 1, MSG_NOSIGNAL) != 1) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      if (Clock::now() - t0 > std::chrono::seconds(3)) break;
    }
    got = ReadAll(fd, 5);
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    ::close(fd);
    EXPECT_NE(got.find("408"), std::string::npos) << got;
    EXPECT_LT(secs, 8.0);
  }
  {
    const int fd = Connect(srv.port());
    const std::string head = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"pro";
    ASSERT_EQ(::send(fd, head.data(), head.size(), MSG_NOSIGNAL), static_cast<ssize_t>(head.size()));
    const auto t0 = Clock::now();
    const std::string got = ReadAll(fd, 5);
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    ::close(fd);
    EXPECT_NE(got.find("408"), std::string::npos) << got;
    EXPECT_GT(secs, 0.8);
    EXPECT_LT(secs, 4.0);
  }
  EXPECT_EQ(srv.counters().read_timeouts.load(), 2);
  auto ok = srv.Client().Post("/v1/completions", R"({"prompt": [5, 6], "max_tokens": 2})", "application/json");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
}

// Item 4: beyond max_concurrent requests a clean 503; a request past its
// deadline a clean 503; a client that hangs up stops its generation.
TEST(ServeHttp, ConcurrencyCapDeadlineAndDisconnect) {
  ServeLimits limits;
  limits.decode_slots = 1;  // kLong then takes seconds: 25,600 decode steps
  auto s = MakeService(limits);
  ASSERT_TRUE(s);
  const std::string long_body = kLong.dump();
  {
    HttpServeOptions o;
    o.max_concurrent = 1;
    o.request_timeout_s = 3;  // the first request need not run to its end (minutes under ASan)
    TestServer srv(*s, o);
    std::thread first([&] {
      auto r = srv.Client(120).Post("/v1/completions", long_body, "application/json");
      EXPECT_TRUE(r && (r->status == 200 || r->status == 503));
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    auto busy = srv.Client().Post("/v1/completions", R"({"prompt": [5], "max_tokens": 1})", "application/json");
    first.join();
    ASSERT_TRUE(busy);
    EXPECT_EQ(busy->status, 503);
    EXPECT_NE(busy->body.find("--max-concurrent"), std::string::npos) << busy->body;
    EXPECT_EQ(srv.counters().refused_busy.load(), 1);
  }
  {
    HttpServeOptions o;
    o.request_timeout_s = 0.2;
    TestServer srv(*s, o);
    const auto t0 = Clock::now();
    auto r = srv.Client().Post("/v1/completions", long_body, "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 503);
    EXPECT_NE(r->body.find("--request-timeout"), std::string::npos) << r->body;
    EXPECT_LT(std::chrono::duration<double>(Clock::now() - t0).count(), 5.0);
    EXPECT_EQ(srv.counters().timed_out.load(), 1);
  }
  {
    TestServer srv(*s, HttpServeOptions{});
    const int fd = Connect(srv.port());
    const std::string req = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                            "Content-Length: " + std::to_string(long_body.size()) + "\r\n\r\n" + long_body;
    ASSERT_EQ(::send(fd, req.data(), req.size(), MSG_NOSIGNAL), static_cast<ssize_t>(req.size()));
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    ::close(fd);
    const auto t0 = Clock::now();
    while (srv.counters().client_gone.load() == 0 && Clock::now() - t0 < std::chrono::seconds(30)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_EQ(srv.counters().client_gone.load(), 1);
    EXPECT_EQ(srv.counters().answered.load(), 0);
  }
}
// Issue 19: SSE over HTTP, and a client that hangs up mid-stream stops its generation.
TEST(ServeHttp, StreamingOverHttpAndAHangUp) {
  ServeLimits limits;
  limits.decode_slots = 4;
  auto s = MakeService(limits);
  ASSERT_TRUE(s);
  TestServer srv(*s, HttpServeOptions{});
  auto cli = srv.Client();
  auto r = cli.Post("/v1/chat/completions",
                    Json{{"messages", kMsgs}, {"max_tokens", 5}, {"stream", true}, {"seed", 2}}.dump(),
                    "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Type"), "text/event-stream");
  EXPECT_EQ(r->body.rfind("data: {", 0), 0u) << r->body;
  EXPECT_EQ(r->body.substr(r->body.size() - 14), "data: [DONE]\n\n") << r->body;
  auto bad = cli.Post("/v1/completions", R"({"prompt": [5], "stream": true, "echo": true})", "application/json");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);  // refused before any event, with a status
  auto bad_type = cli.Post("/v1/completions", R"({"prompt": [5], "stream": 1})", "application/json");
  ASSERT_TRUE(bad_type);
  EXPECT_EQ(bad_type->status, 400);
  EXPECT_EQ(srv.counters().answered.load(), 1);

  const std::string body = Patched(kLong, {{"stream", true}}).dump();
  const int fd = Connect(srv.port());
  const std::string req = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                          "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  ASSERT_EQ(::send(fd, req.data(), req.size(), MSG_NOSIGNAL), static_cast<ssize_t>(req.size()));
  char buf[512];
  ASSERT_GT(::recv(fd, buf, sizeof(buf), 0), 0);  // the stream has begun
  ::close(fd);
  const auto t0 = Clock::now();
  while (srv.counters().client_gone.load() == 0 && Clock::now() - t0 < std::chrono::seconds(30)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(srv.counters().client_gone.load(), 1);
  EXPECT_EQ(srv.counters().answered.load(), 1);
}
#endif  // FAMQ_HAVE_HTTP

}  // namespace
}  // namespace famq
