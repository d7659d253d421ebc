// A frame queued for the socket that owns (or keeps alive) every byte it points at, so it can wait
// in the send queue and stay for retransmission after a reconnect (internal).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "agp/ptp/frame_builder.hpp"

namespace agp::transport::detail {

struct OutgoingFrame {
  std::vector<std::byte> owned;                    // copied pieces (prefix, header, padding)
  std::vector<std::span<const std::byte>> pieces;  // wire order
  std::shared_ptr<const void> keep_alive;          // owner of the referenced pieces
  std::uint64_t bytes = 0;
};

// Copies every piece of `frame` except those equal to one of `referenced` (large section buffers
// kept alive by `keep_alive`), so the result no longer depends on the builder that made it.
std::shared_ptr<OutgoingFrame> freeze(const ptp::GatherList& frame,
                                      std::span<const std::span<const std::byte>> referenced,
                                      std::shared_ptr<const void> keep_alive);

// A frame without referenced pieces (control messages).
std::shared_ptr<OutgoingFrame> freeze_copy(const ptp::GatherList& frame);

}  // namespace agp::transport::detail
