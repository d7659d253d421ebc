// Internal: what an Index holds. Its codes, norms and exact copies are read through spans that
// point either at its own vectors or into a memory-mapped snapshot (used in place).
#pragma once

#include <memory>
#include <mutex>
#include <shared_mutex>
#include <span>
#include <string>
#include <vector>

#include "agp/codec/codec.hpp"
#include "agp/index/index.hpp"
#include "agp/ptp/checksum.hpp"
#include "codebooks.hpp"
#include "rotation.hpp"
#include "scan_kernels.hpp"

namespace agp::index {

// Scales `v` to unit length in place; the error (kNonFiniteInput, kValueOutOfRange) names `what`.
Status normalize_in_place(float* v, std::uint32_t dim, const std::string& what);

struct Index::State {
  // The codec, rotation and codebooks for `dim` and `options`, no vectors yet. kInvalidArgument
  // for a dimension or width out of range.
  static Result<std::unique_ptr<State>> make(std::uint32_t dim, const IndexOptions& options);

  // add() holds `lock` alone; searches, vectors() and save() share it, so a host that adds while
  // other threads search gets consistent answers instead of torn reads. A writer takes the
  // turnstile before it waits, and readers pass through it first: searches arriving while an
  // add waits queue behind it (glibc's reader-writer lock would let a stream of searches starve
  // the add).
  mutable std::shared_mutex lock;
  mutable std::mutex turnstile;
  std::shared_lock<std::shared_mutex> reading() const {
    { const std::lock_guard pass(turnstile); }
    return std::shared_lock(lock);
  }
  std::unique_lock<std::shared_mutex> writing() const {
    const std::lock_guard hold(turnstile);
    return std::unique_lock(lock);
  }

  std::uint32_t dim = 0;
  IndexOptions options;
  std::unique_ptr<codec::Codec> codec;
  std::vector<codec::Block> blocks;
  std::vector<float> rotation_signs;
  std::vector<const codec::Codebook*> books;  // per block
  // The top plane's byte range of each block, for the sign stage; empty when a block is not a
  // whole number of bytes (fewer than 8 dimensions), and every search then scans whole codes.
  std::vector<ByteRange> sign_blocks;
  std::uint32_t plane = 0;  // bytes per bit plane of one vector (bit_planes.hpp)
  std::uint64_t count = 0;

  std::span<const std::uint8_t> top_planes;    // count * plane: the top planes
  std::span<const std::uint8_t> lower_planes;  // count * (bits - 1) * plane: the other planes
  std::span<const float> norms;          // count * blocks: each block's norm over its size, times g
  std::span<const std::uint16_t> exact;  // count * dim fp16, when kept
  // The mean subtracted from every normalized vector before coding (IndexOptions::center); empty
  // when the index is not centered. Scores from the codes add <mean, q> back.
  std::vector<float> mean;

  std::vector<std::uint8_t> top_owned;
  std::vector<std::uint8_t> lower_owned;
  std::vector<float> norms_owned;
  std::vector<std::uint16_t> exact_owned;
  // What the spans point into when they are not the owned vectors: a mapped snapshot, or
  // nothing (a caller's buffer, Index::view). Null with `mapped` set means the caller's memory.
  std::shared_ptr<const void> keep;
  bool mapped = false;

  void bind_owned() {
    top_planes = top_owned;
    lower_planes = lower_owned;
    norms = norms_owned;
    exact = exact_owned;
  }
  // Room for n vectors in all, so a large add does not copy what it has added so far.
  void reserve(std::uint64_t n) {
    top_owned.reserve(n * plane);
    lower_owned.reserve(n * plane * static_cast<std::size_t>(options.bits - 1));
    norms_owned.reserve(n * blocks.size());
    if (options.keep_exact) exact_owned.reserve(n * dim);
  }
  // Drops vectors from `n` on (owned contents only): undoes a failed add.
  void truncate(std::uint64_t n) {
    top_owned.resize(n * plane);
    lower_owned.resize(n * plane * static_cast<std::size_t>(options.bits - 1));
    norms_owned.resize(n * blocks.size());
    if (options.keep_exact) exact_owned.resize(n * dim);
    count = n;
    bind_owned();
  }
  // A mapped snapshot's exact copies are verified on first use: kSectionChecksumMismatch (or
  // kBadEncodedData for a NaN or infinity under a good checksum), the same every time. Safe from
  // any thread.
  std::uint64_t exact_checksum = 0;
  std::string exact_where;
  bool exact_unverified = false;
  mutable std::once_flag exact_once;
  mutable Status exact_status;
  Status exact_ready() const {
    if (!exact_unverified) return {};
    std::call_once(exact_once, [this] {
      if (ptp::xxh3_64(std::as_bytes(exact)) != exact_checksum) {
        exact_status =
            make_error(ErrorCode::kSectionChecksumMismatch,
                       "index snapshot " + exact_where + ": section exact_f16 is damaged");
        return;
      }
      // Copies of unit vectors are finite; a NaN or infinity would rank as a score.
      for (std::uint16_t h : exact) {
        if ((h & 0x7c00) == 0x7c00) {
          exact_status = make_error(ErrorCode::kBadEncodedData, "index snapshot " + exact_where +
                                                                    ": an fp16 copy is not finite");
          return;
        }
      }
    });
    return exact_status;
  }

  // Copies mapped contents into owned vectors (before they change); fails on damaged copies.
  Status own() {
    if (!mapped) return {};
    AGP_RETURN_IF_ERROR(exact_ready());
    top_owned.assign(top_planes.begin(), top_planes.end());
    lower_owned.assign(lower_planes.begin(), lower_planes.end());
    norms_owned.assign(norms.begin(), norms.end());
    exact_owned.assign(exact.begin(), exact.end());
    keep.reset();
    mapped = false;
    exact_unverified = false;
    bind_owned();
    return {};
  }
};

}  // namespace agp::index
