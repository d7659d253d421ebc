// The C API (agp/agp_ptp.h) over the C++ library: handles own C++ objects, statuses become codes
// plus a per-thread message, and no exception crosses the boundary.
#include <algorithm>
#include <cstddef>
#include <cstring>
#include <exception>
#include <limits>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <vector>

#include "agp/agp_ptp.h"
#include "agp/index/index.hpp"
#include "agp/ptp/aligned_buffer.hpp"
#include "agp/ptp/calibration_file.hpp"
#include "agp/ptp/fingerprint.hpp"
#include "agp/ptp/frame_decoder.hpp"
#include "agp/ptp/tensor_packet.hpp"
#include "agp/transport/link.hpp"
#include "agp/transport/log.hpp"
#include "agp/transport/metrics.hpp"

using agp::ErrorCode;
using agp::Status;

struct agp_codec {
  agp::ptp::PacketCodec codec;
};

struct agp_calibration {
  std::shared_ptr<const agp::codec::Calibration> calibration;
};

struct agp_encoder {
  explicit agp_encoder(const agp::ptp::PacketCodec& c) : writer(c) {}
  agp::ptp::TensorPacketWriter writer;
  std::vector<std::uint8_t> frame;  // the last encoded frame, flattened
};

struct agp_frame {
  agp::ptp::AlignedBuffer bytes;  // our copy: sections are read in place, 64-byte aligned
  agp::ptp::FrameView view;
};

struct agp_index {
  agp::index::Index index;
};

struct agp_server {
  std::unique_ptr<agp::transport::Server> server;
};

struct agp_link {
  std::unique_ptr<agp::transport::Link> link;
};

namespace {

thread_local std::string t_last_error;

agp_status fail(const Status& s) {
  t_last_error = s.message();
  return static_cast<agp_status>(s.code());
}

agp_status fail(ErrorCode code, std::string message) {
  return fail(Status(code, std::move(message)));
}

// Runs `body`, turning an escaping exception (allocation failure, mostly) into an error code.
template <typename Body>
agp_status guarded(Body&& body) noexcept {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    return fail(ErrorCode::kBadState, "out of memory");
  } catch (const std::exception& e) {
    return fail(ErrorCode::kBadState, std::string("internal error: ") + e.what());
  } catch (...) {
    return fail(ErrorCode::kBadState, "internal error");
  }
}

agp::transport::Millis millis(std::uint32_t ms) {
  return agp::transport::Millis(ms);
}

bool known_dtype(std::int32_t d) {
  return d == AGP_F32 || d == AGP_F16 || d == AGP_BF16;
}

// The C view as a validated C++ view.
agp::Result<agp::codec::TensorView> to_view(const agp_tensor* t, const char* what) {
  const std::string where(what);
  if (!t) return agp::make_error(ErrorCode::kInvalidArgument, where + " is NULL");
  if (!t->data) return agp::make_error(ErrorCode::kInvalidArgument, where + ".data is NULL");
  if (!known_dtype(t->dtype)) {
    return agp::make_error(ErrorCode::kInvalidArgument,
                           where + ".dtype must be AGP_F32, AGP_F16 or AGP_BF16");
  }
  if (t->rank < 1 || t->rank > AGP_MAX_RANK) {
    return agp::make_error(ErrorCode::kInvalidArgument, where + ".rank must be 1.." +
                                                            std::to_string(AGP_MAX_RANK) +
                                                            ", got " + std::to_string(t->rank));
  }
  if (t->vector_axis < 0 || t->vector_axis >= t->rank) {
    return agp::make_error(
        ErrorCode::kInvalidArgument,
        where + ".vector_axis must name one of its " + std::to_string(t->rank) + " axes");
  }
  const auto rank = static_cast<std::size_t>(t->rank);
  std::vector<std::uint64_t> shape(t->shape, t->shape + rank);
  auto view = agp::codec::TensorView::contiguous(t->data, static_cast<agp::DType>(t->dtype),
                                                 std::move(shape),
                                                 static_cast<std::uint32_t>(t->vector_axis));
  if (t->strides) view.strides.assign(t->strides, t->strides + rank);
  AGP_RETURN_IF_ERROR(view.validate());
  return view;
}

void copy_text(const std::string& s, char* out, std::size_t cap) {
  const std::size_t n = std::min(s.size(), cap - 1);
  std::memcpy(out, s.data(), n);
  out[n] = '\0';
}

