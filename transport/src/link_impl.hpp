// The state behind Link and Server (internal; see link.hpp for the behaviour).
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "agp/codec/thread_pool.hpp"
#include "agp/ptp/frame_builder.hpp"
#include "agp/ptp/tensor_packet.hpp"
#include "agp/transport/link.hpp"
#include "asio_util.hpp"
#include "client_handshake.hpp"
#include "event_loop.hpp"
#include "backend.hpp"
#include "tcp_channel.hpp"
#include "server_handshake.hpp"

namespace agp::transport {

inline double micros_since(detail::Clock::time_point t0) {
  return std::chrono::duration<double, std::micro>(detail::Clock::now() - t0).count();
}

struct Link::Impl : std::enable_shared_from_this<Link::Impl> {
  enum class Role { kClient, kServer };
  enum class State {
    kConnecting,
    kHandshaking,
    kUp,
    kDown,
    kClosing,
    kClosed,
    kFailed
  };

  // A packet posted here and not yet acknowledged: its frames stay for resending.
  struct Pending {
    std::uint64_t seq = 0;
    std::vector<std::shared_ptr<detail::OutgoingFrame>> frames;
    std::uint64_t bytes = 0;
    std::uint32_t chunks = 1;
    detail::Clock::time_point posted;
    double encode_us = 0;
    std::uint32_t transmissions = 0;
    CodecLatencies* latencies = nullptr;  // of the packet's codec, in Impl::latencies
  };
  // A packet of the peer's arriving here: its verified frames by chunk index (chunks may come in
  // any order when striped over several connections), decoded into the caller's buffer one by one
  // in receive(). Chunk ranges are checked as they arrive: they never overlap, so what a packet
  // holds is never more than its tensor's encoding.
  struct InChunk {
    ptp::Frame frame;
    bool decoded = false;
  };
  struct InPacket {
    std::uint64_t seq = 0;
    std::uint32_t expected_chunks = 0;
    std::uint64_t vectors = 0;  // of the whole tensor
    std::uint64_t covered = 0;  // vectors in the chunks received
    std::optional<ptp::MessageHeader> header;  // chunk 0's, else the first to arrive
    std::map<std::uint32_t, InChunk> chunks;
    std::vector<std::uint32_t> to_decode;  // arrived, not yet decoded into decoded_into
    std::map<std::uint64_t, std::uint64_t> ranges;  // vector offset -> count, disjoint
    std::uint64_t wire_bytes = 0;
    const std::byte* decoded_into = nullptr;  // the buffer decoded into so far, as seen then
    DType decoded_dtype = DType::kUnknown;
    std::vector<std::int64_t> decoded_strides;
    double decode_us = 0;
    detail::Clock::time_point last_arrival;  // of its latest chunk (stall warnings)
    std::size_t received() const { return chunks.size(); }
    bool complete() const { return expected_chunks > 0 && chunks.size() == expected_chunks; }
  };

  Impl(std::shared_ptr<detail::EventLoop> event_loop, Role r, LinkOptions o);
  ~Impl();

  // --- connection life
  void start_connect();  // client: dial, then hello
  void on_connected(Result<std::shared_ptr<detail::Channel>> channel);
  void attach(std::shared_ptr<detail::Channel> c);  // route a connection's events here
  void on_frame(const detail::Channel* from, ptp::Frame&& frame);
  void on_connection_failure(const detail::Channel* from, const Status& why);
  void on_handshake_frame(const ptp::MessageHeader& h);
  // Both roles: the handshake passed; resume from the peer's positions.
  // `restart_at`: where this end's record of the peer's stream restarts (a peer or a session this
  // end did not know); nullopt keeps it.
  void become_up(const ptp::HelloDesc& peer, std::uint64_t peer_delivered,
                 std::optional<std::uint64_t> restart_at);
  void connection_lost(const Status& why);
  void fail(const Status& why);
  void tell_and_fail(const Status& why);
  // Ends the link now, telling the peer why (kAborted): a host that failed, or a Link dropped
  // without close().
  void abort(const Status& why);
  // Closed or failed: nothing more will be acknowledged.
  bool ended() const { return state == State::kClosed || state == State::kFailed; }
  // "3 packets (5..7)": the unacknowledged ones, for messages.
  std::string unacked_text() const;
  // Why unacknowledged packets will never be acknowledged (the link closed or failed under them).
  Status lost_status() const;
  // Takes the connection out of the link (its byte counts stay counted); events from it are
  // ignored from then on.
  std::shared_ptr<detail::Channel> release_connection();
  // The handshake's frames have all been handed to the transport. A link is given to the
  // application only then: a transport that moves bytes only while its loop runs (UCX) would
  // otherwise keep the handshake's last frame while the application does something else. Once
  // true it stays true: heartbeats queued behind a peer that stopped reading later must not keep
  // an admitted link from accept() (it would hold a waiting slot for ever).
  bool handed_over() {
    if (!handshake_left_ && (!conn || conn->queued_frames() == 0)) handshake_left_ = true;
    return handshake_left_;
  }
  bool handshake_left_ = false;
  void schedule_tick();
  void on_tick();

