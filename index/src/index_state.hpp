// Internal: what an Index holds. Its codes, norms and exact copies are read through spans that
// point either at its own vectors or into a memory-mapped snapshot (used in place).
#pragma once

#include <memory>
#include <span>
#include <vector>

#include "agp/codec/codec.hpp"
#include "agp/index/index.hpp"
#include "codebooks.hpp"
#include "rotation.hpp"

namespace agp::index {

struct Index::State {
  // The codec, rotation and codebooks for `dim` and `options`, no vectors yet. kInvalidArgument
  // for a dimension or width out of range.
  static Result<std::unique_ptr<State>> make(std::uint32_t dim, const IndexOptions& options);

  std::uint32_t dim = 0;
  IndexOptions options;
  std::unique_ptr<codec::Codec> codec;
  std::vector<codec::Block> blocks;
  std::vector<float> signs;
  std::vector<const codec::Codebook*> books;  // per block
  std::uint32_t code_bytes = 0;               // per vector
  std::uint64_t count = 0;

  std::span<const std::uint8_t> codes;   // count * code_bytes
  std::span<const float> norms;          // count * blocks: each block's norm over its size, times g
  std::span<const std::uint16_t> exact;  // count * dim fp16, when kept

  std::vector<std::uint8_t> codes_owned;
  std::vector<float> norms_owned;
  std::vector<std::uint16_t> exact_owned;
  // What the spans point into when they are not the owned vectors: a mapped snapshot, or
  // nothing (a caller's buffer, Index::view). Null with `mapped` set means the caller's memory.
  std::shared_ptr<const void> keep;
  bool mapped = false;

  void bind_owned() {
    codes = codes_owned;
    norms = norms_owned;
    exact = exact_owned;
  }
  // Copies mapped contents into owned vectors (before they change).
  void own() {
    if (!mapped) return;
    codes_owned.assign(codes.begin(), codes.end());
    norms_owned.assign(norms.begin(), norms.end());
    exact_owned.assign(exact.begin(), exact.end());
    keep.reset();
    mapped = false;
    bind_owned();
  }
};

}  // namespace agp::index
