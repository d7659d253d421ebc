// ./dev bench codec: quality, size and speed of every codec on three data sets, with memcpy of the
// same input measured in the same run. Writes bench/results/latest-codec.json ({"rows": [...]}).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include "agp/codec/codec.hpp"
#include "agp/codec/lossless.hpp"
#include "agp/codec/thread_pool.hpp"
#include "agp/codec/turboquant_ec.hpp"
#if defined(AGP_HAVE_FIDELITY)
#include "agp/codec/calibrated.hpp"
#if defined(AGP_HAVE_HTSCODECS)
#include <htscodecs/rANS_static4x16.h>
#endif
#include "agp/fidelity/calibrate.hpp"
#include "common/tool_support.hpp"
#endif
#include "agp/ptp/frame_builder.hpp"
#include "agp/ptp/mapped_file.hpp"
#include "agp/ptp/npy.hpp"

namespace {

using namespace agp;
using namespace agp::codec;
using Clock = std::chrono::steady_clock;

struct DataSet {
  std::string name;
  DType dtype;
  std::vector<std::uint64_t> shape;
  std::uint32_t axis;
  ptp::Layout layout;
  std::vector<std::byte> bytes;
  TensorView view() const { return TensorView::contiguous(bytes.data(), dtype, shape, axis); }
};

std::uint64_t splitmix(std::uint64_t& s) {
  s += 0x9e3779b97f4a7c15ull;
  std::uint64_t z = s;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

double gauss(std::uint64_t& s) {
  const double u1 = (static_cast<double>(splitmix(s) >> 11) + 0.5) * 0x1.0p-53;
  const double u2 = static_cast<double>(splitmix(s) >> 11) * 0x1.0p-53;
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2 * 3.141592653589793 * u2);
}

DataSet seed_gaussian() {
  DataSet d{"seed-gaussian", DType::kF16, {1, 1280, 1, 256}, 1, ptp::Layout::kBC1S, {}};
  d.bytes.resize(1280 * 256 * 2);
  std::uint64_t s = 1;
  for (std::size_t i = 0; i < 1280 * 256; ++i) {
    const std::uint16_t h = f32_to_f16(static_cast<float>(gauss(s)));
    std::memcpy(d.bytes.data() + 2 * i, &h, 2);
  }
  return d;
}

DataSet unit_768() {
  DataSet d{"unit-768", DType::kF32, {4096, 768}, 1, ptp::Layout::kSD, {}};
  d.bytes.resize(4096 * 768 * 4);
  std::uint64_t s = 2;
  std::vector<float> v(768);
  for (std::size_t r = 0; r < 4096; ++r) {
    double ss = 0;
    for (auto& x : v) {
      x = static_cast<float>(gauss(s));
      ss += static_cast<double>(x) * x;
    }
    for (auto& x : v) x = static_cast<float>(x / std::sqrt(ss));
    std::memcpy(d.bytes.data() + r * 768 * 4, v.data(), 768 * 4);
  }
  return d;
}

bool devmodel(const std::string& dir, DataSet* out) {
  auto a = ptp::read_npy(dir + "/hidden_split2.npy");
  if (!a || a->view.dtype != DType::kF16 || a->view.shape.size() != 3) return false;
  out->name = "devmodel";
  out->dtype = DType::kF16;
  out->shape = a->view.shape;
  out->axis = 2;
  out->layout = ptp::Layout::kBSD;
  out->bytes.assign(a->view.data.begin(), a->view.data.end());
  return true;
}

std::vector<float> as_f32(const DataSet& d) {
  const TensorView v = d.view();
  std::vector<float> out(v.vector_count() * v.dim());
  VectorAccess(v).gather(0, v.vector_count(), out.data());
  return out;
}

template <typename F>
double median_us(F&& f, int min_reps, double min_seconds) {
  std::vector<double> t;
  const auto start = Clock::now();
  while (static_cast<int>(t.size()) < min_reps ||
         std::chrono::duration<double>(Clock::now() - start).count() < min_seconds) {
    const auto t0 = Clock::now();
    f();
    t.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    if (t.size() > 100000) break;
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

struct Row {
  std::string data, codec;
  int bits;
  double bits_per_value, mse, rel_mse, cosine, max_abs;
  std::uint64_t packet_bytes;
  double encode_us, decode_us, encode_us_2t, decode_us_2t;
  std::uint64_t codes_bytes = 0, zstd_codes_bytes = 0;  // the optional lossless stage (level 3)
};

// Bytes of the whole packet as it goes on the wire (prefix, header, every section and its
// padding), or 0 when it cannot be framed.
std::uint64_t packet_bytes(const DataSet& d, CodecId id, int bits,
                           const std::vector<ptp::SectionInput>& sections) {
  ptp::MessageHeader h;
  h.kind = ptp::MessageKind::kTensorPacket;
  h.model_id = "bench";
  h.tensor = ptp::TensorDesc{"x", d.dtype, d.shape, d.layout, static_cast<std::uint8_t>(d.axis)};
  h.codec = ptp::CodecDesc{};
  h.codec->codec = id;
  h.codec->bits = static_cast<std::uint8_t>(bits);
  h.codec->original_bytes = d.bytes.size();
  ptp::FrameBuilder fb;
  auto g = fb.build(h, sections);
  if (!g) {
    std::fprintf(stderr, "bench_codec: framing: %s\n", g.status().to_string().c_str());
    return 0;
  }
  return g->total_bytes;
}

// Squared error, relative error, mean per-vector cosine and max abs error of got against ref.
void fill_error(const std::vector<float>& ref, const std::vector<float>& got, std::uint32_t dim,
                double ss_ref, Row& r) {
  double se = 0, cos_sum = 0, max_abs = 0;
  const std::size_t nvec = ref.size() / dim;
  for (std::size_t v = 0; v < nvec; ++v) {
    double dot = 0, na = 0, nb = 0;
    for (std::uint32_t i = 0; i < dim; ++i) {
      const double a = ref[v * dim + i], b = got[v * dim + i];
      se += (a - b) * (a - b);
      dot += a * b;
      na += a * a;
      nb += b * b;
      max_abs = std::max(max_abs, std::abs(a - b));
    }
    cos_sum += (na > 0 && nb > 0) ? dot / std::sqrt(na * nb) : (na == nb ? 1.0 : 0.0);
  }
  r.mse = se / static_cast<double>(ref.size());
  r.rel_mse = se / ss_ref;
  r.cosine = cos_sum / static_cast<double>(nvec);
  r.max_abs = max_abs;
}

std::string json_row(const Row& r) {
  char buf[1024];
  std::snprintf(buf, sizeof buf,
                "    {\"data\": \"%s\", \"codec\": \"%s\", \"bits\": %d, \"bits_per_value\": %.4f, "
                "\"mse\": %.6g, \"rel_mse\": %.6g, \"cosine\": %.6f, \"max_abs_err\": %.5g, "
                "\"packet_bytes\": %llu, \"encode_us\": %.1f, \"decode_us\": %.1f, \"threads\": 1, "
                "\"encode_us_2threads\": %.1f, \"decode_us_2threads\": %.1f, "
                "\"codes_bytes\": %llu, \"zstd3_codes_bytes\": %llu}",
                r.data.c_str(), r.codec.c_str(), r.bits, r.bits_per_value, r.mse, r.rel_mse,
                r.cosine, r.max_abs, static_cast<unsigned long long>(r.packet_bytes), r.encode_us,
                r.decode_us, r.encode_us_2t, r.decode_us_2t,
                static_cast<unsigned long long>(r.codes_bytes),
                static_cast<unsigned long long>(r.zstd_codes_bytes));
  return buf;
}

// One table line of a single-threaded row (packet size, error, encode and decode times).
void print_row(const Row& r) {
  std::printf("%-14s %-20s %6.3f %9.3g %11.4g %9.5f %10llu %10.1f %10.1f\n", r.data.c_str(),
              r.codec.c_str(), r.bits_per_value, r.rel_mse, r.mse, r.cosine,
              static_cast<unsigned long long>(r.packet_bytes), r.encode_us, r.decode_us);
  std::fflush(stdout);
}

#if defined(AGP_HAVE_FIDELITY)
// A data set in a calibration's basis, as a checkpoint folded into it produces its split states:
// the calibration comes from other states of the same source (`calib`, [vectors, dim] f32).
struct CalibratedSet {
  DataSet data;
  std::shared_ptr<const Calibration> cal;
};

CalibratedSet in_basis(std::string name, const std::vector<float>& calib, const DataSet& d) {
  const TensorView v = d.view();
  const std::uint32_t dim = v.dim();
  auto c = fidelity::calibrate_from_states(calib.data(), calib.size() / dim, dim, {});
  if (!c) {
    std::fprintf(stderr, "bench_codec: calibration: %s\n", c.status().to_string().c_str());
    std::exit(1);
  }
  std::vector<float> x = as_f32(d);
  fidelity::to_basis(c->basis, dim, x.data(), x.size() / dim);
  CalibratedSet out{d, std::make_shared<const Calibration>(c->file.calibration)};
  out.data.name = std::move(name);
  const TensorView dst = out.data.view();
  VectorAccess(dst).scatter(0, v.vector_count(), x.data());
  return out;
}

#if defined(AGP_HAVE_HTSCODECS)
// The floor of the entropy stage: the calibrated chunk's own quantization (its step, each value's
// level round((x - mean) / step), clamped to a byte) coded by htscodecs' interleaved SIMD rANS
// (32 states, order 0) as one stream. Bytes are the rANS output alone, beside the codec's packet.
Row rans_floor(const DataSet& d, const std::vector<float>& ref, const Calibration& cal,
               const CalChunk& chunk, int reps, double min_seconds) {
  auto summary = cal_side_summary(chunk.side);
  const float step = summary ? summary->step : 1.0f;
  const std::uint32_t dim = cal.dim;
  std::vector<unsigned char> sym(ref.size());
  for (std::size_t i = 0; i < ref.size(); ++i) {
    const float level = std::nearbyint((ref[i] - cal.mean[i % dim]) / step);
    sym[i] = static_cast<unsigned char>(std::clamp(level, -127.0f, 127.0f) + 128.0f);
  }
  const int order = RANS_ORDER_X32 | RANS_ORDER_SIMD_AUTO;
  std::vector<unsigned char> packed(rans_compress_bound_4x16(static_cast<unsigned>(sym.size()), order));
  std::vector<unsigned char> back(sym.size());
  unsigned packed_size = 0;
  auto encode = [&] {
    packed_size = static_cast<unsigned>(packed.size());
    (void)rans_compress_to_4x16(sym.data(), static_cast<unsigned>(sym.size()), packed.data(), &packed_size, order);
  };
  auto decode = [&] {
    unsigned out_size = static_cast<unsigned>(back.size());
    (void)rans_uncompress_to_4x16(packed.data(), packed_size, back.data(), &out_size);
  };
  encode();
  decode();
  if (back != sym) std::fprintf(stderr, "bench_codec: htscodecs round trip differs\n");
  Row r{d.name, "htscodecs_rans32/cal4_levels", 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  r.packet_bytes = packed_size;
  r.bits_per_value = 8.0 * packed_size / static_cast<double>(sym.size());
  r.encode_us = median_us(encode, reps, min_seconds);
  r.decode_us = median_us(decode, reps, min_seconds);
  r.encode_us_2t = r.encode_us;
  r.decode_us_2t = r.decode_us;
  r.cosine = 1;  // the levels are coded losslessly; their error is the cal4 row's
  std::printf("%-14s %-20s %6.3f %9s %11s %9s %10u %10.1f %10.1f   (the cal4 levels as bytes, rANS only)\n",
              r.data.c_str(), "htscodecs-rans32x16", r.bits_per_value, "-", "-", "-", packed_size,
              r.encode_us, r.decode_us);
  std::fflush(stdout);
  return r;
}
#endif

// The calibrated codec at each budget on one set, with tq4 on the same data for comparison.
void run_calibrated(const CalibratedSet& s, int reps, double min_seconds, std::vector<Row>& rows) {
  const DataSet& d = s.data;
  const TensorView in = d.view();
  const auto ref = as_f32(d);
  const std::uint32_t dim = in.dim();
  const std::uint64_t nvec = in.vector_count();
  double ss_ref = 0;
  for (float v : ref) ss_ref += static_cast<double>(v) * v;
  std::vector<std::byte> out_bytes(d.bytes.size());
  TensorView out = in;
  out.data = out_bytes.data();
  for (int bits : {2, 3, 4, 5, 8}) {
    CalConfig cfg;
    cfg.bits_per_value = bits;
    auto chunk = cal_encode(in, 0, nvec, *s.cal, cfg);
    if (!chunk) {
      std::fprintf(stderr, "bench_codec: calibrated on %s: %s\n", d.name.c_str(), chunk.status().to_string().c_str());
      std::exit(1);
    }
    if (auto st = cal_decode(chunk->side, chunk->codes, *s.cal, out, 0, nvec); !st) {
      std::fprintf(stderr, "bench_codec: calibrated decode: %s\n", st.to_string().c_str());
      std::exit(1);
    }
    Row r{d.name, "turboquant_cal/" + std::to_string(bits), bits, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    std::vector<float> got(ref.size());
    VectorAccess(out).gather(0, nvec, got.data());
    fill_error(ref, got, dim, ss_ref, r);
    const std::vector<ptp::SectionInput> sections = {
        {SectionKind::kSideData, chunk->side, std::nullopt},
        {SectionKind::kCodes, chunk->codes, std::nullopt}};
    r.packet_bytes = packet_bytes(d, CodecId::kTurboQuantCal, bits, sections);
    r.bits_per_value = static_cast<double>(r.packet_bytes) * 8.0 / static_cast<double>(ref.size());
    r.encode_us = median_us([&] { (void)cal_encode(in, 0, nvec, *s.cal, cfg); }, reps, min_seconds);
    r.decode_us = median_us([&] { (void)cal_decode(chunk->side, chunk->codes, *s.cal, out, 0, nvec); },
                            reps, min_seconds);
    // Two threads: the packet as the Link sends it, chunks of 64 vectors, two chunks at a time.
    {
      constexpr std::uint64_t kChunk = 64;
      std::vector<CalChunk> chunks;
      for (std::uint64_t f = 0; f < nvec; f += kChunk) {
        chunks.push_back(*cal_encode(in, f, std::min(kChunk, nvec - f), *s.cal, cfg));
      }
      ThreadPool two(2);
      r.encode_us_2t = median_us(
          [&] {
            two.run(chunks.size(), [&](std::size_t k) {
              (void)cal_encode(in, k * kChunk, std::min(kChunk, nvec - k * kChunk), *s.cal, cfg);
            });
          },
          reps, min_seconds);
      r.decode_us_2t = median_us(
          [&] {
            two.run(chunks.size(), [&](std::size_t k) {
              (void)cal_decode(chunks[k].side, chunks[k].codes, *s.cal, out, k * kChunk,
                               std::min(kChunk, nvec - k * kChunk));
            });
          },
          reps, min_seconds);
    }
    print_row(r);
    std::printf("%-14s %-20s %56s   (2 threads, chunks of 64: %.1f / %.1f)\n", "", "", "",
                r.encode_us_2t, r.decode_us_2t);
    rows.push_back(r);
#if defined(AGP_HAVE_HTSCODECS)
    if (bits == 4) rows.push_back(rans_floor(d, ref, *s.cal, *chunk, reps, min_seconds));
#endif
  }
  // tq4 on the same data, same run: the speed the calibrated codec is measured against.
  auto tq = make_codec({CodecId::kTurboQuantMse, 4, DType::kF16, 0x5eed, DType::kF16}, dim);
  const Codec& c = **tq;
  std::vector<std::vector<std::byte>> parts;
  std::vector<std::span<std::byte>> ws;
  std::vector<std::span<const std::byte>> rs;
  for (const PartSpec& p : c.parts()) parts.emplace_back(nvec * p.bytes_per_vector);
  for (auto& p : parts) ws.emplace_back(p), rs.emplace_back(p);
  (void)c.encode_all(in, ws);
  (void)c.decode_all(rs, out);
  Row r{d.name, c.name(), 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  std::vector<float> got(ref.size());
  VectorAccess(out).gather(0, nvec, got.data());
  fill_error(ref, got, dim, ss_ref, r);
  std::vector<ptp::SectionInput> sections;
  for (std::size_t p = 0; p < parts.size(); ++p) sections.push_back({c.parts()[p].kind, parts[p], std::nullopt});
  r.packet_bytes = packet_bytes(d, CodecId::kTurboQuantMse, 4, sections);
  r.bits_per_value = static_cast<double>(r.packet_bytes) * 8.0 / static_cast<double>(ref.size());
  r.encode_us = median_us([&] { (void)c.encode_all(in, ws); }, reps, min_seconds);
  r.decode_us = median_us([&] { (void)c.decode_all(rs, out); }, reps, min_seconds);
  r.encode_us_2t = median_us([&] { (void)c.encode_all(in, ws); }, reps, min_seconds);
  r.decode_us_2t = median_us([&] { (void)c.decode_all(rs, out); }, reps, min_seconds);
  print_row(r);
  rows.push_back(r);
}

// The calibrated sets: the llm-like generator's packets (calibrated on 8 others) in the
// seed's channels-first layout and row-major as MLX and PyTorch hold them, and the devmodel's
// states (calibrated on its first 8 sequences).
std::vector<CalibratedSet> calibrated_sets(const DataSet* devmodel_set) {
  auto gen = tools::Generator::parse("llm-like", 11);
  std::vector<float> calib;
  for (std::uint64_t i = 1; i <= 8; ++i) {
    const auto bytes = gen->make(i, {256, 1280}, DType::kF32, 1);
    const auto* f = reinterpret_cast<const float*>(bytes.data());
    calib.insert(calib.end(), f, f + 256 * 1280);
  }
  DataSet rows{"llm-rows", DType::kF16, {256, 1280}, 1, ptp::Layout::kSD, gen->make(0, {256, 1280}, DType::kF16, 1)};
  DataSet cf{"llm-seed", DType::kF16, {1, 1280, 1, 256}, 1, ptp::Layout::kBC1S,
             gen->make(0, {1, 1280, 1, 256}, DType::kF16, 1)};
  std::vector<CalibratedSet> out;
  out.push_back(in_basis("llm-seed-cal", calib, cf));
  out.push_back(in_basis("llm-rows-cal", calib, rows));
  if (devmodel_set) {
    std::vector<float> all = as_f32(*devmodel_set);
    std::vector<float> first(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(all.size() / 2));
    out.push_back(in_basis("devmodel-cal", first, *devmodel_set));
  }
  return out;
}
#endif

}  // namespace

int main(int argc, char** argv) {
  std::string out_path, devmodel_dir = "../shared/fixtures/devmodel";
  double min_seconds = 0.3;
  bool quick = false, calibrated_only = false;
  CLI::App app{
      "bench_codec: every codec on seed-gaussian, unit-768 and devmodel hidden states: "
      "size (whole ptp packet), error, and single- and two-thread encode/decode times, "
      "with memcpy of the input in the same run"};
  app.add_option("--out", out_path, "write the JSON results here");
  app.add_option("--devmodel", devmodel_dir, "directory of the devmodel fixture");
  app.add_option("--min-seconds", min_seconds, "minimum timing time per measurement");
  app.add_flag("--quick", quick, "fewer repetitions (for smoke tests)");
  app.add_flag("--calibrated-only", calibrated_only,
               "only the calibrated codec's rows (with tq4 on the same data beside them)");
  CLI11_PARSE(app, argc, argv);
  const int reps = quick ? 3 : 15;
  if (quick) min_seconds = 0.0;

  std::vector<DataSet> sets = {seed_gaussian(), unit_768()};
  DataSet dm;
  if (devmodel(devmodel_dir, &dm)) {
    sets.push_back(std::move(dm));
  } else {
    std::fprintf(stderr, "bench_codec: no devmodel fixture at %s; skipping that data set\n",
                 devmodel_dir.c_str());
  }

  std::vector<CodecConfig> configs;
  for (int b = 1; b <= 8; ++b)
    configs.push_back({CodecId::kTurboQuantMse, b, DType::kF16, 0x5eed, DType::kF16});
  configs.push_back({CodecId::kTurboQuantProd, 4, DType::kF16, 0x5eed, DType::kF16});
  configs.push_back({CodecId::kTurboQuantProd, 8, DType::kF16, 0x5eed, DType::kF16});
  configs.push_back({CodecId::kBlockAbsmax4, 4, DType::kF16, 0, DType::kF16});
  configs.push_back({CodecId::kBlockAbsmaxInt8, 8, DType::kF16, 0, DType::kF16});
  configs.push_back({CodecId::kRaw, 0, DType::kF16, 0, DType::kF16});

  ThreadPool pool(2);
  std::vector<Row> rows;
  std::string memcpy_json;
  std::printf("%-14s %-20s %6s %9s %11s %9s %10s %10s %10s\n", "data", "codec", "bpv", "rel_mse",
              "mse", "cosine", "bytes", "enc_us", "dec_us");
  for (const DataSet& d : sets) {
    if (calibrated_only) break;
    const TensorView in = d.view();
    const auto ref = as_f32(d);
    const std::uint32_t dim = in.dim();
    const std::uint64_t nvec = in.vector_count();
    std::vector<std::byte> copy(d.bytes.size());
    const double memcpy_us = median_us(
        [&] { std::memcpy(copy.data(), d.bytes.data(), d.bytes.size()); }, reps * 10, min_seconds);
    memcpy_json += std::string(memcpy_json.empty() ? "" : ", ") + "\"" + d.name +
                   "\": " + std::to_string(memcpy_us);
    std::vector<std::byte> out_bytes(d.bytes.size());
    TensorView out = in;
    out.data = out_bytes.data();
    double ss_ref = 0;
    for (float v : ref) ss_ref += static_cast<double>(v) * v;

    for (CodecConfig cfg : configs) {
      if (cfg.id == CodecId::kRaw) cfg.raw_dtype = d.dtype;
      auto made = make_codec(cfg, dim);
      if (!made) {
        std::fprintf(stderr, "bench_codec: %s\n", made.status().to_string().c_str());
        return 1;
      }
      const Codec& c = **made;
      std::vector<std::vector<std::byte>> parts;
      std::vector<std::span<std::byte>> ws;
      std::vector<std::span<const std::byte>> rs;
      for (const PartSpec& p : c.parts()) parts.emplace_back(nvec * p.bytes_per_vector);
      for (auto& p : parts) {
        ws.emplace_back(p);
        rs.emplace_back(p);
      }
      if (auto s = c.encode_all(in, ws); !s) {
        std::fprintf(stderr, "bench_codec: %s on %s: %s\n", c.name().c_str(), d.name.c_str(),
                     s.to_string().c_str());
        return 1;
      }
      if (auto s = c.decode_all(rs, out); !s) {
        std::fprintf(stderr, "bench_codec: decode %s: %s\n", c.name().c_str(),
                     s.to_string().c_str());
        return 1;
      }
      Row r{d.name, c.name(), cfg.bits, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
      // Error against the input, on the decoded values as the host receives them (input dtype).
      TensorView outv = out;
      std::vector<float> got(ref.size());
      VectorAccess(outv).gather(0, nvec, got.data());
      fill_error(ref, got, dim, ss_ref, r);
      std::vector<ptp::SectionInput> sections;
      for (std::size_t p = 0; p < parts.size(); ++p) {
        sections.push_back({c.parts()[p].kind, parts[p], std::nullopt});
      }
      r.packet_bytes = packet_bytes(d, cfg.id, cfg.id == CodecId::kRaw ? 0 : cfg.bits, sections);
      if (r.packet_bytes == 0) return 1;
      r.bits_per_value =
          static_cast<double>(r.packet_bytes) * 8.0 / static_cast<double>(ref.size());
      // What the zstd stage would save on the packed codes.
      if (c.parts()[0].kind == SectionKind::kCodes) {
        std::vector<std::byte> z(zstd_bound(parts[0].size()));
        auto zn = zstd_compress(parts[0], 3, z);
        r.codes_bytes = parts[0].size();
        r.zstd_codes_bytes = zn ? *zn : 0;
      }
      r.encode_us = median_us([&] { (void)c.encode_all(in, ws); }, reps, min_seconds);
      r.decode_us = median_us([&] { (void)c.decode_all(rs, out); }, reps, min_seconds);
      r.encode_us_2t = median_us([&] { (void)c.encode_all(in, ws, &pool); }, reps, min_seconds);
      r.decode_us_2t = median_us([&] { (void)c.decode_all(rs, out, &pool); }, reps, min_seconds);
      std::printf(
          "%-14s %-20s %6.3f %9.3g %11.4g %9.5f %10llu %10.1f %10.1f   (2 threads %.1f / %.1f)",
          r.data.c_str(), r.codec.c_str(), r.bits_per_value, r.rel_mse, r.mse, r.cosine,
          static_cast<unsigned long long>(r.packet_bytes), r.encode_us, r.decode_us, r.encode_us_2t,
          r.decode_us_2t);
      if (r.codes_bytes) {
        std::printf("  zstd-3 codes %+.1f%%", 100.0 * (static_cast<double>(r.zstd_codes_bytes) /
                                                           static_cast<double>(r.codes_bytes) -
                                                       1.0));
      }
      std::printf("\n");
      std::fflush(stdout);
      rows.push_back(r);
    }
    // The high-fidelity mode: a whole packet at a time, sized to a bit budget.
    for (double target : {4.0, 8.0}) {
      EcConfig ec;
      ec.bits_per_value = target;
      // Byte-sized levels stop paying above ~6 bits: there the mode keeps its mean removal and
      // uses TurboQuant-MSE codes of the same bit width.
      if (target > 6) ec.fixed_bits = static_cast<int>(target);
      auto packet = ec_encode(in, ec);
      if (!packet) {
        std::fprintf(stderr, "bench_codec: turboquant_ec on %s: %s\n", d.name.c_str(),
                     packet.status().to_string().c_str());
        return 1;
      }
      if (auto s = ec_decode(packet->side, packet->norms, packet->codes, out, ec.seed); !s) {
        std::fprintf(stderr, "bench_codec: turboquant_ec decode: %s\n", s.to_string().c_str());
        return 1;
      }
      Row r{d.name,
            "turboquant_ec/" + std::to_string(static_cast<int>(target)),
            static_cast<int>(target),
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0};
      std::vector<float> got(ref.size());
      VectorAccess(out).gather(0, nvec, got.data());
      fill_error(ref, got, dim, ss_ref, r);
      const std::vector<ptp::SectionInput> sections = {
          {SectionKind::kSideData, packet->side, std::nullopt},
          {SectionKind::kNorms, packet->norms, std::nullopt},
          {SectionKind::kCodes, packet->codes, std::nullopt}};
      r.packet_bytes = packet_bytes(d, CodecId::kTurboQuantEc, static_cast<int>(target), sections);
      if (r.packet_bytes == 0) return 1;
      r.bits_per_value =
          static_cast<double>(r.packet_bytes) * 8.0 / static_cast<double>(ref.size());
      const int ec_reps = std::max(3, reps / 5);
      r.encode_us = median_us([&] { (void)ec_encode(in, ec); }, ec_reps, 0.0);
      r.decode_us = median_us(
          [&] { (void)ec_decode(packet->side, packet->norms, packet->codes, out, ec.seed); },
          ec_reps, 0.0);
      r.encode_us_2t = r.encode_us;  // a single-threaded mode
      r.decode_us_2t = r.decode_us;
      print_row(r);
      rows.push_back(r);
    }
    std::printf("%-14s memcpy of the %zu input bytes: %.1f us\n", d.name.c_str(), d.bytes.size(),
                memcpy_us);
  }

#if defined(AGP_HAVE_FIDELITY)
  {
    const DataSet* dm_set = nullptr;
    for (const DataSet& d : sets) {
      if (d.name == "devmodel") dm_set = &d;
    }
    for (const CalibratedSet& s : calibrated_sets(dm_set)) run_calibrated(s, reps, min_seconds, rows);
  }
#else
  std::fprintf(stderr, "bench_codec: built without the fidelity module: no calibrated codec rows\n");
#endif

  if (!out_path.empty()) {
    const std::time_t t = std::time(nullptr);
    char date[32];
    std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
    std::string json = std::string("{\n  \"suite\": \"codec\",\n  \"date\": \"") + date +
                       "\",\n  \"memcpy_us\": {" + memcpy_json + "},\n  \"rows\": [\n";
    for (std::size_t i = 0; i < rows.size(); ++i)
      json += json_row(rows[i]) + (i + 1 < rows.size() ? ",\n" : "\n");
    json += "  ]\n}\n";
    if (auto s = ptp::write_file(out_path, std::as_bytes(std::span(json.data(), json.size())));
        !s) {
      std::fprintf(stderr, "bench_codec: %s\n", s.to_string().c_str());
      return 1;
    }
    std::printf("wrote %s\n", out_path.c_str());
  }
  return 0;
}
