#include "agp/status.hpp"

namespace agp {

std::string_view error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOk:
      return "ok";
    case ErrorCode::kTruncated:
      return "truncated";
    case ErrorCode::kBadMagic:
      return "bad_magic";
    case ErrorCode::kUnsupportedVersion:
      return "unsupported_version";
    case ErrorCode::kBadPrefix:
      return "bad_prefix";
    case ErrorCode::kHeaderTooLarge:
      return "header_too_large";
    case ErrorCode::kHeaderChecksumMismatch:
      return "header_checksum_mismatch";
    case ErrorCode::kHeaderInvalid:
      return "header_invalid";
    case ErrorCode::kMissingField:
      return "missing_field";
    case ErrorCode::kUnknownMessageKind:
      return "unknown_message_kind";
    case ErrorCode::kBodyTooLarge:
      return "body_too_large";
    case ErrorCode::kBadSectionTable:
      return "bad_section_table";
    case ErrorCode::kSectionOutOfBounds:
      return "section_out_of_bounds";
    case ErrorCode::kSectionMisaligned:
      return "section_misaligned";
    case ErrorCode::kSectionChecksumMismatch:
      return "section_checksum_mismatch";
    case ErrorCode::kNonZeroPadding:
      return "non_zero_padding";
    case ErrorCode::kBadTensorDescriptor:
      return "bad_tensor_descriptor";
    case ErrorCode::kBadCodecDescriptor:
      return "bad_codec_descriptor";
    case ErrorCode::kFingerprintMismatch:
      return "fingerprint_mismatch";
    case ErrorCode::kProtocolVersionMismatch:
      return "protocol_version_mismatch";
    case ErrorCode::kIoError:
      return "io_error";
    case ErrorCode::kBadNpy:
      return "bad_npy";
    case ErrorCode::kBadSafetensors:
      return "bad_safetensors";
    case ErrorCode::kUnsupportedDtype:
      return "unsupported_dtype";
    case ErrorCode::kBadCalibration:
      return "bad_calibration";
    case ErrorCode::kBadVectorFile:
      return "bad_vector_file";
    case ErrorCode::kNonFiniteInput:
      return "non_finite_input";
    case ErrorCode::kValueOutOfRange:
      return "value_out_of_range";
    case ErrorCode::kBadEncodedData:
      return "bad_encoded_data";
    case ErrorCode::kUnsupportedCodec:
      return "unsupported_codec";
    case ErrorCode::kTimeout:
      return "timeout";
    case ErrorCode::kConnectionClosed:
      return "connection_closed";
    case ErrorCode::kConnectFailed:
      return "connect_failed";
    case ErrorCode::kNetworkError:
      return "network_error";
    case ErrorCode::kAddressInUse:
      return "address_in_use";
    case ErrorCode::kAuthenticationFailed:
      return "authentication_failed";
    case ErrorCode::kCapabilityMismatch:
      return "capability_mismatch";
    case ErrorCode::kPeerLost:
      return "peer_lost";
    case ErrorCode::kAborted:
      return "aborted";
    case ErrorCode::kInvalidArgument:
      return "invalid_argument";
    case ErrorCode::kBufferTooSmall:
      return "buffer_too_small";
    case ErrorCode::kBadState:
      return "bad_state";
  }
  return "unknown_error";
}

std::string Status::to_string() const {
  if (is_ok()) return "ok";
  std::string out(error_code_name(code_));
  out += " (" + std::to_string(static_cast<unsigned>(code_)) + "): " + message_;
  return out;
}

}  // namespace agp
