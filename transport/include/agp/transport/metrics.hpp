// What a link has done, for monitoring: its counters and latency histograms per codec, and their
// rendering in the Prometheus text exposition format (version 0.0.4), which Prometheus, Grafana
// Agent, VictoriaMetrics and OpenTelemetry collectors scrape. docs/observability.md.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace agp::transport {

// Everything countable about a link (or, for Server::counters, about refused peers).
struct Counters {
  std::uint64_t bytes_sent = 0;
  std::uint64_t bytes_received = 0;
  std::uint64_t frames_sent = 0;
  std::uint64_t frames_received = 0;
  std::uint64_t packets_sent = 0;  // posted by the application (each once)
  std::uint64_t packets_acked = 0;
  std::uint64_t packets_delivered = 0;   // handed to the application here
  std::uint64_t retransmits = 0;         // packets sent again after a reconnect
  std::uint64_t duplicates_dropped = 0;  // frames of packets already delivered
  std::uint64_t checksum_failures = 0;   // frames rejected for a header or section checksum
  std::uint64_t frame_errors = 0;        // frames rejected for any other reason
  std::uint64_t reconnects = 0;          // connections after the first
  std::uint64_t handshake_rejections = 0;
  std::uint64_t heartbeats_sent = 0;
  std::uint64_t unacked_packets = 0;  // now
  std::uint64_t unacked_bytes = 0;    // now
};

// A latency distribution in fixed buckets (upper bounds in microseconds, the last one +Inf):
// cumulative counts as Prometheus wants them are made when rendering.
struct LatencyHistogram {
  static constexpr std::array<double, 19> kBoundsUs = {10,    25,  50,    100,   250, 500, 1e3,
                                                       2.5e3, 5e3, 1e4,   2.5e4, 5e4, 1e5, 2.5e5,
                                                       5e5,   1e6, 2.5e6, 5e6,   1e7};
  std::array<std::uint64_t, kBoundsUs.size() + 1> buckets{};  // per bucket, not cumulative
  std::uint64_t count = 0;
  double sum_us = 0;

  void record(double us);
  // The smallest bucket bound at or above quantile q (0..1) of what was recorded; 0 if empty.
  double quantile_bound_us(double q) const;
};

// Per codec (its short name: "tq4", "raw", ...): packets sent and acknowledged from here, and
// packets decoded here.
struct CodecLatencies {
  LatencyHistogram ack_us;     // post() to the peer's acknowledgement (sending end)
  LatencyHistogram encode_us;  // encoding and framing a packet (sending end)
  LatencyHistogram decode_us;  // decoding a packet into the caller's buffer (receiving end)
};

struct LinkMetrics {
  Counters counters;
  std::map<std::string, CodecLatencies> codecs;
};

// One link's metrics with the labels that tell it apart in an exposition (for example
// {{"link", "recv"}, {"peer", "10.0.0.2:7700"}}).
struct LabeledMetrics {
  std::vector<std::pair<std::string, std::string>> labels;
  LinkMetrics metrics;
};

// The Prometheus text exposition of any number of links: counters as agp_ptp_*_total, the
// unacknowledged backlog as gauges, histograms in seconds with le buckets, _sum and _count. Label
// values are escaped; every family has its HELP and TYPE once.
std::string prometheus_text(const std::vector<LabeledMetrics>& links);

}  // namespace agp::transport
