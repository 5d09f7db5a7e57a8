#include "serve/http_server.h"

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <memory>
#include <cstdio>
#include <cstring>
#include <thread>

namespace famq {
namespace {

using Clock = std::chrono::steady_clock;

// The connection a request handler runs for (handlers run on the thread that
// read the request): its socket, polled for the client going away.
thread_local int t_socket = -1;
// Set by a handler that answered without reading the body (401): the
// connection must close, or the body would be read as the next request.
thread_local bool t_close_connection = false;

Clock::time_point After(double seconds) {
  return Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

int MillisUntil(Clock::time_point t) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t - Clock::now()).count();
  return static_cast<int>(std::clamp<long long>(ms, 0, INT_MAX));
}

// poll() for `events` until `deadline`; true when ready.
bool PollUntil(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    const int r = ::poll(&p, 1, MillisUntil(deadline));
    if (r < 0 && errno == EINTR) continue;
    return r > 0;
  }
}

std::string IpAndPort(const sockaddr_storage& a, int* port) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (a.ss_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&a);
    ::inet_ntop(AF_INET, &v4->sin_addr, buf, sizeof(buf));
    *port = ntohs(v4->sin_port);
  } else if (a.ss_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&a);
    ::inet_ntop(AF_INET6, &v6->sin6_addr, buf, sizeof(buf));
    *port = ntohs(v6->sin6_port);
  }
  return buf;
}

// A connection's socket as cpp-httplib's Stream, with deadlines instead of
// per-read timeouts: the request line and headers must arrive within
// header_timeout_s of their first byte, the body within body_timeout_s of the
// headers' end, however slowly the bytes trickle in. After a missed deadline
// reads and writes fail (cpp-httplib's own 400 is dropped) and the connection
// answers 408 itself.
class DeadlineStream : public httplib::Stream {
 public:
  DeadlineStream(int sock, const HttpServeOptions& o) : sock_(sock), o_(o) {}

  // Waits up to `seconds` for the next request's first byte.
  bool WaitForRequest(double seconds) { return pos_ < len_ || PollUntil(sock_, POLLIN, After(seconds)); }
  // A request begins: the header deadline starts.
  void BeginRequest() {
    in_headers_ = true;
    line_len_ = 0;
    deadline_ = After(o_.header_timeout_s);
  }
  bool timed_out() const { return timed_out_; }

  bool is_readable() const override { return pos_ < len_ || PollUntil(sock_, POLLIN, deadline_); }
  bool is_writable() const override { return !timed_out_ && PollUntil(sock_, POLLOUT, After(o_.body_timeout_s)); }

  ssize_t read(char* ptr, size_t size) override {
    if (timed_out_) return -1;
    if (pos_ == len_) {
      if (!PollUntil(sock_, POLLIN, deadline_)) {
        timed_out_ = true;
        return -1;
      }
      ssize_t n;
      do {
        n = ::recv(sock_, buf_, sizeof(buf_), 0);
      } while (n < 0 && errno == EINTR);
      if (n <= 0) return n;
      pos_ = 0;
      len_ = static_cast<size_t>(n);
    }
    const size_t n = std::min(size, len_ - pos_);
    std::memcpy(ptr, buf_ + pos_, n);
    pos_ += n;
    if (in_headers_) WatchHeaderEnd(ptr, n);
    return static_cast<ssize_t>(n);
  }

