// Link's public API (link.hpp) over Link::Impl: connect, post and send with their encoders,
// receive, acknowledge, close. The session itself is in link_session.cpp, link_streams.cpp and
// link_inbox.cpp.
#include <algorithm>
#include <cstring>

#include "auth.hpp"
#include "handshake.hpp"
#include "link_impl.hpp"
#include "log.hpp"

namespace agp::transport {

using detail::Clock;

namespace {

// Encode and decode helpers wait this long for the next packet before sleeping: a spinning helper
// would take a core from the rest of the host between packets.
constexpr int kHelperSpinMicros = 200;

std::uint64_t wall_clock_ns() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

bool same_codec(const ptp::PacketCodec& a, const ptp::PacketCodec& b) {
  return a.config.id == b.config.id && a.config.bits == b.config.bits &&
         a.config.norm_dtype == b.config.norm_dtype && a.config.seed == b.config.seed &&
         a.config.raw_dtype == b.config.raw_dtype && a.ec.bits_per_value == b.ec.bits_per_value &&
         a.ec.fixed_bits == b.ec.fixed_bits && a.ec.reserved_bytes == b.ec.reserved_bytes &&
         a.ec.seed == b.ec.seed && a.ec.zstd_level == b.ec.zstd_level;
}

}  // namespace

Link::Impl::Encoder& Link::Impl::encoder_for(const ptp::PacketCodec& codec) {
  auto hit = std::find_if(encoders.begin(), encoders.end(),
                          [&](const Encoder& e) { return same_codec(e.codec, codec); });
  if (hit != encoders.end()) {
    std::rotate(encoders.begin(), hit, hit + 1);
    return encoders.front();
  }
  const int threads = std::clamp<int>(opts.encode_threads, 1, detail::kMaxEncodeThreads);
  if (threads > 1 &&
      !encode_pool) {  // started at the first packet: a receiving end never starts them
    encode_pool = std::make_unique<codec::ThreadPool>(threads, kHelperSpinMicros);
  }
  if (encoders.size() == kKeptEncoders) encoders.pop_back();
  std::string name = ptp::packet_codec_name(ptp::describe_codec(codec, 0));
  Encoder e{codec, {}, &latencies[name.empty() ? "other" : name]};
  for (int i = 0; i < threads; ++i) e.writers.emplace_back(codec, opts.limits);
  encoders.insert(encoders.begin(), std::move(e));
  return encoders.front();
}

Link::Link(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {
  impl_->loop->hold();
}

Link::~Link() {
  if (!impl_) return;
  const std::shared_ptr<detail::EventLoop> loop = impl_->loop;
  {
    detail::EventLoop::Call call(*loop);
    // A link dropped without close(): the peer is told at once that the session is over (it
    // would otherwise wait out its reconnect limit for a peer that never returns).
    Impl& m = *impl_;
    if (!m.vanish && !m.ended()) {
      m.abort(make_error(ErrorCode::kAborted,
                         "the peer dropped the link without closing it" +
                             (m.unacked.empty() ? std::string()
                                                : " (" + std::to_string(m.unacked.size()) +
                                                      " packets unacknowledged)")));
    }
  }
  loop->release_and_drop(impl_);  // the keeper stops when this was the loop's last holder
}

Result<std::unique_ptr<Link>> Link::connect(const std::string& host, std::uint16_t port,
                                            const LinkOptions& options) {
  AGP_RETURN_IF_ERROR(validate(options));
  auto impl = std::make_shared<Impl>(
      std::make_shared<detail::EventLoop>(
          detail::keeper_grace(options.heartbeat_interval, options.dead_peer_timeout)),
      Impl::Role::kClient, options);
  auto backend = detail::make_backend(*impl->ctx, impl->opts);
  if (!backend) return backend.status();
  impl->backend = std::move(backend).value();
  auto sid = detail::random_u64();
  if (!sid) return sid.status();
  impl->session_id = *sid;
  impl->host = host;
  impl->port = port;
  impl->start_connect();
  impl->schedule_tick();
  const auto until = Clock::now() + options.connect_timeout + options.handshake_timeout;
  const Status up =
      impl->wait([&] { return impl->state == Impl::State::kUp && impl->handed_over(); }, until, "connect");
  if (!up) {
    detail::log(LogLevel::kWarning, "handshake_failed",
                "connecting to " + host + ":" + std::to_string(port) + " failed: " + up.to_string());
    return up;
  }
  return std::unique_ptr<Link>(new Link(std::move(impl)));
}

Result<std::uint64_t> Link::post(const codec::TensorView& tensor, const ptp::PacketCodec& codec,
                                 const PacketMeta& meta, Millis timeout,
                                 std::shared_ptr<const void> keep_alive) {
  detail::EventLoop::Call call(*impl_->loop);
  Impl& m = *impl_;
  AGP_RETURN_IF_ERROR(m.usable());
  AGP_RETURN_IF_ERROR(tensor.validate());
  const auto until = Clock::now() + timeout;
  const CodecId id = codec.config.id;
  ptp::HelloDesc peer_caps;
  peer_caps.codecs = m.info.peer_codecs;
  if (m.ever_up && !detail::peer_supports(peer_caps, id, 0)) {
    return make_error(ErrorCode::kCapabilityMismatch,
                      "the peer cannot decode " + std::string(codec_name(id)));
  }
  std::uint64_t original = dtype_size(tensor.dtype);
  for (std::uint64_t d : tensor.shape) original *= d;
  // Room in the window (one packet always fits, however large).
  AGP_RETURN_IF_ERROR(m.wait(
      [&] {
        return m.unacked.empty() || (m.unacked.size() < m.opts.window_packets &&
                                     m.unacked_bytes + original <= m.opts.window_bytes);
      },
      until, "post: waiting for room in the send window"));
  AGP_RETURN_IF_ERROR(m.usable());

  Impl::Encoder& enc = m.encoder_for(codec);
  const std::uint64_t vectors = tensor.vector_count();
  const std::uint64_t per_chunk = m.opts.chunk_vectors;
  const bool chunked = per_chunk > 0 && vectors > per_chunk && m.info.peer_chunking &&
                       ptp::TensorPacketWriter::chunkable(id);
  const auto chunks =
      static_cast<std::uint32_t>(chunked ? (vectors + per_chunk - 1) / per_chunk : 1);

  Impl::Pending p;
  p.seq = m.next_seq++;
  p.chunks = chunks;
  p.posted = Clock::now();
  p.transmissions = m.state == Impl::State::kUp ? 1 : 0;
  p.latencies = enc.latencies;
  const std::uint64_t seq = p.seq;
  m.unacked.push_back(std::move(p));
  ++m.counters.packets_sent;
  // Acks arriving between chunks pop older packets, so find ours by its number (unacked packets
  // are consecutive, and an ack of ours before its last chunk is out ends the link: on_ack).
  auto mine = [&]() -> Impl::Pending& { return m.unacked[seq - m.unacked.front().seq]; };

  ptp::MessageHeader h = detail::base_header(m.opts, ptp::MessageKind::kTensorPacket);
  h.stream_id = meta.stream_id;
  h.sequence = seq;
  h.tensor = ptp::TensorDesc{meta.name, tensor.dtype, tensor.shape, meta.layout,
                             static_cast<std::uint8_t>(tensor.vector_axis)};
  // Hands chunk k, built and timed, to the packet's frames and the wire.
  auto ship = [&](std::uint32_t k, Result<ptp::GatherList>& built,
                  std::shared_ptr<const void> owner, double encode_us) -> Status {
    // Polling between chunks may have ended the link (a peer that acknowledged too early). A bye
    // that follows the peer's ack of this very packet is no failure: that is checked later.
    if (m.state == Impl::State::kFailed) return m.failure_;
    if (!built) {
      // Nothing of this packet may go out half-made: take it back (it is the newest).
      if (k == 0 || mine().transmissions == 0) {
        m.unacked_bytes -= mine().bytes;
        m.unacked.pop_back();
        --m.next_seq;
        --m.counters.packets_sent;
        return built.status();
      }
      // Some chunks are already on the wire; the peer would wait for the rest forever.
      m.fail(built.status());
      return built.status();
    }
    std::vector<std::span<const std::byte>> referenced;
    for (std::size_t i = 1; i < built->pieces.size(); ++i) {
      // Section buffers (large) are referenced; prefix, header and padding are copied.
      if (built->pieces[i].size() >= 64) referenced.push_back(built->pieces[i]);
    }
    if (id == CodecId::kRaw) {
      if (keep_alive) {
        owner = keep_alive;
      } else {
        referenced.clear();  // copy the tensor's bytes: the caller's memory may change
      }
    }
    auto frame = detail::freeze(*built, referenced, std::move(owner));
    Impl::Pending& p_now = mine();
    p_now.bytes += frame->bytes;
    m.unacked_bytes += frame->bytes;
    p_now.encode_us += encode_us;
    p_now.frames.push_back(frame);
    detail::Channel* stream = m.stream_for(k);
    if (m.state == Impl::State::kUp && stream && p_now.transmissions > 0) {
      stream->send(frame);
      ++m.counters.frames_sent;
    }
    if (k + 1 == chunks) m.sent_upto = seq;
    // Let the socket take what it could not take at once while we encode the next chunk or the
    // caller makes the next packet, and take in acknowledgements: without this a stream of posts
    // that find room in the window leaves the rest of each frame unsent until the next wait.
    m.ctx->restart();
    m.ctx->poll();
    return m.state == Impl::State::kFailed ? m.failure_ : Status();
  };
  auto chunk_desc = [&](std::uint32_t k) {
    return ptp::ChunkDesc{k, chunks, k * per_chunk, std::min(per_chunk, vectors - k * per_chunk)};
  };

  const std::size_t threads = enc.writers.size();
  if (chunked && threads > 1) {
    // Chunks in rounds of `threads`, one writer each; a round goes out while the next is encoded
    // only in the kernel's time, so the wire sees chunks about `threads` times as often.
    std::vector<Result<ptp::GatherList>> built(threads, Result<ptp::GatherList>(ptp::GatherList{}));
    std::vector<std::shared_ptr<const void>> owners(threads);
    for (std::uint32_t first = 0; first < chunks; first += static_cast<std::uint32_t>(threads)) {
      const std::size_t n = std::min<std::size_t>(threads, chunks - first);
      const auto t0 = Clock::now();
      m.encode_pool->run(n, [&](std::size_t i) {
        const auto k = static_cast<std::uint32_t>(first + i);
        ptp::MessageHeader hk = h;
        hk.timestamp_ns = wall_clock_ns();
        built[i] = enc.writers[i].write_chunk(tensor, std::move(hk), meta.layout, chunk_desc(k));
        owners[i] = built[i] ? enc.writers[i].release_buffers() : nullptr;
      });
      const double round_us = micros_since(t0) / static_cast<double>(n);
      for (std::size_t i = 0; i < n; ++i) {
        AGP_RETURN_IF_ERROR(
            ship(static_cast<std::uint32_t>(first + i), built[i], std::move(owners[i]), round_us));
      }
    }
    return h.sequence;
  }
  for (std::uint32_t k = 0; k < chunks; ++k) {
    const auto t0 = Clock::now();
    h.timestamp_ns = wall_clock_ns();
    Result<ptp::GatherList> built =
        chunked ? enc.writers[0].write_chunk(tensor, h, meta.layout, chunk_desc(k))
                : enc.writers[0].write(tensor, h, meta.layout);
    std::shared_ptr<const void> owner = built ? enc.writers[0].release_buffers() : nullptr;
    AGP_RETURN_IF_ERROR(ship(k, built, std::move(owner), micros_since(t0)));
  }
  return h.sequence;
}

Result<Receipt> Link::wait_acked(std::uint64_t sequence, Millis timeout) {
  detail::EventLoop::Call call(*impl_->loop);
  Impl& m = *impl_;
  if (sequence == 0 || sequence >= m.next_seq) {
    return make_error(ErrorCode::kInvalidArgument,
                      "packet " + std::to_string(sequence) + " was never posted");
  }
  AGP_RETURN_IF_ERROR(m.wait([&] { return m.acked_upto >= sequence || m.ended(); },
                             Clock::now() + timeout, "waiting for the acknowledgement"));
  if (m.acked_upto < sequence) return m.lost_status();
  Receipt r;
  r.sequence = sequence;
  if (auto it = m.receipts.find(sequence); it != m.receipts.end()) {
    r = it->second;
    m.receipts.erase(it);
  }
  return r;
}

Result<Receipt> Link::send(const codec::TensorView& tensor, const ptp::PacketCodec& codec,
                           const PacketMeta& meta, Millis timeout) {
  detail::EventLoop::Call call(*impl_->loop);
  const auto until = Clock::now() + timeout;
  // The caller waits for the acknowledgement, so raw bytes can be referenced, not copied.
  std::shared_ptr<const void> borrowed(tensor.data, [](const void*) {});
  auto seq = post(tensor, codec, meta, timeout, borrowed);
  if (!seq) return seq.status();
  const auto left = std::chrono::duration_cast<Millis>(until - Clock::now());
  auto r = wait_acked(*seq, std::max(left, Millis(0)));
  if (!r && r.status().code() == ErrorCode::kTimeout) {
    // The packet stays queued and may still be delivered; its memory must not be referenced.
    for (auto& p : impl_->unacked) {
      if (p.seq == *seq) {
        for (auto& f : p.frames) {
          if (f->keep_alive == borrowed) {
            auto copy = detail::freeze(ptp::GatherList{f->pieces, f->bytes}, {}, nullptr);
            f = copy;
          }
        }
      }
    }
  }
  return r;
}

Status Link::flush(Millis timeout) {
  detail::EventLoop::Call call(*impl_->loop);
  Impl& m = *impl_;
  if (m.state == Impl::State::kFailed) return m.failure_;
  AGP_RETURN_IF_ERROR(m.wait([&] { return m.unacked.empty() || m.ended(); },
                             Clock::now() + timeout, "flush"));
  return m.unacked.empty() ? Status() : m.lost_status();
}

Result<ptp::MessageHeader> Link::next_packet(Millis timeout) {
  detail::EventLoop::Call call(*impl_->loop);
  Impl& m = *impl_;
  AGP_RETURN_IF_ERROR(m.wait([&] { return m.announced() || m.ended() || m.peer_said_bye; },
                             Clock::now() + timeout, "waiting for a packet"));
  Impl::InPacket* p = m.announced();
  if (!p && m.state == Impl::State::kFailed) return m.failure_;
  if (!p) return make_error(ErrorCode::kConnectionClosed, "the peer closed the link");
  return *p->header;
}

Status Link::Impl::decode_chunks(InPacket& p, const std::vector<std::uint32_t>& indices,
                                 const codec::TensorView& out) {
  const int threads = std::clamp<int>(opts.decode_threads, 1, detail::kMaxDecodeThreads);
  if (threads > 1 && !decode_pool) {
    decode_pool = std::make_unique<codec::ThreadPool>(threads, kHelperSpinMicros);
    decode_readers.resize(static_cast<std::size_t>(threads - 1));
    for (auto& r : decode_readers) r.set_calibration(opts.calibration);
  }
  std::vector<Status> results(indices.size());
  auto decode = [&](ptp::TensorPacketReader& r, std::size_t i, codec::ThreadPool* pool) {
    const InChunk& c = p.chunks.at(indices[i]);
    results[i] = r.read(c.frame.header(), c.frame.body(), out, pool);
  };
  const auto t0 = Clock::now();
  if (!decode_pool || indices.size() == 1) {
    // One chunk (or a whole packet): the pool, if any, splits its vectors.
    for (std::size_t i = 0; i < indices.size(); ++i) decode(reader, i, decode_pool.get());
  } else {
    // Chunks dealt to `slots` tasks, each with its own reader (a reader keeps codec state).
    const std::size_t slots = std::min<std::size_t>(static_cast<std::size_t>(threads), indices.size());
    decode_pool->run(slots, [&](std::size_t slot) {
      ptp::TensorPacketReader& r = slot == 0 ? reader : decode_readers[slot - 1];
      for (std::size_t i = slot; i < indices.size(); i += slots) decode(r, i, nullptr);
    });
  }
  p.decode_us += micros_since(t0);
  for (std::uint32_t index : indices) p.chunks.at(index).decoded = true;
  for (std::size_t i = 0; i < indices.size(); ++i) {
    if (!results[i]) {
      return Status(results[i].code(), "packet " + std::to_string(p.seq) + " chunk " +
                                           std::to_string(indices[i]) + " cannot be decoded: " +
                                           results[i].message());
    }
  }
  return {};
}

Result<Delivery> Link::receive(codec::TensorView out, Millis timeout,
                               std::vector<ptp::Frame>* frames) {
  detail::EventLoop::Call call(*impl_->loop);
  Impl& m = *impl_;
  const auto until = Clock::now() + timeout;
  for (;;) {
    if (m.state == Impl::State::kFailed) return m.failure_;
    Impl::InPacket* due = m.due();
    if (!due) {
      if (m.state == Impl::State::kClosed || m.peer_said_bye) {
        return make_error(ErrorCode::kConnectionClosed, "the peer closed the link");
      }
      AGP_RETURN_IF_ERROR(
          m.wait([&] { return m.due() || m.state == Impl::State::kClosed; }, until, "receive"));
      continue;
    }
    Impl::InPacket& p = *due;
    if (out.shape != p.header->tensor->shape) {
      return make_error(ErrorCode::kInvalidArgument,
                        "the output buffer's shape differs from packet " + std::to_string(p.seq) +
                            "'s tensor (see next_packet())");
    }
    out.vector_axis = p.header->tensor->vector_axis;
    // The caller's buffer is checked first: its mistakes leave the packet queued.
    AGP_RETURN_IF_ERROR(out.validate());
    if (p.decoded_into != out.data || p.decoded_dtype != out.dtype ||
        p.decoded_strides != out.strides) {  // a new buffer: start over
      p.to_decode.clear();
      for (auto& [index, c] : p.chunks) {
        c.decoded = false;
        p.to_decode.push_back(index);
      }
      p.decode_us = 0;
      p.decoded_into = out.data;
      p.decoded_dtype = out.dtype;
      p.decoded_strides = out.strides;
    }
    // Whatever arrived since the last pass, in any order (no rescan of decoded chunks: a packet
    // of many small chunks stays linear in their number).
    std::vector<std::uint32_t> batch;
    batch.swap(p.to_decode);
    std::erase_if(batch, [&](std::uint32_t index) { return p.chunks[index].decoded; });
    if (!batch.empty()) {
      if (Status s = m.decode_chunks(p, batch, out); !s) {
        // Verified, yet not decodable (NaN norms, a corrupt zstd frame, ...): never acknowledged.
        m.refuse(s);
        return s;
      }
    }
    if (p.complete()) {
      Delivery d;
      d.header = *p.header;
      d.wire_bytes = p.wire_bytes;
      d.chunks = p.expected_chunks;
      d.decode_us = p.decode_us;
      if (p.header->codec) {
        const std::string name = ptp::packet_codec_name(*p.header->codec);
        m.latencies[name.empty() ? "other" : name].decode_us.record(p.decode_us);
      }
      if (frames) {
        frames->clear();
        for (auto& [index, c] : p.chunks) frames->push_back(std::move(c.frame));
      } else if (m.conn) {
        for (auto& [index, c] : p.chunks) m.conn->recycle(c.frame.release_body());
      }
      m.delivered = p.seq;
      m.inbox_bytes -= p.wire_bytes;
      m.inbox.erase(p.seq);
      ++m.counters.packets_delivered;
      if (m.opts.ack_on_receive) m.send_ack();
      m.pause_or_resume_reading();
      return d;
    }
    const std::uint64_t seq = p.seq;
    const std::size_t have = p.received();
    AGP_RETURN_IF_ERROR(m.wait(
        [&] {
          const Impl::InPacket* q = m.due();
          return !q || q->seq != seq || q->received() != have;
        },
        until, "receive"));
  }
}

Status Link::acknowledge() {
  detail::EventLoop::Call call(*impl_->loop);
  Impl& m = *impl_;
  if (m.state == Impl::State::kFailed) return m.failure_;
  if (m.state == Impl::State::kUp) m.send_ack();  // a later reconnect's hello carries it anyway
  return {};
}

void Link::set_handlers(Handlers handlers) {
  detail::EventLoop::Call call(*impl_->loop);
  impl_->handlers = std::move(handlers);
}

std::size_t Link::poll() {
  detail::EventLoop::Call call(*impl_->loop);
  const std::size_t before = impl_->deferred.size();
  impl_->run_deferred();
  impl_->ctx->restart();
  const std::size_t ran = impl_->ctx->poll();
  impl_->run_deferred();
  return ran + before;
}

std::size_t Link::wait_event(Millis timeout) {
  detail::EventLoop::Call call(*impl_->loop);
  impl_->run_deferred();
  impl_->ctx->restart();
  const std::size_t ran = impl_->ctx->run_one_for(timeout);
  impl_->run_deferred();
  return ran;
}

void Link::wake() {
  asio::post(*impl_->ctx, [] {});
}

void Link::run_for(Millis duration) {
  detail::EventLoop::Call call(*impl_->loop);
  Impl& m = *impl_;
  (void)m.wait([] { return false; }, Clock::now() + duration, "run");
}

Status Link::close(Millis timeout) {
  detail::EventLoop::Call call(*impl_->loop);
  Impl& m = *impl_;
  if (m.state == Impl::State::kFailed) return m.failure_;
  if (m.state == Impl::State::kClosed) return m.unacked.empty() ? Status() : m.lost_status();
  const auto until = Clock::now() + timeout;
  const Status drained = m.wait([&] { return m.unacked.empty() || m.ended(); }, until, "close");
  if (m.state == Impl::State::kFailed) return m.failure_;
  if (!m.unacked.empty() && m.state != Impl::State::kClosed) {
    // Nothing is given up behind the caller's back: the link stays open and keeps delivering.
    (void)drained;
    return make_error(ErrorCode::kTimeout,
                      "close: " + m.unacked_text() + " not acknowledged within " +
                          std::to_string(timeout.count()) +
                          " ms; the link stays open and keeps sending them (close again to wait "
                          "longer, or drop the Link to abandon them: the peer is told)");
  }
  if (!m.we_said_bye && m.state != Impl::State::kClosed) {
    // Everything is acknowledged; say goodbye so the peer ends cleanly rather than waiting out
    // its deadline. A link between connections gets the rest of the deadline to come back.
    (void)m.wait([&] { return m.state == Impl::State::kUp || m.ended(); }, until, "close");
    if (m.state == Impl::State::kUp) {
      m.we_said_bye = true;
      m.state = Impl::State::kClosing;
      m.send_control(detail::base_header(m.opts, ptp::MessageKind::kBye));
      (void)m.wait([&] { return m.state == Impl::State::kClosed || !m.conn; }, until, "close");
    } else if (m.state != Impl::State::kClosed) {
      detail::log(LogLevel::kWarning, "close_unannounced",
                  "closed with every packet acknowledged, but the peer could not be told "
                  "goodbye (not connected)");
    }
  }
  const Status result =
      m.state == Impl::State::kFailed ? m.failure_
                                      : (m.unacked.empty() ? Status() : m.lost_status());
  if (auto c = m.release_connection()) c->close();
  m.close_extras();
  if (m.dialing) {
    m.dialing->cancel();
    m.dialing.reset();
  }
  m.we_said_bye = true;
  if (m.state != Impl::State::kFailed) m.state = Impl::State::kClosed;
  m.info.connected = false;
  m.tick.cancel();
  return result;
}

void Link::abort(const Status& reason) {
  detail::EventLoop::Call call(*impl_->loop);
  impl_->abort(reason.is_ok() ? make_error(ErrorCode::kAborted, "the peer aborted the link")
                              : Status(ErrorCode::kAborted, reason.message()));
}

Status Link::failure() const {
  detail::EventLoop::Call call(*impl_->loop);
  return impl_->state == Impl::State::kFailed ? impl_->failure_ : Status();
}

bool Link::connected() const {
  detail::EventLoop::Call call(*impl_->loop);
  return impl_->state == Impl::State::kUp;
}

Counters Link::counters() const {
  detail::EventLoop::Call call(*impl_->loop);
  const Impl& m = *impl_;
  Counters c = m.counters;
  c.bytes_received = m.closed_bytes_in + (m.conn ? m.conn->bytes_read() : 0);
  c.bytes_sent = m.closed_bytes_out + (m.conn ? m.conn->bytes_written() : 0);
  c.unacked_packets = m.unacked.size();
  c.unacked_bytes = m.unacked_bytes;
  return c;
}

void Link::restart_receive() {
  detail::EventLoop::Call call(*impl_->loop);
  if (Impl::InPacket* p = impl_->due()) p->decoded_into = nullptr;
}

LinkMetrics Link::metrics() const {
  detail::EventLoop::Call call(*impl_->loop);
  return LinkMetrics{counters(), impl_->latencies};
}

LinkInfo Link::info() const {
  detail::EventLoop::Call call(*impl_->loop);
  return impl_->info;
}

}  // namespace agp::transport
