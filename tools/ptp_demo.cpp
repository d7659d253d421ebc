// ptp-demo: the main job of `./dev demo` until the transport lands. Seed-shaped tensor packets are
// framed by FrameBuilder, laid out as they would go on the wire, fed to the push decoder in
// socket-sized pieces, verified, and compared bit for bit with what was sent. One tampered copy
// shows the receiver catching corruption.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "agp/codec/dtype.hpp"
#include "agp/ptp/fingerprint.hpp"
#include "agp/ptp/frame_builder.hpp"
#include "agp/ptp/frame_decoder.hpp"
#include "agp/ptp/validate.hpp"

namespace {

using namespace agp;
using namespace agp::ptp;
using Clock = std::chrono::steady_clock;

struct Options {
  int count = 200;
  std::string shape_text = "1,1280,1,256";
  std::string dtype_text = "f16";
  std::size_t chunk = 64 * 1024;
  std::uint64_t seed = 1;
  bool json = false;
};

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
  TensorDesc t{"demo", DType::kF16, shape, Layout::kUnspecified, 0};
  if (auto s = validate_tensor_desc(t); !s) {
    return make_error(ErrorCode::kInvalidArgument, "--shape '" + text + "': " + s.message());
  }
  return shape;
}

// N(0,1) values in the requested dtype, little-endian.
std::vector<std::byte> gaussian_tensor(std::uint64_t elements, DType dtype, std::mt19937_64& rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<std::byte> out(elements * dtype_size(dtype));
  for (std::uint64_t i = 0; i < elements; ++i) {
    const float f = normal(rng);
    if (dtype == DType::kF32) {
      std::memcpy(out.data() + 4 * i, &f, 4);
    } else {
      const std::uint16_t h = dtype == DType::kF16 ? f32_to_f16(f) : f32_to_bf16(f);
      std::memcpy(out.data() + 2 * i, &h, 2);
    }
  }
  return out;
}

double percentile_us(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const auto idx = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[idx];
}

double us_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
}

