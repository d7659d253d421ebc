#include "agp/fidelity/fold.hpp"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "agp/ptp/mapped_file.hpp"
#include "agp/ptp/message.hpp"
#include "agp/ptp/safetensors.hpp"
#include "blas.hpp"
#include "weights.hpp"

namespace agp::fidelity {
namespace {

namespace fs = std::filesystem;

// c[m, n] = a[m, k] * b[k, n] (or a^T when trans_a: a is [k, m]).
std::vector<float> matmul(const std::vector<float>& a, bool trans_a, int m, int k,
                          const std::vector<float>& b, int n) {
  std::vector<float> c(static_cast<std::size_t>(m) * n);
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, CblasNoTrans, m, n, k, 1.0f,
              a.data(), trans_a ? m : k, b.data(), n, 0.0f, c.data(), n);
  return c;
}

struct Writer {
  DType dtype;
  std::vector<std::vector<std::byte>> storage;
  std::vector<ptp::SafetensorsOutput> tensors;
  void add(const std::string& name, std::vector<std::uint64_t> shape, const std::vector<float>& v) {
    std::vector<std::byte> bytes(v.size() * dtype_size(dtype));
    for (std::size_t i = 0; i < v.size(); ++i) {
      if (dtype == DType::kF32) {
        std::memcpy(bytes.data() + 4 * i, &v[i], 4);
      } else {
        const std::uint16_t h = f32_to_f16(v[i]);
        std::memcpy(bytes.data() + 2 * i, &h, 2);
      }
    }
    storage.push_back(std::move(bytes));
    tensors.push_back({name, dtype, std::move(shape), storage.back()});
  }
};

}  // namespace

