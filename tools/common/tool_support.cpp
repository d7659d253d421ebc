#include "tool_support.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "agp/codec/dtype.hpp"
#include "agp/ptp/calibration_file.hpp"
#include "agp/ptp/fingerprint.hpp"
#include "agp/ptp/mapped_file.hpp"
#include "agp/ptp/validate.hpp"

namespace agp::tools {

int fail(const std::string& tool, const std::string& message, int code) {
  std::fprintf(stderr, "%s: %s\n", tool.c_str(), message.c_str());
  return code;
}

Result<std::vector<std::uint64_t>> parse_shape(const std::string& text) {
  std::vector<std::uint64_t> shape;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    char* end = nullptr;
    const unsigned long long v = std::strtoull(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || v == 0) {
      return make_error(ErrorCode::kInvalidArgument,
                        "--shape '" + text + "': expected positive integers separated by commas");
    }
    shape.push_back(v);
  }
  ptp::TensorDesc t{"shape", DType::kF16, shape, ptp::Layout::kUnspecified, 0};
  if (auto s = ptp::validate_tensor_desc(t); !s) {
    return make_error(ErrorCode::kInvalidArgument, "--shape '" + text + "': " + s.message());
  }
  return shape;
}

Result<DType> parse_float_dtype(const std::string& text) {
  const auto d = dtype_from_name(text);
  if (!d || !is_float_dtype(*d)) {
    return make_error(ErrorCode::kInvalidArgument,
                      "--dtype '" + text + "': expected f16, bf16 or f32");
  }
  return *d;
}

Result<ptp::PacketCodec> parse_codec(const std::string& name, DType dtype) {
  return ptp::parse_packet_codec(name, dtype);
}

Result<std::vector<std::string>> split_list(const std::string& text, const std::string& what) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (!item.empty()) out.push_back(item);
  }
  if (out.empty()) return make_error(ErrorCode::kInvalidArgument, what + " names nothing");
  return out;
}

namespace {

// splitmix64: a portable, seedable stream (the same values on every platform).
struct Stream {
  std::uint64_t state;
  double uniform() {
    state += 0x9e3779b97f4a7c15ull;
    std::uint64_t z = state;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return static_cast<double>((z ^ (z >> 31)) >> 11) * 0x1.0p-53;
  }
  double normal() {
    return std::sqrt(-2.0 * std::log(uniform() + 0x1.0p-54)) *
           std::cos(6.283185307179586 * uniform());
  }
};

void store(std::byte* dst, DType dtype, float f) {
  if (dtype == DType::kF32) {
    std::memcpy(dst, &f, 4);
  } else {
    const std::uint16_t h = dtype == DType::kF16 ? f32_to_f16(f) : f32_to_bf16(f);
    std::memcpy(dst, &h, 2);
  }
}

}  // namespace

Result<Generator> Generator::parse(const std::string& kind, std::uint64_t seed) {
  if (kind != "gauss" && kind != "llm-like") {
    return make_error(ErrorCode::kInvalidArgument,
                      "--generator '" + kind + "': expected gauss or llm-like");
  }
  return Generator{kind, seed};
}

std::vector<std::byte> Generator::make(std::uint64_t index, const std::vector<std::uint64_t>& shape,
                                       DType dtype, std::uint32_t vector_axis) const {
  std::uint64_t elements = 1;
  for (auto d : shape) elements *= d;
  std::vector<std::byte> out(elements * dtype_size(dtype));
  Stream s{seed * 0x100000001b3ull ^ (index + 1) * 0xcbf29ce484222325ull};
  if (kind == "gauss") {
    for (std::uint64_t i = 0; i < elements; ++i) {
      store(out.data() + i * dtype_size(dtype), dtype, static_cast<float>(s.normal()));
    }
    return out;
  }
  // llm-like: channel c has scale 1, except ~1% outlier channels (fixed by the seed, as in a real
  // model) at 20-60x; values are Student-t with 4 degrees of freedom (heavy tails); each token
  // (vector) gets a scale between 0.5 and 2.
  const std::uint64_t channels = shape[vector_axis];
  std::vector<double> channel_scale(channels, 1.0);
  Stream fixed{seed * 0x9e3779b97f4a7c15ull + 7};
  for (std::uint64_t c = 0; c < channels; ++c) {
    if (fixed.uniform() < 0.01) channel_scale[c] = 20.0 + 40.0 * fixed.uniform();
  }
  std::uint64_t inner = 1;  // C-order stride of the vector axis
  for (std::size_t a = vector_axis + 1; a < shape.size(); ++a) inner *= shape[a];
  std::vector<double> token_scale(elements / channels);
  for (double& t : token_scale) t = std::exp2(2.0 * s.uniform() - 1.0);
  for (std::uint64_t i = 0; i < elements; ++i) {
    const std::uint64_t c = (i / inner) % channels;
    const std::uint64_t token = (i / (inner * channels)) * inner + i % inner;
    double chi2 = 0;
    for (int k = 0; k < 4; ++k) {
      const double z = s.normal();
      chi2 += z * z;
    }
    const double t = s.normal() / std::sqrt(chi2 / 4.0) / std::sqrt(2.0);  // unit variance
    store(out.data() + i * dtype_size(dtype), dtype,
          static_cast<float>(t * channel_scale[c] * token_scale[token]));
  }
  return out;
}

