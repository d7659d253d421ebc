// ptp-send: sends tensor packets to a ptp-recv (or any Server) and measures, per codec, how long a
// packet takes to be delivered: from the start of send() (encoding included) to the arrival of the
// receiver's acknowledgement, which it sends only after verifying the packet and decoding it into
// its buffer. Codecs are interleaved packet by packet so the comparison is fair on a busy machine.
#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>

#include "agp/codec/dtype.hpp"
#include "agp/ptp/frame_decoder.hpp"
#include "agp/ptp/npy.hpp"
#include "agp/ptp/packet_codecs.hpp"
#include "agp/ptp/safetensors.hpp"
#include "agp/transport/metrics.hpp"
#include "common/json_text.hpp"
#include "common/metrics_server.hpp"
#include "common/progress.hpp"
#include "common/report.hpp"
#include "common/tool_support.hpp"
#ifdef AGP_HAVE_FIDELITY
#include "common/model_split.hpp"
#endif

namespace {

using namespace agp;
using namespace agp::tools;
using Clock = std::chrono::steady_clock;
using json = nlohmann::json;
using transport::Millis;
constexpr const char* kTool = "ptp-send";

struct Options {
  std::string host = "127.0.0.1";
  int port = 7400;
  std::string interface;
  std::string codecs = "raw,tq4,tq8";
  int count = 100;
  int warmup = 10;
  std::string generator = "gauss";
  std::uint64_t seed = 1;
  std::string shape = "1,1280,1,256";
  std::string dtype = "f16";
  std::string input;
  std::string tensor;
  std::uint64_t chunk_vectors = 0;
  int encode_threads = 1;
  std::string model;  // split-model mode
  std::string bytes;
  int seq = 256;
  int windows = 32;
  double rate = 0;
  int streams = 1;
  int timeout_ms = 10000;
  int connect_timeout_ms = 5000;
  Identity identity;
  Liveness liveness;
  Carrier carrier;
  std::string ack_log;
  int metrics_port = -1;  // -1: no /metrics
  std::string metrics_address = "127.0.0.1";
  double linger_s = 0;  // keep /metrics up this long after the run
  bool json = false;
  bool quiet = false;
  std::string report;
};

// The packets to send: generated, or tensors read from a file (cycled).
struct Source {
  Generator generator;
  std::vector<std::uint64_t> shape;
  DType dtype = DType::kF16;
  struct FileTensor {
    std::string name;
    std::vector<std::uint64_t> shape;
    DType dtype;
    std::vector<std::byte> bytes;
  };
  std::vector<FileTensor> files;
  std::string description;
#ifdef AGP_HAVE_FIDELITY
  std::shared_ptr<ModelSplit> model;
#endif

