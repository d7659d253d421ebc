// A receiver's journal: one line per delivered packet ("SESSION SEQUENCE DIGEST NAME", the digest
// being XXH3-64 of the decoded tensor's bytes), written before the packet is acknowledged. Read
// back at start, it tells the link where each session had got to (LinkOptions::known_sessions), so
// a receiver restarted after a crash neither loses nor repeats packets.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "agp/status.hpp"
#include "agp/transport/link.hpp"

namespace agp::tools {

class Journal {
 public:
  // Opens `path` for appending, reading what an earlier process recorded (a missing file is an
  // empty journal; a torn last line from a crash is ignored).
  static Result<Journal> open(const std::string& path);
  // The last sequence recorded per session.
  const std::vector<transport::LinkOptions::SessionPosition>& positions() const {
    return positions_;
  }
  std::uint64_t entries() const { return entries_; }
  // Appends one line and hands it to the kernel (it survives this process being killed).
  Status record(std::uint64_t session, std::uint64_t sequence, std::uint64_t digest,
                const std::string& name);

 private:
  void note(std::uint64_t session, std::uint64_t sequence);
  std::string path_;
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file_{nullptr, &std::fclose};
  std::vector<transport::LinkOptions::SessionPosition> positions_;
  std::uint64_t entries_ = 0;
};

}  // namespace agp::tools
