// `famq serve`: the completions service over HTTP (cpp-httplib) on
// GET /v1/models and POST /v1/completions, /v1/chat/completions and
// /v1/embeddings (ServeApi::kChatOnly: models and chat completions only;
// other routes answer 404), errors as OpenAI-style JSON
// {"error": {"message", "type", "code"}}.
//
// No request can crash or starve the server (docs/HOST_STAGE.md "famq serve"):
// bodies are parsed depth-limited and capped in size; the request line and
// headers, and then the body, must arrive within their deadlines (else 408
// and the connection closes); at most `max_concurrent` requests are handled at
// a time (503 beyond); each has a deadline (503); generation stops when the
// client closes its connection; with an API key every request must carry
// `Authorization: Bearer KEY` (401), and a key is required to listen on
// anything but loopback.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "core/status.h"
#include "serve/completions.h"

namespace famq {

struct HttpServeOptions {
  std::string host = "127.0.0.1";
  int port = 8000;                 // 0: any free port
  size_t max_body_bytes = 0;       // 0: CompletionService::DefaultMaxBodyBytes()
  bool log_requests = true;        // one line per request on stderr
  std::string api_key;             // "": no authentication (loopback hosts only)
  int max_concurrent = 32;         // requests handled at a time; more get 503
  double header_timeout_s = 10;    // request line + headers, from their first byte
  double body_timeout_s = 30;      // the body, after the headers
  double request_timeout_s = 300;  // the answer, after the body
  double keep_alive_timeout_s = 5; // idle between requests on one connection
};

// True for 127.0.0.0/8, ::1, ::ffff:127.x.x.x and "localhost".
bool IsLoopbackHost(const std::string& host);

// The options' own consistency: a key for a non-loopback host, positive
// limits. InvalidArgument with the flag to change.
Status CheckHttpServeOptions(const HttpServeOptions& options);

// The routes served under `api`, for messages ("GET /v1/models, POST ...").
std::string ServedRoutes(ServeApi api);

// What the server refused or stopped, for tests and the exit log.
struct HttpServeCounters {
  std::atomic<long long> answered{0};       // 200
  std::atomic<long long> refused_busy{0};   // 503: max_concurrent requests in flight
  std::atomic<long long> timed_out{0};      // 503: past request_timeout_s
  std::atomic<long long> read_timeouts{0};  // 408: headers or body too slow
  std::atomic<long long> client_gone{0};    // generation stopped: the client closed its connection
  std::atomic<long long> unauthorized{0};   // 401
};

// A bound server; Run() serves until Stop() (from any thread).
class HttpServer {
 public:
  // Checks the options and binds. Errors: InvalidArgument (options), IoError (bind).
  static Result<std::unique_ptr<HttpServer>> Create(CompletionService& service, const HttpServeOptions& options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  int port() const { return port_; }
  size_t max_body_bytes() const { return max_body_bytes_; }
  // Serves until Stop(); at once Ok if Stop() came first.
  Status Run();
  // Any thread, any time; repeat it if Run() may not have started listening yet.
  void Stop();
  const HttpServeCounters& counters() const { return counters_; }

  class Impl;  // the cpp-httplib server (http_server.cc)

 private:
  HttpServer() = default;
  std::unique_ptr<Impl> impl_;
  int port_ = 0;
  size_t max_body_bytes_ = 0;
  HttpServeCounters counters_;
  std::atomic<bool> stop_requested_{false};
};

// True when the peer of a connected socket has closed it (a non-blocking peek
// reads end-of-file or an error); data waiting to be read is not a close.
bool PeerClosed(int socket_fd);

// Serves until SIGINT or SIGTERM. `on_listening(port)` runs once the socket
// is bound (the actual port when options.port is 0).
Status ServeHttp(CompletionService& service, const HttpServeOptions& options,
                 const std::function<void(int)>& on_listening);

}  // namespace famq