  ssize_t write(const char* ptr, size_t size) override {
    if (timed_out_ || !PollUntil(sock_, POLLOUT, After(o_.body_timeout_s))) return -1;
    ssize_t n;
    do {
      n = ::send(sock_, ptr, size, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n;
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    sockaddr_storage a{};
    socklen_t len = sizeof(a);
    if (::getpeername(sock_, reinterpret_cast<sockaddr*>(&a), &len) == 0) ip = IpAndPort(a, &port);
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    sockaddr_storage a{};
    socklen_t len = sizeof(a);
    if (::getsockname(sock_, reinterpret_cast<sockaddr*>(&a), &len) == 0) ip = IpAndPort(a, &port);
  }
  socket_t socket() const override { return sock_; }

  // Answers 408 on the socket directly (reads and writes through the Stream
  // are off by now).
  void Send408() {
    const std::string body =
        R"j({"error":{"message":"the request did not arrive in time (--header-timeout / --body-timeout)",)j"
        R"j("type":"invalid_request_error","code":408}})j";
    std::string msg = "HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\nConnection: close\r\n";
    msg += "Content-Length: ";
    msg += std::to_string(body.size());
    msg += "\r\n\r\n";
    msg += body;
    if (PollUntil(sock_, POLLOUT, After(1.0))) (void)::send(sock_, msg.data(), msg.size(), MSG_NOSIGNAL);
  }

 private:
  // The headers end at the first empty line (cpp-httplib reads them a byte
  // at a time, so the body deadline starts exactly there).
  void WatchHeaderEnd(const char* p, size_t n) {
    for (size_t i = 0; i < n && in_headers_; ++i) {
      if (p[i] == '\n') {
        if (line_len_ == 0) {
          in_headers_ = false;
          deadline_ = After(o_.body_timeout_s);
        }
        line_len_ = 0;
      } else if (p[i] != '\r') {
        ++line_len_;
      }
    }
  }

  int sock_;
  const HttpServeOptions& o_;
  char buf_[4096];
  size_t pos_ = 0, len_ = 0;
  Clock::time_point deadline_ = Clock::time_point::max();
  bool in_headers_ = false, timed_out_ = false;
  size_t line_len_ = 0;
};

void SendError(httplib::Response& res, int http_status, const std::string& message, const char* type) {
  nlohmann::ordered_json j{{"error", {{"message", message}, {"type", type}, {"code", http_status}}}};
  res.status = http_status;
  res.set_content(j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace), "application/json");
}

// Counts a request in flight while it lives; ok() is false past the cap.
class InFlight {
 public:
  InFlight(std::atomic<int>& count, int cap) : count_(count), ok_(count_.fetch_add(1) < cap) {}
  ~InFlight() { count_.fetch_sub(1); }
  bool ok() const { return ok_; }

 private:
  std::atomic<int>& count_;
  bool ok_;
};

// Compares a client's Authorization header with the expected one in time
// that depends on the length only.
bool ConstantTimeEquals(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

std::string Seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g s", s);
  return buf;
}

using ServiceMethod = Result<nlohmann::ordered_json> (CompletionService::*)(const nlohmann::json&, const RequestControl*);

}  // namespace

