// One TCP connection carrying PTP frames (internal): reads into the push decoder (small frames
// through a staging buffer so one read can bring several, large bodies straight into the frame's
// buffer), writes queued frames one at a time with scatter/gather, and reports verified frames and
// the first failure through callbacks. All on one io_context, never blocking.
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "agp/ptp/frame_decoder.hpp"
#include "asio_util.hpp"
#include "outgoing_frame.hpp"

namespace agp::transport::detail {

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  struct Events {
    std::function<void(ptp::Frame&&)> on_frame;
    // Called once, before the socket closes, so the handler can still tell the peer why
    // (fail_after_telling).
    std::function<void(const Status&)> on_failure;
  };

  Connection(tcp::socket socket, ptp::DecoderOptions decoder);
  ~Connection();

  void start(Events events);
  // Replaces the decoder between frames (after the handshake: the session's limits and
  // fingerprint). Bytes already read stay staged for the new decoder.
  void set_decoder(ptp::DecoderOptions decoder);
  // A frame body the session is done with, for the decoder to reuse.
  void recycle(ptp::AlignedBuffer body) { decoder_.recycle(std::move(body)); }
  // Stops or resumes reading (the session's inbox is full / has room again).
  void set_reading(bool on);

  // Queues a frame; `urgent` frames (acks, heartbeats, errors) go before queued data frames.
  void send(std::shared_ptr<OutgoingFrame> frame, bool urgent = false);
  // Best effort: writes `frame` now if the socket takes it without waiting, then fails with
  // `why` (used to tell the peer why we are closing).
  // (When a frame is being written, the error follows it and the failure comes after that: see
  // telling().)
  void fail_after_telling(const Status& why, const std::shared_ptr<OutgoingFrame>& frame);
  // An error frame waits behind a write in flight; the connection fails once it is out.
  bool telling() const { return telling_.has_value() && !closed_; }
  // Closes without calling on_failure.
  void close();

  bool is_open() const { return !closed_; }
  std::size_t queued_frames() const { return queue_.size() + (writing_ ? 1 : 0); }
  Clock::time_point last_read() const { return last_read_; }
  Clock::time_point last_write() const { return last_write_; }
  // Bytes the kernel holds for us that we have not read yet.
  std::size_t unread_bytes() const;
  std::uint64_t bytes_read() const { return bytes_read_; }
  std::uint64_t bytes_written() const { return bytes_written_; }
  std::string local_address() const;
  std::string local_endpoint() const;
  std::string remote_endpoint() const;

 private:
  void read_more();
  void feed_staged();
  void on_read(const asio::error_code& ec, std::size_t n, bool direct);
  void dispatch(ptp::Frame&& frame);
  void write_next();
  void fail(const Status& why);

  tcp::socket socket_;
  ptp::FrameDecoder decoder_;
  Events events_;
  Events deferred_events_;  // start() from inside a frame callback takes effect after it
  bool dispatching_ = false;
  bool has_deferred_ = false;
  std::vector<std::byte> staging_;
  std::size_t staged_begin_ = 0;
  std::size_t staged_end_ = 0;
  std::deque<std::shared_ptr<OutgoingFrame>> queue_;
  bool reading_ = false;  // a read is in flight
  bool paused_ = false;
  bool writing_ = false;
  bool closed_ = false;
  std::optional<Status> telling_;  // fail with this once the queue (the error frame) is out
  bool failing_ = false;
  bool started_ = false;
  Clock::time_point last_read_;
  Clock::time_point last_write_;
  std::uint64_t bytes_read_ = 0;
  std::uint64_t bytes_written_ = 0;
};

}  // namespace agp::transport::detail
