#include "ucx_backend.hpp"

#include <ucp/api/ucp.h>
#include <poll.h>
#include <unistd.h>

#include <cstdlib>

#include <cstring>
#include <deque>
#include <optional>
#include <unordered_map>
#include <vector>

namespace agp::transport::detail {
namespace {

// Bytes arrive in a staging buffer and are fed to the frame decoder from there. The buffer is
// shared with the receive request: UCX may still write into it after the channel has gone (a
// cancelled receive completes later), so it lives until the request is done.
constexpr std::size_t kStagingBytes = 256 * 1024;

Status ucx_error(ErrorCode code, const std::string& what, ucs_status_t s) {
  return make_error(code, what + ": " + ucs_status_string(s));
}

std::string sockaddr_text(const sockaddr_storage& ss) {
  tcp::endpoint e;
  const std::size_t len = ss.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  std::memcpy(e.data(), &ss, len);
  return endpoint_text(e);
}

// Whether a UCX_TLS list lets UCX use its memory-mapping shared-memory transports (posix, sysv),
// directly or through an alias; a setting for transports that are not opened draws a warning.
bool may_use_shared_memory(const std::string& transports) {
  if (transports.empty()) return true;
  std::size_t at = 0;
  while (at <= transports.size()) {
    const std::size_t end = std::min(transports.find(',', at), transports.size());
    std::string name = transports.substr(at, end - at);
    if (!name.empty() && name.front() == '^') return true;  // an exclusion list keeps the rest
    for (const char* shm : {"all", "sm", "shm", "mm", "posix", "sysv"}) {
      if (name == shm) return true;
    }
    at = end + 1;
  }
  return false;
}

class UcxChannel;

// One UCP context and worker, progressed on the io_context: whenever the worker's wake-up
// descriptor is readable, and soon after every operation posted (kick()).
class Worker : public std::enable_shared_from_this<Worker> {
 public:
  static Result<std::shared_ptr<Worker>> create(asio::io_context& ctx, const LinkOptions& options) {
    const std::string& transports = options.ucx_transports;
    auto w = std::shared_ptr<Worker>(new Worker(ctx));
    // A restarted server listens on its old port again, as with the TCP backend. (A transport
    // setting ucp_config_modify does not reach; an explicit UCX_TCP_CM_REUSEADDR wins.)
    ::setenv("UCX_TCP_CM_REUSEADDR", "y", 0);
    ucp_config_t* config = nullptr;
    ucs_status_t s = ucp_config_read(nullptr, nullptr, &config);
    if (s != UCS_OK) return ucx_error(ErrorCode::kNetworkError, "UCX configuration", s);
    // Shared memory carries frames between processes of one host only with its own peer-failure
    // handling on (the endpoints ask for it; without it UCX leaves shared memory out). An explicit
    // UCX_MM_ERROR_HANDLING wins.
    w->shared_memory = may_use_shared_memory(transports);
    w->hold_limit = options.receive_buffer_bytes;
    if (std::getenv("UCX_MM_ERROR_HANDLING") == nullptr && w->shared_memory) {
      s = ucp_config_modify(config, "MM_ERROR_HANDLING", "y");
    }
    if (s != UCS_OK) {
      ucp_config_release(config);
      return ucx_error(ErrorCode::kNetworkError, "UCX shared-memory error handling", s);
    }
    if (!transports.empty()) s = ucp_config_modify(config, "TLS", transports.c_str());
    if (s != UCS_OK) {
      ucp_config_release(config);
      return ucx_error(ErrorCode::kInvalidArgument, "UCX transports '" + transports + "'", s);
    }
    // An interface to send through is UCX's device list (the connection manager routes the
    // connection itself by the peer's address).
    if (!options.bind_interface.empty()) s = ucp_config_modify(config, "NET_DEVICES", options.bind_interface.c_str());
    if (s != UCS_OK) {
      ucp_config_release(config);
      return ucx_error(ErrorCode::kInvalidArgument, "UCX device '" + options.bind_interface + "'", s);
    }
    ucp_params_t params{};
    params.field_mask = UCP_PARAM_FIELD_FEATURES;
    params.features = UCP_FEATURE_STREAM | UCP_FEATURE_WAKEUP;
    s = ucp_init(&params, config, &w->context_);
    ucp_config_release(config);
    if (s != UCS_OK) return ucx_error(ErrorCode::kNetworkError, "UCX initialisation", s);
    ucp_worker_params_t wp{};
    wp.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
    // One io_context drives it, from whichever thread runs the Link at the time (never two).
    wp.thread_mode = UCS_THREAD_MODE_SERIALIZED;
    s = ucp_worker_create(w->context_, &wp, &w->worker_);
    if (s != UCS_OK) return ucx_error(ErrorCode::kNetworkError, "UCX worker", s);
    int fd = -1;
    s = ucp_worker_get_efd(w->worker_, &fd);
    if (s != UCS_OK) return ucx_error(ErrorCode::kNetworkError, "UCX wake-up descriptor", s);
    const int own = ::dup(fd);  // the stream descriptor closes its own copy
    if (own < 0) return make_error(ErrorCode::kNetworkError, "UCX wake-up descriptor: dup failed");
    w->wakeup_ = std::make_unique<asio::posix::stream_descriptor>(ctx, own);
    w->progress();
    w->backstop();
    return w;
  }

