#include "agp/transport/metrics.hpp"

#include <cmath>
#include <cstdio>
#include <functional>

namespace agp::transport {

void LatencyHistogram::record(double us) {
  if (!(us >= 0)) us = 0;  // NaN and negatives count as zero
  std::size_t i = 0;
  while (i < kBoundsUs.size() && us > kBoundsUs[i]) ++i;
  ++buckets[i];
  ++count;
  sum_us += us;
}

double LatencyHistogram::quantile_bound_us(double q) const {
  if (count == 0) return 0;
  const auto want = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(count)));
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < buckets.size(); ++i) {
    seen += buckets[i];
    if (seen >= want && seen > 0) {
      return i < kBoundsUs.size() ? kBoundsUs[i] : INFINITY;
    }
  }
  return INFINITY;
}

namespace {

std::string escape_label(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

// {a="x",b="y"} from the link's labels plus extra ones; "" when there are none.
std::string label_set(const std::vector<std::pair<std::string, std::string>>& labels,
                      const std::vector<std::pair<std::string, std::string>>& extra = {}) {
  std::string s;
  auto add = [&](const std::pair<std::string, std::string>& kv) {
    s += s.empty() ? "{" : ",";
    s += kv.first + "=\"" + escape_label(kv.second) + "\"";
  };
  for (const auto& kv : labels) add(kv);
  for (const auto& kv : extra) add(kv);
  return s.empty() ? s : s + "}";
}

std::string number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

void family(std::string& out, const std::string& name, const char* type, const char* help) {
  out += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

struct CounterField {
  const char* name;
  const char* help;
  std::uint64_t Counters::*field;
  bool gauge;
};

constexpr CounterField kCounterFields[] = {
    {"bytes_sent_total", "Bytes written to the link's connections.", &Counters::bytes_sent, false},
    {"bytes_received_total", "Bytes read from the link's connections.", &Counters::bytes_received,
     false},
    {"frames_sent_total", "Frames written, control frames included.", &Counters::frames_sent,
     false},
    {"frames_received_total", "Frames read and verified.", &Counters::frames_received, false},
    {"packets_sent_total", "Packets posted by the application.", &Counters::packets_sent, false},
    {"packets_acked_total", "Packets the peer verified, decoded and acknowledged.",
     &Counters::packets_acked, false},
    {"packets_delivered_total", "Packets decoded into the application's buffers here.",
     &Counters::packets_delivered, false},
    {"retransmits_total", "Packets sent again after a reconnect.", &Counters::retransmits, false},
    {"duplicates_dropped_total", "Frames of packets already delivered, dropped.",
     &Counters::duplicates_dropped, false},
    {"checksum_failures_total", "Frames refused for a header or section checksum.",
     &Counters::checksum_failures, false},
    {"frame_errors_total", "Frames refused for any other reason.", &Counters::frame_errors, false},
    {"reconnects_total", "Connections after the first.", &Counters::reconnects, false},
    {"handshake_rejections_total", "Peers refused in the handshake.",
     &Counters::handshake_rejections, false},
    {"heartbeats_sent_total", "Heartbeats sent on idle connections.", &Counters::heartbeats_sent,
     false},
    {"unacked_packets", "Packets posted and not yet acknowledged.", &Counters::unacked_packets,
     true},
    {"unacked_bytes", "Bytes of packets posted and not yet acknowledged.", &Counters::unacked_bytes,
     true},
};

void histogram_family(std::string& out, const std::vector<LabeledMetrics>& links,
                      const std::string& name, const char* help,
                      LatencyHistogram CodecLatencies::*which) {
  bool any = false;
  for (const auto& l : links) {
    for (const auto& [codec, lat] : l.metrics.codecs) any = any || (lat.*which).count > 0;
  }
  if (!any) return;
  family(out, name, "histogram", help);
  for (const auto& l : links) {
    for (const auto& [codec, lat] : l.metrics.codecs) {
      const LatencyHistogram& h = lat.*which;
      if (h.count == 0) continue;
      std::uint64_t cumulative = 0;
      for (std::size_t i = 0; i < h.buckets.size(); ++i) {
        cumulative += h.buckets[i];
        const double le = i < LatencyHistogram::kBoundsUs.size()
                              ? LatencyHistogram::kBoundsUs[i] * 1e-6
                              : INFINITY;
        out += name + "_bucket" + label_set(l.labels, {{"codec", codec}, {"le", number(le)}}) +
               " " + std::to_string(cumulative) + "\n";
      }
      const std::string labels = label_set(l.labels, {{"codec", codec}});
      out += name + "_sum" + labels + " " + number(h.sum_us * 1e-6) + "\n";
      out += name + "_count" + labels + " " + std::to_string(h.count) + "\n";
    }
  }
}

}  // namespace

std::string prometheus_text(const std::vector<LabeledMetrics>& links) {
  std::string out;
  for (const CounterField& f : kCounterFields) {
    const std::string name = std::string("agp_ptp_") + f.name;
    family(out, name, f.gauge ? "gauge" : "counter", f.help);
    for (const auto& l : links) {
      out += name + label_set(l.labels) + " " + std::to_string(l.metrics.counters.*f.field) + "\n";
    }
  }
  histogram_family(out, links, "agp_ptp_ack_latency_seconds",
                   "From post() to the peer's acknowledgement, sent after it verified and "
                   "decoded the packet.",
                   &CodecLatencies::ack_us);
  histogram_family(out, links, "agp_ptp_encode_seconds", "Encoding and framing one packet.",
                   &CodecLatencies::encode_us);
  histogram_family(out, links, "agp_ptp_decode_seconds",
                   "Decoding one packet into the application's buffer.",
                   &CodecLatencies::decode_us);
  return out;
}

}  // namespace agp::transport