  // --- extra streams (LinkOptions::streams > 1)
  struct Joining {
    std::uint16_t index = 0;
    std::shared_ptr<detail::Dial> dial;  // while connecting
    std::shared_ptr<detail::Channel> conn;
    std::optional<detail::ClientHandshake> handshake;
    detail::Clock::time_point deadline;
  };
  std::uint16_t wanted_streams() const;
  void open_extra_streams();  // client: dial the missing ones
  void start_join(std::uint16_t index);
  void on_join_connected(std::uint16_t index, Result<std::shared_ptr<detail::Channel>> channel);
  void on_join_frame(std::uint16_t index, ptp::Frame&& frame);
  void drop_join(std::uint16_t index);
  // Both sides: a verified extra connection becomes stream `index`.
  void attach_extra(std::uint16_t index, std::shared_ptr<detail::Channel> c);
  void on_extra_frame(const detail::Channel* from, ptp::Frame&& frame);
  void close_extras();
  // The connection for chunk k of a packet: striped over the streams that are up.
  detail::Channel* stream_for(std::uint32_t chunk) const;

  // --- data
  void on_tensor_frame(ptp::Frame&& frame);
  // The peer sent a frame that breaks the protocol or a packet that cannot be decoded: tell it
  // why and end the link (resending would fail the same way).
  void refuse(const Status& why);
  void on_ack(std::uint64_t cumulative);
  void send_control(ptp::MessageHeader h, bool urgent = true);
  void send_ack();
  Status usable() const;

  Status wait(const std::function<bool()>& done, detail::Clock::time_point deadline,
              const char* what);

  std::shared_ptr<detail::EventLoop> loop;  // first: destroyed last
  std::shared_ptr<asio::io_context> ctx;    // the loop's
  std::shared_ptr<Server::Impl> server;     // server links: keeps the shared context alive
  Role role;
  LinkOptions opts;
  std::unique_ptr<detail::Backend> backend;  // dials (client links); after opts, which it reads
  State state = State::kConnecting;
  Status failure_;
  std::uint64_t session_id = 0;
  std::string host;
  std::uint16_t port = 0;
  std::shared_ptr<detail::Channel> conn;
  std::shared_ptr<detail::Channel> telling;  // released, its error frame still to go out
  std::vector<std::shared_ptr<detail::Channel>> extra;  // stream k at extra[k - 1]
  std::vector<Joining> joining;
  std::uint16_t peer_max_streams = 1;
  asio::steady_timer tick;
  ptp::FrameBuilder control;
  Handlers handlers;
  // Handlers due while the keeper ran the loop: they run in the application's next call, on its
  // thread (handlers never run on the keeper).
  std::vector<std::function<void()>> deferred;
  void notify(std::function<void()> fn);
  void run_deferred();
  Counters counters;
  std::map<std::string, CodecLatencies> latencies;  // by codec short name; nodes never move
  std::uint64_t closed_bytes_in = 0;
  std::uint64_t closed_bytes_out = 0;
  LinkInfo info;
  bool ever_up = false;
  bool accepted = true;  // server links: false until Server::accept hands them out
  bool peer_said_bye = false;
  bool vanish = false;  // tests (LinkTesting): dropped as by a crash, the peer not told
  bool we_said_bye = false;
  // Stall warnings go out once per packet: the last packets warned about.
  std::uint64_t send_stall_warned = 0;
  std::uint64_t receive_stall_warned = 0;
  void warn_if_stalled(detail::Clock::time_point now);

