// The rules a header must satisfy, shared by the builder (it never emits a frame a receiver
// would reject) and the decoder (it rejects anything that breaks them).
#pragma once

#include <string>
#include <string_view>

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

// Offset of the first byte of `s` that breaks UTF-8 (RFC 3629: no overlong forms, surrogates or
// code points above U+10FFFF), or std::string::npos when all of it is valid. Header strings must
// be valid UTF-8 (else header_invalid).
std::size_t invalid_utf8_offset(std::string_view s);
// `s` made fit for a header string: each byte that breaks UTF-8 becomes '?', and it is cut to at
// most `max_bytes` on a character boundary.
std::string to_header_string(std::string_view s, std::size_t max_bytes);

}  // namespace agp::ptp
