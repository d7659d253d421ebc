// Reliable links between two hosts: the transport's main API.
//
// A Link is one session with one peer. It survives reconnects: packets are numbered, the receiver
// acknowledges each one after it has been verified and decoded into the application's buffer, the
// sender keeps unacknowledged packets (within a window and a memory budget) and, after a
// reconnect, resends exactly those the receiver has not delivered, so every packet reaches the
// application once and in order. The connecting side (Link::connect) redials with capped
// exponential backoff; the listening side (Server) re-attaches the returning peer to its Link.
//
// Before anything large is allocated, the two ends agree in a handshake on the protocol version,
// the model fingerprint, capabilities and, when a pre-shared key is configured, prove to each
// other that they hold it (HMAC-SHA256 over fresh nonces).
//
// Threading: a Link (and a Server with all its Links) runs on one io_context that the library
// drives inside the calls below, in the calling thread. Between calls (a host computing a model
// step for seconds), a keeper thread of the library takes over after a short grace period: it
// keeps heartbeats, acknowledgements, reads and reconnects going, and hands the loop back at the
// next call. Handlers (set_handlers) still run only inside calls, on the caller's thread. The
// calls below are safe from several threads (they take turns); poll() is no longer needed to
// keep a link alive.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agp/codec/tensor_view.hpp"
#include "agp/ptp/frame_decoder.hpp"
#include "agp/ptp/frame_format.hpp"
#include "agp/ptp/message.hpp"
#include "agp/ptp/tensor_packet.hpp"
#include "agp/status.hpp"
#include "agp/transport/frame_stream.hpp"
#include "agp/transport/metrics.hpp"

namespace agp::transport {

using Millis = std::chrono::milliseconds;

// What carries a Link's frames. kTcp: Asio TCP sockets (every build). kUcx: UCX, which picks
// RDMA, shared memory or TCP by itself (builds that found UCX: ucx_available()); the session above
// (handshake, fingerprint, key, acknowledgements, resume) is the same. docs/transport.md.
enum class TransportBackend : std::uint8_t { kTcp, kUcx };

// Whether this build has the UCX backend.
bool ucx_available();

struct LinkOptions {
  SocketOptions socket;        // TCP_NODELAY, buffer sizes, local address to connect from
  // Connect from this interface's address ("" = let routing pick). With UCX: the only network
  // device UCX may use (its NET_DEVICES).
  std::string bind_interface;

  // Identity: both ends must carry the same fingerprint (ptp::model_fingerprint of model, weights,
  // split layer, hidden size, dtype), else the handshake fails with fingerprint_mismatch.
  ptp::Hash128 fingerprint;
  // The calibration this end codes and decodes calibrated packets with (ptp-calibrate); its id
  // belongs in the fingerprint (ptp::FingerprintInput::calibration_id). Without one, the hello
  // offers no calibrated codec and such packets are refused.
  std::shared_ptr<const codec::Calibration> calibration;
  std::string model_id;
  std::int32_t split_layer = -1;
  std::string peer_name;          // shown to the other end (LinkInfo::peer_name)
  std::vector<std::uint8_t> key;  // pre-shared key; empty = no authentication

  ptp::DecoderLimits limits;  // frames this end accepts; max_body_bytes is announced to the peer

  // Sending: at most this many packets and bytes unacknowledged; post() waits for room.
  std::uint32_t window_packets = 32;
  std::uint64_t window_bytes = std::uint64_t{256} << 20;
  // Receiving: at most this many bytes of frames of packets not yet delivered to the application
  // are held; a peer that sends more is refused (body_too_large) and the link ends. It must be at
  // least the peer's window_bytes plus its largest packet. With limits.max_body_bytes (one frame
  // being read) and limits.max_tensor_bytes (the buffer a host sizes from a packet's descriptor)
  // it bounds the memory a peer can make this end use.
  std::uint64_t receive_buffer_bytes = std::uint64_t{2} << 30;
  // Packets of per-vector codecs with more vectors than this travel as chunks of this many
  // vectors, so encoding, the wire and decoding overlap (0 = never chunk).
  std::uint64_t chunk_vectors = 0;
  // Threads that encode the chunks of one packet side by side, the calling thread included
  // (1 = the caller alone). Worth it when the host has a core to spare beside the sender: a 4-bit
  // encode then keeps ahead of a 10 Gbit/s wire. Helpers spin briefly between packets (1..16).
  std::uint16_t encode_threads = 1;
  // Threads that decode the arrived chunks of one packet side by side into the caller's buffer,
  // the receiving thread included (1 = the receiver alone); a packet that arrives whole is split
  // over them by vectors. Helpers spin briefly between packets, as the encoding ones (1..16).
  std::uint16_t decode_threads = 1;
  // A waiting call (send, receive, next_packet, ...) polls its sockets without sleeping for up to
  // this long before it blocks: that saves the thread's wake-up, tens of microseconds on virtual
  // machines, per message, at the price of a busy core while waiting (0 = always block).
  std::uint32_t busy_poll_us = 0;
  // TCP connections per link (1..8). With more than one, the chunks of a packet are striped over
  // them (a single TCP flow may not fill a fast link); the connecting side opens them, the
  // listening side accepts up to its own number. Control messages use the first.
  std::uint16_t streams = 1;
  // Both ends must use the same backend (a TCP client cannot reach a UCX server).
  TransportBackend backend = TransportBackend::kTcp;
  // UCX only: the transports it may use, as UCX_TLS names them ("tcp", "shm", "rc,sm", ...;
  // empty = UCX's own choice, or the UCX_TLS environment variable).
  std::string ucx_transports;

