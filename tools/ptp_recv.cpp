// ptp-recv: listens for a ptp-send (or any Link), verifies and decodes every packet into a host
// buffer, acknowledges it, and reports per packet: bytes, codec, verification, decode time and
// one-way delivery latency. Can save decoded tensors as .npy and the received frames to a file.
#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <deque>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <functional>
#include <optional>

#include "agp/codec/dtype.hpp"
#include "agp/ptp/checksum.hpp"
#include "agp/ptp/frame_builder.hpp"
#include "agp/ptp/npy.hpp"
#include "agp/transport/interfaces.hpp"
#include "agp/transport/metrics.hpp"
#include "common/json_text.hpp"
#include "common/journal.hpp"
#include "common/metrics_server.hpp"
#include "common/progress.hpp"
#include "common/tool_support.hpp"
#ifdef AGP_HAVE_FIDELITY
#include "common/model_split.hpp"
#endif

namespace {

using namespace agp;
using namespace agp::tools;
using json = nlohmann::json;
using transport::Millis;
constexpr const char* kTool = "ptp-recv";

struct Options {
  std::string listen = "0.0.0.0";
  int port = 7400;
  std::string interface;
  std::uint64_t count = 0;
  std::string save_npy;
  std::string save_frames;
  bool check = false;
  std::string model;  // split-model mode
  std::string bytes;
  int seq = 256;
  int windows = 32;
  int idle_timeout_ms = 30000;
  int streams = 1;
  int decode_threads = 1;
  int sessions = 1;
  std::uint64_t max_tensor_bytes = std::uint64_t{1} << 30;
  std::string journal;
  int metrics_port = -1;  // -1: no /metrics
  std::string metrics_address;  // "": the --listen address
  Identity identity;
  Liveness liveness;
  Carrier carrier;
  bool json = false;
  bool quiet = false;
};

std::string codec_label(const ptp::CodecDesc& c) {
  std::string s(codec_name(c.codec));
  if (c.bits) s += "/" + std::to_string(c.bits);
  return s;
}

struct CodecSummary {
  std::uint64_t packets = 0;
  std::uint64_t bytes = 0;
  std::vector<double> decode_us, latency_us;
  ErrorStats error;
  bool checked = false;
#ifdef AGP_HAVE_FIDELITY
  fidelity::StateError state;
  fidelity::LogitError logits;
  bool scored = false;
#endif
};

// The per-codec table at the end: delivery latency, decode time, the decoded error (--check,
// split-model mode) and, in split-model mode, the continuation's fidelity.
void print_summary(const std::vector<std::string>& order,
                   std::map<std::string, CodecSummary>& summary) {
  if (order.empty()) return;
  bool errors = false, fidelity_cols = false;
  for (const auto& label : order) {
    errors = errors || summary[label].checked;
#ifdef AGP_HAVE_FIDELITY
    errors = errors || summary[label].scored;
    fidelity_cols = fidelity_cols || summary[label].scored;
#endif
  }
  std::printf("\n%-16s %7s %10s %9s %9s %9s %9s", "codec", "packets", "bytes/pkt", "lat p50",
              "lat p95", "lat p99", "dec p50");
  if (errors) std::printf(" %10s %8s", "rel MSE", "cosine");
  if (fidelity_cols) std::printf(" %10s %7s %7s", "KL nats", "top-1", "top-5");
  std::printf("\n");
  for (const auto& label : order) {
    const CodecSummary& c = summary[label];
    std::printf("%-16s %7llu %10.0f %9.1f %9.1f %9.1f %9.1f", label.c_str(),
                static_cast<unsigned long long>(c.packets),
                c.packets ? static_cast<double>(c.bytes) / static_cast<double>(c.packets) : 0.0,
                percentile(c.latency_us, 0.5), percentile(c.latency_us, 0.95),
                percentile(c.latency_us, 0.99), percentile(c.decode_us, 0.5));
    bool shown = false;
#ifdef AGP_HAVE_FIDELITY
    if (c.scored) {
      std::printf(" %10.3g %8.5f %10.3g %7.4f %7.4f", c.state.rel_mse(), c.state.cosine(),
                  c.logits.kl(), c.logits.top1_agree(), c.logits.top5_overlap());
      shown = true;
    }
#endif
    if (!shown && c.checked) std::printf(" %10.3g %8.5f", c.error.rel_mse(), c.error.cosine());
    std::printf("\n");
  }
  std::printf("latency: us from the sender's timestamp to decoded here (clocks must agree); "
              "dec: decode us%s\n",
              fidelity_cols ? "; KL, top-1, top-5: the continuation against the uncompressed "
                              "state's"
                            : "");
}

// The frame bytes again, from a verified frame (the builder lays them out identically).
Status append_frames(std::ofstream& out, const std::vector<ptp::Frame>& frames) {
  ptp::FrameBuilder builder;
  for (const ptp::Frame& f : frames) {
    std::vector<ptp::SectionInput> sections;
    for (std::size_t i = 0; i < f.header().sections.size(); ++i) {
      sections.push_back(
          {f.header().sections[i].kind, f.section(i), f.header().sections[i].checksum});
    }
    auto g = builder.build(f.header(), sections);
    if (!g) return g.status();
    for (const auto& p : g->pieces) {
      out.write(reinterpret_cast<const char*>(p.data()), static_cast<std::streamsize>(p.size()));
    }
  }
  if (!out) return make_error(ErrorCode::kIoError, "writing the frames file failed");
  return {};
}

// Runs `wait(timeout)` (a Link call that may be repeated and goes on where it stopped) for up to
// --idle-timeout-ms. Serving several sessions, it waits in slices: a session whose sender is gone
// (its connection down) gives way as soon as another sender has completed its handshake, instead
// of holding every other sender off until it times out.
template <typename Wait>
auto wait_in_session(transport::Link& link, transport::Server& server, const Options& o,
                     const Wait& wait, const std::function<void()>& each_slice)
    -> decltype(wait(Millis(0))) {
  // Waits go in slices when several sessions are served (to notice a new sender) or metrics are
  // (to publish them while waiting).
  if (o.sessions == 1 && o.metrics_port < 0) return wait(Millis(o.idle_timeout_ms));
  const auto until = std::chrono::steady_clock::now() + Millis(o.idle_timeout_ms);
  for (;;) {
    const auto left = std::chrono::duration_cast<Millis>(until - std::chrono::steady_clock::now());
    auto r = wait(std::clamp(left, Millis(0), Millis(100)));
    if (r || r.status().code() != ErrorCode::kTimeout || left <= Millis(0)) return r;
    each_slice();
    if (o.sessions != 1 && !link.connected() && server.peer_waiting()) {
      return make_error(ErrorCode::kPeerLost, "the sender went away and another sender is waiting");
    }
  }
}

int run(const Options& o) {
  auto lo = link_options(o.identity, kTool);
#ifdef AGP_HAVE_FIDELITY
  std::unique_ptr<ModelSplit> model;
  if (!o.model.empty()) {
    auto m = ModelSplit::open(o.model, o.identity.split_layer, o.bytes, o.seq, o.windows);
    if (!m) return fail(kTool, m.status().message(), kExitUsage);
    model = std::make_unique<ModelSplit>(std::move(m).value());
    lo = model_link_options(o.identity, *model, kTool);
  }
#else
  if (!o.model.empty())
    return fail(kTool, "--model: built without the fidelity harness", kExitUsage);
#endif
  if (!lo) return fail(kTool, lo.status().message(), kExitUsage);
  lo->streams = static_cast<std::uint16_t>(o.streams);
  lo->decode_threads = static_cast<std::uint16_t>(o.decode_threads);
  lo->limits.max_tensor_bytes = o.max_tensor_bytes;
  apply(o.liveness, *lo);
  if (Status c = apply(o.carrier, *lo); !c) return fail(kTool, c.message(), kExitUsage);
  std::optional<Journal> journal;
  if (!o.journal.empty()) {
    auto j = Journal::open(o.journal);
    if (!j) return fail(kTool, "--journal: " + j.status().message(), kExitUsage);
    journal.emplace(std::move(j).value());
    lo->known_sessions = journal->positions();  // resume where an earlier process got to
    lo->ack_on_receive = false;                 // acknowledge only what the journal holds
  }
  std::string address = o.listen;
  if (!o.interface.empty()) {
    auto a = transport::address_of(o.interface);
    if (!a) return fail(kTool, "--interface: " + a.status().message(), kExitUsage);
    address = *a;
  }
  if (o.port < 0 || o.port > 65535) return fail(kTool, "--port must be 0..65535", kExitUsage);
  if (!o.save_npy.empty()) {
    struct stat st {};
    if (::stat(o.save_npy.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      return fail(kTool, "--save-npy: '" + o.save_npy + "' is not a directory", kExitUsage);
    }
  }
  std::ofstream frames_out;
  if (!o.save_frames.empty()) {
    frames_out.open(o.save_frames, std::ios::binary | std::ios::trunc);
    if (!frames_out)
      return fail(kTool, "--save-frames: cannot create '" + o.save_frames + "'", kExitUsage);
  }
  auto server = transport::Server::listen(address, static_cast<std::uint16_t>(o.port), *lo);
  if (!server)
    return fail(kTool, server.status().message() + " [" +
                           std::string(error_code_name(server.status().code())) + "]");
  if (!o.quiet && !o.json) {
    std::fprintf(stderr, "%s: listening on %s:%u\n", kTool, address.c_str(), (*server)->port());
  }
  // The port, for scripts that asked for port 0 (one line on stdout before anything else).
  if (o.port == 0) {
    std::printf("port %u\n", (*server)->port());
    std::fflush(stdout);
  }
  // /metrics: the current link's counters and histograms, and the server's refused peers.
  std::unique_ptr<MetricsServer> metrics;
  if (o.metrics_port >= 0) {
    const std::string at = o.metrics_address.empty() ? address : o.metrics_address;
    auto m = MetricsServer::start(at, static_cast<std::uint16_t>(o.metrics_port));
    if (!m) return fail(kTool, "--metrics-port: " + m.status().message());
    metrics = std::move(m).value();
  }
  transport::LabeledMetrics last_link;  // the current session's, or the last one's
  auto publish = [&](const transport::Link* link) {
    if (!metrics) return;
    if (link) {
      const auto i = link->info();
      last_link = {{{"link", "recv"},
                    {"peer", i.remote_endpoint},
                    {"session", std::to_string(i.session_id)}},
                   link->metrics()};
    }
    std::vector<transport::LabeledMetrics> all;
    if (!last_link.labels.empty()) all.push_back(last_link);
    all.push_back({{{"link", "server"}}, {(*server)->counters(), {}}});
    metrics->publish(transport::prometheus_text(all));
  };
  publish(nullptr);
  // Announced only once the first exposition is there: a scraper that reads the port at once
  // must not find an empty page.
  if (metrics && o.metrics_port == 0) {
    std::printf("metrics-port %u\n", metrics->port());
    std::fflush(stdout);
  }
  if (metrics && !o.quiet && !o.json) {
    std::fprintf(stderr, "%s: metrics at http://%s:%u/metrics\n", kTool,
                 (o.metrics_address.empty() ? address : o.metrics_address).c_str(),
                 metrics->port());
  }
  json packets = json::array();
  std::map<std::string, CodecSummary> summary;
  std::vector<std::string> order;
  std::vector<std::byte> out;
  std::uint64_t received = 0;
  Progress progress("receiving", o.count, o.quiet || o.json);
#ifdef AGP_HAVE_FIDELITY
  struct ToScore {
    std::size_t window;
    std::string label;
    std::vector<float> state;
    std::size_t packet;  // index into `packets`
  };
  std::deque<ToScore> to_score;
  auto score_one = [&]() -> Status {
    ToScore job = std::move(to_score.front());
    to_score.pop_front();
    fidelity::StateError se;
    fidelity::LogitError le;
    AGP_RETURN_IF_ERROR(model->score(job.window, job.state.data(), se, le));
    CodecSummary& s = summary[job.label];
    s.state.merge(se);
    s.logits.merge(le);
    s.scored = true;
    if (o.json) {
      packets[job.packet]["rel_mse"] = se.rel_mse();
      packets[job.packet]["kl_nats"] = le.kl();
      packets[job.packet]["top1_agree"] = le.top1_agree();
    }
    return {};
  };
  // States wait for the end of the run (so scoring never delays a packet) up to this much memory;
  // beyond it the oldest is scored at once, and the latencies then include that work.
  constexpr std::size_t kMaxWaitingBytes = std::size_t{512} << 20;
  std::size_t waiting_bytes = 0;
#endif
  transport::LinkInfo info;
  transport::Counters counters;
  for (int session = 0;
       (o.sessions == 0 || session < o.sessions) && (o.count == 0 || received < o.count);
       ++session) {
    // With --sessions 0 the next sender is awaited for as long as the tool runs.
    const bool forever = o.sessions == 0;
    auto link = (*server)->accept(metrics || forever ? Millis(0) : Millis(o.idle_timeout_ms));
    for (auto until = std::chrono::steady_clock::now() + Millis(o.idle_timeout_ms);
         (metrics || forever) && !link && link.status().code() == ErrorCode::kTimeout &&
         (forever || std::chrono::steady_clock::now() < until);) {
      publish(nullptr);
      link = (*server)->accept(Millis(100));
    }
    if (!link) {
      return fail(kTool, "no sender within " + std::to_string(o.idle_timeout_ms) + " ms [" +
                             std::string(error_code_name(link.status().code())) + "]");
    }
    info = (*link)->info();
    // A failure of ours from here on tells the sender why at once (it would otherwise retry or
    // wait out its deadline).
    auto give_up = [&](const std::string& why) {
      (*link)->abort(make_error(ErrorCode::kAborted, std::string(kTool) + " gave up: " + why));
      return fail(kTool, why);
    };
    if (!o.quiet && !o.json) {
      std::fprintf(stderr, "%s: %s connected from %s (session %llu)\n", kTool,
                   info.peer_name.c_str(), info.remote_endpoint.c_str(),
                   static_cast<unsigned long long>(info.session_id));
    }
    while (o.count == 0 || received < o.count) {
#ifdef AGP_HAVE_FIDELITY
      while (!to_score.empty() && waiting_bytes > kMaxWaitingBytes) {
        waiting_bytes -= to_score.front().state.size() * sizeof(float);
        if (auto s2 = score_one(); !s2) return give_up("continuing the model: " + s2.message());
      }
#endif
      auto next = wait_in_session(
          **link, **server, o, [&](Millis slice) { return (*link)->next_packet(slice); },
          [&] { publish(link->get()); });
      if (!next) {
        if (next.status().code() == ErrorCode::kConnectionClosed) break;  // the sender is done
        const std::string why = "waiting for packet " + std::to_string(received + 1) + ": " +
                                next.status().message() + " [" +
                                std::string(error_code_name(next.status().code())) + "]";
        // Serving several sessions, a session that ends badly ends only itself.
        if (o.sessions != 1) {
          std::fprintf(stderr, "%s: session %llu ended: %s\n", kTool,
                       static_cast<unsigned long long>(info.session_id), why.c_str());
          break;
        }
        return fail(kTool, why);
      }
      const ptp::TensorDesc& t = *next->tensor;
      std::uint64_t elements = 1;
      for (auto d : t.shape) elements *= d;
      out.resize(elements * dtype_size(t.dtype));
      const auto view = codec::TensorView::contiguous(out.data(), t.dtype, t.shape, t.vector_axis);
      std::vector<ptp::Frame> frames;
      // Calls with the same buffer go on where the last one stopped.
      auto d = wait_in_session(
          **link, **server, o,
          [&](Millis slice) {
            return (*link)->receive(view, slice, frames_out.is_open() ? &frames : nullptr);
          },
          [&] { publish(link->get()); });
      const std::uint64_t arrived_ns = wall_clock_ns();
      if (!d) {
        const std::string why = "packet " + std::to_string(next->sequence) + ": " +
                                d.status().message() + " [" +
                                std::string(error_code_name(d.status().code())) + "]";
        if (o.sessions != 1) {
          std::fprintf(stderr, "%s: session %llu ended: %s\n", kTool,
                       static_cast<unsigned long long>(info.session_id), why.c_str());
          break;
        }
        return fail(kTool, why);
      }
      if (journal) {  // recorded first, acknowledged second: a crash in between resends it
        const std::uint64_t digest = ptp::xxh3_64(out);
        if (auto s2 = journal->record(info.session_id, d->header.sequence, digest, t.name); !s2)
          return give_up("--journal: " + s2.message());
        if (auto s2 = (*link)->acknowledge(); !s2) return fail(kTool, s2.message());
      }
      ++received;
      const std::string label = codec_label(*d->header.codec);
      if (!summary.count(label)) order.push_back(label);
      CodecSummary& s = summary[label];
      const double latency_us =
          static_cast<double>(static_cast<std::int64_t>(arrived_ns - d->header.timestamp_ns)) / 1e3;
      ++s.packets;
      s.bytes += d->wire_bytes;
      s.decode_us.push_back(d->decode_us);
      s.latency_us.push_back(latency_us);
      json p = {{"sequence", d->header.sequence},
                {"codec", label},
                {"bytes", d->wire_bytes},
                {"chunks", d->chunks},
                {"verified", true},
                {"decode_us", d->decode_us},
                {"delivery_latency_us", latency_us},
                {"name", t.name}};
      if (o.check) {
        auto tag = Generator::from_tag(t.name);
        if (tag) {
          const auto original = tag->first.make(tag->second, t.shape, t.dtype, t.vector_axis);
          const auto oview =
              codec::TensorView::contiguous(original.data(), t.dtype, t.shape, t.vector_axis);
          ErrorStats e;
          e.add(oview, view);
          s.error.add(oview, view);
          s.checked = true;
          p["rel_mse"] = e.rel_mse();
          p["cosine"] = e.cosine();
        }
      }
#ifdef AGP_HAVE_FIDELITY
      std::size_t window = 0;
      if (model && ModelSplit::parse_tag(t.name, window) && t.shape.size() == 2 &&
          t.shape[0] == static_cast<std::uint64_t>(model->seq()) && t.shape[1] == model->hidden()) {
        // Continuing the model takes far longer than a packet: it waits for the end of the run, so
        // the sender's next packet is not held up behind it.
        std::vector<float> state(elements);
        codec::VectorAccess from(view);
        from.gather(0, from.count(), state.data());
        waiting_bytes += state.size() * sizeof(float);
        to_score.push_back({window, label, std::move(state), packets.size()});
      }
#endif
      if (!o.save_npy.empty()) {
        const std::string path =
            o.save_npy + "/packet-" + std::to_string(d->header.sequence) + ".npy";
        if (auto s2 = ptp::write_npy(path, t.dtype, t.shape, out); !s2) {
          return give_up("--save-npy: " + s2.message());
        }
      }
      if (frames_out.is_open()) {
        if (auto s2 = append_frames(frames_out, frames); !s2) {
          return give_up("--save-frames: " + s2.message());
        }
      }
      if (!o.quiet && !o.json) {
        std::printf(
            "#%-6llu %-16s %9llu B  %u chunk%s  verified  decode %7.1f us  latency %8.1f us",
            static_cast<unsigned long long>(d->header.sequence), label.c_str(),
            static_cast<unsigned long long>(d->wire_bytes), d->chunks, d->chunks == 1 ? " " : "s",
            d->decode_us, latency_us);
        if (p.contains("rel_mse")) {
          std::printf("  rel MSE %.3g cosine %.5f", p["rel_mse"].get<double>(),
                      p["cosine"].get<double>());
        }
        std::printf("\n");
      }
      // Per-packet records only for --json: a receiver running for days must not grow with them.
      if (o.json) packets.push_back(std::move(p));
      progress.update(received);
      publish(link->get());
    }
    const auto c = (*link)->counters();
    counters.checksum_failures += c.checksum_failures;
    counters.frame_errors += c.frame_errors;
    counters.duplicates_dropped += c.duplicates_dropped;
    counters.reconnects += c.reconnects;
    counters.bytes_received += c.bytes_received;
    (void)(*link)->close(Millis(2000));
    publish(link->get());
  }
  counters.handshake_rejections = (*server)->counters().handshake_rejections;
  progress.finish();
#ifdef AGP_HAVE_FIDELITY
  while (!to_score.empty()) {
    if (auto s2 = score_one(); !s2) return fail(kTool, "continuing the model: " + s2.message());
  }
#endif

  json codecs = json::array();
  for (const auto& label : order) {
    const CodecSummary& s = summary[label];
    json c = {{"codec", label},
              {"packets", s.packets},
              {"bytes_per_packet",
               s.packets ? static_cast<double>(s.bytes) / static_cast<double>(s.packets) : 0.0},
              {"decode_us_p50", percentile(s.decode_us, 0.5)},
              {"delivery_latency_us_p50", percentile(s.latency_us, 0.5)},
              {"delivery_latency_us_p99", percentile(s.latency_us, 0.99)}};
    if (s.checked) {
      c["rel_mse"] = s.error.rel_mse();
      c["cosine"] = s.error.cosine();
    }
#ifdef AGP_HAVE_FIDELITY
    if (s.scored) {
      c["rel_mse"] = s.state.rel_mse();
      c["cosine"] = s.state.cosine();
      c["kl_nats"] = s.logits.kl();
      c["top1_agree"] = s.logits.top1_agree();
      c["top5_overlap"] = s.logits.top5_overlap();
    }
#endif
    codecs.push_back(c);
  }
  json doc = {{"tool", kTool},
              {"peer", {{"endpoint", info.remote_endpoint}, {"name", info.peer_name}}},
              {"local", {{"endpoint", info.local_endpoint}, {"interface", info.local_interface}}},
              {"backend", o.carrier.backend},
              {"packets_received", received},
              {"all_verified", true},
              {"delivery_latency",
               "receiver wall clock when decoded minus the sender's timestamp in the packet; "
               "meaningful across two machines only with synchronised clocks"},
              {"counters",
               {{"checksum_failures", counters.checksum_failures},
                {"frame_errors", counters.frame_errors},
                {"duplicates_dropped", counters.duplicates_dropped},
                {"reconnects", counters.reconnects},
                {"handshake_rejections", counters.handshake_rejections},
                {"bytes_received", counters.bytes_received}}},
              {"codecs", codecs}};
  if (o.json) {
    doc["packets"] = packets;
    std::cout << tools::json_text(doc, 2) << "\n";
  } else if (!o.quiet) {
    std::printf(
        "\n%llu packets received, all verified and decoded; checksum failures %llu, "
        "reconnects %llu\n",
        static_cast<unsigned long long>(received),
        static_cast<unsigned long long>(counters.checksum_failures),
        static_cast<unsigned long long>(counters.reconnects));
    print_summary(order, summary);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{
      "ptp-recv: accepts one sender, verifies every packet (header and section checksums, model "
      "fingerprint), decodes it into a host buffer, acknowledges it, and reports per packet: "
      "bytes, codec, decode time and delivery latency (this machine's clock at decode minus the "
      "sender's timestamp). Ends when the sender closes, or after --count packets."};
  app.add_option("--listen", o.listen, "address to listen on");
  app.add_option("--port", o.port, "port to listen on (0: pick one and print 'port N' first)");
  app.add_option("--interface", o.interface,
                 "listen on this interface's address (for example bridge0)");
  app.add_option("-n,--count", o.count,
                 "stop after this many packets (0: until the sender closes)");
  app.add_option("--save-npy", o.save_npy,
                 "directory to write each decoded tensor to, as packet-SEQ.npy");
  app.add_option("--save-frames", o.save_frames,
                 "file to write the received frames to, back to back");
  app.add_flag(
      "--check", o.check,
      "regenerate generated packets (ptp-send's generators) and report their decoded error");
  app.add_option("--model", o.model,
                 "split-model mode: continue layers [--split, N) of this checkpoint from each "
                 "received state and report KL and top-1 against the uncompressed model");
  app.add_option("--bytes", o.bytes, "split-model mode: the evaluation text the sender uses");
  app.add_option("--seq", o.seq, "split-model mode: tokens per window")
      ->check(CLI::Range(2, 1 << 20));
  app.add_option("--windows", o.windows, "split-model mode: at most this many windows")
      ->check(CLI::Range(1, 1 << 20));
  app.add_option("--decode-threads", o.decode_threads,
                 "threads decoding the chunks of a packet side by side, this one included (1..16)")
      ->check(CLI::Range(1, 16));
  app.add_option("--streams", o.streams, "TCP connections a sender may open per link (1..8)")
      ->check(CLI::Range(1, 8));
  app.add_option("--metrics-port", o.metrics_port,
                 "serve Prometheus metrics (counters, latency histograms per codec, refused "
                 "peers) at http://ADDRESS:PORT/metrics, ADDRESS being --metrics-address; 0 picks "
                 "a port and prints 'metrics-port N' (after 'port N')")
      ->check(CLI::Range(0, 65535));
  app.add_option("--metrics-address", o.metrics_address,
                 "address for --metrics-port (default: the --listen address)");
  app.add_option("--idle-timeout-ms", o.idle_timeout_ms,
                 "give up when nothing arrives for this long")
      ->check(CLI::PositiveNumber);
  add_identity_options(app, o.identity);
  add_liveness_options(app, o.liveness);
  add_carrier_options(app, o.carrier);
  app.add_option("--sessions", o.sessions,
                 "serve this many sender sessions one after another (0: until killed, however long "
                 "no sender comes; otherwise a sender is awaited --idle-timeout-ms); a session "
                 "ends when its sender is gone for --give-up-ms, at once if its connection is down "
                 "and another sender waits, or when a packet of it is refused (said on stderr)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--max-tensor-bytes", o.max_tensor_bytes,
                 "refuse packets whose tensor is larger than this (the receive buffer is sized "
                 "from a packet's descriptor: lower it for peers you do not trust)")
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1} << 40));
  app.add_option("--journal", o.journal,
                 "append 'SESSION SEQUENCE DIGEST NAME' per delivered packet before acknowledging "
                 "it, and resume from it at start (survives a crash without loss or repeats)");
  app.add_flag("--json", o.json,
               "print one JSON document (with every packet, kept in memory until then) at the end");
  app.add_flag("-q,--quiet", o.quiet, "no per-packet lines, no progress bar");
  if (auto code = parse_command_line(app, argc, argv, kTool)) return *code;
  return run(o);
}
