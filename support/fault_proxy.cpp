#include "fault_proxy.hpp"

#include <algorithm>
#include <asio.hpp>
#include <atomic>
#include <chrono>
#include <cmath>
#include <limits>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

namespace agp::support {
namespace {

using asio::ip::tcp;
using Clock = std::chrono::steady_clock;
constexpr std::uint64_t kNever = std::numeric_limits<std::uint64_t>::max();
constexpr std::size_t kChunk = 64 * 1024;

struct AtomicStats {
  std::atomic<std::uint64_t> connections{0}, bytes_to_server{0}, bytes_to_client{0},
      corruptions_injected{0}, corruptions_forwarded{0}, resets{0}, stalls{0}, half_opens{0},
      short_writes{0}, refused{0};
};

Clock::duration millis(double ms) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double, std::milli>(ms));
}

// Draws from the plan's distributions with one generator per connection and direction.
struct Dice {
  explicit Dice(std::uint64_t seed) : rng(seed) {}
  // Bytes until the next event of mean `mean` bytes (exponential, at least 1); kNever for 0.
  std::uint64_t gap(std::uint64_t mean) {
    if (mean == 0) return kNever;
    std::exponential_distribution<double> d(1.0 / static_cast<double>(mean));
    return 1 + static_cast<std::uint64_t>(d(rng));
  }
  // Position of the first flipped byte for a per-byte probability p (geometric); kNever for 0.
  std::uint64_t first_flip(double p) {
    if (p <= 0) return kNever;
    std::geometric_distribution<std::uint64_t> d(std::min(p, 1.0));
    return d(rng);
  }
  double uniform() { return std::uniform_real_distribution<double>(0, 1)(rng); }
  std::mt19937_64 rng;
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(asio::io_context& ctx, tcp::socket client, const FaultPlan& plan, std::uint64_t index,
          AtomicStats& stats)
      : plan_(plan),
        stats_(stats),
        client_(std::move(client)),
        server_(ctx),
        hold_(ctx),
        up_(ctx, true, plan.seed * 0x9E3779B97F4A7C15ULL + 2 * index),
        down_(ctx, false, plan.seed * 0x9E3779B97F4A7C15ULL + 2 * index + 1) {
    up_.from = down_.to = &client_;
    up_.to = down_.from = &server_;
    Dice& d = up_.dice;
    reset_at_ = d.gap(plan.reset_mean_bytes);
    half_open_at_ = d.gap(plan.half_open_mean_bytes);
    stall_at_ = d.gap(plan.stall_mean_bytes);
    up_.flip_at = up_.dice.first_flip(plan.corrupt_per_byte);
    down_.flip_at = down_.dice.first_flip(plan.corrupt_per_byte);
  }

  void start(const tcp::endpoint& target) {
    server_.async_connect(target, [self = shared_from_this()](const asio::error_code& ec) {
      if (ec) {
        ++self->stats_.refused;
        self->close(false);
        return;
      }
      asio::error_code ignored;
      self->server_.set_option(tcp::no_delay(true), ignored);
      self->client_.set_option(tcp::no_delay(true), ignored);
      self->read(self->up_);
      self->read(self->down_);
    });
  }

  // Closes both sides: abruptly (RST) for an injected reset, else as the peers would.
  void close(bool abort) {
    if (closed_) return;
    closed_ = true;
    for (tcp::socket* s : {&client_, &server_}) {
      asio::error_code ignored;
      if (abort) s->set_option(asio::socket_base::linger(true, 0), ignored);
      s->close(ignored);
    }
    up_.timer.cancel();
    down_.timer.cancel();
    hold_.cancel();
  }

 private:
  struct Pump {
    Pump(asio::io_context& ctx, bool up, std::uint64_t seed)
        : to_server(up), buf(kChunk), timer(ctx), dice(seed) {}
    bool to_server;
    tcp::socket* from = nullptr;
    tcp::socket* to = nullptr;
    std::vector<std::uint8_t> buf;
    std::size_t len = 0, written = 0;
    std::uint64_t position = 0;  // bytes read in this direction
    std::uint64_t flip_at = kNever;
    std::size_t flip_offset = 0;  // in the current chunk
    bool flipped_in_chunk = false;
    bool done = false;
    Clock::time_point free_at{};
    asio::steady_timer timer;
    Dice dice;
  };

