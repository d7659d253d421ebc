// What the command-line tools share: parsing shapes, dtypes and codec names, the synthetic data
// generators, error metrics, percentiles, the link identity both ends derive from their flags, and
// one-line error reporting.
#pragma once

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "agp/codec/tensor_view.hpp"
#include "agp/ptp/message.hpp"
#include "agp/ptp/tensor_packet.hpp"
#include "agp/status.hpp"
#include "agp/transport/link.hpp"

namespace agp::tools {

// Exit codes: 0 success, 1 a failure while running (peer, network, data), 2 a usage error.
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

// Prints "tool: message" on stderr and returns `code`.
int fail(const std::string& tool, const std::string& message, int code = kExitFailure);

// "1,1280,1,256": positive integers; a valid tensor shape (rank 1..8).
Result<std::vector<std::uint64_t>> parse_shape(const std::string& text);
// "f16", "bf16" or "f32".
Result<DType> parse_float_dtype(const std::string& text);
// "raw", "tq1".."tq8" (TurboQuant), "prod2".."prod8", "int8", "int4", "ec2".."ec8"
// (TurboQuant-EC: up to 6 entropy coded to that many bits per value; 7 or 8 mean removal + codes).
Result<ptp::PacketCodec> parse_codec(const std::string& name, DType dtype);
// Comma-separated names; at least one.
Result<std::vector<std::string>> split_list(const std::string& text, const std::string& what);

// Synthetic split-layer states, deterministic in (kind, seed, index): "gauss" is N(0,1) in every
// value (the seed plan's packets); "llm-like" adds what real hidden states have: a few outlier
// channels tens of times larger than the rest, heavy-tailed values and per-token scale.
struct Generator {
  std::string kind = "gauss";
  std::uint64_t seed = 1;
  static Result<Generator> parse(const std::string& kind, std::uint64_t seed);
  // C-order bytes of `shape` in `dtype`; vectors run along `vector_axis` (outlier channels are
  // positions along it).
  std::vector<std::byte> make(std::uint64_t index, const std::vector<std::uint64_t>& shape,
                              DType dtype, std::uint32_t vector_axis) const;
  // "gen=<kind>;seed=<seed>;index=<index>": the tensor name a sender gives a generated packet, so
  // a receiver can regenerate the original and check the error.
  std::string tag(std::uint64_t index) const;
  static Result<std::pair<Generator, std::uint64_t>> from_tag(const std::string& name);
};

// Error of a decoded tensor against its original, accumulated over packets.
struct ErrorStats {
  double squared_error = 0;
  double energy = 0;
  double cosine_sum = 0;
  std::uint64_t vectors = 0;
  double max_abs = 0;
  void add(const codec::TensorView& original, const codec::TensorView& decoded);
  double rel_mse() const { return energy > 0 ? squared_error / energy : 0.0; }
  double cosine() const { return vectors ? cosine_sum / static_cast<double>(vectors) : 1.0; }
};

double percentile(std::vector<double> v, double p);
double micros_since(std::chrono::steady_clock::time_point t0);
std::uint64_t wall_clock_ns();

// The identity both ends derive from the same flags: fingerprint of (model id, split layer) and
// the optional key file. A different --model-id or --split on one side is a fingerprint mismatch.
struct Identity {
  std::string model_id = "ptp-bench";
  std::int32_t split_layer = 2;
  std::string key_file;  // raw bytes of the pre-shared key; "" = no key
  std::string calibration;  // ptp-calibrate's file; "" = none (no calibrated codecs)
};
Result<transport::LinkOptions> link_options(const Identity& id, const std::string& tool);

// --model-id, --split, --key-file and --calibration, which both ends must give alike.
void add_identity_options(CLI::App& app, Identity& id);

// How soon a silent peer counts as gone, and how long a lost peer is waited for.
struct Liveness {
  int dead_peer_ms = 1000;
  int give_up_ms = 30000;
};
// --dead-peer-ms and --give-up-ms.
void add_liveness_options(CLI::App& app, Liveness& l);
void apply(const Liveness& l, transport::LinkOptions& o);

// What carries the frames: --backend tcp|ucx and --ucx-transports. Both ends must agree.
struct Carrier {
  std::string backend = "tcp";
  std::string ucx_transports;  // UCX_TLS names; "" lets UCX choose
};
void add_carrier_options(CLI::App& app, Carrier& c);
// Sets o.backend and o.ucx_transports; kInvalidArgument for UCX settings without --backend ucx.
Status apply(const Carrier& c, transport::LinkOptions& o);

// A number in [lo, hi] for a floating-point flag. NaN and infinity are refused (CLI11's own
// range checks let NaN through), and the message names the range in plain figures.
CLI::Validator number_in(double lo, double hi);

// Parses the command line. On --help (printed) or a bad flag (one line on stderr) returns the exit
// code to end with; otherwise nullopt.
std::optional<int> parse_command_line(CLI::App& app, int argc, char** argv,
                                      const std::string& tool);
// "tool arg1 arg2 ...", for reports.
std::string command_line(const std::string& tool, int argc, char** argv);

// Default vector axis and layout for a shape: axis 1 and [B, C, 1, S] for rank 4, else the last
// axis.
std::uint32_t default_vector_axis(const std::vector<std::uint64_t>& shape);
ptp::Layout default_layout(const std::vector<std::uint64_t>& shape);

}  // namespace agp::tools