Status fold_checkpoint(const std::string& in_dir, const std::vector<float>& basis,
                       const std::string& out_dir, DType dtype, std::uint64_t calibration_id) {
  if (dtype != DType::kF16 && dtype != DType::kF32) {
    return make_error(ErrorCode::kInvalidArgument, "fold: the folded weights must be f16 or f32");
  }
  auto config_text = ptp::MappedFile::open(in_dir + "/config.json");
  if (!config_text) return config_text.status();
  const std::string text(reinterpret_cast<const char*>(config_text->bytes().data()), config_text->bytes().size());
  auto cfg = LlamaConfig::parse(text);
  if (!cfg) return cfg.status();
  const int D = cfg->hidden_size, V = cfg->vocab_size, I = cfg->intermediate_size;
  const int Hq = cfg->num_heads * cfg->head_dim, Hkv = cfg->num_kv_heads * cfg->head_dim;
  if (basis.size() != static_cast<std::size_t>(D) * D) {
    return make_error(ErrorCode::kInvalidArgument, "fold: the basis is not [" + std::to_string(D) + ", " + std::to_string(D) + "]");
  }
  std::error_code ec;
  if (fs::exists(out_dir, ec) && !fs::is_empty(out_dir, ec)) {
    return make_error(ErrorCode::kInvalidArgument, "fold: " + out_dir + " exists and is not empty");
  }
  if (fs::weakly_canonical(in_dir, ec) == fs::weakly_canonical(out_dir, ec)) {
    return make_error(ErrorCode::kInvalidArgument, "fold: the output directory is the input");
  }
  auto files = ptp::SafetensorsModel::open(in_dir);
  if (!files) return files.status();
  auto load = [&](const std::string& name, std::vector<std::uint64_t> shape) -> Result<std::vector<float>> {
    const ptp::SafetensorsTensor* t = files->find(name);
    if (!t) return make_error(ErrorCode::kBadSafetensors, "missing tensor " + name);
    if (t->shape != shape || (t->dtype != DType::kBF16 && t->dtype != DType::kF16 && t->dtype != DType::kF32)) {
      return make_error(ErrorCode::kBadSafetensors, name + ": shape or dtype is not what the config implies");
    }
    std::vector<float> v;
    append_f32(*t, v);
    return v;
  };
  // W [rows, D] read through a norm weight g: (W diag(g)) * basis.
  auto fold_reader = [&](std::vector<float> w, int rows, const std::vector<float>& g) {
    for (int r = 0; r < rows; ++r) {
      for (int j = 0; j < D; ++j) w[static_cast<std::size_t>(r) * D + j] *= g[j];
    }
    return matmul(w, false, rows, D, basis, D);
  };
  const auto ud = static_cast<std::uint64_t>(D);
  Writer out{dtype, {}, {}};
  out.storage.reserve(16 + 9 * static_cast<std::size_t>(cfg->num_layers));
  auto embed = load("model.embed_tokens.weight", {static_cast<std::uint64_t>(V), ud});
  if (!embed) return embed.status();
  auto final_norm = load("model.norm.weight", {ud});
  if (!final_norm) return final_norm.status();
  auto head = cfg->tie_word_embeddings ? Result<std::vector<float>>(*embed)
                                       : load("lm_head.weight", {static_cast<std::uint64_t>(V), ud});
  if (!head) return head.status();
  const std::vector<float> ones(static_cast<std::size_t>(D), 1.0f);
  out.add("model.embed_tokens.weight", {static_cast<std::uint64_t>(V), ud}, matmul(*embed, false, V, D, basis, D));
  out.add("lm_head.weight", {static_cast<std::uint64_t>(V), ud}, fold_reader(*head, V, *final_norm));
  out.add("model.norm.weight", {ud}, ones);
  for (int i = 0; i < cfg->num_layers; ++i) {
    const std::string pre = "model.layers." + std::to_string(i) + ".";
    auto in_norm = load(pre + "input_layernorm.weight", {ud});
    auto post_norm = load(pre + "post_attention_layernorm.weight", {ud});
    if (!in_norm) return in_norm.status();
    if (!post_norm) return post_norm.status();
    struct Reader {
      const char* name;
      int rows;
      const std::vector<float>* norm;
    };
    const Reader readers[] = {{"self_attn.q_proj.weight", Hq, &*in_norm},
                              {"self_attn.k_proj.weight", Hkv, &*in_norm},
                              {"self_attn.v_proj.weight", Hkv, &*in_norm},
                              {"mlp.gate_proj.weight", I, &*post_norm},
                              {"mlp.up_proj.weight", I, &*post_norm}};
    for (const Reader& r : readers) {
      auto w = load(pre + r.name, {static_cast<std::uint64_t>(r.rows), ud});
      if (!w) return w.status();
      out.add(pre + r.name, {static_cast<std::uint64_t>(r.rows), ud}, fold_reader(std::move(*w), r.rows, *r.norm));
    }
    // Writers of the residual stream: basis^T * W.
    struct Writes {
      const char* name;
      int cols;
    };
    for (const Writes& wr : {Writes{"self_attn.o_proj.weight", Hq}, Writes{"mlp.down_proj.weight", I}}) {
      auto w = load(pre + wr.name, {ud, static_cast<std::uint64_t>(wr.cols)});
      if (!w) return w.status();
      out.add(pre + wr.name, {ud, static_cast<std::uint64_t>(wr.cols)}, matmul(basis, true, D, D, *w, wr.cols));
    }
    out.add(pre + "input_layernorm.weight", {ud}, ones);
    out.add(pre + "post_attention_layernorm.weight", {ud}, ones);
  }
  fs::create_directories(out_dir, ec);
  if (ec) return make_error(ErrorCode::kIoError, "fold: cannot create " + out_dir + ": " + ec.message());
  AGP_RETURN_IF_ERROR(ptp::write_safetensors(out_dir + "/model.safetensors", out.tensors,
                                             {{"format", "pt"}}));
  nlohmann::ordered_json config = nlohmann::ordered_json::parse(text, nullptr, false);
  if (config.is_discarded()) return make_error(ErrorCode::kInvalidArgument, "fold: config.json is not JSON");
  config["tie_word_embeddings"] = false;
  config["torch_dtype"] = dtype == DType::kF16 ? "float16" : "float32";
  config["agp_calibration_id"] = ptp::to_hex(calibration_id);
  const std::string config_out = config.dump(1) + "\n";
  AGP_RETURN_IF_ERROR(ptp::write_file(out_dir + "/config.json", std::as_bytes(std::span(config_out.data(), config_out.size()))));
  // Everything else (tokenizer, generation config, ...) as it is; not the old weights.
  for (const auto& e : fs::directory_iterator(in_dir, ec)) {
    const std::string name = e.path().filename().string();
    if (!e.is_regular_file() || name == "config.json" || e.path().extension() == ".safetensors" ||
        name == "model.safetensors.index.json") {
      continue;
    }
    fs::copy_file(e.path(), fs::path(out_dir) / name, fs::copy_options::overwrite_existing, ec);
    if (ec) return make_error(ErrorCode::kIoError, "fold: cannot copy " + name + ": " + ec.message());
  }
  return Status::ok();
}

