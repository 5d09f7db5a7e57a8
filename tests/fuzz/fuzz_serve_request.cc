// libFuzzer target: famq serve's request handling without sockets, on the
// tiny random checkpoint with small limits (n <= 2, max_tokens <= 4) so each
// input runs fast. The first byte picks the route ('c' completions, 'h' chat
// completions, 'e' embeddings; any other byte: its value mod 3), the rest is
// the body, parsed and answered as the HTTP route does (ParseRequest, then the
// handler; `stream: true` on a completion route: PrepareStream and RunStream,
// every event a "data: " line and a blank line). Any answer must serialize; a
// request may fail only as a client error (400/404) or a stop, never as an
// internal one.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "serve/completions.h"

namespace {

famq::CompletionService* Service() {
  static famq::CompletionService* service = [] {
    famq::EngineOptions eo;
    eo.num_threads = 1;
    famq::ServeLimits limits;
    limits.max_n = 2;
    limits.max_tokens = 4;
    limits.decode_slots = 2;
    limits.max_stop = 4;
    limits.max_stop_bytes = 16;
    limits.max_stop_token_ids = 4;
    limits.max_prompt_bytes = 2048;
    auto s = famq::CompletionService::Create(std::string(FAMQ_SOURCE_DIR) + "/tests/data/tiny-random-qwen3", "tiny",
                                             eo, limits);
    if (!s.ok()) std::abort();
    return s->release();
  }();
  return service;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  famq::CompletionService& service = *Service();
  const std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  auto req = famq::CompletionService::ParseRequest(body);
  if (!req.ok()) return 0;
  famq::RequestControl control;  // no deadline; the client "goes away" on no input
  control.client_gone = [] { return false; };
  const char route = static_cast<char>(data[0]);
  const int pick = route == 'c' ? 0 : route == 'h' ? 1 : route == 'e' ? 2 : data[0] % 3;
  if (pick < 2) {
    auto stream = famq::CompletionService::WantsStream(*req);
    if (stream.ok() && *stream) {
      auto prepared = service.PrepareStream(*req, pick == 1);
      if (!prepared.ok()) {
        const famq::StatusCode code = prepared.status().code();
        if (code != famq::StatusCode::kInvalidArgument && code != famq::StatusCode::kNotFound) std::abort();
        return 0;
      }
      bool done = false;
      const famq::Status s = service.RunStream(*prepared, &control, [&done](const std::string& event) {
        if (done || event.rfind("data: ", 0) != 0 || event.size() < 8 || event.compare(event.size() - 2, 2, "\n\n") != 0) {
          std::abort();
        }
        done = event == "data: [DONE]\n\n";
        return true;
      });
      if (!s.ok() || !done) std::abort();  // nothing may stop a checked stream here
      return 0;
    }
  }
  auto r = pick == 0   ? service.Complete(*req, &control)
           : pick == 1 ? service.ChatComplete(*req, &control)
                       : service.Embed(*req, &control);
  if (r.ok()) {
    if (!r->contains("model") || r->dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace).empty()) {
      std::abort();
    }
    return 0;
  }
  const famq::StatusCode code = r.status().code();
  if (code != famq::StatusCode::kInvalidArgument && code != famq::StatusCode::kNotFound &&
      code != famq::StatusCode::kInvalidFormat && code != famq::StatusCode::kUnsupported) {
    std::abort();  // an internal error (or a stop nobody asked for) from a request
  }
  return 0;
}
