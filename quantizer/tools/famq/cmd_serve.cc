// famq serve --model DIR [--host 127.0.0.1] --port P [--name ID] [--threads N]
// The built-in engine behind the OpenAI-compatible completions API, so a
// regeneration through HTTP can be checked against the in-process one.
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
  bool quiet = false;
};

int RunServe(const ServeArgs& a) {
#ifndef FAMQ_HAVE_HTTP
  (void)a;
  return Fail(Unsupported("serve: this famq was built without HTTP support (cpp-httplib)"));
#else
  auto service = CompletionService::Create(a.model, a.name, a.engine, a.limits);
  if (!service.ok()) return Fail(service.status());
  HttpServeOptions o = a.http;
  o.log_requests = !a.quiet;
  Status s = ServeHttp(**service, o, [&](int port) {
    std::printf("famq serve: %s on http://%s:%d (GET /v1/models, POST /v1/completions); Ctrl-C stops\n",
                (*service)->name().c_str(), o.host.c_str(), port);
    std::fflush(stdout);
  });
  return s.ok() ? 0 : Fail(s);
#endif
}

}  // namespace

void RegisterServe(CLI::App& app, ExitCode* exit_code) {
  auto a = std::make_shared<ServeArgs>();
  CLI::App* cmd = app.add_subcommand("serve", "Serve a model through the OpenAI-compatible completions API");
  cmd->add_option("--model", a->model, "Model directory")->required();
  cmd->add_option("--name", a->name, "Model id served (default: the directory's name)");
  cmd->add_option("--host", a->http.host, "Address to listen on")->capture_default_str();
  cmd->add_option("--port", a->http.port, "Port (0: any free port, printed on stdout)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  cmd->add_option("--threads", a->engine.num_threads, "Worker threads (0: one per CPU, at most 8)")->check(CLI::Range(0, 256));
  cmd->add_option("--max-n", a->limits.max_n, "Largest n accepted")->check(CLI::Range(1, 1024))->capture_default_str();
  cmd->add_flag("-q,--quiet", a->quiet, "No request log on stderr");
  cmd->callback([a, exit_code] { exit_code->value = RunServe(*a); });
}

}  // namespace famq::host_cli
