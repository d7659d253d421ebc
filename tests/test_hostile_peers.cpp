// Peers that pass the handshake and then lie. Their frames are well formed (checksums recomputed,
// every header rule of the frame layer kept), but they claim absurd shapes and chunk counts, cover
// vectors twice, carry contents no encoder writes, send more than the receiver holds, or
// acknowledge packets never sent. Each must be refused with its error, told to the peer, never
// acknowledged, never handed to the application, and never make the other end crash or allocate
// what the descriptor claims.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <optional>
#include <thread>

#include "agp/codec/calibrated.hpp"
#include "agp/ptp/frame_builder.hpp"
#include "agp/ptp/packet_codecs.hpp"
#include "agp/ptp/frame_decoder.hpp"
#include "agp/ptp/tensor_packet.hpp"
#include "agp/transport/frame_stream.hpp"
#include "agp/transport/link.hpp"
#include "link_test_helpers.hpp"

namespace agp::transport::testing {
namespace {

using ptp::MessageHeader;
using ptp::MessageKind;
using ptp::SectionInput;

// A frame taken apart: its header and its sections' bytes, to be altered and framed again.
struct Parts {
  MessageHeader header;
  std::vector<std::vector<std::byte>> sections;
};

Parts parts_of(const ptp::GatherList& g, const ptp::DecoderLimits& limits = {}) {
  const auto flat = g.flatten();
  auto f = ptp::parse_frame(flat, ptp::DecoderOptions{limits, std::nullopt});
  EXPECT_TRUE(f) << f.status().to_string();
  Parts p;
  p.header = f->header;
  for (std::size_t i = 0; i < f->header.sections.size(); ++i) {
    const auto s = f->section(i);
    p.sections.emplace_back(s.begin(), s.end());
  }
  return p;
}

// A real tq4 packet (or chunk) of the [1, 256, 1, 64] test tensor, as a sender would frame it.
Parts tq4_packet(std::uint64_t sequence, const ptp::ChunkDesc* chunk = nullptr,
                 const ptp::PacketCodec& codec = tq_codec(4)) {
  static Tensor t = make_tensor(7);
  ptp::TensorPacketWriter w(codec);
  MessageHeader h;
  h.sequence = sequence;
  h.fingerprint = options().fingerprint;
  h.model_id = options().model_id;
  h.split_layer = options().split_layer;
  auto g = chunk ? w.write_chunk(t.view(), h, ptp::Layout::kBC1S, *chunk)
                 : w.write(t.view(), h, ptp::Layout::kBC1S);
  EXPECT_TRUE(g) << g.status().to_string();
  return parts_of(*g);
}

// A client that speaks the protocol by hand: a real handshake, then whatever frames a test makes.
class HandClient {
 public:
  explicit HandClient(std::uint16_t port) {
    auto s = FrameStream::connect("127.0.0.1", port, 2000ms);
    EXPECT_TRUE(s) << s.status().to_string();
    if (!s) return;
    stream_ = std::move(s).value();
    MessageHeader h = base(MessageKind::kHello);
    h.hello = ptp::HelloDesc{};
    h.hello->codecs = {1, 2, 3, 4, 5, 6};
    h.hello->flags = 1;  // this end assembles chunked packets
    h.hello->nonce.assign(16, 7);
    h.hello->session_id = 0x5e551011;
    h.hello->next_sequence = 1;
    EXPECT_TRUE(send(h, {}));
    auto reply = stream_.receive(2000ms);
    EXPECT_TRUE(reply && reply->header().kind == MessageKind::kHelloReply)
        << (reply ? "unexpected kind" : reply.status().to_string());
  }

  static MessageHeader base(MessageKind kind) {
    MessageHeader h;
    h.kind = kind;
    h.fingerprint = options().fingerprint;
    h.model_id = options().model_id;
    h.split_layer = options().split_layer;
    return h;
  }

  Status send(const MessageHeader& h, const std::vector<std::vector<std::byte>>& sections) {
    // The builder checks only what the frame layer requires; the receiver's limits are not ours.
    ptp::DecoderLimits wide;
    wide.max_tensor_bytes = UINT64_MAX;
    wide.max_expansion = UINT32_MAX;
    ptp::FrameBuilder b(wide);
    std::vector<SectionInput> in;
    for (std::size_t i = 0; i < sections.size(); ++i) {
      in.push_back({h.sections.empty() ? ptp::SectionKind::kRaw : h.sections[i].kind,
                    sections[i], std::nullopt});
    }
    auto g = b.build(h, in);
    if (!g) return g.status();
    return stream_.send(*g, 2000ms);
  }
  Status send(const Parts& p) { return send(p.header, p.sections); }