int run(const Options& o) {
  auto shape = parse_shape(o.shape_text);
  if (!shape) {
    std::fprintf(stderr, "ptp-demo: %s\n", shape.status().message().c_str());
    return 2;
  }
  const auto dtype = dtype_from_name(o.dtype_text);
  if (!dtype || !is_float_dtype(*dtype)) {
    std::fprintf(stderr, "ptp-demo: --dtype '%s': expected f16, bf16 or f32\n",
                 o.dtype_text.c_str());
    return 2;
  }
  const std::uint64_t elements = *shape_element_count(*shape);
  const std::uint64_t tensor_bytes = elements * dtype_size(*dtype);
  if (tensor_bytes > (std::uint64_t{1} << 30)) {
    std::fprintf(stderr, "ptp-demo: --shape: %llu bytes per packet is above the 1 GiB body cap\n",
                 static_cast<unsigned long long>(tensor_bytes));
    return 2;
  }

  static constexpr std::string_view kDigest = "demo-weights";
  const Hash128 fingerprint =
      model_fingerprint({"ptp-demo", std::as_bytes(std::span(kDigest.data(), kDigest.size())), 2,
                         shape->size() > 1 ? (*shape)[1] : (*shape)[0], *dtype, 1});
  MessageHeader header;
  header.kind = MessageKind::kTensorPacket;
  header.fingerprint = fingerprint;
  header.model_id = "ptp-demo";
  header.split_layer = 2;
  const Layout layout = shape->size() == 4 ? Layout::kBC1S : Layout::kUnspecified;
  header.tensor = TensorDesc{"hidden", *dtype, *shape, layout,
                             shape->size() > 1 ? std::uint8_t{1} : std::uint8_t{0}};
  header.codec = CodecDesc{};
  header.codec->original_bytes = tensor_bytes;

  std::mt19937_64 rng(o.seed);
  FrameBuilder builder;
  DecoderOptions dopts;
  dopts.expected_fingerprint = fingerprint;
  FrameDecoder decoder(dopts);
  std::vector<double> build_us, decode_us;
  std::vector<std::byte> wire;
  std::uint64_t frame_bytes = 0, header_bytes = 0;
  int identical = 0;

  for (int i = 0; i < o.count; ++i) {
    const auto tensor = gaussian_tensor(elements, *dtype, rng);
    header.sequence = static_cast<std::uint64_t>(i);
    header.timestamp_ns =
        static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                       std::chrono::system_clock::now().time_since_epoch())
                                       .count());
    const SectionInput section{SectionKind::kRaw, tensor, std::nullopt};

    auto t0 = Clock::now();
    auto gather = builder.build(header, std::span(&section, 1));
    build_us.push_back(us_since(t0));
    if (!gather) {
      std::fprintf(stderr, "ptp-demo: %s\n", gather.status().to_string().c_str());
      return 1;
    }
    // What a socket would carry: the gather pieces back to back.
    wire.clear();
    for (const auto& piece : gather->pieces) wire.insert(wire.end(), piece.begin(), piece.end());
    frame_bytes = wire.size();
    header_bytes = gather->pieces[0].size();

    t0 = Clock::now();
    for (std::size_t pos = 0; pos < wire.size();) {
      const std::size_t n = std::min(o.chunk, wire.size() - pos);
      auto used = decoder.consume(std::span(wire).subspan(pos, n));
      if (!used) {
        std::fprintf(stderr, "ptp-demo: packet %d rejected: %s\n", i,
                     used.status().to_string().c_str());
        return 1;
      }
      pos += *used;
    }
    const Frame frame = decoder.take_frame();
    decode_us.push_back(us_since(t0));
    const auto got = frame.find_section(SectionKind::kRaw);
    if (got.size() == tensor.size() && std::memcmp(got.data(), tensor.data(), got.size()) == 0) {
      ++identical;
    }
  }

  // Tamper with one body byte of the last frame: the receiver must refuse it.
  wire[header_bytes + (wire.size() - header_bytes) / 2] ^= std::byte{0x01};
  FrameDecoder checker(dopts);
  auto tampered = checker.consume(wire);
  const std::string tamper_result = tampered
                                        ? std::string("accepted (BUG)")
                                        : std::string(error_code_name(tampered.status().code()));

  const double overhead =
      100.0 * static_cast<double>(frame_bytes - tensor_bytes) / static_cast<double>(tensor_bytes);
  const double b50 = percentile_us(build_us, 0.5), b99 = percentile_us(build_us, 0.99);
  const double d50 = percentile_us(decode_us, 0.5), d99 = percentile_us(decode_us, 0.99);
  const double gbps = static_cast<double>(frame_bytes) * 8.0 / (d50 * 1e3);
  if (o.json) {
    std::printf(
        "{\"tool\":\"ptp-demo\",\"packets\":%d,\"shape\":\"%s\",\"dtype\":\"%s\",\"codec\":\"raw\","
        "\"tensor_bytes\":%llu,\"frame_bytes\":%llu,\"prefix_header_bytes\":%llu,"
        "\"overhead_pct\":%.4f,\"build_p50_us\":%.2f,\"build_p99_us\":%.2f,"
        "\"decode_verify_p50_us\":%.2f,\"decode_verify_p99_us\":%.2f,\"feed_chunk_bytes\":%zu,"
        "\"bit_identical\":%d,\"tampered_frame\":\"%s\",\"fingerprint\":\"%s\"}\n",
        o.count, o.shape_text.c_str(), std::string(dtype_name(*dtype)).c_str(),
        static_cast<unsigned long long>(tensor_bytes), static_cast<unsigned long long>(frame_bytes),
        static_cast<unsigned long long>(header_bytes), overhead, b50, b99, d50, d99, o.chunk,
        identical, tamper_result.c_str(), to_hex(fingerprint).c_str());
  } else {
    std::printf(
        "AGP-PTP demo: %d packets [%s] %s through the packet layer (in-process, no socket)\n",
        o.count, o.shape_text.c_str(), std::string(dtype_name(*dtype)).c_str());
    std::printf("  codec                 raw %s (compressed codecs arrive with the codec)\n",
                std::string(dtype_name(*dtype)).c_str());
    std::printf("  tensor bytes          %llu\n", static_cast<unsigned long long>(tensor_bytes));
    std::printf("  frame bytes           %llu  (prefix+header %llu, overhead %.3f%%)\n",
                static_cast<unsigned long long>(frame_bytes),
                static_cast<unsigned long long>(header_bytes), overhead);
    std::printf("  build (checksum+hdr)  p50 %.1f us  p99 %.1f us\n", b50, b99);
    std::printf(
        "  decode+verify         p50 %.1f us  p99 %.1f us  (fed %zu-byte pieces; %.1f Gbit/s)\n",
        d50, d99, o.chunk, gbps);
    std::printf("  round trip            %d/%d packets bit-identical, fingerprint %s checked\n",
                identical, o.count, to_hex(fingerprint).c_str());
    std::printf("  tampered frame        rejected as %s\n", tamper_result.c_str());
  }
  return identical == o.count && !tampered ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{
      "ptp-demo: frames seed-shaped tensor packets with the AGP-PTP packet layer, feeds them to "
      "the push decoder in socket-sized pieces, verifies checksums and the model fingerprint, and "
      "checks that every packet comes back bit-identical. Timings are per packet, in process."};
  app.add_option("-n,--count", o.count, "packets to send")->check(CLI::Range(1, 1000000));
  app.add_option("--shape", o.shape_text,
                 "tensor shape, comma-separated (seed packet: 1,1280,1,256)");
  app.add_option("--dtype", o.dtype_text, "source dtype: f16, bf16 or f32");
  app.add_option("--chunk", o.chunk, "bytes per piece fed to the decoder, as a socket read would")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 30));
  app.add_option("--seed", o.seed, "random seed of the N(0,1) generator");
  app.add_flag("--json", o.json, "print one JSON object instead of the table");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "ptp-demo: %s (see --help)\n", e.what());
    return 2;
  }
  return run(o);
}