  ~Worker() {
    timer_.cancel();
    wakeup_.reset();
    // Endpoints still closing are finished first (UCX refuses to destroy a worker with a flush
    // pending); a peer that never answers is given up on after a bounded wait.
    const auto until = Clock::now() + std::chrono::milliseconds(200);
    while (!closing_.empty() && Clock::now() < until) {
      ucp_worker_progress(worker_);
      reap();
    }
    for (void* r : closing_) ucp_request_free(r);  // released: UCX finishes them as it can
    closing_.clear();
    if (worker_) ucp_worker_destroy(worker_);
    if (context_) ucp_cleanup(context_);
  }

  // An endpoint's close request, kept until UCX completes it.
  void closing(void* request) { closing_.push_back(request); }

  ucp_worker_h handle() const { return worker_; }
  asio::io_context& io() { return ctx_; }

  // Runs UCX's progress until it has nothing more, then arms the wake-up and waits for it. While
  // a send is in flight and moving it comes back after the other handlers instead: UCX pushes
  // the rest of a large message only when progressed, and a transport whose send space frees up
  // (shared memory's FIFO, as the peer drains it) signals nothing the wake-up would see. A send
  // that has not moved for kSpinWithoutProgress (a peer not reading) is left to the wake-up and
  // the backstop, so a stalled peer does not keep a core busy.
  void progress() {
    const auto now = Clock::now();
    for (int round = 0; round < 64; ++round) {
      unsigned events = 0;
      while (const unsigned n = ucp_worker_progress(worker_)) events += n;
      if (events > 0) last_events_ = now;
      reap();
      if (sends_in_flight_ > 0 && now - last_events_ < kSpinWithoutProgress) break;
      const ucs_status_t s = ucp_worker_arm(worker_);
      if (s == UCS_OK) return wait();
      if (s != UCS_ERR_BUSY) break;
    }
    kick();  // still busy: come back after the other handlers
  }

  // Sends UCX holds (posted, their callback still to come).
  void send_posted() { ++sends_in_flight_; }
  void send_completed() { --sends_in_flight_; }

  // Progress without arming: for a caller that spins (LinkOptions::busy_poll_us).
  void poll() {
    while (ucp_worker_progress(worker_) != 0) {
    }
    reap();
  }

  void kick() {
    if (kicked_) return;
    kicked_ = true;
    asio::post(ctx_, [weak = weak_from_this()] {
      if (auto self = weak.lock()) {
        self->kicked_ = false;
        self->progress();
      }
    });
  }

  // Error reports of endpoints find their channel here.
  std::unordered_map<ucp_ep_h, std::weak_ptr<UcxChannel>> channels;
  bool shared_memory = false;  // the transports allowed include shared memory
  std::uint64_t hold_limit = 0;  // bytes a paused channel holds (LinkOptions::receive_buffer_bytes)
  // Channels kept alive, whoever dropped them, until their endpoint is wired up and their error
  // frame posted; the backend releases them when it goes.
  std::vector<std::shared_ptr<Channel>> farewells;

  static void on_ep_error(void* arg, ucp_ep_h ep, ucs_status_t status);

 private:
  explicit Worker(asio::io_context& ctx) : ctx_(ctx), timer_(ctx) {}

  // Progress also runs every few milliseconds: UCX's connection manager works from its own
  // thread and does not always signal the wake-up descriptor.
  void backstop() {
    timer_.expires_after(std::chrono::milliseconds(5));
    timer_.async_wait([weak = weak_from_this()](const asio::error_code& ec) {
      auto self = weak.lock();
      if (!self || ec) return;
      self->progress();
      self->backstop();
    });
  }

