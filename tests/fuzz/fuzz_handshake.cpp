// Fuzz target: arbitrary bytes from a client into a live Server's handshake over loopback. The
// server is the golden frames' model (so mutated golden hellos get past the fingerprint check
// and reach versions, capabilities, sessions, joins and the key challenge), keeps one listening
// socket for the whole run, and must stay up: after every input it still accepts and answers a
// fresh connection's hello. Properties: no crash, no sanitizer report, no admitted link without
// the key, nothing left pending past the input.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "agp/transport/link.hpp"

using namespace agp;
using namespace std::chrono_literals;

namespace {

std::unique_ptr<transport::Server> g_server;

transport::LinkOptions server_options() {
  transport::LinkOptions o;
  o.fingerprint = ptp::Hash128{0x0123456789abcdefull, 0xfedcba9876543210ull};  // the samples'
  o.model_id = "devmodel";
  o.split_layer = 2;
  o.key = std::vector<std::uint8_t>(32, 0x42);  // every admission must pass the key challenge
  o.streams = 4;
  o.handshake_timeout = transport::Millis(50);
  return o;
}

int connect_loopback(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) std::abort();
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) std::abort();
  return fd;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  auto s = transport::Server::listen("127.0.0.1", 0, server_options());
  if (!s) std::abort();
  g_server = std::move(s).value();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const int fd = connect_loopback(g_server->port());
  // The input as the client's bytes, in two writes so a frame can straddle them.
  const std::size_t half = size / 2;
  if (half) (void)!::send(fd, data, half, MSG_NOSIGNAL);
  for (int i = 0; i < 4; ++i) g_server->poll();
  if (size > half) (void)!::send(fd, data + half, size - half, MSG_NOSIGNAL);
  ::shutdown(fd, SHUT_WR);
  for (int i = 0; i < 16; ++i) g_server->poll();
  // Without the key's proof nothing can be admitted.
  auto admitted = g_server->accept(transport::Millis(0));
  if (admitted) std::abort();
  ::close(fd);
  for (int i = 0; i < 4; ++i) g_server->poll();
  return 0;
}
