#include "agp/fidelity/harness.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "agp/fidelity/metrics.hpp"
#include "agp/ptp/mapped_file.hpp"
#include "agp/ptp/npy.hpp"

namespace agp::fidelity {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

Status check_length(int length, int max_windows) {
  if (length < 2 || max_windows < 1) {
    return make_error(ErrorCode::kInvalidArgument,
                      "windows need at least 2 tokens and a count of at least 1");
  }
  return {};
}

int argmax(const float* z, int n) {
  return static_cast<int>(std::max_element(z, z + n) - z);
}

}  // namespace

Result<Windows> Windows::from_bytes(const std::string& path, int length, int max_windows) {
  AGP_RETURN_IF_ERROR(check_length(length, max_windows));
  auto f = ptp::MappedFile::open(path);
  if (!f) return f.status();
  const auto bytes = f->bytes();
  Windows w;
  for (std::size_t at = 0; at + static_cast<std::size_t>(length) <= bytes.size() &&
                           static_cast<int>(w.windows.size()) < max_windows;
       at += static_cast<std::size_t>(length)) {
    std::vector<int> win(static_cast<std::size_t>(length));
    for (int i = 0; i < length; ++i)
      win[static_cast<std::size_t>(i)] = static_cast<int>(bytes[at + static_cast<std::size_t>(i)]);
    w.windows.push_back(std::move(win));
  }
  if (w.windows.empty()) {
    return make_error(ErrorCode::kInvalidArgument, path + " holds " + std::to_string(bytes.size()) +
                                                       " bytes, fewer than one window of " +
                                                       std::to_string(length));
  }
  return w;
}

Result<Windows> Windows::from_npy(const std::string& path, int length, int max_windows) {
  AGP_RETURN_IF_ERROR(check_length(length, max_windows));
  auto a = ptp::read_npy(path);
  if (!a) return a.status();
  const ptp::NpyView& v = a->view;
  const std::uint64_t n = v.element_count();
  std::vector<long long> ids(n);
  for (std::uint64_t i = 0; i < n; ++i) {
    switch (v.dtype) {
      case DType::kI32: {
        std::int32_t x;
        std::memcpy(&x, v.data.data() + 4 * i, 4);
        ids[i] = x;
        break;
      }
      case DType::kI64: {
        std::int64_t x;
        std::memcpy(&x, v.data.data() + 8 * i, 8);
        ids[i] = x;
        break;
      }
      case DType::kU8:
        ids[i] = static_cast<long long>(v.data[i]);
        break;
      default:
        return make_error(ErrorCode::kInvalidArgument,
                          path + ": token ids must be int32, int64 or uint8");
    }
  }
  // Rows of a 2-D array are windows on their own; a 1-D array is one stream.
  const std::uint64_t row = v.shape.size() == 2 ? v.shape[1] : n;
  Windows w;
  for (std::uint64_t r = 0; r * row < n; ++r) {
    for (std::uint64_t at = r * row; at + static_cast<std::uint64_t>(length) <= (r + 1) * row &&
                                     static_cast<int>(w.windows.size()) < max_windows;
         at += static_cast<std::uint64_t>(length)) {
      std::vector<int> win;
      for (int i = 0; i < length; ++i) {
        const long long id = ids[at + static_cast<std::uint64_t>(i)];
        if (id < 0 || id > (1 << 30)) {
          return make_error(ErrorCode::kInvalidArgument, path + ": token id " + std::to_string(id));
        }
        win.push_back(static_cast<int>(id));
      }
      w.windows.push_back(std::move(win));
    }
  }
  if (w.windows.empty()) {
    return make_error(ErrorCode::kInvalidArgument,
                      path + ": no window of " + std::to_string(length) + " tokens");
  }
  return w;
}

Result<Harness> Harness::prepare(const LlamaModel& model, int split, Windows windows) {
  const LlamaConfig& c = model.config();
  if (split < 1 || split >= c.num_layers) {
    return make_error(ErrorCode::kInvalidArgument, "split layer " + std::to_string(split) +
                                                       " must be in [1, " +
                                                       std::to_string(c.num_layers - 1) + "]");
  }
  Harness h(model, split, std::move(windows));
  for (const auto& win : h.windows_.windows) {
    const int T = static_cast<int>(win.size());
    std::vector<float> x(static_cast<std::size_t>(T) * static_cast<std::size_t>(c.hidden_size));
    KvCache cache = model.new_cache();
    AGP_RETURN_IF_ERROR(model.embed(win, x.data()));
    AGP_RETURN_IF_ERROR(model.run_layers(0, split, x.data(), T, cache));
    h.states_.push_back(x);
    AGP_RETURN_IF_ERROR(model.run_layers(split, c.num_layers, x.data(), T, cache));
    std::vector<float> logits(static_cast<std::size_t>(T) * static_cast<std::size_t>(c.vocab_size));
    model.head(x.data(), T, logits.data());
    h.logits_.push_back(std::move(logits));
  }
  return h;
}

