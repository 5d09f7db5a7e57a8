// famq serve --model DIR [--host 127.0.0.1] --port P [--name ID] [--threads N] [--weights fp32|bf16]
//            [--api full|chat-only|standard] [--api-key KEY] [limits: --max-concurrent,
//            --request-timeout, --header-timeout, --body-timeout, --max-body-bytes,
//            --max-prompt-bytes, --max-n, --max-tokens, --max-stop, ...]
// The built-in engine behind the OpenAI-compatible API (completions, chat
// completions, embeddings), so a regeneration and a scoring through HTTP can
// be checked against the in-process ones; --api chat-only mimics a server
// without completions, n or logprobs, for the clients' fallback paths.
#include <cstdio>
#include <cstdlib>

#ifdef FAMQ_HAVE_HTTP
#include <pthread.h>
#include <signal.h>

#include "serve/http_server.h"
#else
#include "serve/completions.h"
#endif
#include "tools/famq/commands.h"

namespace famq::host_cli {
namespace {

#ifndef FAMQ_HAVE_HTTP
struct HttpServeOptions {  // the flags' storage only: serve fails at once without HTTP
  std::string host = "127.0.0.1";
  int port = 8000;
  size_t max_body_bytes = 0;
  std::string api_key;
  int max_concurrent = 32;
  double header_timeout_s = 10, body_timeout_s = 30, request_timeout_s = 300;
};
#endif

struct ServeArgs {
  std::string model, name;
  HttpServeOptions http;
  EngineOptions engine;
  std::string weights = "fp32";  // --weights (ParseWeightType)
  ServeLimits limits;
  std::string api = "full";
  bool quiet = false;
};

int RunServe(const ServeArgs& a) {
#ifndef FAMQ_HAVE_HTTP
  (void)a;
  return Fail(Unsupported("serve: this famq was built without HTTP support (cpp-httplib)"));
#else
  EngineOptions engine = a.engine;
  if (auto w = ParseWeightType(a.weights); w.ok()) {
    engine.weights = *w;
  } else {
    return Fail(w.status());
  }
  ServeLimits limits = a.limits;
  limits.api = a.api == "chat-only" ? ServeApi::kChatOnly : a.api == "standard" ? ServeApi::kStandard : ServeApi::kFull;
  {
    HttpServeOptions check = a.http;
    if (check.api_key.empty() && std::getenv("FAMQ_API_KEY") != nullptr) check.api_key = std::getenv("FAMQ_API_KEY");
    if (Status s = CheckHttpServeOptions(check); !s.ok()) return Fail(s);  // before loading the model
  }
  // Block SIGINT/SIGTERM before the engine's and the decoder's threads start,
  // so that ServeHttp's waiting thread gets them and the server stops cleanly.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  auto service = CompletionService::Create(a.model, a.name, engine, limits);
  if (!service.ok()) return Fail(service.status());
  HttpServeOptions o = a.http;
  o.log_requests = !a.quiet;
  if (o.api_key.empty()) {
    if (const char* env = std::getenv("FAMQ_API_KEY"); env != nullptr) o.api_key = env;
  }
  Status s = ServeHttp(**service, o, [&](int port) {
    const size_t body = o.max_body_bytes > 0 ? o.max_body_bytes : (*service)->DefaultMaxBodyBytes();
    std::printf("famq serve: %s on http://%s:%d (%s); limits: body %zu B, prompt %zu B, %d requests at a time%s; "
                "Ctrl-C stops\n",
                (*service)->name().c_str(), o.host.c_str(), port, ServedRoutes(limits.api).c_str(), body,
                (*service)->max_prompt_bytes(), o.max_concurrent, o.api_key.empty() ? "" : ", API key required");
    std::fflush(stdout);
  });
  return s.ok() ? 0 : Fail(s);
#endif
}

}  // namespace

void RegisterServe(CLI::App& app, ExitCode* exit_code) {
  auto a = std::make_shared<ServeArgs>();
  CLI::App* cmd = app.add_subcommand(
      "serve", "Serve a model through the OpenAI-compatible API (completions, chat completions, embeddings)");
  cmd->add_option("--model", a->model, "Model directory")->required();
  cmd->add_option("--name", a->name, "Model id served (default: the directory's name)");
  cmd->add_option("--host", a->http.host, "Address to listen on")->capture_default_str();
  cmd->add_option("--port", a->http.port, "Port (0: any free port, printed on stdout)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  cmd->add_option("--threads", a->engine.num_threads, "Worker threads (0: one per CPU, at most 8)")->check(CLI::Range(0, 256));
  AddWeightsFlag(cmd, &a->weights);
  cmd->add_option("--max-n", a->limits.max_n, "Largest n accepted")->check(CLI::Range(1, 1024))->capture_default_str();
  cmd->add_option("--parallel-sequences", a->limits.decode_slots,
                  "Candidates decoded at a time in one batch, over all requests in flight (KV-cache slots; fewer if "
                  "they would pass 1 GiB)")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  cmd->add_option("--api", a->api,
                  "Routes served: full; chat-only (GET /v1/models and POST /v1/chat/completions, n = 1 only, "
                  "like distributed-llama's server); or standard (only what llama-server offers: no token_ids, "
                  "no echo, no pool_from, its logprobs and embeddings shapes). The last two are test aids for the "
                  "clients' fallback paths")
      ->check(CLI::IsMember({"full", "chat-only", "standard"}))
      ->capture_default_str();
  cmd->add_option("--api-key", a->http.api_key,
                  "Serve only requests with \"Authorization: Bearer KEY\" (default: $FAMQ_API_KEY); required when "
                  "--host is not a loopback address");
  cmd->add_option("--max-concurrent", a->http.max_concurrent, "Requests handled at a time; more get 503")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  cmd->add_option("--request-timeout", a->http.request_timeout_s,
                  "Seconds a request may take after its body arrived; then 503")
      ->check(CLI::Range(0.001, 86400.0))
      ->capture_default_str();
  cmd->add_option("--header-timeout", a->http.header_timeout_s,
                  "Seconds for the request line and headers to arrive; then 408")
      ->check(CLI::Range(0.001, 3600.0))
      ->capture_default_str();
  cmd->add_option("--body-timeout", a->http.body_timeout_s, "Seconds for the body to arrive; then 408")
      ->check(CLI::Range(0.001, 3600.0))
      ->capture_default_str();
  cmd->add_option("--max-body-bytes", a->http.max_body_bytes,
                  "Largest request body (0: what the context holds: 64 KiB + 6 x the prompt-bytes limit, at most "
                  "16 MiB); larger get 413")
      ->capture_default_str();
  cmd->add_option("--max-prompt-bytes", a->limits.max_prompt_bytes,
                  "Largest prompt text, checked before tokenizing (0: context x the longest token's bytes)")
      ->capture_default_str();
  cmd->add_option("--max-tokens", a->limits.max_tokens, "Largest max_tokens accepted")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  cmd->add_option("--max-stop", a->limits.max_stop, "Most stop strings per request")
      ->check(CLI::Range(0, 1024))
      ->capture_default_str();
  cmd->add_option("--max-stop-bytes", a->limits.max_stop_bytes, "Longest stop string in bytes")
      ->check(CLI::Range(1, 65536))
      ->capture_default_str();
  cmd->add_option("--max-stop-token-ids", a->limits.max_stop_token_ids, "Most stop_token_ids per request")
      ->check(CLI::Range(0, 65536))
      ->capture_default_str();
  cmd->add_flag("-q,--quiet", a->quiet, "No request log on stderr");
  cmd->callback([a, exit_code] { exit_code->value = RunServe(*a); });
}

}  // namespace famq::host_cli