  // Reads until an acknowledgement of `sequence` (true) or anything else ends the wait (false).
  bool await_ack(std::uint64_t sequence) {
    for (int i = 0; i < 25; ++i) {
      auto f = stream_.receive(200ms);
      if (!f) {
        if (f.status().code() == ErrorCode::kTimeout) continue;
        return false;
      }
      if (f->header().kind == MessageKind::kAck) {
        ++acks;
        if (f->header().ack->cumulative_sequence >= sequence) return true;
      }
      if (f->header().kind == MessageKind::kError) return false;
    }
    return false;
  }

  // Reads until the receiver's error frame; counts acknowledgements on the way.
  std::optional<ErrorCode> await_error(std::chrono::milliseconds timeout = 5000ms) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < until) {
      auto f = stream_.receive(200ms);
      if (!f) {
        if (f.status().code() == ErrorCode::kTimeout) continue;
        return std::nullopt;  // closed without saying why
      }
      if (f->header().kind == MessageKind::kAck) ++acks;
      if (f->header().kind == MessageKind::kError) {
        message = f->header().error->message;
        return static_cast<ErrorCode>(f->header().error->code);
      }
    }
    return std::nullopt;
  }

  int acks = 0;
  std::string message;

 private:
  FrameStream stream_;
};

// What the receiving application saw of one hostile session.
struct Outcome {
  std::optional<ErrorCode> told;  // the error frame the peer got
  std::string told_message;
  int acks = 0;
  Status app;  // what next_packet/receive returned to the application
  std::uint64_t delivered = 0;
};

// Runs `attack` from a hand client against a Server, while the application accepts and receives
// packets as ptp-recv does (a buffer sized from next_packet's descriptor).
Outcome run_attack(const std::function<void(HandClient&)>& attack, LinkOptions o = options()) {
  Outcome out;
  auto server = Server::listen("127.0.0.1", 0, o);
  EXPECT_TRUE(server) << server.status().to_string();
  if (!server) return out;
  const std::uint16_t port = (*server)->port();
  std::thread peer([&] {
    HandClient c(port);
    attack(c);
    out.told = c.await_error();
    out.told_message = c.message;
    out.acks = c.acks;
  });
  auto link = (*server)->accept(5000ms);
  EXPECT_TRUE(link) << link.status().to_string();
  if (link) {
    for (int i = 0; i < 8; ++i) {
      auto next = (*link)->next_packet(3000ms);
      if (!next) {
        out.app = next.status();
        break;
      }
      std::uint64_t elements = 1;
      for (auto d : next->tensor->shape) elements *= d;
      std::vector<std::uint16_t> buf(elements);
      auto d = (*link)->receive(codec::TensorView::contiguous(buf.data(), DType::kF16,
                                                             next->tensor->shape,
                                                             next->tensor->vector_axis),
                                3000ms);
      if (!d) {
        out.app = d.status();
        break;
      }
      ++out.delivered;
    }
    (*link)->poll();
  }
  peer.join();
  return out;
}

void expect_refused(const Outcome& r, ErrorCode code) {
  ASSERT_TRUE(r.told.has_value()) << "the peer was not told why";
  EXPECT_EQ(*r.told, code) << r.told_message;
  EXPECT_EQ(r.app.code(), code) << r.app.to_string();
  EXPECT_EQ(r.acks, 0) << "a refused packet was acknowledged";
  EXPECT_EQ(r.delivered, 0u);
}

TEST(HostilePeer, ShapeFarBeyondTheBodyIsRefusedBeforeAnyBufferIsSized) {
  // A 4-bit body of 64 vectors claiming 2^19 of them (1.3 GB of f16): above max_tensor_bytes.
  auto r = run_attack([](HandClient& c) {
    Parts p = tq4_packet(1);
    p.header.tensor->shape = {1, 256, 1, std::uint64_t{1} << 22};
    p.header.codec->original_bytes = 256ull * (1ull << 22) * 2;
    EXPECT_TRUE(c.send(p));
  });
  expect_refused(r, ErrorCode::kBodyTooLarge);
}

