// Whole PTP frames over a TCP connection, with a deadline on every wait.
//
// The TCP backend's channel made blocking: it writes a frame's gather list with scatter/gather
// writes (no copy of the body) and reads through a staging buffer (large bodies straight into the
// decoder's buffers) into the push decoder, so a frame is verified before anyone sees it. No
// handshake, acks or resume (Link has those).
//
// Failures end the stream: after a read error (the peer closed, a frame failed its checks)
// is_open() is false and receive() keeps returning that error; a send that times out closes the
// stream (a frame may be half written). A receive that times out leaves it usable. What the peer
// sent before closing can still be received after a failed send.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "agp/ptp/frame_builder.hpp"
#include "agp/ptp/frame_decoder.hpp"
#include "agp/status.hpp"

namespace agp::transport {

struct SocketOptions {
  bool no_delay = true;                // TCP_NODELAY: small frames go out at once
  int send_buffer_bytes = 4 << 20;     // SO_SNDBUF / SO_RCVBUF sized for 20-40 Gbit/s at
  int receive_buffer_bytes = 4 << 20;  // sub-millisecond RTT (0 keeps the system default)
  std::string bind_address;            // local address to connect from ("" = any)
};

class FrameStream {
 public:
  FrameStream();
  ~FrameStream();
  FrameStream(FrameStream&&) noexcept;
  FrameStream& operator=(FrameStream&&) noexcept;

  // kConnectFailed (refused, unreachable, bad address) or kTimeout.
  static Result<FrameStream> connect(const std::string& host, std::uint16_t port,
                                     std::chrono::milliseconds timeout,
                                     const SocketOptions& options = {},
                                     ptp::DecoderOptions decoder = {});

  // Writes the frame's pieces in order. kTimeout, kConnectionClosed, kNetworkError.
  Status send(const ptp::GatherList& frame, std::chrono::milliseconds timeout);
  // Reads and verifies the next frame. Decoder errors (bad magic, checksum, ...) as the decoder
  // reports them; a failed stream cannot be resynchronised and should be closed.
  Result<ptp::Frame> receive(std::chrono::milliseconds timeout);

  bool is_open() const;
  void close();
  // "address:port" of each end, as the operating system reports them.
  std::string local_endpoint() const;
  std::string remote_endpoint() const;

 private:
  friend class Listener;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class Listener {
 public:
  Listener();
  ~Listener();
  Listener(Listener&&) noexcept;
  Listener& operator=(Listener&&) noexcept;

  // Listens on address:port (port 0 picks a free one). kAddressInUse, kNetworkError.
  static Result<Listener> bind(const std::string& address, std::uint16_t port,
                               const SocketOptions& options = {}, ptp::DecoderOptions decoder = {});
  std::uint16_t port() const;
  // Waits for one peer. kTimeout when none comes.
  Result<FrameStream> accept(std::chrono::milliseconds timeout);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace agp::transport