agp::ptp::Hash128 to_hash(const std::uint8_t* b) {
  agp::ptp::Hash128 h;
  for (int i = 0; i < 8; ++i) {
    h.hi = (h.hi << 8) | b[i];
    h.lo = (h.lo << 8) | b[8 + i];
  }
  return h;
}

void from_hash(const agp::ptp::Hash128& h, std::uint8_t* b) {
  for (int i = 0; i < 8; ++i) {
    b[i] = static_cast<std::uint8_t>(h.hi >> (56 - 8 * i));
    b[8 + i] = static_cast<std::uint8_t>(h.lo >> (56 - 8 * i));
  }
}

void fill_info(const agp::ptp::MessageHeader& h, std::uint64_t frame_bytes, agp_packet_info* info) {
  *info = agp_packet_info{};
  info->sequence = h.sequence;
  info->stream_id = h.stream_id;
  info->timestamp_ns = h.timestamp_ns;
  info->split_layer = h.split_layer;
  info->frame_bytes = frame_bytes;
  from_hash(h.fingerprint, info->fingerprint);
  if (h.tensor) {
    info->dtype = static_cast<std::int32_t>(h.tensor->dtype);
    info->rank = static_cast<std::int32_t>(h.tensor->shape.size());
    std::copy(h.tensor->shape.begin(), h.tensor->shape.end(), info->shape);
    info->vector_axis = h.tensor->vector_axis;
    info->layout = static_cast<std::int32_t>(h.tensor->layout);
    copy_text(h.tensor->name, info->name, sizeof info->name);
  }
  if (h.codec) copy_text(agp::ptp::packet_codec_name(*h.codec), info->codec, sizeof info->codec);
}

agp::Result<agp::ptp::MessageHeader> header_of(const agp_packet_meta* meta) {
  if (meta && meta->struct_size < sizeof(agp_packet_meta)) {
    return agp::make_error(ErrorCode::kInvalidArgument,
                           "agp_packet_meta.struct_size is too small: call agp_packet_meta_init");
  }
  agp_packet_meta defaults;
  agp_packet_meta_init(&defaults);
  const agp_packet_meta& m = meta ? *meta : defaults;
  agp::ptp::MessageHeader h;
  h.stream_id = m.stream_id;
  h.sequence = m.sequence;
  h.fingerprint = to_hash(m.fingerprint);
  h.model_id = m.model_id ? m.model_id : "";
  h.split_layer = m.split_layer;
  h.tensor = agp::ptp::TensorDesc{};
  h.tensor->name = m.name ? m.name : "";
  return h;
}

agp::Result<agp::transport::LinkOptions> to_options(const agp_link_config* c) {
  // Callers built against an older header pass a shorter struct: its fields end before
  // `calibration`, which then keeps its default.
  constexpr std::size_t kVersion1Size = offsetof(agp_link_config, calibration);
  if (c && c->struct_size < kVersion1Size) {
    return agp::make_error(ErrorCode::kInvalidArgument,
                           "agp_link_config.struct_size is too small: call agp_link_config_init");
  }
  agp_link_config defaults;
  agp_link_config_init(&defaults);
  agp_link_config cfg = defaults;
  if (c) std::memcpy(&cfg, c, std::min<std::size_t>(c->struct_size, sizeof cfg));
  cfg.struct_size = sizeof cfg;
  if (cfg.key_size > 0 && !cfg.key) {
    return agp::make_error(ErrorCode::kInvalidArgument, "agp_link_config.key is NULL");
  }
  agp::transport::LinkOptions o;
  o.fingerprint = to_hash(cfg.fingerprint);
  o.model_id = cfg.model_id ? cfg.model_id : "";
  o.split_layer = cfg.split_layer;
  o.peer_name = cfg.peer_name ? cfg.peer_name : "";
  if (cfg.key_size > 0) o.key.assign(cfg.key, cfg.key + cfg.key_size);
  o.chunk_vectors = cfg.chunk_vectors;
  o.streams = cfg.streams;
  o.encode_threads = cfg.encode_threads;
  o.window_packets = cfg.window_packets;
  o.connect_timeout = millis(cfg.connect_timeout_ms);
  o.dead_peer_timeout = millis(cfg.dead_peer_timeout_ms);
  o.reconnect_give_up = millis(cfg.reconnect_give_up_ms);
  o.bind_interface = cfg.bind_interface ? cfg.bind_interface : "";
  o.ack_on_receive = cfg.ack_on_receive != 0;
  o.busy_poll_us = cfg.busy_poll_us;
  if (cfg.calibration) o.calibration = cfg.calibration->calibration;
  if (cfg.backend != AGP_BACKEND_TCP && cfg.backend != AGP_BACKEND_UCX) {
    return agp::make_error(ErrorCode::kInvalidArgument,
                           "agp_link_config.backend is " + std::to_string(cfg.backend) +
                               " (AGP_BACKEND_TCP 0 or AGP_BACKEND_UCX 1)");
  }
  o.backend = cfg.backend == AGP_BACKEND_UCX ? agp::transport::TransportBackend::kUcx
                                             : agp::transport::TransportBackend::kTcp;
  o.ucx_transports = cfg.ucx_transports ? cfg.ucx_transports : "";
  if (cfg.max_tensor_bytes > 0) o.limits.max_tensor_bytes = cfg.max_tensor_bytes;
  if (cfg.decode_threads > 0) o.decode_threads = cfg.decode_threads;
  return o;
}

