// famq-rt generate --model DIR --prompt TEXT [-n N] [--temp T] [--top-k K] [--top-p P] [--seed S]
// Streams the continuation to stdout; timing goes to stderr (or into --json).
#include <cstdio>
#include <nlohmann/json.hpp>

#include "engine/generate.h"
#include "chat_template/chat_template.h"
#include "tokenizer/unicode.h"
#include "tools/famq-rt/cli_util.h"
#include "tools/famq-rt/commands.h"
#include "tools/famq-rt/engine_flags.h"

namespace famq::cli {
namespace {

// Streams token bytes as valid UTF-8: a character split across tokens is held
// back until it is complete; ill-formed bytes become U+FFFD.
class Utf8Stream {
 public:
  void Write(std::string_view bytes) {
    pending_.append(bytes);
    size_t cut = pending_.size();
    // An incomplete sequence can only be the last 1-3 bytes: find its lead byte.
    for (size_t back = 1; back <= 3 && back <= pending_.size(); ++back) {
      const auto c = static_cast<unsigned char>(pending_[pending_.size() - back]);
      if ((c & 0xC0) == 0x80) continue;  // continuation byte: look further back
      const size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
      if (need > back) cut = pending_.size() - back;
      break;
    }
    Emit(cut);
  }
  void Flush() { Emit(pending_.size()); }