  // Listening side, after a restart: where the application had got to in sessions of its previous
  // life (LinkInfo::session_id and the last Delivery's sequence, recorded durably by the
  // application). A returning sender then resumes after that point instead of resending packets
  // the old process already delivered but could not acknowledge before it died.
  struct SessionPosition {
    std::uint64_t session_id = 0;
    std::uint64_t delivered = 0;
  };
  std::vector<SessionPosition> known_sessions;
  // Receiving: receive() acknowledges each packet it delivers. With false, the application calls
  // acknowledge() once it has recorded the packet durably (a journal): a crash between delivery and
  // record then gets the packet sent again (the restarted end resumes from known_sessions) instead
  // of losing it.
  bool ack_on_receive = true;

  Millis connect_timeout{2000};     // one TCP connect attempt
  Millis handshake_timeout{2000};   // hello to ready
  Millis heartbeat_interval{200};   // a heartbeat goes out when nothing else did for this long
  Millis dead_peer_timeout{1000};   // nothing heard for this long: the connection is dead
  Millis reconnect_initial{20};     // first redial delay, doubled after each failure ...
  Millis reconnect_max{1000};       // ... up to this
  Millis reconnect_give_up{30000};  // unreachable this long: the link fails with peer_lost
  // A packet waiting this long for its acknowledgement, or a packet under way whose next chunk
  // takes this long, is logged once as a stalled stream (log.hpp).
  Millis stall_warning{2000};
};

// Checks options before anything is opened: model_id and peer_name valid UTF-8 of at most
// limits.max_string_bytes (the hello must be buildable), streams 1..8, encode_threads and decode_threads 1..16, a key
// of 0 or at least 16 bytes, windows and buffers above 0, positive timeouts. kInvalidArgument
// naming the option. Link::connect and Server::listen run it.
Status validate(const LinkOptions& options);

struct LinkInfo {
  std::uint64_t session_id = 0;
  std::uint16_t protocol_version = 0;
  std::string local_endpoint;   // address:port this end uses
  std::string local_interface;  // the interface owning that address ("" if unknown)
  std::string remote_endpoint;
  std::string peer_name;
  std::uint64_t peer_max_frame_bytes = 0;
  std::vector<std::uint16_t> peer_codecs;
  bool authenticated = false;
  bool peer_chunking = false;
  bool connected = false;
  std::uint16_t peer_max_streams = 1;
  std::uint16_t streams = 0;  // TCP connections carrying this link now
};

struct PacketMeta {
  std::string name;  // tensor name carried in the packet
  std::uint32_t stream_id = 0;
  ptp::Layout layout = ptp::Layout::kUnspecified;
};

// Proof that the peer verified and decoded a packet.
struct Receipt {
  std::uint64_t sequence = 0;
  std::uint64_t wire_bytes = 0;  // all frames of the packet
  std::uint32_t chunks = 1;
  double encode_us = 0;   // encoding and framing on this end
  double latency_us = 0;  // from post() to the peer's acknowledgement arriving here
};

struct Delivery {
  ptp::MessageHeader header;  // the packet's (first chunk's) header
  std::uint64_t wire_bytes = 0;  // all frames of the packet, as they came off the wire
  std::uint32_t chunks = 1;
  double decode_us = 0;  // verifying is done on arrival; this is decoding into the caller's buffer
};

class Server;

class Link {
 public:
  ~Link();
  Link(const Link&) = delete;
  Link& operator=(const Link&) = delete;

  // Connects to a Server and completes the handshake. Errors: connect_failed, timeout,
  // fingerprint_mismatch, protocol_version_mismatch, authentication_failed, capability_mismatch.
  static Result<std::unique_ptr<Link>> connect(const std::string& host, std::uint16_t port,
                                               const LinkOptions& options);