// Encodes with the encoder's writer; the gather list stays valid until its next write.
agp::Result<agp::ptp::GatherList> encode(agp_encoder* e, const agp_tensor* tensor,
                                         const agp_packet_meta* meta) {
  if (!e) return agp::make_error(ErrorCode::kInvalidArgument, "encoder is NULL");
  auto view = to_view(tensor, "tensor");
  if (!view) return view.status();
  auto header = header_of(meta);
  if (!header) return header.status();
  const std::int32_t layout = meta ? meta->layout : AGP_LAYOUT_UNSPECIFIED;
  if (layout < AGP_LAYOUT_UNSPECIFIED || layout > AGP_LAYOUT_BCS) {
    return agp::make_error(
        ErrorCode::kInvalidArgument,
        "agp_packet_meta.layout is not an agp_layout: " + std::to_string(layout));
  }
  return e->writer.write(*view, std::move(header).value(), static_cast<agp::ptp::Layout>(layout));
}

void copy_pieces(const agp::ptp::GatherList& g, std::uint8_t* out) {
  for (const auto& piece : g.pieces) {
    std::memcpy(out, piece.data(), piece.size());
    out += piece.size();
  }
}

// The C packet metadata in the transport's terms.
agp::Result<agp::transport::PacketMeta> to_meta(const agp_packet_meta* meta) {
  agp::transport::PacketMeta m;
  if (!meta) return m;
  if (meta->struct_size < sizeof(agp_packet_meta)) {
    return agp::make_error(ErrorCode::kInvalidArgument,
                           "agp_packet_meta.struct_size is too small: call agp_packet_meta_init");
  }
  m.name = meta->name ? meta->name : "";
  m.stream_id = meta->stream_id;
  if (meta->layout < AGP_LAYOUT_UNSPECIFIED || meta->layout > AGP_LAYOUT_BCS) {
    return agp::make_error(ErrorCode::kInvalidArgument, "agp_packet_meta.layout is not an agp_layout");
  }
  m.layout = static_cast<agp::ptp::Layout>(meta->layout);
  return m;
}

void fill_receipt(const agp::transport::Receipt& r, agp_receipt* receipt) {
  if (!receipt) return;
  receipt->sequence = r.sequence;
  receipt->wire_bytes = r.wire_bytes;
  receipt->chunks = r.chunks;
  receipt->encode_us = r.encode_us;
  receipt->latency_us = r.latency_us;
}

// Checks the arguments of a send or post and hands the view and metadata to `go`.
template <typename Go>
agp_status with_packet(agp_link* link, const agp_tensor* tensor, const agp_codec* codec,
                       const agp_packet_meta* meta, Go&& go) {
  return guarded([&] {
    if (!link || !codec) return fail(ErrorCode::kInvalidArgument, "link or codec is NULL");
    auto m = to_meta(meta);
    if (!m) return fail(m.status());
    auto view = to_view(tensor, "tensor");
    if (!view) return fail(view.status());
    return go(*view, *m);
  });
}

}  // namespace

