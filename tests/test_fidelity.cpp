// The fidelity harness: the reference forward pass against a naive implementation written here,
// on tiny models this test generates and saves (three weight dtypes, single-file and sharded,
// tied and untied head), checkpoint validation errors, and, when the devmodel fixture is present,
// reproduction of its reference.json.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include "agp/codec/dtype.hpp"
#include "agp/fidelity/calibrate.hpp"
#include "agp/fidelity/fold.hpp"
#include "agp/fidelity/harness.hpp"
#include "agp/fidelity/llama.hpp"

namespace agp::fidelity {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

struct Tiny {
  int hidden = 12, inter = 20, layers = 3, heads = 4, kv = 2, hd = 4, vocab = 11;
  double eps = 1e-5, theta = 500.0;
  bool tied = false;
  // Weights as the checkpoint stores them, already rounded to its dtype.
  std::map<std::string, std::pair<std::vector<std::uint64_t>, std::vector<float>>> w;
};

float round_to(float v, DType d) {
  if (d == DType::kF16) return f16_to_f32(f32_to_f16(v));
  if (d == DType::kBF16) return bf16_to_f32(f32_to_bf16(v));
  return v;
}

Tiny make_tiny(DType dtype, bool tied, unsigned seed) {
  Tiny t;
  t.tied = tied;
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.0f, 0.35f);
  auto add = [&](const std::string& name, std::vector<std::uint64_t> shape, bool norm = false) {
    std::uint64_t count = 1;
    for (auto d : shape) count *= d;
    std::vector<float> v(count);
    for (auto& x : v) x = round_to(norm ? 1.0f + 0.2f * n(rng) : n(rng), dtype);
    t.w[name] = {shape, v};
  };
  const auto D = static_cast<std::uint64_t>(t.hidden), I = static_cast<std::uint64_t>(t.inter);
  const auto V = static_cast<std::uint64_t>(t.vocab), H = static_cast<std::uint64_t>(t.heads);
  const auto KV = static_cast<std::uint64_t>(t.kv), hd = static_cast<std::uint64_t>(t.hd);
  add("model.embed_tokens.weight", {V, D});
  add("model.norm.weight", {D}, true);
  if (!tied) add("lm_head.weight", {V, D});
  for (int l = 0; l < t.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "input_layernorm.weight", {D}, true);
    add(p + "post_attention_layernorm.weight", {D}, true);
    add(p + "self_attn.q_proj.weight", {H * hd, D});
    add(p + "self_attn.k_proj.weight", {KV * hd, D});
    add(p + "self_attn.v_proj.weight", {KV * hd, D});
    add(p + "self_attn.o_proj.weight", {D, H * hd});
    add(p + "mlp.gate_proj.weight", {I, D});
    add(p + "mlp.up_proj.weight", {I, D});
    add(p + "mlp.down_proj.weight", {D, I});
  }
  return t;
}

std::string dtype_tag(DType d) {
  return d == DType::kF32 ? "F32" : d == DType::kF16 ? "F16" : "BF16";
}

void write_safetensors(const fs::path& path, const Tiny& t, const std::vector<std::string>& names,
                       DType dtype) {
  json header = json::object();
  std::vector<char> data;
  for (const auto& name : names) {
    const auto& [shape, values] = t.w.at(name);
    const std::size_t begin = data.size();
    for (float v : values) {
      if (dtype == DType::kF32) {
        const char* b = reinterpret_cast<const char*>(&v);
        data.insert(data.end(), b, b + 4);
      } else {
        const std::uint16_t h = dtype == DType::kF16 ? f32_to_f16(v) : f32_to_bf16(v);
        const char* b = reinterpret_cast<const char*>(&h);
        data.insert(data.end(), b, b + 2);
      }
    }
    header[name] = {
        {"dtype", dtype_tag(dtype)}, {"shape", shape}, {"data_offsets", {begin, data.size()}}};
  }
  std::string h = header.dump();
  while (h.size() % 8) h += ' ';
  std::ofstream f(path, std::ios::binary);
  const std::uint64_t len = h.size();
  f.write(reinterpret_cast<const char*>(&len), 8);
  f.write(h.data(), static_cast<std::streamsize>(h.size()));
  f.write(data.data(), static_cast<std::streamsize>(data.size()));
}

