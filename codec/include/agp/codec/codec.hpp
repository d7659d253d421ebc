// The codec API: TurboQuant and the baseline codecs behind one interface.
//
// A codec is built for one vector length (`dim`) and configuration. Its output is a fixed set of
// parts (codes, norms, scales, ...), each with a fixed number of bytes per vector, so the exact
// encoded size is known before encoding and any range of vectors can be encoded or decoded on its
// own (for chunked pipelining, and across threads). Output goes to caller-owned buffers.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "agp/codec/dtype.hpp"
#include "agp/codec/format_ids.hpp"
#include "agp/codec/tensor_view.hpp"
#include "agp/status.hpp"

namespace agp::codec {

class ThreadPool;

struct CodecConfig {
  CodecId id = CodecId::kTurboQuantMse;
  // TurboQuant: 1..8 bits per value. Raw: 0 keeps the source dtype, or 16/32 with raw_dtype.
  // Block int8: 8. Block 4-bit: 4.
  int bits = 4;
  DType norm_dtype = DType::kF16;  // per-block norms (TurboQuant); f16 or f32
  std::uint64_t seed = 0x5eed;     // rotation signs (TurboQuant)
  DType raw_dtype = DType::kF16;   // the stored dtype of the raw codec
};

struct PartSpec {
  SectionKind kind;
  std::uint32_t bytes_per_vector;
};

class Codec {
 public:
  virtual ~Codec() = default;

  const CodecConfig& config() const { return config_; }
  std::uint32_t dim() const { return dim_; }
  const std::vector<PartSpec>& parts() const { return parts_; }
  // Bytes of all parts for `vectors` vectors.
  std::uint64_t encoded_bytes(std::uint64_t vectors) const;
  // Stored bits per value, all parts included.
  double bits_per_value() const;
  // "turboquant_mse/4", "block_absmax_4/4", "raw/f16", ...
  std::string name() const;

  // Encodes vectors [first, first + n) of `in`. out[i] receives part i (parts() order) and must be
  // exactly n * parts()[i].bytes_per_vector bytes. Errors: kInvalidArgument (view, range, sizes),
  // kNonFiniteInput (NaN/Inf in the input), kValueOutOfRange (too large for the norm/scale type).
  Status encode(const TensorView& in, std::uint64_t first, std::uint64_t n,
                std::span<const std::span<std::byte>> out) const;
  // Decodes parts for vectors [first, first + n) into those vectors of `out` (any float dtype,
  // any strides). kBadEncodedData for parts no encoder could have written (NaN norms, ...).
  Status decode(std::span<const std::span<const std::byte>> in, const TensorView& out,
                std::uint64_t first, std::uint64_t n) const;

  // The whole tensor, split across `pool` (nullptr: the calling thread only).
  Status encode_all(const TensorView& in, std::span<const std::span<std::byte>> out,
                    ThreadPool* pool = nullptr) const;
  Status decode_all(std::span<const std::span<const std::byte>> in, const TensorView& out,
                    ThreadPool* pool = nullptr) const;

 protected:
  Codec(CodecConfig config, std::uint32_t dim) : config_(config), dim_(dim) {}
  // Encodes vectors [first, first + n) read through `in`; part_out[i] points at part i of the
  // first vector. The default gathers vector-major fp32 tiles and calls encode_tile.
  virtual Status encode_vectors(const VectorAccess& in, std::uint64_t first, std::size_t n,
                                std::byte* const* part_out) const;
  virtual Status decode_vectors(const std::byte* const* part_in, std::uint64_t first, std::size_t n,
                                const VectorAccess& out) const;
  // Encodes n gathered fp32 vectors x[n * dim]; part_out[i] points at part i of the first vector.
  virtual Status encode_tile(const float* x, std::size_t n, std::byte* const* part_out) const = 0;
  // Decodes n vectors into x[n * dim].
  virtual Status decode_tile(const std::byte* const* part_in, std::size_t n, float* x) const = 0;

  CodecConfig config_;
  std::uint32_t dim_;
  std::vector<PartSpec> parts_;
};

// Builds a codec for vectors of `dim` values. kUnsupportedCodec for configurations this build does
// not implement, kInvalidArgument for out-of-range values.
Result<std::unique_ptr<Codec>> make_codec(const CodecConfig& config, std::uint32_t dim);

}  // namespace agp::codec