Result<ModelAgreement> compare_models(const LlamaModel& a, const LlamaModel& b, const Windows& windows) {
  const int V = a.config().vocab_size, Da = a.config().hidden_size, Db = b.config().hidden_size;
  if (b.config().vocab_size != V) return make_error(ErrorCode::kInvalidArgument, "the models have different vocabularies");
  ModelAgreement m;
  double kl_sum = 0;
  std::uint64_t agree = 0;
  for (const auto& w : windows.windows) {
    const int T = static_cast<int>(w.size());
    std::vector<float> xa(static_cast<std::size_t>(T) * Da), xb(static_cast<std::size_t>(T) * Db);
    std::vector<float> la(static_cast<std::size_t>(T) * V), lb(static_cast<std::size_t>(T) * V);
    AGP_RETURN_IF_ERROR(a.embed(w, xa.data()));
    AGP_RETURN_IF_ERROR(b.embed(w, xb.data()));
    KvCache ca = a.new_cache(), cb = b.new_cache();
    AGP_RETURN_IF_ERROR(a.run_layers(0, a.config().num_layers, xa.data(), T, ca));
    AGP_RETURN_IF_ERROR(b.run_layers(0, b.config().num_layers, xb.data(), T, cb));
    a.head(xa.data(), T, la.data());
    b.head(xb.data(), T, lb.data());
    for (int t = 0; t < T; ++t) {
      const float* pa = la.data() + static_cast<std::size_t>(t) * V;
      const float* pb = lb.data() + static_cast<std::size_t>(t) * V;
      double ma = pa[0], mb = pb[0];
      int ta = 0, tb = 0;
      for (int v = 0; v < V; ++v) {
        m.max_abs_logit_diff = std::max(m.max_abs_logit_diff, std::abs(static_cast<double>(pa[v]) - pb[v]));
        if (pa[v] > pa[ta]) ta = v;
        if (pb[v] > pb[tb]) tb = v;
        ma = std::max(ma, static_cast<double>(pa[v]));
        mb = std::max(mb, static_cast<double>(pb[v]));
      }
      double za = 0, zb = 0;
      for (int v = 0; v < V; ++v) {
        za += std::exp(pa[v] - ma);
        zb += std::exp(pb[v] - mb);
      }
      double kl = 0;
      for (int v = 0; v < V; ++v) {
        const double lpa = pa[v] - ma - std::log(za), lpb = pb[v] - mb - std::log(zb);
        kl += std::exp(lpa) * (lpa - lpb);
      }
      kl_sum += kl;
      agree += ta == tb;
      ++m.positions;
    }
  }
  if (m.positions) {
    m.kl_nats = kl_sum / static_cast<double>(m.positions);
    m.top1_agree = static_cast<double>(agree) / static_cast<double>(m.positions);
  }
  return m;
}

}  // namespace agp::fidelity
