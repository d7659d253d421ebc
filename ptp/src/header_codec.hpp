// Internal: MessageHeader <-> FlatBuffers `Header` (schemas/ptp.fbs).
#pragma once

#include <flatbuffers/flatbuffers.h>

#include <span>

#include "agp/ptp/frame_format.hpp"
#include "agp/ptp/message.hpp"
#include "agp/status.hpp"

namespace agp::ptp::detail {

// Serialises `h` (sections and body_length included) into `fbb`, which is cleared first.
void encode_header(flatbuffers::FlatBufferBuilder& fbb, const MessageHeader& h);

// Runs the FlatBuffers Verifier with the depth and table limits of `lim` over `region` (which must
// be 8-byte aligned) and converts the verified table to a MessageHeader. Semantic rules are checked
// separately by validate_header().
Result<MessageHeader> decode_header(std::span<const std::byte> region, const DecoderLimits& lim);

}  // namespace agp::ptp::detail
