// ptp-demo: the main job of `./dev demo` until the transport lands. Seed-shaped tensor packets are
// encoded with each codec, framed, laid out as they would go on the wire, fed to the push decoder
// in socket-sized pieces, verified, and decoded into a host buffer; the codecs are interleaved
// packet by packet so the comparison is fair on a noisy machine. One tampered frame shows the
// receiver catching corruption.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "agp/codec/dtype.hpp"
#include "agp/ptp/fingerprint.hpp"
#include "agp/ptp/frame_decoder.hpp"
#include "agp/ptp/tensor_packet.hpp"
#include "agp/ptp/validate.hpp"

namespace {

using namespace agp;
using namespace agp::ptp;
using Clock = std::chrono::steady_clock;

struct Options {
  int count = 100;
  std::string shape_text = "1,1280,1,256";
  std::string dtype_text = "f16";
  std::string codecs_text = "raw,tq4,tq8,ec4";
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

// "raw", "tq<b>", "prod<b>", "int8", "int4", "ec<b>" (b <= 6: entropy coded to b bits per value;
// 7 or 8: mean removal + b-bit TurboQuant codes).
Result<PacketCodec> parse_codec(const std::string& name, DType dtype) {
  PacketCodec c;
  c.config.raw_dtype = dtype;
  auto bits_after = [&](std::size_t prefix, int lo, int hi) -> int {
    const std::string rest = name.substr(prefix);
    if (rest.empty() || rest.size() > 1 || rest[0] < '0' || rest[0] > '9') return -1;
    const int b = rest[0] - '0';
    return b >= lo && b <= hi ? b : -1;
  };
  int b = -1;
  if (name == "raw") {
    c.config.id = CodecId::kRaw;
    return c;
  }
  if (name == "int8" || name == "int4") {
    c.config.id = name == "int8" ? CodecId::kBlockAbsmaxInt8 : CodecId::kBlockAbsmax4;
    c.config.bits = name == "int8" ? 8 : 4;
    return c;
  }
  if (name.rfind("tq", 0) == 0 && (b = bits_after(2, 1, 8)) > 0) {
    c.config.id = CodecId::kTurboQuantMse;
  } else if (name.rfind("prod", 0) == 0 && (b = bits_after(4, 2, 8)) > 0) {
    c.config.id = CodecId::kTurboQuantProd;
  } else if (name.rfind("ec", 0) == 0 && (b = bits_after(2, 2, 8)) > 0) {
    c.config.id = CodecId::kTurboQuantEc;
    c.ec.bits_per_value = b;
    if (b > 6) c.ec.fixed_bits = b;
  } else {
    return make_error(
        ErrorCode::kInvalidArgument,
        "unknown codec '" + name + "' (raw, tq1..tq8, prod2..prod8, int8, int4, ec2..ec8)");
  }
  c.config.bits = b;
  return c;
}

// N(0,1) values (portable Box-Muller on splitmix64) in the requested dtype.
std::vector<std::byte> gaussian_tensor(std::uint64_t elements, DType dtype, std::uint64_t& state) {
  auto next = [&] {
    state += 0x9e3779b97f4a7c15ull;
    std::uint64_t z = state;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return static_cast<double>((z ^ (z >> 31)) >> 11) * 0x1.0p-53;
  };
  std::vector<std::byte> out(elements * dtype_size(dtype));
  for (std::uint64_t i = 0; i < elements; ++i) {
    const auto f = static_cast<float>(std::sqrt(-2.0 * std::log(next() + 0x1.0p-54)) *
                                      std::cos(6.283185307179586 * next()));
    if (dtype == DType::kF32) {
      std::memcpy(out.data() + 4 * i, &f, 4);
    } else {
      const std::uint16_t h = dtype == DType::kF16 ? f32_to_f16(f) : f32_to_bf16(f);
      std::memcpy(out.data() + 2 * i, &h, 2);
    }
  }
  return out;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5)];
}

double us_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
}

