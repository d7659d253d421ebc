#include "model_split.hpp"

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "agp/ptp/fingerprint.hpp"

namespace agp::tools {

Result<ModelSplit> ModelSplit::open(const std::string& dir, int split, const std::string& bytes,
                                    int seq, int max_windows) {
  auto model = fidelity::LlamaModel::load(dir);
  if (!model)
    return make_error(model.status().code(), "--model " + dir + ": " + model.status().message());
  if (split < 1 || split >= model->config().num_layers) {
    return make_error(ErrorCode::kInvalidArgument,
                      "--split " + std::to_string(split) + ": must be in [1, " +
                          std::to_string(model->config().num_layers - 1) + "]");
  }
  if (bytes.empty()) {
    return make_error(ErrorCode::kInvalidArgument, "--model needs --bytes FILE (evaluation text)");
  }
  auto windows = fidelity::Windows::from_bytes(bytes, seq, max_windows);
  if (!windows) return windows.status();
  ModelSplit m;
  m.dir_ = dir;
  m.split_ = split;
  m.model_ = std::make_unique<fidelity::LlamaModel>(std::move(model).value());
  m.windows_ = std::move(windows).value();
  return m;
}

std::string ModelSplit::model_id() const {
  return ptp::checkpoint_model_id(dir_);
}

std::uint32_t ModelSplit::hidden() const {
  return static_cast<std::uint32_t>(model_->config().hidden_size);
}

Result<std::vector<float>> ModelSplit::state(std::size_t w) const {
  const auto& tokens = windows_.windows.at(w % windows_.windows.size());
  const int T = static_cast<int>(tokens.size());
  std::vector<float> x(static_cast<std::size_t>(T) * hidden());
  fidelity::KvCache cache = model_->new_cache();
  AGP_RETURN_IF_ERROR(model_->embed(tokens, x.data()));
  AGP_RETURN_IF_ERROR(model_->run_layers(0, split_, x.data(), T, cache));
  return x;
}

Result<ptp::Hash128> ModelSplit::fingerprint(std::uint64_t calibration_id) const {
  return ptp::checkpoint_fingerprint(dir_, split_, hidden(), DType::kF16, calibration_id);
}

Status ModelSplit::score(std::size_t w, const float* decoded, fidelity::StateError& state_error,
                         fidelity::LogitError& logit_error) {
  const auto& cfg = model_->config();
  const auto& tokens = windows_.windows.at(w % windows_.windows.size());
  const int T = static_cast<int>(tokens.size());
  auto it = reference_.find(w);
  if (it == reference_.end()) {  // the uncompressed run, once per window
    auto s = state(w);
    if (!s) return s.status();
    std::vector<float> x = *s;
    fidelity::KvCache cache = model_->new_cache();
    AGP_RETURN_IF_ERROR(model_->run_layers(split_, cfg.num_layers, x.data(), T, cache));
    std::vector<float> logits(static_cast<std::size_t>(T) *
                              static_cast<std::size_t>(cfg.vocab_size));
    model_->head(x.data(), T, logits.data());
    it = reference_.emplace(w, std::pair{std::move(*s), std::move(logits)}).first;
  }
  std::vector<float> x(decoded, decoded + static_cast<std::size_t>(T) * hidden());
  state_error.add(it->second.first.data(), x.data(), static_cast<std::uint64_t>(T), hidden());
  fidelity::KvCache cache = model_->new_cache();
  AGP_RETURN_IF_ERROR(model_->run_layers(split_, cfg.num_layers, x.data(), T, cache));
  std::vector<float> logits(static_cast<std::size_t>(T) * static_cast<std::size_t>(cfg.vocab_size));
  model_->head(x.data(), T, logits.data());
  logit_error.add(it->second.second.data(), logits.data(), static_cast<std::uint64_t>(T),
                  cfg.vocab_size);
  return {};
}

bool ModelSplit::parse_tag(const std::string& name, std::size_t& w) {
  unsigned long long v = 0;
  char rest = 0;
  if (std::sscanf(name.c_str(), "win=%llu%c", &v, &rest) != 1) return false;
  w = static_cast<std::size_t>(v);
  return true;
}

Result<transport::LinkOptions> model_link_options(const Identity& id, const ModelSplit& m,
                                                  const std::string& tool) {
  auto o = link_options(id, tool);
  if (!o) return o.status();
  auto fp = m.fingerprint(o->calibration ? o->calibration->id : 0);
  if (!fp) return fp.status();
  o->fingerprint = *fp;
  o->model_id = m.model_id();
  o->split_layer = m.split();
  return o;
}

}  // namespace agp::tools
