#include <algorithm>
#include <cmath>
#include <cstring>

#include "agp/codec/dtype.hpp"
#include "agp/fidelity/llama.hpp"
#include "agp/ptp/mapped_file.hpp"
#include "agp/ptp/safetensors.hpp"
#include "blas.hpp"
#include "weights.hpp"

namespace agp::fidelity {

struct LlamaModel::Impl {
  struct Layer {
    std::vector<float> input_norm, post_norm;
    std::vector<float> qkv;      // [(heads + 2 kv_heads) * head_dim, hidden]: q, k, v stacked
    std::vector<float> o;        // [hidden, heads * head_dim]
    std::vector<float> gate_up;  // [2 * intermediate, hidden]: gate, up stacked
    std::vector<float> down;     // [hidden, intermediate]
  };
  LlamaConfig cfg;
  std::vector<float> embed;       // [vocab, hidden]
  std::vector<float> final_norm;  // [hidden]
  std::vector<float> lm_head;     // [vocab, hidden] (a copy of embed when tied)
  std::vector<Layer> layers;
  std::vector<float> inv_freq;  // [head_dim / 2]

  void rms_norm(const float* x, const std::vector<float>& w, int positions, float* out) const;
  void rope(float* row, int heads, int position) const;
};

namespace {

struct Loader {
  const ptp::SafetensorsModel& files;
  Result<const ptp::SafetensorsTensor*> find(const std::string& name,
                                             std::vector<std::uint64_t> shape) const {
    const ptp::SafetensorsTensor* t = files.find(name);
    auto shape_text = [](const std::vector<std::uint64_t>& s) {
      std::string out = "[";
      for (std::size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
      return out + "]";
    };
    if (!t) return make_error(ErrorCode::kBadSafetensors, "missing tensor " + name);
    if (t->dtype != DType::kBF16 && t->dtype != DType::kF16 && t->dtype != DType::kF32) {
      return make_error(ErrorCode::kUnsupportedDtype,
                        name + ": dtype " + t->dtype_name + " (expected BF16, F16 or F32)");
    }
    if (t->shape != shape) {
      return make_error(
          ErrorCode::kBadSafetensors,
          name + ": shape " + shape_text(t->shape) + ", the config implies " + shape_text(shape));
    }
    return t;
  }
  Status load(const std::string& name, std::vector<std::uint64_t> shape,
              std::vector<float>& out) const {
    auto t = find(name, std::move(shape));
    if (!t) return t.status();
    append_f32(**t, out);
    return {};
  }
};

void matmul_t(const float* x, int rows, int in, const float* w, int out, float* y) {
  // y[rows, out] = x[rows, in] * w[out, in]^T
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, out, in, 1.0f, x, in, w, in, 0.0f, y,
              out);
}

}  // namespace

LlamaModel::LlamaModel() : impl_(std::make_unique<Impl>()) {}
LlamaModel::LlamaModel(LlamaModel&&) noexcept = default;
LlamaModel& LlamaModel::operator=(LlamaModel&&) noexcept = default;
LlamaModel::~LlamaModel() = default;

const LlamaConfig& LlamaModel::config() const {
  return impl_->cfg;
}

KvCache LlamaModel::new_cache() const {
  KvCache c;
  c.reset(impl_->cfg.num_layers);
  return c;
}

Result<LlamaModel> LlamaModel::load(const std::string& dir) {
  auto cfg_file = ptp::MappedFile::open(dir + "/config.json");
  if (!cfg_file) return cfg_file.status();
  const auto bytes = cfg_file->bytes();
  auto cfg =
      LlamaConfig::parse(std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
  if (!cfg) return cfg.status();
  auto files = ptp::SafetensorsModel::open(dir);
  if (!files) return files.status();
  LlamaModel m;
  Impl& p = *m.impl_;
  p.cfg = *cfg;
  const auto D = static_cast<std::uint64_t>(cfg->hidden_size);
  const auto I = static_cast<std::uint64_t>(cfg->intermediate_size);
  const auto V = static_cast<std::uint64_t>(cfg->vocab_size);
  const auto H = static_cast<std::uint64_t>(cfg->num_heads);
  const auto KV = static_cast<std::uint64_t>(cfg->num_kv_heads);
  const auto hd = static_cast<std::uint64_t>(cfg->head_dim);
  const Loader l{*files};
  AGP_RETURN_IF_ERROR(l.load("model.embed_tokens.weight", {V, D}, p.embed));
  AGP_RETURN_IF_ERROR(l.load("model.norm.weight", {D}, p.final_norm));
  if (cfg->tie_word_embeddings) {
    p.lm_head = p.embed;
  } else {
    AGP_RETURN_IF_ERROR(l.load("lm_head.weight", {V, D}, p.lm_head));
  }
  for (int i = 0; i < cfg->num_layers; ++i) {
    const std::string pre = "model.layers." + std::to_string(i) + ".";
    Impl::Layer L;
    AGP_RETURN_IF_ERROR(l.load(pre + "input_layernorm.weight", {D}, L.input_norm));
    AGP_RETURN_IF_ERROR(l.load(pre + "post_attention_layernorm.weight", {D}, L.post_norm));
    AGP_RETURN_IF_ERROR(l.load(pre + "self_attn.q_proj.weight", {H * hd, D}, L.qkv));
    AGP_RETURN_IF_ERROR(l.load(pre + "self_attn.k_proj.weight", {KV * hd, D}, L.qkv));
    AGP_RETURN_IF_ERROR(l.load(pre + "self_attn.v_proj.weight", {KV * hd, D}, L.qkv));
    AGP_RETURN_IF_ERROR(l.load(pre + "self_attn.o_proj.weight", {D, H * hd}, L.o));
    AGP_RETURN_IF_ERROR(l.load(pre + "mlp.gate_proj.weight", {I, D}, L.gate_up));
    AGP_RETURN_IF_ERROR(l.load(pre + "mlp.up_proj.weight", {I, D}, L.gate_up));
    AGP_RETURN_IF_ERROR(l.load(pre + "mlp.down_proj.weight", {D, I}, L.down));
    p.layers.push_back(std::move(L));
  }
  p.inv_freq.resize(hd / 2);
  for (std::uint64_t i = 0; i < hd / 2; ++i) {
    p.inv_freq[i] = static_cast<float>(
        1.0 / std::pow(cfg->rope_theta, static_cast<double>(2 * i) / static_cast<double>(hd)));
  }
  return m;
}

void LlamaModel::Impl::rms_norm(const float* x, const std::vector<float>& w, int positions,
                                float* out) const {
  const int D = cfg.hidden_size;
  for (int t = 0; t < positions; ++t) {
    const float* r = x + static_cast<std::size_t>(t) * D;
    double ss = 0;
    for (int j = 0; j < D; ++j) ss += static_cast<double>(r[j]) * r[j];
    const float inv = static_cast<float>(1.0 / std::sqrt(ss / D + cfg.rms_norm_eps));
    float* o = out + static_cast<std::size_t>(t) * D;
    for (int j = 0; j < D; ++j) o[j] = w[static_cast<std::size_t>(j)] * (r[j] * inv);
  }
}

void LlamaModel::Impl::rope(float* row, int heads, int position) const {
  const int hd = cfg.head_dim, half = hd / 2;
  for (int i = 0; i < half; ++i) {
    const double angle = static_cast<double>(position) * inv_freq[static_cast<std::size_t>(i)];
    const auto c = static_cast<float>(std::cos(angle)), s = static_cast<float>(std::sin(angle));
    for (int h = 0; h < heads; ++h) {
      float* q = row + static_cast<std::size_t>(h) * hd;
      const float a = q[i], b = q[i + half];
      q[i] = a * c - b * s;
      q[i + half] = b * c + a * s;
    }
  }
}

Status LlamaModel::embed(std::span<const int> tokens, float* x) const {
  const LlamaConfig& c = impl_->cfg;
  for (std::size_t t = 0; t < tokens.size(); ++t) {
    if (tokens[t] < 0 || tokens[t] >= c.vocab_size) {
      return make_error(ErrorCode::kInvalidArgument, "token id " + std::to_string(tokens[t]) +
                                                         " at position " + std::to_string(t) +
                                                         " is outside the vocabulary of " +
                                                         std::to_string(c.vocab_size));
    }
    std::memcpy(x + t * static_cast<std::size_t>(c.hidden_size),
                impl_->embed.data() + static_cast<std::size_t>(tokens[t]) * c.hidden_size,
                sizeof(float) * static_cast<std::size_t>(c.hidden_size));
  }
  return {};
}

Status LlamaModel::run_layers(int first, int last, float* x, int T, KvCache& cache) const {
  const Impl& p = *impl_;
  const LlamaConfig& c = p.cfg;
  if (first < 0 || last > c.num_layers || first > last || T <= 0) {
    return make_error(ErrorCode::kInvalidArgument, "layers [" + std::to_string(first) + ", " +
                                                       std::to_string(last) + ") of " +
                                                       std::to_string(c.num_layers));
  }
  if (static_cast<int>(cache.length.size()) != c.num_layers) cache.reset(c.num_layers);
  const int D = c.hidden_size, H = c.num_heads, KV = c.num_kv_heads, hd = c.head_dim;
  const int I = c.intermediate_size, qkv_w = (H + 2 * KV) * hd, group = H / KV;
  const auto sz = [](int a, int b) {
    return static_cast<std::size_t>(a) * static_cast<std::size_t>(b);
  };
  std::vector<float> h(sz(T, D)), qkv(sz(T, qkv_w)), attn(sz(T, H * hd)), proj(sz(T, D));
  std::vector<float> gu(sz(T, 2 * I)), act(sz(T, I));
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  for (int li = first; li < last; ++li) {
    const Impl::Layer& L = p.layers[static_cast<std::size_t>(li)];
    const int start = cache.length[static_cast<std::size_t>(li)];
    if (start + T > c.max_position_embeddings) {
      return make_error(ErrorCode::kInvalidArgument, "position " + std::to_string(start + T) +
                                                         " is beyond the model's " +
                                                         std::to_string(c.max_position_embeddings));
    }
    const int P = start + T;
    p.rms_norm(x, L.input_norm, T, h.data());
    matmul_t(h.data(), T, D, L.qkv.data(), qkv_w, qkv.data());
    auto& kc = cache.k[static_cast<std::size_t>(li)];
    auto& vc = cache.v[static_cast<std::size_t>(li)];
    kc.resize(sz(P, KV * hd));
    vc.resize(sz(P, KV * hd));
    for (int t = 0; t < T; ++t) {
      float* row = qkv.data() + sz(t, qkv_w);
      p.rope(row, H, start + t);            // q
      p.rope(row + H * hd, KV, start + t);  // k
      std::memcpy(kc.data() + sz(start + t, KV * hd), row + H * hd, sizeof(float) * sz(KV, hd));
      std::memcpy(vc.data() + sz(start + t, KV * hd), row + (H + KV) * hd,
                  sizeof(float) * sz(KV, hd));
    }
    std::vector<float> scores(sz(T, P));
    for (int head = 0; head < H; ++head) {
      const int kvh = head / group;
      // scores[T, P] = q_h[T, hd] * k_h[P, hd]^T
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, P, hd, scale,
                  qkv.data() + sz(head, hd), qkv_w, kc.data() + sz(kvh, hd), KV * hd, 0.0f,
                  scores.data(), P);
      for (int t = 0; t < T; ++t) {  // causal softmax: position start + t sees 0..start + t
        float* s = scores.data() + sz(t, P);
        const int visible = start + t + 1;
        float mx = s[0];
        for (int j = 1; j < visible; ++j) mx = std::max(mx, s[j]);
        double sum = 0;
        for (int j = 0; j < visible; ++j) {
          s[j] = std::exp(s[j] - mx);
          sum += s[j];
        }
        const auto inv = static_cast<float>(1.0 / sum);
        for (int j = 0; j < visible; ++j) s[j] *= inv;
        for (int j = visible; j < P; ++j) s[j] = 0.0f;
      }
      // attn_h[T, hd] = scores[T, P] * v_h[P, hd]
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, P, 1.0f, scores.data(), P,
                  vc.data() + sz(kvh, hd), KV * hd, 0.0f, attn.data() + sz(head, hd), H * hd);
    }
    matmul_t(attn.data(), T, H * hd, L.o.data(), D, proj.data());
    for (std::size_t i = 0; i < sz(T, D); ++i) x[i] += proj[i];
    p.rms_norm(x, L.post_norm, T, h.data());
    matmul_t(h.data(), T, D, L.gate_up.data(), 2 * I, gu.data());
    for (int t = 0; t < T; ++t) {
      const float* g = gu.data() + sz(t, 2 * I);
      float* a = act.data() + sz(t, I);
      for (int j = 0; j < I; ++j) a[j] = g[j] / (1.0f + std::exp(-g[j])) * g[I + j];
    }
    matmul_t(act.data(), T, I, L.down.data(), D, proj.data());
    for (std::size_t i = 0; i < sz(T, D); ++i) x[i] += proj[i];
    cache.length[static_cast<std::size_t>(li)] = P;
  }
  return {};
}

void LlamaModel::head(const float* x, int T, float* logits) const {
  const Impl& p = *impl_;
  const int D = p.cfg.hidden_size;
  std::vector<float> h(static_cast<std::size_t>(T) * static_cast<std::size_t>(D));
  p.rms_norm(x, p.final_norm, T, h.data());
  matmul_t(h.data(), T, D, p.lm_head.data(), p.cfg.vocab_size, logits);
}

}  // namespace agp::fidelity
