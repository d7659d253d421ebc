#include "agp/codec/codec.hpp"

#include <algorithm>
#include <string>

#include "agp/codec/thread_pool.hpp"
#include "codecs.hpp"

namespace agp::codec {
namespace {

constexpr std::size_t kTile = 64;  // vectors gathered and coded together

Status check_range(const TensorView& v, std::uint32_t dim, std::uint64_t first, std::uint64_t n) {
  AGP_RETURN_IF_ERROR(v.validate());
  if (v.dim() != dim) {
    return make_error(ErrorCode::kInvalidArgument,
                      "tensor vectors have " + std::to_string(v.dim()) +
                          " values; this codec was built for " + std::to_string(dim));
  }
  const std::uint64_t count = v.vector_count();
  if (first > count || n > count - first) {
    return make_error(ErrorCode::kInvalidArgument,
                      "vector range [" + std::to_string(first) + ", +" + std::to_string(n) +
                          ") is outside the tensor's " + std::to_string(count) + " vectors");
  }
  return {};
}

template <typename Span>
Status check_parts(const std::vector<PartSpec>& parts, std::span<const Span> bufs,
                   std::uint64_t n) {
  if (bufs.size() != parts.size()) {
    return make_error(ErrorCode::kInvalidArgument, "expected " + std::to_string(parts.size()) +
                                                       " part buffers, got " +
                                                       std::to_string(bufs.size()));
  }
  for (std::size_t i = 0; i < parts.size(); ++i) {
    const std::uint64_t need = n * parts[i].bytes_per_vector;
    if (bufs[i].size() != need) {
      return make_error(ErrorCode::kBufferTooSmall,
                        "part " + std::to_string(i) + " (" +
                            std::string(section_kind_name(parts[i].kind)) + ") buffer is " +
                            std::to_string(bufs[i].size()) + " bytes; " + std::to_string(n) +
                            " vectors need exactly " + std::to_string(need));
    }
  }
  return {};
}

thread_local std::vector<float> tls_tile;

}  // namespace

std::uint64_t Codec::encoded_bytes(std::uint64_t vectors) const {
  std::uint64_t per = 0;
  for (const PartSpec& p : parts_) per += p.bytes_per_vector;
  return per * vectors;
}

double Codec::bits_per_value() const {
  return static_cast<double>(encoded_bytes(1)) * 8.0 / dim_;
}

std::string Codec::name() const {
  std::string n(codec_name(config_.id));
  if (config_.id == CodecId::kRaw) return n + "/" + std::string(dtype_name(config_.raw_dtype));
  return n + "/" + std::to_string(config_.bits);
}

Status Codec::encode_vectors(const VectorAccess& in, std::uint64_t first, std::size_t n,
                             std::byte* const* out) const {
  tls_tile.resize(kTile * dim_);
  std::vector<std::byte*> ptrs(parts_.size());
  for (std::size_t done = 0; done < n;) {
    const std::size_t t = std::min(kTile, n - done);
    in.gather(first + done, t, tls_tile.data());
    for (std::size_t p = 0; p < parts_.size(); ++p)
      ptrs[p] = out[p] + done * parts_[p].bytes_per_vector;
    AGP_RETURN_IF_ERROR(encode_tile(tls_tile.data(), t, ptrs.data()));
    done += t;
  }
  return {};
}

Status Codec::decode_vectors(const std::byte* const* in, std::uint64_t first, std::size_t n,
                             const VectorAccess& out) const {
  tls_tile.resize(kTile * dim_);
  std::vector<const std::byte*> ptrs(parts_.size());
  for (std::size_t done = 0; done < n;) {
    const std::size_t t = std::min(kTile, n - done);
    for (std::size_t p = 0; p < parts_.size(); ++p)
      ptrs[p] = in[p] + done * parts_[p].bytes_per_vector;
    AGP_RETURN_IF_ERROR(decode_tile(ptrs.data(), t, tls_tile.data()));
    out.scatter(first + done, t, tls_tile.data());
    done += t;
  }
  return {};
}

// Works in slices of at most kSlice vectors so that errors name a small range.
constexpr std::uint64_t kSlice = 256;

Status Codec::encode(const TensorView& in, std::uint64_t first, std::uint64_t n,
                     std::span<const std::span<std::byte>> out) const {
  AGP_RETURN_IF_ERROR(check_range(in, dim_, first, n));
  AGP_RETURN_IF_ERROR(check_parts(parts_, out, n));
  const VectorAccess access(in);
  std::vector<std::byte*> ptrs(parts_.size());
  for (std::uint64_t done = 0; done < n;) {
    const auto t = static_cast<std::size_t>(std::min<std::uint64_t>(kSlice, n - done));
    for (std::size_t p = 0; p < parts_.size(); ++p)
      ptrs[p] = out[p].data() + done * parts_[p].bytes_per_vector;
    Status s = encode_vectors(access, first + done, t, ptrs.data());
    if (!s) {
      return Status(s.code(), "vectors [" + std::to_string(first + done) + ", +" +
                                  std::to_string(t) + "): " + s.message());
    }
    done += t;
  }
  return {};
}

Status Codec::decode(std::span<const std::span<const std::byte>> in, const TensorView& out,
                     std::uint64_t first, std::uint64_t n) const {
  AGP_RETURN_IF_ERROR(check_range(out, dim_, first, n));
  AGP_RETURN_IF_ERROR(check_parts(parts_, in, n));
  const VectorAccess access(out);
  std::vector<const std::byte*> ptrs(parts_.size());
  for (std::uint64_t done = 0; done < n;) {
    const auto t = static_cast<std::size_t>(std::min<std::uint64_t>(kSlice, n - done));
    for (std::size_t p = 0; p < parts_.size(); ++p)
      ptrs[p] = in[p].data() + done * parts_[p].bytes_per_vector;
    Status s = decode_vectors(ptrs.data(), first + done, t, access);
    if (!s) {
      return Status(s.code(), "vectors [" + std::to_string(first + done) + ", +" +
                                  std::to_string(t) + "): " + s.message());
    }
    done += t;
  }
  return {};
}

namespace {

// Splits [0, count) into about `pool->size()` ranges (multiples of the tile) and runs fn on each.
Status split_run(std::uint64_t count, ThreadPool* pool,
                 const std::function<Status(std::uint64_t, std::uint64_t)>& fn) {
  const int workers = pool ? pool->size() : 1;
  if (workers <= 1 || count < 2 * kTile) return fn(0, count);
  const std::uint64_t per = (count + workers - 1) / workers;
  const std::uint64_t step = (per + kTile - 1) / kTile * kTile;
  const std::size_t tasks = static_cast<std::size_t>((count + step - 1) / step);
  std::vector<Status> results(tasks);
  pool->run(tasks, [&](std::size_t i) {
    const std::uint64_t first = i * step;
    results[i] = fn(first, std::min(step, count - first));
  });
  for (Status& s : results) AGP_RETURN_IF_ERROR(s);
  return {};
}

}  // namespace

Status Codec::encode_all(const TensorView& in, std::span<const std::span<std::byte>> out,
                         ThreadPool* pool) const {
  AGP_RETURN_IF_ERROR(in.validate());
  const std::uint64_t count = in.vector_count();
  AGP_RETURN_IF_ERROR(check_parts(parts_, out, count));
  return split_run(count, pool, [&](std::uint64_t first, std::uint64_t n) {
    std::vector<std::span<std::byte>> sub;
    for (std::size_t p = 0; p < parts_.size(); ++p) {
      sub.push_back(
          out[p].subspan(first * parts_[p].bytes_per_vector, n * parts_[p].bytes_per_vector));
    }
    return encode(in, first, n, sub);
  });
}

Status Codec::decode_all(std::span<const std::span<const std::byte>> in, const TensorView& out,
                         ThreadPool* pool) const {
  AGP_RETURN_IF_ERROR(out.validate());
  const std::uint64_t count = out.vector_count();
  AGP_RETURN_IF_ERROR(check_parts(parts_, in, count));
  return split_run(count, pool, [&](std::uint64_t first, std::uint64_t n) {
    std::vector<std::span<const std::byte>> sub;
    for (std::size_t p = 0; p < parts_.size(); ++p) {
      sub.push_back(
          in[p].subspan(first * parts_[p].bytes_per_vector, n * parts_[p].bytes_per_vector));
    }
    return decode(sub, out, first, n);
  });
}

Result<std::unique_ptr<Codec>> make_codec(const CodecConfig& c, std::uint32_t dim) {
  if (dim == 0 || dim > (1u << 24)) {
    return make_error(ErrorCode::kInvalidArgument,
                      "vector length must be 1..2^24, got " + std::to_string(dim));
  }
  switch (c.id) {
    case CodecId::kRaw:
      return make_raw_codec(c, dim);
    case CodecId::kTurboQuantMse:
      return make_turboquant_mse(c, dim);
    case CodecId::kBlockAbsmaxInt8:
    case CodecId::kBlockAbsmax4:
      return make_block_absmax(c, dim);
    case CodecId::kTurboQuantProd:
      return make_turboquant_prod(c, dim);
    case CodecId::kTurboQuantEc:   // packet-level: agp/codec/turboquant_ec.hpp
    case CodecId::kTurboQuantCal:  // per chunk: agp/codec/calibrated.hpp
    case CodecId::kUnknown:
      break;
  }
  return make_error(ErrorCode::kUnsupportedCodec, "codec '" + std::string(codec_name(c.id)) +
                                                      "' is not implemented by this build");
}

}  // namespace agp::codec