  // The tensor for packet i (same for every codec), with its name.
  std::pair<std::string, std::shared_ptr<FileTensor>> make(std::uint64_t i) const {
    auto t = std::make_shared<FileTensor>();
#ifdef AGP_HAVE_FIDELITY
    if (model) {  // the sender's half of the model, as fp16 (errors were ruled out at start-up)
      const std::size_t w = i % model->windows();
      auto state = model->state(w);
      t->name = ModelSplit::tag(w);
      t->shape = {static_cast<std::uint64_t>(model->seq()), model->hidden()};
      t->dtype = DType::kF16;
      t->bytes.resize(state ? state->size() * 2 : 0);
      for (std::size_t k = 0; state && k < state->size(); ++k) {
        const std::uint16_t h = f32_to_f16((*state)[k]);
        std::memcpy(t->bytes.data() + 2 * k, &h, 2);
      }
      return {t->name, t};
    }
#endif
    if (files.empty()) {
      t->name = generator.tag(i);
      t->shape = shape;
      t->dtype = dtype;
      t->bytes = generator.make(i, shape, dtype, default_vector_axis(shape));
    } else {
      *t = files[i % files.size()];
    }
    return {t->name, t};
  }
};

Result<Source> make_source(const Options& o) {
  Source s;
  auto d = parse_float_dtype(o.dtype);
  if (!d) return d.status();
  s.dtype = *d;
  if (!o.model.empty()) {
#ifdef AGP_HAVE_FIDELITY
    auto m = ModelSplit::open(o.model, o.identity.split_layer, o.bytes, o.seq, o.windows);
    if (!m) return m.status();
    if (auto first = m->state(0); !first) return first.status();
    s.model = std::make_shared<ModelSplit>(std::move(m).value());
    s.description = "split states of " + o.model + " (layers [0, " +
                    std::to_string(o.identity.split_layer) + ") on " +
                    std::to_string(s.model->windows()) + " windows of " + std::to_string(o.seq) +
                    " tokens of " + o.bytes + ")";
    return s;
#else
    return make_error(ErrorCode::kInvalidArgument, "--model: built without the fidelity harness");
#endif
  }
  if (o.input.empty()) {
    auto shape = parse_shape(o.shape);
    if (!shape) return shape.status();
    auto g = Generator::parse(o.generator, o.seed);
    if (!g) return g.status();
    s.generator = *g;
    s.shape = *shape;
    // The receiver refuses larger tensors (and generating one could exhaust memory here).
    const std::uint64_t limit = ptp::DecoderLimits{}.max_tensor_bytes;
    const auto elements = ptp::shape_element_count(s.shape);
    if (!elements || *elements > limit / dtype_size(s.dtype)) {
      return make_error(ErrorCode::kInvalidArgument,
                        "--shape [" + o.shape + "] in " + std::string(dtype_name(s.dtype)) +
                            " is more than a packet may carry (" + std::to_string(limit) +
                            " bytes, DecoderLimits::max_tensor_bytes)");
    }
    s.description = o.generator + " (seed " + std::to_string(o.seed) + ") [" + o.shape + "] " +
                    std::string(dtype_name(s.dtype));
    return s;
  }
  auto add = [&](const std::string& name, DType dtype, const std::vector<std::uint64_t>& shape,
                 std::span<const std::byte> data) -> Status {
    if (!is_float_dtype(dtype) || shape.empty()) {
      return make_error(ErrorCode::kInvalidArgument,
                        "--input: tensor '" + name + "' is not a float tensor of rank >= 1");
    }
    s.files.push_back({name, shape, dtype, std::vector<std::byte>(data.begin(), data.end())});
    return {};
  };
  const bool npy = o.input.size() > 4 && o.input.substr(o.input.size() - 4) == ".npy";
  if (npy) {
    auto a = ptp::read_npy(o.input);
    if (!a) return make_error(ErrorCode::kInvalidArgument, "--input: " + a.status().message());
    AGP_RETURN_IF_ERROR(add("npy:" + o.input, a->view.dtype, a->view.shape, a->view.data));
  } else {
    auto m = ptp::SafetensorsModel::open(o.input);
    if (!m) return make_error(ErrorCode::kInvalidArgument, "--input: " + m.status().message());
    for (const auto& t : m->tensors()) {
      if (!o.tensor.empty() && t.name != o.tensor) continue;
      if (o.tensor.empty() && (!is_float_dtype(t.dtype) || t.shape.empty())) continue;
      AGP_RETURN_IF_ERROR(add(t.name, t.dtype, t.shape, t.data));
    }
    if (s.files.empty()) {
      return make_error(ErrorCode::kInvalidArgument,
                        o.tensor.empty() ? "--input: no float tensor in " + o.input
                                         : "--input: no tensor '" + o.tensor + "' in " + o.input);
    }
  }
  s.description = o.input + " (" + std::to_string(s.files.size()) + " tensor" +
                  (s.files.size() == 1 ? "" : "s") + ")";
  return s;
}

struct Lane {
  std::string name;
  ptp::PacketCodec codec;
  std::vector<double> latency_us, encode_us;
  std::uint64_t wire_bytes = 0;  // of the timed packets
  std::uint64_t fp16_bytes = 0;  // the same tensors as raw fp16
  std::uint64_t values = 0;
  std::uint32_t chunks = 1;
  ErrorStats error;
};

// The receiver decodes exactly these bytes (checksummed), so decoding the same packet here gives
// the error the receiver's copy has.
Status add_error(Lane& lane, const codec::TensorView& view, ptp::Layout layout) {
  ptp::TensorPacketWriter w(lane.codec);
  auto g = w.write(view, ptp::MessageHeader{}, layout);
  if (!g) return g.status();
  const auto flat = g->flatten();
  auto f = ptp::parse_frame(flat);
  if (!f) return f.status();
  std::vector<std::byte> out(view.vector_count() * view.dim() * 4);
  auto decoded =
      codec::TensorView::contiguous(out.data(), DType::kF32, view.shape, view.vector_axis);
  ptp::TensorPacketReader reader;
  reader.set_calibration(lane.codec.calibration);
  AGP_RETURN_IF_ERROR(reader.read(f->header, f->body, decoded));
  lane.error.add(view, decoded);
  return {};
}

int run(const Options& o, const std::string& command) {
  auto source = make_source(o);
  if (!source) return fail(kTool, source.status().message(), kExitUsage);
  std::vector<Lane> lanes;
  auto names = split_list(o.codecs, "--codecs");
  if (!names) return fail(kTool, names.status().message(), kExitUsage);
  for (const auto& n : *names) {
    auto c = parse_codec(n, source->files.empty() ? source->dtype : source->files[0].dtype);
    if (!c) return fail(kTool, "--codecs: " + c.status().message(), kExitUsage);
    Lane lane;
    lane.name = n;
    lane.codec = *c;
    lanes.push_back(std::move(lane));
  }
  auto lo = link_options(o.identity, kTool);
#ifdef AGP_HAVE_FIDELITY
  if (source->model) lo = model_link_options(o.identity, *source->model, kTool);
#endif
  if (!lo) return fail(kTool, lo.status().message(), kExitUsage);
  for (Lane& lane : lanes) {
    if (lane.codec.config.id != CodecId::kTurboQuantCal) continue;
    if (!lo->calibration) {
      return fail(kTool, "--codecs " + lane.name + ": the calibrated codec needs --calibration FILE (ptp-calibrate)", kExitUsage);
    }
    lane.codec.calibration = lo->calibration;
  }
  lo->bind_interface = o.interface;
  lo->chunk_vectors = o.chunk_vectors;
  lo->streams = static_cast<std::uint16_t>(o.streams);
  lo->encode_threads = static_cast<std::uint16_t>(o.encode_threads);
  lo->connect_timeout = Millis(o.connect_timeout_ms);
  apply(o.liveness, *lo);
  if (Status c = apply(o.carrier, *lo); !c) return fail(kTool, c.message(), kExitUsage);
  // One line per acknowledged packet, written as it is acknowledged, so a record survives even a
  // SIGKILL of this process (the fault scenarios compare it with the receiver's journal).
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> ack_log(nullptr, &std::fclose);
  if (!o.ack_log.empty()) {
    ack_log.reset(std::fopen(o.ack_log.c_str(), "a"));
    if (!ack_log) return fail(kTool, "--ack-log: cannot open '" + o.ack_log + "'", kExitUsage);
  }
  if (o.port < 1 || o.port > 65535) return fail(kTool, "--port must be 1..65535", kExitUsage);
  if (o.rate > 0 && o.rate < 1e-3) {
    return fail(kTool, "--rate below 0.001 packets per second; 0 sends back to back", kExitUsage);
  }
  auto link = transport::Link::connect(o.host, static_cast<std::uint16_t>(o.port), *lo);
  if (!link) {
    return fail(kTool, "cannot reach " + o.host + ":" + std::to_string(o.port) + ": " +
                           link.status().message() + " [" +
                           std::string(error_code_name(link.status().code())) + "]");
  }
  const transport::LinkInfo info = (*link)->info();
  // From here on, a failure tells the receiver why at once (it would otherwise wait out its
  // deadline for packets that never come).
  auto give_up = [&](const std::string& why, int code = kExitFailure) {
    (*link)->abort(make_error(ErrorCode::kAborted, std::string(kTool) + " gave up: " + why));
    return fail(kTool, why, code);
  };
  if (!o.quiet && !o.json) {
    std::fprintf(stderr, "%s: connected to %s (%s) from %s on interface %s\n", kTool,
                 info.remote_endpoint.c_str(), info.peer_name.c_str(), info.local_endpoint.c_str(),
                 info.local_interface.empty() ? "?" : info.local_interface.c_str());
  }

  // /metrics: the link's counters and histograms, published after every packet.
  std::unique_ptr<MetricsServer> metrics;
  if (o.metrics_port >= 0) {
    auto m = MetricsServer::start(o.metrics_address, static_cast<std::uint16_t>(o.metrics_port));
    if (!m) return give_up("--metrics-port: " + m.status().message(), kExitUsage);
    metrics = std::move(m).value();
  }
  auto publish = [&] {
    if (!metrics) return;
    metrics->publish(transport::prometheus_text(
        {{{{"link", "send"}, {"peer", info.remote_endpoint}}, (*link)->metrics()}}));
  };
  publish();
  // Announced only once the first exposition is there (a scraper may come at once).
  if (metrics && o.metrics_port == 0) {
    std::printf("metrics-port %u\n", metrics->port());
    std::fflush(stdout);
  }
  if (metrics && !o.quiet && !o.json) {
    std::fprintf(stderr, "%s: metrics at http://%s:%u/metrics\n", kTool, o.metrics_address.c_str(),
                 metrics->port());
  }
  const std::uint64_t total = static_cast<std::uint64_t>(o.warmup + o.count);
  Progress progress("sending", total, o.quiet || o.json);
  const auto start = Clock::now();
  auto next_slot = start;
  for (std::uint64_t i = 0; i < total; ++i) {
    auto [name, t] = source->make(i);
    const auto view = codec::TensorView::contiguous(t->bytes.data(), t->dtype, t->shape,
                                                    default_vector_axis(t->shape));
    const auto layout = default_layout(t->shape);
    for (Lane& lane : lanes) {  // interleaved: every codec sends packet i before packet i+1
      if (o.rate > 0) {         // pace: keep heartbeats and acks flowing while waiting for the slot
        next_slot += std::chrono::duration_cast<Clock::duration>(
            std::chrono::duration<double>(1.0 / o.rate));
        while (Clock::now() < next_slot) {
          (*link)->poll();
          std::this_thread::sleep_for(
              std::min<Clock::duration>(next_slot - Clock::now(), std::chrono::milliseconds(1)));
        }
      }
      const auto t0 = Clock::now();
      auto r = (*link)->send(view, lane.codec, {name, 0, layout}, Millis(o.timeout_ms));
      const double us = micros_since(t0);
      if (!r) {
        return give_up("packet " + std::to_string(i) + " (" + lane.name +
                               "): " + r.status().message() + " [" +
                               std::string(error_code_name(r.status().code())) + "]");
      }
      if (ack_log) {
        const int wrote = std::fprintf(ack_log.get(), "%llu %s\n",
                                       static_cast<unsigned long long>(r->sequence), name.c_str());
        if (wrote < 0 || std::fflush(ack_log.get()) != 0) {
          return give_up("--ack-log: cannot write '" + o.ack_log + "': " +
                                 std::strerror(errno));
        }
      }
      if (i < static_cast<std::uint64_t>(o.warmup)) continue;
      lane.latency_us.push_back(us);
      lane.encode_us.push_back(r->encode_us);
      lane.wire_bytes += r->wire_bytes;
      lane.chunks = r->chunks;
      lane.values += view.vector_count() * view.dim();
      lane.fp16_bytes += view.vector_count() * view.dim() * 2;
      if (auto s = add_error(lane, view, layout); !s) {
        return give_up("checking " + lane.name + ": " + s.to_string());
      }
    }
    progress.update(i + 1);
    publish();
  }
  progress.finish();
  publish();
  const transport::Counters counters = (*link)->counters();
  if (auto s = (*link)->close(Millis(o.timeout_ms)); !s) {
    return fail(kTool, "closing the link: " + s.message());
  }

  json doc;
  char run_id[32];
  const std::time_t now = std::time(nullptr);
  std::strftime(run_id, sizeof run_id, "%Y%m%dT%H%M%SZ", std::gmtime(&now));
  doc["tool"] = kTool;
  doc["run_id"] = run_id;
  doc["command"] = command;
  doc["data"] = source->description;
  doc["peer"] = {{"endpoint", info.remote_endpoint}, {"name", info.peer_name}};
  doc["local"] = {{"endpoint", info.local_endpoint}, {"interface", info.local_interface}};
  doc["backend"] = o.carrier.backend;
  doc["packets_per_codec"] = o.count;
  doc["warmup_per_codec"] = o.warmup;
  doc["chunk_vectors"] = o.chunk_vectors;
  doc["encode_threads"] = o.encode_threads;
  doc["latency"] =
      "from send() start (encoding included) to the receiver's acknowledgement, sent "
      "after it verified and decoded the packet";
  json rows = json::array();
  for (const Lane& l : lanes) {
    const double n = static_cast<double>(l.latency_us.size());
    double total_us = 0;
    for (double v : l.latency_us) total_us += v;
    json r;
    r["codec"] = l.name;
    r["packets"] = l.latency_us.size();
    r["bytes_per_packet"] = n > 0 ? static_cast<double>(l.wire_bytes) / n : 0.0;
    r["ratio_vs_fp16"] =
        l.wire_bytes ? static_cast<double>(l.fp16_bytes) / static_cast<double>(l.wire_bytes) : 0.0;
    r["bits_per_value"] =
        l.values ? 8.0 * static_cast<double>(l.wire_bytes) / static_cast<double>(l.values) : 0.0;
    r["chunks_per_packet"] = l.chunks;
    r["latency_us"] = {{"p50", percentile(l.latency_us, 0.5)},
                       {"p95", percentile(l.latency_us, 0.95)},
                       {"p99", percentile(l.latency_us, 0.99)},
                       {"max", percentile(l.latency_us, 1.0)},
                       {"mean", n > 0 ? total_us / n : 0.0}};
    r["encode_us_p50"] = percentile(l.encode_us, 0.5);
    r["packets_per_s"] = total_us > 0 ? n / (total_us / 1e6) : 0.0;
    r["gbit_per_s"] =
        total_us > 0 ? 8.0 * static_cast<double>(l.wire_bytes) / (total_us * 1e3) : 0.0;
    r["rel_mse"] = l.error.rel_mse();
    r["cosine"] = l.error.cosine();
    r["max_abs_error"] = l.error.max_abs;
    rows.push_back(r);
  }
  doc["codecs"] = rows;
  doc["counters"] = {{"retransmits", counters.retransmits},
                     {"reconnects", counters.reconnects},
                     {"checksum_failures", counters.checksum_failures},
                     {"frame_errors", counters.frame_errors},
                     {"bytes_sent", counters.bytes_sent}};
  doc["seconds"] = std::chrono::duration<double>(Clock::now() - start).count();

  std::string table;
  char line[512];
  std::snprintf(line, sizeof line, "%-6s %8s %11s %8s %9s %9s %9s %9s %9s %7s %10s %9s\n", "codec",
                "packets", "bytes/pkt", "vs fp16", "p50 us", "p95 us", "p99 us", "max us", "pkt/s",
                "Gbit/s", "rel MSE", "cosine");
  table += line;
  for (const auto& r : rows) {
    std::snprintf(line, sizeof line,
                  "%-6s %8llu %11.0f %7.2fx %9.1f %9.1f %9.1f %9.1f %9.0f %7.2f %10.3g %9.5f\n",
                  r["codec"].get<std::string>().c_str(),
                  static_cast<unsigned long long>(r["packets"].get<std::uint64_t>()),
                  r["bytes_per_packet"].get<double>(), r["ratio_vs_fp16"].get<double>(),
                  r["latency_us"]["p50"].get<double>(), r["latency_us"]["p95"].get<double>(),
                  r["latency_us"]["p99"].get<double>(), r["latency_us"]["max"].get<double>(),
                  r["packets_per_s"].get<double>(), r["gbit_per_s"].get<double>(),
                  r["rel_mse"].get<double>(), r["cosine"].get<double>());
    table += line;
  }
  const std::string heading = "ptp-send: " + std::to_string(o.count) + " packets per codec (+" +
                              std::to_string(o.warmup) + " warm-up) of " + source->description +
                              " to " + info.remote_endpoint + " via " +
                              (info.local_interface.empty() ? "?" : info.local_interface);
  if (o.json) {
    std::cout << tools::json_text(doc, 2) << "\n";
  } else {
    std::printf(
        "%s\nlatency: send() start to the receiver's ack (verified and decoded there)\n\n%s",
        heading.c_str(), table.c_str());
    std::printf("\nretransmits %llu, reconnects %llu\n",
                static_cast<unsigned long long>(counters.retransmits),
                static_cast<unsigned long long>(counters.reconnects));
  }
  if (!o.report.empty()) {
    std::vector<Series> series;
    for (const Lane& l : lanes) series.push_back({l.name, l.latency_us});
    const std::string md = "# ptp-send run " + std::string(run_id) + "\n\n- command: `" + command +
                           "`\n- data: " + source->description +
                           "\n- peer: " + info.remote_endpoint + " (" + info.peer_name +
                           "), local interface " + info.local_interface +
                           "\n- latency: send() start to the receiver's "
                           "acknowledgement (verified and decoded there)\n\n```\n" +
                           table + "```\n";
    const std::string title = "ptp-send delivery latency, " + std::to_string(o.count) +
                              " packets per codec, to " + info.remote_endpoint;
    if (auto s = write_report(o.report, md, latency_cdf_svg(series, title)); !s) {
      return fail(kTool, "--report: " + s.message());
    }
  }
  if (metrics && o.linger_s > 0) {  // the final figures, for a last scrape
    publish();
    std::this_thread::sleep_for(std::chrono::duration<double>(o.linger_s));
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{
      "ptp-send: sends tensor packets to ptp-recv and measures delivery latency per codec: from "
      "the start of send() (encoding included) to the arrival of the receiver's acknowledgement, "
      "which the receiver sends only after verifying the packet (checksums, model fingerprint) and "
      "decoding it into its buffer. Codecs are interleaved packet by packet. The error (rel MSE, "
      "cosine) is that of the decoded packet, which the receiver holds bit for bit."};
  app.add_option("--host", o.host, "receiver address (an IP address)");
  app.add_option("--port", o.port, "receiver port");
  app.add_option("--interface", o.interface,
                 "send only through this interface (for example bridge0, the Thunderbolt bridge)");
  app.add_option("--codecs", o.codecs,
                 "comma-separated: " + ptp::packet_codec_names() +
                     " (tq: TurboQuant, prod: TurboQuant-prod, int: block absmax, ec: "
                     "TurboQuant-EC)");
  app.add_option("-n,--count", o.count, "timed packets per codec")->check(CLI::Range(1, 10000000));
  app.add_option("--warmup", o.warmup, "untimed packets per codec first")
      ->check(CLI::Range(0, 1000000));
  app.add_option(
      "--generator", o.generator,
      "gauss (N(0,1), the seed plan's packets) or llm-like (outlier channels, heavy tails)");
  app.add_option("--seed", o.seed, "generator seed");
  app.add_option("--shape", o.shape,
                 "generated tensor shape; vectors along axis 1 for rank 4, else the last");
  app.add_option("--dtype", o.dtype, "generated dtype: f16, bf16 or f32");
  app.add_option("--input", o.input,
                 "send tensors from a .npy file or a safetensors file/directory instead");
  app.add_option("--tensor", o.tensor, "with a safetensors --input: only this tensor");
  app.add_option("--model", o.model,
                 "split-model mode: run layers [0, --split) of this Llama-family checkpoint on "
                 "--bytes windows and send the split states (ptp-recv --model continues them)");
  app.add_option("--bytes", o.bytes, "split-model mode: evaluation text (byte-level token ids)");
  app.add_option("--seq", o.seq, "split-model mode: tokens per window")
      ->check(CLI::Range(2, 1 << 20));
  app.add_option("--windows", o.windows, "split-model mode: at most this many windows (cycled)")
      ->check(CLI::Range(1, 1 << 20));
  app.add_option("--chunk-vectors", o.chunk_vectors,
                 "send per-vector codecs in chunks of this many vectors (0: whole packets)")
      ->check(CLI::Range(std::uint64_t{0}, std::uint64_t{1} << 40));
  app.add_option("--encode-threads", o.encode_threads,
                 "threads encoding the chunks of a packet side by side, this one included (1..16; "
                 "with --chunk-vectors)")
      ->check(CLI::Range(1, 16));
  app.add_option("--streams", o.streams,
                 "TCP connections to stripe chunks over (1..8; the receiver accepts up to its own "
                 "--streams)")
      ->check(CLI::Range(1, 8));
  app.add_option("--rate", o.rate, "packets per second across all codecs (0: back to back; else 0.001 to 1e7)")
      ->check(tools::number_in(0, 1e7));
  app.add_option("--timeout-ms", o.timeout_ms, "deadline per packet")->check(CLI::PositiveNumber);
  app.add_option("--connect-timeout-ms", o.connect_timeout_ms, "deadline for connecting")
      ->check(CLI::PositiveNumber);
  add_identity_options(app, o.identity);
  add_liveness_options(app, o.liveness);
  add_carrier_options(app, o.carrier);
  app.add_option("--ack-log", o.ack_log,
                 "append 'SEQUENCE NAME' to this file as each packet is acknowledged");
  app.add_option("--metrics-port", o.metrics_port,
                 "serve Prometheus metrics (counters, latency histograms per codec) at "
                 "http://ADDRESS:PORT/metrics, ADDRESS being --metrics-address; 0 picks a port "
                 "and prints 'metrics-port N' on stdout first")
      ->check(CLI::Range(0, 65535));
  app.add_option("--metrics-address", o.metrics_address,
                 "address for --metrics-port (default 127.0.0.1; 0.0.0.0 for every interface)");
  app.add_option("--metrics-linger-s", o.linger_s,
                 "with --metrics-port: keep serving this many seconds after the run, for a last "
                 "scrape")
      ->check(tools::number_in(0, 3600));
  app.add_flag("--json", o.json, "print one JSON document instead of the table");
  app.add_option("--report", o.report,
                 "write a Markdown report (and an SVG latency plot beside it)");
  app.add_flag("-q,--quiet", o.quiet, "no progress bar or connection line");
  if (auto code = parse_command_line(app, argc, argv, kTool)) return *code;
  return run(o, command_line(kTool, argc, argv));
}
