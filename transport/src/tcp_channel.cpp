#include "tcp_channel.hpp"

#include <cstring>
#include <utility>

namespace agp::transport::detail {
namespace {

// One read of the staging buffer can carry many small frames; bodies at least this large are
// read straight into the frame's own buffer instead (no copy).
constexpr std::size_t kStagingBytes = 64 * 1024;

std::vector<asio::const_buffer> buffers_of(const OutgoingFrame& f) {
  std::vector<asio::const_buffer> b;
  b.reserve(f.pieces.size());
  for (const auto& p : f.pieces) b.emplace_back(p.data(), p.size());
  return b;
}

}  // namespace

TcpChannel::TcpChannel(tcp::socket socket, ptp::DecoderOptions decoder)
    : socket_(std::move(socket)),
      decoder_(std::move(decoder)),
      staging_(kStagingBytes),
      last_read_(Clock::now()),
      last_write_(Clock::now()) {
  asio::error_code ignored;
  socket_.non_blocking(true, ignored);  // write_next() tries each frame at once
}

TcpChannel::~TcpChannel() {
  close();
}

void TcpChannel::start(Events events) {
  started_ = true;
  if (events_.set(std::move(events))) resume_soon();
}

// Reading starts or resumes from the event loop, never inside the caller: staged bytes may hold
// a frame whose handling ends the session, and the caller (start, set_reading) is the session.
void TcpChannel::resume_soon() {
  asio::post(socket_.get_executor(), [self = shared_from_this()] { self->read_more(); });
}

void TcpChannel::dispatch(ptp::Frame&& frame) {
  events_.deliver(std::move(frame));
}

void TcpChannel::set_decoder(ptp::DecoderOptions decoder) {
  decoder_ = ptp::FrameDecoder(std::move(decoder));
}

void TcpChannel::set_reading(bool on) {
  const bool was_paused = paused_;
  paused_ = !on;
  // From inside a frame callback the feeding loop goes on by itself; starting it again here
  // would feed the same staged bytes twice.
  if (on && was_paused && started_ && !events_.delivering()) resume_soon();
}

void TcpChannel::read_more() {
  if (closed_ || paused_ || reading_) return;
  feed_staged();
  if (closed_ || paused_) return;
  // The staging buffer is empty here. Large remainders go straight into the decoder's buffer.
  const bool direct = decoder_.next_required_size() >= kStagingBytes;
  std::byte* dst = staging_.data();
  std::size_t room = staging_.size();
  if (direct) {
    const auto area = decoder_.prepare();
    dst = area.data();
    room = area.size();
  }
  reading_ = true;
  socket_.async_read_some(asio::buffer(dst, room), [self = shared_from_this(), direct](
                                                       const asio::error_code& ec, std::size_t n) {
    self->on_read(ec, n, direct);
  });
}

void TcpChannel::on_read(const asio::error_code& ec, std::size_t n, bool direct) {
  reading_ = false;
  if (closed_) return;
  if (n > 0) {
    last_read_ = Clock::now();
    bytes_read_ += n;
    if (direct) {
      if (Status s = decoder_.commit(n); !s) return fail(s);
      if (decoder_.frame_ready()) {
        dispatch(decoder_.take_frame());
        if (closed_) return;
      }
    } else {
      staged_begin_ = 0;
      staged_end_ = n;
    }
  }
  if (ec) return fail(from_asio(ec, "receive"));
  // Frames already here are delivered now; the next read is started after the handlers that run
  // next (an acknowledgement sent in reply, the caller's return): asio tries a read at once, which
  // right after a small frame usually finds nothing and would cost a system call on the round trip.
  feed_staged();
  if (closed_ || paused_) return;
  asio::post(socket_.get_executor(), [self = shared_from_this()] { self->read_more(); });
}

void TcpChannel::feed_staged() {
  while (staged_begin_ < staged_end_ && !closed_ && !paused_) {
    auto used = decoder_.consume(
        std::span<const std::byte>(staging_.data() + staged_begin_, staged_end_ - staged_begin_));
    if (!used) return fail(used.status());
    staged_begin_ += *used;
    if (decoder_.frame_ready()) {
      dispatch(decoder_.take_frame());
    }
  }
  if (staged_begin_ == staged_end_) staged_begin_ = staged_end_ = 0;
}

void TcpChannel::write_failed(const Status& why) {
  if (!events_.events().on_write_failure) return fail(why);
  write_failed_ = true;
  queue_.clear();
  events_.events().on_write_failure(why);
}

void TcpChannel::send(std::shared_ptr<OutgoingFrame> frame, bool urgent) {
  if (closed_ || write_failed_) return;
  if (urgent) {
    queue_.push_front(std::move(frame));
  } else {
    queue_.push_back(std::move(frame));
  }
  if (!writing_) write_next();
}

void TcpChannel::write_next() {
  while (!closed_ && !write_failed_ && !writing_ && !queue_.empty()) {
    std::shared_ptr<OutgoingFrame> f = std::move(queue_.front());
    queue_.pop_front();
    auto buffers = buffers_of(*f);
    // First at once (the socket is non-blocking): a frame the socket takes whole needs no
    // completion handler, and the event loop no extra turn to run one.
    asio::error_code ec;
    const std::size_t total = asio::buffer_size(buffers);
    const std::size_t n = socket_.write_some(buffers, ec);
    if (n > 0) {
      bytes_written_ += n;
      last_write_ = Clock::now();
    }
    if (!ec && n == total) {
      if (telling_ && queue_.empty()) return fail(*std::exchange(telling_, std::nullopt));
      continue;
    }
    // The rest (or the error, reported from the handler, never from inside send()) goes
    // through the event loop.
    std::size_t skip = ec ? 0 : n;
    std::vector<asio::const_buffer> rest;
    for (const auto& b : buffers) {
      if (skip >= b.size()) {
        skip -= b.size();
        continue;
      }
      rest.push_back(b + skip);
      skip = 0;
    }
    writing_ = true;
    asio::async_write(socket_, rest,
                      [self = shared_from_this(), f](const asio::error_code& e, std::size_t m) {
                        self->writing_ = false;
                        if (self->closed_) return;
                        self->bytes_written_ += m;
                        self->last_write_ = Clock::now();
                        if (e) return self->write_failed(from_asio(e, "send"));
                        if (self->telling_ && self->queue_.empty()) {
                          return self->fail(*std::exchange(self->telling_, std::nullopt));
                        }
                        self->write_next();
                      });
    return;
  }
}

void TcpChannel::fail_after_telling(const Status& why,
                                    const std::shared_ptr<OutgoingFrame>& frame) {
  if (closed_) return;
  if (writing_ && frame && !failing_) {
    // A frame is half on the wire: the error goes right after it, then the connection fails.
    queue_.clear();
    queue_.push_back(frame);
    telling_ = why;
    return;
  }
  // (Not while a frame is half on the wire: the error would land inside it.)
  if (frame && !writing_) {
    asio::error_code ec;
    socket_.non_blocking(true, ec);
    if (!ec) asio::write(socket_, buffers_of(*frame), ec);
  }
  if (failing_) return close();
  fail(why);
}

void TcpChannel::fail(const Status& why) {
  if (closed_ || failing_) return;
  failing_ = true;
  auto keep = shared_from_this();  // the handler may drop its reference to us
  if (events_.events().on_failure) events_.events().on_failure(why);
  close();
}

void TcpChannel::close() {
  if (closed_) return;
  closed_ = true;
  queue_.clear();
  asio::error_code ignored;
  socket_.shutdown(tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
}

std::size_t TcpChannel::unread_bytes() const {
  asio::error_code ec;
  const std::size_t n = closed_ ? 0 : socket_.available(ec);
  return (ec ? 0 : n) + (staged_end_ - staged_begin_);
}

std::string TcpChannel::local_address() const {
  asio::error_code ec;
  const auto e = socket_.local_endpoint(ec);
  return ec ? std::string() : e.address().to_string();
}

std::string TcpChannel::local_endpoint() const {
  asio::error_code ec;
  const auto e = socket_.local_endpoint(ec);
  return ec ? std::string("?") : endpoint_text(e);
}

std::string TcpChannel::remote_endpoint() const {
  asio::error_code ec;
  const auto e = socket_.remote_endpoint(ec);
  return ec ? std::string("?") : endpoint_text(e);
}

}  // namespace agp::transport::detail