fs::path save(const Tiny& t, DType dtype, bool sharded, const std::string& tag) {
  const fs::path dir =
      fs::temp_directory_path() / ("agp-tiny-" + tag + "-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  json cfg = {{"architectures", {"LlamaForCausalLM"}},
              {"model_type", "llama"},
              {"hidden_size", t.hidden},
              {"intermediate_size", t.inter},
              {"num_hidden_layers", t.layers},
              {"num_attention_heads", t.heads},
              {"num_key_value_heads", t.kv},
              {"head_dim", t.hd},
              {"vocab_size", t.vocab},
              {"max_position_embeddings", 64},
              {"rms_norm_eps", t.eps},
              {"rope_theta", t.theta},
              {"tie_word_embeddings", t.tied},
              {"hidden_act", "silu"}};
  std::ofstream(dir / "config.json") << cfg.dump(1);
  std::vector<std::string> names;
  for (const auto& [name, _] : t.w) names.push_back(name);
  if (!sharded) {
    write_safetensors(dir / "model.safetensors", t, names, dtype);
  } else {
    const std::size_t half = names.size() / 2;
    const std::vector<std::string> a(names.begin(),
                                     names.begin() + static_cast<std::ptrdiff_t>(half));
    const std::vector<std::string> b(names.begin() + static_cast<std::ptrdiff_t>(half),
                                     names.end());
    write_safetensors(dir / "model-00001-of-00002.safetensors", t, a, dtype);
    write_safetensors(dir / "model-00002-of-00002.safetensors", t, b, dtype);
    json index = {{"metadata", json::object()}, {"weight_map", json::object()}};
    for (const auto& n : a) index["weight_map"][n] = "model-00001-of-00002.safetensors";
    for (const auto& n : b) index["weight_map"][n] = "model-00002-of-00002.safetensors";
    std::ofstream(dir / "model.safetensors.index.json") << index.dump(1);
  }
  return dir;
}

// The textbook computation, position by position, in double precision.
std::vector<double> naive_logits(const Tiny& t, const std::vector<int>& tokens) {
  const int T = static_cast<int>(tokens.size()), D = t.hidden, H = t.heads, KV = t.kv, hd = t.hd;
  auto W = [&](const std::string& n) -> const std::vector<float>& { return t.w.at(n).second; };
  auto linear = [](const std::vector<double>& x, const std::vector<float>& w, int out, int in) {
    std::vector<double> y(static_cast<std::size_t>(out));
    for (int o = 0; o < out; ++o) {
      for (int i = 0; i < in; ++i)
        y[o] += w[static_cast<std::size_t>(o * in + i)] * x[static_cast<std::size_t>(i)];
    }
    return y;
  };
  auto rms = [&](const std::vector<double>& x, const std::vector<float>& w) {
    double ss = 0;
    for (double v : x) ss += v * v;
    const double inv = 1.0 / std::sqrt(ss / D + t.eps);
    std::vector<double> y(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) y[i] = w[i] * x[i] * inv;
    return y;
  };
  auto rope = [&](std::vector<double>& v, int heads, int pos) {
    for (int h = 0; h < heads; ++h) {
      for (int i = 0; i < hd / 2; ++i) {
        const double f = std::pow(t.theta, -2.0 * i / hd), a = pos * f;
        double& x1 = v[static_cast<std::size_t>(h * hd + i)];
        double& x2 = v[static_cast<std::size_t>(h * hd + i + hd / 2)];
        const double p = x1, q = x2;
        x1 = p * std::cos(a) - q * std::sin(a);
        x2 = q * std::cos(a) + p * std::sin(a);
      }
    }
  };
  std::vector<std::vector<double>> x(static_cast<std::size_t>(T),
                                     std::vector<double>(static_cast<std::size_t>(D)));
  for (int s = 0; s < T; ++s) {
    for (int j = 0; j < D; ++j)
      x[s][j] = W("model.embed_tokens.weight")[static_cast<std::size_t>(tokens[s] * D + j)];
  }
  for (int l = 0; l < t.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    std::vector<std::vector<double>> q(T), k(T), v(T);
    for (int s = 0; s < T; ++s) {
      const auto h = rms(x[s], W(p + "input_layernorm.weight"));
      q[s] = linear(h, W(p + "self_attn.q_proj.weight"), H * hd, D);
      k[s] = linear(h, W(p + "self_attn.k_proj.weight"), KV * hd, D);
      v[s] = linear(h, W(p + "self_attn.v_proj.weight"), KV * hd, D);
      rope(q[s], H, s);
      rope(k[s], KV, s);
    }
    for (int s = 0; s < T; ++s) {
      std::vector<double> att(static_cast<std::size_t>(H * hd));
      for (int h = 0; h < H; ++h) {
        const int g = h / (H / KV);
        std::vector<double> sc(static_cast<std::size_t>(s + 1));
        double mx = -1e300;
        for (int u = 0; u <= s; ++u) {
          double d = 0;
          for (int i = 0; i < hd; ++i) d += q[s][h * hd + i] * k[u][g * hd + i];
          sc[u] = d / std::sqrt(static_cast<double>(hd));
          mx = std::max(mx, sc[u]);
        }
        double sum = 0;
        for (auto& e : sc) sum += (e = std::exp(e - mx));
        for (int u = 0; u <= s; ++u) {
          for (int i = 0; i < hd; ++i) att[h * hd + i] += sc[u] / sum * v[u][g * hd + i];
        }
      }
      const auto o = linear(att, W(p + "self_attn.o_proj.weight"), D, H * hd);
      for (int j = 0; j < D; ++j) x[s][j] += o[j];
      const auto h2 = rms(x[s], W(p + "post_attention_layernorm.weight"));
      const auto gt = linear(h2, W(p + "mlp.gate_proj.weight"), t.inter, D);
      const auto up = linear(h2, W(p + "mlp.up_proj.weight"), t.inter, D);
      std::vector<double> a(static_cast<std::size_t>(t.inter));
      for (int i = 0; i < t.inter; ++i) a[i] = gt[i] / (1 + std::exp(-gt[i])) * up[i];
      const auto d = linear(a, W(p + "mlp.down_proj.weight"), D, t.inter);
      for (int j = 0; j < D; ++j) x[s][j] += d[j];
    }
  }
  std::vector<double> logits;
  const auto& head = W(t.tied ? "model.embed_tokens.weight" : "lm_head.weight");
  for (int s = 0; s < T; ++s) {
    const auto y = linear(rms(x[s], W("model.norm.weight")), head, t.vocab, D);
    logits.insert(logits.end(), y.begin(), y.end());
  }
  return logits;
}

