// `famq serve`: the completions service over HTTP (cpp-httplib) on
// GET /v1/models and POST /v1/completions, /v1/chat/completions and
// /v1/embeddings (ServeApi::kChatOnly: models and chat completions only;
// other routes answer 404), errors as OpenAI-style JSON
// {"error": {"message", "type", "code"}}.
#pragma once

#include <functional>
#include <string>

#include "core/status.h"
#include "serve/completions.h"

namespace famq {

struct HttpServeOptions {
  std::string host = "127.0.0.1";
  int port = 8000;                 // 0: any free port
  size_t max_body_bytes = 16 << 20;
  bool log_requests = true;        // one line per request on stderr
};

// The routes served under `api`, for messages ("GET /v1/models, POST ...").
std::string ServedRoutes(ServeApi api);

// Serves until SIGINT or SIGTERM. `on_listening(port)` runs once the socket
// is bound (the actual port when options.port is 0).
Status ServeHttp(CompletionService& service, const HttpServeOptions& options,
                 const std::function<void(int)>& on_listening);

}  // namespace famq