TEST(HostilePeer, ShapeThatTheSectionsDoNotCoverIsRefused) {
  // Under the size cap, but the sections hold 64 vectors where the shape says 2^16.
  auto r = run_attack([](HandClient& c) {
    Parts p = tq4_packet(1);
    p.header.tensor->shape = {1, 256, 1, 65536};
    p.header.codec->original_bytes = 256ull * 65536 * 2;
    EXPECT_TRUE(c.send(p));
  });
  expect_refused(r, ErrorCode::kBadEncodedData);
}

TEST(HostilePeer, AbsurdChunkCountsAreRefused) {
  for (std::uint32_t count : {1000000u, 0xffffffffu}) {
    auto r = run_attack([count](HandClient& c) {
      const ptp::ChunkDesc chunk{0, 4, 0, 16};
      Parts p = tq4_packet(1, &chunk);
      p.header.chunk->count = count;
      EXPECT_TRUE(c.send(p));
    });
    expect_refused(r, ErrorCode::kBadTensorDescriptor);
  }
}

TEST(HostilePeer, ChunksCoveringTheSameVectorsAreRefusedOnArrival) {
  auto r = run_attack([](HandClient& c) {
    const ptp::ChunkDesc first{0, 4, 0, 16};
    EXPECT_TRUE(c.send(tq4_packet(1, &first)));
    for (std::uint32_t k = 1; k < 4; ++k) {  // distinct indices, all over vectors [8, 24)
      const ptp::ChunkDesc again{k, 4, 8, 16};
      if (!c.send(tq4_packet(1, &again))) break;  // refused and closed after the first
    }
  });
  expect_refused(r, ErrorCode::kHeaderInvalid);
  EXPECT_NE(r.told_message.find("another chunk already carried"), std::string::npos)
      << r.told_message;
}

TEST(HostilePeer, ChunksThatLeaveAGapAreRefused) {
  auto r = run_attack([](HandClient& c) {
    const ptp::ChunkDesc a{0, 2, 0, 16}, b{1, 2, 32, 16};  // vectors [16, 32) never come
    EXPECT_TRUE(c.send(tq4_packet(1, &a)));
    EXPECT_TRUE(c.send(tq4_packet(1, &b)));
  });
  expect_refused(r, ErrorCode::kHeaderInvalid);
}

TEST(HostilePeer, UndecodableContentsAreNeverAcknowledged) {
  struct Case {
    const char* name;
    std::function<void(Parts&)> spoil;
    ErrorCode code;
  };
  const std::vector<Case> cases = {
      {"NaN norms",
       [](Parts& p) {
         for (std::size_t i = 0; i + 1 < p.sections[1].size(); i += 2) {
           p.sections[1][i] = std::byte{0x00};
           p.sections[1][i + 1] = std::byte{0x7e};  // f16 NaN
         }
       },
       ErrorCode::kBadEncodedData},
      {"negative norms",
       [](Parts& p) { p.sections[1][1] |= std::byte{0x80}; }, ErrorCode::kBadEncodedData},
      {"16-bit TurboQuant", [](Parts& p) { p.header.codec->bits = 16; },
       ErrorCode::kBadCodecDescriptor},
      {"unknown codebook", [](Parts& p) { p.header.codec->codebook_id = 9; },
       ErrorCode::kBadCodecDescriptor},
      {"zstd flag on plain codes",
       [](Parts& p) { p.header.codec->lossless = ptp::LosslessKind::kZstd; },
       ErrorCode::kBadCodecDescriptor},
      {"original_bytes that is not the tensor's",
       [](Parts& p) { p.header.codec->original_bytes += 2; }, ErrorCode::kBadCodecDescriptor},
      {"sections swapped",
       [](Parts& p) {
         std::swap(p.header.sections[0], p.header.sections[1]);
         std::swap(p.sections[0], p.sections[1]);
       },
       ErrorCode::kBadEncodedData},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(k.name);
    auto r = run_attack([&](HandClient& c) {
      Parts p = tq4_packet(1);
      k.spoil(p);
      EXPECT_TRUE(c.send(p));
    });
    expect_refused(r, k.code);
  }
}

