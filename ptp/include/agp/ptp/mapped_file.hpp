// A read-only memory map of a whole file (POSIX mmap; Linux and macOS).
#pragma once

#include <cstddef>
#include <span>
#include <string>

#include "agp/status.hpp"

namespace agp::ptp {

class MappedFile {
 public:
  MappedFile() = default;
  ~MappedFile();
  MappedFile(MappedFile&& o) noexcept;
  MappedFile& operator=(MappedFile&& o) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  // kIoError with the path and the system's reason when the file cannot be opened or mapped.
  static Result<MappedFile> open(const std::string& path);

  std::span<const std::byte> bytes() const { return {data_, size_}; }
  const std::string& path() const { return path_; }

 private:
  void release();
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
  std::string path_;
};

// Writes `bytes` to `path` (created or truncated); kIoError on failure.
Status write_file(const std::string& path, std::span<const std::byte> bytes);

}  // namespace agp::ptp
