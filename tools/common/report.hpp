// Markdown run reports with an SVG picture of the latency distribution (one CDF per series).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "agp/status.hpp"

namespace agp::tools {

struct Series {
  std::string name;
  std::vector<double> values;  // latencies in microseconds
};

// A standalone SVG: the empirical CDF of each series, on a logarithmic microsecond axis.
std::string latency_cdf_svg(const std::vector<Series>& series, const std::string& title);

// A panel of labelled points (x = bits per value).
struct Panel {
  std::string y_label;
  bool log_y = false;
  std::vector<std::pair<std::string, std::pair<double, double>>> points;  // label, (x, y)
};
// Panels side by side, sharing the x axis label "bits per value".
std::string scatter_panels_svg(const std::string& title, const std::vector<Panel>& panels);

// Writes `markdown` to `path` and the SVG beside it (same name, .svg), linked from the Markdown
// as an image. kIoError on failure.
Status write_report(const std::string& path, const std::string& markdown, const std::string& svg);

}  // namespace agp::tools