  void wait() {
    if (waiting_ || !wakeup_) return;
    // Asio watches descriptors edge-triggered: one that is readable already (UCX signalled after
    // the arm) would never wake us. Look first.
    pollfd pfd{wakeup_->native_handle(), POLLIN, 0};
    if (::poll(&pfd, 1, 0) > 0) return kick();
    waiting_ = true;
    wakeup_->async_wait(asio::posix::stream_descriptor::wait_read,
                        [weak = weak_from_this()](const asio::error_code& ec) {
                          auto self = weak.lock();
                          if (!self) return;
                          self->waiting_ = false;
                          if (!ec) self->progress();
                        });
  }

  void reap() {
    std::erase_if(closing_, [](void* r) {
      if (ucp_request_check_status(r) == UCS_INPROGRESS) return false;
      ucp_request_free(r);
      return true;
    });
  }

  asio::io_context& ctx_;
  ucp_context_h context_ = nullptr;
  ucp_worker_h worker_ = nullptr;
  std::vector<void*> closing_;  // endpoint close requests in progress

  std::unique_ptr<asio::posix::stream_descriptor> wakeup_;
  asio::steady_timer timer_;
  bool waiting_ = false;
  bool kicked_ = false;
  std::size_t sends_in_flight_ = 0;
  static constexpr auto kSpinWithoutProgress = std::chrono::milliseconds(2);
  Clock::time_point last_events_{};
};

class UcxChannel final : public Channel, public std::enable_shared_from_this<UcxChannel> {
 public:
  UcxChannel(std::shared_ptr<Worker> worker, ucp_ep_h ep, ptp::DecoderOptions decoder)
      : worker_(std::move(worker)),
        ep_(ep),
        decoder_(std::move(decoder)),
        staging_(std::make_shared<std::vector<std::byte>>(kStagingBytes)),
        last_read_(Clock::now()),
        last_write_(Clock::now()) {}
  ~UcxChannel() override { close(); }

  // Entry points hold a reference while they run: UCX may report an endpoint error from inside
  // a send or receive call, and the session may drop the channel in its failure handler.
  void start(Events events) override {
    auto keep = shared_from_this();
    started_ = true;
    if (!events_.set(std::move(events))) return;
    if (early_failure_) {  // the endpoint failed before anyone listened
      asio::post(ctx(), [self = shared_from_this()] { self->fail(*self->early_failure_); });
      return;
    }
    resume_soon();
  }
  // As on TCP: reading starts or resumes from the event loop, never inside the session's call.
  void resume_soon() {
    asio::post(ctx(), [self = shared_from_this()] { self->read_more(); });
  }
  void set_decoder(ptp::DecoderOptions decoder) override { decoder_ = ptp::FrameDecoder(std::move(decoder)); }
  void recycle(ptp::AlignedBuffer body) override { decoder_.recycle(std::move(body)); }
  void set_reading(bool on) override {
    auto keep = shared_from_this();
    const bool was_paused = paused_;
    paused_ = !on;
    if (on && was_paused && started_ && !events_.delivering()) resume_soon();
  }

  void send(std::shared_ptr<OutgoingFrame> frame, bool urgent) override {
    auto keep = shared_from_this();
    if (closed_ || farewell_) return;
    if (urgent) {
      queue_.push_front(std::move(frame));
    } else {
      queue_.push_back(std::move(frame));
    }
    send_next();
  }
  void fail_after_telling(const Status& why, const std::shared_ptr<OutgoingFrame>& frame) override {
    auto keep = shared_from_this();
    if (closed_) return;
    // The error frame goes on the stream now, behind the frame in flight (queued ones are
    // dropped); the close that follows flushes it to the peer.
    queue_.clear();
    if (frame && !wired_) {  // posted once the endpoint is wired up (see wire_up)
      farewell_ = frame;
      farewell_why_ = why;
      paused_ = true;
      worker_->farewells.push_back(shared_from_this());
      return;
    }
    if (frame) {
      post(frame, true);
      told_ = true;
    }
    if (!failing_) fail(why);
  }
  // An error frame waits for the wire-up; once posted, the close flushes it.
  bool telling() const override { return farewell_ != nullptr; }

