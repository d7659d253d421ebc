#include <nlohmann/json.hpp>

#include "agp/fidelity/llama.hpp"

namespace agp::fidelity {
namespace {

Status bad(const std::string& why) {
  return make_error(ErrorCode::kInvalidArgument, "config.json: " + why);
}

}  // namespace

void KvCache::reset(int layers) {
  k.assign(static_cast<std::size_t>(layers), {});
  v.assign(static_cast<std::size_t>(layers), {});
  length.assign(static_cast<std::size_t>(layers), 0);
}

Result<LlamaConfig> LlamaConfig::parse(const std::string& text) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    return bad(std::string("not JSON: ") + e.what());
  }
  if (!j.is_object()) return bad("not a JSON object");
  LlamaConfig c;
  auto get_int = [&](const char* key, int& out, bool required) -> Status {
    if (!j.contains(key) || j[key].is_null()) {
      return required ? bad(std::string("missing '") + key + "'") : Status();
    }
    if (!j[key].is_number_integer() || j[key].get<long long>() <= 0 ||
        j[key].get<long long>() > (1 << 24)) {
      return bad(std::string("'") + key + "' must be a positive integer");
    }
    out = j[key].get<int>();
    return {};
  };
  auto get_double = [&](const char* key, double& out) -> Status {
    if (!j.contains(key) || j[key].is_null()) return {};
    if (!j[key].is_number() || !(j[key].get<double>() > 0)) {
      return bad(std::string("'") + key + "' must be a positive number");
    }
    out = j[key].get<double>();
    return {};
  };
  if (j.contains("model_type") && j["model_type"].is_string()) {
    const auto t = j["model_type"].get<std::string>();
    if (t != "llama" && t != "mistral") {
      return bad("model_type '" + t + "' is not a Llama-family decoder");
    }
  }
  AGP_RETURN_IF_ERROR(get_int("hidden_size", c.hidden_size, true));
  AGP_RETURN_IF_ERROR(get_int("intermediate_size", c.intermediate_size, true));
  AGP_RETURN_IF_ERROR(get_int("num_hidden_layers", c.num_layers, true));
  AGP_RETURN_IF_ERROR(get_int("num_attention_heads", c.num_heads, true));
  c.num_kv_heads = c.num_heads;
  AGP_RETURN_IF_ERROR(get_int("num_key_value_heads", c.num_kv_heads, false));
  c.head_dim = c.hidden_size / c.num_heads;
  AGP_RETURN_IF_ERROR(get_int("head_dim", c.head_dim, false));
  AGP_RETURN_IF_ERROR(get_int("vocab_size", c.vocab_size, true));
  c.max_position_embeddings = 4096;
  AGP_RETURN_IF_ERROR(get_int("max_position_embeddings", c.max_position_embeddings, false));
  AGP_RETURN_IF_ERROR(get_double("rms_norm_eps", c.rms_norm_eps));
  AGP_RETURN_IF_ERROR(get_double("rope_theta", c.rope_theta));
  if (j.contains("tie_word_embeddings") && j["tie_word_embeddings"].is_boolean()) {
    c.tie_word_embeddings = j["tie_word_embeddings"].get<bool>();
  }
  if (j.contains("rope_scaling") && !j["rope_scaling"].is_null()) {
    return bad("rope_scaling is not supported by this reference implementation");
  }
  if (j.contains("hidden_act") && j["hidden_act"].is_string() &&
      j["hidden_act"].get<std::string>() != "silu") {
    return bad("hidden_act '" + j["hidden_act"].get<std::string>() + "': only silu (SwiGLU)");
  }
  for (const char* key : {"attention_bias", "mlp_bias"}) {
    if (j.contains(key) && j[key].is_boolean() && j[key].get<bool>()) {
      return bad(std::string("'") + key + "' is true: biases are not supported");
    }
  }
  if (c.num_heads % c.num_kv_heads != 0) {
    return bad("num_attention_heads must be a multiple of num_key_value_heads");
  }
  if (c.head_dim % 2 != 0) return bad("head_dim must be even (rotary embedding)");
  return c;
}

}  // namespace agp::fidelity
