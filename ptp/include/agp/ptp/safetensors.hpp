// Safetensors checkpoints: read by mmap, by mmap, with strict validation of headers and offsets:
// a single `.safetensors` file, a sharded `model.safetensors.index.json`, or a directory that holds
// either (`model.safetensors.index.json` is preferred when both exist).
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "agp/codec/dtype.hpp"
#include "agp/ptp/mapped_file.hpp"
#include "agp/status.hpp"

namespace agp::ptp {

struct SafetensorsTensor {
  std::string name;
  std::string dtype_name;            // as in the file: "BF16", "F32", "I64", ...
  DType dtype = DType::kUnknown;     // kUnknown for valid dtypes this library does not compute on
  std::vector<std::uint64_t> shape;  // empty for a scalar
  std::span<const std::byte> data;   // exactly element_count * element size bytes
  std::size_t file_index = 0;        // which shard
};

// Parses one safetensors file image. Every tensor's dtype, shape and data_offsets are checked:
// offsets in bounds, byte length equal to shape x element size, tensors contiguous and
// non-overlapping, covering the whole data area (the format's rules). kBadSafetensors otherwise.
Result<std::vector<SafetensorsTensor>> parse_safetensors(
    std::span<const std::byte> bytes, std::map<std::string, std::string>* metadata = nullptr);

// One tensor to write: its bytes are shape x dtype size, C order.
struct SafetensorsOutput {
  std::string name;
  DType dtype = DType::kF32;  // f16, bf16 or f32
  std::vector<std::uint64_t> shape;
  std::span<const std::byte> data;
};

// Writes a safetensors file (tensors in name order, metadata as string pairs). kInvalidArgument
// for a tensor whose bytes do not match its shape; kIoError when the file cannot be written.
Status write_safetensors(const std::string& path, std::vector<SafetensorsOutput> tensors,
                         const std::map<std::string, std::string>& metadata = {});

class SafetensorsModel {
 public:
  // `path`: a .safetensors file, a *.safetensors.index.json, or a directory holding
  // model.safetensors.index.json or model.safetensors.
  static Result<SafetensorsModel> open(const std::string& path);

  // Sorted by name.
  const std::vector<SafetensorsTensor>& tensors() const { return tensors_; }
  const SafetensorsTensor* find(std::string_view name) const;
  // __metadata__ of the (first) file, or "metadata" of the index, as strings.
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::vector<std::string>& files() const { return paths_; }

 private:
  std::vector<MappedFile> files_;
  std::vector<std::string> paths_;
  std::vector<SafetensorsTensor> tensors_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace agp::ptp
