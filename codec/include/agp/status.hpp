// Status and Result<T>: the one error vocabulary of the whole library.
//
// Every public call that can fail on bad input returns a Status or a Result<T>; nothing throws
// across the API and nothing aborts. Error codes are numbered and stable: a code keeps its number
// and meaning forever (new codes get new numbers), so tools, logs and the C API can rely on them.
// It lives in the bottom layer (codec) so that every layer above shares it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

namespace agp {

enum class ErrorCode : std::uint16_t {
  kOk = 0,

  // Frame prefix and header (1xx).
  kTruncated = 100,                // the input ended before the frame did
  kBadMagic = 101,                 // the first four bytes are not "AGPP"
  kUnsupportedVersion = 102,       // frame format version this build does not speak
  kBadPrefix = 103,                // reserved prefix bits set, or header length misaligned
  kHeaderTooLarge = 104,           // header length above the receiver's cap
  kHeaderChecksumMismatch = 105,   // XXH3 of prefix + header does not match
  kHeaderInvalid = 106,            // FlatBuffers Verifier rejected the header
  kMissingField = 107,             // a field required for this message kind is absent
  kUnknownMessageKind = 108,       // message kind not defined by this protocol version
  kBodyTooLarge = 109,             // body length above the receiver's cap
  kBadSectionTable = 110,          // too many sections, zero kind, lengths that overflow
  kSectionOutOfBounds = 111,       // a section reaches past the body
  kSectionMisaligned = 112,        // a section is not at its canonical 64-byte aligned offset
  kSectionChecksumMismatch = 113,  // XXH3 of a section does not match its table entry
  kNonZeroPadding = 114,           // an alignment padding byte is not zero
  kBadTensorDescriptor = 115,      // rank, zero or overflowing shape, vector axis, dtype
  kBadCodecDescriptor = 116,       // codec fields out of range
  kFingerprintMismatch = 117,      // the model fingerprint is not the one expected
  kProtocolVersionMismatch = 118,  // header protocol version not supported

  // Files (2xx).
  kIoError = 200,           // open/read/write/mmap failed
  kBadNpy = 201,            // malformed .npy file
  kBadSafetensors = 202,    // malformed safetensors file or index
  kUnsupportedDtype = 203,  // a valid file whose element type we do not handle
  kBadCalibration = 204,    // malformed or damaged calibration file
  kBadVectorFile = 205,     // a vector file (JSONL rows, raw sizes) that cannot be read as vectors

  // Codec (4xx).
  kNonFiniteInput = 400,    // a NaN or infinity in a tensor to encode
  kValueOutOfRange = 401,   // finite values too large for the codec's norm or scale type
  kBadEncodedData = 402,    // encoded parts that cannot come from an encoder (NaN norms, sizes)
  kUnsupportedCodec = 403,  // a codec configuration this build does not implement

  // Transport (5xx).
  kTimeout = 500,           // a deadline passed before the operation finished
  kConnectionClosed = 501,  // the peer closed the connection (or it was reset)
  kConnectFailed = 502,     // no connection could be made to the peer
  kNetworkError = 503,      // any other socket error
  kAddressInUse = 504,      // the listening address is taken
  kAuthenticationFailed = 505,  // pre-shared-key challenge failed (wrong or missing key)
  kCapabilityMismatch = 506,    // the peers share no codec, frame size or feature the call needs
  kPeerLost = 507,              // the peer stayed unreachable past the reconnect limit
  kAborted = 508,               // the peer ended the link early (it failed or gave up); why follows

  // API use (3xx).
  kInvalidArgument = 300,  // the caller passed something out of contract
  kBufferTooSmall = 301,   // a caller-owned output buffer is too small
  kBadState = 302,         // a call made in a state that does not allow it
};

// Stable short name of a code, e.g. "section_checksum_mismatch".
std::string_view error_code_name(ErrorCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // ok
  Status(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok() { return {}; }

  bool is_ok() const { return code_ == ErrorCode::kOk; }
  explicit operator bool() const { return is_ok(); }
  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "section_checksum_mismatch (113): section 0 (codes) ..." for logs and tools.
  std::string to_string() const;

 private:
  ErrorCode code_ = ErrorCode::kOk;
  std::string message_;
};

inline Status make_error(ErrorCode code, std::string message) {
  return {code, std::move(message)};
}

// Either a value or a non-ok Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}        // NOLINT(google-explicit-constructor)
  Result(Status status) : v_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    if (std::get<Status>(v_).is_ok()) {
      v_ = Status(ErrorCode::kBadState, "Result constructed from an ok Status without a value");
    }
  }

  bool is_ok() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return is_ok(); }

  // Precondition: is_ok(). Callers check first; tests use ASSERT_TRUE(r) before.
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &std::get<T>(v_); }
  const T* operator->() const { return &std::get<T>(v_); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  // The error; ok() when a value is held.
  Status status() const { return is_ok() ? Status() : std::get<Status>(v_); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace agp

// Propagates a non-ok Status from an expression returning Status.
#define AGP_RETURN_IF_ERROR(expr)                 \
  do {                                            \
    ::agp::Status agp_status_ = (expr);           \
    if (!agp_status_.is_ok()) return agp_status_; \
  } while (false)