TEST(HostilePeer, ShortRawSectionAndChunkedEcAreRefused) {
  auto raw = run_attack([](HandClient& c) {
    Parts p = tq4_packet(1, nullptr, raw_codec());
    p.sections[0].resize(p.sections[0].size() - 2);
    EXPECT_TRUE(c.send(p));
  });
  expect_refused(raw, ErrorCode::kBadEncodedData);
  auto ec = run_attack([](HandClient& c) {
    auto codec = ptp::parse_packet_codec("ec4", DType::kF16);
    Parts p = tq4_packet(1, nullptr, *codec);
    p.header.chunk = ptp::ChunkDesc{0, 1, 0, 64};
    EXPECT_TRUE(c.send(p));
  });
  expect_refused(ec, ErrorCode::kBadCodecDescriptor);
}

// The calibrated codec has no minimum number of bytes per vector: a group whose values are all
// below its step is sent as nothing. A frame whose every group is zero, claiming a large tensor,
// used to cost the receiver a buffer of that size and seconds of decoding for a few hundred bytes.
TEST(HostilePeer, CalibratedFramesCannotMultiplyDecodeWork) {
  auto cal = test_calibration();
  LinkOptions o = options();
  o.calibration = cal;
  ptp::PacketCodec c = *ptp::parse_packet_codec("cal4", DType::kF16);
  c.calibration = cal;
  // A hostile encoder: the real one, without the expansion rule every sender is held to.
  auto cal_packet = [&](const Tensor& t, std::uint64_t sequence) {
    ptp::DecoderLimits wide;
    wide.max_expansion = UINT32_MAX;
    wide.max_tensor_bytes = UINT64_MAX;
    ptp::TensorPacketWriter w(c, wide);
    MessageHeader h;
    h.sequence = sequence;
    h.fingerprint = o.fingerprint;
    h.model_id = o.model_id;
    h.split_layer = o.split_layer;
    Tensor copy = t;
    auto g = w.write(copy.view(), h, ptp::Layout::kBC1S);
    EXPECT_TRUE(g) << g.status().to_string();
    return parts_of(*g, wide);
  };
  Tensor zeros;
  zeros.shape = {1, 256, 1, 8192};  // 4 MiB of f16 zeros
  zeros.data.assign(256ull * 8192, 0);
  const Parts attack = cal_packet(zeros, 1);
  std::uint64_t body = 0;
  for (const auto& s : attack.sections) body += s.size();
  EXPECT_LT(body, 4096u) << "the attack needs a tiny body";
  const auto t0 = std::chrono::steady_clock::now();
  auto r = run_attack([&](HandClient& h) { EXPECT_TRUE(h.send(attack)); }, o);
  expect_refused(r, ErrorCode::kBadEncodedData);
  EXPECT_NE(r.told_message.find("max_expansion"), std::string::npos) << r.told_message;
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 5.0);
  // An honest sender is held to the same rule: the zeros are refused at post(), not sent.
  ptp::TensorPacketWriter honest(c);
  EXPECT_EQ(honest.write(zeros.view(), MessageHeader{}, ptp::Layout::kBC1S).status().code(),
            ErrorCode::kBadEncodedData);
  // The control: real calibrated data from the same hand client is delivered and acknowledged.
  const Parts genuine = cal_packet(make_tensor(3), 1);
  const Parts lie = cal_packet(zeros, 2);  // made beforehand: the session does not wait on it
  auto ok = run_attack(
      [&](HandClient& h) {
        EXPECT_TRUE(h.send(genuine));
        EXPECT_TRUE(h.await_ack(1));
        EXPECT_TRUE(h.send(lie));
      },
      o);
  EXPECT_EQ(ok.delivered, 1u);
  EXPECT_EQ(ok.acks, 1);
  ASSERT_TRUE(ok.told.has_value());
  EXPECT_EQ(*ok.told, ErrorCode::kBadEncodedData);
}

TEST(HostilePeer, UndeliveredBytesAreBoundedPerLink) {
  // First chunks of many packets, none ever completed: the receiver holds at most
  // receive_buffer_bytes of them, then refuses the peer.
  LinkOptions o = options();
  o.receive_buffer_bytes = 64 << 10;  // about eight 8-KB chunks
  auto r = run_attack(
      [](HandClient& c) {
        for (std::uint64_t seq = 1; seq <= 40; ++seq) {
          const ptp::ChunkDesc chunk{0, 4, 0, 16};
          if (!c.send(tq4_packet(seq, &chunk))) break;  // refused and closed: stop
        }
      },
      o);
  ASSERT_TRUE(r.told.has_value());
  EXPECT_EQ(*r.told, ErrorCode::kBodyTooLarge) << r.told_message;
  EXPECT_EQ(r.acks, 0);
}