extern "C" {

const char* agp_last_error(void) {
  return t_last_error.c_str();
}

const char* agp_error_name(agp_status code) {
  if (code < 0 || code > 0xFFFF) return "unknown_error";
  // Names are string literals, so the view's data is NUL-terminated.
  return agp::error_code_name(static_cast<ErrorCode>(code)).data();
}

const char* agp_version(void) {
  return AGP_VERSION_STRING;
}

agp_status agp_checkpoint_fingerprint(const char* dir, int32_t split_layer, uint64_t hidden_size,
                                      uint8_t out[16]) {
  return guarded([&] {
    if (!dir || !out) return fail(ErrorCode::kInvalidArgument, "dir or out is NULL");
    auto fp = agp::ptp::checkpoint_fingerprint(dir, split_layer, hidden_size);
    if (!fp) return fail(fp.status());
    from_hash(*fp, out);
    return AGP_OK;
  });
}

agp_status agp_codec_create(const char* name, int32_t dtype, agp_codec** out) {
  return guarded([&] {
    if (!out) return fail(ErrorCode::kInvalidArgument, "out is NULL");
    *out = nullptr;
    if (!name) return fail(ErrorCode::kInvalidArgument, "codec name is NULL");
    if (!known_dtype(dtype)) {
      return fail(ErrorCode::kInvalidArgument, "dtype must be AGP_F32, AGP_F16 or AGP_BF16");
    }
    auto c = agp::ptp::parse_packet_codec(name, static_cast<agp::DType>(dtype));
    if (!c) return fail(c.status());
    *out = new agp_codec{*c};
    return AGP_OK;
  });
}

void agp_codec_free(agp_codec* codec) {
  delete codec;
}

agp_status agp_codec_set_calibration(agp_codec* codec, const agp_calibration* calibration) {
  return guarded([&] {
    if (!codec || !calibration) return fail(ErrorCode::kInvalidArgument, "codec or calibration is NULL");
    codec->codec.calibration = calibration->calibration;
    return AGP_OK;
  });
}

agp_status agp_calibration_load(const char* path, agp_calibration** out) {
  return guarded([&] {
    if (!out) return fail(ErrorCode::kInvalidArgument, "out is NULL");
    *out = nullptr;
    if (!path) return fail(ErrorCode::kInvalidArgument, "path is NULL");
    auto f = agp::ptp::read_calibration(path);
    if (!f) return fail(f.status());
    *out = new agp_calibration{std::make_shared<const agp::codec::Calibration>(f->calibration)};
    return AGP_OK;
  });
}

void agp_calibration_free(agp_calibration* calibration) {
  delete calibration;
}

uint64_t agp_calibration_id(const agp_calibration* calibration) {
  return calibration ? calibration->calibration->id : 0;
}

uint32_t agp_calibration_dim(const agp_calibration* calibration) {
  return calibration ? calibration->calibration->dim : 0;
}

agp_status agp_checkpoint_fingerprint_calibrated(const char* dir, int32_t split_layer,
                                                 uint64_t hidden_size, uint64_t calibration_id,
                                                 uint8_t out[16]) {
  return guarded([&] {
    if (!dir || !out) return fail(ErrorCode::kInvalidArgument, "dir or out is NULL");
    auto fp = agp::ptp::checkpoint_fingerprint(dir, split_layer, hidden_size, agp::DType::kF16,
                                               calibration_id);
    if (!fp) return fail(fp.status());
    from_hash(*fp, out);
    return AGP_OK;
  });
}

void agp_packet_meta_init(agp_packet_meta* meta) {
  if (!meta) return;
  *meta = agp_packet_meta{};
  meta->struct_size = sizeof(agp_packet_meta);
  meta->split_layer = -1;
}

agp_status agp_encoder_create(const agp_codec* codec, agp_encoder** out) {
  return guarded([&] {
    if (!out) return fail(ErrorCode::kInvalidArgument, "out is NULL");
    *out = nullptr;
    if (!codec) return fail(ErrorCode::kInvalidArgument, "codec is NULL");
    *out = new agp_encoder(codec->codec);
    return AGP_OK;
  });
}

void agp_encoder_free(agp_encoder* encoder) {
  delete encoder;
}

agp_status agp_encode(agp_encoder* encoder, const agp_tensor* tensor, const agp_packet_meta* meta,
                      const uint8_t** frame, size_t* frame_size) {
  return guarded([&] {
    if (!frame || !frame_size) return fail(ErrorCode::kInvalidArgument, "frame or size is NULL");
    auto g = encode(encoder, tensor, meta);
    if (!g) return fail(g.status());
    encoder->frame.resize(g->total_bytes);
    copy_pieces(*g, encoder->frame.data());
    *frame = encoder->frame.data();
    *frame_size = encoder->frame.size();
    return AGP_OK;
  });
}

agp_status agp_encode_into(agp_encoder* encoder, const agp_tensor* tensor,
                           const agp_packet_meta* meta, void* buffer, size_t capacity,
                           size_t* frame_size) {
  return guarded([&] {
    if (!frame_size) return fail(ErrorCode::kInvalidArgument, "frame_size is NULL");
    auto g = encode(encoder, tensor, meta);
    if (!g) return fail(g.status());
    *frame_size = g->total_bytes;
    if (!buffer || capacity < g->total_bytes) {
      return fail(ErrorCode::kBufferTooSmall, "the frame needs " + std::to_string(g->total_bytes) +
                                                  " bytes, the buffer has " +
                                                  std::to_string(buffer ? capacity : 0));
    }
    copy_pieces(*g, static_cast<std::uint8_t*>(buffer));
    return AGP_OK;
  });
}

agp_status agp_frame_parse(const void* bytes, size_t size, const uint8_t* expected_fingerprint,
                           agp_frame** out) {
  return guarded([&] {
    if (!out) return fail(ErrorCode::kInvalidArgument, "out is NULL");
    *out = nullptr;
    if (!bytes && size > 0) return fail(ErrorCode::kInvalidArgument, "bytes is NULL");
    auto f = std::make_unique<agp_frame>();
    f->bytes = agp::ptp::AlignedBuffer(size);
    if (size > 0) std::memcpy(f->bytes.data(), bytes, size);
    agp::ptp::DecoderOptions opts;
    if (expected_fingerprint) opts.expected_fingerprint = to_hash(expected_fingerprint);
    auto v = agp::ptp::parse_frame(f->bytes.span(), opts);
    if (!v) return fail(v.status());
    f->view = std::move(v).value();
    *out = f.release();
    return AGP_OK;
  });
}

void agp_frame_free(agp_frame* frame) {
  delete frame;
}

agp_status agp_frame_info(const agp_frame* frame, agp_packet_info* info) {
  return guarded([&] {
    if (!frame || !info) return fail(ErrorCode::kInvalidArgument, "frame or info is NULL");
    fill_info(frame->view.header, frame->view.frame_bytes, info);
    return AGP_OK;
  });
}

agp_status agp_frame_decode(const agp_frame* frame, const agp_tensor* out) {
  return agp_frame_decode_calibrated(frame, nullptr, out);
}

agp_status agp_frame_decode_calibrated(const agp_frame* frame, const agp_calibration* calibration,
                                       const agp_tensor* out) {
  return guarded([&] {
    if (!frame) return fail(ErrorCode::kInvalidArgument, "frame is NULL");
    auto view = to_view(out, "out");
    if (!view) return fail(view.status());
    agp::ptp::TensorPacketReader reader;
    if (calibration) reader.set_calibration(calibration->calibration);
    const Status s = reader.read(frame->view.header, frame->view.body, *view);
    return s ? AGP_OK : fail(s);
  });
}

int agp_ucx_available(void) {
  return agp::transport::ucx_available() ? 1 : 0;
}

void agp_link_config_init(agp_link_config* config) {
  if (!config) return;
  const agp::transport::LinkOptions d;
  *config = agp_link_config{};
  config->struct_size = sizeof(agp_link_config);
  config->split_layer = d.split_layer;
  config->chunk_vectors = d.chunk_vectors;
  config->streams = d.streams;
  config->encode_threads = d.encode_threads;
  config->decode_threads = d.decode_threads;
  config->window_packets = d.window_packets;
  config->connect_timeout_ms = static_cast<std::uint32_t>(d.connect_timeout.count());
  config->dead_peer_timeout_ms = static_cast<std::uint32_t>(d.dead_peer_timeout.count());
  config->reconnect_give_up_ms = static_cast<std::uint32_t>(d.reconnect_give_up.count());
  config->ack_on_receive = d.ack_on_receive ? 1 : 0;
  config->busy_poll_us = d.busy_poll_us;
}

agp_status agp_server_listen(const char* address, uint16_t port, const agp_link_config* config,
                             agp_server** out) {
  return guarded([&] {
    if (!out) return fail(ErrorCode::kInvalidArgument, "out is NULL");
    *out = nullptr;
    if (!address) return fail(ErrorCode::kInvalidArgument, "address is NULL");
    auto o = to_options(config);
    if (!o) return fail(o.status());
    auto s = agp::transport::Server::listen(address, port, *o);
    if (!s) return fail(s.status());
    *out = new agp_server{std::move(s).value()};
    return AGP_OK;
  });
}

uint16_t agp_server_port(const agp_server* server) {
  return server ? server->server->port() : 0;
}

agp_status agp_server_accept(agp_server* server, uint32_t timeout_ms, agp_link** out) {
  return guarded([&] {
    if (!server || !out) return fail(ErrorCode::kInvalidArgument, "server or out is NULL");
    *out = nullptr;
    auto l = server->server->accept(millis(timeout_ms));
    if (!l) return fail(l.status());
    *out = new agp_link{std::move(l).value()};
    return AGP_OK;
  });
}

void agp_server_free(agp_server* server) {
  delete server;
}

agp_status agp_link_connect(const char* host, uint16_t port, const agp_link_config* config,
                            agp_link** out) {
  return guarded([&] {
    if (!out) return fail(ErrorCode::kInvalidArgument, "out is NULL");
    *out = nullptr;
    if (!host) return fail(ErrorCode::kInvalidArgument, "host is NULL");
    auto o = to_options(config);
    if (!o) return fail(o.status());
    auto l = agp::transport::Link::connect(host, port, *o);
    if (!l) return fail(l.status());
    *out = new agp_link{std::move(l).value()};
    return AGP_OK;
  });
}


agp_status agp_link_send(agp_link* link, const agp_tensor* tensor, const agp_codec* codec,
                         const agp_packet_meta* meta, uint32_t timeout_ms, agp_receipt* receipt) {
  return with_packet(link, tensor, codec, meta, [&](const auto& view, const auto& m) {
    auto r = link->link->send(view, codec->codec, m, millis(timeout_ms));
    if (!r) return fail(r.status());
    fill_receipt(*r, receipt);
    return agp_status{AGP_OK};
  });
}

agp_status agp_link_post(agp_link* link, const agp_tensor* tensor, const agp_codec* codec,
                         const agp_packet_meta* meta, uint32_t timeout_ms, uint64_t* sequence) {
  return with_packet(link, tensor, codec, meta, [&](const auto& view, const auto& m) {
    // No keep-alive: the tensor's memory is the caller's again when this returns.
    auto seq = link->link->post(view, codec->codec, m, millis(timeout_ms));
    if (!seq) return fail(seq.status());
    if (sequence) *sequence = *seq;
    return agp_status{AGP_OK};
  });
}

agp_status agp_link_wait_acked(agp_link* link, uint64_t sequence, uint32_t timeout_ms,
                               agp_receipt* receipt) {
  return guarded([&] {
    if (!link) return fail(ErrorCode::kInvalidArgument, "link is NULL");
    auto r = link->link->wait_acked(sequence, millis(timeout_ms));
    if (!r) return fail(r.status());
    fill_receipt(*r, receipt);
    return AGP_OK;
  });
}

agp_status agp_link_flush(agp_link* link, uint32_t timeout_ms) {
  return guarded([&] {
    if (!link) return fail(ErrorCode::kInvalidArgument, "link is NULL");
    const Status s = link->link->flush(millis(timeout_ms));
    return s ? AGP_OK : fail(s);
  });
}

agp_status agp_link_next_packet(agp_link* link, uint32_t timeout_ms, agp_packet_info* info) {
  return guarded([&] {
    if (!link || !info) return fail(ErrorCode::kInvalidArgument, "link or info is NULL");
    auto h = link->link->next_packet(millis(timeout_ms));
    if (!h) return fail(h.status());
    fill_info(*h, 0, info);
    return AGP_OK;
  });
}

agp_status agp_link_receive(agp_link* link, const agp_tensor* out, uint32_t timeout_ms,
                            double* decode_us) {
  return guarded([&] {
    if (!link) return fail(ErrorCode::kInvalidArgument, "link is NULL");
    auto view = to_view(out, "out");
    if (!view) return fail(view.status());
    auto d = link->link->receive(*view, millis(timeout_ms));
    if (!d) return fail(d.status());
    if (decode_us) *decode_us = d->decode_us;
    return AGP_OK;
  });
}

agp_status agp_link_acknowledge(agp_link* link) {
  return guarded([&] {
    if (!link) return fail(ErrorCode::kInvalidArgument, "link is NULL");
    const Status s = link->link->acknowledge();
    return s ? AGP_OK : fail(s);
  });
}

agp_status agp_link_metrics_text(const agp_link* link, const char* link_label, char* text,
                                 size_t capacity, size_t* length) {
  return guarded([&] {
    if (!link) return fail(ErrorCode::kInvalidArgument, "link is NULL");
    if (capacity > 0 && !text) return fail(ErrorCode::kInvalidArgument, "text is NULL");
    agp::transport::LabeledMetrics m{{}, link->link->metrics()};
    if (link_label) m.labels.emplace_back("link", link_label);
    const std::string out = agp::transport::prometheus_text({m});
    if (length) *length = out.size();
    if (capacity > 0) {
      const std::size_t n = std::min(out.size(), capacity - 1);
      std::memcpy(text, out.data(), n);
      text[n] = '\0';
    }
    return AGP_OK;
  });
}

void agp_set_log_handler(agp_log_fn fn, void* user, int min_level) {
  if (!fn) {
    agp::transport::set_log_handler(nullptr);
    return;
  }
  agp::transport::set_log_handler(
      [fn, user](const agp::transport::LogRecord& r) {
        const std::string event(r.event), message(r.message);
        fn(user, static_cast<int>(r.level), event.c_str(), message.c_str());
      },
      static_cast<agp::transport::LogLevel>(min_level));
}

agp_status agp_link_close(agp_link* link, uint32_t timeout_ms) {
  return guarded([&] {
    if (!link) return fail(ErrorCode::kInvalidArgument, "link is NULL");
    const Status s = link->link->close(millis(timeout_ms));
    return s ? AGP_OK : fail(s);
  });
}

agp_status agp_link_abort(agp_link* link, const char* reason) {
  return guarded([&] {
    if (!link) return fail(ErrorCode::kInvalidArgument, "link is NULL");
    link->link->abort(agp::make_error(ErrorCode::kAborted,
                                      reason && *reason ? reason : "the peer aborted the link"));
    return AGP_OK;
  });
}

void agp_link_free(agp_link* link) {
  delete link;
}

void agp_link_get_counters(const agp_link* link, agp_link_counters* counters) {
  if (!counters) return;
  *counters = agp_link_counters{};
  if (!link) return;
  const agp::transport::Counters c = link->link->counters();
  counters->bytes_sent = c.bytes_sent;
  counters->bytes_received = c.bytes_received;
  counters->packets_sent = c.packets_sent;
  counters->packets_acked = c.packets_acked;
  counters->packets_delivered = c.packets_delivered;
  counters->retransmits = c.retransmits;
  counters->duplicates_dropped = c.duplicates_dropped;
  counters->checksum_failures = c.checksum_failures;
  counters->frame_errors = c.frame_errors;
  counters->reconnects = c.reconnects;
}

}  // extern "C"

