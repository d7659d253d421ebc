// A reference CPU implementation of Hugging Face Llama-family decoders (LlamaForCausalLM): the
// model the fidelity harness splits. fp32 arithmetic with BLAS sgemm; bf16, fp16 or fp32 weights
// (converted to fp32 when loaded); grouped-query attention; RoPE in the rotate-half convention;
// RMSNorm; SwiGLU MLP; tied or untied lm_head. Positions can be fed in pieces with a key/value
// cache, so a split host can run layers [0, L) on one side and [L, N) on the other, token by token.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "agp/status.hpp"

namespace agp::fidelity {

struct LlamaConfig {
  int hidden_size = 0;
  int intermediate_size = 0;
  int num_layers = 0;
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int vocab_size = 0;
  int max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  bool tie_word_embeddings = false;

  // Parses and checks a config.json text (model_type llama or mistral-like fields; head_dim
  // defaults to hidden_size / num_attention_heads; rope_scaling is refused). kInvalidArgument
  // naming the bad field.
  static Result<LlamaConfig> parse(const std::string& json_text);
};

// Keys and values of past positions, per layer.
struct KvCache {
  std::vector<std::vector<float>> k, v;  // [layer][position * kv_heads * head_dim]
  std::vector<int> length;               // positions cached per layer
  void reset(int layers);
};

class LlamaModel {
 public:
  // `dir` holds config.json and model.safetensors or a sharded model.safetensors.index.json.
  // Every tensor the config implies is checked for presence, dtype (bf16/f16/f32) and shape.
  static Result<LlamaModel> load(const std::string& dir);
  LlamaModel(LlamaModel&&) noexcept;
  LlamaModel& operator=(LlamaModel&&) noexcept;
  ~LlamaModel();

  const LlamaConfig& config() const;

  // Token embeddings of `tokens` into x[T * hidden]. kInvalidArgument for ids outside the vocab.
  Status embed(std::span<const int> tokens, float* x) const;
  // Layers [first, last) on x[T * hidden] in place, for the T positions after those already in
  // `cache` for layer `first` (the cache grows by T for each of those layers).
  Status run_layers(int first, int last, float* x, int positions, KvCache& cache) const;
  // Final RMSNorm and lm_head: logits[T * vocab].
  void head(const float* x, int positions, float* logits) const;
  // A cache sized for this model's layers.
  KvCache new_cache() const;

 private:
  LlamaModel();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace agp::fidelity
