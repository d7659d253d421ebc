// Deterministic sample messages of every kind, shared by the tests, the golden-frame generator and
// the fuzz seed corpus.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "agp/ptp/frame_builder.hpp"
#include "agp/ptp/message.hpp"

namespace agp::test {

struct SampleMessage {
  std::string name;           // file stem of its golden frame
  ptp::MessageHeader header;  // sections and body_length are filled by the builder
  std::vector<ptp::SectionKind> section_kinds;
  std::vector<std::vector<std::byte>> section_bytes;

  std::vector<ptp::SectionInput> inputs() const;
};

// GoogleTest prints parameters with this (the name, not 500 bytes of hex).
inline void PrintTo(const SampleMessage& m, std::ostream* os) {
  *os << m.name;
}

// One message of each kind, including a seed-shaped TurboQuant 4-bit tensor packet (codes 163,840
// bytes + fp16 norms) and a raw fp16 packet.
std::vector<SampleMessage> sample_messages();

// Deterministic pseudo-random bytes (splitmix64 of `seed`).
std::vector<std::byte> pattern_bytes(std::size_t n, std::uint64_t seed);

// Builds `m` into one contiguous frame.
std::vector<std::byte> build_frame(const SampleMessage& m);

}  // namespace agp::test
