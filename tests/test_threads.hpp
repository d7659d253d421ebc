// Tests that need a second thread (a peer) skip, saying why, where threads cannot start: qemu-user
// on the CI machines runs the arm64 build with AGP_TEST_NO_THREADS set.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>

namespace agp::test {
inline bool threads_unavailable() {
  return std::getenv("AGP_TEST_NO_THREADS") != nullptr;
}
}  // namespace agp::test

#define SKIP_WITHOUT_THREADS()                                                               \
  if (::agp::test::threads_unavailable()) GTEST_SKIP() << "threads cannot start under this " \
                                                          "emulator"
