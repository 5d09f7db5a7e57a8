#include "serve/http_server.h"

#include <httplib.h>
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>

namespace famq {
namespace {

void SendError(httplib::Response& res, int http_status, const std::string& message, const char* type) {
  nlohmann::ordered_json j{{"error", {{"message", message}, {"type", type}, {"code", http_status}}}};
  res.status = http_status;
  res.set_content(j.dump(), "application/json");
}

using Handler = Result<nlohmann::ordered_json> (CompletionService::*)(const nlohmann::json&);

// One POST route: JSON in, the service's answer or an OpenAI-style error out,
// and a log line per request.
void Route(httplib::Server& svr, CompletionService& service, const HttpServeOptions& o, const std::string& path,
           Handler handler) {
  svr.Post(path, [&service, &o, path, handler](const httplib::Request& req, httplib::Response& res) {
    const auto t0 = std::chrono::steady_clock::now();
    auto body = nlohmann::json::parse(req.body, nullptr, false);
    if (body.is_discarded()) return SendError(res, 400, "the request body is not valid JSON", "invalid_request_error");
    auto r = (service.*handler)(body);
    if (!r.ok()) {
      const int code = r.status().code() == StatusCode::kNotFound ? 404
                       : r.status().code() == StatusCode::kInvalidArgument ? 400
                                                                            : 500;
      return SendError(res, code, r.status().message(), code == 500 ? "server_error" : "invalid_request_error");
    }
    res.set_content(r->dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace), "application/json");
    if (!o.log_requests) return;
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const auto& usage = (*r)["usage"];
    if (r->contains("choices")) {
      std::fprintf(stderr, "[famq serve] POST %s n=%zu completion_tokens=%lld %.2fs\n", path.c_str(),
                   (*r)["choices"].size(), usage["completion_tokens"].get<long long>(), secs);
    } else {
      std::fprintf(stderr, "[famq serve] POST %s prompt_tokens=%lld %.2fs\n", path.c_str(),
                   usage["prompt_tokens"].get<long long>(), secs);
    }
  });
}

}  // namespace

std::string ServedRoutes(ServeApi api) {
  return api == ServeApi::kChatOnly
             ? "GET /v1/models, POST /v1/chat/completions"
             : "GET /v1/models, POST /v1/completions, POST /v1/chat/completions, POST /v1/embeddings";
}

Status ServeHttp(CompletionService& service, const HttpServeOptions& o, const std::function<void(int)>& on_listening) {
  // Block SIGINT/SIGTERM in every thread; one thread waits for them and stops the server.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  httplib::Server svr;
  svr.set_payload_max_length(o.max_body_bytes);
  svr.Get("/v1/models", [&](const httplib::Request&, httplib::Response& res) {
    res.set_content(service.Models().dump(), "application/json");
  });
  Route(svr, service, o, "/v1/chat/completions", &CompletionService::ChatComplete);
  if (service.api() == ServeApi::kFull) {
    Route(svr, service, o, "/v1/completions", &CompletionService::Complete);
    Route(svr, service, o, "/v1/embeddings", &CompletionService::Embed);
  }
  const std::string routes = ServedRoutes(service.api());
  svr.set_error_handler([routes](const httplib::Request& req, httplib::Response& res) {
    if (res.body.empty()) {
      SendError(res, res.status, "no route for " + req.method + " " + req.path + " (famq serves " + routes + ")",
                "invalid_request_error");
    }
  });
  int port = o.port;
  if (port == 0) {
    port = svr.bind_to_any_port(o.host);
    if (port < 0) return IoError("serve: cannot bind " + o.host);
  } else if (!svr.bind_to_port(o.host, port)) {
    return IoError("serve: cannot bind " + o.host + ":" + std::to_string(port) + " (in use?)");
  }
  std::atomic<bool> signalled{false};
  std::thread stopper([&] {
    int sig = 0;
    sigwait(&sigs, &sig);
    signalled = true;
    svr.stop();
  });
  if (on_listening) on_listening(port);
  const bool ok = svr.listen_after_bind();
  const bool by_signal = signalled.load();
  if (!by_signal) pthread_kill(stopper.native_handle(), SIGTERM);  // wake the waiting stopper
  stopper.join();
  return ok || by_signal ? Status::Ok() : IoError("serve: the server stopped with an error");
}

}  // namespace famq
