#include "agp/transport/interfaces.hpp"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>

#include <memory>

namespace agp::transport {
namespace {

struct IfAddrsDeleter {
  void operator()(ifaddrs* p) const { freeifaddrs(p); }
};
using IfAddrs = std::unique_ptr<ifaddrs, IfAddrsDeleter>;

IfAddrs list_interfaces() {
  ifaddrs* head = nullptr;
  if (getifaddrs(&head) != 0) return nullptr;
  return IfAddrs(head);
}

// Text form of an interface address, "" for families other than IPv4/IPv6.
std::string address_text(const sockaddr* sa) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (sa == nullptr) return {};
  if (sa->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    if (inet_ntop(AF_INET, &in->sin_addr, buf, sizeof buf) == nullptr) return {};
    return buf;
  }
  if (sa->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    if (inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof buf) == nullptr) return {};
    return buf;
  }
  return {};
}

}  // namespace

std::string interface_of(const std::string& address) {
  const IfAddrs all = list_interfaces();
  for (const ifaddrs* i = all.get(); i != nullptr; i = i->ifa_next) {
    if (address_text(i->ifa_addr) == address) return i->ifa_name;
  }
  return {};
}

Result<std::string> address_of(const std::string& interface) {
  const IfAddrs all = list_interfaces();
  std::string v6;
  bool exists = false;
  for (const ifaddrs* i = all.get(); i != nullptr; i = i->ifa_next) {
    if (interface != i->ifa_name) continue;
    exists = true;
    if (i->ifa_addr == nullptr) continue;
    if (i->ifa_addr->sa_family == AF_INET) return address_text(i->ifa_addr);
    if (i->ifa_addr->sa_family == AF_INET6 && v6.empty()) v6 = address_text(i->ifa_addr);
  }
  if (!v6.empty()) return v6;
  return make_error(ErrorCode::kConnectFailed,
                    exists ? "interface '" + interface + "' has no IP address"
                           : "no network interface named '" + interface + "'");
}

}  // namespace agp::transport