  // handshake (client side)
  std::optional<detail::ClientHandshake> handshake;
  detail::Clock::time_point deadline;  // of the current connect or handshake
  std::shared_ptr<detail::Dial> dialing;

  // reconnect (client side) and give-up (both)
  Millis backoff{0};
  detail::Clock::time_point next_attempt;
  detail::Clock::time_point down_since;

  // outgoing
  std::deque<Pending> unacked;
  std::uint64_t unacked_bytes = 0;
  std::uint64_t next_seq = 1;
  std::uint64_t acked_upto = 0;
  std::uint64_t sent_upto = 0;  // the last packet whose every frame was handed to the wire
  std::map<std::uint64_t, Receipt> receipts;  // acknowledged, not yet collected (bounded)
  // Writers of the last few codecs posted, most recently used first (a stream that alternates
  // codecs keeps its codecs and warm buffers). Each has one writer per encode thread.
  struct Encoder {
    ptp::PacketCodec codec;
    std::vector<ptp::TensorPacketWriter> writers;
    CodecLatencies* latencies = nullptr;  // in Impl::latencies, by the codec's short name
  };
  static constexpr std::size_t kKeptEncoders = 4;
  std::vector<Encoder> encoders;
  Encoder& encoder_for(const ptp::PacketCodec& codec);
  std::unique_ptr<codec::ThreadPool> encode_pool;  // with encode_threads > 1

  ptp::TensorPacketReader reader;  // keeps the codec from chunk to chunk
  // With decode_threads > 1 (started at the first packet received): the pool and a reader for
  // each thread beyond the caller's.
  std::unique_ptr<codec::ThreadPool> decode_pool;
  std::vector<ptp::TensorPacketReader> decode_readers;
  // Decodes chunks `indices` of `p` into `out` (side by side on the decode pool); the first
  // failure names its chunk. Every chunk handed in is marked decoded either way.
  Status decode_chunks(InPacket& p, const std::vector<std::uint32_t>& indices,
                       const codec::TensorView& out);
  // incoming: packets by sequence, from delivered + 1 on
  std::map<std::uint64_t, InPacket> inbox;
  std::uint64_t inbox_bytes = 0;  // frames held in the inbox (LinkOptions::receive_buffer_bytes)
  void clear_inbox();
  // The packet due next, if any of it has arrived.
  InPacket* due();
  // The packet due next once enough of it has arrived to justify its tensor's size (or all of
  // it): a host sizes its buffer from the header, so a peer cannot make it allocate more than
  // DecoderLimits::max_expansion times the bytes it actually sent.
  InPacket* announced();
  void pause_or_resume_reading();
  std::uint64_t delivered = 0;  // highest peer sequence handed to the application
};

struct Server::Impl : std::enable_shared_from_this<Server::Impl>, detail::SessionDirectory {
  // A connection that has not finished its handshake yet.
  struct Pending {
    std::shared_ptr<detail::Channel> conn;
    detail::Clock::time_point deadline;
    detail::ServerHandshake handshake;
  };

  Impl(std::shared_ptr<detail::EventLoop> event_loop, LinkOptions o);
  void on_accepted(std::shared_ptr<detail::Channel> c);
  void on_pending_frame(const std::shared_ptr<detail::Channel>& c, ptp::Frame&& frame);
  void reject(const std::shared_ptr<detail::Channel>& c, const Status& why);
  void admit(const std::shared_ptr<detail::Channel>& c, const detail::ServerHandshake::Step& step);
  // detail::SessionDirectory
  std::optional<Known> find(std::uint64_t session_id) const override;
  std::size_t waiting() const override { return ready.size(); }
  void schedule_tick();
  void on_tick();
  void drop_pending(const detail::Channel* c);

  std::shared_ptr<detail::EventLoop> loop;
  std::shared_ptr<asio::io_context> ctx;  // the loop's
  LinkOptions opts;
  std::unique_ptr<detail::Backend> backend;  // listens; after opts, which it reads
  asio::steady_timer tick;
  ptp::FrameBuilder control;
  std::vector<Pending> pending;
  std::map<std::uint64_t, std::weak_ptr<Link::Impl>> sessions;
  std::deque<std::shared_ptr<Link::Impl>> ready;  // new links for accept()
  Counters counters;
  bool closed = false;
};

}  // namespace agp::transport
