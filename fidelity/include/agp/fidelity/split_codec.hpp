// What happens to the hidden state at the split: one of the project's packet codecs (the state is
// cast to fp16 as a host would send it, encoded, framed, parsed and decoded exactly as over the
// wire), the state as an uncompressed fp32 reference, or one of the simple reference quantizers the
// devmodel fixture defines (so its reference.json can be reproduced).
#pragma once

#include <memory>
#include <optional>
#include <vector>
#include <string>

#include "agp/ptp/tensor_packet.hpp"
#include "agp/status.hpp"

namespace agp::fidelity {

class SplitCodec {
 public:
  // Packet codec names as ptp::parse_packet_codec spells them ("raw" is fp16), "none" (the fp32
  // state untouched), or the fixture's reference quantizers: "ref-int8-b64" (blocks of 64, fp16
  // absmax scale, symmetric int8), "ref-q4-b32" (blocks of 32, 4-bit), "ref-q3-b32" (3-bit).
  static Result<SplitCodec> parse(const std::string& name);

  const std::string& name() const { return name_; }
  // Passes x[vectors * dim] (row-major, one vector per row) through the codec in place and
  // returns the bits per value it used: packet codecs count the whole frame (prefix, header,
  // sections, padding), the reference quantizers their codes and scales.
  Result<double> apply(float* x, std::uint64_t vectors, std::uint32_t dim) const;
  // Nominal bit width (for sorting tables): the codec's bits, 16 for raw, 32 for none.
  double nominal_bits() const;
  // The calibration a calibrated codec ("cal4") codes with, and the basis it was computed in
  // ([dim * dim], calibrate.hpp): the state is taken into the basis before coding and back after,
  // which is what a checkpoint folded into that basis does exactly. No basis: the state is coded
  // as it is (a folded checkpoint's state).
  void set_calibration(std::shared_ptr<const codec::Calibration> calibration,
                       std::shared_ptr<const std::vector<float>> basis);
  // Whether this is a calibrated codec (cal2..cal8), the only ones a calibration applies to.
  bool calibrated() const {
    return kind_ == Kind::kPacket && packet_.config.id == CodecId::kTurboQuantCal;
  }

 private:
  enum class Kind { kNone, kPacket, kInt8Block64, kQ4Block32, kQ3Block32 };
  std::string name_;
  Kind kind_ = Kind::kNone;
  ptp::PacketCodec packet_;
  std::shared_ptr<const std::vector<float>> basis_;
};

}  // namespace agp::fidelity