// --- the embedding index

void agp_index_options_init(agp_index_options* options) {
  if (!options) return;
  const agp::index::IndexOptions d;
  *options = agp_index_options{sizeof(agp_index_options), d.bits, d.seed, d.keep_exact ? 1 : 0,
                               d.unbias ? 1 : 0};
}

agp_status agp_index_create(uint32_t dim, const agp_index_options* options, agp_index** out) {
  return guarded([&] {
    if (!out) return fail(ErrorCode::kInvalidArgument, "out is NULL");
    *out = nullptr;
    agp_index_options o;
    agp_index_options_init(&o);
    if (options) {
      if (options->struct_size < sizeof(agp_index_options))
        return fail(ErrorCode::kInvalidArgument, "agp_index_options: struct_size too small");
      o = *options;
    }
    auto made = agp::index::Index::create(dim, {o.bits, o.seed, o.keep_exact != 0, o.unbias != 0});
    if (!made) return fail(made.status());
    *out = new agp_index{std::move(made).value()};
    return AGP_OK;
  });
}

agp_status agp_index_open(const char* path, int32_t verify, agp_index** out) {
  return guarded([&] {
    if (!out) return fail(ErrorCode::kInvalidArgument, "out is NULL");
    *out = nullptr;
    if (!path) return fail(ErrorCode::kInvalidArgument, "path is NULL");
    auto opened = agp::index::Index::open(path, verify != 0);
    if (!opened) return fail(opened.status());
    *out = new agp_index{std::move(opened).value()};
    return AGP_OK;
  });
}