  void close() override {
    if (closed_) return;
    closed_ = true;
    queue_.clear();
    farewell_.reset();
    std::erase_if(worker_->farewells, [this](const std::shared_ptr<Channel>& c) { return c.get() == this; });
    worker_->channels.erase(ep_);
    if (recv_request_) {  // its callback sees the channel closed (or gone) and only frees it
      void* r = std::exchange(recv_request_, nullptr);
      ucp_request_cancel(worker_->handle(), r);
    }
    // After an error frame the endpoint is flushed first, so the frame still arrives; otherwise
    // (the session already said goodbye, or the peer is gone) it is dropped at once.
    ucp_request_param_t p{};
    p.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
    p.flags = told_ && !ep_failed_ ? 0 : UCP_EP_CLOSE_FLAG_FORCE;
    void* r = ucp_ep_close_nbx(ep_, &p);
    if (r != nullptr && !UCS_PTR_IS_ERR(r)) worker_->closing(r);
    worker_->kick();
  }

  void poll() override {
    auto keep = shared_from_this();  // a frame delivered from inside may drop the channel
    worker_->poll();
  }
  bool polls_itself() const override { return true; }

  bool is_open() const override { return !closed_; }
  std::size_t queued_frames() const override { return queue_.size() + (sending_ ? 1 : 0); }
  Clock::time_point last_read() const override { return last_read_; }
  Clock::time_point last_write() const override { return last_write_; }
  std::size_t unread_bytes() const override {
    return staged_end_ - staged_begin_ + held_.size() - held_begin_;
  }
  std::uint64_t bytes_read() const override { return bytes_read_; }
  std::uint64_t bytes_written() const override { return bytes_written_; }
  std::string local_address() const override {
    const auto e = query(UCP_EP_ATTR_FIELD_LOCAL_SOCKADDR);
    if (!e) return {};
    const std::string text = *e;
    const auto colon = text.rfind(':');
    std::string host = text.substr(0, colon);
    if (host.size() > 1 && host.front() == '[') host = host.substr(1, host.size() - 2);
    return host;
  }
  std::string local_endpoint() const override { return query(UCP_EP_ATTR_FIELD_LOCAL_SOCKADDR).value_or("?"); }
  std::string remote_endpoint() const override { return query(UCP_EP_ATTR_FIELD_REMOTE_SOCKADDR).value_or("?"); }

  // Where shared memory may carry the stream, frames wait until UCX has wired the endpoint up (a
  // flush completes then): UCX 1.13 replays stream sends queued during wire-up on the final lanes,
  // and with shared-memory lanes that replay calls a null function (a crash in
  // ucp_wireup_replay_pending_requests). Elsewhere frames are queued in UCX at once: a flush
  // pending on an endpoint whose connection is refused trips an assertion of UCX 1.13 (wireup_ep.c,
  // "async->signal.tid == ucs_get_tid()") about one refused connection in twenty.
  void wire_up(bool wait_for_it) {
    if (!wait_for_it) {
      wired_ = true;
      return;
    }
    ucp_request_param_t p{};
    p.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
    p.cb.send = &UcxChannel::on_wired;
    p.user_data = new std::weak_ptr<UcxChannel>(weak_from_this());
    void* r = ucp_ep_flush_nbx(ep_, &p);
    if (r == nullptr) {
      delete static_cast<std::weak_ptr<UcxChannel>*>(p.user_data);
      wired_ = true;
      return;
    }
    if (UCS_PTR_IS_ERR(r)) {
      delete static_cast<std::weak_ptr<UcxChannel>*>(p.user_data);
      on_error(UCS_PTR_STATUS(r));
      return;
    }
    worker_->kick();
  }

  // The endpoint failed (the peer went away, or the dial was refused).
  void on_error(ucs_status_t status) {
    ep_failed_ = true;
    const Status why = status == UCS_ERR_UNREACHABLE || status == UCS_ERR_REJECTED
                           ? ucx_error(ErrorCode::kConnectFailed, "UCX connect", status)
                           : ucx_error(ErrorCode::kConnectionClosed, "UCX endpoint", status);
    if (!started_) {
      early_failure_ = why;
      return;
    }
    // An error frame still waiting for the wire-up has no one to go to any more: close now (a
    // failure already reported, from inside which the frame was given, closes here too).
    const bool was_failing = failing_;
    farewell_.reset();
    if (was_failing) return close();
    fail(why);
  }

 private:
  struct SendOp {
    Worker* worker;  // alive while UCX may call back: the callback runs inside its progress
    std::weak_ptr<UcxChannel> channel;
    std::shared_ptr<OutgoingFrame> frame;  // its bytes stay until UCX is done with them
    std::vector<ucp_dt_iov_t> iov;
    bool last = false;  // posted beside the queue (an error frame before closing)
  };
  struct RecvOp {
    std::weak_ptr<UcxChannel> channel;
    std::shared_ptr<std::vector<std::byte>> buffer;  // the staging buffer, kept for UCX
  };

