// famq-rt chat (--model DIR | --qmodel Q) [--system TEXT] [-n N] [--temp T] [--top-k K] [--top-p P]
//   [--seed S] [--repeat-penalty R] [--no-think] [--stop S]... [--ctx N] [--threads N] [--kv-type T] [--stats]
// A multi-turn terminal chat on the C API's chat sessions (famq.h): each line
// of standard input is a user message, the reply streams to standard output.
// Commands: /reset (forget the conversation, keep the system prompt),
// /system TEXT (a new conversation with TEXT as its system prompt), /quit.
// Works with piped input; --stats writes one JSON line per turn to stderr
// (token counts, time to first token, the reply).
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "famq/famq.h"
#include "tools/famq-rt/commands.h"

namespace famq::cli {
namespace {

struct ChatArgs {
  std::string model, qmodel, system;
  int n = 512, threads = 0, ctx = 0;
  int kv_type = FAMQ_KV_F16;
  float temperature = 0.0f, top_p = 1.0f, repeat_penalty = 1.0f;
  int top_k = 0;
  uint64_t seed = 0;
  bool no_think = false, stats = false;
  std::vector<std::string> stops;
};

volatile sig_atomic_t g_generating = 0;
volatile sig_atomic_t g_cancel = 0;

void OnSigint(int) {
  if (g_generating != 0) {
    g_cancel = 1;  // the reply stops after the current token
  } else {
    _exit(130);
  }
}

int OnPiece(const char* piece, size_t len, int32_t, void* user) {
  static_cast<std::string*>(user)->append(piece, len);
  std::fwrite(piece, 1, len, stdout);
  std::fflush(stdout);
  return g_cancel != 0 ? 1 : 0;
}

int Fail(const char* what, famq_status st) {
  std::fprintf(stderr, "famq-rt: %s: %s: %s\n", what, famq_status_name(st), famq_last_error());
  return 1;
}

const char* StopName(famq_stop_reason r) {
  switch (r) {
    case FAMQ_STOP_TOKEN: return "token";
    case FAMQ_STOP_STRING: return "string";
    case FAMQ_STOP_LENGTH: return "length";
    case FAMQ_STOP_CONTEXT: return "context";
    case FAMQ_STOP_CALLBACK: return "cancelled";
    case FAMQ_STOP_NONE:
    case FAMQ_STOP_FORCE_32BIT: break;
  }
  return "none";
}

// Starts a conversation: the system prompt, if any.
famq_status Begin(famq_session* s, const std::string& system) {
  famq_status st = famq_session_reset(s);
  if (st == FAMQ_OK && !system.empty()) st = famq_session_add_message(s, FAMQ_ROLE_SYSTEM, system.c_str());
  return st;
}

int RunChat(const ChatArgs& a) {
  famq_model_options mo;
  famq_model_options_init(&mo);
  mo.num_threads = a.threads;
  mo.max_seq_len = a.ctx;
  mo.kv_type = a.kv_type;
  famq_model* m = nullptr;
  famq_status st = a.qmodel.empty() ? famq_model_open(a.model.c_str(), &mo, &m)
                                    : famq_qmodel_open(a.qmodel.c_str(), &mo, &m);
  if (st != FAMQ_OK) return Fail("open", st);
  std::vector<const char*> stops;
  for (const std::string& s : a.stops) stops.push_back(s.c_str());
  famq_session_params p;
  famq_session_default_params(&p);
  p.max_new_tokens = a.n;
  p.temperature = a.temperature;
  p.top_k = a.top_k;
  p.top_p = a.top_p;
  p.seed = a.seed;
  p.repetition_penalty = a.repeat_penalty;
  p.enable_thinking = a.no_think ? 0 : 1;
  p.stop_strings = stops.empty() ? nullptr : stops.data();
  p.n_stop_strings = stops.size();
  famq_session* s = nullptr;
  st = famq_session_create(m, &p, &s);
  if (st != FAMQ_OK) {
    famq_model_close(m);
    return Fail("session", st);
  }
  struct sigaction sa = {};
  sa.sa_handler = OnSigint;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);

