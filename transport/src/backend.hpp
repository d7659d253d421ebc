// How a transport opens channels (internal): a Link dials out through it, a Server accepts
// through it, and neither touches a socket. One implementation per transport (TCP:
// tcp_backend.hpp); docs/transport.md says how to add one.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "agp/ptp/frame_decoder.hpp"
#include "agp/status.hpp"
#include "agp/transport/link.hpp"
#include "asio_util.hpp"
#include "channel.hpp"

namespace agp::transport::detail {

// One connection attempt in flight.
class Dial {
 public:
  virtual ~Dial() = default;
  // Ends the attempt: its callback will not run.
  virtual void cancel() = 0;
};

class Backend {
 public:
  // The channel (not yet started), or why there is none (kConnectFailed). Timeouts are the
  // caller's: it cancels the attempt.
  using Dialed = std::function<void(Result<std::shared_ptr<Channel>>)>;
  using Accepted = std::function<void(std::shared_ptr<Channel>)>;

  virtual ~Backend() = default;

  // Starts connecting to host:port; `done` runs later on the io_context unless the attempt is
  // cancelled. The channel's first frames are read with `decoder`. An error here (a bad address,
  // a local address that cannot be used) means no attempt was started.
  virtual Result<std::shared_ptr<Dial>> dial(const std::string& host, std::uint16_t port,
                                             ptp::DecoderOptions decoder, Dialed done) = 0;

  // Listens on address:port (0: any free port); every peer that connects goes to `on_accept`.
  // kAddressInUse, kNetworkError.
  virtual Status listen(const std::string& address, std::uint16_t port, ptp::DecoderOptions decoder,
                        Accepted on_accept) = 0;
  virtual std::uint16_t port() const = 0;
  virtual void stop_listening() = 0;
};

// The backend LinkOptions::backend names. `options` must outlive it (the owner's). Errors: a backend
// this build lacks, or one that cannot start (UCX without a usable transport).
Result<std::unique_ptr<Backend>> make_backend(asio::io_context& ctx, const LinkOptions& options);

}  // namespace agp::transport::detail