  asio::io_context& ctx() { return worker_->io(); }

  std::optional<std::string> query(std::uint64_t field) const {
    ucp_ep_attr_t attr{};
    attr.field_mask = field;
    if (closed_ || ucp_ep_query(ep_, &attr) != UCS_OK) return std::nullopt;
    return sockaddr_text(field == UCP_EP_ATTR_FIELD_LOCAL_SOCKADDR ? attr.local_sockaddr : attr.remote_sockaddr);
  }

  // One frame at a time on the endpoint's stream (urgent frames overtake the queue, as on TCP).
  void send_next() {
    while (!closed_ && wired_ && !sending_ && !queue_.empty()) {
      std::shared_ptr<OutgoingFrame> f = std::move(queue_.front());
      queue_.pop_front();
      if (post(f, false)) return;
    }
  }

  // Posts `frame` on the stream; true while UCX still holds it. `last` frames (an error before
  // closing) do not hold the queue.
  bool post(const std::shared_ptr<OutgoingFrame>& frame, bool last) {
    auto* op = new SendOp{worker_.get(), weak_from_this(), frame, {}, last};
    for (const auto& piece : frame->pieces) {
      op->iov.push_back({const_cast<std::byte*>(piece.data()), piece.size()});
    }
    ucp_request_param_t p{};
    p.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA | UCP_OP_ATTR_FIELD_DATATYPE;
    p.cb.send = &UcxChannel::on_sent;
    p.user_data = op;
    p.datatype = ucp_dt_make_iov();
    void* r = ucp_stream_send_nbx(ep_, op->iov.data(), op->iov.size(), &p);
    if (r != nullptr && !UCS_PTR_IS_ERR(r)) worker_->send_posted();
    if (closed_) {  // failed from inside the call; a request, if any, completes on its own
      if (r == nullptr || UCS_PTR_IS_ERR(r)) delete op;
      return true;
    }
    if (r == nullptr) {  // done at once
      sent(frame->bytes);
      delete op;
      return false;
    }
    if (UCS_PTR_IS_ERR(r)) {
      delete op;
      const Status why = ucx_error(ErrorCode::kNetworkError, "UCX send", UCS_PTR_STATUS(r));
      // Never from inside send(): the session may be iterating over its channels.
      asio::post(ctx(), [self = shared_from_this(), why] { self->fail(why); });
      return true;
    }
    if (!last) sending_ = true;
    worker_->kick();
    return true;
  }

  void sent(std::uint64_t bytes) {
    bytes_written_ += bytes;
    last_write_ = Clock::now();
  }

  static void on_wired(void* request, ucs_status_t status, void* user_data) {
    auto* weak = static_cast<std::weak_ptr<UcxChannel>*>(user_data);
    ucp_request_free(request);
    if (auto self = weak->lock(); self && !self->closed_) {
      if (status != UCS_OK) {
        self->on_error(status);
      } else if (self->farewell_) {
        self->wired_ = true;
        const auto frame = std::exchange(self->farewell_, nullptr);
        self->post(frame, true);
        self->told_ = true;
        if (self->failing_) {
          self->close();  // flushes the error frame
        } else {
          self->fail(self->farewell_why_);
        }
      } else {
        self->wired_ = true;
        self->send_next();
      }
    }
    delete weak;
  }

  static void on_sent(void* request, ucs_status_t status, void* user_data) {
    auto* op = static_cast<SendOp*>(user_data);
    ucp_request_free(request);
    op->worker->send_completed();
    if (auto self = op->channel.lock(); self && !self->closed_ && !op->last) {
      self->sending_ = false;
      if (status != UCS_OK) {
        self->fail(ucx_error(ErrorCode::kConnectionClosed, "UCX send", status));
      } else {
        self->sent(op->frame->bytes);
        self->send_next();
      }
    }
    delete op;
  }

