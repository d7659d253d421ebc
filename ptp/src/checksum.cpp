#include "agp/ptp/checksum.hpp"

#define XXH_STATIC_LINKING_ONLY  // exposes XXH3_state_t so the state can live inline
#include <xxhash.h>
#if defined(AGP_HAVE_XXH_X86_DISPATCH)
#include <xxh_x86dispatch.h>  // runtime AVX2/AVX-512 selection on x86-64
#endif

namespace agp::ptp {

std::uint64_t xxh3_64(std::span<const std::byte> b) {
#if defined(AGP_HAVE_XXH_X86_DISPATCH)
  return XXH3_64bits_dispatch(b.data(), b.size());
#else
  return XXH3_64bits(b.data(), b.size());
#endif
}

Hash128 xxh3_128(std::span<const std::byte> b) {
#if defined(AGP_HAVE_XXH_X86_DISPATCH)
  const XXH128_hash_t h = XXH3_128bits_dispatch(b.data(), b.size());
#else
  const XXH128_hash_t h = XXH3_128bits(b.data(), b.size());
#endif
  return {h.low64, h.high64};
}

struct Xxh3Stream64::State {
  XXH3_state_t s;
};

Xxh3Stream64::Xxh3Stream64() : state_(std::make_unique<State>()) {
  XXH3_64bits_reset(&state_->s);
}
Xxh3Stream64::~Xxh3Stream64() = default;

void Xxh3Stream64::update(std::span<const std::byte> b) {
#if defined(AGP_HAVE_XXH_X86_DISPATCH)
  XXH3_64bits_update_dispatch(&state_->s, b.data(), b.size());
#else
  XXH3_64bits_update(&state_->s, b.data(), b.size());
#endif
}

std::uint64_t Xxh3Stream64::digest() const {
  return XXH3_64bits_digest(&state_->s);
}

struct Xxh3Stream128::State {
  XXH3_state_t s;
};

Xxh3Stream128::Xxh3Stream128() : state_(std::make_unique<State>()) {
  XXH3_128bits_reset(&state_->s);
}
Xxh3Stream128::~Xxh3Stream128() = default;

void Xxh3Stream128::update(std::span<const std::byte> b) {
#if defined(AGP_HAVE_XXH_X86_DISPATCH)
  XXH3_128bits_update_dispatch(&state_->s, b.data(), b.size());
#else
  XXH3_128bits_update(&state_->s, b.data(), b.size());
#endif
}

Hash128 Xxh3Stream128::digest() const {
  const XXH128_hash_t h = XXH3_128bits_digest(&state_->s);
  return {h.low64, h.high64};
}

}  // namespace agp::ptp