std::string Generator::tag(std::uint64_t index) const {
  return "gen=" + kind + ";seed=" + std::to_string(seed) + ";index=" + std::to_string(index);
}

Result<std::pair<Generator, std::uint64_t>> Generator::from_tag(const std::string& name) {
  char kind[32] = {};
  unsigned long long seed = 0, index = 0;
  if (std::sscanf(name.c_str(), "gen=%31[a-z-];seed=%llu;index=%llu", kind, &seed, &index) != 3) {
    return make_error(ErrorCode::kInvalidArgument, "'" + name + "' is not a generator tag");
  }
  auto g = parse(kind, seed);
  if (!g) return g.status();
  return std::pair{*g, static_cast<std::uint64_t>(index)};
}

void ErrorStats::add(const codec::TensorView& original, const codec::TensorView& decoded) {
  const codec::VectorAccess a(original), b(decoded);
  const std::uint32_t dim = a.dim();
  std::vector<float> x(dim), y(dim);
  for (std::uint64_t v = 0; v < a.count(); ++v) {
    a.gather(v, 1, x.data());
    b.gather(v, 1, y.data());
    double dot = 0, nx = 0, ny = 0;
    for (std::uint32_t j = 0; j < dim; ++j) {
      const double d = static_cast<double>(x[j]) - y[j];
      squared_error += d * d;
      max_abs = std::max(max_abs, std::abs(d));
      dot += static_cast<double>(x[j]) * y[j];
      nx += static_cast<double>(x[j]) * x[j];
      ny += static_cast<double>(y[j]) * y[j];
    }
    energy += nx;
    cosine_sum += nx > 0 && ny > 0 ? dot / std::sqrt(nx * ny) : (nx == ny ? 1.0 : 0.0);
    ++vectors;
  }
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const auto i = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

double micros_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
}

std::uint64_t wall_clock_ns() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

Result<transport::LinkOptions> link_options(const Identity& id, const std::string& tool) {
  transport::LinkOptions o;
  o.model_id = id.model_id;
  o.split_layer = id.split_layer;
  o.peer_name = tool;
  static constexpr std::string_view kDigest = "synthetic-or-file-states";
  if (!id.calibration.empty()) {
    auto cal = ptp::read_calibration(id.calibration);
    if (!cal) return make_error(ErrorCode::kInvalidArgument, "--calibration: " + cal.status().message());
    o.calibration = std::make_shared<const codec::Calibration>(cal->calibration);
  }
  o.fingerprint =
      ptp::model_fingerprint({id.model_id, std::as_bytes(std::span(kDigest.data(), kDigest.size())),
                              id.split_layer, 0, DType::kF16, 1,
                              o.calibration ? o.calibration->id : 0});
  if (!id.key_file.empty()) {
    auto f = ptp::MappedFile::open(id.key_file);
    if (!f) return make_error(ErrorCode::kInvalidArgument, "--key-file: " + f.status().message());
    const auto bytes = f->bytes();
    if (bytes.size() < 16) {
      return make_error(ErrorCode::kInvalidArgument,
                        "--key-file '" + id.key_file + "' holds " + std::to_string(bytes.size()) +
                            " bytes; use at least 16 random bytes (head -c 32 /dev/urandom)");
    }
    o.key.resize(bytes.size());
    std::memcpy(o.key.data(), bytes.data(), bytes.size());
  }
  AGP_RETURN_IF_ERROR(transport::validate(o));  // e.g. a --model-id too long for a hello
  return o;
}

