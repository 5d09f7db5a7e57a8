#include "eval/eval_suite.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/file.h"
#include "core/json_parse.h"
#include "engine/generate.h"
#include "engine/perplexity.h"

namespace famq {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string Resolve(const std::string& base_file, const std::string& rel) {
  if (rel.empty() || rel[0] == '/') return rel;
  return (fs::path(base_file).parent_path() / rel).string();
}

Result<int> IntField(const json& j, const char* key, int def, int lo, int hi, const std::string& origin) {
  auto it = j.find(key);
  if (it == j.end()) return def;
  if (!it->is_number_integer() || it->get<int64_t>() < lo || it->get<int64_t>() > hi) {
    return InvalidFormat(origin + ": '" + key + "' must be an integer in [" + std::to_string(lo) + ", " +
                         std::to_string(hi) + "]");
  }
  return static_cast<int>(it->get<int64_t>());
}

// Reads a JSONL file line by line; `fn` gets each parsed object and its line number.
Status ForEachJsonLine(const std::string& path, const std::function<Status(const json&, int)>& fn) {
  FAMQ_ASSIGN_OR_RETURN(std::string text, ReadFile(path, size_t{1} << 30));
  size_t pos = 0;
  int line_no = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    ++line_no;
    std::string_view line(text.data() + pos, end - pos);
    pos = end + 1;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    json j;
    if (!ParseJson(line, path, &j).ok() || !j.is_object()) {
      return InvalidFormat(path + ":" + std::to_string(line_no) + ": not a JSON object");
    }
    FAMQ_RETURN_IF_ERROR(fn(j, line_no));
  }
  return Status::Ok();
}

Result<std::vector<int32_t>> TokenizeDomain(const std::string& path, const Tokenizer& tok,
                                            std::optional<int32_t> separator) {
  std::vector<int32_t> ids;
  FAMQ_RETURN_IF_ERROR(ForEachJsonLine(path, [&](const json& j, int line) -> Status {
    auto it = j.find("text");
    if (it == j.end() || !it->is_string()) {
      return InvalidFormat(path + ":" + std::to_string(line) + ": expected {\"text\": string}");
    }
    if (!ids.empty() && separator) ids.push_back(*separator);
    return tok.Encode(it->get<std::string>(), &ids);
  }));
  if (ids.size() < 2) return InvalidFormat(path + ": fewer than 2 tokens of text");
  return ids;
}

}  // namespace

Result<EvalSuite> LoadEvalSuite(const std::string& name_or_path, const std::string& eval_dir) {
  std::string path = name_or_path;
  if (path.size() < 5 || path.substr(path.size() - 5) != ".json") path = JoinPath(eval_dir, name_or_path + ".json");
  if (!FileExists(path)) return NotFound("eval suite '" + name_or_path + "': no file " + path);
  FAMQ_ASSIGN_OR_RETURN(std::string text, ReadFile(path, 1u << 20));
  json j;
  FAMQ_RETURN_IF_ERROR(ParseJson(text, path, &j));
  if (!j.is_object()) return InvalidFormat(path + ": not a JSON object");
  EvalSuite s;
  s.path = path;
  s.name = j.value("name", fs::path(path).stem().string());
  if (auto t = j.find("text"); t != j.end()) {
    if (!t->is_array()) return InvalidFormat(path + ": 'text' must be an array");
    for (const auto& d : *t) {
      if (!d.is_object() || !d.contains("domain") || !d["domain"].is_string() || !d.contains("file") ||
          !d["file"].is_string()) {
        return InvalidFormat(path + ": each 'text' item needs string 'domain' and 'file'");
      }
      s.text.push_back({d["domain"].get<std::string>(), Resolve(path, d["file"].get<std::string>())});
    }
  }
  if (auto r = j.find("reasoning"); r != j.end()) {
    if (!r->is_object() || !r->contains("file") || !(*r)["file"].is_string()) {
      return InvalidFormat(path + ": 'reasoning' needs a string 'file'");
    }
    s.reasoning_file = Resolve(path, (*r)["file"].get<std::string>());
    FAMQ_ASSIGN_OR_RETURN(s.reasoning_limit, IntField(*r, "limit", 0, 0, 1 << 24, path));
    FAMQ_ASSIGN_OR_RETURN(s.reasoning_stride, IntField(*r, "stride", 1, 1, 1 << 24, path));
  }
  FAMQ_ASSIGN_OR_RETURN(s.ctx, IntField(j, "ctx", 256, 2, 1 << 20, path));
  FAMQ_ASSIGN_OR_RETURN(s.max_windows, IntField(j, "max_windows", 0, 0, 1 << 24, path));
  FAMQ_ASSIGN_OR_RETURN(s.max_new_tokens, IntField(j, "max_new_tokens", 320, 1, 1 << 16, path));
  if (s.text.empty() && s.reasoning_file.empty()) return InvalidFormat(path + ": the suite has no text and no reasoning");
  return s;
}