 private:
  void Emit(size_t n) {
    if (n == 0) return;
    out_.clear();
    unicode::AppendUtf8Lossy(std::string_view(pending_).substr(0, n), &out_);
    pending_.erase(0, n);
    std::fwrite(out_.data(), 1, out_.size(), stdout);
    std::fflush(stdout);
  }
  std::string pending_, out_;
};

struct GenerateArgs {
  std::string model, qmodel, prompt, prompt_file, prompt_ids;
  int n = 64;
  bool ignore_eos = false;
  SamplingParams sampling;
  EngineOptions engine;
  bool chat = false, no_think = false, json = false, quiet = false;
};

Result<std::vector<int32_t>> BuildPrompt(const GenerateArgs& a, const RunnableModel& m, std::string* text_out) {
  if (!a.prompt_ids.empty()) {
    if (a.chat) return InvalidArgument("--chat cannot wrap --prompt-ids");
    *text_out = "";
    return ParsePromptIds(a.prompt_ids, m.config.vocab_size);
  }
  std::string text = a.prompt;
  if (!a.prompt_file.empty()) {
    FAMQ_ASSIGN_OR_RETURN(text, ReadTextArg(a.prompt_file));
  }
  if (a.chat) {
    if (!m.tokenizer_config || m.tokenizer_config->chat_template.empty()) {
      return InvalidArgument(m.origin + ": --chat needs a chat_template in tokenizer_config.json");
    }
    FAMQ_ASSIGN_OR_RETURN(ChatTemplate tmpl, ChatTemplate::Parse(m.tokenizer_config->chat_template));
    ChatTemplateOptions opt;
    opt.add_generation_prompt = true;
    opt.enable_thinking = !a.no_think;
    opt.bos_token = m.tokenizer_config->bos_token;
    opt.eos_token = m.tokenizer_config->eos_token;
    FAMQ_ASSIGN_OR_RETURN(text, tmpl.Render({ChatMessage{"user", text}}, opt));
  }
  std::vector<int32_t> ids;
  if (m.add_bos && m.bos_token && !a.chat) ids.push_back(*m.bos_token);
  std::vector<int32_t> body;
  FAMQ_RETURN_IF_ERROR(m.tokenizer.Encode(text, &body));
  ids.insert(ids.end(), body.begin(), body.end());
  *text_out = text;
  return ids;
}

int RunGenerate(const GenerateArgs& a) {
  if (int(!a.prompt.empty()) + int(!a.prompt_file.empty()) + int(!a.prompt_ids.empty()) != 1) {
    return Fail(InvalidArgument("give exactly one of --prompt, --prompt-file and --prompt-ids"));
  }
  auto m = OpenRunnableModel(a.model, a.qmodel);
  if (!m.ok()) return Fail(m.status());
  std::string prompt_text;
  auto prompt = BuildPrompt(a, *m, &prompt_text);
  if (!prompt.ok()) return Fail(prompt.status());
  auto engine = m->CreateEngine(a.engine);
  if (!engine.ok()) return Fail(engine.status());

  GenerateParams gp;
  gp.sampling = a.sampling;
  gp.max_new_tokens = a.n;
  if (!a.ignore_eos) gp.stop_tokens = m->stop_tokens;
  Generator gen(engine->get(), gp);
  std::vector<int32_t> out;
  out.reserve(static_cast<size_t>(a.n));
  GenerateStats stats;
  Utf8Stream stream;
  auto on_token = [&](int32_t tok) {
    if (!a.json) stream.Write(m->tokenizer.TokenBytes(tok));
    return true;
  };
  Status st = gen.Run(*prompt, &out, on_token, &stats);
  stream.Flush();
  if (!st.ok()) return Fail(st);
  const double prefill_tps = stats.prefill_seconds > 0 ? stats.prompt_tokens / stats.prefill_seconds : 0.0;
  const double decode_tps =
      stats.decode_seconds > 0 && stats.generated_tokens > 1 ? (stats.generated_tokens - 1) / stats.decode_seconds : 0.0;
  if (a.json) {
    nlohmann::ordered_json j;
    j["prompt"] = prompt_text;
    j["prompt_ids"] = *prompt;
    j["ids"] = out;
    j["text"] = m->tokenizer.Decode(out);
    j["prompt_tokens"] = stats.prompt_tokens;
    j["generated_tokens"] = stats.generated_tokens;
    j["stopped_by_token"] = stats.stopped_by_token;
    j["prefill_tokens_per_s"] = prefill_tps;
    j["decode_tokens_per_s"] = decode_tps;
    j["threads"] = (*engine)->num_threads();
    std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else {
    std::printf("\n");
    std::fflush(stdout);
    if (!a.quiet) {
      std::fprintf(stderr, "[famq-rt] prompt %d tokens, prefill %.1f tok/s; generated %d tokens, decode %.1f tok/s%s\n",
                   stats.prompt_tokens, prefill_tps, stats.generated_tokens, decode_tps,
                   stats.stopped_by_token ? " (stop token)" : "");
    }
  }
  return 0;
}

}  // namespace

void RegisterGenerate(CLI::App& app, ExitCode* exit_code) {
  auto a = std::make_shared<GenerateArgs>();
  CLI::App* cmd = app.add_subcommand("generate", "Generate text from a prompt");
  AddModelFlags(cmd, &a->model, &a->qmodel);
  cmd->add_option("--prompt", a->prompt, "Prompt text");
  cmd->add_option("--prompt-file", a->prompt_file, "Read the prompt from a file");
  cmd->add_option("--prompt-ids", a->prompt_ids, "Prompt as a JSON array of token ids (no tokenization)");
  cmd->add_flag("--ignore-eos", a->ignore_eos, "Do not stop at end-of-sequence tokens");
  cmd->add_option("-n,--max-tokens", a->n, "Maximum new tokens")->check(CLI::Range(0, 1 << 20));
  cmd->add_option("--temp", a->sampling.temperature, "Temperature (0: greedy)")->check(CLI::Range(0.0, 100.0));
  cmd->add_option("--top-k", a->sampling.top_k, "Top-k (0: off)")->check(CLI::Range(0, 1 << 24));
  cmd->add_option("--top-p", a->sampling.top_p, "Top-p nucleus mass (1: off)")->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--seed", a->sampling.seed, "Sampling seed");
  cmd->add_flag("--chat", a->chat, "Wrap the prompt as one user turn with the model's chat template");
  cmd->add_flag("--no-think", a->no_think, "With --chat: render with enable_thinking=false");
  cmd->add_flag("--json", a->json, "Print one JSON object (ids, text, timings) instead of streaming");
  cmd->add_flag("-q,--quiet", a->quiet, "No timing line on stderr");
  AddEngineFlags(cmd, &a->engine);
  cmd->callback([a, exit_code] { exit_code->value = RunGenerate(*a); });
}

}  // namespace famq::cli
