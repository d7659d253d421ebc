#include "journal.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <sstream>

namespace agp::tools {

namespace {
constexpr const char* kMagic = "# agp-ptp journal v1: session sequence xxh3-64 name";
}  // namespace

Result<Journal> Journal::open(const std::string& path) {
  Journal j;
  j.path_ = path;
  // A journal is a regular file (or not there yet): /dev/zero or a FIFO would never end.
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
    return make_error(ErrorCode::kIoError, "journal '" + path + "' is not a regular file");
  }
  std::ifstream in(path);
  std::string line;
  bool first = true;
  const bool fresh = !in || in.peek() == std::ifstream::traits_type::eof();
  while (std::getline(in, line)) {
    if (first && line == kMagic) {
      first = false;
      continue;
    }
    std::istringstream fields(line);
    std::uint64_t session = 0, sequence = 0;
    std::string digest, name;
    const bool parsed = static_cast<bool>(fields >> session >> sequence >> digest >> name) &&
                        digest.size() == 16 &&
                        digest.find_first_not_of("0123456789abcdef") == std::string::npos;
    // Only a file this tool wrote is appended to: its magic line, or (journals written before
    // it had one) a first line that is a record.
    if (first && !parsed) {
      return make_error(ErrorCode::kIoError,
                        "'" + path + "' is not a ptp-recv journal (its first line is neither '" +
                            std::string(kMagic) + "' nor a record); refusing to append to it");
    }
    first = false;
    if (!parsed) continue;  // a torn last line
    ++j.entries_;
    j.note(session, sequence);
  }
  j.file_.reset(std::fopen(path.c_str(), "a"));
  if (!j.file_) return make_error(ErrorCode::kIoError, "cannot append to journal '" + path + "'");
  if (fresh && (std::fprintf(j.file_.get(), "%s\n", kMagic) < 0 || std::fflush(j.file_.get()) != 0)) {
    return make_error(ErrorCode::kIoError, "cannot write journal '" + path + "'");
  }
  return j;
}

Status Journal::record(std::uint64_t session, std::uint64_t sequence, std::uint64_t digest,
                       const std::string& name) {
  std::string field = name.empty() ? "-" : name;  // one whitespace-free field
  std::replace_if(
      field.begin(), field.end(), [](char c) { return c == ' ' || c == '\t' || c == '\n'; }, '_');
  const int n =
      std::fprintf(file_.get(), "%llu %llu %016llx %s\n", static_cast<unsigned long long>(session),
                   static_cast<unsigned long long>(sequence),
                   static_cast<unsigned long long>(digest), field.c_str());
  if (n < 0 || std::fflush(file_.get()) != 0) {
    return make_error(ErrorCode::kIoError, "writing journal '" + path_ + "' failed");
  }
  ++entries_;
  note(session, sequence);
  return {};
}

void Journal::note(std::uint64_t session, std::uint64_t sequence) {
  auto it = std::find_if(positions_.begin(), positions_.end(),
                         [&](const auto& p) { return p.session_id == session; });
  if (it == positions_.end()) {
    positions_.push_back({session, sequence});
  } else {
    it->delivered = std::max(it->delivered, sequence);
  }
}

}  // namespace agp::tools