  // Reading never stops, unlike on TCP: UCX keeps reading its transport whether or not a receive
  // is posted and queues what arrives on the endpoint, so a pause would push nothing back on the
  // sender. While the session has paused reading (a full inbox, a session not accepted yet), what
  // arrives is held here instead, up to LinkOptions::receive_buffer_bytes; a peer that sends more
  // ignores its window and the channel fails (kBodyTooLarge).
  void read_more() {
    if (closed_) return;
    if (!paused_) feed_staged();
    if (closed_) return;
    if (paused_) hold_staged();
    while (!closed_ && !reading_) {
      auto* op = new RecvOp{weak_from_this(), staging_};
      ucp_request_param_t p{};
      p.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
      p.cb.recv_stream = &UcxChannel::on_received;
      p.user_data = op;
      std::size_t length = 0;
      void* r = ucp_stream_recv_nbx(ep_, staging_->data(), staging_->size(), &length, &p);
      if (closed_) {  // failed from inside the call
        if (r == nullptr || UCS_PTR_IS_ERR(r)) delete op;
        return;
      }
      if (r == nullptr) {  // bytes were waiting
        delete op;
        received(length);
        continue;
      }
      if (UCS_PTR_IS_ERR(r)) {
        delete op;
        const Status why = ucx_error(ErrorCode::kConnectionClosed, "UCX receive", UCS_PTR_STATUS(r));
        asio::post(ctx(), [self = shared_from_this(), why] { self->fail(why); });
        return;
      }
      recv_request_ = r;
      reading_ = true;
      worker_->kick();
      return;
    }
  }

  static void on_received(void* request, ucs_status_t status, std::size_t length, void* user_data) {
    auto* op = static_cast<RecvOp*>(user_data);
    ucp_request_free(request);
    if (auto self = op->channel.lock(); self && !self->closed_) {
      self->recv_request_ = nullptr;
      self->reading_ = false;
      if (status != UCS_OK) {
        self->fail(ucx_error(ErrorCode::kConnectionClosed, "UCX receive", status));
      } else {
        self->received(length);
        self->read_more();
      }
    }
    delete op;
  }

  // The staging buffer holds `n` new bytes: to the decoder, or held while reading is paused.
  void received(std::size_t n) {
    if (n == 0) return;
    last_read_ = Clock::now();
    bytes_read_ += n;
    staged_begin_ = 0;
    staged_end_ = n;
    if (paused_) return hold_staged();
    feed_staged();
    if (!closed_ && paused_) hold_staged();  // paused from inside a frame's delivery
  }

  // Moves what is left in the staging buffer behind the held bytes (the buffer is reused by the
  // next receive); fails the channel past the bound.
  void hold_staged() {
    if (staged_begin_ == staged_end_) return;
    held_.insert(held_.end(), staging_->begin() + static_cast<std::ptrdiff_t>(staged_begin_),
                 staging_->begin() + static_cast<std::ptrdiff_t>(staged_end_));
    staged_begin_ = staged_end_ = 0;
    if (held_.size() - held_begin_ > worker_->hold_limit) {
      fail(make_error(ErrorCode::kBodyTooLarge,
                      "the peer sent more than " + std::to_string(worker_->hold_limit) +
                          " bytes while this end had paused reading (LinkOptions::receive_buffer_bytes): "
                          "it ignores its window"));
    }
  }

  // Held bytes first, then the staging buffer, until both are used or reading pauses.
  void feed_staged() {
    if (!feed(held_, held_begin_)) return;
    held_.clear();
    held_begin_ = 0;
    feed(*staging_, staged_begin_, staged_end_);
    if (staged_begin_ == staged_end_) staged_begin_ = staged_end_ = 0;
  }

  // Feeds bytes [begin, end) of `bytes` (end: all of it) to the decoder, advancing `begin`;
  // true when all were used.
  bool feed(const std::vector<std::byte>& bytes, std::size_t& begin, std::size_t end = SIZE_MAX) {
    end = std::min(end, bytes.size());
    while (begin < end && !closed_ && !paused_) {
      auto used = decoder_.consume(std::span<const std::byte>(bytes.data() + begin, end - begin));
      if (!used) {
        fail(used.status());
        return false;
      }
      begin += *used;
      if (decoder_.frame_ready()) dispatch(decoder_.take_frame());
    }
    return begin >= end;
  }

  void dispatch(ptp::Frame&& frame) {
    events_.deliver(std::move(frame));
  }

  void fail(const Status& why) {
    if (closed_ || failing_) return;
    failing_ = true;
    auto keep = shared_from_this();  // the handler may drop its reference to us
    if (events_.events().on_failure) events_.events().on_failure(why);
    if (farewell_) return;  // the handler told the peer why: closed once that frame is posted
    close();
  }