class HttpServer::Impl : public httplib::Server {
 public:
  Impl(CompletionService& service, const HttpServeOptions& o, size_t max_body, HttpServeCounters& counters)
      : service_(service), o_(o), counters_(counters) {
    const size_t threads = static_cast<size_t>(o.max_concurrent) + 8;  // 8 more to answer 503, 401, 408
    new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
    // The listening socket, seen before cpp-httplib binds it (its default
    // options, SO_REUSEADDR, kept): WidenBacklog() needs it.
    set_socket_options([this](socket_t sock) {
      httplib::default_socket_options(sock);
      listen_socket_ = sock;
    });
    set_payload_max_length(max_body);
    set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      if (o_.api_key.empty() ||
          ConstantTimeEquals(req.get_header_value("Authorization"), "Bearer " + o_.api_key)) {
        return HandlerResponse::Unhandled;
      }
      ++counters_.unauthorized;
      t_close_connection = true;
      res.set_header("Connection", "close");
      SendError(res, 401, "missing or wrong API key (send \"Authorization: Bearer KEY\")", "invalid_request_error");
      return HandlerResponse::Handled;
    });
    Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(service_.Models().dump(), "application/json");
    });
    Route("/v1/chat/completions", &CompletionService::ChatComplete, Streams::kChat);
    if (service.api() != ServeApi::kChatOnly) {
      Route("/v1/completions", &CompletionService::Complete, Streams::kCompletions);
      Route("/v1/embeddings", &CompletionService::Embed, Streams::kNo);
    }
    const std::string routes = ServedRoutes(service.api());
    set_error_handler([routes, max_body](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return;
      if (res.status == 404 || res.status == 405) {
        // Name the method only: the path is the client's, echo nothing of it.
        SendError(res, res.status, "no such route for " + req.method + " (famq serves " + routes + ")",
                  "invalid_request_error");
      } else if (res.status == 413) {
        SendError(res, 413, "the request body is larger than " + std::to_string(max_body) + " bytes (--max-body-bytes)",
                  "invalid_request_error");
      } else {
        SendError(res, res.status, "malformed HTTP request", "invalid_request_error");
      }
    });
  }

 private:
  enum class Streams { kNo, kCompletions, kChat };

  // One POST route: a depth-limited JSON body in, the service's answer or an
  // OpenAI-style error out, and a log line per request. `stream: true` on a
  // completion route answers Server-Sent Events (StreamAnswer).
  void Route(const std::string& path, ServiceMethod handler, Streams streams) {
    Post(path, [this, path, handler, streams](const httplib::Request& req, httplib::Response& res) {
      const auto t0 = Clock::now();
      auto in_flight = std::make_shared<InFlight>(in_flight_, o_.max_concurrent);
      if (!in_flight->ok()) {
        ++counters_.refused_busy;
        return SendError(res, 503,
                         "the server is busy: " + std::to_string(o_.max_concurrent) +
                             " requests in flight (--max-concurrent); retry later",
                         "server_error");
      }
      auto body = CompletionService::ParseRequest(req.body);
      if (!body.ok()) return SendError(res, 400, body.status().message(), "invalid_request_error");
      if (streams != Streams::kNo) {
        auto stream = CompletionService::WantsStream(*body);
        if (!stream.ok()) return SendError(res, 400, stream.status().message(), "invalid_request_error");
        if (*stream) return StreamAnswer(path, *body, streams == Streams::kChat, std::move(in_flight), t0, res);
      }
      RequestControl control;
      control.deadline = After(o_.request_timeout_s);
      control.deadline_what = "--request-timeout " + Seconds(o_.request_timeout_s);
      if (const int sock = t_socket; sock >= 0) control.client_gone = [sock] { return PeerClosed(sock); };
      auto r = (service_.*handler)(*body, &control);
      const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
      if (!r.ok()) {
        const auto stopped = control.stopped.load();
        if (stopped == RequestControl::Stop::kClientGone) {
          ++counters_.client_gone;
          if (o_.log_requests) {
            std::fprintf(stderr, "[famq serve] POST %s stopped: the client closed the connection (%.2fs)\n",
                         path.c_str(), secs);
          }
          return SendError(res, 503, r.status().message(), "server_error");  // nobody reads it
        }
        if (stopped == RequestControl::Stop::kDeadline) {
          ++counters_.timed_out;
          return SendError(res, 503, r.status().message(), "server_error");
        }
        const int code = r.status().code() == StatusCode::kNotFound         ? 404
                         : r.status().code() == StatusCode::kInvalidArgument ? 400
                                                                              : 500;
        return SendError(res, code, r.status().message(), code == 500 ? "server_error" : "invalid_request_error");
      }
      ++counters_.answered;
      res.set_content(r->dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace), "application/json");
      if (!o_.log_requests) return;
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

  // A checked streaming request answered as Server-Sent Events: the status
  // and headers go now, the events as the tokens come (CompletionService::
  // RunStream on this connection's thread, after the handler returns). The
  // request stays counted in flight until the stream ends; the request
  // deadline and the client's disconnect (a failed write, or the socket
  // closing) stop the generation; each write waits at most --body-timeout.
  void StreamAnswer(const std::string& path, const nlohmann::json& body, bool chat, std::shared_ptr<InFlight> in_flight,
                    Clock::time_point t0, httplib::Response& res) {
    auto prepared = service_.PrepareStream(body, chat);
    if (!prepared.ok()) {
      const int code = prepared.status().code() == StatusCode::kNotFound ? 404 : 400;
      return SendError(res, code, prepared.status().message(), "invalid_request_error");
    }
    auto request = std::make_shared<CompletionService::StreamRequest>(std::move(*prepared));
    const Clock::time_point deadline = After(o_.request_timeout_s);
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, path, request, in_flight, deadline, t0](size_t, httplib::DataSink& sink) {
          RequestControl control;
          control.deadline = deadline;
          control.deadline_what = "--request-timeout " + Seconds(o_.request_timeout_s);
          if (const int sock = t_socket; sock >= 0) control.client_gone = [sock] { return PeerClosed(sock); };
          long long tokens = 0;
          const Status s = service_.RunStream(
              *request, &control, [&sink](const std::string& event) { return sink.write(event.data(), event.size()); },
              &tokens);
          const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
          const auto stopped = control.stopped.load();
          if (s.ok()) {
            ++counters_.answered;
          } else if (stopped == RequestControl::Stop::kDeadline) {
            ++counters_.timed_out;
          } else if (s.code() == StatusCode::kCancelled) {
            ++counters_.client_gone;
          }
          if (o_.log_requests) {
            std::fprintf(stderr, "[famq serve] POST %s stream n=%d completion_tokens=%lld %.2fs%s%s\n", path.c_str(),
                         request->sampling.n, tokens, secs, s.ok() ? "" : " stopped: ",
                         s.ok() ? "" : s.message().c_str());
          }
          if (!s.ok()) return false;  // the connection closes
          sink.done();
          return true;
        });
  }

  // cpp-httplib's connection loop, with DeadlineStream for its socket stream.
  bool process_and_close_socket(socket_t sock) override {
    constexpr int kMaxRequestsPerConnection = 100;
    DeadlineStream strm(sock, o_);
    bool ret = false;
    for (int count = 0; count < kMaxRequestsPerConnection && is_running(); ++count) {
      // The first request's first byte within the header deadline, later ones within the keep-alive timeout.
      if (!strm.WaitForRequest(count == 0 ? o_.header_timeout_s : o_.keep_alive_timeout_s)) break;
      strm.BeginRequest();
      bool closed = false;
      t_socket = sock;
      t_close_connection = false;
      ret = process_request(strm, count + 1 == kMaxRequestsPerConnection, closed, nullptr);
      t_socket = -1;
      if (strm.timed_out()) {
        ++counters_.read_timeouts;
        strm.Send408();
        break;
      }
      if (!ret || closed || t_close_connection) break;
    }
    ::shutdown(sock, SHUT_RDWR);
    ::close(sock);
    return ret;
  }

  CompletionService& service_;
  HttpServeOptions o_;
  HttpServeCounters& counters_;
  std::atomic<int> in_flight_{0};
  int listen_socket_ = -1;

 public:
  // cpp-httplib listens with a backlog of 5 (CPPHTTPLIB_LISTEN_BACKLOG, fixed
  // in the packaged library): with more clients connecting at once than the
  // acceptor takes in a moment, the kernel drops their handshakes, answers
  // with SYN cookies and later resets connections mid-request (measured: 704
  // listen-queue overflows and a reset request in a 64-client soak). Calling
  // listen() again on the bound socket raises it to SOMAXCONN (the kernel
  // caps it at net.core.somaxconn).
  Status WidenBacklog() {
    if (listen_socket_ < 0 || ::listen(listen_socket_, SOMAXCONN) != 0) {
      return IoError(std::string("serve: cannot set the listen backlog: ") +
                     (listen_socket_ < 0 ? "no listening socket" : std::strerror(errno)));
    }
    return Status::Ok();
  }
};

