// Private to the C API's sources (famq_capi.cc, famq_session.cc): the model
// handle and the helpers every entry point uses. Not installed.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/status.h"
#include "engine/engine.h"
#include "famq/famq.h"
#include "qmodel/qmodel_engine.h"
#include "chat_template/chat_template.h"

// The handles. Members are destroyed in reverse order: the engine (which
// points into the model's weights) before the model.
struct famq_model {
  famq::RunnableModel model;
  std::unique_ptr<famq::Engine> engine;
  // Every token's bytes, so that the token loop hands out pieces without
  // building strings: token t is token_bytes[token_offsets[t], token_offsets[t + 1]).
  std::string token_bytes;
  std::vector<uint32_t> token_offsets;
  std::optional<famq::ChatTemplate> chat_template;  // parsed at open when the model has one
  famq::Status chat_template_status;                // why chat_template is absent
  std::vector<int32_t> prompt_ids;                  // reused by every call
  std::vector<int32_t> out_ids;                     // capacity: the whole context
  std::mutex busy;                                  // one generation at a time (famq_generate, sessions)

  // Token t's bytes ("" for an id outside the table).
  std::string_view Piece(int32_t t) const {
    if (t < 0 || static_cast<size_t>(t) + 1 >= token_offsets.size()) return {};
    const uint32_t b = token_offsets[static_cast<size_t>(t)];
    return std::string_view(token_bytes.data() + b, token_offsets[static_cast<size_t>(t) + 1] - b);
  }
};

namespace famq::capi {

// The per-thread message famq_last_error() returns ("" after success).
void SetError(std::string_view message) noexcept;
// Appends to it; never throws (a failure keeps what is there).
void AppendError(std::string_view more) noexcept;
const char* LastError() noexcept;

// What an entry point returns: a famq::Status (codes map 1:1 onto
// famq_status), or one of the C API's own codes that no runtime function
// produces (FAMQ_BUFFER_TOO_SMALL, FAMQ_CONTEXT_FULL).
class ApiStatus {
 public:
  ApiStatus(Status s) : status_(std::move(s)), code_(static_cast<famq_status>(status_.code())) {}  // NOLINT
  static ApiStatus Own(famq_status code, std::string message) {
    ApiStatus a(Status(StatusCode::kInternal, std::move(message)));
    a.code_ = code;
    return a;
  }
  bool ok() const { return code_ == FAMQ_OK; }
  famq_status code() const { return code_; }
  const std::string& message() const { return status_.message(); }

