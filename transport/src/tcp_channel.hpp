// The TCP backend's Channel (internal): one connection that reads into the push decoder (small
// frames through a staging buffer so one read can bring several, large bodies straight into the
// frame's buffer), writes queued frames one at a time with scatter/gather, and reports verified
// frames and the first failure through callbacks. All on one io_context, never blocking.
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "agp/ptp/frame_decoder.hpp"
#include "asio_util.hpp"
#include "channel.hpp"

namespace agp::transport::detail {

class TcpChannel final : public Channel, public std::enable_shared_from_this<TcpChannel> {
 public:
  TcpChannel(tcp::socket socket, ptp::DecoderOptions decoder);
  ~TcpChannel() override;

  void start(Events events) override;
  void set_decoder(ptp::DecoderOptions decoder) override;
  void recycle(ptp::AlignedBuffer body) override { decoder_.recycle(std::move(body)); }
  void set_reading(bool on) override;
  void send(std::shared_ptr<OutgoingFrame> frame, bool urgent) override;
  void fail_after_telling(const Status& why, const std::shared_ptr<OutgoingFrame>& frame) override;
  bool telling() const override { return telling_.has_value() && !closed_; }
  void close() override;

  bool is_open() const override { return !closed_; }
  std::size_t queued_frames() const override { return queue_.size() + (writing_ ? 1 : 0); }
  Clock::time_point last_read() const override { return last_read_; }
  Clock::time_point last_write() const override { return last_write_; }
  std::size_t unread_bytes() const override;
  std::uint64_t bytes_read() const override { return bytes_read_; }
  std::uint64_t bytes_written() const override { return bytes_written_; }
  std::string local_address() const override;
  std::string local_endpoint() const override;
  std::string remote_endpoint() const override;

 private:
  void read_more();
  void resume_soon();
  void feed_staged();
  void on_read(const asio::error_code& ec, std::size_t n, bool direct);
  void dispatch(ptp::Frame&& frame);
  void write_next();
  void fail(const Status& why);
  void write_failed(const Status& why);

  tcp::socket socket_;
  ptp::FrameDecoder decoder_;
  EventSlot events_;
  std::vector<std::byte> staging_;
  std::size_t staged_begin_ = 0;
  std::size_t staged_end_ = 0;
  std::deque<std::shared_ptr<OutgoingFrame>> queue_;
  bool reading_ = false;  // a read is in flight
  bool paused_ = false;
  bool writing_ = false;
  bool closed_ = false;
  bool write_failed_ = false;  // with Events::on_write_failure: reading goes on
  std::optional<Status> telling_;  // fail with this once the queue (the error frame) is out
  bool failing_ = false;
  bool started_ = false;
  Clock::time_point last_read_;
  Clock::time_point last_write_;
  std::uint64_t bytes_read_ = 0;
  std::uint64_t bytes_written_ = 0;
};

}  // namespace agp::transport::detail