  bool idle() const { return closed_ || silent_; }

  void read(Pump& p) {
    if (idle()) return;
    std::size_t want = p.buf.size();
    if (p.to_server) {  // stop exactly where the next event is due
      for (std::uint64_t at : {reset_at_, half_open_at_, stall_at_}) {
        if (at != kNever && at > p.position) want = std::min<std::uint64_t>(want, at - p.position);
      }
    }
    p.from->async_read_some(
        asio::buffer(p.buf.data(), want),
        [self = shared_from_this(), &p](const asio::error_code& ec, std::size_t n) {
          self->on_read(p, ec, n);
        });
  }

  void on_read(Pump& p, const asio::error_code& ec, std::size_t n) {
    if (idle()) return;
    if (ec) {  // the sending side closed: pass the close on once, as a FIN
      asio::error_code ignored;
      p.to->shutdown(tcp::socket::shutdown_send, ignored);
      p.done = true;
      if (up_.done && down_.done) close(false);
      return;
    }
    const std::uint64_t start = p.position;
    p.position += n;
    p.len = n;
    p.written = 0;
    (p.to_server ? stats_.bytes_to_server : stats_.bytes_to_client) += n;
    if (p.flip_at >= start && p.flip_at < p.position) {
      p.flip_offset = p.flip_at - start;
      p.buf[p.flip_offset] ^= static_cast<std::uint8_t>(1u << (p.dice.rng() % 8));
      // One corruption per connection: the peer drops it at that frame, and a second flip in
      // flight the other way could die unread with it, uncounted.
      up_.flip_at = down_.flip_at = kNever;
      p.flipped_in_chunk = true;
      ++stats_.corruptions_injected;
    }
    const auto now = Clock::now();
    Clock::time_point at = now + millis(plan_.latency_ms + plan_.jitter_ms * p.dice.uniform());
    at = std::max(at, p.free_at);
    if (plan_.rate_mbit > 0) at += millis(static_cast<double>(n) * 8.0 / (plan_.rate_mbit * 1e3));
    if (p.to_server && p.position >= stall_at_) {
      ++stats_.stalls;
      at += millis(plan_.stall_ms);
      down_.free_at = std::max(down_.free_at, at);  // the other way stalls too
      stall_at_ = p.position + up_.dice.gap(plan_.stall_mean_bytes);
    }
    p.free_at = at;
    if (at <= now) return write(p);
    p.timer.expires_at(at);
    p.timer.async_wait([self = shared_from_this(), &p](const asio::error_code& e) {
      if (!e) self->write(p);
    });
  }

  void write(Pump& p) {
    if (idle()) return;
    std::size_t n = p.len - p.written;
    if (plan_.max_write > 0) {
      const std::size_t cap = 1 + static_cast<std::size_t>(p.dice.rng() % plan_.max_write);
      if (cap < n) {
        n = cap;
        ++stats_.short_writes;
      }
    }
    p.to->async_write_some(
        asio::buffer(p.buf.data() + p.written, n),
        [self = shared_from_this(), &p](const asio::error_code& ec, std::size_t m) {
          if (self->idle()) return;
          if (ec) return self->close(false);  // the receiving side is gone: end both
          p.written += m;
          if (p.flipped_in_chunk && p.written > p.flip_offset) self->flip_delivered(p);
          if (p.written < p.len) return self->write(p);
          self->after_chunk(p);
        });
  }

  // The flipped byte is in the peer's socket: it must see that frame and refuse it, so no
  // injected reset or silence may overtake it.
  void flip_delivered(Pump& p) {
    p.flipped_in_chunk = false;
    ++stats_.corruptions_forwarded;
    reset_at_ = half_open_at_ = kNever;
  }