TEST(Fidelity, ForwardPassMatchesANaiveImplementation) {
  const std::vector<int> tokens = {3, 7, 0, 10, 4, 4, 9, 1, 2};
  int variant = 0;
  for (DType dtype : {DType::kF32, DType::kF16, DType::kBF16}) {
    for (bool sharded : {false, true}) {
      const bool tied = (variant++ % 2) == 1;
      SCOPED_TRACE(dtype_tag(dtype) + (sharded ? " sharded" : " single") + (tied ? " tied" : ""));
      const Tiny t = make_tiny(dtype, tied, 17u + static_cast<unsigned>(variant));
      const fs::path dir = save(t, dtype, sharded, std::to_string(variant));
      auto model = LlamaModel::load(dir.string());
      ASSERT_TRUE(model) << model.status().to_string();
      const auto expect = naive_logits(t, tokens);
      const int T = static_cast<int>(tokens.size());
      // All positions at once.
      std::vector<float> x(static_cast<std::size_t>(T * t.hidden)),
          logits(static_cast<std::size_t>(T * t.vocab));
      KvCache cache = model->new_cache();
      ASSERT_TRUE(model->embed(tokens, x.data()));
      ASSERT_TRUE(model->run_layers(0, t.layers, x.data(), T, cache));
      model->head(x.data(), T, logits.data());
      double worst = 0;
      for (std::size_t i = 0; i < expect.size(); ++i)
        worst = std::max(worst, std::abs(expect[i] - logits[i]));
      EXPECT_LE(worst, 1e-4);
      // The same positions fed in two pieces through the cache, split after layer 1 as a split
      // host would run them.
      KvCache c2 = model->new_cache();
      std::vector<float> piece(static_cast<std::size_t>(T * t.hidden));
      const int first = 5;
      ASSERT_TRUE(model->embed(std::span(tokens).first(first), piece.data()));
      ASSERT_TRUE(model->run_layers(0, 1, piece.data(), first, c2));
      ASSERT_TRUE(model->run_layers(1, t.layers, piece.data(), first, c2));
      std::vector<float> rest(static_cast<std::size_t>((T - first) * t.hidden));
      ASSERT_TRUE(model->embed(std::span(tokens).subspan(first), rest.data()));
      ASSERT_TRUE(model->run_layers(0, 1, rest.data(), T - first, c2));
      ASSERT_TRUE(model->run_layers(1, t.layers, rest.data(), T - first, c2));
      std::vector<float> last(static_cast<std::size_t>(t.vocab));
      model->head(rest.data() + static_cast<std::size_t>((T - first - 1) * t.hidden), 1,
                  last.data());
      for (int i = 0; i < t.vocab; ++i) {
        EXPECT_NEAR(last[static_cast<std::size_t>(i)],
                    expect[static_cast<std::size_t>((T - 1) * t.vocab + i)], 1e-4);
      }
      fs::remove_all(dir);
    }
  }
}

