// split_host: one Llama-family model split across two hosts with AGP-PTP.
//
// The receiving host runs layers [split, N) and the head; the sending host embeds the prompt, runs
// layers [0, split) and sends the hidden state (fp16, compressed by the chosen codec) over a Link.
// The receiver continues the model, picks the next token greedily and sends it back as a
// one-value packet; the sender feeds it through its layers and sends the next state, and so on.
//
//   split_host recv --model DIR --split L [--listen 127.0.0.1] [--port 0]
//   split_host send --model DIR --split L --port P [--host 127.0.0.1] [--codec tq4]
//                   [--prompt TEXT] [--tokens 32] [--check]
//
// Token ids are the prompt's bytes (the byte-level fixture ../shared/fixtures/devmodel); models
// with other vocabularies take ids from their tokenizer instead. --check also runs the whole model
// locally without compression and reports how many generated tokens agree.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "agp/codec/dtype.hpp"
#include "agp/fidelity/llama.hpp"
#include "agp/ptp/fingerprint.hpp"
#include "agp/ptp/tensor_packet.hpp"
#include "agp/transport/link.hpp"

namespace {

using agp::transport::Link;
using agp::transport::Millis;
constexpr Millis kTimeout{30000};

int fail(const std::string& what, const agp::Status& s) {
  std::fprintf(stderr, "split_host: %s: %s\n", what.c_str(), s.to_string().c_str());
  return 1;
}

int argmax(const std::vector<float>& logits, int vocab, int row) {
  const float* r = logits.data() + static_cast<std::size_t>(row) * vocab;
  return static_cast<int>(std::max_element(r, r + vocab) - r);
}

std::string printable(const std::vector<int>& tokens) {
  std::string s;
  for (int t : tokens) s += (t >= 32 && t < 127) || t == '\n' ? static_cast<char>(t) : '?';
  return s;
}

// The link settings both ends share: the checkpoint's fingerprint binds model, weights and split.
agp::Result<agp::transport::LinkOptions> options(const std::string& dir, int split, int hidden) {
  auto fp = agp::ptp::checkpoint_fingerprint(dir, split, static_cast<std::uint64_t>(hidden));
  if (!fp) return fp.status();
  agp::transport::LinkOptions o;
  o.fingerprint = *fp;
  o.model_id = agp::ptp::checkpoint_model_id(dir);
  o.split_layer = split;
  o.chunk_vectors = 64;
  return o;
}

// Layers [0, split) over `tokens` (appended to the cache), as the fp16 state to send.
agp::Result<std::vector<std::uint16_t>> lower_half(const agp::fidelity::LlamaModel& model,
                                                   const std::vector<int>& tokens, int split,
                                                   agp::fidelity::KvCache& cache) {
  const int hidden = model.config().hidden_size;
  const int n = static_cast<int>(tokens.size());
  std::vector<float> x(static_cast<std::size_t>(n) * hidden);
  AGP_RETURN_IF_ERROR(model.embed(tokens, x.data()));
  AGP_RETURN_IF_ERROR(model.run_layers(0, split, x.data(), n, cache));
  std::vector<std::uint16_t> state(x.size());
  std::transform(x.begin(), x.end(), state.begin(), agp::f32_to_f16);
  return state;
}

int receive(const agp::fidelity::LlamaModel& model, int split, const agp::transport::LinkOptions& o,
            const std::string& address, std::uint16_t port) {
  const auto& cfg = model.config();
  auto server = agp::transport::Server::listen(address, port, o);
  if (!server) return fail("listen", server.status());
  std::printf("port %u\n", (*server)->port());
  std::fflush(stdout);
  auto link = (*server)->accept(Millis(60000));
  if (!link) return fail("accept", link.status());
  agp::fidelity::KvCache cache = model.new_cache();
  const auto f32 = agp::ptp::parse_packet_codec("raw", agp::DType::kF32);
  int steps = 0;
  for (;; ++steps) {
    auto next = (*link)->next_packet(kTimeout);
    if (!next && next.status().code() == agp::ErrorCode::kConnectionClosed) break;
    if (!next) return fail("next packet", next.status());
    const std::vector<std::uint64_t> shape = next->tensor->shape;
    if (shape.size() != 2 || shape[1] != static_cast<std::uint64_t>(cfg.hidden_size)) {
      return fail("packet", agp::Status(agp::ErrorCode::kInvalidArgument,
                                        "expected a [tokens, hidden] state"));
    }
    const int n = static_cast<int>(shape[0]);
    std::vector<float> x(static_cast<std::size_t>(n) * cfg.hidden_size);
    auto got = (*link)->receive(
        agp::codec::TensorView::contiguous(x.data(), agp::DType::kF32, shape, 1), kTimeout);
    if (!got) return fail("receive", got.status());
    // Continue the model from the received state, then answer with the greedy next token.
    if (auto s = model.run_layers(split, cfg.num_layers, x.data(), n, cache); !s)
      return fail("layers", s);
    std::vector<float> logits(static_cast<std::size_t>(n) * cfg.vocab_size);
    model.head(x.data(), n, logits.data());
    float token = static_cast<float>(argmax(logits, cfg.vocab_size, n - 1));
    auto sent = (*link)->send(agp::codec::TensorView::contiguous(&token, agp::DType::kF32, {1}, 0),
                              *f32, {"next_token", 0, agp::ptp::Layout::kUnspecified}, kTimeout);
    if (!sent) return fail("send token", sent.status());
  }
  std::printf("served %d steps; the sender closed the link\n", steps);
  return 0;
}

int send(const agp::fidelity::LlamaModel& model, int split, const agp::transport::LinkOptions& o,
         const std::string& host, std::uint16_t port, const std::string& codec_name,
         const std::string& prompt, int tokens, bool check) {
  const auto& cfg = model.config();
  auto codec = agp::ptp::parse_packet_codec(codec_name, agp::DType::kF16);
  if (!codec) return fail("--codec", codec.status());
  auto link = Link::connect(host, port, o);
  if (!link) return fail("connect", link.status());
  agp::fidelity::KvCache cache = model.new_cache();
  std::vector<int> ids(prompt.begin(), prompt.end());
  std::vector<int> generated;
  std::vector<double> step_us;
  std::uint64_t wire = 0;
  std::vector<int> feed = ids;
  for (int t = 0; t < tokens; ++t) {
    const auto t0 = std::chrono::steady_clock::now();
    auto state = lower_half(model, feed, split, cache);
    if (!state) return fail("layers", state.status());
    const std::vector<std::uint64_t> shape = {feed.size(),
                                              static_cast<std::uint64_t>(cfg.hidden_size)};
    auto r =
        (*link)->send(agp::codec::TensorView::contiguous(state->data(), agp::DType::kF16, shape, 1),
                      *codec, {"hidden", 0, agp::ptp::Layout::kSD}, kTimeout);
    if (!r) return fail("send state", r.status());
    wire += r->wire_bytes;
    float token = 0;
    auto back = (*link)->receive(
        agp::codec::TensorView::contiguous(&token, agp::DType::kF32, {1}, 0), kTimeout);
    if (!back) return fail("receive token", back.status());
    step_us.push_back(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
    generated.push_back(static_cast<int>(token));
    feed = {generated.back()};
  }
  if (auto s = (*link)->close(Millis(5000)); !s) return fail("close", s);
  std::sort(step_us.begin(), step_us.end());
  std::printf("prompt:    %s\n", printable(ids).c_str());
  std::printf("generated: %s\n", printable(generated).c_str());
  std::printf("%d tokens, codec %s, %llu state bytes on the wire, step p50 %.0f us\n", tokens,
              codec_name.c_str(), static_cast<unsigned long long>(wire),
              step_us[step_us.size() / 2]);
  if (check) {  // the same greedy generation on one host, uncompressed
    agp::fidelity::KvCache full = model.new_cache();
    std::vector<int> in = ids, local;
    for (int t = 0; t < tokens; ++t) {
      std::vector<float> x(in.size() * static_cast<std::size_t>(cfg.hidden_size));
      const int n = static_cast<int>(in.size());
      if (auto s = model.embed(in, x.data()); !s) return fail("check", s);
      if (auto s = model.run_layers(0, cfg.num_layers, x.data(), n, full); !s)
        return fail("check", s);
      std::vector<float> logits(static_cast<std::size_t>(n) * cfg.vocab_size);
      model.head(x.data(), n, logits.data());
      local.push_back(argmax(logits, cfg.vocab_size, n - 1));
      in = {local.back()};
    }
    int agree = 0;
    for (int t = 0; t < tokens; ++t)
      agree += generated[static_cast<std::size_t>(t)] == local[static_cast<std::size_t>(t)];
    std::printf("check: %d of %d tokens agree with the uncompressed model on one host\n", agree,
                tokens);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || (std::string(argv[1]) != "send" && std::string(argv[1]) != "recv")) {
    std::fprintf(stderr,
                 "usage: split_host recv --model DIR --split L [--listen ADDR] [--port P]\n"
                 "       split_host send --model DIR --split L --port P [--host H] [--codec tq4]\n"
                 "                       [--prompt TEXT] [--tokens N] [--check]\n");
    return 2;
  }
  std::map<std::string, std::string> arg = {{"--listen", "127.0.0.1"}, {"--host", "127.0.0.1"},
                                            {"--port", "0"},           {"--codec", "tq4"},
                                            {"--tokens", "32"},        {"--prompt", "#include <"}};
  bool check = false;
  for (int i = 2; i < argc; ++i) {
    const std::string k = argv[i];
    if (k == "--check") {
      check = true;
    } else if (arg.count(k) || k == "--model" || k == "--split") {
      if (i + 1 >= argc)
        return fail(k, agp::Status(agp::ErrorCode::kInvalidArgument, "needs a value"));
      arg[k] = argv[++i];
    } else {
      return fail(k, agp::Status(agp::ErrorCode::kInvalidArgument, "unknown option"));
    }
  }
  if (!arg.count("--model") || !arg.count("--split")) {
    return fail("usage",
                agp::Status(agp::ErrorCode::kInvalidArgument, "--model and --split are required"));
  }
  auto model = agp::fidelity::LlamaModel::load(arg["--model"]);
  if (!model) return fail("--model " + arg["--model"], model.status());
  const int split = std::atoi(arg["--split"].c_str());
  if (split < 1 || split >= model->config().num_layers) {
    return fail("--split",
                agp::Status(agp::ErrorCode::kInvalidArgument,
                            "must be in [1, " + std::to_string(model->config().num_layers) + ")"));
  }
  auto o = options(arg["--model"], split, model->config().hidden_size);
  if (!o) return fail("fingerprint", o.status());
  const auto port = static_cast<std::uint16_t>(std::atoi(arg["--port"].c_str()));
  if (std::string(argv[1]) == "recv") return receive(*model, split, *o, arg["--listen"], port);
  const int tokens = std::atoi(arg["--tokens"].c_str());
  if (tokens < 1)
    return fail("--tokens", agp::Status(agp::ErrorCode::kInvalidArgument, "must be >= 1"));
  return send(*model, split, *o, arg["--host"], port, arg["--codec"], arg["--prompt"], tokens,
              check);
}
