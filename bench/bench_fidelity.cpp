// Fidelity benchmark: every codec and bit width on the devmodel fixture at split layer 2, teacher-
// forced over its 32 windows of 256 tokens and in greedy continuations (8 prompts of 128 tokens, 64
// new tokens), with the goals checked. Writes bench/results/latest-fidelity.json.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <ctime>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "agp/fidelity/harness.hpp"
#include "common/report.hpp"

namespace {

using json = nlohmann::json;
using namespace agp::fidelity;

[[noreturn]] void die(const std::string& why) {
  std::cerr << "bench_fidelity: error: " << why << "\n";
  std::exit(1);
}

const std::vector<std::string> kCodecs = {
    "raw", "ref-int8-b64", "ref-q4-b32", "ref-q3-b32", "int8", "int4", "tq2", "tq3", "tq4", "tq5",
    "tq6", "tq8",          "prod3",      "prod4",      "ec2",  "ec3",  "ec4", "ec5", "ec6", "ec8"};

}  // namespace

int main(int argc, char** argv) {
  std::string model_dir = "../shared/fixtures/devmodel", out_path, svg_path;
  int split = 2;
  CLI::App app{"bench_fidelity: continuation fidelity of every codec on the devmodel fixture"};
  app.add_option("--model", model_dir, "checkpoint directory with windows.bin beside it");
  app.add_option("--split", split, "split layer");
  app.add_option("--out", out_path, "write the JSON results here");
  app.add_option("--svg", svg_path, "write a picture of KL and top-1 against bits per value here");
  CLI11_PARSE(app, argc, argv);

  auto model = LlamaModel::load(model_dir);
  if (!model) die(model_dir + ": " + model.status().to_string());
  auto windows = Windows::from_bytes(model_dir + "/windows.bin", 256, 32);
  if (!windows) die(windows.status().to_string());
  auto harness = Harness::prepare(*model, split, std::move(windows).value());
  if (!harness) die(harness.status().to_string());

  json rows = json::array();
  for (const auto& name : kCodecs) {
    auto codec = SplitCodec::parse(name);
    if (!codec) die(codec.status().to_string());
    auto tf = harness->teacher_forced(*codec);
    if (!tf) die(name + ": " + tf.status().to_string());
    auto g = harness->greedy(*codec, 8, 128, 64);
    json r = {{"model", "devmodel"},
              {"split", split},
              {"codec", name},
              {"bits", codec->nominal_bits()},
              {"bits_per_value", tf->bits_per_value},
              {"rel_mse", tf->rel_mse},
              {"cosine", tf->cosine},
              {"snr_db", tf->snr_db},
              {"kl_nats", tf->kl_nats},
              {"top1_agree", tf->top1_agree},
              {"top5_overlap", tf->top5_overlap},
              {"teacher_forced_seconds", tf->seconds}};
    if (g) {
      r["greedy_token_agree"] = g->token_agree;
      r["greedy_prefix_match"] = g->mean_prefix_match;
    } else {
      r["greedy_token_agree"] = nullptr;
      r["greedy_prefix_match"] = nullptr;
      r["greedy_error"] = g.status().to_string();
    }
    std::cerr << "bench_fidelity: " << r.dump() << "\n";
    rows.push_back(r);
  }

  // Goals: the best configuration at <= 4.0 bits per value (by KL) against top-1 >= 0.988 and
  // KL <= 0.004; greedy agreement 1.0 at 8 bits; one teacher-forced run within 20 s.
  const json* best = nullptr;
  double slowest = 0;
  bool greedy8 = false;
  for (const auto& r : rows) {
    slowest = std::max(slowest, r["teacher_forced_seconds"].get<double>());
    if (r["bits_per_value"].get<double>() <= 4.0 &&
        (!best || r["kl_nats"].get<double>() < (*best)["kl_nats"].get<double>())) {
      best = &r;
    }
    if (r["bits"].get<double>() == 8 && r["greedy_token_agree"].is_number() &&
        r["greedy_token_agree"].get<double>() == 1.0) {
      greedy8 = true;
    }
  }
  json goals = {{"best_at_most_4_bits", best ? (*best)["codec"] : json(nullptr)},
                {"best_top1_agree", best ? (*best)["top1_agree"] : json(nullptr)},
                {"best_kl_nats", best ? (*best)["kl_nats"] : json(nullptr)},
                {"goal_top1_at_least_0_988", best && (*best)["top1_agree"].get<double>() >= 0.988},
                {"goal_kl_at_most_0_004", best && (*best)["kl_nats"].get<double>() <= 0.004},
                {"goal_greedy_1_at_8_bits", greedy8},
                {"slowest_teacher_forced_seconds", slowest},
                {"goal_teacher_forced_within_20_s", slowest <= 20.0}};
  char date[32];
  const std::time_t t = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  json doc = {
      {"suite", "fidelity"},
      {"date", date},
      {"command", "./dev bench fidelity"},
      {"data", "devmodel windows.bin: 32 windows x 256 tokens; greedy 8 prompts x 128 + 64"},
      {"rows", rows},
      {"goals", goals}};
  std::cout << doc.dump(2) << "\n";
  if (!svg_path.empty()) {
    agp::tools::Panel kl{"KL(reference || codec), nats (log scale)", true, {}};
    agp::tools::Panel top1{"top-1 agreement", false, {}};
    for (const auto& r : rows) {
      if (r["codec"] == "raw") continue;  // 16 bits: off the scale of interest
      kl.points.push_back({r["codec"], {r["bits_per_value"], r["kl_nats"]}});
      top1.points.push_back({r["codec"], {r["bits_per_value"], r["top1_agree"]}});
    }
    std::ofstream(svg_path) << agp::tools::scatter_panels_svg(
        "devmodel, split 2: continuation fidelity against bits per value", {kl, top1});
  }
  if (!out_path.empty()) {
    std::ofstream f(out_path);
    f << doc.dump(2) << "\n";
    if (!f) die("cannot write " + out_path);
  }
  return 0;
}