agp_status agp_index_save(const agp_index* index, const char* path) {
  return guarded([&] {
    if (!index || !path) return fail(ErrorCode::kInvalidArgument, "index or path is NULL");
    const Status s = index->index.save(path);
    return s ? AGP_OK : fail(s);
  });
}

void agp_index_free(agp_index* index) {
  delete index;
}

uint32_t agp_index_dim(const agp_index* index) {
  return index ? index->index.dim() : 0;
}

uint64_t agp_index_size(const agp_index* index) {
  return index ? index->index.size() : 0;
}

agp_status agp_index_add(agp_index* index, const float* vectors, uint64_t count) {
  return guarded([&] {
    if (!index || (!vectors && count > 0))
      return fail(ErrorCode::kInvalidArgument, "index or vectors is NULL");
    const std::uint64_t dim = index->index.dim();
    if (count > std::numeric_limits<std::size_t>::max() / 4 / dim)
      return fail(ErrorCode::kInvalidArgument, "count is too large");
    const Status s = index->index.add(std::span(vectors, count * dim));
    return s ? AGP_OK : fail(s);
  });
}

agp_status agp_index_vectors(const agp_index* index, uint64_t first, uint64_t count, float* out) {
  return guarded([&] {
    if (!index || (!out && count > 0)) return fail(ErrorCode::kInvalidArgument, "index or out is NULL");
    const std::uint64_t dim = index->index.dim();
    if (count > index->index.size()) return fail(ErrorCode::kInvalidArgument, "count is past the end");
    const Status s = index->index.vectors(first, count, std::span(out, count * dim));
    return s ? AGP_OK : fail(s);
  });
}

