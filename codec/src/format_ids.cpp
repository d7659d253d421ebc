#include "agp/codec/format_ids.hpp"

namespace agp {

std::string_view codec_name(CodecId c) {
  switch (c) {
    case CodecId::kUnknown:
      return "unknown";
    case CodecId::kRaw:
      return "raw";
    case CodecId::kTurboQuantMse:
      return "turboquant_mse";
    case CodecId::kTurboQuantProd:
      return "turboquant_prod";
    case CodecId::kBlockAbsmaxInt8:
      return "block_absmax_int8";
    case CodecId::kBlockAbsmax4:
      return "block_absmax_4";
    case CodecId::kTurboQuantEc:
      return "turboquant_ec";
    case CodecId::kTurboQuantCal:
      return "turboquant_cal";
  }
  return "unknown";
}

std::string_view section_kind_name(SectionKind k) {
  switch (k) {
    case SectionKind::kRaw:
      return "raw";
    case SectionKind::kCodes:
      return "codes";
    case SectionKind::kNorms:
      return "norms";
    case SectionKind::kScales:
      return "scales";
    case SectionKind::kSketch:
      return "sketch";
    case SectionKind::kSketchNorms:
      return "sketch_norms";
    case SectionKind::kSideData:
      return "side_data";
  }
  return "other";
}

}  // namespace agp