struct Lane {
  std::string name;
  PacketCodec codec;
  std::unique_ptr<TensorPacketWriter> writer;
  std::vector<double> encode_us, receive_us;
  std::uint64_t frame_bytes = 0;
  double err = 0, energy = 0, cos_sum = 0;
  int verified = 0;
};

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
  const std::uint32_t axis = shape->size() > 1 ? 1 : 0;
  const Layout layout = shape->size() == 4 ? Layout::kBC1S : Layout::kUnspecified;

  std::vector<Lane> lanes;
  std::stringstream cs(o.codecs_text);
  std::string name;
  while (std::getline(cs, name, ',')) {
    auto c = parse_codec(name, *dtype);
    if (!c) {
      std::fprintf(stderr, "ptp-demo: --codecs: %s\n", c.status().message().c_str());
      return 2;
    }
    Lane l;
    l.name = name;
    l.codec = *c;
    l.writer = std::make_unique<TensorPacketWriter>(*c);
    lanes.push_back(std::move(l));
  }
  if (lanes.empty()) {
    std::fprintf(stderr, "ptp-demo: --codecs names no codec\n");
    return 2;
  }

  static constexpr std::string_view kDigest = "demo-weights";
  const Hash128 fingerprint =
      model_fingerprint({"ptp-demo", std::as_bytes(std::span(kDigest.data(), kDigest.size())), 2,
                         (*shape)[axis], *dtype, 1});
  DecoderOptions dopts;
  dopts.expected_fingerprint = fingerprint;
  FrameDecoder decoder(dopts);
  std::uint64_t state = o.seed;
  std::vector<std::byte> wire, decoded(tensor_bytes);
  std::string tamper_result = "not run";

  for (int i = 0; i < o.count; ++i) {
    const auto tensor = gaussian_tensor(elements, *dtype, state);
    const auto in = codec::TensorView::contiguous(tensor.data(), *dtype, *shape, axis);
    for (Lane& l : lanes) {  // interleaved packet by packet
      MessageHeader h;
      h.sequence = static_cast<std::uint64_t>(i);
      h.fingerprint = fingerprint;
      h.model_id = "ptp-demo";
      h.split_layer = 2;
      auto t0 = Clock::now();
      auto gather = l.writer->write(in, h, layout);
      if (!gather) {
        std::fprintf(stderr, "ptp-demo: %s: %s\n", l.name.c_str(),
                     gather.status().to_string().c_str());
        return 1;
      }
      l.encode_us.push_back(us_since(t0));
      wire.clear();  // what a socket would carry: the gather pieces back to back
      for (const auto& piece : gather->pieces) wire.insert(wire.end(), piece.begin(), piece.end());
      l.frame_bytes = wire.size();

      t0 = Clock::now();
      for (std::size_t pos = 0; pos < wire.size();) {
        auto used =
            decoder.consume(std::span(wire).subspan(pos, std::min(o.chunk, wire.size() - pos)));
        if (!used) {
          std::fprintf(stderr, "ptp-demo: packet %d rejected: %s\n", i,
                       used.status().to_string().c_str());
          return 1;
        }
        pos += *used;
      }
      const Frame frame = decoder.take_frame();
      const auto out = codec::TensorView::contiguous(decoded.data(), *dtype, *shape, axis);
      if (auto s = read_tensor_packet(frame.header(), frame.body(), out); !s) {
        std::fprintf(stderr, "ptp-demo: %s decode: %s\n", l.name.c_str(), s.to_string().c_str());
        return 1;
      }
      l.receive_us.push_back(us_since(t0));
      ++l.verified;
      // Error of what the receiver got, per vector.
      std::vector<float> a(elements), b(elements);
      codec::VectorAccess(in).gather(0, in.vector_count(), a.data());
      codec::VectorAccess(out).gather(0, out.vector_count(), b.data());
      const std::uint32_t dim = in.dim();
      for (std::uint64_t v = 0; v < in.vector_count(); ++v) {
        double dot = 0, na = 0, nb = 0;
        for (std::uint32_t j = 0; j < dim; ++j) {
          const double x = a[v * dim + j], y = b[v * dim + j];
          l.err += (x - y) * (x - y);
          l.energy += x * x;
          dot += x * y;
          na += x * x;
          nb += y * y;
        }
        l.cos_sum += na > 0 && nb > 0 ? dot / std::sqrt(na * nb) : 1.0;
      }
    }
    if (i + 1 == o.count) {  // flip one body byte of the last frame: it must be refused
      wire[wire.size() / 2 + 100] ^= std::byte{0x01};
      FrameDecoder checker(dopts);
      auto tampered = checker.consume(wire);
      tamper_result =
          tampered ? "accepted (BUG)" : std::string(error_code_name(tampered.status().code()));
    }
  }

  const double vectors =
      static_cast<double>(o.count) * static_cast<double>(elements / (*shape)[axis]);
  const Lane* raw = nullptr;
  for (const Lane& l : lanes) {
    if (l.codec.config.id == CodecId::kRaw) raw = &l;
  }
  if (o.json) {
    std::printf(
        "{\"tool\":\"ptp-demo\",\"packets\":%d,\"shape\":\"%s\",\"dtype\":\"%s\","
        "\"tensor_bytes\":%llu,\"feed_chunk_bytes\":%zu,\"tampered_frame\":\"%s\","
        "\"fingerprint\":\"%s\",\"codecs\":[",
        o.count, o.shape_text.c_str(), std::string(dtype_name(*dtype)).c_str(),
        static_cast<unsigned long long>(tensor_bytes), o.chunk, tamper_result.c_str(),
        to_hex(fingerprint).c_str());
    for (std::size_t k = 0; k < lanes.size(); ++k) {
      const Lane& l = lanes[k];
      std::printf(
          "%s{\"codec\":\"%s\",\"frame_bytes\":%llu,\"ratio_vs_fp16\":%.4f,"
          "\"bits_per_value\":%.4f,\"verified\":%d,\"encode_p50_us\":%.1f,"
          "\"encode_p99_us\":%.1f,\"receive_p50_us\":%.1f,\"receive_p99_us\":%.1f,"
          "\"rel_mse\":%.6g,\"cosine\":%.6f}",
          k ? "," : "", l.name.c_str(), static_cast<unsigned long long>(l.frame_bytes),
          static_cast<double>(elements * 2) / static_cast<double>(l.frame_bytes),
          static_cast<double>(l.frame_bytes) * 8.0 / static_cast<double>(elements), l.verified,
          percentile(l.encode_us, 0.5), percentile(l.encode_us, 0.99),
          percentile(l.receive_us, 0.5), percentile(l.receive_us, 0.99),
          l.energy > 0 ? l.err / l.energy : 0.0, l.cos_sum / vectors);
    }
    std::printf("]}\n");
  } else {
    std::printf(
        "AGP-PTP demo: %d packets [%s] %s per codec, in process (no socket yet), fed to the\n"
        "receiver in %zu-byte pieces; times are medians (p99) per packet\n\n",
        o.count, o.shape_text.c_str(), std::string(dtype_name(*dtype)).c_str(), o.chunk);
    std::printf("%-6s %12s %9s %9s %18s %20s %11s %9s\n", "codec", "frame bytes", "vs fp16",
                "bits/val", "encode+frame us", "verify+decode us", "rel MSE", "cosine");
    for (const Lane& l : lanes) {
      std::printf("%-6s %12llu %8.2fx %9.3f %9.1f (%6.1f) %11.1f (%6.1f) %11.3g %9.5f\n",
                  l.name.c_str(), static_cast<unsigned long long>(l.frame_bytes),
                  static_cast<double>(elements * 2) / static_cast<double>(l.frame_bytes),
                  static_cast<double>(l.frame_bytes) * 8.0 / static_cast<double>(elements),
                  percentile(l.encode_us, 0.5), percentile(l.encode_us, 0.99),
                  percentile(l.receive_us, 0.5), percentile(l.receive_us, 0.99),
                  l.energy > 0 ? l.err / l.energy : 0.0, l.cos_sum / vectors);
    }
    std::printf("\nall %d packets verified (checksums, model fingerprint %s)%s\n",
                o.count * static_cast<int>(lanes.size()), to_hex(fingerprint).c_str(),
                raw ? "; raw packets came back bit-identical" : "");
    std::printf("tampered frame: rejected as %s\n", tamper_result.c_str());
  }
  if (raw && raw->err != 0) {
    std::fprintf(stderr, "ptp-demo: raw packets did not come back bit-identical\n");
    return 1;
  }
  return tamper_result == "accepted (BUG)" ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{
      "ptp-demo: encodes seed-shaped N(0,1) tensor packets with each codec, frames them with the "
      "AGP-PTP packet layer, feeds them to the push decoder in socket-sized pieces, verifies "
      "checksums and the model fingerprint, decodes into a host buffer, and reports size, time and "
      "error per codec. Codecs are interleaved packet by packet. Times are in process: "
      "encode+frame on the sender side, verify+decode on the receiver side (no socket)."};
  app.add_option("-n,--count", o.count, "packets per codec")->check(CLI::Range(1, 100000));
  app.add_option(
      "--shape", o.shape_text,
      "tensor shape, comma-separated (seed packet: 1,1280,1,256); vectors run along axis 1");
  app.add_option("--dtype", o.dtype_text, "source dtype: f16, bf16 or f32");
  app.add_option("--codecs", o.codecs_text,
                 "comma-separated: raw, tq1..tq8 (TurboQuant), prod2..prod8, int8, int4, "
                 "ec2..ec8 (high-fidelity TurboQuant-EC)");
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
