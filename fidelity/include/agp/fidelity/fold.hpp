// Folding a calibration's basis into a Llama-family checkpoint (computational invariance, as in
// SliceGPT and QuaRot): RMSNorm weights go into the projections that read the residual stream,
// then the embeddings and every projection that reads (q, k, v, gate, up, lm_head) or writes
// (o, down) the residual stream are rotated, so the rewritten model's hidden state at every layer
// is the original's times the basis, and its logits are the original's. The calibrated codec then
// codes the state as the model hands it over, with no per-packet transform.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "agp/codec/dtype.hpp"
#include "agp/fidelity/harness.hpp"
#include "agp/fidelity/llama.hpp"
#include "agp/status.hpp"

namespace agp::fidelity {

// Writes the folded checkpoint to `out_dir` (created; must be empty or absent): config.json
// (untied embeddings, torch_dtype, "agp_calibration_id"), model.safetensors in `dtype` (f16 or
// f32: bf16 weights would cost the model about a tenth of a percent of top-1 by themselves), and
// every other regular file of `in_dir` copied. `basis` is [hidden * hidden] row-major
// (calibrate.hpp). kInvalidArgument for a basis of the wrong size, a bad dtype or a non-empty
// out_dir; the checkpoint's own errors as LlamaModel::load gives them.
Status fold_checkpoint(const std::string& in_dir, const std::vector<float>& basis,
                       const std::string& out_dir, DType dtype, std::uint64_t calibration_id);

// How closely two models agree on the windows (teacher-forced): largest logit difference, mean
// KL(a || b) in nats over positions, top-1 agreement.
struct ModelAgreement {
  double max_abs_logit_diff = 0;
  double kl_nats = 0;
  double top1_agree = 0;
  std::uint64_t positions = 0;
};
Result<ModelAgreement> compare_models(const LlamaModel& a, const LlamaModel& b,
                                      const Windows& windows);

}  // namespace agp::fidelity
