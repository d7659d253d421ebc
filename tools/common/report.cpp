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

std::string scatter_panels_svg(const std::string& title, const std::vector<Panel>& panels) {
  constexpr double PW = 420, H = 400, L = 70, R = 20, T = 50, B = 50;
  const double W = PW * static_cast<double>(panels.size());
  std::string svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + fmt("%.0f", W) +
                    "\" height=\"" + fmt("%.0f", H) +
                    "\" font-family=\"sans-serif\" font-size=\"11\">\n"
                    "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
                    "<text x=\"20\" y=\"22\" font-size=\"14\">" +
                    escape(title) + "</text>\n";
  for (std::size_t k = 0; k < panels.size(); ++k) {
    const Panel& p = panels[k];
    const double x0 = PW * static_cast<double>(k);
    double xmin = 1e300, xmax = -1e300, ymin = 1e300, ymax = -1e300;
    for (const auto& [label, xy] : p.points) {
      const double y = p.log_y ? std::log10(std::max(xy.second, 1e-12)) : xy.second;
      xmin = std::min(xmin, xy.first), xmax = std::max(xmax, xy.first);
      ymin = std::min(ymin, y), ymax = std::max(ymax, y);
    }
    if (p.points.empty()) xmin = 0, xmax = 1, ymin = 0, ymax = 1;
    if (p.log_y) ymin = std::floor(ymin), ymax = std::ceil(ymax);
    if (xmax <= xmin) xmax = xmin + 1;
    if (ymax <= ymin) ymax = ymin + 1;
    xmin = std::floor(xmin), xmax = std::ceil(xmax);
    auto px = [&](double v) { return x0 + L + (v - xmin) / (xmax - xmin) * (PW - L - R); };
    auto py = [&](double v) {
      const double y = p.log_y ? std::log10(std::max(v, 1e-12)) : v;
      return T + (1 - (y - ymin) / (ymax - ymin)) * (H - T - B);
    };
    svg += "<rect x=\"" + fmt("%.1f", x0 + L) + "\" y=\"" + fmt("%.1f", T) + "\" width=\"" +
           fmt("%.1f", PW - L - R) + "\" height=\"" + fmt("%.1f", H - T - B) +
           "\" fill=\"none\" stroke=\"#999\"/>\n";
    for (double xv = xmin; xv <= xmax; xv += std::max(1.0, std::floor((xmax - xmin) / 8))) {
      svg += "<text x=\"" + fmt("%.1f", px(xv)) + "\" y=\"" + fmt("%.1f", H - B + 15) +
             "\" text-anchor=\"middle\">" + fmt("%g", xv) + "</text>\n";
    }
    for (int i = 0; i <= 4; ++i) {
      const double yv = ymin + (ymax - ymin) * i / 4.0;
      const double shown = p.log_y ? std::pow(10.0, yv) : yv;
      const double ypix = T + (1 - i / 4.0) * (H - T - B);
      svg += "<text x=\"" + fmt("%.1f", x0 + L - 5) + "\" y=\"" + fmt("%.1f", ypix + 4) +
             "\" text-anchor=\"end\">" + fmt("%.3g", shown) + "</text>\n";
    }
    svg += "<text x=\"" + fmt("%.1f", x0 + (L + PW - R) / 2) + "\" y=\"" + fmt("%.1f", H - 12) +
           "\" text-anchor=\"middle\">bits per value</text>\n";
    svg += "<text x=\"" + fmt("%.1f", x0 + L) + "\" y=\"" + fmt("%.1f", T - 8) + "\">" +
           escape(p.y_label) + "</text>\n";
    for (const auto& [label, xy] : p.points) {
      svg += "<circle cx=\"" + fmt("%.1f", px(xy.first)) + "\" cy=\"" + fmt("%.1f", py(xy.second)) +
             "\" r=\"3\" fill=\"#1f77b4\"/>\n<text x=\"" + fmt("%.1f", px(xy.first) + 4) +
             "\" y=\"" + fmt("%.1f", py(xy.second) - 4) + "\" font-size=\"9\">" + escape(label) +
             "</text>\n";
    }
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
