// ptp-inspect: shows what saved frames hold (one file of back-to-back frames, as ptp-recv
// --save-frames writes): prefix, header fields, section table with checksum status, codec
// metadata and fingerprint; or one line saying why a frame is not valid.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "agp/ptp/frame_decoder.hpp"
#include "agp/ptp/mapped_file.hpp"
#include "common/json_text.hpp"
#include "common/tool_support.hpp"

namespace {

using namespace agp;
using json = nlohmann::json;
constexpr const char* kTool = "ptp-inspect";

std::string rotation_label(RotationKind r) {
  switch (r) {
    case RotationKind::kNone:
      return "none";
    case RotationKind::kWalshHadamard:
      return "walsh_hadamard";
    case RotationKind::kBlockWalshHadamard:
      return "block_walsh_hadamard";
  }
  return "unknown(" + std::to_string(static_cast<int>(r)) + ")";
}

std::string lossless_label(LosslessKind l) {
  if (l == LosslessKind::kNone) return "none";
  if (l == LosslessKind::kZstd) return "zstd";
  return "unknown(" + std::to_string(static_cast<int>(l)) + ")";
}

json describe(const ptp::FrameInspection& f, std::size_t offset) {
  const ptp::MessageHeader& h = f.header;
  json j;
  j["offset"] = offset;
  j["frame_bytes"] = f.frame_bytes;
  j["prefix"] = {{"format_version", f.prefix.format_version},
                 {"flags", f.prefix.flags},
                 {"header_length", f.prefix.header_length},
                 {"header_checksum", ptp::to_hex(f.prefix.header_checksum)},
                 {"header_checksum_ok", true}};
  j["kind"] = std::string(ptp::message_kind_name(h.kind));
  j["protocol_version"] = h.protocol_version;
  j["stream_id"] = h.stream_id;
  j["sequence"] = h.sequence;
  j["timestamp_ns"] = h.timestamp_ns;
  j["fingerprint"] = ptp::to_hex(h.fingerprint);
  j["model_id"] = h.model_id;
  j["split_layer"] = h.split_layer;
  if (h.tensor) {
    j["tensor"] = {{"name", h.tensor->name},
                   {"dtype", std::string(dtype_name(h.tensor->dtype))},
                   {"shape", h.tensor->shape},
                   {"layout", std::string(ptp::layout_name(h.tensor->layout))},
                   {"vector_axis", h.tensor->vector_axis}};
  }
  if (h.codec) {
    const auto& c = *h.codec;
    j["codec"] = {
        {"codec", std::string(codec_name(c.codec))},
        {"bits", c.bits},
        {"rotation", rotation_label(c.rotation)},
        {"rotation_seed", c.rotation_seed},
        {"block_size", c.block_size},
        {"codebook", std::to_string(c.codebook_id) + "." + std::to_string(c.codebook_version)},
        {"norm_dtype", std::string(dtype_name(c.norm_dtype))},
        {"lossless", lossless_label(c.lossless)},
        {"original_bytes", c.original_bytes}};
    if (c.calibration_id != 0) {  // the calibration a receiver needs (ptp-calibrate's file id)
      j["codec"]["calibration_id"] = ptp::to_hex(c.calibration_id);
    }
  }
  if (h.chunk) {
    j["chunk"] = {{"index", h.chunk->index},
                  {"count", h.chunk->count},
                  {"vector_offset", h.chunk->vector_offset},
                  {"vector_count", h.chunk->vector_count}};
  }
  if (h.ack) j["ack"] = {{"cumulative_sequence", h.ack->cumulative_sequence}};
  if (h.error) j["error"] = {{"code", h.error->code}, {"message", h.error->message}};
  if (h.hello) {
    j["hello"] = {{"protocol", std::to_string(h.hello->min_protocol) + ".." +
                                   std::to_string(h.hello->max_protocol)},
                  {"max_frame_bytes", h.hello->max_frame_bytes},
                  {"codecs", h.hello->codecs},
                  {"flags", h.hello->flags},
                  {"peer_name", h.hello->peer_name}};
  }
  json sections = json::array();
  for (const auto& s : f.sections) {
    sections.push_back({{"kind", std::string(section_kind_name(s.entry.kind))},
                        {"offset", s.entry.offset},
                        {"length", s.entry.length},
                        {"xxh3", ptp::to_hex(s.entry.checksum)},
                        {"checksum_ok", s.checksum_ok},
                        {"actual_xxh3", ptp::to_hex(s.actual_checksum)},
                        {"padding_ok", s.padding_ok}});
  }
  j["sections"] = sections;
  j["body_length"] = h.body_length;
  j["valid"] = f.body.is_ok();
  if (!f.body) j["problem"] = f.body.to_string();
  return j;
}

void print_text(const json& j) {
  std::printf("frame at byte %llu: %llu bytes, %s%s\n",
              static_cast<unsigned long long>(j["offset"].get<std::size_t>()),
              static_cast<unsigned long long>(j["frame_bytes"].get<std::size_t>()),
              j["kind"].get<std::string>().c_str(),
              j["valid"].get<bool>() ? "" : "  ** INVALID **");
  const auto& p = j["prefix"];
  std::printf("  prefix   format v%u, flags %u, header %u bytes, header XXH3 %s (ok)\n",
              p["format_version"].get<unsigned>(), p["flags"].get<unsigned>(),
              p["header_length"].get<unsigned>(), p["header_checksum"].get<std::string>().c_str());
  std::printf("  header   protocol %u, stream %u, sequence %llu, timestamp %llu ns\n",
              j["protocol_version"].get<unsigned>(), j["stream_id"].get<unsigned>(),
              static_cast<unsigned long long>(j["sequence"].get<std::uint64_t>()),
              static_cast<unsigned long long>(j["timestamp_ns"].get<std::uint64_t>()));
  std::printf("  model    %s, split layer %d, fingerprint %s\n",
              j["model_id"].get<std::string>().c_str(), j["split_layer"].get<int>(),
              j["fingerprint"].get<std::string>().c_str());
  for (const char* key : {"tensor", "codec", "chunk", "ack", "error", "hello"}) {
    if (j.contains(key)) std::printf("  %-8s %s\n", key, tools::json_text(j[key]).c_str());
  }
  std::printf("  sections (body %llu bytes):\n",
              static_cast<unsigned long long>(j["body_length"].get<std::uint64_t>()));
  for (const auto& s : j["sections"]) {
    std::printf(
        "    %-12s offset %10llu  length %10llu  xxh3 %s  %s%s\n",
        s["kind"].get<std::string>().c_str(),
        static_cast<unsigned long long>(s["offset"].get<std::uint64_t>()),
        static_cast<unsigned long long>(s["length"].get<std::uint64_t>()),
        s["xxh3"].get<std::string>().c_str(),
        s["checksum_ok"].get<bool>()
            ? "checksum ok"
            : ("CHECKSUM MISMATCH (is " + s["actual_xxh3"].get<std::string>() + ")").c_str(),
        s["padding_ok"].get<bool>() ? "" : ", NON-ZERO PADDING");
  }
  if (j.contains("problem"))
    std::printf("  problem  %s\n", j["problem"].get<std::string>().c_str());
}

}  // namespace