  // --- sending
  // Encodes `tensor` with `codec` (in chunks when configured) and queues it; waits while the
  // window is full. Returns the packet's sequence number. The tensor's memory is read during the
  // call, except for raw packets, which reference it until acknowledged: pass `keep_alive` to own
  // it for that long, or the bytes are copied.
  Result<std::uint64_t> post(const codec::TensorView& tensor, const ptp::PacketCodec& codec,
                             const PacketMeta& meta, Millis timeout,
                             std::shared_ptr<const void> keep_alive = nullptr);
  // Waits until packet `sequence` is acknowledged.
  Result<Receipt> wait_acked(std::uint64_t sequence, Millis timeout);
  // post() + wait_acked(): returns when the peer has verified and decoded the packet.
  Result<Receipt> send(const codec::TensorView& tensor, const ptp::PacketCodec& codec,
                       const PacketMeta& meta, Millis timeout);
  // Waits until everything posted is acknowledged.
  Status flush(Millis timeout);

  // --- receiving
  // Waits for the next packet and returns its header (tensor and codec descriptors), so the caller
  // can prepare a buffer. The packet stays queued.
  Result<ptp::MessageHeader> next_packet(Millis timeout);
  // Verifies and decodes the next packet into `out` (shape as the packet's tensor; any float dtype
  // and strides), chunk by chunk as they arrive, then acknowledges it. With `frames`, the packet's
  // verified frames are moved there (to save them, for example).
  Result<Delivery> receive(codec::TensorView out, Millis timeout,
                           std::vector<ptp::Frame>* frames = nullptr);
  // A receive that timed out part way goes on in the next call given the same buffer (same
  // address, dtype and strides). A caller that retries with another buffer which may sit at the
  // same address (a pool, a freed and reallocated one) calls this first: the next receive decodes
  // the packet from its first chunk again.
  void restart_receive();
  // Acknowledges every packet delivered so far (for LinkOptions::ack_on_receive = false).
  Status acknowledge();

  // --- callbacks, called from inside the calls above and poll()
  struct Handlers {
    std::function<void()> on_packet;               // a new packet began to arrive
    std::function<void(const Receipt&)> on_acked;  // a posted packet was acknowledged
    std::function<void(bool connected, const Status& why)> on_connection;  // up / down
  };
  void set_handlers(Handlers handlers);
  // Runs ready work (heartbeats, acks, reconnects, reads) without waiting; returns the number of
  // handlers run.
  std::size_t poll();
  // Runs for `duration`, or until the link fails.
  void run_for(Millis duration);
  // For drivers that multiplex many waits on one thread (an asyncio event loop's helper): waits
  // until something happens on the link (bytes arrive, a timer fires, wake() is called) or
  // `timeout` passes, and handles that one event. Returns the number of handlers run (0 or 1).
  // Try each pending operation with a zero timeout, then wait_event, then try again.
  std::size_t wait_event(Millis timeout);
  // The one call that may come from any thread: makes a current or the next wait_event return.
  void wake();

  // Waits until everything posted is acknowledged, says goodbye and closes; the peer's receive()
  // then reports connection_closed once its queue is empty. When packets are still
  // unacknowledged at the deadline, close returns kTimeout naming them and the link stays open
  // and keeps delivering them (call close again, or drop the Link to abandon them). A link that
  // closed or failed under unacknowledged packets says so (connection_closed, or its failure) in
  // close, flush and wait_acked of those packets; acknowledged ones keep their receipts. Later
  // posts fail with bad_state.
  Status close(Millis timeout);
  // Ends the link at once and tells the peer why: its calls fail with kAborted carrying
  // `reason`'s message. For a host that fails after connecting (a bad input, a full disk), so the
  // peer does not wait out its deadline. Unacknowledged packets are abandoned. Dropping a Link
  // without close() does the same.
  void abort(const Status& reason);

  // The error that ended the link (ok while it is usable).
  Status failure() const;
  bool connected() const;
  Counters counters() const;
  // The counters and latency histograms per codec (acknowledgement, encode, decode);
  // prometheus_text renders them.
  LinkMetrics metrics() const;
  LinkInfo info() const;

  struct Impl;

 private:
  friend class Server;
  friend struct LinkTesting;  // tests: a link that vanishes as a crashed process's would
  explicit Link(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

class Server {
 public:
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Listens on address:port (port 0 picks a free one). address_in_use, network_error.
  static Result<std::unique_ptr<Server>> listen(const std::string& address, std::uint16_t port,
                                                const LinkOptions& options);
  std::uint16_t port() const;
  // Waits for a new peer to complete the handshake. Peers that fail it (bad version, fingerprint,
  // key, garbage) are told why, dropped and counted, and waiting goes on; returning peers of
  // existing links are re-attached to them. kTimeout when no new peer came.
  Result<std::unique_ptr<Link>> accept(Millis timeout);
  // Whether a new peer has completed its handshake and waits for accept() (without waiting).
  bool peer_waiting() const;
  // Runs ready work for the server and all its links without waiting.
  std::size_t poll();
  // As Link::wait_event and Link::wake, for the server and all its links (one event loop).
  std::size_t wait_event(Millis timeout);
  void wake();
  // Refused peers and failed handshakes.
  Counters counters() const;

  struct Impl;

 private:
  explicit Server(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace agp::transport
