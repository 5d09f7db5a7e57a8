// A bounded soak of `famq serve` on 127.0.0.1 (issue 15): 64 concurrent
// clients for SECONDS mixing valid requests, malformed JSON, deep nesting,
// huge bodies, slow headers (one byte every 2 s) and disconnects.
//
//   serve_soak FAMQ_BINARY MODEL_DIR [SECONDS=60] [CLIENTS=64]
//
// Passes (exit 0) when the server stays up and stops cleanly on SIGTERM, its
// peak RSS (VmHWM) stays under kMaxRssBytes, every valid request gets either
// exactly the answer the same request gets alone (seeded sampling: a
// candidate does not depend on what decodes beside it) or a clean 503/408,
// and at least 90 % of them the answer. Every loop is bounded in time; only
// 127.0.0.1 is contacted.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core/json_parse.h"

namespace {

using Clock = std::chrono::steady_clock;
using Json = nlohmann::json;

// The server's peak resident set must stay under this. The tiny model's
// weights and KV cache are a few MiB; the rest is the process (threads,
// request bodies up to --max-body-bytes each, answers).
constexpr long long kMaxRssBytes = 256LL << 20;
constexpr size_t kMaxBodyBytes = 1 << 20;  // the server's --max-body-bytes

struct Reply {
  int status = 0;  // 0: no HTTP answer (connection refused, reset or timed out)
  std::string body;
  std::string why;  // with status 0: what happened instead of an answer
};

int Connect(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    const int e = errno;
    ::close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

// Sends `data`; on failure says how far it got and why in `why`.
bool SendAll(int fd, const std::string& data, std::string* why = nullptr) {
  for (size_t off = 0; off < data.size();) {
    const ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n <= 0) {
      if (why != nullptr) {
        *why = "send cut after " + std::to_string(off) + " of " + std::to_string(data.size()) + " bytes (" +
               (n < 0 ? std::strerror(errno) : "no progress") + ")";
      }
      return false;
    }
    off += static_cast<size_t>(n);
  }
  return true;
}

// Reads until the server closes (Connection: close) or `timeout_s`.
Reply ReadReply(int fd, double timeout_s) {
  const auto end = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_s));
  std::string raw, why;
  char buf[16384];
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now()).count();
    pollfd p{fd, POLLIN, 0};
    if (left <= 0 || ::poll(&p, 1, static_cast<int>(std::max<long long>(left, 0))) <= 0) {
      why = "no end of the answer within " + std::to_string(timeout_s) + " s";
      break;
    }
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n < 0) why = std::string("recv: ") + std::strerror(errno);
    if (n <= 0) break;
    raw.append(buf, static_cast<size_t>(n));
  }
  Reply r;
  const std::string bytes = std::to_string(raw.size()) + " bytes";
  r.why = why.empty() ? "closed after " + bytes : why + " (" + bytes + " read)";
  if (raw.rfind("HTTP/1.1 ", 0) == 0 && raw.size() >= 12) r.status = std::atoi(raw.c_str() + 9);
  const size_t body = raw.find("\r\n\r\n");
  if (body != std::string::npos) r.body = raw.substr(body + 4);
  return r;
}

std::string Request(const std::string& path, const std::string& body) {
  std::string r = "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n";
  r += "Connection: close\r\nContent-Length: ";
  r += std::to_string(body.size());
  r += "\r\n\r\n";
  r += body;
  return r;
}

Reply Exchange(int port, const std::string& raw, double timeout_s) {
  const auto t0 = Clock::now();
  Reply r;
  const int fd = Connect(port);
  if (fd < 0) {
    r.why = std::string("connect: ") + std::strerror(errno);
    return r;
  }
  // A server may answer early (408, 413) and stop reading: the answer is read
  // even when the send was cut, as HTTP clients do.
  std::string send_why;
  const bool sent = SendAll(fd, raw, &send_why);
  r = ReadReply(fd, sent ? timeout_s : std::min(timeout_s, 5.0));
  if (!sent) r.why = send_why + "; then " + r.why;
  ::close(fd);
  char took[48];
  std::snprintf(took, sizeof(took), "; %.2f s after connecting",
                std::chrono::duration<double>(Clock::now() - t0).count());
  r.why += took;
  return r;
}