Result<TeacherForced> Harness::teacher_forced(const SplitCodec& codec) const {
  const auto t0 = Clock::now();
  const LlamaConfig& c = model_->config();
  const auto D = static_cast<std::uint32_t>(c.hidden_size);
  StateError se;
  LogitError le;
  double bits_weighted = 0;
  std::uint64_t values = 0;
  for (std::size_t w = 0; w < windows_.windows.size(); ++w) {
    const int T = static_cast<int>(windows_.windows[w].size());
    std::vector<float> x = states_[w];
    auto bits = codec.apply(x.data(), static_cast<std::uint64_t>(T), D);
    if (!bits) return bits.status();
    const std::uint64_t n = static_cast<std::uint64_t>(T) * D;
    bits_weighted += *bits * static_cast<double>(n);
    values += n;
    se.add(states_[w].data(), x.data(), static_cast<std::uint64_t>(T), D);
    // Layers [0, split) are the sender's: the receiver's cache for them stays empty.
    KvCache cache = model_->new_cache();
    cache.length[static_cast<std::size_t>(split_)] = 0;
    AGP_RETURN_IF_ERROR(model_->run_layers(split_, c.num_layers, x.data(), T, cache));
    std::vector<float> logits(static_cast<std::size_t>(T) * static_cast<std::size_t>(c.vocab_size));
    model_->head(x.data(), T, logits.data());
    le.add(logits_[w].data(), logits.data(), static_cast<std::uint64_t>(T), c.vocab_size);
  }
  TeacherForced r;
  r.codec = codec.name();
  r.bits_per_value = values ? bits_weighted / static_cast<double>(values) : 0.0;
  r.rel_mse = se.rel_mse();
  r.cosine = se.cosine();
  r.max_abs = se.max_abs;
  r.snr_db = se.snr_db();
  r.kl_nats = le.kl();
  r.top1_agree = le.top1_agree();
  r.top5_overlap = le.top5_overlap();
  r.positions = le.positions;
  r.seconds = seconds_since(t0);
  return r;
}

Result<std::vector<int>> Harness::generate_tokens(const SplitCodec* codec,
                                                  const std::vector<int>& prompt,
                                                  int generate) const {
  const LlamaConfig& c = model_->config();
  const auto D = static_cast<std::uint32_t>(c.hidden_size);
  KvCache cache = model_->new_cache();
  std::vector<int> out;
  std::vector<float> logits(static_cast<std::size_t>(c.vocab_size));
  std::vector<int> step = prompt;
  for (int g = 0; g < generate; ++g) {
    const int T = static_cast<int>(step.size());
    std::vector<float> x(static_cast<std::size_t>(T) * D);
    AGP_RETURN_IF_ERROR(model_->embed(step, x.data()));
    AGP_RETURN_IF_ERROR(model_->run_layers(0, split_, x.data(), T, cache));
    if (codec) {  // the split state of these positions crosses the link
      auto bits = codec->apply(x.data(), static_cast<std::uint64_t>(T), D);
      if (!bits) return bits.status();
    }
    AGP_RETURN_IF_ERROR(model_->run_layers(split_, c.num_layers, x.data(), T, cache));
    model_->head(x.data() + static_cast<std::size_t>(T - 1) * D, 1, logits.data());
    const int next = argmax(logits.data(), c.vocab_size);
    out.push_back(next);
    step = {next};
  }
  return out;
}

Result<Greedy> Harness::greedy(const SplitCodec& codec, int prompts, int prompt_len,
                               int generate) const {
  const auto t0 = Clock::now();
  if (prompts < 1 || prompt_len < 1 || generate < 1 ||
      prompts > static_cast<int>(windows_.windows.size()) ||
      prompt_len > static_cast<int>(windows_.windows[0].size())) {
    return make_error(ErrorCode::kInvalidArgument, "greedy: " + std::to_string(prompts) +
                                                       " prompts of " + std::to_string(prompt_len) +
                                                       " tokens do not fit the windows");
  }
  Greedy r;
  r.codec = codec.name();
  double agree = 0, prefix = 0;
  for (int p = 0; p < prompts; ++p) {
    const auto& win = windows_.windows[static_cast<std::size_t>(p)];
    const std::vector<int> prompt(win.begin(), win.begin() + prompt_len);
    auto ref = generate_tokens(nullptr, prompt, generate);
    if (!ref) return ref.status();
    auto got = generate_tokens(&codec, prompt, generate);
    if (!got) return got.status();
    int same = 0, first_diff = generate;
    for (int i = 0; i < generate; ++i) {
      const auto u = static_cast<std::size_t>(i);
      if ((*ref)[u] == (*got)[u]) {
        ++same;
      } else if (first_diff == generate) {
        first_diff = i;
      }
    }
    agree += same;
    prefix += first_diff;
    r.tokens += static_cast<std::uint64_t>(generate);
  }
  r.token_agree = agree / static_cast<double>(r.tokens);
  r.mean_prefix_match = prefix / prompts;
  r.seconds = seconds_since(t0);
  return r;
}

}  // namespace agp::fidelity