 private:
  Status status_;
  famq_status code_;
};

inline ApiStatus BufferTooSmall(std::string message) {
  return ApiStatus::Own(FAMQ_BUFFER_TOO_SMALL, std::move(message));
}
inline ApiStatus ContextFull(std::string message) { return ApiStatus::Own(FAMQ_CONTEXT_FULL, std::move(message)); }

inline famq_status Report(const ApiStatus& s) noexcept {
  SetError(s.ok() ? std::string_view() : std::string_view(s.message()));
  return s.code();
}

// Runs `body` (returning famq::Status or ApiStatus) with no exception escaping.
template <typename F>
famq_status Guard(const char* fn, F&& body) noexcept {
  try {
    return Report(body());
  } catch (const std::bad_alloc&) {
    SetError(fn);
    AppendError(": out of memory");
    return FAMQ_OUT_OF_MEMORY;
  } catch (const std::exception& e) {
    SetError(fn);
    AppendError(": internal error: unexpected exception: ");
    AppendError(e.what());
    return FAMQ_INTERNAL;
  } catch (...) {
    SetError(fn);
    AppendError(": internal error: unexpected exception");
    return FAMQ_INTERNAL;
  }
}

inline Status NullArg(const char* fn, const char* param) {
  return InvalidArgument(std::string(fn) + ": " + param + " is NULL");
}

#define FAMQ_CAPI_REQUIRE(fn, p) \
  if ((p) == nullptr) return ::famq::capi::NullArg(fn, #p)

// The size of a struct's first published version: struct_size may not be
// smaller. When a field is appended to a struct, specialize this for it with
// the size it had before (its offsetof the new field), so that callers built
// against the older header keep working.
template <typename T>
inline constexpr size_t kFirstVersionSize = sizeof(T);
// famq_model_options gained kv_type (API 2).
template <>
inline constexpr size_t kFirstVersionSize<famq_model_options> = offsetof(famq_model_options, kv_type);

// A struct's second version, where a second field was appended later (its
// offsetof); the first version's size where there was none.
template <typename T>
inline constexpr size_t kSecondVersionSize = kFirstVersionSize<T>;

// Whether struct_size names a version of T: the first or second one, or this
// one and up to FAMQ_MAX_STRUCT_SIZE (a newer one). A size between them would
// cut a field in its middle.
template <typename T>
bool KnownStructSize(size_t size) {
  return size == kFirstVersionSize<T> || size == kSecondVersionSize<T> ||
         (size >= sizeof(T) && size <= FAMQ_MAX_STRUCT_SIZE);
}

// Why struct_size is not KnownStructSize<T>; Ok when it is.
template <typename T>
Status CheckStructSize(size_t size, const char* fn, const char* what, const char* init_hint) {
  if (!KnownStructSize<T>(size)) {
    return InvalidArgument(std::string(fn) + ": " + what + "->struct_size is " + std::to_string(size) +
                           ", expected sizeof = " + std::to_string(sizeof(T)) + " (" + init_hint + ")");
  }
  return Status::Ok();
}

// Copies a caller's options struct over `out` (already holding the
// defaults), following the versioning rule of famq.h: struct_size in
// [first version's size, FAMQ_MAX_STRUCT_SIZE]; an older (smaller) struct is
// read up to its size, the appended fields keep their defaults; a newer
// (larger) one is accepted only if the fields this library does not know are
// all zero.
template <typename T>
Status ReadOptions(const T* in, T* out, const char* fn, const char* init_fn) {
  static_assert(std::is_trivially_copyable_v<T>);
  if (in == nullptr) return Status::Ok();
  const size_t size = in->struct_size;
  if (!KnownStructSize<T>(size)) {
    return InvalidArgument(std::string(fn) + ": options->struct_size is " + std::to_string(size) + ", expected " +
                           std::to_string(sizeof(T)) + " (fill the struct with " + init_fn + "() first)");
  }
  const auto* bytes = reinterpret_cast<const unsigned char*>(in);
  for (size_t i = sizeof(T); i < size; ++i) {
    if (bytes[i] != 0) {
      return Unsupported(std::string(fn) + ": options set fields this famq " + FAMQ_VERSION_STRING +
                         " does not know (struct_size " + std::to_string(size) + ", this library's " +
                         std::to_string(sizeof(T)) + "): the header is newer than the library");
    }
  }
  std::memcpy(static_cast<void*>(out), in, std::min(size, sizeof(T)));
  out->struct_size = sizeof(T);
  return Status::Ok();
}

// Writes `value` into a caller's output struct whose struct_size says how
// much of it exists (an older, smaller struct receives its fields only).
template <typename T>
Status WriteInfo(const T& value, T* out, const char* fn) {
  static_assert(std::is_trivially_copyable_v<T>);
  const size_t size = out->struct_size;
  FAMQ_RETURN_IF_ERROR(CheckStructSize<T>(size, fn, "info", "set it to sizeof the struct"));
  std::memcpy(static_cast<void*>(out), &value, std::min(size, sizeof(T)));
  out->struct_size = size;
  return Status::Ok();
}

// Copies `s` into a caller's buffer of capacity > 0 (a NUL-terminated prefix
// when it does not fit). Returns whether all of it fit.
inline bool CopyOut(std::string_view s, char* buf, size_t capacity) {
  const size_t n = std::min(s.size(), capacity - 1);
  std::memcpy(buf, s.data(), n);
  buf[n] = '\0';
  return n == s.size();
}

}  // namespace famq::capi