// The part of an answer that must not depend on what else was in flight.
std::string Essence(const std::string& body) {
  Json j;
  if (!famq::ParseJson(body, "reply", &j).ok() || !j.is_object()) return "";
  if (j.contains("choices")) return j["choices"].dump();
  if (j.contains("data")) return j["data"].dump();
  return "";
}

long long RssField(pid_t pid, const char* field) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind(field, 0) == 0) return std::atoll(line.c_str() + std::strlen(field)) * 1024;
  }
  return -1;
}

struct Valid {
  std::string path, body, want;  // want: Essence of the answer alone
};

struct Tally {
  std::atomic<long long> valid{0}, correct{0}, busy{0}, timeout408{0}, wrong{0}, failed{0};
  std::atomic<long long> malformed{0}, deep{0}, deep408{0}, huge{0}, huge_unanswered{0}, slow{0}, disconnects{0};
  std::atomic<long long> bad_refusals{0};
};

// Counts a hostile request that did not get its clean refusal and says which
// one and what came back (status 0: no HTTP answer within the client's wait).
void BadRefusal(Tally& t, const char* what, const Reply& r) {
  ++t.bad_refusals;
  std::fprintf(stderr, "soak: %s got HTTP %d: %s [%s]\n", what, r.status, r.body.substr(0, 200).c_str(),
               r.why.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3 || argc > 5) {
    std::fprintf(stderr, "usage: %s FAMQ_BINARY MODEL_DIR [SECONDS=60] [CLIENTS=64]\n", argv[0]);
    return 2;
  }
  const std::string famq = argv[1], model = argv[2];
  const double seconds = argc > 3 ? std::atof(argv[3]) : 60.0;
  const int clients = argc > 4 ? std::atoi(argv[4]) : 64;
  if (!(seconds > 0 && seconds <= 3600) || clients < 1 || clients > 1024) {
    std::fprintf(stderr, "soak: SECONDS must be in (0, 3600], CLIENTS in [1, 1024]\n");
    return 2;
  }

  // Start the server on a free port; its first stdout line names it.
  int out[2];
  if (::pipe(out) != 0) return 1;
  const std::string max_body = std::to_string(kMaxBodyBytes);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out[1], 1);
    ::close(out[0]);
    ::close(out[1]);
    ::execl(famq.c_str(), famq.c_str(), "serve", "--model", model.c_str(), "--name", "tiny", "--host", "127.0.0.1",
            "--port", "0", "--threads", "1", "-q", "--max-concurrent", "48", "--header-timeout", "5",
            "--body-timeout", "5", "--request-timeout", "60", "--max-body-bytes", max_body.c_str(),
            static_cast<char*>(nullptr));
    std::perror("exec famq");
    std::_Exit(127);
  }
  ::close(out[1]);
  std::string line;
  for (char c; line.size() < 4096 && ::read(out[0], &c, 1) == 1 && c != '\n';) line += c;
  const size_t colon = line.rfind("127.0.0.1:");
  const int port = colon == std::string::npos ? 0 : std::atoi(line.c_str() + colon + 10);
  if (port <= 0) {
    std::fprintf(stderr, "soak: the server did not start: '%s'\n", line.c_str());
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return 1;
  }
  std::fprintf(stderr, "soak: famq serve pid %d on 127.0.0.1:%d; %d clients for %.0f s\n", pid, port, clients, seconds);

  // The valid requests, each answered alone first.
  std::vector<Valid> valid;
  for (int i = 0; i < 6; ++i) {
    Json c{{"prompt", std::vector<int>{5 + i, 6, 7}}, {"n", 1 + i % 4}, {"max_tokens", 8 + 2 * i}, {"seed", 100 + i},
           {"temperature", i % 3 == 0 ? 0.0 : 0.9}, {"top_p", 0.95}};
    if (i == 2) c["stop"] = Json::array({"ab", "\n"});
    valid.push_back({"/v1/completions", c.dump(), ""});
  }
  valid.push_back({"/v1/completions", Json{{"prompt", "Hello, soak"}, {"max_tokens", 12}, {"seed", 9}}.dump(), ""});
  valid.push_back({"/v1/chat/completions",
                   Json{{"messages", Json::array({{{"role", "user"}, {"content", "hi \u00e9"}}})},
                        {"max_tokens", 10}, {"n", 2}, {"seed", 3}}.dump(),
                   ""});
  valid.push_back({"/v1/embeddings", Json{{"input", std::vector<int>{5, 6, 7, 8}}, {"pool_from", 1}}.dump(), ""});
  valid.push_back({"/v1/completions",
                   Json{{"prompt", std::vector<int>{9, 10}}, {"max_tokens", 0}, {"echo", true}, {"logprobs", 1}}.dump(),
                   ""});
  for (auto& v : valid) {
    const Reply r = Exchange(port, Request(v.path, v.body), 60);
    v.want = r.status == 200 ? Essence(r.body) : "";
    if (v.want.empty()) {
      std::fprintf(stderr, "soak: a valid request failed alone: HTTP %d %s\n", r.status, r.body.substr(0, 300).c_str());
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
      return 1;
    }
  }
  const long long rss_start = RssField(pid, "VmRSS:");

  Tally t;
  std::atomic<bool> server_died{false};
  const auto end = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  std::atomic<long long> rss_peak{rss_start};
  std::thread monitor([&] {
    while (Clock::now() < end && !server_died) {
      int status = 0;
      if (::waitpid(pid, &status, WNOHANG) == pid) {
        server_died = true;
        break;
      }
      rss_peak = std::max(rss_peak.load(), RssField(pid, "VmRSS:"));
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  });
  const std::string deep = "{\"prompt\": " + std::string(300000, '[') + "1" + std::string(300000, ']') + "}";
  const std::string huge = "{\"prompt\": \"" + std::string(4 * kMaxBodyBytes, 'a') + "\"}";
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      std::mt19937 rng(static_cast<uint32_t>(1234 + c));
      while (Clock::now() < end && !server_died) {
        const int kind = static_cast<int>(rng() % 20);
        if (kind < 12) {  // 60 %: a valid request
          const Valid& v = valid[rng() % valid.size()];
          const Reply r = Exchange(port, Request(v.path, v.body), 90);
          ++t.valid;
          if (r.status == 200 && Essence(r.body) == v.want) {
            ++t.correct;
          } else if (r.status == 200) {
            ++t.wrong;
            std::fprintf(stderr, "soak: WRONG answer to %s %s: %s\n", v.path.c_str(), v.body.c_str(),
                         r.body.substr(0, 300).c_str());
          } else if (r.status == 503) {
            ++t.busy;
          } else if (r.status == 408) {
            ++t.timeout408;
          } else {
            ++t.failed;
            std::fprintf(stderr, "soak: valid request got HTTP %d: %s [%s]\n", r.status, r.body.substr(0, 200).c_str(),
                         r.why.c_str());
          }
        } else if (kind == 12 || kind == 13) {  // malformed JSON: a clean 400
          static const char* kBad[] = {"{\"prompt\": ", "not json", "{\"prompt\": [1, 2,]}", "\xff\xfe{}", ""};
          const Reply r = Exchange(port, Request("/v1/completions", kBad[rng() % 5]), 30);
          ++t.malformed;
          if (r.status != 400 && r.status != 503) BadRefusal(t, "malformed JSON", r);
        } else if (kind == 14) {  // 300,000 levels of nesting: a clean 400
          // (or 408 where the 600 KB body took longer than --body-timeout to arrive on a loaded machine)
          const Reply r = Exchange(port, Request(rng() % 2 ? "/v1/completions" : "/v1/chat/completions", deep), 30);
          ++t.deep;
          if (r.status == 408) ++t.deep408;
          if (r.status != 400 && r.status != 503 && r.status != 408) BadRefusal(t, "deep nesting", r);
        } else if (kind == 15) {  // a body 4x over the cap: 413 (the server may close before reading it all)
          const Reply r = Exchange(port, Request("/v1/completions", huge), 30);
          ++t.huge;
          if (r.status == 0) ++t.huge_unanswered;
          if (r.status != 413 && r.status != 0) BadRefusal(t, "huge body", r);
        } else if (kind == 16 || kind == 17) {  // slow headers: one byte every 2 s until the server cuts it
          const int fd = Connect(port);
          if (fd < 0) continue;
          const std::string head = "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
          const auto start = Clock::now();
          bool cut = false;
          for (size_t i = 0; !cut && Clock::now() - start < std::chrono::seconds(30) && !server_died; ++i) {
            const char b = i < head.size() ? head[i] : 'x';
            if (::send(fd, &b, 1, MSG_NOSIGNAL) != 1) break;
            pollfd p{fd, POLLIN, 0};
            cut = ::poll(&p, 1, 2000) > 0;  // the server answered (408) or closed
          }
          ::close(fd);
          ++t.slow;
          if (!cut) BadRefusal(t, "slow header (not cut within 30 s)", Reply{});  // no header deadline
        } else {  // a valid, longer request, then the client goes away
          const int fd = Connect(port);
          if (fd < 0) continue;
          const Json req{{"prompt", std::vector<int>{5, 6, 7}}, {"n", 4}, {"max_tokens", 200}, {"seed", c}};
          (void)SendAll(fd, Request("/v1/completions", req.dump()));
          std::this_thread::sleep_for(std::chrono::milliseconds(20 + rng() % 50));
          ::close(fd);
          ++t.disconnects;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  monitor.join();

  bool ok = true;
  int status = 0;
  if (server_died || ::waitpid(pid, &status, WNOHANG) == pid) {
    std::fprintf(stderr, "soak: FAIL: the server died (status %d)\n", status);
    return 1;
  }
  const long long hwm = RssField(pid, "VmHWM:");
  const Reply models = Exchange(port, "GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", 30);
  ::kill(pid, SIGTERM);
  ::waitpid(pid, &status, 0);
  ::close(out[0]);
  std::fprintf(stderr,
               "soak: valid %lld: correct %lld, 503 %lld, 408 %lld, wrong %lld, other %lld; malformed %lld, deep %lld, "
               "(408 %lld), huge %lld (no answer %lld), slow-header %lld, disconnects %lld, unexpected refusals %lld; "
               "RSS start %.1f MiB, peak sampled %.1f MiB, VmHWM %.1f MiB (bound %.0f MiB); exit %d\n",
               t.valid.load(), t.correct.load(), t.busy.load(), t.timeout408.load(), t.wrong.load(), t.failed.load(),
               t.malformed.load(), t.deep.load(), t.deep408.load(), t.huge.load(), t.huge_unanswered.load(),
               t.slow.load(), t.disconnects.load(),
               t.bad_refusals.load(), rss_start / 1048576.0, rss_peak.load() / 1048576.0, hwm / 1048576.0,
               kMaxRssBytes / 1048576.0, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  const auto fail = [&](const char* why) {
    std::fprintf(stderr, "soak: FAIL: %s\n", why);
    ok = false;
  };
  if (models.status != 200) fail("GET /v1/models after the soak did not answer 200");
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) fail("the server did not exit 0 on SIGTERM");
  if (hwm < 0 || hwm > kMaxRssBytes) fail("peak RSS (VmHWM) over the bound");
  if (t.wrong > 0 || t.failed > 0) fail("a valid request got a wrong answer or an unclean error");
  if (t.valid == 0 || t.correct * 10 < t.valid * 9) fail("fewer than 90 % of the valid requests were answered");
  if (t.bad_refusals > 0) fail("a hostile request got something other than its clean refusal");
  if (t.slow == 0 || t.deep == 0 || t.huge == 0 || t.disconnects == 0 || t.malformed == 0) {
    fail("the run was too short to send every kind of request");
  }
  return ok ? 0 : 1;
}
