// Split-model mode of ptp-send and ptp-recv: the sender runs layers [0, split) of a checkpoint on
// evaluation windows and sends the split states; the receiver continues the model from each decoded
// state and compares its next-token predictions with the uncompressed model's.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "agp/fidelity/harness.hpp"
#include "agp/fidelity/metrics.hpp"
#include "agp/transport/link.hpp"
#include "tool_support.hpp"

namespace agp::tools {

class ModelSplit {
 public:
  // `dir`: checkpoint; `bytes`: evaluation text (byte-level token ids) cut into windows of `seq`.
  static Result<ModelSplit> open(const std::string& dir, int split, const std::string& bytes,
                                 int seq, int max_windows);
  std::size_t windows() const { return windows_.windows.size(); }
  int split() const { return split_; }
  std::uint32_t hidden() const;
  int seq() const { return static_cast<int>(windows_.windows.at(0).size()); }
  std::string model_id() const;  // the checkpoint directory's name
  // The fp32 split state of window w [seq * hidden] (layers [0, split)).
  Result<std::vector<float>> state(std::size_t w) const;
  // The fingerprint both ends derive: model id (directory name), a digest of config.json and the
  // weight files, split layer, hidden size, fp16 states, and the calibration's id if any.
  Result<ptp::Hash128> fingerprint(std::uint64_t calibration_id = 0) const;
  // Receiver: continues window w from `decoded` [seq * hidden] and accumulates the error against
  // the uncompressed run into `state` and `logits`.
  Status score(std::size_t w, const float* decoded, fidelity::StateError& state,
               fidelity::LogitError& logits);

  // "win=<w>": the tensor name a sender gives a window's state.
  static std::string tag(std::size_t w) { return "win=" + std::to_string(w); }
  static bool parse_tag(const std::string& name, std::size_t& w);

 private:
  ModelSplit() = default;
  std::string dir_;
  int split_ = 0;
  std::unique_ptr<fidelity::LlamaModel> model_;
  fidelity::Windows windows_;
  // Receiver's cache of the uncompressed run per window: split state and logits.
  std::map<std::size_t, std::pair<std::vector<float>, std::vector<float>>> reference_;
};

// LinkOptions for split-model mode: the identity's key file, the model's fingerprint.
Result<transport::LinkOptions> model_link_options(const Identity& id, const ModelSplit& m,
                                                  const std::string& tool);

}  // namespace agp::tools
