// Internal: the 24-byte frame prefix and the header checksum.
#pragma once

#include <span>
#include <vector>

#include "agp/ptp/frame_format.hpp"
#include "agp/status.hpp"

namespace agp::ptp::detail {

void write_prefix(const FramePrefix& p, std::span<std::byte, kPrefixSize> out);

// Parses and checks a prefix: magic, format version, flags, reserved, header length (alignment,
// minimum, cap). Does not check the checksum (that needs the header bytes).
Result<FramePrefix> read_prefix(std::span<const std::byte, kPrefixSize> in,
                                const DecoderLimits& lim);

// XXH3-64 of prefix bytes [0,16) followed by the header region.
std::uint64_t header_checksum(std::span<const std::byte, kPrefixSize> prefix,
                              std::span<const std::byte> region);

// Computes the header checksum of head = prefix + header region and stores it at bytes [16,24).
void seal_header_checksum(std::vector<std::byte>& head);

}  // namespace agp::ptp::detail