TEST(HostilePeer, ATensorIsAnnouncedOnlyOnceEnoughOfItHasArrived) {
  // A first chunk of 16 vectors (about 2 KB) for a tensor of 4096 (2 MiB of f16): each chunk is
  // within the expansion bound, but the host must not size a 2 MiB buffer for 2 KB received.
  auto server = Server::listen("127.0.0.1", 0, options());
  ASSERT_TRUE(server);
  const std::uint16_t port = (*server)->port();
  std::atomic<bool> done{false};
  std::thread peer([&] {
    HandClient c(port);
    const ptp::ChunkDesc chunk{0, 256, 0, 16};
    Parts p = tq4_packet(1, &chunk);
    p.header.tensor->shape = {1, 256, 1, 4096};  // original_bytes stays the chunk's
    EXPECT_TRUE(c.send(p));
    for (int i = 0; i < 200 && !done; ++i) std::this_thread::sleep_for(10ms);
  });
  auto link = (*server)->accept(5000ms);
  ASSERT_TRUE(link) << link.status().to_string();
  auto next = (*link)->next_packet(500ms);
  done = true;
  EXPECT_EQ(next.status().code(), ErrorCode::kTimeout)
      << (next ? "announced a 2 MiB tensor after one 2 KB chunk" : next.status().to_string());
  EXPECT_GE((*link)->counters().frames_received, 1u) << "the chunk never arrived";
  peer.join();
}

// The control: the same hand client, telling the truth, gets its chunked packet acknowledged; then
// a lie, so the session ends with an error frame to wait for.
void expect_genuine_chunks_pass(const LinkOptions& o) {
  auto r = run_attack(
      [](HandClient& c) {
        for (std::uint32_t k = 0; k < 4; ++k) {
          const ptp::ChunkDesc chunk{k, 4, 16 * k, 16};
          EXPECT_TRUE(c.send(tq4_packet(1, &chunk)));
        }
        EXPECT_TRUE(c.await_ack(1));
        Parts p = tq4_packet(2);
        p.header.codec->bits = 16;
        EXPECT_TRUE(c.send(p));
      },
      o);
  EXPECT_EQ(r.delivered, 1u);
  EXPECT_EQ(r.acks, 1);
  ASSERT_TRUE(r.told.has_value());
  EXPECT_EQ(*r.told, ErrorCode::kBadCodecDescriptor);
}

TEST(HostilePeer, AGenuineChunkedPacketStillPasses) { expect_genuine_chunks_pass(options()); }

TEST(HostilePeer, ABadChunkAmongGoodOnesDecodedSideBySideIsNeverAcknowledged) {
  for (int threads : {2, 3}) {
    SCOPED_TRACE("decode_threads " + std::to_string(threads));
    LinkOptions o = options();
    o.decode_threads = static_cast<std::uint16_t>(threads);
    auto r = run_attack(
        [](HandClient& c) {
          for (std::uint32_t k = 0; k < 4; ++k) {
            const ptp::ChunkDesc chunk{k, 4, 16 * k, 16};
            Parts p = tq4_packet(1, &chunk);
            if (k == 2) p.sections[1][1] |= std::byte{0x80};  // a negative norm
            EXPECT_TRUE(c.send(p));
          }
        },
        o);
    EXPECT_EQ(r.delivered, 0u);
    EXPECT_EQ(r.acks, 0);
    expect_refused(r, ErrorCode::kBadEncodedData);
    EXPECT_NE(r.told_message.find("chunk 2"), std::string::npos) << r.told_message;
    expect_genuine_chunks_pass(o);  // the same chunks, all genuine
  }
}

// A server that speaks the protocol by hand: replies to the hello as `reply` says, then acts.
void hand_server(Listener& l, const std::function<void(ptp::HelloDesc&)>& reply,
                 const std::function<void(FrameStream&)>& then) {
  auto s = l.accept(5000ms);
  ASSERT_TRUE(s) << s.status().to_string();
  auto hello = s->receive(2000ms);
  ASSERT_TRUE(hello) << hello.status().to_string();
  MessageHeader h = HandClient::base(MessageKind::kHelloReply);
  h.hello = ptp::HelloDesc{};
  h.hello->codecs = {1, 2, 3, 4, 5, 6};
  h.hello->flags = 1;
  h.hello->nonce.assign(16, 9);
  h.hello->session_id = hello->header().hello->session_id;
  h.hello->next_sequence = 1;
  reply(*h.hello);
  ptp::FrameBuilder b;
  auto g = b.build(h, {});
  ASSERT_TRUE(g);
  ASSERT_TRUE(s->send(*g, 2000ms));
  then(*s);
}

