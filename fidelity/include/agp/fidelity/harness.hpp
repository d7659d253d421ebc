// The continuation-fidelity harness: runs a Llama-family model with its hidden state at a split
// layer passed through a codec, and measures what that does to the model's predictions, teacher-
// forced over evaluation windows and free-running in greedy continuations.
#pragma once

#include <string>
#include <vector>

#include "agp/fidelity/llama.hpp"
#include "agp/fidelity/split_codec.hpp"

namespace agp::fidelity {

// Token windows: raw bytes as byte-level token ids (`from_bytes`), or a .npy of int32/int64/uint8
// token ids shaped [windows, tokens] or [tokens] (`from_npy`), cut into windows of `length`.
struct Windows {
  std::vector<std::vector<int>> windows;
  static Result<Windows> from_bytes(const std::string& path, int length, int max_windows);
  static Result<Windows> from_npy(const std::string& path, int length, int max_windows);
};

struct TeacherForced {
  std::string codec;
  double bits_per_value = 0;
  double rel_mse = 0, cosine = 0, max_abs = 0, snr_db = 0;
  double kl_nats = 0, top1_agree = 0, top5_overlap = 0;
  std::uint64_t positions = 0;
  double seconds = 0;
};

struct Greedy {
  std::string codec;
  double token_agree = 0;        // share of generated tokens equal to the uncompressed run's
  double mean_prefix_match = 0;  // mean generated tokens before the first difference
  std::uint64_t tokens = 0;
  double seconds = 0;
};

class Harness {
 public:
  // Runs the uncompressed model over `windows` once, keeping the split states and the reference
  // next-token logits. `split` in [1, num_layers - 1].
  static Result<Harness> prepare(const LlamaModel& model, int split, Windows windows);

  Result<TeacherForced> teacher_forced(const SplitCodec& codec) const;
  // Greedy continuation of `prompts` prompts (the first `prompt_len` tokens of the first windows),
  // `generate` new tokens each; every position's split state (the prompt's, then each new
  // token's) goes through the codec, as a pipelined host would send them.
  Result<Greedy> greedy(const SplitCodec& codec, int prompts, int prompt_len, int generate) const;

  int split() const { return split_; }
  std::size_t window_count() const { return windows_.windows.size(); }

 private:
  Harness(const LlamaModel& model, int split, Windows w)
      : model_(&model), split_(split), windows_(std::move(w)) {}
  Result<std::vector<int>> generate_tokens(const SplitCodec* codec, const std::vector<int>& prompt,
                                           int generate) const;
  const LlamaModel* model_;
  int split_;
  Windows windows_;
  std::vector<std::vector<float>> states_;  // per window: split state [tokens * hidden]
  std::vector<std::vector<float>> logits_;  // per window: reference logits [tokens * vocab]
};

}  // namespace agp::fidelity
