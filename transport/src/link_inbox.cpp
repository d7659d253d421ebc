// A Link's incoming side and acknowledgements (internal): tensor frames checked and assembled
// into packets by sequence, the inbox's byte bound, acks both ways.
#include <algorithm>
#include <cstring>

#include "handshake.hpp"
#include "link_impl.hpp"

namespace agp::transport {

using detail::Clock;

namespace {

constexpr std::size_t kMaxKeptReceipts = 4096;

}  // namespace

void Link::Impl::send_control(ptp::MessageHeader h, bool urgent) {
  if (!conn) return;
  auto f = detail::control_frame(control, std::move(h));
  if (!f) return;
  conn->send(std::move(f), urgent);
  ++counters.frames_sent;
}

void Link::Impl::send_ack() {
  ptp::MessageHeader h = detail::base_header(opts, ptp::MessageKind::kAck);
  h.ack = ptp::AckDesc{delivered};
  send_control(std::move(h));
}

void Link::Impl::on_ack(std::uint64_t cumulative) {
  if (cumulative > sent_upto) {
    // Acknowledging what was never (completely) sent: a broken or lying peer. Counting it would
    // report packets delivered that were not.
    return refuse(make_error(ErrorCode::kHeaderInvalid,
                             "the peer acknowledged packet " + std::to_string(cumulative) +
                                 ", but only packets up to " + std::to_string(sent_upto) +
                                 " were sent"));
  }
  while (!unacked.empty() && unacked.front().seq <= cumulative) {
    Pending& p = unacked.front();
    Receipt r;
    r.sequence = p.seq;
    r.wire_bytes = p.bytes;
    r.chunks = p.chunks;
    r.encode_us = p.encode_us;
    r.latency_us = micros_since(p.posted);
    if (p.latencies) {
      p.latencies->ack_us.record(r.latency_us);
      p.latencies->encode_us.record(r.encode_us);
    }
    unacked_bytes -= p.bytes;
    ++counters.packets_acked;
    receipts[p.seq] = r;
    if (receipts.size() > kMaxKeptReceipts) receipts.erase(receipts.begin());
    unacked.pop_front();
    if (handlers.on_acked) notify([this, r] { if (handlers.on_acked) handlers.on_acked(r); });
  }
  acked_upto = std::max(acked_upto, cumulative);
}

Link::Impl::InPacket* Link::Impl::due() {
  auto it = inbox.find(delivered + 1);
  return it == inbox.end() || it->second.received() == 0 ? nullptr : &it->second;
}

Link::Impl::InPacket* Link::Impl::announced() {
  InPacket* p = due();
  if (!p || p->complete() || !p->header || !p->header->tensor) return p;
  const auto elements = ptp::shape_element_count(p->header->tensor->shape);
  const std::uint64_t bytes = elements ? *elements * dtype_size(p->header->tensor->dtype) : 0;
  return ptp::expansion_allowed(bytes, p->wire_bytes, opts.limits) ? p : nullptr;
}

void Link::Impl::pause_or_resume_reading() {
  // Stop reading while enough complete packets wait for the application (TCP then pushes back on
  // the sender); never while the packet due next is incomplete, or its missing chunks could sit
  // behind the pause.
  std::size_t complete = 0;
  for (const auto& [seq, p] : inbox) complete += p.complete() ? 1 : 0;
  const InPacket* next = due();
  // A session the application has not accepted yet reads nothing: peers cannot fill the memory of
  // links nobody serves.
  const bool pause = !accepted || (complete >= std::max<std::uint32_t>(opts.window_packets, 1) &&
                                   next && next->complete());
  if (conn) conn->set_reading(!pause);
  for (const auto& e : extra) {
    if (e) e->set_reading(!pause);
  }
}

void Link::Impl::clear_inbox() {
  inbox.clear();
  inbox_bytes = 0;
}

void Link::Impl::refuse(const Status& why) {
  ++counters.frame_errors;
  tell_and_fail(why);
}

void Link::Impl::on_tensor_frame(ptp::Frame&& frame) {
  const ptp::MessageHeader& h = frame.header();
  if (h.sequence <= delivered) {
    ++counters.duplicates_dropped;
    return;
  }
  auto broken = [&](const std::string& why) {
    refuse(make_error(ErrorCode::kHeaderInvalid, why));
  };
  // The sender keeps at most its window unacknowledged; a packet far beyond ours is not one.
  const std::uint64_t ahead =
      4 * static_cast<std::uint64_t>(std::max<std::uint32_t>(opts.window_packets, 1));
  if (h.sequence - delivered > ahead) {
    return broken("packet " + std::to_string(h.sequence) + " is more than " +
                  std::to_string(ahead) + " packets ahead of " + std::to_string(delivered));
  }
  // Before anything is kept (or the application sizes a buffer from the descriptor): can this
  // frame be decoded into its tensor at all?
  if (Status s = reader.verify(h); !s) {
    return refuse(Status(s.code(), "packet " + std::to_string(h.sequence) + ": " + s.message()));
  }
  if (inbox_bytes + frame.frame_bytes() > opts.receive_buffer_bytes) {
    return refuse(make_error(
        ErrorCode::kBodyTooLarge,
        "the peer sent more than " + std::to_string(opts.receive_buffer_bytes) +
            " bytes of undelivered packets (LinkOptions::receive_buffer_bytes)"));
  }
  const std::uint64_t dim = h.tensor->shape[h.tensor->vector_axis];
  const std::uint64_t vectors = *ptp::shape_element_count(h.tensor->shape) / dim;
  const ptp::ChunkDesc chunk = h.chunk.value_or(ptp::ChunkDesc{0, 1, 0, vectors});
  const std::string where =
      "chunk " + std::to_string(chunk.index) + " of packet " + std::to_string(h.sequence);
  auto found = inbox.find(h.sequence);
  const bool first = found == inbox.end();
  if (!first) {
    const InPacket& q = found->second;
    ptp::CodecDesc mine = *h.codec, theirs = *q.header->codec;
    mine.original_bytes = theirs.original_bytes = 0;  // the chunk's own size
    if (chunk.count != q.expected_chunks) {
      return broken(where + " says the packet has " + std::to_string(chunk.count) +
                    " chunks; an earlier chunk said " + std::to_string(q.expected_chunks));
    }
    if (q.chunks.count(chunk.index)) return broken(where + " arrived twice");
    if (h.tensor != q.header->tensor || mine != theirs || h.stream_id != q.header->stream_id) {
      return broken(where + " describes another tensor, codec or stream than its other chunks");
    }
    // Disjoint from every range received: the neighbours on either side are all that can overlap.
    auto next = q.ranges.lower_bound(chunk.vector_offset);
    if (next != q.ranges.end() && next->first < chunk.vector_offset + chunk.vector_count) {
      return broken(where + " covers vectors another chunk already carried");
    }
    if (next != q.ranges.begin()) {
      auto prev = std::prev(next);
      if (prev->first + prev->second > chunk.vector_offset) {
        return broken(where + " covers vectors another chunk already carried");
      }
    }
  }
  InPacket& p = inbox[h.sequence];
  if (first) {
    p.seq = h.sequence;
    p.expected_chunks = chunk.count;
    p.vectors = vectors;
  }
  if (!p.header || chunk.index == 0) p.header = h;
  p.ranges.emplace(chunk.vector_offset, chunk.vector_count);
  p.covered += chunk.vector_count;
  p.wire_bytes += frame.frame_bytes();
  p.last_arrival = detail::Clock::now();
  inbox_bytes += frame.frame_bytes();
  p.chunks[chunk.index].frame = std::move(frame);
  p.to_decode.push_back(chunk.index);
  // Each chunk carries at least one vector, so the chunks still missing need as many vectors.
  const std::uint64_t missing = p.expected_chunks - p.received();
  if (missing > p.vectors - p.covered || (missing == 0 && p.covered != p.vectors)) {
    return broken("the chunks of packet " + std::to_string(p.seq) +
                  " cannot cover its vectors exactly once");
  }
  pause_or_resume_reading();
  if (first && handlers.on_packet) notify([this] { if (handlers.on_packet) handlers.on_packet(); });
}

}  // namespace agp::transport
