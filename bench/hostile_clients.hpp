// Hostile traffic against a listening server, for the fault scenarios: garbage, oversize
// lengths, slow-loris partial headers and a flood of connections. Every loop is bounded.
#pragma once

#include <cstdint>
#include <string>

namespace agp::bench {

struct HostileReport {
  std::uint64_t garbage = 0;     // connections that sent random bytes
  std::uint64_t oversize = 0;    // prefixes announcing a header far above any cap
  std::uint64_t slow_loris = 0;  // connections dribbling a header a byte at a time
  std::uint64_t flood = 0;       // connect-and-close attempts
  std::uint64_t wrong_keys = 0;  // filled in by the caller
};

// Runs the attacks against host:port (blocking, a few seconds); `flood` connections in the flood.
HostileReport attack(const std::string& host, std::uint16_t port, int flood);

}  // namespace agp::bench
