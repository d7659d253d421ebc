// The channels below the session, on each backend, with one io_context and no thread: what a
// receiver that has paused reading can be made to hold by a peer that ignores its window.
#include <gtest/gtest.h>

#include <chrono>
#include <optional>

#include "backend.hpp"
#include "link_test_helpers.hpp"

namespace agp::transport::detail {
namespace {

using namespace std::chrono_literals;
using testing::Carrier;

class ChannelOver : public ::testing::TestWithParam<Carrier> {
 protected:
  void SetUp() override {
    if (GetParam().backend == TransportBackend::kUcx && !ucx_available()) {
      GTEST_SKIP() << "this build has no UCX backend (UCX was not found when it was built)";
    }
  }
};

// 64 KiB of bytes the receiver never decodes (it stays paused).
std::shared_ptr<OutgoingFrame> filler_frame() {
  auto f = std::make_shared<OutgoingFrame>();
  f->owned.assign(64 * 1024, std::byte{0x5a});
  f->pieces.emplace_back(f->owned);
  f->bytes = f->owned.size();
  return f;
}

// A peer keeps sending to a session that has paused reading (its inbox full, or not accepted yet).
// TCP pushes back through the kernel's window: the receiver reads nothing and the sender's queue
// stays. UCX reads its transport regardless, so the channel holds what arrives up to
// LinkOptions::receive_buffer_bytes and then fails with kBodyTooLarge. Either way the receiver
// holds no more than the bound.
TEST_P(ChannelOver, PausedReceiverHoldsAtMostTheReceiveBuffer) {
  LinkOptions o;
  o.backend = GetParam().backend;
  o.ucx_transports = GetParam().ucx_transports;
  o.receive_buffer_bytes = 1 << 20;
  constexpr std::size_t kFrames = 256;  // 16 MiB offered
  asio::io_context ctx;
  auto server_side = make_backend(ctx, o);
  ASSERT_TRUE(server_side) << server_side.status().to_string();
  auto client_side = make_backend(ctx, o);
  ASSERT_TRUE(client_side) << client_side.status().to_string();

  std::shared_ptr<Channel> receiver;
  std::optional<Status> receiver_failure;
  ASSERT_TRUE((*server_side)->listen("127.0.0.1", 0, {}, [&](std::shared_ptr<Channel> c) {
    receiver = std::move(c);
    receiver->set_reading(false);
    receiver->start({[](ptp::Frame&&) { ADD_FAILURE() << "a paused channel delivered a frame"; },
                     [&](const Status& why) { receiver_failure = why; }, nullptr});
  }));
  std::shared_ptr<Channel> sender;
  std::optional<Status> sender_failure;
  auto dial =
      (*client_side)
          ->dial("127.0.0.1", (*server_side)->port(), {}, [&](Result<std::shared_ptr<Channel>> c) {
            ASSERT_TRUE(c) << c.status().to_string();
            sender = std::move(c).value();
            sender->start(
                {[](ptp::Frame&&) {}, [&](const Status& why) { sender_failure = why; }, nullptr});
            for (std::size_t i = 0; i < kFrames; ++i) sender->send(filler_frame());
          });
  ASSERT_TRUE(dial) << dial.status().to_string();

  // Runs until the receiver fails, or the sender has stopped making progress for a while.
  const auto until = std::chrono::steady_clock::now() + 10s;
  std::size_t last_queued = kFrames + 1;
  auto last_change = std::chrono::steady_clock::now();
  while (!receiver_failure && std::chrono::steady_clock::now() < until) {
    ctx.run_for(10ms);
    if (!sender) continue;
    if (sender->queued_frames() != last_queued) {
      last_queued = sender->queued_frames();
      last_change = std::chrono::steady_clock::now();
    } else if (std::chrono::steady_clock::now() - last_change > 500ms) {
      break;
    }
  }
  ASSERT_TRUE(receiver) << "no connection was accepted";
  const std::uint64_t bound = o.receive_buffer_bytes + 256 * 1024;  // plus one receive's buffer
  EXPECT_LE(receiver->bytes_read(), bound);
  if (GetParam().backend == TransportBackend::kTcp) {  // the rest waits in the kernel's buffers
    EXPECT_FALSE(receiver_failure) << receiver_failure->to_string();
    EXPECT_GT(sender->queued_frames(), 0u) << "the kernel took 16 MiB without pushing back";
  } else {
    EXPECT_LE(receiver->unread_bytes(), bound);
    // Without the hold, UCX queues all 16 MiB inside the endpoint and nothing fails.
    ASSERT_TRUE(receiver_failure) << "UCX took " << receiver->bytes_read() << " bytes and went on";
    EXPECT_EQ(receiver_failure->code(), ErrorCode::kBodyTooLarge) << receiver_failure->to_string();
  }
  if (sender) sender->close();
  if (receiver) receiver->close();
  ctx.run_for(50ms);  // lets UCX finish closing before the backends go
}

INSTANTIATE_TEST_SUITE_P(Backends, ChannelOver,
                         ::testing::Values(Carrier{"tcp", TransportBackend::kTcp, ""},
                                           Carrier{"ucx", TransportBackend::kUcx, "tcp"},
                                           Carrier{"ucx_shm", TransportBackend::kUcx, "sm,tcp"}),
                         [](const ::testing::TestParamInfo<Carrier>& i) {
                           return std::string(i.param.name);
                         });

}  // namespace
}  // namespace agp::transport::detail
