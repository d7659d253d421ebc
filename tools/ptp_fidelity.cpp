// ptp-fidelity: how much a transfer codec changes what the model predicts. Runs a Hugging Face
// Llama-family checkpoint with the hidden state entering layer --split passed through each codec,
// and reports the state's error (rel MSE, cosine, max abs, SNR), teacher-forced next-token
// fidelity (KL(reference || codec) in nats, top-1 agreement, top-5 overlap) and, with --greedy,
// free-running greedy continuations (token agreement, mean prefix match).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstring>
#include <memory>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <nlohmann/json.hpp>

#include "agp/fidelity/harness.hpp"
#include "agp/ptp/calibration_file.hpp"
#include "agp/ptp/npy.hpp"
#include "agp/ptp/packet_codecs.hpp"
#include "common/json_text.hpp"
#include "common/progress.hpp"
#include "common/report.hpp"
#include "common/tool_support.hpp"

namespace {

using namespace agp;
using namespace agp::tools;
using json = nlohmann::json;
constexpr const char* kTool = "ptp-fidelity";

// Every codec and bit width, for --sweep: the project's codecs and the fixture's reference
// quantizers.
const std::vector<std::string> kSweep = {
    "raw", "ref-int8-b64", "ref-q4-b32", "ref-q3-b32", "int8", "int4", "tq2", "tq3", "tq4", "tq5",
    "tq6", "tq8",          "prod3",      "prod4",      "ec2",  "ec3",  "ec4", "ec5", "ec6", "ec8"};

struct Options {
  std::string model;
  int split = -1;
  std::string bytes;
  std::string tokens;
  int seq = 256;
  int windows = 32;
  std::string codecs = "tq4";
  bool sweep = false;
  bool greedy = false;
  int prompts = 8;
  int prompt_len = 128;
  int generate = 64;
  bool json = false;
  bool quiet = false;
  std::string report;
  std::string calibration;
  std::string basis;
};

std::string fidelity_svg(const json& rows) {
  std::vector<std::pair<std::string, std::pair<double, double>>> a, b;
  for (const auto& r : rows) {
    a.push_back({r["codec"], {r["bits_per_value"], r["kl_nats"]}});
    b.push_back({r["codec"], {r["bits_per_value"], r["top1_agree"]}});
  }
  return scatter_panels_svg(
      "fidelity against bits per value",
      {{"KL(reference || codec), nats (log)", true, a}, {"top-1 agreement", false, b}});
}

int run(const Options& o, const std::string& command) {
  if (o.model.empty()) return fail(kTool, "--model DIR is required", kExitUsage);
  if (o.bytes.empty() == o.tokens.empty()) {
    return fail(kTool, "give exactly one of --bytes FILE or --tokens FILE.npy", kExitUsage);
  }
  std::vector<std::string> names = kSweep;
  if (!o.sweep) {
    auto list = split_list(o.codecs, "--codec");
    if (!list) return fail(kTool, list.status().message(), kExitUsage);
    names = *list;
  }
  std::vector<fidelity::SplitCodec> codecs;
  for (const auto& n : names) {
    auto c = fidelity::SplitCodec::parse(n);
    if (!c) return fail(kTool, "--codec: " + c.status().message(), kExitUsage);
    codecs.push_back(*c);
  }
  for (const auto& c : codecs) {
    if (c.calibrated() && o.calibration.empty()) {
      return fail(kTool, "--codec " + c.name() + " needs --calibration FILE (ptp-calibrate)", kExitUsage);
    }
  }
  if (!o.calibration.empty()) {
    auto cal = ptp::read_calibration(o.calibration);
    if (!cal) return fail(kTool, "--calibration: " + cal.status().message());
    auto shared = std::make_shared<const codec::Calibration>(cal->calibration);
    std::shared_ptr<const std::vector<float>> basis;
    if (!o.basis.empty()) {
      auto b = ptp::read_npy(o.basis);
      if (!b) return fail(kTool, "--basis: " + b.status().message());
      const std::uint64_t d = shared->dim;
      if (b->view.dtype != DType::kF32 || b->view.shape != std::vector<std::uint64_t>{d, d}) {
        return fail(kTool, "--basis: an f32 array [" + std::to_string(d) + ", " + std::to_string(d) + "] (ptp-calibrate --basis-out)", kExitUsage);
      }
      std::vector<float> m(d * d);
      std::memcpy(m.data(), b->view.data.data(), 4 * d * d);
      basis = std::make_shared<const std::vector<float>>(std::move(m));
    }
    for (auto& c : codecs) {
      if (c.calibrated()) c.set_calibration(shared, basis);  // the others code the state as it is
    }
  } else if (!o.basis.empty()) {
    return fail(kTool, "--basis needs --calibration", kExitUsage);
  }
  auto model = fidelity::LlamaModel::load(o.model);
  if (!model) return fail(kTool, "--model " + o.model + ": " + model.status().message());
  const int split = o.split >= 0 ? o.split : model->config().num_layers / 2;
  auto windows = o.bytes.empty() ? fidelity::Windows::from_npy(o.tokens, o.seq, o.windows)
                                 : fidelity::Windows::from_bytes(o.bytes, o.seq, o.windows);
  if (!windows) return fail(kTool, windows.status().message(), kExitUsage);
  const std::size_t window_count = windows->windows.size();
  if (!o.quiet && !o.json) {
    std::fprintf(stderr,
                 "%s: %zu windows of %d tokens, split at layer %d of %d; reference pass...\n",
                 kTool, window_count, o.seq, split, model->config().num_layers);
  }
  auto harness = fidelity::Harness::prepare(*model, split, std::move(windows).value());
  if (!harness) return fail(kTool, harness.status().message());

  json rows = json::array();
  Progress progress("codecs", codecs.size(), o.quiet || o.json);
  for (std::size_t i = 0; i < codecs.size(); ++i) {
    auto tf = harness->teacher_forced(codecs[i]);
    if (!tf) return fail(kTool, codecs[i].name() + ": " + tf.status().message());
    json r = {{"model", o.model},
              {"split", split},
              {"codec", tf->codec},
              {"bits", codecs[i].nominal_bits()},
              {"bits_per_value", tf->bits_per_value},
              {"rel_mse", tf->rel_mse},
              {"cosine", tf->cosine},
              {"max_abs_error", tf->max_abs},
              {"snr_db", tf->snr_db},
              {"kl_nats", tf->kl_nats},
              {"top1_agree", tf->top1_agree},
              {"top5_overlap", tf->top5_overlap},
              {"positions", tf->positions},
              {"teacher_forced_seconds", tf->seconds}};
    if (o.greedy) {
      auto g = harness->greedy(codecs[i], o.prompts, o.prompt_len, o.generate);
      if (g) {
        r["greedy_token_agree"] = g->token_agree;
        r["greedy_prefix_match"] = g->mean_prefix_match;
        r["greedy_tokens"] = g->tokens;
        r["greedy_seconds"] = g->seconds;
      } else if (g.status().code() == ErrorCode::kInvalidArgument &&
                 g.status().message().rfind("greedy:", 0) == 0) {
        return fail(kTool, g.status().message(), kExitUsage);
      } else {
        // A codec that cannot carry one token's state per packet (TurboQuant-EC's side data
        // outgrows a small budget): say so in the row and go on.
        r["greedy_token_agree"] = nullptr;
        r["greedy_prefix_match"] = nullptr;
        r["greedy_error"] = g.status().to_string();
      }
    }
    rows.push_back(r);
    progress.update(i + 1);
  }
  progress.finish();

  std::string table;
  char line[512];
  std::snprintf(line, sizeof line, "%-13s %8s %10s %9s %8s %9s %10s %8s %8s%s\n", "codec",
                "bits/val", "rel MSE", "cosine", "SNR dB", "max abs", "KL nats", "top-1", "top-5",
                o.greedy ? "  greedy agree  prefix" : "");
  table += line;
  for (const auto& r : rows) {
    std::snprintf(line, sizeof line, "%-13s %8.3f %10.3g %9.5f %8.2f %9.4f %10.3g %8.4f %8.4f",
                  r["codec"].get<std::string>().c_str(), r["bits_per_value"].get<double>(),
                  r["rel_mse"].get<double>(), r["cosine"].get<double>(), r["snr_db"].get<double>(),
                  r["max_abs_error"].get<double>(), r["kl_nats"].get<double>(),
                  r["top1_agree"].get<double>(), r["top5_overlap"].get<double>());
    table += line;
    if (o.greedy && r["greedy_token_agree"].is_null()) {
      table += "           n/a     n/a";
    } else if (o.greedy) {
      std::snprintf(line, sizeof line, "  %12.4f %7.2f", r["greedy_token_agree"].get<double>(),
                    r["greedy_prefix_match"].get<double>());
      table += line;
    }
    table += "\n";
  }
  char run_id[32];
  const std::time_t now = std::time(nullptr);
  std::strftime(run_id, sizeof run_id, "%Y%m%dT%H%M%SZ", std::gmtime(&now));
  const std::string heading =
      "ptp-fidelity: " + o.model + ", split " + std::to_string(split) + ", " +
      std::to_string(window_count) + " windows of " + std::to_string(o.seq) + " tokens" +
      (o.greedy ? ", greedy " + std::to_string(o.prompts) + " x " + std::to_string(o.prompt_len) +
                      " + " + std::to_string(o.generate)
                : "");
  if (o.json) {
    json doc = {{"tool", kTool}, {"run_id", run_id}, {"command", command}, {"rows", rows}};
    std::cout << tools::json_text(doc, 2) << "\n";
  } else {
    std::printf("%s\n\n%s", heading.c_str(), table.c_str());
  }
  if (!o.report.empty()) {
    const std::string md = "# ptp-fidelity run " + std::string(run_id) + "\n\n- command: `" +
                           command + "`\n- data: " + heading +
                           "\n- KL is KL(reference || codec) of next-token distributions, mean "
                           "over positions\n\n```\n" +
                           table + "```\n";
    if (auto s = write_report(o.report, md, fidelity_svg(rows)); !s) {
      return fail(kTool, "--report: " + s.message());
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{
      "ptp-fidelity: runs a Hugging Face Llama-family model (config.json + safetensors) with the "
      "hidden state entering layer --split passed through each codec, and reports the state's "
      "error and what it does to the model's next-token predictions (teacher-forced KL, top-1, "
      "top-5) and, with --greedy, to greedy continuations."};
  app.add_option("--model", o.model,
                 "checkpoint directory (config.json, model.safetensors or index)");
  app.add_option("--split", o.split,
                 "split layer: the state entering this layer is transferred (default: half)");
  app.add_option("--bytes", o.bytes, "evaluation text: raw bytes as token ids (byte-level models)");
  app.add_option("--tokens", o.tokens, "evaluation token ids: .npy of int32/int64/uint8");
  app.add_option("--seq", o.seq, "tokens per window")->check(CLI::Range(2, 1 << 20));
  app.add_option("--windows", o.windows, "at most this many windows")
      ->check(CLI::Range(1, 1 << 20));
  app.add_option("--codec,--codecs", o.codecs,
                 "comma-separated: " + ptp::packet_codec_names() +
                     " (raw: fp16), none, ref-int8-b64, ref-q4-b32, ref-q3-b32");
  app.add_flag("--sweep", o.sweep, "every codec and bit width");
  app.add_flag("--greedy", o.greedy, "also measure greedy continuations");
  app.add_option("--prompts", o.prompts, "greedy: prompts (the first windows)");
  app.add_option("--prompt-len", o.prompt_len, "greedy: prompt tokens");
  app.add_option("--generate", o.generate, "greedy: new tokens per prompt");
  app.add_flag("--json", o.json, "print one JSON document instead of the table");
  app.add_option("--report", o.report,
                 "write a Markdown report with an SVG of KL and top-1 against bits");
  app.add_option("--calibration", o.calibration,
                 "calibration file for the calibrated codecs cal2..cal8 (ptp-calibrate)");
  app.add_option("--basis", o.basis,
                 "the calibration's basis (.npy, ptp-calibrate --basis-out) when --model is not "
                 "folded into it: states are coded in that basis");
  app.add_flag("-q,--quiet", o.quiet, "no progress output");
  if (auto code = parse_command_line(app, argc, argv, kTool)) return *code;
  return run(o, command_line(kTool, argc, argv));
}
