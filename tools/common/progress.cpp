#include "progress.hpp"

#include <unistd.h>

#include <cstdio>

namespace agp::tools {

Progress::Progress(std::string label, std::uint64_t total, bool quiet)
    : label_(std::move(label)),
      total_(total),
      enabled_(!quiet && ::isatty(STDERR_FILENO) == 1 && total > 0),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

Progress::~Progress() {
  finish();
}

void Progress::update(std::uint64_t done) {
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  if (now - start_ < std::chrono::seconds(2) || now - last_draw_ < std::chrono::milliseconds(100)) {
    return;
  }
  last_draw_ = now;
  const double frac = static_cast<double>(done) / static_cast<double>(total_);
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const double eta = frac > 0 ? elapsed * (1 - frac) / frac : 0;
  constexpr int kWidth = 30;
  const int filled = static_cast<int>(frac * kWidth);
  std::fprintf(stderr, "\r%s [%.*s%*s] %llu/%llu  %.0f s left ", label_.c_str(), filled,
               "##############################", kWidth - filled, "",
               static_cast<unsigned long long>(done), static_cast<unsigned long long>(total_), eta);
  std::fflush(stderr);
  drawn_ = true;
}

void Progress::finish() {
  if (drawn_) std::fprintf(stderr, "\r%*s\r", 80, "");
  drawn_ = false;
}

}  // namespace agp::tools
