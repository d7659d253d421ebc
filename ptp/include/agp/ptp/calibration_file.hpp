// Calibration files: what the calibrated codec needs for one model and split (the mean, the
// component groups), with a description of where it came from, versioned and checksummed.
// Layout (little-endian; docs/codec.md, "Calibration files"):
//   "AGPCAL\r\n", u32 version (1), u32 dim, u32 groups, u32 info bytes,
//   f32 mean[dim], f32 scale[dim], u32 group_starts[groups], info (UTF-8 JSON), u64 XXH3-64 of
//   everything before it.
// The checksum is the calibration's id: chunks name it, and it enters the model fingerprint.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "agp/codec/calibrated.hpp"
#include "agp/status.hpp"

namespace agp::ptp {

struct CalibrationFile {
  codec::Calibration calibration;  // calibration.id is the file's checksum
  std::string info;                // JSON: model, split, calibration text, vectors, basis
};

constexpr std::uint32_t kCalibrationVersion = 1;
constexpr std::uint64_t kMaxCalibrationDim = 1u << 20;

// The file's bytes; sets file.calibration.id to their checksum.
std::vector<std::byte> serialize_calibration(CalibrationFile& file);
// kBadCalibration naming what is wrong (magic, version, sizes, checksum, fields, UTF-8).
Result<CalibrationFile> parse_calibration(std::span<const std::byte> bytes);
Result<CalibrationFile> read_calibration(const std::string& path);
Status write_calibration(const std::string& path, CalibrationFile& file);

}  // namespace agp::ptp
