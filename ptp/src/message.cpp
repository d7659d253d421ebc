#include "agp/ptp/message.hpp"

#include <cstdio>

namespace agp::ptp {

std::string_view message_kind_name(MessageKind k) {
  switch (k) {
    case MessageKind::kHello:
      return "hello";
    case MessageKind::kHelloReply:
      return "hello_reply";
    case MessageKind::kTensorPacket:
      return "tensor_packet";
    case MessageKind::kAck:
      return "ack";
    case MessageKind::kHeartbeat:
      return "heartbeat";
    case MessageKind::kError:
      return "error";
    case MessageKind::kBye:
      return "bye";
  }
  return "unknown";
}

std::string_view layout_name(Layout l) {
  switch (l) {
    case Layout::kUnspecified:
      return "unspecified";
    case Layout::kBSD:
      return "BSD";
    case Layout::kBC1S:
      return "BC1S";
    case Layout::kSD:
      return "SD";
    case Layout::kD:
      return "D";
    case Layout::kBCS:
      return "BCS";
  }
  return "unknown";
}

std::string to_hex(const Hash128& h) {
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(h.hi),
                static_cast<unsigned long long>(h.lo));
  return buf;
}

std::string to_hex(std::uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

std::optional<std::uint64_t> shape_element_count(const std::vector<std::uint64_t>& shape) {
  if (shape.empty()) return std::nullopt;
  std::uint64_t n = 1;
  for (std::uint64_t d : shape) {
    if (d == 0) return std::nullopt;
    if (n > (std::uint64_t{1} << 63) / d) return std::nullopt;
    n *= d;
  }
  return n;
}

}  // namespace agp::ptp