void send_ack(FrameStream& s, std::uint64_t cumulative) {
  MessageHeader a = HandClient::base(MessageKind::kAck);
  a.ack = ptp::AckDesc{cumulative};
  ptp::FrameBuilder b;
  auto g = b.build(a, {});
  ASSERT_TRUE(g);
  (void)s.send(*g, 2000ms);
}

TEST(HostilePeer, AResumePointBeyondWhatWasSentIsRefused) {
  auto l = Listener::bind("127.0.0.1", 0);
  ASSERT_TRUE(l);
  std::thread server([&] {
    hand_server(
        *l, [](ptp::HelloDesc& r) { r.delivered_sequence = UINT64_MAX - 1; },
        [](FrameStream& s) { (void)s.receive(2000ms); });
  });
  auto link = Link::connect("127.0.0.1", l->port(), options());
  server.join();
  ASSERT_FALSE(link) << "a link that counts never-sent packets as delivered";
  EXPECT_EQ(link.status().code(), ErrorCode::kHeaderInvalid) << link.status().to_string();
}

TEST(HostilePeer, AnAckBeforeTheLastChunkWentOutEndsTheLinkWithoutACrash) {
  auto l = Listener::bind("127.0.0.1", 0);
  ASSERT_TRUE(l);
  std::thread server([&] {
    hand_server(*l, [](ptp::HelloDesc&) {}, [](FrameStream& s) {
      auto first = s.receive(5000ms);  // the first chunk of packet 1: acknowledge it all at once
      if (first) send_ack(s, 1);
      for (int i = 0; i < 200 && s.receive(100ms); ++i) {
      }
    });
  });
  LinkOptions o = options();
  o.chunk_vectors = 1;  // 256 chunks, sent while the ack comes in
  // The hand server sends no heartbeats: on a loaded machine a second of its silence ended the
  // connection as a dead peer, and the send timed out redialing a server that answers once.
  o.dead_peer_timeout = 30000ms;
  Tensor t = make_tensor(3, 256, 256);
  auto link = Link::connect("127.0.0.1", l->port(), o);
  ASSERT_TRUE(link) << link.status().to_string();
  auto r = (*link)->send(t.view(), tq_codec(4), {"t", 0, ptp::Layout::kBC1S}, 5000ms);
  server.join();
  // Either the ack came before the last chunk (refused), or after it (then it is a true ack of a
  // packet whose every frame was sent). Never a crash, never a receipt for a half-sent packet.
  if (!r) {
    EXPECT_EQ(r.status().code(), ErrorCode::kHeaderInvalid) << r.status().to_string();
  } else {
    EXPECT_EQ(r->chunks, 256u);
  }
}

// The same lie on a reconnect, with a packet still unacknowledged: the link ends cleanly (it once
// went on to resend on the connection the refusal had just released, and crashed).
TEST(HostilePeer, AResumePointBeyondWhatWasSentOnAReconnectEndsTheLink) {
  auto l = Listener::bind("127.0.0.1", 0);
  ASSERT_TRUE(l);
  std::thread server([&] {
    // First connection: take packet 1 without acknowledging it, then hang up.
    hand_server(*l, [](ptp::HelloDesc&) {}, [](FrameStream& s) {
      (void)s.receive(5000ms);
      s.close();
    });
    // The reconnect: claim that packet 4 was delivered, of 1 sent.
    hand_server(*l, [](ptp::HelloDesc& r) { r.delivered_sequence = 4; },
                [](FrameStream& s) { (void)s.receive(2000ms); });
  });
  auto link = Link::connect("127.0.0.1", l->port(), options());
  ASSERT_TRUE(link) << link.status().to_string();
  Tensor t = make_tensor(5);
  auto r = (*link)->send(t.view(), tq_codec(4), {"t", 0, ptp::Layout::kBC1S}, 5000ms);
  server.join();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.status().code(), ErrorCode::kHeaderInvalid) << r.status().to_string();
  EXPECT_EQ((*link)->failure().code(), ErrorCode::kHeaderInvalid);
}

