// Chunk sizes a user may choose, on shapes a user may send: every chunked codec, chunk sizes that
// do and do not divide the vector count (1, primes, one off a power of two, more than all), over
// a real link. Each packet must arrive exactly as the same packet decodes locally in one piece.
#include <gtest/gtest.h>

#include <thread>

#include "agp/codec/dtype.hpp"
#include "agp/ptp/frame_decoder.hpp"
#include "agp/ptp/tensor_packet.hpp"
#include "agp/transport/link.hpp"
#include "link_test_helpers.hpp"

namespace agp::transport::testing {
namespace {

struct Shape {
  std::vector<std::uint64_t> dims;
  std::uint32_t axis;
};

std::vector<std::uint16_t> values(const Shape& s, std::uint64_t seed) {
  std::uint64_t n = 1;
  for (auto d : s.dims) n *= d;
  std::vector<std::uint16_t> v(n);
  std::uint64_t x = seed * 0x9E3779B97F4A7C15ull + 3;
  for (auto& e : v) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    e = f32_to_f16(static_cast<float>(static_cast<double>(x >> 11) / 9007199254740992.0 - 0.5));
  }
  return v;
}

std::vector<std::uint16_t> decoded_whole(std::vector<std::uint16_t> in, const Shape& s,
                                         const ptp::PacketCodec& c) {
  ptp::TensorPacketWriter w(c);
  auto g = w.write(codec::TensorView::contiguous(in.data(), DType::kF16, s.dims, s.axis), {},
                   ptp::Layout::kUnspecified);
  EXPECT_TRUE(g) << g.status().to_string();
  const auto flat = g->flatten();
  auto f = ptp::parse_frame(flat);
  EXPECT_TRUE(f) << f.status().to_string();
  std::vector<std::uint16_t> out(in.size());
  EXPECT_TRUE(ptp::read_tensor_packet(
      f->header, f->body, codec::TensorView::contiguous(out.data(), DType::kF16, s.dims, s.axis)));
  return out;
}

TEST(ChunkSweep, EveryChunkSizeDeliversTheWholePacketsDecode) {
  const std::vector<Shape> shapes = {{{1, 256, 1, 64}, 1}, {{2, 3, 7}, 2}, {{5, 4097}, 1}};
  const std::vector<std::uint64_t> chunk_sizes = {1, 2, 3, 4, 7, 63, 64, 65, 100};
  const std::vector<std::string> codecs = {"tq1", "tq4", "tq8", "prod3", "int8", "int4"};
  for (std::uint64_t chunk : chunk_sizes) {
    SCOPED_TRACE("chunk_vectors " + std::to_string(chunk));
    LinkOptions o = options();
    o.chunk_vectors = chunk;
    auto server = listen(options());
    ASSERT_TRUE(server);
    const std::size_t expected = shapes.size() * codecs.size();
    std::thread receiver([&] {
      auto link = server->accept(5000ms);
      ASSERT_TRUE(link) << link.status().to_string();
      std::uint64_t seed = 0;
      for (const Shape& s : shapes) {
        for (const std::string& name : codecs) {
          SCOPED_TRACE(name);
          auto next = (*link)->next_packet(5000ms);
          ASSERT_TRUE(next) << next.status().to_string();
          ASSERT_EQ(next->tensor->shape, s.dims);
          std::vector<std::uint16_t> out(values(s, 0).size());
          auto d = (*link)->receive(
              codec::TensorView::contiguous(out.data(), DType::kF16, s.dims, s.axis), 5000ms);
          ASSERT_TRUE(d) << d.status().to_string();
          auto c = ptp::parse_packet_codec(name, DType::kF16);
          EXPECT_EQ(out, decoded_whole(values(s, ++seed), s, *c));
        }
      }
      EXPECT_TRUE((*link)->close(5000ms));
    });
    auto link = Link::connect("127.0.0.1", server->port(), o);
    ASSERT_TRUE(link) << link.status().to_string();
    std::uint64_t seed = 0;
    std::size_t sent = 0;
    for (const Shape& s : shapes) {
      for (const std::string& name : codecs) {
        auto v = values(s, ++seed);
        auto c = ptp::parse_packet_codec(name, DType::kF16);
        auto r = (*link)->send(codec::TensorView::contiguous(v.data(), DType::kF16, s.dims, s.axis),
                               *c, {name, 0, ptp::Layout::kUnspecified}, 5000ms);
        ASSERT_TRUE(r) << name << ": " << r.status().to_string();
        std::uint64_t vectors = 1;
        for (std::size_t a = 0; a < s.dims.size(); ++a) vectors *= a == s.axis ? 1 : s.dims[a];
        EXPECT_EQ(r->chunks, vectors > chunk ? (vectors + chunk - 1) / chunk : 1);
        ++sent;
      }
    }
    EXPECT_EQ(sent, expected);
    EXPECT_TRUE((*link)->close(5000ms));
    receiver.join();
  }
}

// Chunks decoded side by side on the receiver (and encoded so on the sender) land exactly where
// the same frames decoded one by one put them, for every chunked codec, the calibrated one
// included, whatever the chunk size.
TEST(ChunkSweep, ChunksDecodedSideBySideEqualTheFramesDecodedOneByOne) {
  const Shape s{{1, 256, 1, 100}, 1};
  auto cal = test_calibration(256);
  std::vector<ptp::PacketCodec> codecs;
  for (const char* name : {"tq4", "int8", "cal4"}) {
    ptp::PacketCodec c = *ptp::parse_packet_codec(name, DType::kF16);
    if (c.config.id == CodecId::kTurboQuantCal) c.calibration = cal;
    codecs.push_back(c);
  }
  struct Run {
    std::uint64_t chunk;
    std::uint16_t encode_threads, decode_threads;
  };
  for (const Run& run : {Run{1, 2, 2}, Run{7, 1, 3}, Run{16, 2, 2}, Run{33, 3, 2}, Run{100, 2, 2}}) {
    SCOPED_TRACE("chunk_vectors " + std::to_string(run.chunk) + ", decode_threads " +
                 std::to_string(run.decode_threads));
    LinkOptions so = options(), co = options();
    so.calibration = co.calibration = cal;
    so.decode_threads = run.decode_threads;
    co.encode_threads = run.encode_threads;
    co.chunk_vectors = run.chunk;
    auto server = listen(so);
    ASSERT_TRUE(server);
    std::thread receiver([&] {
      auto link = server->accept(5000ms);
      ASSERT_TRUE(link) << link.status().to_string();
      for (std::size_t i = 0; i < codecs.size(); ++i) {
        std::vector<std::uint16_t> out(values(s, 0).size()), serial(out.size());
        std::vector<ptp::Frame> frames;
        auto d = (*link)->receive(codec::TensorView::contiguous(out.data(), DType::kF16, s.dims, s.axis),
                                  5000ms, &frames);
        ASSERT_TRUE(d) << d.status().to_string();
        EXPECT_EQ(d->chunks, frames.size());
        ptp::TensorPacketReader reader;
        reader.set_calibration(cal);
        for (const ptp::Frame& f : frames) {
          ASSERT_TRUE(reader.read(f.header(), f.body(),
                                  codec::TensorView::contiguous(serial.data(), DType::kF16, s.dims, s.axis)));
        }
        EXPECT_EQ(out, serial) << i;
      }
      EXPECT_TRUE((*link)->close(5000ms));
    });
    auto link = Link::connect("127.0.0.1", server->port(), co);
    ASSERT_TRUE(link) << link.status().to_string();
    for (std::size_t i = 0; i < codecs.size(); ++i) {
      auto v = values(s, i + 1);
      auto r = (*link)->send(codec::TensorView::contiguous(v.data(), DType::kF16, s.dims, s.axis),
                             codecs[i], {"", 0, ptp::Layout::kBC1S}, 5000ms);
      ASSERT_TRUE(r) << r.status().to_string();
      EXPECT_EQ(r->chunks, (100 + run.chunk - 1) / run.chunk);
    }
    EXPECT_TRUE((*link)->close(5000ms));
    receiver.join();
  }
}

}  // namespace
}  // namespace agp::transport::testing
