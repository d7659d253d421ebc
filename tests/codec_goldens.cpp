#include "codec_goldens.hpp"

#include <algorithm>
#include <cstring>
#include <vector>

#include "agp/codec/calibrated.hpp"
#include "agp/codec/dtype.hpp"
#include "agp/ptp/frame_decoder.hpp"
#include "agp/ptp/mapped_file.hpp"
#include "agp/ptp/tensor_packet.hpp"

namespace agp::test {

using ptp::Layout;

std::string GoldenPacket::stem() const {
  std::string s = tensor + "." + codec;
  if (chunk_vectors) s += ".chunks" + std::to_string(chunk_vectors);
  return s;
}

std::vector<GoldenTensor> golden_tensors() {
  return {
      // Seed-like: channels-first f16, 8 vectors of 1280 = 1024 + 256, each strided in memory.
      {"seed_f16", DType::kF16, {1, 1280, 1, 8}, 1, Layout::kBC1S},
      // Row-major f32 with channel offsets and an outlier channel: 4 vectors of 384 = 256 + 128.
      {"rows_f32", DType::kF32, {4, 384}, 1, Layout::kSD},
      // bf16, 6 vectors of 7 = 4 + 2 + 1 (one all-zero vector, one whose 1-value block is 0).
      {"odd_bf16", DType::kBF16, {2, 3, 7}, 2, Layout::kBSD},
      // 3 vectors of 100 = 64 + 32 + 4: partial absmax blocks, codes that end inside a byte.
      {"odd_f16", DType::kF16, {3, 100}, 1, Layout::kSD},
      // TurboQuant-EC's entropy-coded mode needs a larger packet (its side data and norms must
      // leave half the budget to the codes at 2 bits): 112 vectors of 192 = 128 + 64, with
      // per-channel offsets for the mean removal to take out.
      {"ec_f16", DType::kF16, {1, 112, 192}, 2, Layout::kBSD},
      // In a calibration's basis (golden_calibration()): 64 vectors of 256, variances falling
      // along the components, rare outliers (escapes), the last 16 components nearly constant.
      {"cal_f16", DType::kF16, {64, 256}, 1, Layout::kSD},
  };
}

namespace {

constexpr std::uint32_t kCalDim = 256;
// Exact in f32 and double: a product of small integers and a power of two, or one division.
double cal_mean(std::uint64_t j) { return 0.125 * static_cast<double>((j * 5) % 9) - 0.5; }
double cal_scale(std::uint64_t j) { return j >= 240 ? 1.0 / 1024.0 : 64.0 / static_cast<double>(8 + j); }

}  // namespace

const ptp::CalibrationFile& golden_calibration() {
  static const ptp::CalibrationFile file = [] {
    ptp::CalibrationFile f;
    codec::Calibration& c = f.calibration;
    c.dim = kCalDim;
    for (std::uint32_t j = 0; j < kCalDim; ++j) {
      c.mean.push_back(static_cast<float>(cal_mean(j)));
      c.scale.push_back(static_cast<float>(cal_scale(j)));
    }
    c.group_starts = codec::make_calibration_groups(c.scale, 1.189207115002721, 64);
    f.info = "{\"tool\":\"ptp-make-golden\",\"note\":\"the calibrated golden packets\"}";
    (void)ptp::serialize_calibration(f);  // sets the id
    return f;
  }();
  return file;
}

std::vector<GoldenPacket> golden_packets() {
  std::vector<GoldenPacket> out;
  auto every_per_vector_codec = [&](const std::string& t) {
    out.push_back({t, "raw", 0});
    for (int b = 1; b <= 8; ++b) out.push_back({t, "tq" + std::to_string(b), 0});
    for (int b = 2; b <= 8; ++b) out.push_back({t, "prod" + std::to_string(b), 0});
    out.push_back({t, "int8", 0});
    out.push_back({t, "int4", 0});
    out.push_back({t, "ec7", 0});  // fixed mode (mean removal + TurboQuant-MSE codes)
    out.push_back({t, "ec8", 0});
  };
  every_per_vector_codec("rows_f32");
  every_per_vector_codec("odd_bf16");
  every_per_vector_codec("odd_f16");
  for (const char* c : {"tq4", "prod4", "int4"}) {
    out.push_back({"seed_f16", c, 0});
  }
  for (int b = 2; b <= 6; ++b) out.push_back({"ec_f16", "ec" + std::to_string(b), 0});
  for (int b : {2, 3, 4, 8}) out.push_back({"cal_f16", "cal" + std::to_string(b), 0});
  out.push_back({"ec_f16", "ec8", 0});
  // Chunked packets: chunk sizes that do not divide the vector count.
  out.push_back({"seed_f16", "tq4", 3});    // chunks of 3, 3, 2 vectors
  out.push_back({"odd_bf16", "prod3", 4});  // 4, 2
  out.push_back({"odd_f16", "int4", 2});    // 2, 1
  out.push_back({"rows_f32", "int8", 3});   // 3, 1
  out.push_back({"cal_f16", "cal4", 24});   // 24, 24, 16: each chunk with its own step
  return out;
}

const GoldenTensor* find_golden_tensor(const std::string& name) {
  static const std::vector<GoldenTensor> all = golden_tensors();
  for (const auto& t : all) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

namespace {

std::uint64_t splitmix64(std::uint64_t& state) {
  state += 0x9e3779b97f4a7c15ull;
  std::uint64_t z = state;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// About N(0, 1): a sum of four uniform 16-bit integers, centred and scaled (one correctly
// rounded division, so every platform gets the same double).
double gaussish(std::uint64_t& state) {
  const std::uint64_t w = splitmix64(state);
  const std::int64_t sum = static_cast<std::int64_t>((w & 0xffff) + ((w >> 16) & 0xffff) +
                                                     ((w >> 32) & 0xffff) + (w >> 48));
  return static_cast<double>(sum - 131070) / 37837.0;
}

// Value of element (vector v, coordinate j) of tensor `name`, in double.
double golden_value(const std::string& name, std::uint64_t v, std::uint64_t j, double g) {
  if (name == "rows_f32") {
    if (j == 17) return g * 16.0;  // an outlier channel
    const double scale = 0.5 + 0.25 * static_cast<double>(j % 4);
    const double offset = 0.125 * (static_cast<double>((j * 7) % 9) - 4.0);
    return g * scale + offset;
  }
  if (name == "odd_bf16") {
    if (v == 1) return 0.0;            // a zero vector: every block norm is 0
    if (v == 4 && j == 6) return 0.0;  // a zero 1-value block
    return g * 3.0;
  }
  if (name == "odd_f16") return v == 2 ? g * 300.0 : g;
  if (name == "cal_f16") {
    // Every 97th value an outlier of 24 scales (an escape in most groups).
    const double outlier = (v * 256 + j) % 97 == 5 ? 24.0 : 1.0;
    return cal_mean(j) + g * cal_scale(j) * outlier;
  }
  if (name == "ec_f16") {
    return g + 0.5 * (static_cast<double>(j % 7) - 3.0) + (j == 5 ? 4.0 : 0.0);
  }
  return g;  // seed_f16
}

}  // namespace

std::vector<std::byte> golden_tensor_bytes(const GoldenTensor& t) {
  std::uint64_t count = 1;
  for (std::uint64_t d : t.shape) count *= d;
  const std::size_t esize = dtype_size(t.dtype);
  std::vector<std::byte> out(count * esize);
  std::uint64_t state = 0x601d0000ull + t.name.size() * 131 + static_cast<std::uint64_t>(t.name[0]);
  const std::size_t rank = t.shape.size();
  std::vector<std::uint64_t> idx(rank, 0);
  for (std::uint64_t i = 0; i < count; ++i) {
    // Vector index: the other axes in row-major order; j: the position along the vector axis.
    std::uint64_t v = 0;
    for (std::size_t a = 0; a < rank; ++a) {
      if (a != t.vector_axis) v = v * t.shape[a] + idx[a];
    }
    const std::uint64_t j = idx[t.vector_axis];
    const double g = gaussish(state);
    const auto f = static_cast<float>(golden_value(t.name, v, j, g));
    std::byte* dst = out.data() + i * esize;
    if (t.dtype == DType::kF32) {
      std::memcpy(dst, &f, 4);
    } else {
      const std::uint16_t h = t.dtype == DType::kF16 ? f32_to_f16(f) : f32_to_bf16(f);
      std::memcpy(dst, &h, 2);
    }
    for (std::size_t a = rank; a-- > 0;) {  // next C-order index
      if (++idx[a] < t.shape[a]) break;
      idx[a] = 0;
    }
  }
  return out;
}

Result<std::vector<std::byte>> encode_golden(const GoldenPacket& p, const GoldenTensor& t,
                                             const codec::TensorView& view) {
  auto pc = ptp::parse_packet_codec(p.codec, t.dtype);
  if (!pc) return pc.status();
  if (pc->config.id == CodecId::kTurboQuantCal) {
    pc->calibration = std::make_shared<const codec::Calibration>(golden_calibration().calibration);
  }
  ptp::TensorPacketWriter writer(*pc);
  ptp::MessageHeader h;
  h.stream_id = 1;
  h.sequence = 1;
  h.timestamp_ns = 1'790'000'000'000'000'000ull;
  h.fingerprint = ptp::Hash128{0x0123456789abcdefull, 0xfedcba9876543210ull};
  h.model_id = "golden";
  h.tensor = ptp::TensorDesc{t.name, t.dtype, {}, Layout::kUnspecified, 0};
  std::vector<std::byte> out;
  if (p.chunk_vectors == 0) {
    auto g = writer.write(view, h, t.layout);
    if (!g) return g.status();
    out = g->flatten();
    return out;
  }
  const std::uint64_t n = view.vector_count();
  const std::uint64_t per = p.chunk_vectors;
  const auto chunks = static_cast<std::uint32_t>((n + per - 1) / per);
  for (std::uint32_t k = 0; k < chunks; ++k) {
    const ptp::ChunkDesc c{k, chunks, k * per, std::min(per, n - k * per)};
    auto g = writer.write_chunk(view, h, t.layout, c);
    if (!g) return g.status();
    const auto f = g->flatten();
    out.insert(out.end(), f.begin(), f.end());
  }
  return out;
}

Result<std::size_t> decode_golden(std::span<const std::byte> frames, const GoldenTensor& t,
                                  const codec::TensorView& out) {
  ptp::TensorPacketReader reader;
  reader.set_calibration(std::make_shared<const codec::Calibration>(golden_calibration().calibration));
  std::uint64_t vectors = 1;
  for (std::size_t a = 0; a < t.shape.size(); ++a) {
    if (a != t.vector_axis) vectors *= t.shape[a];
  }
  std::vector<int> covered(vectors, 0);
  std::size_t pos = 0, count = 0;
  while (pos < frames.size()) {
    auto f = ptp::parse_frame(frames.subspan(pos));
    if (!f) return f.status();
    AGP_RETURN_IF_ERROR(reader.read(f->header, f->body, out));
    const std::uint64_t first = f->header.chunk ? f->header.chunk->vector_offset : 0;
    const std::uint64_t n = f->header.chunk ? f->header.chunk->vector_count : vectors;
    for (std::uint64_t v = first; v < first + n; ++v) ++covered[v];
    pos += f->frame_bytes;
    ++count;
  }
  if (std::any_of(covered.begin(), covered.end(), [](int c) { return c != 1; })) {
    return make_error(ErrorCode::kBadEncodedData, "the frames do not cover every vector once");
  }
  return count;
}

Result<std::string> golden_manifest(const std::string& dir) {
  std::string m =
      "# Generated by ptp-make-golden (tests/make_golden.cpp); see tests/golden/README.md.\n"
      "# frames\tsource\tcodec\tchunk_vectors\tframe_count\tbytes\tdecoded\n";
  for (const GoldenPacket& p : golden_packets()) {
    auto file = ptp::MappedFile::open(dir + "/" + p.stem() + ".ptp");
    if (!file) return file.status();
    std::size_t pos = 0, frames = 0;
    const auto bytes = file->bytes();
    while (pos < bytes.size()) {
      auto f = ptp::parse_frame(bytes.subspan(pos));
      if (!f) return f.status();
      pos += f->frame_bytes;
      ++frames;
    }
    m += p.stem() + ".ptp\t" + p.tensor + ".npy\t" + p.codec + "\t" +
         std::to_string(p.chunk_vectors) + "\t" + std::to_string(frames) + "\t" +
         std::to_string(bytes.size()) + "\t" + p.stem() + ".decoded.npy\n";
  }
  return m;
}

}  // namespace agp::test
