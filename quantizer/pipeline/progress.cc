#include "pipeline/progress.h"

#include <unistd.h>

#include <cstdio>
#include <nlohmann/json.hpp>

namespace famq {

Progress::Progress(std::string stage, int total, ProgressMode mode)
    : stage_(std::move(stage)), total_(total), mode_(mode), tty_(isatty(fileno(stderr)) != 0),
      start_(std::chrono::steady_clock::now()), last_(start_) {}

void Progress::Update(int done, long long tokens) {
  if (mode_ == ProgressMode::kQuiet || done >= total_) return;  // Finish() prints the last line
  const auto now = std::chrono::steady_clock::now();
  // A terminal gets every update; logs and machines at most one per second.
  if (!tty_ && mode_ == ProgressMode::kHuman && now - last_ < std::chrono::seconds(1) && done < total_) return;
  last_ = now;
  Print(done, tokens, false);
}

void Progress::Finish(long long tokens) {
  if (mode_ == ProgressMode::kQuiet) return;
  Print(total_, tokens, true);
}

void Progress::Print(int done, long long tokens, bool final) {
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double rate = secs > 0 ? tokens / secs : 0.0;
  const double eta = done > 0 && done < total_ ? secs * (total_ - done) / done : 0.0;
  if (mode_ == ProgressMode::kJson) {
    nlohmann::ordered_json j{{"stage", stage_}, {"done", done},          {"total", total_},
                             {"tokens", tokens}, {"seconds", secs},      {"tokens_per_s", rate},
                             {"eta_s", eta},     {"final", final}};
    std::fprintf(stderr, "%s\n", j.dump().c_str());
    return;
  }
  char line[256];
  std::snprintf(line, sizeof(line), "[famq %s] %d/%d  %lld tokens  %.0f tok/s  %s %.0fs", stage_.c_str(), done,
                total_, tokens, rate, final ? "done in" : "ETA", final ? secs : eta);
  if (tty_) {
    std::fprintf(stderr, "\r%-78s%s", line, final ? "\n" : "");
  } else {
    std::fprintf(stderr, "%s\n", line);
  }
  std::fflush(stderr);
}

}  // namespace famq
