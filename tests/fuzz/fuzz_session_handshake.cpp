// Fuzz target: arbitrary bytes into the handshake's state machines directly, no socket. The first
// byte picks the configuration (which ends hold a key, the session's state on the server, a full
// accept queue, a join); the rest is split in two: one part is a client's bytes, decoded under the
// handshake's limits into frames for a ServerHandshake, the other a server's bytes for a
// ClientHandshake. The ends are the golden frames' model, so mutated golden hellos and replies
// get past the fingerprint. Properties: no crash, no sanitizer report; with a key, neither machine
// ever completes (the input cannot carry a valid proof); after a failure or completion every
// further frame fails; a server machine admits at most once.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "agp/ptp/frame_decoder.hpp"
#include "client_handshake.hpp"
#include "fake_sessions.hpp"
#include "handshake.hpp"
#include "server_handshake.hpp"

using namespace agp;
using namespace agp::transport;

namespace {

LinkOptions make_options(bool key) {
  LinkOptions o;
  o.fingerprint = ptp::Hash128{0x0123456789abcdefull, 0xfedcba9876543210ull};  // the samples'
  o.model_id = "devmodel";
  o.split_layer = 2;
  o.streams = 4;
  if (key) o.key = std::vector<std::uint8_t>(32, 0x42);
  return o;
}

using Sessions = agp::test::FakeSessions;

// Decodes `bytes` into frames and hands each header to `feed` until it returns false.
template <typename Feed>
void frames_of(std::span<const std::uint8_t> bytes, const LinkOptions& o, Feed feed) {
  ptp::FrameDecoder decoder(detail::handshake_decoder(o));
  auto data = std::as_bytes(bytes);
  while (!data.empty()) {
    auto used = decoder.consume(data);
    if (!used) return;
    data = data.subspan(*used);
    if (!decoder.frame_ready()) continue;
    if (!feed(decoder.take_frame().header())) return;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::uint8_t config = data[0];
  const LinkOptions server_opts = make_options(config & 1);
  const LinkOptions client_opts = make_options(config & 2);
  Sessions sessions;
  // Session 0 (the golden hello's) as the server may know it.
  if (config & 4) sessions.known[0] = {(config & 8) != 0, 5, 9};
  if (config & 16) sessions.waiting_count = detail::ServerHandshake::kMaxWaitingSessions;
  const std::span<const std::uint8_t> rest(data + 1, size - 1);
  const std::size_t half = rest.size() / 2;

  detail::ServerHandshake server(server_opts, std::vector<std::uint8_t>(32, 0x17));
  bool server_over = false;
  int admissions = 0;
  frames_of(rest.first(half), server_opts, [&](const ptp::MessageHeader& h) {
    const detail::ServerHandshake::Step s = server.on_header(h, sessions);
    if (server_over && (s.failure.is_ok() || s.admitted)) std::abort();  // no life after the end
    if (s.admitted) {
      if (!server_opts.key.empty()) std::abort();  // admitted without the key's proof
      if (++admissions > 1) std::abort();
    }
    server_over = server_over || !s.failure.is_ok() || s.admitted;
    return true;
  });

  const std::uint16_t join = (config & 32) ? 1 : 0;
  detail::ClientHandshake client(
      client_opts, {0, std::vector<std::uint8_t>(32, 0x29), 3, 4, join});
  (void)client.hello();
  bool client_over = false;
  frames_of(rest.subspan(half), client_opts, [&](const ptp::MessageHeader& h) {
    const detail::ClientHandshake::Step s = client.on_header(h);
    if (client_over && (s.failure.is_ok() || s.done)) std::abort();
    if (s.done && !client_opts.key.empty()) std::abort();  // up without the server's proof
    client_over = client_over || !s.failure.is_ok() || s.done;
    return true;
  });
  return 0;
}