void add_liveness_options(CLI::App& app, Liveness& l) {
  app.add_option("--dead-peer-ms", l.dead_peer_ms,
                 "a peer heard nothing from for this long is gone (heartbeats go out at a fifth)")
      ->check(CLI::PositiveNumber);
  app.add_option("--give-up-ms", l.give_up_ms,
                 "wait this long for a lost peer to come back before failing (peer_lost)")
      ->check(CLI::PositiveNumber);
}

void apply(const Liveness& l, transport::LinkOptions& o) {
  o.dead_peer_timeout = transport::Millis(l.dead_peer_ms);
  o.heartbeat_interval = transport::Millis(std::max(1, l.dead_peer_ms / 5));
  o.reconnect_give_up = transport::Millis(l.give_up_ms);
}

void add_carrier_options(CLI::App& app, Carrier& c) {
  app.add_option("--backend", c.backend,
                 std::string("what carries the frames: tcp (every build) or ucx (UCX picks shared "
                             "memory, RDMA or TCP; this build: ") +
                     (transport::ucx_available() ? "has it" : "has no UCX") +
                     "); both ends alike. A UCX endpoint must not face an untrusted network: UCX "
                     "parses a connection's bytes before the handshake and its key (docs/transport.md)")
      ->check(CLI::IsMember({"tcp", "ucx"}));
  app.add_option("--ucx-transports", c.ucx_transports,
                 "with --backend ucx: the UCX transports it may use, as UCX_TLS names (tcp; sm,tcp; "
                 "posix,cma,tcp; rc,sm); empty lets UCX choose");
}

Status apply(const Carrier& c, transport::LinkOptions& o) {
  o.backend = c.backend == "ucx" ? transport::TransportBackend::kUcx : transport::TransportBackend::kTcp;
  if (o.backend != transport::TransportBackend::kUcx && !c.ucx_transports.empty()) {
    return make_error(ErrorCode::kInvalidArgument, "--ucx-transports needs --backend ucx");
  }
  o.ucx_transports = c.ucx_transports;
  return transport::validate(o);  // e.g. ucx in a build without it
}

void add_identity_options(CLI::App& app, Identity& id) {
  app.add_option("--model-id", id.model_id, "model id; both ends must give the same");
  app.add_option("--split", id.split_layer, "split layer; both ends must give the same");
  app.add_option("--key-file", id.key_file,
                 "file holding a pre-shared key, at least 16 bytes (both ends, or neither)");
  app.add_option("--calibration", id.calibration,
                 "calibration file for the calibrated codecs cal2..cal8 (ptp-calibrate; both ends "
                 "the same, it enters the fingerprint)");
}

std::optional<int> parse_command_line(CLI::App& app, int argc, char** argv,
                                      const std::string& tool) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return fail(tool, std::string(e.what()) + " (see --help)", kExitUsage);
  }
  return std::nullopt;
}

std::string command_line(const std::string& tool, int argc, char** argv) {
  std::string command = tool;
  for (int i = 1; i < argc; ++i) command += std::string(" ") + argv[i];
  return command;
}

std::uint32_t default_vector_axis(const std::vector<std::uint64_t>& shape) {
  return shape.size() == 4 ? 1u : static_cast<std::uint32_t>(shape.size() - 1);
}

ptp::Layout default_layout(const std::vector<std::uint64_t>& shape) {
  if (shape.size() == 4) return ptp::Layout::kBC1S;
  if (shape.size() == 3) return ptp::Layout::kBSD;
  if (shape.size() == 2) return ptp::Layout::kSD;
  return shape.size() == 1 ? ptp::Layout::kD : ptp::Layout::kUnspecified;
}

CLI::Validator number_in(double lo, double hi) {
  char range[96];
  std::snprintf(range, sizeof range, "a number from %g to %g", lo, hi);
  const std::string what = range;
  return CLI::Validator(
      [lo, hi, what](std::string& text) -> std::string {
        char* end = nullptr;
        const double v = std::strtod(text.c_str(), &end);
        if (text.empty() || end != text.c_str() + text.size()) return "'" + text + "' is not " + what;
        if (!std::isfinite(v) || v < lo || v > hi) return "expected " + what + ", got '" + text + "'";
        return {};
      },
      what);
}

}  // namespace agp::tools