void agp_search_options_init(agp_search_options* options) {
  if (!options) return;
  *options = agp_search_options{sizeof(agp_search_options), 10, 0, AGP_INDEX_AUTO_COARSE, 1};
}

agp_status agp_index_search(const agp_index* index, const float* queries, uint64_t count,
                            const agp_search_options* options, uint64_t* ids, float* scores,
                            uint64_t* found) {
  return guarded([&] {
    if (!index || (count > 0 && (!queries || !ids || !scores || !found)))
      return fail(ErrorCode::kInvalidArgument, "index, queries, ids, scores or found is NULL");
    agp_search_options o;
    agp_search_options_init(&o);
    if (options) {
      if (options->struct_size < sizeof(agp_search_options))
        return fail(ErrorCode::kInvalidArgument, "agp_search_options: struct_size too small");
      o = *options;
    }
    const std::uint64_t dim = index->index.dim();
    if (count > std::numeric_limits<std::size_t>::max() / 4 / dim || o.k > (std::uint64_t{1} << 24))
      return fail(ErrorCode::kInvalidArgument, "count or k is too large");
    agp::index::SearchOptions so;
    so.k = static_cast<std::size_t>(o.k);
    so.rerank = static_cast<std::size_t>(o.rerank);
    so.coarse = o.coarse == AGP_INDEX_AUTO_COARSE ? agp::index::SearchOptions::kAutoCoarse
                                                  : static_cast<std::size_t>(o.coarse);
    std::vector<std::vector<agp::index::Hit>> all;
    if (count == 1) {
      so.threads = std::max<std::uint32_t>(o.threads, 1);
      auto hits = index->index.search(std::span(queries, dim), so);
      if (!hits) return fail(hits.status());
      all.push_back(std::move(hits).value());
    } else {
      auto hits = index->index.search_batch(std::span(queries, count * dim), so, o.threads);
      if (!hits) return fail(hits.status());
      all = std::move(hits).value();
    }
    for (std::uint64_t q = 0; q < count; ++q) {
      found[q] = all[q].size();
      for (std::uint64_t j = 0; j < o.k; ++j) {
        const bool hit = j < all[q].size();
        ids[q * o.k + j] = hit ? all[q][j].id : UINT64_MAX;
        scores[q * o.k + j] = hit ? all[q][j].score : std::numeric_limits<float>::quiet_NaN();
      }
    }
    return AGP_OK;
  });
}
