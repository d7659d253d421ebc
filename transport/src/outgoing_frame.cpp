#include "outgoing_frame.hpp"

#include <algorithm>
#include <cstring>

namespace agp::transport::detail {
namespace {

bool is_referenced(std::span<const std::byte> piece,
                   std::span<const std::span<const std::byte>> referenced) {
  return std::any_of(referenced.begin(), referenced.end(), [&](std::span<const std::byte> r) {
    return r.data() == piece.data() && r.size() == piece.size() && !r.empty();
  });
}

}  // namespace

std::shared_ptr<OutgoingFrame> freeze(const ptp::GatherList& frame,
                                      std::span<const std::span<const std::byte>> referenced,
                                      std::shared_ptr<const void> keep_alive) {
  auto out = std::make_shared<OutgoingFrame>();
  out->keep_alive = std::move(keep_alive);
  out->bytes = frame.total_bytes;
  std::size_t copied = 0;
  for (const auto& p : frame.pieces) {
    if (!is_referenced(p, referenced)) copied += p.size();
  }
  out->owned.resize(copied);  // sized once: the spans below point into it
  std::size_t at = 0;
  for (const auto& p : frame.pieces) {
    if (is_referenced(p, referenced)) {
      out->pieces.push_back(p);
    } else {
      if (!p.empty()) std::memcpy(out->owned.data() + at, p.data(), p.size());
      out->pieces.emplace_back(out->owned.data() + at, p.size());
      at += p.size();
    }
  }
  return out;
}

std::shared_ptr<OutgoingFrame> freeze_copy(const ptp::GatherList& frame) {
  return freeze(frame, {}, nullptr);
}

}  // namespace agp::transport::detail
