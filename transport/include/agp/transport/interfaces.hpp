// Which network interface owns a local address, and which address an interface has (getifaddrs,
// available on Linux and macOS). Used to bind to a chosen interface and to report the interface
// a connection really uses (a Thunderbolt bridge rather than Wi-Fi, for example).
#pragma once

#include <string>

#include "agp/status.hpp"

namespace agp::transport {

// The interface name holding `address` ("lo", "bridge0", ...), or "" when none does.
std::string interface_of(const std::string& address);
// The first IPv4 address of `interface` (else its first IPv6 address). kConnectFailed when the
// interface does not exist or has no address.
Result<std::string> address_of(const std::string& interface);

}  // namespace agp::transport
