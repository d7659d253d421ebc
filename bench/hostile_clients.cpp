#include "hostile_clients.hpp"

#include <asio.hpp>
#include <chrono>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

namespace agp::bench {
namespace {

using asio::ip::tcp;
using namespace std::chrono_literals;

bool open(asio::io_context& ctx, tcp::socket& s, const tcp::endpoint& to) {
  asio::error_code ec;
  s = tcp::socket(ctx);
  s.connect(to, ec);
  return !ec;
}

void send_quietly(tcp::socket& s, const void* data, std::size_t n) {
  asio::error_code ec;
  asio::write(s, asio::buffer(data, n), ec);
}

}  // namespace

HostileReport attack(const std::string& host, std::uint16_t port, int flood) {
  HostileReport r;
  asio::io_context ctx;
  const tcp::endpoint to(asio::ip::make_address(host), port);
  std::mt19937_64 rng(99);
  // Slow loris: a valid-looking prefix a byte every 100 ms, on threads of their own.
  std::vector<std::thread> loris;
  for (int i = 0; i < 16; ++i) {
    loris.emplace_back([to] {
      asio::io_context c;
      tcp::socket s(c);
      if (!open(c, s, to)) return;
      const char prefix[] = "AGPP\x01\x00\x00\x00\x40\x00\x00\x00";
      for (std::size_t k = 0; k < sizeof prefix - 1; ++k) {
        asio::error_code ec;
        asio::write(s, asio::buffer(prefix + k, 1), ec);
        if (ec) return;  // the server gave up on us, as it should
        std::this_thread::sleep_for(250ms);
      }
    });
    ++r.slow_loris;
  }
  // Garbage: random bytes, then close.
  std::vector<std::uint8_t> junk(4096);
  for (int i = 0; i < 100; ++i) {
    tcp::socket s(ctx);
    if (!open(ctx, s, to)) continue;
    for (auto& b : junk) b = static_cast<std::uint8_t>(rng());
    send_quietly(s, junk.data(), junk.size());
    ++r.garbage;
  }
  // Oversize: a prefix announcing a 4 GB header.
  for (int i = 0; i < 50; ++i) {
    tcp::socket s(ctx);
    if (!open(ctx, s, to)) continue;
    std::uint8_t prefix[24] = {'A', 'G', 'P', 'P', 1, 0, 0, 0};
    const std::uint32_t huge = 0xFFFFFFC8u;
    std::memcpy(prefix + 8, &huge, 4);
    send_quietly(s, prefix, sizeof prefix);
    std::vector<std::uint8_t> more(64 * 1024, 0x5A);
    send_quietly(s, more.data(), more.size());
    ++r.oversize;
  }
  // A flood of connections opened and closed at once.
  for (int i = 0; i < flood; ++i) {
    tcp::socket s(ctx);
    if (open(ctx, s, to)) ++r.flood;
  }
  for (auto& t : loris) t.join();
  return r;
}

}  // namespace agp::bench