bool IsLoopbackHost(const std::string& host) {
  if (host == "localhost") return true;
  in_addr v4{};
  if (::inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (::inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
    if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
    return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
  }
  return false;
}

Status CheckHttpServeOptions(const HttpServeOptions& o) {
  if (!IsLoopbackHost(o.host) && o.api_key.empty()) {
    return InvalidArgument("serve: --host " + o.host +
                           " is not a loopback address: set --api-key KEY (or FAMQ_API_KEY) so that only clients "
                           "sending \"Authorization: Bearer KEY\" are served");
  }
  if (o.max_concurrent < 1) return InvalidArgument("serve: --max-concurrent must be at least 1");
  if (!(o.header_timeout_s > 0 && o.body_timeout_s > 0 && o.request_timeout_s > 0 && o.keep_alive_timeout_s > 0)) {
    return InvalidArgument("serve: --header-timeout, --body-timeout and --request-timeout must be positive");
  }
  return Status::Ok();
}

std::string ServedRoutes(ServeApi api) {
  return api == ServeApi::kChatOnly
             ? "GET /v1/models, POST /v1/chat/completions"
             : "GET /v1/models, POST /v1/completions, POST /v1/chat/completions, POST /v1/embeddings";
}

bool PeerClosed(int fd) {
  char c;
  const ssize_t n = ::recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

Result<std::unique_ptr<HttpServer>> HttpServer::Create(CompletionService& service, const HttpServeOptions& o) {
  FAMQ_RETURN_IF_ERROR(CheckHttpServeOptions(o));
  std::unique_ptr<HttpServer> s(new HttpServer());
  s->max_body_bytes_ = o.max_body_bytes > 0 ? o.max_body_bytes : service.DefaultMaxBodyBytes();
  s->impl_ = std::make_unique<Impl>(service, o, s->max_body_bytes_, s->counters_);
  if (o.port == 0) {
    s->port_ = s->impl_->bind_to_any_port(o.host);
    if (s->port_ < 0) return IoError("serve: cannot bind " + o.host);
  } else if (!s->impl_->bind_to_port(o.host, o.port)) {
    return IoError("serve: cannot bind " + o.host + ":" + std::to_string(o.port) + " (in use?)");
  } else {
    s->port_ = o.port;
  }
  FAMQ_RETURN_IF_ERROR(s->impl_->WidenBacklog());
  return s;
}

HttpServer::~HttpServer() = default;

Status HttpServer::Run() {
  if (stop_requested_) return Status::Ok();
  return impl_->listen_after_bind() || stop_requested_ ? Status::Ok()
                                                       : IoError("serve: the server stopped with an error");
}

void HttpServer::Stop() {
  stop_requested_ = true;
  impl_->stop();  // a no-op until the server listens: ServeHttp's stopper repeats it until Run() returns
}

Status ServeHttp(CompletionService& service, const HttpServeOptions& o, const std::function<void(int)>& on_listening) {
  // Block SIGINT/SIGTERM in every thread; one thread waits for them and stops the server.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  FAMQ_ASSIGN_OR_RETURN(std::unique_ptr<HttpServer> svr, HttpServer::Create(service, o));
  std::atomic<bool> signalled{false}, done{false};
  std::thread stopper([&] {
    int sig = 0;
    sigwait(&sigs, &sig);
    if (done) return;  // woken by the main thread below
    signalled = true;
    // A signal before the server listens would be lost on cpp-httplib's
    // stop(): repeat it until Run() returns.
    while (!done) {
      svr->Stop();
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  if (on_listening) on_listening(svr->port());
  const Status s = svr->Run();
  done = true;
  const bool by_signal = signalled.load();
  if (!by_signal) pthread_kill(stopper.native_handle(), SIGTERM);  // wake the waiting stopper
  stopper.join();
  const HttpServeCounters& c = svr->counters();
  if (o.log_requests) {
    std::fprintf(stderr,
                 "[famq serve] stopped: %lld answered, %lld refused busy (503), %lld past --request-timeout (503), "
                 "%lld read timeouts (408), %lld stopped for a closed connection, %lld unauthorized (401)\n",
                 c.answered.load(), c.refused_busy.load(), c.timed_out.load(), c.read_timeouts.load(),
                 c.client_gone.load(), c.unauthorized.load());
  }
  return s.ok() || by_signal ? Status::Ok() : s;
}

}  // namespace famq
