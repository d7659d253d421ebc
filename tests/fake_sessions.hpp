// A server's sessions as the handshake machine asks for them, set by a test or a fuzz input.
#pragma once

#include <map>

#include "server_handshake.hpp"

namespace agp::test {

class FakeSessions : public transport::detail::SessionDirectory {
 public:
  std::optional<Known> find(std::uint64_t id) const override {
    const auto it = known.find(id);
    if (it == known.end()) return std::nullopt;
    return it->second;
  }
  std::size_t waiting() const override { return waiting_count; }

  std::map<std::uint64_t, Known> known;
  std::size_t waiting_count = 0;
};

}  // namespace agp::test
