// famq::Status and famq::Result<T>: the error model of the runtime.
//
// The runtime reports failures with status codes, never exceptions (the C API
// maps them 1:1 onto famq_status). The message names the offending file,
// tensor or value once, where the error is found.
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace famq {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,  // a caller-supplied value is out of its domain
  kNotFound,         // a file, tensor or token that must exist does not
  kIoError,          // the OS refused a read, write, map or rename
  kInvalidFormat,    // a file is malformed, truncated or inconsistent
  kUnsupported,      // well-formed input that famq does not implement
  kOutOfMemory,      // an allocation failed or a size is absurd
  kCancelled,        // the caller asked to stop
  kInternal,         // a famq bug or a failing dependency (e.g. XNNPACK)
};

const char* StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status Ok() { return Status(); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "invalid format: model.safetensors: tensor 'x' ends past the file"
  std::string ToString() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status InvalidArgument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
inline Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status IoError(std::string m) { return {StatusCode::kIoError, std::move(m)}; }
inline Status InvalidFormat(std::string m) { return {StatusCode::kInvalidFormat, std::move(m)}; }
inline Status Unsupported(std::string m) { return {StatusCode::kUnsupported, std::move(m)}; }
inline Status OutOfMemory(std::string m) { return {StatusCode::kOutOfMemory, std::move(m)}; }
inline Status Cancelled(std::string m) { return {StatusCode::kCancelled, std::move(m)}; }
inline Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

// A value or the Status that explains why there is none.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {  // NOLINT
    assert(!std::get<Status>(v_).ok() && "Result built from an OK status");
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace famq

#define FAMQ_CONCAT_INNER_(a, b) a##b
#define FAMQ_CONCAT_(a, b) FAMQ_CONCAT_INNER_(a, b)

#define FAMQ_RETURN_IF_ERROR(expr)            \
  do {                                        \
    ::famq::Status famq_status_ = (expr);     \
    if (!famq_status_.ok()) return famq_status_; \
  } while (0)

#define FAMQ_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                \
  if (!tmp.ok()) return tmp.status();               \
  lhs = std::move(tmp).value()

// FAMQ_ASSIGN_OR_RETURN(auto x, MakeX());
#define FAMQ_ASSIGN_OR_RETURN(lhs, expr) \
  FAMQ_ASSIGN_OR_RETURN_IMPL_(FAMQ_CONCAT_(famq_result_, __LINE__), lhs, expr)
