#include <algorithm>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "agp/fidelity/calibrate.hpp"
#include "agp/ptp/checksum.hpp"
#include "agp/ptp/mapped_file.hpp"

namespace agp::fidelity {
namespace {

namespace fs = std::filesystem;

std::uint64_t splitmix(std::uint64_t& s) {
  s += 0x9e3779b97f4a7c15ull;
  std::uint64_t z = s;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

std::string strip(std::string_view s) {
  const auto b = s.find_first_not_of(" \t\r");
  if (b == std::string_view::npos) return {};
  const auto e = s.find_last_not_of(" \t\r");
  return std::string(s.substr(b, e - b + 1));
}

// Complete lines (not the first or last piece of a window) of text.
std::vector<std::string> inner_lines(const std::string& text) {
  std::vector<std::string> out;
  std::size_t start = text.find('\n');
  while (start != std::string::npos) {
    const std::size_t end = text.find('\n', start + 1);
    if (end == std::string::npos) break;
    out.push_back(strip(std::string_view(text).substr(start + 1, end - start - 1)));
    start = end;
  }
  return out;
}

}  // namespace

Result<CalibrationText> calibration_text_from_headers(const std::string& root,
                                                      const std::vector<std::vector<int>>& eval,
                                                      int count, int length, std::uint64_t seed) {
  if (count <= 0 || length <= 0) return make_error(ErrorCode::kInvalidArgument, "calibration text: count and length must be positive");
  std::set<std::string> long_lines;
  for (const auto& w : eval) {
    std::string text(w.size(), '\0');
    for (std::size_t i = 0; i < w.size(); ++i) text[i] = static_cast<char>(w[i]);
    auto lines = inner_lines(text);
    lines.erase(std::remove_if(lines.begin(), lines.end(), [](const std::string& l) { return l.size() < 30; }), lines.end());
    std::stable_sort(lines.begin(), lines.end(), [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
    for (std::size_t i = 0; i < lines.size() && i < 3; ++i) long_lines.insert(lines[i]);
  }
  std::vector<std::string> files;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(root, fs::directory_options::skip_permission_denied, ec), end;
       it != end; it.increment(ec)) {
    if (ec) break;
    if (it->is_regular_file(ec) && !it->is_symlink(ec)) files.push_back(it->path().string());
  }
  if (files.empty()) return make_error(ErrorCode::kIoError, "calibration text: no files under " + root);
  std::sort(files.begin(), files.end());
  std::uint64_t s = seed;
  for (std::size_t i = files.size(); i > 1; --i) std::swap(files[i - 1], files[splitmix(s) % i]);
  CalibrationText out;
  std::string all;
  const auto len = static_cast<std::size_t>(length);
  for (const auto& f : files) {
    if (out.windows.size() == static_cast<std::size_t>(count)) break;
    auto m = ptp::MappedFile::open(f);
    if (!m || m->bytes().size() < 4 * len) continue;
    ++out.files_seen;
    const std::string text(reinterpret_cast<const char*>(m->bytes().data()), m->bytes().size());
    bool shares = false;
    std::size_t start = 0;
    while (!shares && start < text.size()) {
      std::size_t end = text.find('\n', start);
      if (end == std::string::npos) end = text.size();
      if (end - start >= 30) shares = long_lines.count(strip(std::string_view(text).substr(start, end - start))) > 0;
      start = end + 1;
    }
    if (shares) {
      ++out.files_excluded;
      continue;
    }
    const std::size_t at = splitmix(s) % (text.size() - len);
    std::vector<int> w(len);
    for (std::size_t i = 0; i < len; ++i) w[i] = static_cast<unsigned char>(text[at + i]);
    all.append(text, at, len);
    out.windows.push_back(std::move(w));
  }
  if (out.windows.size() < static_cast<std::size_t>(count)) {
    return make_error(ErrorCode::kIoError, "calibration text: only " + std::to_string(out.windows.size()) +
                                               " usable files under " + root);
  }
  out.xxh3 = ptp::xxh3_64(std::as_bytes(std::span(all.data(), all.size())));
  return out;
}

}  // namespace agp::fidelity
