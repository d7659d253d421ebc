#include "auth.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <cstring>

namespace agp::transport::detail {
namespace {

void append_u64(std::vector<std::uint8_t>& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

// RAND_bytes fails only when the system's entropy source is unusable; there is no safe fallback.
Status fill_random(void* dst, std::size_t n) {
  if (RAND_bytes(static_cast<unsigned char*>(dst), static_cast<int>(n)) != 1) {
    return make_error(ErrorCode::kNetworkError, "OpenSSL RAND_bytes failed: no usable entropy");
  }
  return {};
}

}  // namespace

Result<std::vector<std::uint8_t>> fresh_nonce() {
  std::vector<std::uint8_t> n(kNonceBytes);
  AGP_RETURN_IF_ERROR(fill_random(n.data(), n.size()));
  return n;
}

Result<std::uint64_t> random_u64() {
  std::uint64_t v = 0;
  AGP_RETURN_IF_ERROR(fill_random(&v, sizeof v));
  return v;
}

std::vector<std::uint8_t> auth_tag(std::span<const std::uint8_t> key, std::string_view label,
                                   std::span<const std::uint8_t> first_nonce,
                                   std::span<const std::uint8_t> second_nonce,
                                   std::uint64_t session_id, const ptp::Hash128& fingerprint) {
  std::vector<std::uint8_t> msg;
  append_u64(msg, label.size());
  msg.insert(msg.end(), label.begin(), label.end());
  append_u64(msg, first_nonce.size());
  msg.insert(msg.end(), first_nonce.begin(), first_nonce.end());
  append_u64(msg, second_nonce.size());
  msg.insert(msg.end(), second_nonce.begin(), second_nonce.end());
  append_u64(msg, session_id);
  append_u64(msg, fingerprint.lo);
  append_u64(msg, fingerprint.hi);
  std::vector<std::uint8_t> tag(EVP_MAX_MD_SIZE);
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), msg.data(), msg.size(), tag.data(),
       &len);
  tag.resize(len);
  return tag;
}

bool tags_equal(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b) {
  return a.size() == b.size() && !a.empty() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace agp::transport::detail