TEST(Fidelity, CheckpointProblemsAreNamed) {
  const Tiny t = make_tiny(DType::kF32, false, 5);
  const fs::path dir = save(t, DType::kF32, false, "bad");
  // A tensor with the wrong shape.
  Tiny wrong = t;
  wrong.w["model.layers.1.mlp.up_proj.weight"].first = {19, 12};
  wrong.w["model.layers.1.mlp.up_proj.weight"].second.resize(19 * 12);
  std::vector<std::string> names;
  for (const auto& [name, _] : wrong.w) names.push_back(name);
  write_safetensors(dir / "model.safetensors", wrong, names, DType::kF32);
  auto m = LlamaModel::load(dir.string());
  ASSERT_FALSE(m);
  EXPECT_NE(m.status().message().find("model.layers.1.mlp.up_proj.weight"), std::string::npos)
      << m.status().to_string();
  // A missing tensor.
  names.erase(std::find(names.begin(), names.end(), "model.layers.2.self_attn.k_proj.weight"));
  write_safetensors(dir / "model.safetensors", t, names, DType::kF32);
  m = LlamaModel::load(dir.string());
  ASSERT_FALSE(m);
  EXPECT_NE(m.status().message().find("missing tensor model.layers.2.self_attn.k_proj.weight"),
            std::string::npos);
  // Config problems.
  EXPECT_FALSE(LlamaConfig::parse("{\"hidden_size\": 12}"));
  EXPECT_FALSE(LlamaConfig::parse("not json"));
  auto c = LlamaConfig::parse(R"({"hidden_size":12,"intermediate_size":20,"num_hidden_layers":2,
      "num_attention_heads":4,"num_key_value_heads":3,"vocab_size":11})");
  ASSERT_FALSE(c);
  EXPECT_NE(c.status().message().find("num_key_value_heads"), std::string::npos);
  EXPECT_FALSE(LlamaConfig::parse(R"({"hidden_size":12,"intermediate_size":20,"num_hidden_layers":2,
      "num_attention_heads":4,"vocab_size":11,"rope_scaling":{"type":"linear","factor":2}})"));
  fs::remove_all(dir);
}

fs::path devmodel_dir() {
  if (const char* d = std::getenv("AGP_DEVMODEL_DIR")) return d;
  return AGP_DEVMODEL_DEFAULT_DIR;
}

// The fixture's reference.json was computed by the fixture's authors with their own
// implementation; the same reference codecs through this harness must give the same figures.
TEST(Fidelity, ReproducesTheDevmodelReference) {
  const fs::path dir = devmodel_dir();
  if (!fs::exists(dir / "reference.json")) {
    GTEST_SKIP() << "devmodel fixture not found at " << dir << " (set AGP_DEVMODEL_DIR)";
  }
  json ref;
  std::ifstream(dir / "reference.json") >> ref;
  auto model = LlamaModel::load(dir.string());
  ASSERT_TRUE(model) << model.status().to_string();
  auto windows = Windows::from_bytes((dir / "windows.bin").string(), 256, 32);
  ASSERT_TRUE(windows);
  ASSERT_EQ(windows->windows.size(), 32u);
  auto h = Harness::prepare(*model, 2, std::move(windows).value());
  ASSERT_TRUE(h) << h.status().to_string();
  const std::map<std::string, std::string> names = {{"fp16", "raw"},
                                                    {"int8_absmax_block64", "ref-int8-b64"},
                                                    {"q4_0_like_block32", "ref-q4-b32"},
                                                    {"q3_block32", "ref-q3-b32"}};
  for (const auto& [ref_name, ours] : names) {
    SCOPED_TRACE(ref_name);
    const json& r = ref["teacher_forced_split2"][ref_name];
    auto codec = SplitCodec::parse(ours);
    ASSERT_TRUE(codec);
    auto got = h->teacher_forced(*codec);
    ASSERT_TRUE(got) << got.status().to_string();
    EXPECT_NEAR(got->rel_mse, r["rel_mse"].get<double>(), 0.03 * r["rel_mse"].get<double>());
    EXPECT_NEAR(got->cosine, r["cosine"].get<double>(), 1e-4);
    EXPECT_NEAR(got->kl_nats, r["kl_nats"].get<double>(), 0.05 * r["kl_nats"].get<double>() + 1e-8);
    EXPECT_NEAR(got->top1_agree, r["top1_agree"].get<double>(), 0.002);
    if (ref_name != "fp16") {
      EXPECT_NEAR(got->bits_per_value, r["bits_per_elem"].get<double>(), 1e-9);
    }
  }
  // Greedy: fp16 continues exactly; int8 blocks as the fixture measured.
  const json& g = ref["greedy_continuation_64_tokens_8_prompts_of_128"];
  for (const auto& [ref_name, ours] : std::map<std::string, std::string>{
           {"fp16", "raw"}, {"int8_absmax_block64", "ref-int8-b64"}}) {
    SCOPED_TRACE(ref_name);
    auto codec = SplitCodec::parse(ours);
    ASSERT_TRUE(codec);
    auto got = h->greedy(*codec, 8, 128, 64);
    ASSERT_TRUE(got) << got.status().to_string();
    EXPECT_NEAR(got->token_agree, g[ref_name]["token_agree"].get<double>(), 0.02);
  }
}

