// NumPy .npy files (format versions 1.0, 2.0 and 3.0), read by mmap with strict validation.
//
// Element types: '<f4' (f32), '<f2' (f16), '|u1' (u8), '<i4' (i32), '<i8' (i64). NumPy has no
// bfloat16, so bf16 tensors are stored as their raw 16-bit patterns with descr '<u2' and read
// back as bf16: in NumPy, `a.view(ml_dtypes.bfloat16)` or
// `(a.astype(np.uint32) << 16).view(np.float32)` recovers the values. Only C order is accepted.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "agp/codec/dtype.hpp"
#include "agp/ptp/mapped_file.hpp"
#include "agp/status.hpp"

namespace agp::ptp {

struct NpyView {
  DType dtype = DType::kUnknown;
  std::vector<std::uint64_t> shape;  // empty for a 0-d array (one element)
  std::span<const std::byte> data;   // exactly element_count * dtype_size bytes
  std::uint64_t element_count() const;
};

// An .npy file mapped into memory; `view.data` points into `file`.
struct NpyArray {
  MappedFile file;
  NpyView view;
};

// Parses an .npy image in memory. kBadNpy for malformed files, kUnsupportedDtype for valid files
// with element types or orders we do not handle.
Result<NpyView> parse_npy(std::span<const std::byte> bytes);
Result<NpyArray> read_npy(const std::string& path);

// The .npy bytes (version 1.0 header padded to 64 bytes, then `data`) for an array. `data` must be
// element_count * dtype_size bytes, little-endian, C order.
Result<std::vector<std::byte>> encode_npy(DType dtype, const std::vector<std::uint64_t>& shape,
                                          std::span<const std::byte> data);
Status write_npy(const std::string& path, DType dtype, const std::vector<std::uint64_t>& shape,
                 std::span<const std::byte> data);

}  // namespace agp::ptp
