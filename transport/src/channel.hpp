// One connection carrying verified PTP frames, as a session sees it (internal). A backend
// implements it (TCP: tcp_channel.hpp); the session above owns nothing of the transport below:
// it hands frames to send() and gets verified frames and the first failure back through Events.
// Everything runs on one io_context and never blocks.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "agp/ptp/frame_decoder.hpp"
#include "agp/status.hpp"
#include "outgoing_frame.hpp"

namespace agp::transport::detail {

class Channel {
 public:
  using Clock = std::chrono::steady_clock;
  struct Events {
    std::function<void(ptp::Frame&&)> on_frame;
    // Called once, before the channel closes, so the handler can still tell the peer why
    // (fail_after_telling).
    std::function<void(const Status&)> on_failure;
    // Optional. When set, a failed write stops the writing only and is reported here: reading
    // goes on, so what the peer sent before it closed (its error frame, say) is still delivered,
    // and on_failure comes when the reading ends. Unset, a failed write fails the channel.
    std::function<void(const Status&)> on_write_failure;
  };

  virtual ~Channel() = default;

  // Starts delivering events (from inside a frame callback: after that callback returns).
  virtual void start(Events events) = 0;
  // Replaces the frame decoder between frames (after the handshake: the session's limits and
  // fingerprint). Bytes already received stay for the new decoder.
  virtual void set_decoder(ptp::DecoderOptions decoder) = 0;
  // A frame body the session is done with, for the decoder to reuse.
  virtual void recycle(ptp::AlignedBuffer body) = 0;
  // Stops or resumes reading (the session's inbox is full / has room again).
  virtual void set_reading(bool on) = 0;

  // Queues a frame; `urgent` frames (acks, heartbeats, errors) go before queued data frames.
  virtual void send(std::shared_ptr<OutgoingFrame> frame, bool urgent = false) = 0;
  // Best effort: sends `frame` if the transport takes it without waiting, then fails with `why`
  // (used to tell the peer why we are closing). While a frame is being written the error follows
  // it, and the failure comes after that: see telling().
  virtual void fail_after_telling(const Status& why, const std::shared_ptr<OutgoingFrame>& frame) = 0;
  // An error frame waits behind a write in flight; the channel fails once it is out.
  virtual bool telling() const = 0;
  // Closes without calling on_failure.
  virtual void close() = 0;
  // Moves the transport's own work along without blocking: a busy wait calls it between polls of
  // the io_context. TCP has nothing to do here (polling the io_context reads the sockets); UCX
  // progresses its worker, which otherwise runs only when its wake-up descriptor fires.
  virtual void poll() {}
  // Whether poll() alone brings this channel's input (a busy wait then polls the io_context less).
  virtual bool polls_itself() const { return false; }

  virtual bool is_open() const = 0;
  virtual std::size_t queued_frames() const = 0;
  virtual Clock::time_point last_read() const = 0;
  virtual Clock::time_point last_write() const = 0;
  // Bytes the transport holds for us that we have not read yet.
  virtual std::size_t unread_bytes() const = 0;
  virtual std::uint64_t bytes_read() const = 0;
  virtual std::uint64_t bytes_written() const = 0;
  // The local address (for the interface it belongs to) and "address:port" of each end.
  virtual std::string local_address() const = 0;
  virtual std::string local_endpoint() const = 0;
  virtual std::string remote_endpoint() const = 0;
};

// A channel's hold on the session's handlers. Handlers given while a frame is being delivered
// (the session handing the channel on from inside on_frame) take over once that delivery returns.
class EventSlot {
 public:
  // False when deferred (a frame is being delivered).
  bool set(Channel::Events events) {
    if (delivering_) {
      deferred_ = std::move(events);
      has_deferred_ = true;
      return false;
    }
    events_ = std::move(events);
    return true;
  }
  void deliver(ptp::Frame&& frame) {
    delivering_ = true;
    if (events_.on_frame) events_.on_frame(std::move(frame));
    delivering_ = false;
    if (has_deferred_) {
      events_ = std::move(deferred_);
      has_deferred_ = false;
    }
  }
  bool delivering() const { return delivering_; }
  const Channel::Events& events() const { return events_; }

 private:
  Channel::Events events_;
  Channel::Events deferred_;
  bool delivering_ = false;
  bool has_deferred_ = false;
};

}  // namespace agp::transport::detail
