// ptp-calibrate: computes what the calibrated codec (cal2..cal8) needs for one model and split:
// the principal-component basis of the split states (to fold into the checkpoint, or to apply
// around the codec) and the calibration file (mean and scales in that basis, component groups).
// States come from running the model over calibration text (--model --split --bytes), or from a
// saved .npy (--states). Calibration text must not overlap the text a fidelity run scores on.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "agp/fidelity/calibrate.hpp"
#include "agp/fidelity/fold.hpp"
#include "agp/fidelity/harness.hpp"
#include "agp/ptp/calibration_file.hpp"
#include "agp/ptp/checksum.hpp"
#include "agp/ptp/mapped_file.hpp"
#include "agp/ptp/message.hpp"
#include "agp/ptp/npy.hpp"
#include "common/json_text.hpp"
#include "common/tool_support.hpp"

namespace {

using namespace agp;
using namespace agp::tools;
using json = nlohmann::json;
constexpr const char* kTool = "ptp-calibrate";

struct Options {
  std::string model;
  int split = -1;
  std::string bytes;
  std::string states;
  std::string headers;  // calibration text from the files under this folder
  std::string exclude_bytes;  // ... leaving out files that share a long line with this text
  int seq = 256;
  int windows = 256;
  std::string out;
  std::string basis_out;
  std::string fold_into;
  std::string fold_dtype = "f16";
  std::string eval_bytes;
  int eval_windows = 32;
  int max_groups = 64;
  bool json = false;
  bool quiet = false;
};

int run(const Options& o) {
  if (o.out.empty()) return fail(kTool, "-o/--out FILE is required", kExitUsage);
  if (static_cast<int>(!o.states.empty()) + static_cast<int>(!o.bytes.empty()) +
          static_cast<int>(!o.headers.empty()) != 1) {
    return fail(kTool,
                "give one of --states FILE.npy, --bytes FILE or --headers DIR (with --model DIR "
                "--split L)",
                kExitUsage);
  }
  if (o.states.empty() && o.model.empty()) return fail(kTool, "--bytes and --headers need --model DIR", kExitUsage);
  if (!o.exclude_bytes.empty() && o.headers.empty()) {
    return fail(kTool, "--exclude-bytes goes with --headers", kExitUsage);
  }
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<float> states;
  std::uint64_t n = 0;
  std::uint32_t dim = 0;
  json source;
  int split = o.split;
  if (!o.states.empty()) {
    auto arr = ptp::read_npy(o.states);
    if (!arr) return fail(kTool, "--states " + o.states + ": " + arr.status().message());
    const auto& v = arr->view;
    if (v.shape.size() < 2 || (v.dtype != DType::kF32 && v.dtype != DType::kF16 && v.dtype != DType::kBF16)) {
      return fail(kTool, "--states: a float array of at least 2 axes, the last the hidden size", kExitUsage);
    }
    dim = static_cast<std::uint32_t>(v.shape.back());
    n = v.element_count() / dim;
    states.resize(n * dim);
    const auto view = codec::TensorView::contiguous(v.data.data(), v.dtype, v.shape,
                                                    static_cast<std::uint32_t>(v.shape.size() - 1));
    codec::VectorAccess(view).gather(0, n, states.data());
    source = {{"states", o.states}, {"states_xxh3", ptp::to_hex(ptp::xxh3_64(v.data))}};
  } else {
    auto model = fidelity::LlamaModel::load(o.model);
    if (!model) return fail(kTool, "--model " + o.model + ": " + model.status().message());
    if (split < 1 || split >= model->config().num_layers) {
      return fail(kTool, "--split must be 1.." + std::to_string(model->config().num_layers - 1), kExitUsage);
    }
    fidelity::Windows calib;
    std::string text_hash;
    if (!o.headers.empty()) {
      // Files of the folder, in a seeded order, leaving out any that share a long line with the
      // evaluation text (so calibration and scoring text are disjoint).
      std::vector<std::vector<int>> eval;
      if (!o.exclude_bytes.empty()) {
        auto e = fidelity::Windows::from_bytes(o.exclude_bytes, o.seq, 1 << 20);
        if (!e) return fail(kTool, "--exclude-bytes: " + e.status().message(), kExitUsage);
        eval = std::move(e->windows);
      }
      auto t = fidelity::calibration_text_from_headers(o.headers, eval, o.windows, o.seq, 1234);
      if (!t) return fail(kTool, "--headers: " + t.status().message());
      calib.windows = std::move(t->windows);
      text_hash = ptp::to_hex(t->xxh3);
      source = {{"headers", o.headers}, {"exclude_bytes", o.exclude_bytes},
                {"files_seen", t->files_seen}, {"files_excluded", t->files_excluded}};
    } else {
      auto w = fidelity::Windows::from_bytes(o.bytes, o.seq, o.windows);
      if (!w) return fail(kTool, "--bytes: " + w.status().message(), kExitUsage);
      calib = std::move(w).value();
      auto text = ptp::MappedFile::open(o.bytes);
      text_hash = text ? ptp::to_hex(ptp::xxh3_64(text->bytes())) : "";
      source = {{"bytes", o.bytes}};
    }
    const auto* windows = &calib;
    if (!o.quiet && !o.json) {
      std::fprintf(stderr, "%s: %zu windows of %d tokens through layers [0, %d)...\n", kTool,
                   windows->windows.size(), o.seq, split);
    }
    auto s = fidelity::split_states(*model, split, windows->windows);
    if (!s) return fail(kTool, s.status().message());
    states = std::move(s).value();
    dim = static_cast<std::uint32_t>(model->config().hidden_size);
    n = states.size() / dim;
    source["model"] = o.model;
    source["text_xxh3"] = text_hash;
    source["windows"] = windows->windows.size();
    source["tokens_per_window"] = o.seq;
  }
  fidelity::CalibrateOptions co;
  co.max_groups = static_cast<std::size_t>(o.max_groups);
  co.info = json({{"tool", kTool}, {"split", split}, {"dim", dim}, {"vectors", n},
                  {"basis", "pca"}, {"source", source}})
                .dump();
  auto cal = fidelity::calibrate_from_states(states.data(), n, dim, co);
  if (!cal) return fail(kTool, cal.status().message());
  if (n < dim) {
    std::fprintf(stderr,
                 "%s: warning: %llu states of %u values: the basis is rank-deficient (components "
                 "beyond the %llu-th have no data); give at least %u states, four times that is "
                 "better\n",
                 kTool, static_cast<unsigned long long>(n), dim, static_cast<unsigned long long>(n),
                 dim);
  }
  if (auto s = ptp::write_calibration(o.out, cal->file); !s) return fail(kTool, "-o: " + s.message());
  if (!o.basis_out.empty()) {
    if (auto s = ptp::write_npy(o.basis_out, DType::kF32, {dim, dim},
                                std::as_bytes(std::span(cal->basis)));
        !s) {
      return fail(kTool, "--basis-out: " + s.message());
    }
  }
  json fold;
  if (!o.fold_into.empty()) {
    if (o.model.empty()) return fail(kTool, "--fold-into needs --model DIR", kExitUsage);
    const DType dt = o.fold_dtype == "f32" ? DType::kF32 : DType::kF16;
    if (auto s = fidelity::fold_checkpoint(o.model, cal->basis, o.fold_into, dt, cal->file.calibration.id); !s) {
      return fail(kTool, "--fold-into: " + s.message());
    }
    fold = {{"dir", o.fold_into}, {"dtype", o.fold_dtype}};
    if (!o.eval_bytes.empty()) {
      // The proof: the folded checkpoint's logits against the original's on held-out text.
      auto original = fidelity::LlamaModel::load(o.model);
      auto folded = fidelity::LlamaModel::load(o.fold_into);
      if (!original || !folded) return fail(kTool, "--fold-into: cannot reload the models");
      auto windows = fidelity::Windows::from_bytes(o.eval_bytes, o.seq, o.eval_windows);
      if (!windows) return fail(kTool, "--eval-bytes: " + windows.status().message(), kExitUsage);
      auto agree = fidelity::compare_models(*original, *folded, *windows);
      if (!agree) return fail(kTool, agree.status().message());
      fold["eval_bytes"] = o.eval_bytes;
      fold["eval_positions"] = agree->positions;
      fold["max_abs_logit_diff"] = agree->max_abs_logit_diff;
      fold["kl_nats"] = agree->kl_nats;
      fold["top1_agree"] = agree->top1_agree;
    }
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const auto& c = cal->file.calibration;
  double total = 0, top = 0;
  for (std::uint32_t j = 0; j < dim; ++j) total += static_cast<double>(c.scale[j]) * c.scale[j];
  for (std::uint32_t j = 0; j < std::min<std::uint32_t>(dim, 16); ++j) top += static_cast<double>(c.scale[j]) * c.scale[j];
  json doc = {{"tool", kTool}, {"out", o.out}, {"calibration_id", ptp::to_hex(c.id)}, {"dim", dim},
              {"vectors", n}, {"groups", c.group_count()}, {"seconds", seconds},
              {"top16_variance_share", total > 0 ? top / total : 0.0}, {"source", source}};
  if (!o.basis_out.empty()) doc["basis"] = o.basis_out;
  if (!fold.is_null()) doc["fold"] = fold;
  if (o.json) {
    std::cout << tools::json_text(doc, 2) << "\n";
  } else {
    std::printf("%s: calibration %s for %u values from %llu states: %zu groups, %.1f%% of the "
                "variance in the first 16 components, %.1f s\n",
                o.out.c_str(), ptp::to_hex(c.id).c_str(), dim, static_cast<unsigned long long>(n),
                c.group_count(), 100.0 * doc["top16_variance_share"].get<double>(), seconds);
    if (!fold.is_null()) {
      std::printf("folded into %s (%s)", o.fold_into.c_str(), o.fold_dtype.c_str());
      if (fold.contains("kl_nats")) {
        std::printf(": against the original on %llu positions of %s, max |logit difference| %.3g, "
                    "KL %.3g nats, top-1 agreement %.4f",
                    static_cast<unsigned long long>(fold["eval_positions"].get<std::uint64_t>()),
                    o.eval_bytes.c_str(), fold["max_abs_logit_diff"].get<double>(),
                    fold["kl_nats"].get<double>(), fold["top1_agree"].get<double>());
      }
      std::printf("\n");
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{
      "ptp-calibrate: computes the calibration of the calibrated codec (cal2..cal8) for one model "
      "and split: a principal-component basis of the split states (--basis-out; fold it into the "
      "checkpoint or apply it around the codec) and the calibration file both ends load "
      "(--calibration of ptp-send, ptp-recv, ptp-fidelity). Calibrate on text other than the "
      "text you score on."};
  app.add_option("--model", o.model, "checkpoint directory (config.json, safetensors)");
  app.add_option("--split", o.split, "split layer: the state entering this layer is coded");
  app.add_option("--bytes", o.bytes, "calibration text: raw bytes as token ids (byte-level models)");
  app.add_option("--headers", o.headers,
                 "or: calibration text cut from the files under this folder (for models trained "
                 "on code, e.g. /usr/include), in a fixed seeded order");
  app.add_option("--exclude-bytes", o.exclude_bytes,
                 "with --headers: leave out files sharing a long line with this (evaluation) text");
  app.add_option("--states", o.states, "or: saved split states, .npy [..., hidden] f32/f16/bf16");
  app.add_option("--seq", o.seq, "tokens per calibration window")->check(CLI::Range(2, 1 << 20));
  app.add_option("--windows", o.windows, "at most this many windows")->check(CLI::Range(1, 1 << 20));
  app.add_option("-o,--out", o.out, "calibration file to write");
  app.add_option("--basis-out", o.basis_out, "also write the basis, .npy f32 [hidden, hidden]");
  app.add_option("--fold-into", o.fold_into,
                 "write the checkpoint with the basis folded in here (Hugging Face layout): its "
                 "split state is already in the basis, so hosts run it and send with cal2..cal8");
  app.add_option("--fold-dtype", o.fold_dtype, "weights of the folded checkpoint: f16 or f32")
      ->check(CLI::IsMember({"f16", "f32"}));
  app.add_option("--eval-bytes", o.eval_bytes,
                 "with --fold-into: held-out text to compare the folded model's logits with the "
                 "original's on (max difference, KL, top-1)");
  app.add_option("--eval-windows", o.eval_windows, "windows of --eval-bytes")->check(CLI::Range(1, 1 << 20));
  app.add_option("--max-groups", o.max_groups, "at most this many component groups")
      ->check(CLI::Range(1, 256));
  app.add_flag("--json", o.json, "print one JSON document");
  app.add_flag("-q,--quiet", o.quiet, "no progress output");
  if (auto code = parse_command_line(app, argc, argv, kTool)) return *code;
  return run(o);
}
