// Metrics (counters and latency histograms per codec, the Prometheus exposition) and the log hook,
// on real links over loopback.
#include <gtest/gtest.h>

#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "agp/transport/link.hpp"
#include "agp/transport/log.hpp"
#include "agp/transport/metrics.hpp"
#include "link_test_helpers.hpp"

namespace agp::transport {
namespace {

using namespace std::chrono_literals;
using namespace agp::transport::testing;

// Records every log record while alive; the handler is process-wide.
struct CapturedLog {
  std::mutex mu;
  std::vector<std::pair<std::string, std::string>> records;  // event, message
  explicit CapturedLog(LogLevel min = LogLevel::kDebug) {
    set_log_handler(
        [this](const LogRecord& r) {
          std::lock_guard<std::mutex> hold(mu);
          records.emplace_back(std::string(r.event), std::string(r.message));
        },
        min);
  }
  ~CapturedLog() { set_log_handler(nullptr); }
  int count(const std::string& event) {
    EXPECT_TRUE(flush_log(std::chrono::seconds(5)));  // records reach the handler on its thread
    std::lock_guard<std::mutex> hold(mu);
    int n = 0;
    for (const auto& r : records) n += r.first == event;
    return n;
  }
};

// The sample lines of an exposition: "name{labels}" -> value.
std::map<std::string, double> samples(const std::string& text) {
  std::map<std::string, double> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const auto space = line.rfind(' ');
    out[line.substr(0, space)] = std::stod(line.substr(space + 1));
  }
  return out;
}

TEST(Metrics, LinksCountAndTimeEveryPacketPerCodec) {
  LinkOptions o = options();
  o.chunk_vectors = 16;
  auto server = listen(o);
  ASSERT_TRUE(server);
  LinkMetrics received;
  std::thread peer([&] {
    auto link = server->accept(5000ms);
    ASSERT_TRUE(link);
    for (int i = 0; i < 6; ++i) receive_one(**link);
    received = (*link)->metrics();
    (void)(*link)->close(5000ms);
  });
  auto link = Link::connect("127.0.0.1", server->port(), o);
  ASSERT_TRUE(link) << link.status().to_string();
  for (int i = 0; i < 6; ++i) {
    Tensor t = make_tensor(i);
    ASSERT_TRUE((*link)->send(t.view(), i % 3 ? tq_codec(4) : raw_codec(), {}, 5000ms));
  }
  peer.join();
  const LinkMetrics sent = (*link)->metrics();
  EXPECT_EQ(sent.counters.packets_acked, 6u);
  ASSERT_EQ(sent.codecs.count("tq4"), 1u);
  ASSERT_EQ(sent.codecs.count("raw"), 1u);
  EXPECT_EQ(sent.codecs.at("tq4").ack_us.count, 4u);
  EXPECT_EQ(sent.codecs.at("raw").ack_us.count, 2u);
  EXPECT_EQ(sent.codecs.at("tq4").encode_us.count, 4u);
  EXPECT_EQ(sent.codecs.at("tq4").decode_us.count, 0u);
  EXPECT_GT(sent.codecs.at("tq4").ack_us.sum_us, 0);
  EXPECT_EQ(received.counters.packets_delivered, 6u);
  EXPECT_EQ(received.codecs.at("tq4").decode_us.count, 4u);
  EXPECT_EQ(received.codecs.at("raw").decode_us.count, 2u);
  EXPECT_EQ(received.codecs.at("raw").ack_us.count, 0u);

  const std::string text =
      prometheus_text({{{{"link", "send"}}, sent}, {{{"link", "recv"}}, received}});
  const auto s = samples(text);
  EXPECT_EQ(s.at("agp_ptp_packets_acked_total{link=\"send\"}"), 6);
  EXPECT_EQ(s.at("agp_ptp_packets_delivered_total{link=\"recv\"}"), 6);
  EXPECT_EQ(s.at("agp_ptp_ack_latency_seconds_count{link=\"send\",codec=\"tq4\"}"), 4);
  EXPECT_EQ(s.at("agp_ptp_ack_latency_seconds_bucket{link=\"send\",codec=\"tq4\",le=\"+Inf\"}"), 4);
  EXPECT_EQ(s.at("agp_ptp_decode_seconds_count{link=\"recv\",codec=\"raw\"}"), 2);
  EXPECT_EQ(s.count("agp_ptp_decode_seconds_count{link=\"send\",codec=\"tq4\"}"), 0u);
  // Buckets are cumulative and end at the count.
  double last = 0;
  int buckets = 0;
  for (const auto& [k, v] : s) {
    if (k.rfind("agp_ptp_ack_latency_seconds_bucket{link=\"send\",codec=\"tq4\"", 0) == 0)
      ++buckets;
  }
  EXPECT_EQ(buckets, static_cast<int>(LatencyHistogram::kBoundsUs.size() + 1));
  for (double le : LatencyHistogram::kBoundsUs) {
    std::ostringstream key;
    key.precision(9);
    key << "agp_ptp_ack_latency_seconds_bucket{link=\"send\",codec=\"tq4\",le=\"" << le * 1e-6
        << "\"}";
    ASSERT_EQ(s.count(key.str()), 1u) << key.str();
    EXPECT_GE(s.at(key.str()), last);
    last = s.at(key.str());
  }
  EXPECT_LE(last, 4);
  // Each family is described once.
  for (const char* family : {"agp_ptp_packets_acked_total", "agp_ptp_ack_latency_seconds",
                             "agp_ptp_decode_seconds", "agp_ptp_unacked_bytes"}) {
    const std::string help = std::string("# HELP ") + family + " ";
    const auto first = text.find(help);
    ASSERT_NE(first, std::string::npos) << family;
    EXPECT_EQ(text.find(help, first + 1), std::string::npos) << family;
  }
  EXPECT_NE(text.find("# TYPE agp_ptp_unacked_bytes gauge"), std::string::npos);
  EXPECT_NE(text.find("# TYPE agp_ptp_ack_latency_seconds histogram"), std::string::npos);
}

TEST(Metrics, HistogramBucketsAndLabelEscaping) {
  LatencyHistogram h;
  for (double us : {5.0, 10.0, 11.0, 900.0, 3e7, -1.0}) h.record(us);
  EXPECT_EQ(h.count, 6u);
  EXPECT_EQ(h.buckets[0], 3u);      // 5, 10 (bounds are inclusive) and -1 counted as 0
  EXPECT_EQ(h.buckets[1], 1u);      // 11
  EXPECT_EQ(h.buckets.back(), 1u);  // beyond the last bound
  EXPECT_EQ(h.quantile_bound_us(0.5), 10);
  EXPECT_EQ(h.quantile_bound_us(0.8), 1000);
  LinkMetrics m;
  m.codecs["tq4"].ack_us = h;
  const std::string text = prometheus_text({{{{"peer", "a\"b\\c\nd"}}, m}});
  EXPECT_NE(text.find("{peer=\"a\\\"b\\\\c\\nd\",codec=\"tq4\",le=\"1e-05\"} 3"), std::string::npos)
      << text;
  EXPECT_NE(text.find("le=\"+Inf\"} 6"), std::string::npos);
}

TEST(LogHook, ConnectsRefusalsAndStallsAreLoggedOnceAndSilentByDefault) {
  {
    CapturedLog log;
    LinkOptions o = options();
    o.stall_warning = 150ms;
    auto server = listen(o);
    ASSERT_TRUE(server);
    std::unique_ptr<Link> peer;
    std::thread accepter([&] {
      auto l = server->accept(5000ms);
      ASSERT_TRUE(l);
      peer = std::move(l).value();
    });
    auto link = Link::connect("127.0.0.1", server->port(), o);
    ASSERT_TRUE(link);
    accepter.join();
    EXPECT_EQ(log.count("connected"), 1);
    EXPECT_EQ(log.count("peer_accepted"), 1);

    // Nobody receives: the packet's acknowledgement is late, said once.
    Tensor t = make_tensor(1);
    auto seq = (*link)->post(t.view(), raw_codec(), {}, 1000ms);
    ASSERT_TRUE(seq);
    (*link)->run_for(600ms);
    EXPECT_EQ(log.count("send_stalled"), 1);
    EXPECT_EQ(receive_one(*peer), t.data);
    EXPECT_TRUE((*link)->wait_acked(*seq, 5000ms));

    // Another model's peer is refused, and says why on both ends.
    LinkOptions other = options();
    other.fingerprint = ptp::Hash128{9, 9};
    std::thread serving([&] { (void)server->accept(1000ms); });
    EXPECT_FALSE(Link::connect("127.0.0.1", server->port(), other));
    serving.join();
    EXPECT_EQ(log.count("peer_refused"), 1);
    EXPECT_EQ(log.count("handshake_failed"), 1);
    std::lock_guard<std::mutex> hold(log.mu);
    for (const auto& [event, message] : log.records) {
      EXPECT_FALSE(message.empty()) << event;
      if (event == "peer_refused") {
        EXPECT_NE(message.find("fingerprint"), std::string::npos);
      }
    }
  }
  // Without a handler nothing is called (and nothing breaks).
  LinkOptions o = options();
  auto server = listen(o);
  // The accepted link is kept until the connect returned: one dropped at once tells its peer.
  Result<std::unique_ptr<Link>> accepted = Status(ErrorCode::kTimeout, "");
  std::thread accepter([&] { accepted = server->accept(5000ms); });
  EXPECT_TRUE(Link::connect("127.0.0.1", server->port(), o));
  accepter.join();
}

}  // namespace
}  // namespace agp::transport
