// A one-line progress bar on stderr for long runs: shown only when stderr is a terminal, the run
// has gone on for more than two seconds, and the user did not ask for --quiet.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace agp::tools {

class Progress {
 public:
  Progress(std::string label, std::uint64_t total, bool quiet);
  ~Progress();
  void update(std::uint64_t done);
  void finish();

 private:
  std::string label_;
  std::uint64_t total_;
  bool enabled_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace agp::tools
