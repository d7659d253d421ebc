// Identifiers shared by the codec and the wire format. Values match schemas/ptp.fbs and never
// change.
#pragma once

#include <cstdint>
#include <string_view>

namespace agp {

enum class CodecId : std::uint16_t {
  kUnknown = 0,
  kRaw = 1,  // the source tensor bytes, or a conversion to another float dtype
  kTurboQuantMse = 2,
  kTurboQuantProd = 3,
  kBlockAbsmaxInt8 = 4,
  kBlockAbsmax4 = 5,
  kTurboQuantEc = 6,  // the high-fidelity mode: mean removal, rotation, entropy-coded levels
  kTurboQuantCal = 7,  // calibrated: a model's basis and mean, entropy-coded, chunkable
};

enum class RotationKind : std::uint8_t { kNone = 0, kWalshHadamard = 1, kBlockWalshHadamard = 2 };
enum class LosslessKind : std::uint8_t { kNone = 0, kZstd = 1 };

// The parts of an encoded tensor; each travels as one frame section of the same kind.
enum class SectionKind : std::uint16_t {
  kRaw = 1,
  kCodes = 2,
  kNorms = 3,
  kScales = 4,
  kSketch = 5,
  kSketchNorms = 6,
  kSideData = 7,
};

std::string_view codec_name(CodecId c);
std::string_view section_kind_name(SectionKind k);  // "other" for kinds this build lacks

}  // namespace agp
