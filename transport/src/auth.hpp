// Pre-shared-key authentication for the handshake: fresh nonces and HMAC-SHA256 tags (OpenSSL).
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "agp/ptp/message.hpp"
#include "agp/status.hpp"

namespace agp::transport::detail {

inline constexpr std::size_t kNonceBytes = 32;

// kNonceBytes from the operating system's CSPRNG (through OpenSSL); kNetworkError in the unlikely
// case that no entropy source is usable.
Result<std::vector<std::uint8_t>> fresh_nonce();
Result<std::uint64_t> random_u64();

// HMAC-SHA256(key, label || first_nonce || second_nonce || session_id || fingerprint). The label
// says which side proves, so a tag cannot be replayed in the other direction.
std::vector<std::uint8_t> auth_tag(std::span<const std::uint8_t> key, std::string_view label,
                                   std::span<const std::uint8_t> first_nonce,
                                   std::span<const std::uint8_t> second_nonce,
                                   std::uint64_t session_id, const ptp::Hash128& fingerprint);

// Constant-time comparison.
bool tags_equal(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b);

inline constexpr std::string_view kServerProof = "agp-ptp/v1/server-proof";
inline constexpr std::string_view kClientProof = "agp-ptp/v1/client-proof";

}  // namespace agp::transport::detail
