// famq serve --model DIR [--host 127.0.0.1] --port P [--name ID] [--threads N]
//            [--api full|chat-only]
// The built-in engine behind the OpenAI-compatible API (completions, chat
// completions, embeddings), so a regeneration and a scoring through HTTP can
// be checked against the in-process ones; --api chat-only mimics a server
// without completions, n or logprobs, for the clients' fallback paths.
#include <cstdio>

#ifdef FAMQ_HAVE_HTTP
#include "serve/http_server.h"
#else
#include "serve/completions.h"
#endif
#include "tools/famq/commands.h"

namespace famq::host_cli {
namespace {

#ifndef FAMQ_HAVE_HTTP
struct HttpServeOptions {
  std::string host = "127.0.0.1";
  int port = 8000;
};
#endif

struct ServeArgs {
  std::string model, name;
  HttpServeOptions http;
  EngineOptions engine;
  ServeLimits limits;
  std::string api = "full";
  bool quiet = false;
};

int RunServe(const ServeArgs& a) {
#ifndef FAMQ_HAVE_HTTP
  (void)a;
  return Fail(Unsupported("serve: this famq was built without HTTP support (cpp-httplib)"));
#else
  ServeLimits limits = a.limits;
  limits.api = a.api == "chat-only" ? ServeApi::kChatOnly : ServeApi::kFull;
  auto service = CompletionService::Create(a.model, a.name, a.engine, limits);
  if (!service.ok()) return Fail(service.status());
  HttpServeOptions o = a.http;
  o.log_requests = !a.quiet;
  Status s = ServeHttp(**service, o, [&](int port) {
    std::printf("famq serve: %s on http://%s:%d (%s); Ctrl-C stops\n", (*service)->name().c_str(), o.host.c_str(),
                port, ServedRoutes(limits.api).c_str());
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
  cmd->add_option("--max-n", a->limits.max_n, "Largest n accepted")->check(CLI::Range(1, 1024))->capture_default_str();
  cmd->add_option("--parallel-sequences", a->limits.decode_slots,
                  "Candidates decoded at a time in one batch, over all requests in flight (KV-cache slots; fewer if "
                  "they would pass 1 GiB)")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  cmd->add_option("--api", a->api,
                  "Routes served: full, or chat-only (GET /v1/models and POST /v1/chat/completions, n = 1 only, "
                  "like distributed-llama's server: a test aid for the clients' fallback paths)")
      ->check(CLI::IsMember({"full", "chat-only"}))
      ->capture_default_str();
  cmd->add_flag("-q,--quiet", a->quiet, "No request log on stderr");
  cmd->callback([a, exit_code] { exit_code->value = RunServe(*a); });
}

}  // namespace famq::host_cli