Result<std::vector<ReasoningProblem>> LoadReasoningProblems(const std::string& path, int limit, int stride) {
  if (stride < 1) return InvalidArgument("reasoning stride " + std::to_string(stride) + " is below 1");
  std::vector<ReasoningProblem> out;
  int seen = 0;
  FAMQ_RETURN_IF_ERROR(ForEachJsonLine(path, [&](const json& j, int line) -> Status {
    if (limit > 0 && static_cast<int>(out.size()) >= limit) return Status::Ok();
    auto where = path + ":" + std::to_string(line);
    ReasoningProblem p;
    p.format = j.value("format", "plain");
    const char* key = p.format == "chat" ? "prompt_chat" : "prompt_plain";
    if (p.format != "chat" && p.format != "plain") return InvalidFormat(where + ": format must be plain or chat");
    if (!j.contains(key) || !j[key].is_string()) return InvalidFormat(where + ": missing string '" + key + "'");
    if (!j.contains("answer") || !j["answer"].is_number_integer()) {
      return InvalidFormat(where + ": missing integer 'answer'");
    }
    p.prompt = j[key].get<std::string>();
    p.answer = j["answer"].get<int64_t>();
    p.kind = j.value("kind", "");
    p.difficulty = j.value("difficulty", 0);
    if (seen++ % stride == 0) out.push_back(std::move(p));
    return Status::Ok();
  }));
  if (out.empty()) return InvalidFormat(path + ": no reasoning problems");
  return out;
}

std::optional<int64_t> ParseFinalAnswer(std::string_view text) {
  static constexpr std::string_view kCue = "The answer is ";
  for (size_t at = text.find(kCue); at != std::string_view::npos; at = text.find(kCue, at + 1)) {
    size_t p = at + kCue.size();
    const bool negative = p < text.size() && text[p] == '-';
    if (negative) ++p;
    const size_t digits_begin = p;
    int64_t v = 0;
    while (p < text.size() && text[p] >= '0' && text[p] <= '9' && p - digits_begin < 18) {
      v = v * 10 + (text[p] - '0');
      ++p;
    }
    // Thousands separators are not part of the format: "1,234." does not parse.
    if (p > digits_begin && p < text.size() && text[p] == '.') return negative ? -v : v;
  }
  return std::nullopt;
}

Result<EvalResult> RunEvalSuite(const EvalSuite& suite, const RunnableModel& model, const EngineOptions& engine_options,
                                const EvalProgress& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  EvalResult result;
  std::optional<int32_t> eot = model.tokenizer.TokenId("<|endoftext|>");

  std::vector<ReasoningProblem> problems;
  std::vector<std::vector<int32_t>> prompts;
  int longest_prompt = 0;
  if (!suite.reasoning_file.empty()) {
    FAMQ_ASSIGN_OR_RETURN(problems, LoadReasoningProblems(suite.reasoning_file, suite.reasoning_limit, suite.reasoning_stride));
    for (const auto& p : problems) {
      std::vector<int32_t> ids;
      FAMQ_RETURN_IF_ERROR(model.tokenizer.Encode(p.prompt, &ids));
      if (ids.empty()) return InvalidFormat(suite.reasoning_file + ": empty prompt");
      longest_prompt = std::max(longest_prompt, static_cast<int>(ids.size()));
      prompts.push_back(std::move(ids));
    }
  }
  EngineOptions eo = engine_options;
  eo.max_seq_len = std::min(std::max(suite.ctx, longest_prompt + suite.max_new_tokens),
                            model.config.max_position_embeddings);
  if (longest_prompt + 1 > eo.max_seq_len) return InvalidArgument("a reasoning prompt exceeds the model's context");
  FAMQ_ASSIGN_OR_RETURN(std::unique_ptr<Engine> engine, model.CreateEngine(eo));

  for (const auto& d : suite.text) {
    FAMQ_ASSIGN_OR_RETURN(std::vector<int32_t> ids, TokenizeDomain(d.file, model.tokenizer, eot));
    PerplexityOptions po;
    po.ctx = std::min(suite.ctx, engine->max_seq_len());
    po.max_windows = suite.max_windows;
    po.on_window = [&](int done, int total) {
      if (progress) progress(d.domain, done, total);
      return true;
    };
    FAMQ_ASSIGN_OR_RETURN(PerplexityResult pr, ComputePerplexity(*engine, ids, po));
    result.text[d.domain] = {pr.ppl,     pr.mean_nll,          pr.top1_accuracy(), pr.tokens,
                             pr.windows, std::move(pr.window_nll), std::move(pr.window_tokens)};
  }

  if (!problems.empty()) {
    ReasoningResult rr;
    GenerateParams gp;  // greedy
    gp.stop_tokens = model.stop_tokens;
    if (eot) gp.stop_tokens.push_back(*eot);
    std::vector<int32_t> out;
    std::string text;
    for (size_t i = 0; i < problems.size(); ++i) {
      const auto& p = problems[i];
      gp.max_new_tokens = std::min(suite.max_new_tokens, engine->max_seq_len() - static_cast<int>(prompts[i].size()));
      Generator gen(engine.get(), gp);
      out.clear();
      out.reserve(static_cast<size_t>(gp.max_new_tokens));
      text.clear();
      auto on_token = [&](int32_t tok) {
        text += model.tokenizer.TokenBytes(tok);
        return !ParseFinalAnswer(text).has_value();  // the answer line is complete: stop
      };
      GenerateStats stats;
      FAMQ_RETURN_IF_ERROR(gen.Run(prompts[i], &out, on_token, &stats));
      rr.generated_tokens += stats.generated_tokens;
      const std::optional<int64_t> got = ParseFinalAnswer(text);
      const bool ok = got && *got == p.answer;
      rr.unparsed += !got;
      rr.correct_by_problem.push_back(ok ? 1 : 0);
      for (ReasoningTally* t : {&rr.all, &rr.by_difficulty[p.difficulty], &rr.by_format[p.format], &rr.by_kind[p.kind]}) {
        t->total += 1;
        t->correct += ok;
      }
      if (progress) progress("reasoning", static_cast<int>(i + 1), static_cast<int>(problems.size()));
    }
    result.reasoning = std::move(rr);
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return result;
}

}  // namespace famq
