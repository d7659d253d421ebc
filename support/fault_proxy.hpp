// A user-space TCP proxy that injects faults between a sender and a receiver, deterministically
// by seed: added latency and jitter, a rate limit, stalls, connection resets at chosen byte
// positions (mid-frame as often as not), flipped bytes, short writes, and half-open connections
// (one side silently gone). Used by the fault scenarios (bench_faults, tests) and by the
// ptp-faultproxy tool. Runs its own thread; works wherever Asio does (Linux, macOS).
//
// Faults are decided per connection from the seed and the connection's number, and placed by byte
// position in the stream, so a run's faults do not depend on how TCP happened to segment it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "agp/status.hpp"

namespace agp::support {

struct FaultPlan {
  std::uint64_t seed = 1;
  double latency_ms = 0;  // added to every chunk each way
  double jitter_ms = 0;   // plus uniform [0, jitter) (order is kept)
  double rate_mbit = 0;   // each direction, 0 = unlimited
  // Probability that a forwarded byte is flipped (one bit). The peer drops a connection at the
  // first bad frame, so at most one byte per connection is corrupted: each forwarded corruption
  // is one frame the receiving end must refuse.
  double corrupt_per_byte = 0;
  // Mean client-to-server bytes between injected resets (exponential; 0 = none). A reset closes
  // both sides abruptly (RST) at that byte position.
  std::uint64_t reset_mean_bytes = 0;
  // A stall of stall_ms in both directions about every this many client-to-server bytes.
  std::uint64_t stall_mean_bytes = 0;
  double stall_ms = 0;
  // Writes of 1..max_write bytes at a time (0 = as read).
  std::size_t max_write = 0;
  // Mean client-to-server bytes before a connection goes silent both ways, its sockets kept open
  // for half_open_hold_ms and then closed (0 = never).
  std::uint64_t half_open_mean_bytes = 0;
  double half_open_hold_ms = 5000;
};

struct FaultStats {
  std::uint64_t connections = 0;
  std::uint64_t bytes_to_server = 0;
  std::uint64_t bytes_to_client = 0;
  std::uint64_t corruptions_injected = 0;   // bytes flipped
  std::uint64_t corruptions_forwarded = 0;  // of those, written into the peer's socket
  std::uint64_t resets = 0;
  std::uint64_t stalls = 0;
  std::uint64_t half_opens = 0;
  std::uint64_t short_writes = 0;
  std::uint64_t refused = 0;  // client connections whose server connect failed
};

class FaultProxy {
 public:
  // Listens on listen_address:listen_port (0: any free port) and relays each connection to
  // target_host:target_port. kNetworkError / kAddressInUse when it cannot listen.
  static Result<std::unique_ptr<FaultProxy>> start(const std::string& listen_address,
                                                   std::uint16_t listen_port,
                                                   const std::string& target_host,
                                                   std::uint16_t target_port, FaultPlan plan);
  ~FaultProxy();  // stops: closes every connection and joins the thread
  FaultProxy(const FaultProxy&) = delete;
  FaultProxy& operator=(const FaultProxy&) = delete;

  std::uint16_t port() const;
  FaultStats stats() const;
  // Changes the plan for connections accepted from now on (already open ones keep theirs).
  void set_plan(const FaultPlan& plan);

  struct Impl;

 private:
  explicit FaultProxy(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace agp::support
