// Index snapshots (index.hpp, docs/index.md). Little-endian, as on every platform we build for.
//
//   0   magic "AGPINDEX"        8 bytes
//   8   version (3; 2 is read) u32
//   12  header bytes (192)      u32
//   16  dim                     u32
//   20  bits                    u8
//   21  flags                   u8   bit 0: unbiased scores, bit 1: exact copies kept,
//                                    bit 2: centered (version 3): the norms section ends with
//                                    the mean, dim f32
//   22  section count           u16  3, or 4 with exact copies
//   24  seed                    u64
//   32  vectors                 u64
//   40  XXH3-64 of these 192 bytes with this field zero
//   48  sections, 32 bytes each: kind u32 (1 top planes, 2 lower planes, 3 norms, 4 exact),
//       zero u32, offset u64,
//       bytes u64, XXH3-64 of the section's bytes
//   then zero bytes up to 192; sections follow at 64-byte aligned offsets, zero bytes between.
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <shared_mutex>

#include "agp/index/index.hpp"
#include "agp/ptp/checksum.hpp"
#include "agp/ptp/mapped_file.hpp"
#include "index_state.hpp"

namespace agp::index {

namespace {

static_assert(std::endian::native == std::endian::little,
              "snapshots are written little-endian in place");

constexpr char kMagic[8] = {'A', 'G', 'P', 'I', 'N', 'D', 'E', 'X'};
constexpr std::uint32_t kVersion = 3;
constexpr std::uint32_t kOldestVersion = 2;  // the same layout, never centered
constexpr std::size_t kHeaderBytes = 192;
constexpr std::size_t kTableAt = 48;
constexpr std::size_t kEntryBytes = 32;
constexpr std::size_t kMaxSections = 4;
constexpr std::uint64_t kAlign = 64;
enum : std::uint32_t { kTopPlanes = 1, kLowerPlanes = 2, kNorms = 3, kExact = 4 };
constexpr const char* kSectionNames[] = {"", "top_planes", "lower_planes", "norms", "exact_f16"};
enum : std::uint8_t { kUnbiased = 1, kHasExact = 2, kCentered = 4 };

template <typename T>
void put(std::byte* at, T v) {
  std::memcpy(at, &v, sizeof v);
}
template <typename T>
T get(const std::byte* at) {
  T v;
  std::memcpy(&v, at, sizeof v);
  return v;
}

std::uint64_t aligned(std::uint64_t n) {
  return (n + kAlign - 1) / kAlign * kAlign;
}

Status bad(ErrorCode code, const std::string& path, const std::string& why) {
  return make_error(code, "index snapshot " + path + ": " + why);
}

}  // namespace

Status Index::save(const std::string& path) const {
  const State& s = *s_;
  const auto reading = s.reading();
  AGP_RETURN_IF_ERROR(s.exact_ready());  // never a fresh checksum over damaged copies
  struct Section {
    std::uint32_t kind;
    std::span<const std::byte> bytes;
  };
  // The mean travels at the end of the norms section (it is a handful of floats).
  std::vector<float> norms_and_mean(s.norms.begin(), s.norms.end());
  norms_and_mean.insert(norms_and_mean.end(), s.mean.begin(), s.mean.end());
  std::vector<Section> sections = {{kTopPlanes, std::as_bytes(s.top_planes)},
                                   {kLowerPlanes, std::as_bytes(s.lower_planes)},
                                   {kNorms, std::as_bytes(std::span(norms_and_mean))}};
  if (s.options.keep_exact) sections.push_back({kExact, std::as_bytes(s.exact)});
  std::vector<std::byte> header(kHeaderBytes);
  std::memcpy(header.data(), kMagic, sizeof kMagic);
  put<std::uint32_t>(&header[8], kVersion);
  put<std::uint32_t>(&header[12], kHeaderBytes);
  put<std::uint32_t>(&header[16], s.dim);
  put<std::uint8_t>(&header[20], static_cast<std::uint8_t>(s.options.bits));
  put<std::uint8_t>(&header[21], static_cast<std::uint8_t>((s.options.unbias ? kUnbiased : 0) |
                                                           (s.options.keep_exact ? kHasExact : 0) |
                                                           (s.mean.empty() ? 0 : kCentered)));
  put<std::uint16_t>(&header[22], static_cast<std::uint16_t>(sections.size()));
  put<std::uint64_t>(&header[24], s.options.seed);
  put<std::uint64_t>(&header[32], s.count);
  std::uint64_t offset = kHeaderBytes;
  for (std::size_t i = 0; i < sections.size(); ++i) {
    offset = aligned(offset);
    std::byte* e = &header[kTableAt + i * kEntryBytes];
    put<std::uint32_t>(e, sections[i].kind);
    put<std::uint64_t>(e + 8, offset);
    put<std::uint64_t>(e + 16, sections[i].bytes.size());
    put<std::uint64_t>(e + 24, ptp::xxh3_64(sections[i].bytes));
    offset += sections[i].bytes.size();
  }
  put<std::uint64_t>(&header[40], ptp::xxh3_64(header));
  // Only a regular file that is a snapshot already is replaced: never a device, a directory, or
  // another program's file that happens to sit at the path.
  {
    std::error_code ec;
    const auto st = std::filesystem::symlink_status(path, ec);
    if (!ec && std::filesystem::exists(st)) {
      if (!std::filesystem::is_regular_file(st)) {
        return make_error(ErrorCode::kIoError,
                          path + " exists and is not a regular file: not replacing it");
      }
      char magic[8] = {};
      std::ifstream old(path, std::ios::binary);
      old.read(magic, sizeof magic);
      if (old.gcount() > 0 && std::memcmp(magic, "AGPINDEX", 8) != 0) {
        return make_error(ErrorCode::kIoError,
                          path + " exists and is not an index snapshot: not replacing it (remove "
                                 "it first if it should go)");
      }
    }
  }
  // Written beside the target and renamed over it: a process that has the old snapshot mapped
  // keeps reading the old file, never a half-written or shorter one.
  const std::string temp = path + ".tmp-" + std::to_string(::getpid());
  std::ofstream out(temp, std::ios::binary | std::ios::trunc);
  if (!out)
    return make_error(ErrorCode::kIoError, "cannot create " + temp + ": " + std::strerror(errno));
  static const char zeros[kAlign] = {};
  std::uint64_t at = kHeaderBytes;
  out.write(reinterpret_cast<const char*>(header.data()),
            static_cast<std::streamsize>(header.size()));
  for (const Section& sec : sections) {
    out.write(zeros, static_cast<std::streamsize>(aligned(at) - at));
    at = aligned(at);
    out.write(reinterpret_cast<const char*>(sec.bytes.data()),
              static_cast<std::streamsize>(sec.bytes.size()));
    at += sec.bytes.size();
  }
  out.flush();
  const bool written = static_cast<bool>(out);
  out.close();
  std::error_code ec;
  if (!written) {
    std::filesystem::remove(temp, ec);
    return make_error(ErrorCode::kIoError, "cannot write " + path + ": " + std::strerror(errno));
  }
  std::filesystem::rename(temp, path, ec);
  if (ec) {
    std::filesystem::remove(temp, ec);
    return make_error(ErrorCode::kIoError, "cannot write " + path + ": " + ec.message());
  }
  return {};
}

Result<Index> Index::open(const std::string& path, bool verify) {
  auto mapped = ptp::MappedFile::open(path);
  if (!mapped) return mapped.status();
  auto map = std::make_shared<const ptp::MappedFile>(std::move(mapped).value());
  const std::span<const std::byte> file = map->bytes();
  return from_snapshot(file, verify, path, std::move(map));
}

Result<SnapshotInfo> Index::inspect(const std::string& path) {
  auto mapped = ptp::MappedFile::open(path);
  if (!mapped) return mapped.status();
  const std::span<const std::byte> file = mapped->bytes();
  SnapshotInfo info;
  info.file_bytes = file.size();
  info.status = from_snapshot(file, true, path, nullptr).status();
  // A header that cannot be read leaves nothing to describe.
  switch (info.status.code()) {
    case ErrorCode::kTruncated:
      if (file.size() >= kHeaderBytes) break;
      [[fallthrough]];
    case ErrorCode::kBadMagic:
    case ErrorCode::kUnsupportedVersion:
    case ErrorCode::kHeaderChecksumMismatch:
    case ErrorCode::kInvalidArgument:
      return info.status;
    default:
      break;
  }
  const std::byte* h = file.data();
  info.version = get<std::uint32_t>(h + 8);
  info.dim = get<std::uint32_t>(h + 16);
  info.bits = get<std::uint8_t>(h + 20);
  info.unbiased = (get<std::uint8_t>(h + 21) & kUnbiased) != 0;
  info.exact = (get<std::uint8_t>(h + 21) & kHasExact) != 0;
  info.centered = (get<std::uint8_t>(h + 21) & kCentered) != 0;
  info.seed = get<std::uint64_t>(h + 24);
  info.vectors = get<std::uint64_t>(h + 32);
  const std::size_t sections = std::min<std::size_t>(get<std::uint16_t>(h + 22), kMaxSections);
  for (std::size_t i = 0; i < sections; ++i) {
    const std::byte* e = h + kTableAt + i * kEntryBytes;
    SnapshotSection sec;
    const std::uint32_t kind = get<std::uint32_t>(e);
    sec.kind =
        kind >= 1 && kind <= 4 ? kSectionNames[kind] : "unknown(" + std::to_string(kind) + ")";
    sec.offset = get<std::uint64_t>(e + 8);
    sec.bytes = get<std::uint64_t>(e + 16);
    sec.checksum_ok =
        sec.offset <= file.size() && sec.bytes <= file.size() - sec.offset &&
        ptp::xxh3_64(file.subspan(sec.offset, sec.bytes)) == get<std::uint64_t>(e + 24);
    info.sections.push_back(std::move(sec));
  }
  // open() leaves the fp16 copies to their first use; inspect checks them now.
  for (const auto& sec : info.sections) {
    if (info.status && !sec.checksum_ok) {
      info.status =
          bad(ErrorCode::kSectionChecksumMismatch, path, "section " + sec.kind + " is damaged");
    }
  }
  return info;
}

Result<Index> Index::view(std::span<const std::byte> snapshot, bool verify) {
  return from_snapshot(snapshot, verify, "in memory", nullptr);
}

Result<Index> Index::from_snapshot(std::span<const std::byte> file, bool verify,
                                   const std::string& path, std::shared_ptr<const void> keep) {
  // The norms are read in place as floats: bytes from a caller must start where a float may.
  if (reinterpret_cast<std::uintptr_t>(file.data()) % alignof(float) != 0) {
    return bad(ErrorCode::kInvalidArgument, path, "the bytes do not start on a 4-byte boundary");
  }
  if (file.size() < kHeaderBytes) {
    return bad(ErrorCode::kTruncated, path,
               std::to_string(file.size()) + " bytes, shorter than its header");
  }
  const std::byte* h = file.data();
  if (std::memcmp(h, kMagic, sizeof kMagic) != 0)
    return bad(ErrorCode::kBadMagic, path, "not an index snapshot");
  const std::uint32_t version = get<std::uint32_t>(h + 8);
  if (version < kOldestVersion || version > kVersion) {
    return bad(ErrorCode::kUnsupportedVersion, path,
               "version " + std::to_string(version) + ", this build reads " +
                   std::to_string(kOldestVersion) + ".." + std::to_string(kVersion));
  }
  std::vector<std::byte> header(h, h + kHeaderBytes);
  put<std::uint64_t>(&header[40], 0);
  if (ptp::xxh3_64(header) != get<std::uint64_t>(h + 40))
    return bad(ErrorCode::kHeaderChecksumMismatch, path, "the header is damaged");
  if (get<std::uint32_t>(h + 12) != kHeaderBytes) {
    return bad(ErrorCode::kUnsupportedVersion, path,
               "a header of " + std::to_string(get<std::uint32_t>(h + 12)) + " bytes; version " +
                   std::to_string(kVersion) + "'s has " + std::to_string(kHeaderBytes));
  }
  for (std::size_t b = kTableAt + kMaxSections * kEntryBytes; b < kHeaderBytes; ++b) {
    if (h[b] != std::byte{0})
      return bad(ErrorCode::kNonZeroPadding, path, "a reserved header byte is not zero");
  }
  IndexOptions options;
  const std::uint32_t dim = get<std::uint32_t>(h + 16);
  options.bits = get<std::uint8_t>(h + 20);
  const std::uint8_t flags = get<std::uint8_t>(h + 21);
  options.unbias = (flags & kUnbiased) != 0;
  options.keep_exact = (flags & kHasExact) != 0;
  const bool centered = (flags & kCentered) != 0;
  options.center = centered;
  options.seed = get<std::uint64_t>(h + 24);
  const std::uint64_t count = get<std::uint64_t>(h + 32);
  const std::uint16_t section_count = get<std::uint16_t>(h + 22);
  const std::uint8_t known = kUnbiased | kHasExact | (version >= 3 ? kCentered : 0);
  if ((flags & ~known) != 0 || section_count != (options.keep_exact ? 4 : 3)) {
    return bad(ErrorCode::kBadSectionTable, path,
               "unknown flags or a section count that does not match them");
  }
  auto made = State::make(dim, options);
  if (!made) return bad(ErrorCode::kBadSectionTable, path, made.status().message());
  std::unique_ptr<State> s = std::move(made).value();
  // What each section must hold, with overflow ruled out first: no section can exceed the file.
  const std::uint64_t blocks = s->blocks.size();
  const std::uint64_t lower =
      std::uint64_t{s->plane} * static_cast<std::uint64_t>(options.bits - 1);
  const std::uint64_t per_vector = std::uint64_t{s->plane} + lower + blocks * 4 +
                                   (options.keep_exact ? std::uint64_t{dim} * 2 : 0);
  if (count > file.size() / per_vector) {
    return bad(ErrorCode::kSectionOutOfBounds, path,
               std::to_string(count) + " vectors cannot fit in the file");
  }
  const std::uint64_t mean_bytes = centered ? std::uint64_t{dim} * 4 : 0;
  const std::uint64_t expected[] = {count * s->plane, count * lower, count * blocks * 4 + mean_bytes,
                                    count * dim * 2};
  std::span<const std::byte> parts[4];
  std::uint64_t end_of_last = kHeaderBytes;
  for (std::size_t i = 0; i < kMaxSections; ++i) {
    const std::byte* e = h + kTableAt + i * kEntryBytes;
    if (i >= section_count) {
      for (std::size_t b = 0; b < kEntryBytes; ++b) {
        if (e[b] != std::byte{0})
          return bad(ErrorCode::kBadSectionTable, path, "an unused table entry is not zero");
      }
      continue;
    }
    const std::uint32_t kind = get<std::uint32_t>(e);
    const std::uint64_t offset = get<std::uint64_t>(e + 8);
    const std::uint64_t bytes = get<std::uint64_t>(e + 16);
    if (kind != i + 1) {
      return bad(ErrorCode::kBadSectionTable, path,
                 "table entry " + std::to_string(i) + " has kind " + std::to_string(kind) +
                     ", expected " + std::to_string(i + 1) + " (" + kSectionNames[i + 1] + ")");
    }
    const std::string name = std::string("section ") + kSectionNames[kind];
    if (get<std::uint32_t>(e + 4) != 0)
      return bad(ErrorCode::kBadSectionTable, path, name + ": a reserved field is not zero");
    if (bytes != expected[i]) {
      return bad(ErrorCode::kBadSectionTable, path,
                 name + " holds " + std::to_string(bytes) + " bytes, " + std::to_string(count) +
                     " vectors need " + std::to_string(expected[i]));
    }
    if (offset % kAlign != 0 || offset < end_of_last || offset - end_of_last >= kAlign) {
      return bad(ErrorCode::kSectionMisaligned, path, name + " is not where it belongs");
    }
    if (offset > file.size() || bytes > file.size() - offset) {
      return bad(ErrorCode::kSectionOutOfBounds, path, name + " reaches past the end");
    }
    for (std::uint64_t b = end_of_last; b < offset; ++b) {
      if (file[b] != std::byte{0})
        return bad(ErrorCode::kNonZeroPadding, path, "a padding byte is not zero");
    }
    parts[i] = file.subspan(offset, bytes);
    // The fp16 copies (four times the codes) are checked when first read, so that opening costs
    // what the codes cost (State::exact_ready).
    if (verify && kind == kExact) {
      s->exact_checksum = get<std::uint64_t>(e + 24);
      s->exact_where = path;
      s->exact_unverified = true;
    } else if (verify && ptp::xxh3_64(parts[i]) != get<std::uint64_t>(e + 24)) {
      return bad(ErrorCode::kSectionChecksumMismatch, path, name + " is damaged");
    }
    end_of_last = offset + bytes;
  }
  if (end_of_last != file.size()) {
    return bad(ErrorCode::kSectionOutOfBounds, path, "bytes after the last section");
  }
  s->count = count;
  s->top_planes = {reinterpret_cast<const std::uint8_t*>(parts[0].data()), parts[0].size()};
  s->lower_planes = {reinterpret_cast<const std::uint8_t*>(parts[1].data()), parts[1].size()};
  s->norms = {reinterpret_cast<const float*>(parts[2].data()), count * blocks};
  if (centered) {
    const float* m = reinterpret_cast<const float*>(parts[2].data()) + count * blocks;
    s->mean.assign(m, m + dim);
    // A mean of unit vectors is no longer than 1 in any coordinate.
    for (float v : s->mean) {
      if (!std::isfinite(v) || std::abs(v) > 1.0f) {
        return bad(ErrorCode::kBadEncodedData, path, "the stored mean is not that of unit vectors");
      }
    }
  }
  if (options.keep_exact)
    s->exact = {reinterpret_cast<const std::uint16_t*>(parts[3].data()), parts[3].size() / 2};
  // A norm no index writes would score vectors wrongly (checksums catch damage, not a forger).
  // A unit vector's block norm over the block's size times g (about 1) is far below 1000.
  for (float n : s->norms) {
    if (!std::isfinite(n) || n < 0 || n > 1000) {
      return bad(ErrorCode::kBadEncodedData, path,
                 "a stored norm is negative, not finite or beyond what a unit vector has");
    }
  }
  s->keep = std::move(keep);
  s->mapped = true;
  return Index(std::move(s));
}

}  // namespace agp::index
