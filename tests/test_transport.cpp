// FrameStream and Listener over real loopback sockets.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <thread>

#include "agp/transport/frame_stream.hpp"
#include "sample_messages.hpp"

namespace agp::transport {
namespace {

using namespace std::chrono_literals;

TEST(FrameStream, EveryMessageKindCrossesLoopbackIntact) {
  auto listener = Listener::bind("127.0.0.1", 0);
  ASSERT_TRUE(listener) << listener.status().to_string();
  const auto msgs = test::sample_messages();
  std::thread client([&, port = listener->port()] {
    auto s = FrameStream::connect("127.0.0.1", port, 2000ms);
    ASSERT_TRUE(s) << s.status().to_string();
    for (int round = 0; round < 3; ++round) {
      for (const auto& m : msgs) {
        ptp::FrameBuilder b;
        const auto inputs = m.inputs();
        auto g = b.build(m.header, inputs);
        ASSERT_TRUE(g);
        ASSERT_TRUE(s->send(*g, 2000ms));
      }
    }
  });
  auto server = listener->accept(5000ms);
  ASSERT_TRUE(server) << server.status().to_string();
  EXPECT_NE(server->remote_endpoint().find("127.0.0.1:"), std::string::npos);
  for (int round = 0; round < 3; ++round) {
    for (const auto& m : msgs) {
      auto f = server->receive(5000ms);
      ASSERT_TRUE(f) << f.status().to_string();
      EXPECT_EQ(f->header().kind, m.header.kind);
      ASSERT_EQ(f->header().sections.size(), m.section_bytes.size());
      for (std::size_t i = 0; i < m.section_bytes.size(); ++i) {
        const auto got = f->section(i);
        EXPECT_TRUE(std::equal(got.begin(), got.end(), m.section_bytes[i].begin()));
      }
    }
  }
  client.join();
}

TEST(FrameStream, ReceiveTimesOutAndPeerCloseIsReported) {
  auto listener = Listener::bind("127.0.0.1", 0);
  ASSERT_TRUE(listener);
  auto client = FrameStream::connect("127.0.0.1", listener->port(), 2000ms);
  ASSERT_TRUE(client);
  auto server = listener->accept(2000ms);
  ASSERT_TRUE(server);
  const auto t0 = std::chrono::steady_clock::now();
  auto r = server->receive(100ms);
  EXPECT_EQ(r.status().code(), ErrorCode::kTimeout);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  // Half a frame, then the peer goes away.
  const auto frame = test::build_frame(test::sample_messages()[0]);
  ptp::GatherList half;
  half.pieces.push_back(std::span(frame).first(1000));
  half.total_bytes = 1000;
  ASSERT_TRUE(client->send(half, 1000ms));
  client->close();
  r = server->receive(2000ms);
  EXPECT_EQ(r.status().code(), ErrorCode::kConnectionClosed) << r.status().to_string();
}

TEST(FrameStream, GarbageFromARawSocketGivesTheDecoderError) {
  auto listener = Listener::bind("127.0.0.1", 0);
  ASSERT_TRUE(listener);
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(listener->port());
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  auto server = listener->accept(2000ms);
  ASSERT_TRUE(server);
  const char junk[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_EQ(::write(fd, junk, sizeof junk - 1), static_cast<ssize_t>(sizeof junk - 1));
  auto r = server->receive(2000ms);
  EXPECT_EQ(r.status().code(), ErrorCode::kBadMagic) << r.status().to_string();
  // The stream stays failed; the listener keeps serving others.
  EXPECT_EQ(server->receive(100ms).status().code(), ErrorCode::kBadMagic);
  ::close(fd);
  auto other = FrameStream::connect("127.0.0.1", listener->port(), 2000ms);
  EXPECT_TRUE(other);
  EXPECT_TRUE(listener->accept(2000ms));
}

TEST(FrameStream, ConnectAndBindErrorsAreTyped) {
  // A port nobody listens on: bind one, note it, close it.
  std::uint16_t port = 0;
  {
    auto l = Listener::bind("127.0.0.1", 0);
    ASSERT_TRUE(l);
    port = l->port();
  }
  auto refused = FrameStream::connect("127.0.0.1", port, 1000ms);
  EXPECT_EQ(refused.status().code(), ErrorCode::kConnectFailed) << refused.status().to_string();
  EXPECT_EQ(FrameStream::connect("not-an-address", 1, 100ms).status().code(),
            ErrorCode::kConnectFailed);
  auto taken = Listener::bind("127.0.0.1", 0);
  ASSERT_TRUE(taken);
  // SO_REUSEADDR does not let two listeners share a port on Linux or macOS.
  EXPECT_EQ(Listener::bind("127.0.0.1", taken->port()).status().code(), ErrorCode::kAddressInUse);
  auto idle = Listener::bind("127.0.0.1", 0);
  ASSERT_TRUE(idle);
  EXPECT_EQ(idle->accept(50ms).status().code(), ErrorCode::kTimeout);
}

}  // namespace
}  // namespace agp::transport
