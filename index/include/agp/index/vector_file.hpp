// Reading and writing sets of vectors for an index: JSON Lines, NumPy .npy and raw f32.
//
// JSON Lines: one vector per line, either a bare array of numbers or an object holding it under
// "embedding", "vector", "values" or "embedding_vector" (the first of these, in this order, that
// the object has; other fields are ignored; a key given twice counts once, the last). Blank lines are skipped. Every vector must have the same length, and every value
// must be a finite number; a vector of zeros has no direction and is refused too. Any bad row
// fails the whole read with kBadVectorFile naming the file and line: nothing is half-read.
//
// .npy: a 2-D array [vectors, dim] of f32 or f16 (C order), or a 1-D array (one vector).
// Raw: little-endian f32, dim values per vector (the dimension must be given).
// Both are checked like JSON Lines rows (finite, not all zeros, at least one vector; an error
// names the row). A vector has at most 65,536 values.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <span>
#include <string>
#include <vector>

#include "agp/status.hpp"

namespace agp::index {

struct VectorSet {
  std::uint32_t dim = 0;
  std::vector<float> values;  // count() * dim, row-major, as read (not normalized)
  std::uint64_t count() const { return dim ? values.size() / dim : 0; }
};

enum class VectorFormat { kJsonl, kNpy, kRawF32 };

// By extension: .jsonl/.json/.ndjson, .npy, .f32/.bin/.raw; kInvalidArgument otherwise.
Result<VectorFormat> vector_format_of(const std::string& path);

// `name` labels errors ("queries.jsonl:17: ..."). kBadVectorFile for any bad row.
Result<VectorSet> read_jsonl(std::istream& in, const std::string& name);
// By format; `dim` is needed for raw f32 only (0 elsewhere, or it must match). kIoError when the
// file cannot be read, kBadNpy / kUnsupportedDtype for .npy problems, kBadVectorFile otherwise.
Result<VectorSet> read_vectors(const std::string& path, VectorFormat format, std::uint32_t dim = 0);

// One JSON array per line, 9 significant digits (f32 round trips exactly).
Status write_jsonl(std::ostream& out, std::span<const float> values, std::uint32_t dim);
Status write_vectors(const std::string& path, VectorFormat format, std::span<const float> values,
                     std::uint32_t dim);

}  // namespace agp::index
