// Two network namespaces joined by a veth pair, optionally rate-limited with tbf: the stand-in for
// a Thunderbolt bridge between two hosts (DESIGN.md, "Test hosts for the network"). Test and
// benchmark support; needs root and iproute2. Threads join a side with enter().
#pragma once

#include <optional>
#include <string>

#include "agp/status.hpp"

namespace agp::support {

class NetnsPair {
 public:
  // Creates namespaces and a veth pair named after `tag` (a few letters) and this process id;
  // addresses 10.213.N.1 (side a) and .2 (side b). `rate_gbit` adds a tbf qdisc on both ends with
  // a token bucket of `burst` (tc syntax): a large bucket lets a packet that follows an idle gap
  // through at memory speed, a small one paces every packet as a link would serialize it.
  // kIoError with the failing command when namespaces cannot be made (no root, no iproute2).
  static Result<NetnsPair> create(const std::string& tag, std::optional<double> rate_gbit = {},
                                  const std::string& burst = "4mb");
  NetnsPair(NetnsPair&& other) noexcept;
  NetnsPair& operator=(NetnsPair&&) = delete;
  ~NetnsPair();

  const std::string& address_a() const { return address_a_; }
  const std::string& address_b() const { return address_b_; }
  const std::string& namespace_a() const { return ns_a_; }
  const std::string& namespace_b() const { return ns_b_; }

  // Moves the calling thread into side a or b (setns); sockets it opens afterwards live there.
  Status enter_a() const;
  Status enter_b() const;
  // Takes side a's end of the cable down or up (as pulling and plugging it).
  Status set_link_up(bool up) const;
  // Runs a shell command inside side a or b (`ip netns exec`); returns its exit status.
  int exec_a(const std::string& command) const;
  int exec_b(const std::string& command) const;

 private:
  NetnsPair() = default;
  std::string ns_a_, ns_b_, dev_a_, dev_b_, address_a_, address_b_;
  bool owned_ = false;
};

// Whether this process may create network namespaces (root and a working `ip netns`).
bool netns_available();

}  // namespace agp::support
