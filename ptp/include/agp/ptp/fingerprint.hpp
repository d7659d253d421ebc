// Model fingerprints: a 128-bit name for "the same model, weights, split point and codec family",
// carried in every tensor packet and checked by the receiver before it decodes anything.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "agp/codec/dtype.hpp"
#include "agp/ptp/message.hpp"
#include "agp/status.hpp"

namespace agp::ptp {

struct FingerprintInput {
  std::string_view model_id;                  // e.g. "devmodel" or a Hugging Face repo id
  std::span<const std::byte> weights_digest;  // host-supplied digest of the weights (any length)
  std::int32_t split_layer = -1;
  std::uint64_t hidden_size = 0;
  DType dtype = DType::kF16;               // dtype of the split state
  std::uint32_t codec_family_version = 1;  // bumped when the codec's math changes
  // The calibration (its id) the ends code with, or 0: ends holding different calibrations
  // have different fingerprints, so their handshake fails before any packet.
  std::uint64_t calibration_id = 0;
};

// XXH3-128 (seed 0) over the canonical encoding of `in` specified in docs/ptp_format.md
// ("Model fingerprint"): stable across platforms and releases.
Hash128 model_fingerprint(const FingerprintInput& in);

// A checkpoint directory's model id: its name ("models/llama/" and "models/llama" give "llama").
std::string checkpoint_model_id(const std::string& dir);

// The fingerprint of a Hugging Face checkpoint directory split at `split_layer`: model id = the
// directory's name, weights digest = XXH3-64 over config.json and then every *.safetensors file
// in name order. Every host of a split (ptp-send/ptp-recv --model, the examples, the Python
// module) derives it the same way, so two ends agree exactly when they load the same files.
// kIoError when config.json or a weight file cannot be read.
// With a calibration (ptp-calibrate), its id enters too (FingerprintInput::calibration_id).
Result<Hash128> checkpoint_fingerprint(const std::string& dir, std::int32_t split_layer,
                                       std::uint64_t hidden_size, DType dtype = DType::kF16,
                                       std::uint64_t calibration_id = 0);

}  // namespace agp::ptp