int main(int argc, char** argv) {
  std::string path;
  bool as_json = false;
  CLI::App app{
      "ptp-inspect: prints each frame of a file of back-to-back PTP frames (ptp-recv "
      "--save-frames writes one): prefix, header fields, codec metadata, fingerprint and the "
      "section table with each checksum's status. Exit 1 when a frame is invalid."};
  app.add_option("file", path, "file of frames")->required();
  app.add_flag("--json", as_json, "print a JSON array of frames");
  if (auto code = tools::parse_command_line(app, argc, argv, kTool)) return *code;
  auto file = ptp::MappedFile::open(path);
  if (!file) return tools::fail(kTool, file.status().message(), tools::kExitUsage);
  const auto bytes = file->bytes();
  if (bytes.empty()) return tools::fail(kTool, path + " is empty");
  json all = json::array();
  bool valid = true;
  std::size_t at = 0;
  std::string error;
  while (at < bytes.size()) {
    auto f = ptp::inspect_frame(bytes.subspan(at));
    if (!f) {
      error = "frame at byte " + std::to_string(at) + ": " + f.status().to_string();
      valid = false;
      break;
    }
    json j = describe(*f, at);
    if (!as_json) print_text(j);
    valid = valid && f->body.is_ok();
    all.push_back(std::move(j));
    at += f->frame_bytes;
  }
  if (as_json) {
    json doc = {{"file", path}, {"frames", all}, {"valid", valid}};
    if (!error.empty()) doc["error"] = error;
    std::cout << tools::json_text(doc, 2) << "\n";
  }
  if (!error.empty()) return tools::fail(kTool, error);
  return valid ? 0 : tools::kExitFailure;
}