  const bool tty = isatty(STDIN_FILENO) != 0;
  std::string system = a.system;
  int code = 0;
  int turn = 0;
  if ((st = Begin(s, system)) != FAMQ_OK) code = Fail("session", st);
  std::string line;
  while (code == 0) {
    if (tty) {
      std::fputs("> ", stdout);
      std::fflush(stdout);
    }
    if (!std::getline(std::cin, line)) break;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    if (line == "/quit" || line == "/exit") break;
    if (line == "/reset") {
      if ((st = Begin(s, system)) != FAMQ_OK) code = Fail("reset", st);
      if (tty) std::fputs("(conversation reset)\n", stdout);
      continue;
    }
    if (line.rfind("/system", 0) == 0 && (line.size() == 7 || line[7] == ' ')) {
      system = line.size() > 8 ? line.substr(8) : "";
      if ((st = Begin(s, system)) != FAMQ_OK) code = Fail("system", st);
      if (tty) std::fputs("(new conversation with this system prompt)\n", stdout);
      continue;
    }
    g_cancel = 0;
    g_generating = 1;
    std::string reply;
    st = famq_session_send(s, line.c_str(), OnPiece, &reply, nullptr, 0, nullptr);
    g_generating = 0;
    std::fputs("\n", stdout);
    std::fflush(stdout);
    if (st == FAMQ_CONTEXT_FULL) {
      std::fprintf(stderr, "famq-rt: %s (type /reset)\n", famq_last_error());
      continue;
    }
    if (st != FAMQ_OK) {
      code = Fail("send", st);
      break;
    }
    ++turn;
    if (a.stats) {
      famq_session_stats ss;
      ss.struct_size = sizeof ss;
      if ((st = famq_session_get_stats(s, &ss)) != FAMQ_OK) {
        code = Fail("stats", st);
        break;
      }
      nlohmann::json j = {{"turn", turn},
                          {"messages", ss.messages},
                          {"prompt_tokens", ss.last_prompt_tokens},
                          {"reused_tokens", ss.last_reused_tokens},
                          {"prefill_tokens", ss.last_prefill_tokens},
                          {"generated_tokens", ss.last_generated_tokens},
                          {"context_tokens", ss.context_tokens},
                          {"max_seq_len", ss.max_seq_len},
                          {"ttft_ms", ss.last_ttft_seconds * 1e3},
                          {"decode_ms", ss.last_decode_seconds * 1e3},
                          {"stop", StopName(ss.last_stop)},
                          {"kv_cache_bytes", ss.kv_cache_bytes},
                          {"reply", reply}};
      std::fprintf(stderr, "%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    }
  }
  famq_session_free(s);
  famq_model_close(m);
  return code;
}

}  // namespace

void RegisterChat(CLI::App& app, ExitCode* exit_code) {
  auto* cmd = app.add_subcommand("chat", "multi-turn chat on a session (stdin lines; /reset, /system TEXT, /quit)");
  auto a = std::make_shared<ChatArgs>();
  auto* model = cmd->add_option("--model", a->model, "fp32 Hugging Face model directory");
  auto* qmodel = cmd->add_option("--qmodel", a->qmodel, "quantized model file (famq-rt finalize)");
  model->excludes(qmodel);
  cmd->add_option("--system", a->system, "system prompt of the conversation");
  cmd->add_option("-n,--max-new-tokens", a->n, "tokens per reply at most")->capture_default_str();
  cmd->add_option("--temp", a->temperature, "temperature (0: greedy)")->capture_default_str();
  cmd->add_option("--top-k", a->top_k, "top-k (0: off)")->capture_default_str();
  cmd->add_option("--top-p", a->top_p, "top-p (1: off)")->capture_default_str();
  cmd->add_option("--seed", a->seed, "sampling seed")->capture_default_str();
  cmd->add_option("--repeat-penalty", a->repeat_penalty, "repetition penalty (1: off)")->capture_default_str();
  cmd->add_flag("--no-think", a->no_think, "enable_thinking=false in the chat template (Qwen3)");
  cmd->add_option("--stop", a->stops, "a stop string (repeatable)");
  cmd->add_option("--ctx", a->ctx, "context in tokens (0: min(model's, 2048))")->capture_default_str();
  cmd->add_option("--threads", a->threads, "engine threads (0: one per CPU, at most 8)")->capture_default_str();
  cmd->add_option("--kv-type", a->kv_type, "KV-cache element type: f16 (default), f32, int8")
      ->transform(CLI::CheckedTransformer(std::map<std::string, int>{{"f16", FAMQ_KV_F16}, {"f32", FAMQ_KV_F32},
                                                                    {"int8", FAMQ_KV_INT8}}))
      ->default_str("f16");
  cmd->add_flag("--stats", a->stats, "one JSON line per turn on stderr (tokens reused/prefilled, time to first token)");
  cmd->callback([a, exit_code, model, qmodel]() {
    if (model->count() == 0 && qmodel->count() == 0) {
      std::fprintf(stderr, "famq-rt: chat: give --model DIR or --qmodel FILE\n");
      exit_code->value = 1;
      return;
    }
    exit_code->value = RunChat(*a);
  });
}

}  // namespace famq::cli
