// Progress of long host-stage work on stderr: a human line with rate and ETA
// (rewritten in place on a terminal), one JSON object per update for
// machines (--progress=json), or nothing (--quiet).
#pragma once

#include <chrono>
#include <string>

namespace famq {

enum class ProgressMode { kHuman, kJson, kQuiet };

class Progress {
 public:
  Progress(std::string stage, int total, ProgressMode mode);
  // `done` units of `total` finished; `tokens` generated/scored so far.
  void Update(int done, long long tokens);
  // Prints the final line (always, unless quiet).
  void Finish(long long tokens);

 private:
  void Print(int done, long long tokens, bool final);
  std::string stage_;
  int total_;
  ProgressMode mode_;
  bool tty_;
  std::chrono::steady_clock::time_point start_, last_;
};

}  // namespace famq
