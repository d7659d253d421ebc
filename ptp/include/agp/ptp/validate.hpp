// The rules a header must satisfy, shared by the builder (it never emits a frame a receiver
// would reject) and the decoder (it rejects anything that breaks them).
#pragma once

#include "agp/ptp/frame_format.hpp"
#include "agp/ptp/message.hpp"
#include "agp/status.hpp"

namespace agp::ptp {

// Checks the protocol version, message kind, the fields each kind requires, string and vector
// sizes, the tensor and codec descriptors, the chunk, the section table's canonical layout and the
// body length against `opts.limits`, and the fingerprint against `opts.expected_fingerprint`.
Status validate_header(const MessageHeader& header, const DecoderOptions& opts);

// Checks the tensor descriptor alone (rank, dims, element count overflow, axis, dtype, layout).
Status validate_tensor_desc(const TensorDesc& t);

}  // namespace agp::ptp