  std::shared_ptr<Worker> worker_;
  ucp_ep_h ep_;
  ptp::FrameDecoder decoder_;
  EventSlot events_;
  std::shared_ptr<std::vector<std::byte>> staging_;
  std::size_t staged_begin_ = 0;
  std::size_t staged_end_ = 0;
  std::vector<std::byte> held_;  // received while reading was paused, from held_begin_ on
  std::size_t held_begin_ = 0;
  std::deque<std::shared_ptr<OutgoingFrame>> queue_;
  void* recv_request_ = nullptr;
  bool reading_ = false;
  bool paused_ = false;
  bool sending_ = false;
  bool closed_ = false;
  bool failing_ = false;
  bool started_ = false;
  bool ep_failed_ = false;  // UCX reported the endpoint broken: close without flushing
  bool wired_ = false;      // the endpoint is wired up: frames may be posted
  std::shared_ptr<OutgoingFrame> farewell_;  // an error frame waiting for the wire-up
  Status farewell_why_;
  bool told_ = false;       // an error frame is on its way: flush it before closing
  std::optional<Status> early_failure_;
  Clock::time_point last_read_;
  Clock::time_point last_write_;
  std::uint64_t bytes_read_ = 0;
  std::uint64_t bytes_written_ = 0;
};

void Worker::on_ep_error(void* arg, ucp_ep_h ep, ucs_status_t status) {
  auto* w = static_cast<Worker*>(arg);
  const auto it = w->channels.find(ep);
  if (it == w->channels.end()) return;
  if (auto c = it->second.lock()) c->on_error(status);
}

class UcxDial final : public Dial {
 public:
  explicit UcxDial(asio::io_context& ctx) : probe(ctx) {}
  void cancel() override {
    cancelled = true;
    asio::error_code ignored;
    probe.close(ignored);
    if (channel) channel->close();
  }
  tcp::socket probe;  // a plain TCP connection to the listener first (see dial)
  std::shared_ptr<UcxChannel> channel;
  bool cancelled = false;
};

class UcxBackend final : public Backend {
 public:
  UcxBackend(asio::io_context& ctx, std::shared_ptr<Worker> worker)
      : ctx_(ctx), worker_(std::move(worker)) {}
  ~UcxBackend() override {
    stop_listening();
    // Error frames still waiting for their wire-up are dropped (moved out first: a channel's
    // close takes itself out of the list).
    auto dropped = std::move(worker_->farewells);
    worker_->farewells.clear();
    dropped.clear();
  }

  // A refused connection is found with a plain TCP connection to the listener (UCX's
  // connection manager listens on TCP) and closed at once; the UCX endpoint is made only when
  // something listens. UCX 1.13 can abort the process on a client-server endpoint whose
  // connection is refused (an assertion in wireup_ep.c, about one refused connection in twenty),
  // and a receiver that restarts makes its senders meet refusals until it is back.
  Result<std::shared_ptr<Dial>> dial(const std::string& host, std::uint16_t port,
                                     ptp::DecoderOptions decoder, Dialed done) override {
    const auto peer = ip_endpoint(host, port, ErrorCode::kConnectFailed);
    if (!peer) return peer.status();
    auto attempt = std::make_shared<UcxDial>(ctx_);
    std::weak_ptr<UcxDial> weak = attempt;
    attempt->probe.async_connect(
        *peer, [this, alive = std::weak_ptr<int>(token_), weak, where = *peer, decoder = std::move(decoder),
                done = std::move(done)](const asio::error_code& ec) mutable {
          auto a = weak.lock();
          if (!a || a->cancelled || !alive.lock()) return;
          asio::error_code ignored;
          a->probe.close(ignored);
          if (ec) {
            return done(make_error(ErrorCode::kConnectFailed,
                                   "connect to " + endpoint_text(where) + ": " + ec.message()));
          }
          auto channel = connect(where, std::move(decoder));
          if (!channel) return done(channel.status());
          a->channel = std::move(channel).value();
          // The session's handshake is what proves the peer is there (a failure fails the channel).
          done(std::shared_ptr<Channel>(a->channel));
        });
    return std::shared_ptr<Dial>(attempt);
  }

