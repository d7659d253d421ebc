// Helpers shared by the Link tests (test_link.cpp) and the fault tests (test_faults.cpp):
// deterministic tensors, the codecs, the decode a receiver must produce, and one-packet receive.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "agp/codec/calibrated.hpp"
#include "agp/codec/dtype.hpp"
#include "agp/ptp/frame_decoder.hpp"
#include "agp/ptp/tensor_packet.hpp"
#include "agp/transport/link.hpp"

namespace agp::transport::testing {

using namespace std::chrono_literals;

// A seed-shaped-like [1, C, 1, S] f16 tensor (channels-first, vectors along axis 1), filled from
// `seed` so each packet differs.
struct Tensor {
  std::vector<std::uint16_t> data;
  std::vector<std::uint64_t> shape;
  codec::TensorView view() {
    return codec::TensorView::contiguous(data.data(), DType::kF16, shape, 1);
  }
};

inline Tensor make_tensor(std::uint64_t seed, std::uint64_t channels = 256,
                          std::uint64_t seq = 64) {
  Tensor t;
  t.shape = {1, channels, 1, seq};
  t.data.resize(channels * seq);
  std::uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  for (auto& v : t.data) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    const double u = static_cast<double>(s >> 11) / 9007199254740992.0;
    v = f32_to_f16(static_cast<float>((u - 0.5) * 4.0));
  }
  return t;
}

inline ptp::PacketCodec raw_codec() {
  ptp::PacketCodec c;
  c.config.id = CodecId::kRaw;
  c.config.raw_dtype = DType::kF16;
  return c;
}

inline ptp::PacketCodec tq_codec(int bits) {
  ptp::PacketCodec c;
  c.config.id = CodecId::kTurboQuantMse;
  c.config.bits = bits;
  return c;
}

// What the receiver must produce: the same packet encoded and decoded locally, whole.
inline std::vector<std::uint16_t> local_round_trip(Tensor& t, const ptp::PacketCodec& c) {
  ptp::TensorPacketWriter w(c);
  ptp::MessageHeader h;
  auto g = w.write(t.view(), h, ptp::Layout::kBC1S);
  EXPECT_TRUE(g) << g.status().to_string();
  const auto flat = g->flatten();
  auto f = ptp::parse_frame(flat);
  EXPECT_TRUE(f) << f.status().to_string();
  std::vector<std::uint16_t> out(t.data.size());
  auto view = codec::TensorView::contiguous(out.data(), DType::kF16, t.shape, 1);
  EXPECT_TRUE(ptp::read_tensor_packet(f->header, f->body, view));
  return out;
}

// What the Link tests run on: the suite is run once per carrier (TCP; UCX over its TCP transport;
// UCX over shared memory, with TCP for its connection manager).
struct Carrier {
  const char* name;
  TransportBackend backend;
  const char* ucx_transports;
};
inline void PrintTo(const Carrier& c, std::ostream* os) { *os << c.name; }  // in test names
inline Carrier& test_carrier() {
  static Carrier carrier{"tcp", TransportBackend::kTcp, ""};
  return carrier;
}

inline LinkOptions options() {
  LinkOptions o;
  o.backend = test_carrier().backend;
  o.ucx_transports = test_carrier().ucx_transports;
  o.fingerprint = ptp::Hash128{0x1234, 0x5678};
  o.model_id = "test-model";
  o.split_layer = 2;
  return o;
}

inline std::unique_ptr<Server> listen(const LinkOptions& o) {
  auto s = Server::listen("127.0.0.1", 0, o);
  EXPECT_TRUE(s) << s.status().to_string();
  return s ? std::move(s).value() : nullptr;
}

// A link and the server's side of it, both up (the accepting side on a helper thread meanwhile).
struct ConnectedPair {
  std::unique_ptr<Server> server;
  std::unique_ptr<Link> link;  // the connecting side
  std::unique_ptr<Link> peer;  // the accepted side
};
inline ConnectedPair connected_pair(const LinkOptions& o) {
  ConnectedPair p;
  p.server = listen(o);
  if (!p.server) return p;
  std::thread accepter([&] {
    auto l = p.server->accept(5000ms);
    EXPECT_TRUE(l) << l.status().to_string();
    if (l) p.peer = std::move(l).value();
  });
  auto l = Link::connect("127.0.0.1", p.server->port(), o);
  EXPECT_TRUE(l) << l.status().to_string();
  accepter.join();
  if (l) p.link = std::move(l).value();
  return p;
}

// A calibration of `dim` components with falling scales and id 0xca1ca1, for calibrated-codec
// tests (mean zero).
inline std::shared_ptr<codec::Calibration> test_calibration(std::uint32_t dim = 256) {
  auto cal = std::make_shared<codec::Calibration>();
  cal->dim = dim;
  for (std::uint32_t j = 0; j < dim; ++j) {
    cal->mean.push_back(0.0f);
    cal->scale.push_back(1.0f + 0.01f * static_cast<float>(dim - 1 - j));
  }
  cal->group_starts = codec::make_calibration_groups(cal->scale, 1.2, 16);
  cal->id = 0xca1ca1;
  return cal;
}

// Receives one packet into a fresh buffer shaped as announced.
inline std::vector<std::uint16_t> receive_one(Link& link, Delivery* info = nullptr) {
  auto next = link.next_packet(5000ms);
  EXPECT_TRUE(next) << next.status().to_string();
  if (!next) return {};
  std::uint64_t n = 1;
  for (auto d : next->tensor->shape) n *= d;
  std::vector<std::uint16_t> out(n);
  auto d = link.receive(
      codec::TensorView::contiguous(out.data(), DType::kF16, next->tensor->shape, 1), 5000ms);
  EXPECT_TRUE(d) << d.status().to_string();
  if (d && info) *info = *d;
  return out;
}

}  // namespace agp::transport::testing