TEST(HostilePeer, SessionsNobodyAcceptsAreCapped) {
  auto server = Server::listen("127.0.0.1", 0, options());
  ASSERT_TRUE(server);
  std::atomic<bool> stop{false};
  std::thread drive([&] {  // runs the server's handshakes, never accepts
    while (!stop) {
      (*server)->poll();
      std::this_thread::sleep_for(1ms);
    }
  });
  std::vector<std::unique_ptr<Link>> waiting;
  Status refused;
  for (int i = 0; i < 20 && refused.is_ok(); ++i) {
    auto link = Link::connect("127.0.0.1", (*server)->port(), options());
    if (link) {
      waiting.push_back(std::move(link).value());
    } else {
      refused = link.status();
    }
  }
  stop = true;
  drive.join();
  EXPECT_EQ(waiting.size(), 16u);
  EXPECT_EQ(refused.code(), ErrorCode::kBadState) << refused.to_string();
}

TEST(HostilePeer, IdleConnectionsCannotLockOutALegitimatePeer) {
  auto server = Server::listen("127.0.0.1", 0, options());
  ASSERT_TRUE(server);
  std::atomic<bool> stop{false};
  std::unique_ptr<Link> accepted;
  std::thread serve([&] {
    while (!stop && !accepted) {
      auto l = (*server)->accept(20ms);
      if (l) accepted = std::move(l).value();
    }
  });
  // More silent connections than the server keeps pending handshakes for (64).
  std::vector<FrameStream> idle;
  for (int i = 0; i < 100; ++i) {
    auto s = FrameStream::connect("127.0.0.1", (*server)->port(), 2000ms);
    ASSERT_TRUE(s) << s.status().to_string();
    idle.push_back(std::move(s).value());
  }
  std::this_thread::sleep_for(100ms);  // let the server take them all
  auto link = Link::connect("127.0.0.1", (*server)->port(), options());
  EXPECT_TRUE(link) << link.status().to_string();
  stop = true;
  serve.join();
  EXPECT_TRUE(accepted != nullptr);
  EXPECT_GE((*server)->counters().handshake_rejections, 36u);  // the oldest silent ones went
}

TEST(LinkOptionsCheck, OptionsThatCannotWorkAreRefusedUpFront) {
  struct Case {
    const char* name;
    std::function<void(LinkOptions&)> set;
  };
  const std::vector<Case> cases = {
      {"model_id over 4096 bytes", [](LinkOptions& o) { o.model_id.assign(5000, 'm'); }},
      {"peer_name over 4096 bytes", [](LinkOptions& o) { o.peer_name.assign(4097, 'p'); }},
      {"model_id not UTF-8", [](LinkOptions& o) { o.model_id = "caf\xc3"; }},
      {"99 streams", [](LinkOptions& o) { o.streams = 99; }},
      {"0 streams", [](LinkOptions& o) { o.streams = 0; }},
      {"0 encode threads", [](LinkOptions& o) { o.encode_threads = 0; }},
      {"0 decode threads", [](LinkOptions& o) { o.decode_threads = 0; }},
      {"17 decode threads", [](LinkOptions& o) { o.decode_threads = 17; }},
      {"a 1-byte key", [](LinkOptions& o) { o.key = {42}; }},
      {"a zero window", [](LinkOptions& o) { o.window_packets = 0; }},
      {"a zero receive buffer", [](LinkOptions& o) { o.receive_buffer_bytes = 0; }},
      {"a negative timeout", [](LinkOptions& o) { o.dead_peer_timeout = Millis(-1); }},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    LinkOptions o = options();
    c.set(o);
    EXPECT_EQ(validate(o).code(), ErrorCode::kInvalidArgument);
    EXPECT_EQ(Link::connect("127.0.0.1", 9, o).status().code(), ErrorCode::kInvalidArgument);
    EXPECT_EQ(Server::listen("127.0.0.1", 0, o).status().code(), ErrorCode::kInvalidArgument);
  }
  EXPECT_TRUE(validate(options()));
  LinkOptions keyed = options();
  keyed.key.assign(16, 7);
  keyed.model_id = "m\xc3\xa9lange";  // valid UTF-8
  EXPECT_TRUE(validate(keyed)) << validate(keyed).to_string();
}

}  // namespace
}  // namespace agp::transport::testing