  Status listen(const std::string& address, std::uint16_t port, ptp::DecoderOptions decoder,
                Accepted on_accept) override {
    const auto where = ip_endpoint(address, port, ErrorCode::kNetworkError);
    if (!where) return where.status();
    decoder_ = std::move(decoder);
    on_accept_ = std::move(on_accept);
    ucp_listener_params_t p{};
    p.field_mask = UCP_LISTENER_PARAM_FIELD_SOCK_ADDR | UCP_LISTENER_PARAM_FIELD_CONN_HANDLER;
    p.sockaddr.addr = where->data();
    p.sockaddr.addrlen = static_cast<socklen_t>(where->size());
    p.conn_handler.cb = &UcxBackend::on_connection_request;
    p.conn_handler.arg = this;
    const ucs_status_t s = ucp_listener_create(worker_->handle(), &p, &listener_);
    if (s == UCS_ERR_BUSY) return make_error(ErrorCode::kAddressInUse, endpoint_text(*where) + " is already in use");
    if (s != UCS_OK) return ucx_error(ErrorCode::kNetworkError, "UCX listen on " + endpoint_text(*where), s);
    worker_->kick();
    return {};
  }

  std::uint16_t port() const override {
    if (!listener_) return 0;
    ucp_listener_attr_t attr{};
    attr.field_mask = UCP_LISTENER_ATTR_FIELD_SOCKADDR;
    if (ucp_listener_query(listener_, &attr) != UCS_OK) return 0;
    tcp::endpoint e;
    const std::size_t len = attr.sockaddr.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
    std::memcpy(e.data(), &attr.sockaddr, len);
    return e.port();
  }

  void stop_listening() override {
    if (listener_) ucp_listener_destroy(std::exchange(listener_, nullptr));
  }

 private:
  // The UCX endpoint to `peer`, connecting in the background.
  Result<std::shared_ptr<UcxChannel>> connect(const tcp::endpoint& peer, ptp::DecoderOptions decoder) {
    ucp_ep_params_t p{};
    p.field_mask = UCP_EP_PARAM_FIELD_FLAGS | UCP_EP_PARAM_FIELD_SOCK_ADDR |
                   UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE | UCP_EP_PARAM_FIELD_ERR_HANDLER;
    p.flags = UCP_EP_PARAMS_FLAGS_CLIENT_SERVER;
    p.sockaddr.addr = peer.data();
    p.sockaddr.addrlen = static_cast<socklen_t>(peer.size());
    p.err_mode = UCP_ERR_HANDLING_MODE_PEER;
    p.err_handler.cb = &Worker::on_ep_error;
    p.err_handler.arg = worker_.get();
    ucp_ep_h ep = nullptr;
    const ucs_status_t s = ucp_ep_create(worker_->handle(), &p, &ep);
    if (s != UCS_OK) return ucx_error(ErrorCode::kConnectFailed, "UCX connect to " + endpoint_text(peer), s);
    auto channel = std::make_shared<UcxChannel>(worker_, ep, std::move(decoder));
    worker_->channels[ep] = channel;
    channel->wire_up(worker_->shared_memory);
    worker_->kick();
    return channel;
  }

  static void on_connection_request(ucp_conn_request_h request, void* arg) {
    static_cast<UcxBackend*>(arg)->accept(request);
  }

  void accept(ucp_conn_request_h request) {
    ucp_ep_params_t p{};
    p.field_mask = UCP_EP_PARAM_FIELD_CONN_REQUEST | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE |
                   UCP_EP_PARAM_FIELD_ERR_HANDLER;
    p.conn_request = request;
    p.err_mode = UCP_ERR_HANDLING_MODE_PEER;
    p.err_handler.cb = &Worker::on_ep_error;
    p.err_handler.arg = worker_.get();
    ucp_ep_h ep = nullptr;
    if (ucp_ep_create(worker_->handle(), &p, &ep) != UCS_OK) return;
    auto channel = std::make_shared<UcxChannel>(worker_, ep, decoder_);
    worker_->channels[ep] = channel;
    channel->wire_up(worker_->shared_memory);
    // Handed over after the progress call that brought it (posting from inside UCX's callback is
    // not ours to rely on).
    asio::post(ctx_, [this, alive = std::weak_ptr<int>(token_), channel] {
      if (alive.lock() && listener_) on_accept_(channel);
    });
  }

  asio::io_context& ctx_;
  std::shared_ptr<Worker> worker_;
  ucp_listener_h listener_ = nullptr;
  ptp::DecoderOptions decoder_;
  Accepted on_accept_;
  std::shared_ptr<int> token_ = std::make_shared<int>(0);  // gone with the backend
};

}  // namespace

Result<std::unique_ptr<Backend>> make_ucx_backend(asio::io_context& ctx, const LinkOptions& options) {
  auto worker = Worker::create(ctx, options);
  if (!worker) return worker.status();
  return std::unique_ptr<Backend>(std::make_unique<UcxBackend>(ctx, std::move(worker).value()));
}

}  // namespace agp::transport::detail
