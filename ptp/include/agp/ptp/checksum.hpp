// XXH3 checksums and hashes used by the frame format (xxHash from the platform's packages).
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "agp/ptp/message.hpp"

namespace agp::ptp {

// XXH3-64 with seed 0: the checksum of the header and of every body section.
std::uint64_t xxh3_64(std::span<const std::byte> bytes);
// XXH3-128 with seed 0: model fingerprints and digests.
Hash128 xxh3_128(std::span<const std::byte> bytes);

// Incremental XXH3-64 (seed 0) over several pieces; equal to xxh3_64 of their concatenation.
class Xxh3Stream64 {
 public:
  Xxh3Stream64();
  ~Xxh3Stream64();
  Xxh3Stream64(const Xxh3Stream64&) = delete;
  Xxh3Stream64& operator=(const Xxh3Stream64&) = delete;
  void update(std::span<const std::byte> bytes);
  std::uint64_t digest() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// Incremental XXH3-128 (seed 0).
class Xxh3Stream128 {
 public:
  Xxh3Stream128();
  ~Xxh3Stream128();
  Xxh3Stream128(const Xxh3Stream128&) = delete;
  Xxh3Stream128& operator=(const Xxh3Stream128&) = delete;
  void update(std::span<const std::byte> bytes);
  Hash128 digest() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace agp::ptp