// Folding a basis into a checkpoint (tied and untied heads, sharded or not): the folded model's
// state at every layer is the original's times the basis, and its logits are the original's.
TEST(Fidelity, FoldedCheckpointGivesTheOriginalLogits) {
  for (bool tied : {false, true}) {
    const Tiny t = make_tiny(DType::kBF16, tied, 77);
    const fs::path dir = save(t, DType::kBF16, tied, tied ? "fold-tied" : "fold");
    auto model = LlamaModel::load(dir.string());
    ASSERT_TRUE(model) << model.status().to_string();
    // A basis: the principal components of random states (any orthonormal basis would do).
    std::mt19937 rng(5);
    std::normal_distribution<float> n;
    std::vector<float> states(400 * 12);
    for (float& v : states) v = n(rng);
    auto cal = calibrate_from_states(states.data(), 400, 12, {});
    ASSERT_TRUE(cal);
    const fs::path out = dir.string() + "-folded";
    fs::remove_all(out);
    ASSERT_TRUE(fold_checkpoint(dir.string(), cal->basis, out.string(), DType::kF32, cal->file.calibration.id));
    auto folded = LlamaModel::load(out.string());
    ASSERT_TRUE(folded) << folded.status().to_string();
    EXPECT_FALSE(folded->config().tie_word_embeddings);
    Windows w;
    w.windows = {{1, 4, 2, 9, 3, 3, 7, 0, 10, 5}, {6, 6, 1, 2}};
    auto agree = compare_models(*model, *folded, w);
    ASSERT_TRUE(agree);
    EXPECT_LT(agree->max_abs_logit_diff, 1e-4);
    EXPECT_LT(agree->kl_nats, 1e-9);
    EXPECT_EQ(agree->top1_agree, 1.0);
    // The state entering layer 2: the original's times the basis.
    const std::vector<int> tokens = {3, 1, 4, 1, 5};
    std::vector<float> a(5 * 12), b(5 * 12);
    KvCache ca = model->new_cache(), cb = folded->new_cache();
    ASSERT_TRUE(model->embed(tokens, a.data()));
    ASSERT_TRUE(folded->embed(tokens, b.data()));
    ASSERT_TRUE(model->run_layers(0, 2, a.data(), 5, ca));
    ASSERT_TRUE(folded->run_layers(0, 2, b.data(), 5, cb));
    to_basis(cal->basis, 12, a.data(), 5);
    for (std::size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-4) << i;
    // A second fold into the same (now full) directory is refused; so is a bf16 fold.
    EXPECT_EQ(fold_checkpoint(dir.string(), cal->basis, out.string(), DType::kF32, 1).code(),
              ErrorCode::kInvalidArgument);
    EXPECT_EQ(fold_checkpoint(dir.string(), cal->basis, out.string() + "2", DType::kBF16, 1).code(),
              ErrorCode::kInvalidArgument);
    fs::remove_all(out);
    fs::remove_all(dir);
  }
}

}  // namespace
}  // namespace agp::fidelity
