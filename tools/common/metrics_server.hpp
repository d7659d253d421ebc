// `--metrics-port`: serves the tool's metrics over HTTP at /metrics in the Prometheus text format,
// from a thread of its own. The tool publishes a fresh text now and then (the links are driven
// by the tool's thread alone); a scrape gets the latest.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "agp/status.hpp"

namespace agp::tools {

class MetricsServer {
 public:
  // Listens on address:port (0 picks a free port). address_in_use, network_error.
  static Result<std::unique_ptr<MetricsServer>> start(const std::string& address,
                                                      std::uint16_t port);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  std::uint16_t port() const;
  // Replaces what /metrics returns. Thread-safe.
  void publish(std::string text);

  struct Impl;

 private:
  explicit MetricsServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace agp::tools
