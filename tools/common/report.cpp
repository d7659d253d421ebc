#include "report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <span>

#include "agp/ptp/mapped_file.hpp"

namespace agp::tools {
namespace {

constexpr const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
                                   "#9467bd", "#8c564b", "#e377c2", "#17becf"};

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '<')
      out += "&lt;";
    else if (c == '>')
      out += "&gt;";
    else if (c == '&')
      out += "&amp;";
    else
      out += c;
  }
  return out;
}

}  // namespace

std::string latency_cdf_svg(const std::vector<Series>& series, const std::string& title) {
  constexpr double W = 720, H = 420, L = 70, R = 160, T = 40, B = 50;
  double lo = 1e300, hi = 0;
  for (const auto& s : series) {
    for (double v : s.values) {
      if (v > 0) lo = std::min(lo, v), hi = std::max(hi, v);
    }
  }
  if (hi <= 0) lo = 1, hi = 10;
  const double llo = std::floor(std::log10(lo)), lhi = std::ceil(std::log10(hi * 1.0001));
  auto x = [&](double v) {
    const double lv = std::log10(std::max(v, 1e-300));
    return L + (std::clamp(lv, llo, lhi) - llo) / std::max(lhi - llo, 1.0) * (W - L - R);
  };
  auto y = [&](double p) { return T + (1 - p) * (H - T - B); };
  std::string svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + fmt("%.0f", W) +
                    "\" height=\"" + fmt("%.0f", H) +
                    "\" font-family=\"sans-serif\" font-size=\"12\">\n"
                    "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  svg +=
      "<text x=\"" + fmt("%.0f", L) + "\" y=\"22\" font-size=\"14\">" + escape(title) + "</text>\n";
  for (double e = llo; e <= lhi; e += 1) {  // decades
    const double px = x(std::pow(10.0, e));
    svg += "<line x1=\"" + fmt("%.1f", px) + "\" y1=\"" + fmt("%.1f", y(0)) + "\" x2=\"" +
           fmt("%.1f", px) + "\" y2=\"" + fmt("%.1f", y(1)) + "\" stroke=\"#ddd\"/>\n";
    svg += "<text x=\"" + fmt("%.1f", px) + "\" y=\"" + fmt("%.1f", H - B + 18) +
           "\" text-anchor=\"middle\">" + fmt("%g", std::pow(10.0, e)) + "</text>\n";
  }
  for (double p : {0.0, 0.25, 0.5, 0.75, 0.9, 1.0}) {
    svg += "<line x1=\"" + fmt("%.1f", L) + "\" y1=\"" + fmt("%.1f", y(p)) + "\" x2=\"" +
           fmt("%.1f", W - R) + "\" y2=\"" + fmt("%.1f", y(p)) + "\" stroke=\"#eee\"/>\n";
    svg += "<text x=\"" + fmt("%.1f", L - 6) + "\" y=\"" + fmt("%.1f", y(p) + 4) +
           "\" text-anchor=\"end\">" + fmt("%g", p) + "</text>\n";
  }
  svg += "<text x=\"" + fmt("%.1f", (L + W - R) / 2) + "\" y=\"" + fmt("%.1f", H - 12) +
         "\" text-anchor=\"middle\">latency, microseconds (log scale)</text>\n";
  svg += "<text x=\"16\" y=\"" + fmt("%.1f", (T + H - B) / 2) + "\" transform=\"rotate(-90 16 " +
         fmt("%.1f", (T + H - B) / 2) +
         ")\" text-anchor=\"middle\">fraction of packets at or below</text>\n";
  for (std::size_t k = 0; k < series.size(); ++k) {
    std::vector<double> v = series[k].values;
    std::sort(v.begin(), v.end());
    const char* color = kColors[k % std::size(kColors)];
    std::string pts;
    const std::size_t step = std::max<std::size_t>(1, v.size() / 400);  // at most ~400 points
    for (std::size_t i = 0; i < v.size(); i += step) {
      pts += fmt("%.1f", x(v[i])) + "," +
             fmt("%.1f", y(static_cast<double>(i + 1) / static_cast<double>(v.size()))) + " ";
    }
    if (!v.empty()) pts += fmt("%.1f", x(v.back())) + "," + fmt("%.1f", y(1.0));
    svg += "<polyline fill=\"none\" stroke=\"" + std::string(color) +
           "\" stroke-width=\"2\" points=\"" + pts + "\"/>\n";
    const double ly = T + 20.0 * static_cast<double>(k);
    svg += "<line x1=\"" + fmt("%.1f", W - R + 15) + "\" y1=\"" + fmt("%.1f", ly) + "\" x2=\"" +
           fmt("%.1f", W - R + 40) + "\" y2=\"" + fmt("%.1f", ly) + "\" stroke=\"" + color +
           "\" stroke-width=\"3\"/>\n";
    svg += "<text x=\"" + fmt("%.1f", W - R + 46) + "\" y=\"" + fmt("%.1f", ly + 4) + "\">" +
           escape(series[k].name) + "</text>\n";
  }
  svg += "</svg>\n";
  return svg;
}

Status write_report(const std::string& path, const std::string& markdown, const std::string& svg) {
  std::string svg_path = path;
  const auto dot = svg_path.rfind('.');
  const auto slash = svg_path.rfind('/');
  if (dot != std::string::npos && (slash == std::string::npos || dot > slash)) {
    svg_path.resize(dot);
  }
  svg_path += ".svg";
  const std::string svg_name = slash == std::string::npos ? svg_path : svg_path.substr(slash + 1);
  const std::string md = markdown + "\n![latency distribution](" + svg_name + ")\n";
  AGP_RETURN_IF_ERROR(ptp::write_file(path, std::as_bytes(std::span(md.data(), md.size()))));
  return ptp::write_file(svg_path, std::as_bytes(std::span(svg.data(), svg.size())));
}

}  // namespace agp::tools
