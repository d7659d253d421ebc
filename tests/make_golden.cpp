// Writes the golden frames of tests/golden/ (one .ptp file per sample message) and the FlatBuffers
// version that produced them. Regenerate with:
//   ./dev build && build/release/tests/ptp-make-golden tests/golden
#include <flatbuffers/base.h>

#include <cstdio>
#include <string>

#include "agp/ptp/mapped_file.hpp"
#include "sample_messages.hpp"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: ptp-make-golden OUTPUT_DIR\n");
    return 2;
  }
  const std::string dir = argv[1];
  for (const auto& m : agp::test::sample_messages()) {
    const auto frame = agp::test::build_frame(m);
    const std::string path = dir + "/" + m.name + ".ptp";
    if (auto s = agp::ptp::write_file(path, frame); !s) {
      std::fprintf(stderr, "ptp-make-golden: %s\n", s.to_string().c_str());
      return 1;
    }
    std::printf("%s %zu bytes\n", path.c_str(), frame.size());
  }
  const std::string version = std::to_string(FLATBUFFERS_VERSION_MAJOR) + "." +
                              std::to_string(FLATBUFFERS_VERSION_MINOR) + "." +
                              std::to_string(FLATBUFFERS_VERSION_REVISION) + "\n";
  if (auto s = agp::ptp::write_file(dir + "/FLATBUFFERS_VERSION",
                                    std::as_bytes(std::span(version.data(), version.size())));
      !s) {
    std::fprintf(stderr, "ptp-make-golden: %s\n", s.to_string().c_str());
    return 1;
  }
  return 0;
}