  void after_chunk(Pump& p) {
    if (p.to_server && p.position >= reset_at_) {
      ++stats_.resets;
      return close(true);
    }
    if (p.to_server && p.position >= half_open_at_) {
      ++stats_.half_opens;
      silent_ = true;  // nothing more either way; the sockets stay open for a while
      hold_.expires_after(millis(plan_.half_open_hold_ms));
      hold_.async_wait([self = shared_from_this()](const asio::error_code& e) {
        if (!e) {
          self->silent_ = false;
          self->close(false);
        }
      });
      return;
    }
    read(p);
  }

  FaultPlan plan_;
  AtomicStats& stats_;
  tcp::socket client_, server_;
  asio::steady_timer hold_;
  Pump up_, down_;
  std::uint64_t reset_at_ = kNever, half_open_at_ = kNever, stall_at_ = kNever;
  bool closed_ = false, silent_ = false;
};

}  // namespace

struct FaultProxy::Impl {
  asio::io_context ctx;
  tcp::acceptor acceptor{ctx};
  tcp::endpoint target;
  std::mutex mu;
  FaultPlan plan;  // guarded by mu
  AtomicStats stats;
  std::vector<std::weak_ptr<Session>> sessions;  // io thread only
  std::uint64_t next_index = 0;
  std::thread thread;

  void accept() {
    acceptor.async_accept([this](const asio::error_code& ec, tcp::socket s) {
      if (ec) return;  // closed
      FaultPlan p;
      {
        std::lock_guard lock(mu);
        p = plan;
      }
      ++stats.connections;
      auto session = std::make_shared<Session>(ctx, std::move(s), p, next_index++, stats);
      std::erase_if(sessions, [](const std::weak_ptr<Session>& w) { return w.expired(); });
      sessions.push_back(session);
      session->start(target);
      accept();
    });
  }
};

Result<std::unique_ptr<FaultProxy>> FaultProxy::start(const std::string& listen_address,
                                                      std::uint16_t listen_port,
                                                      const std::string& target_host,
                                                      std::uint16_t target_port, FaultPlan plan) {
  auto impl = std::make_unique<Impl>();
  impl->plan = plan;
  asio::error_code ec;
  tcp::resolver resolver(impl->ctx);
  auto targets = resolver.resolve(target_host, std::to_string(target_port), ec);
  if (ec || targets.empty()) {
    return make_error(ErrorCode::kConnectFailed,
                      "fault proxy: cannot resolve " + target_host + ": " + ec.message());
  }
  impl->target = *targets.begin();
  const auto address = asio::ip::make_address(listen_address, ec);
  if (ec)
    return make_error(ErrorCode::kInvalidArgument, "fault proxy: bad address " + listen_address);
  const tcp::endpoint local(address, listen_port);
  impl->acceptor.open(local.protocol(), ec);
  if (!ec) impl->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) impl->acceptor.bind(local, ec);
  if (!ec) impl->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return make_error(
        ec == asio::error::address_in_use ? ErrorCode::kAddressInUse : ErrorCode::kNetworkError,
        "fault proxy: cannot listen on " + listen_address + ":" + std::to_string(listen_port) +
            ": " + ec.message());
  }
  impl->accept();
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] { raw->ctx.run(); });
  return std::unique_ptr<FaultProxy>(new FaultProxy(std::move(impl)));
}

FaultProxy::FaultProxy(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

FaultProxy::~FaultProxy() {
  asio::post(impl_->ctx, [impl = impl_.get()] {
    asio::error_code ignored;
    impl->acceptor.close(ignored);
    for (auto& w : impl->sessions) {
      if (auto s = w.lock()) s->close(false);
    }
  });
  impl_->thread.join();  // run() returns once no handler is left
}

std::uint16_t FaultProxy::port() const {
  asio::error_code ec;
  return impl_->acceptor.local_endpoint(ec).port();
}

FaultStats FaultProxy::stats() const {
  const AtomicStats& a = impl_->stats;
  return {a.connections,           a.bytes_to_server, a.bytes_to_client, a.corruptions_injected,
          a.corruptions_forwarded, a.resets,          a.stalls,          a.half_opens,
          a.short_writes,          a.refused};
}

void FaultProxy::set_plan(const FaultPlan& plan) {
  std::lock_guard lock(impl_->mu);
  impl_->plan = plan;
}

}  // namespace agp::support
