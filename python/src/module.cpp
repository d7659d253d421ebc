// The agp_ptp Python module (pybind11): encode/decode and send/receive of any object with the
// buffer protocol (NumPy, MLX, PyTorch CPU tensors, bytes-like). Tensors are read and written in
// place; the GIL is released while the library works; errors are agp_ptp.Error with our code.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <deque>
#include <tuple>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "agp/ptp/aligned_buffer.hpp"
#include "agp/ptp/calibration_file.hpp"
#include "agp/ptp/fingerprint.hpp"
#include "agp/ptp/frame_decoder.hpp"
#include "agp/ptp/tensor_packet.hpp"
#include "agp/transport/link.hpp"
#include "agp/transport/log.hpp"
#include "agp/transport/metrics.hpp"
#include "errors.hpp"
#include "tensors.hpp"

namespace py = pybind11;
using agp::DType;
using agp::ErrorCode;
using agp::Status;
using agp_py::check;
using agp_py::g_error;
using agp_py::hold_tensor;
using agp_py::new_array_for;
using agp_py::invalid;
using agp_py::raise;

namespace {

// Integer arguments are taken as Python objects so that a wrong type or an out-of-range value is
// agp_ptp.Error (invalid_argument) naming the argument, not a pybind11 TypeError.
std::int64_t int_arg(const py::handle& v, const char* name, std::int64_t lo, std::int64_t hi) {
  if (!PyLong_Check(v.ptr()) || PyBool_Check(v.ptr())) {
    invalid(std::string(name) + " must be an integer");
  }
  int overflow = 0;
  const long long x = PyLong_AsLongLongAndOverflow(v.ptr(), &overflow);
  if (overflow != 0 || x < lo || x > hi) {
    invalid(std::string(name) + " must be " + std::to_string(lo) + ".." + std::to_string(hi) +
            ", got " + py::str(v).cast<std::string>());
  }
  return x;
}

constexpr std::int64_t kMaxTimeoutMs = std::int64_t{1} << 31;  // about 25 days
agp::transport::Millis timeout_arg(const py::handle& v, const char* name) {
  return agp::transport::Millis(int_arg(v, name, 0, kMaxTimeoutMs));
}

// --- buffers

py::buffer_info request_buffer(const py::object& obj) {
  if (!PyObject_CheckBuffer(obj.ptr())) {
    invalid("expected a bytes-like object, got " + py::str(py::type::of(obj)).cast<std::string>());
  }
  return py::reinterpret_borrow<py::buffer>(obj).request(false);
}

// --- packet metadata

agp::ptp::Hash128 hash_of(const py::bytes& b) {
  const std::string s = b;
  if (s.empty()) return {};
  if (s.size() != 16) invalid("a fingerprint is 16 bytes, got " + std::to_string(s.size()));
  agp::ptp::Hash128 h;
  for (int k = 0; k < 8; ++k) {
    h.hi = (h.hi << 8) | static_cast<std::uint8_t>(s[static_cast<std::size_t>(k)]);
    h.lo = (h.lo << 8) | static_cast<std::uint8_t>(s[static_cast<std::size_t>(8 + k)]);
  }
  return h;
}

py::bytes bytes_of(const agp::ptp::Hash128& h) {
  std::string s(16, '\0');
  for (int k = 0; k < 8; ++k) {
    s[static_cast<std::size_t>(k)] = static_cast<char>(h.hi >> (56 - 8 * k));
    s[static_cast<std::size_t>(8 + k)] = static_cast<char>(h.lo >> (56 - 8 * k));
  }
  return py::bytes(s);
}

const std::map<std::string, agp::ptp::Layout>& layouts() {
  static const std::map<std::string, agp::ptp::Layout> m = {
      {"", agp::ptp::Layout::kUnspecified}, {"BSD", agp::ptp::Layout::kBSD},
      {"BC1S", agp::ptp::Layout::kBC1S},    {"SD", agp::ptp::Layout::kSD},
      {"D", agp::ptp::Layout::kD},          {"BCS", agp::ptp::Layout::kBCS}};
  return m;
}

agp::ptp::Layout layout_of(const std::string& name) {
  const auto it = layouts().find(name);
  if (it == layouts().end())
    invalid("layout must be '', BSD, BC1S, SD, D or BCS, got '" + name + "'");
  return it->second;
}

// What a packet carries (from a verified header).
struct PacketInfo {
  std::uint64_t sequence = 0;
  std::uint32_t stream_id = 0;
  std::uint64_t timestamp_ns = 0;
  std::int32_t split_layer = -1;
  std::string name, dtype, codec, layout, model_id;
  std::vector<std::uint64_t> shape;
  int vector_axis = 0;
  py::bytes fingerprint;
  std::uint64_t frame_bytes = 0;
};

PacketInfo info_of(const agp::ptp::MessageHeader& h, std::uint64_t frame_bytes) {
  PacketInfo p;
  p.sequence = h.sequence;
  p.stream_id = h.stream_id;
  p.timestamp_ns = h.timestamp_ns;
  p.split_layer = h.split_layer;
  p.model_id = h.model_id;
  p.fingerprint = bytes_of(h.fingerprint);
  p.frame_bytes = frame_bytes;
  if (h.tensor) {
    p.name = h.tensor->name;
    p.dtype = h.tensor->dtype == DType::kBF16   ? "bfloat16"
              : h.tensor->dtype == DType::kF16 ? "float16"
                                               : "float32";
    p.shape = h.tensor->shape;
    p.vector_axis = h.tensor->vector_axis;
    p.layout = h.tensor->layout == agp::ptp::Layout::kUnspecified
                   ? ""
                   : std::string(agp::ptp::layout_name(h.tensor->layout));
  }
  if (h.codec) p.codec = agp::ptp::packet_codec_name(*h.codec);
  return p;
}

// --- calibrations

// A calibration file (ptp-calibrate) for the calibrated codecs cal2..cal8.
struct Calibration {
  std::shared_ptr<const agp::codec::Calibration> cal;
  std::string info;
  static Calibration load(const std::string& path) {
    auto f = check(agp::ptp::read_calibration(path));
    return Calibration{std::make_shared<const agp::codec::Calibration>(f.calibration), f.info};
  }
};

std::shared_ptr<const agp::codec::Calibration> calibration_arg(const py::object& o) {
  if (o.is_none()) return nullptr;
  if (!py::isinstance<Calibration>(o)) invalid("calibration must be an agp_ptp.Calibration or None");
  return o.cast<const Calibration&>().cal;
}

// A codec by name, with the calibration the calibrated codecs need.
agp::ptp::PacketCodec packet_codec(const std::string& name, DType d,
                                   const std::shared_ptr<const agp::codec::Calibration>& cal) {
  agp::ptp::PacketCodec c = check(agp::ptp::parse_packet_codec(name, d));
  if (c.config.id == agp::CodecId::kTurboQuantCal && !cal) {
    invalid("codec '" + name + "' needs a calibration (agp_ptp.Calibration(path))");
  }
  c.calibration = cal;
  return c;
}

// --- encoding

class Encoder {
 public:
  Encoder(std::string codec, const py::object& calibration)
      : name_(std::move(codec)), calibration_(calibration_arg(calibration)) {
    packet_codec(name_, DType::kF16, calibration_);  // reject bad names up front
  }

  const std::string& codec() const { return name_; }

  // The frame as bytes (one copy of the encoded packet; the tensor is read in place).
  py::bytes encode(const py::object& tensor, int vector_axis, const std::string& dtype,
                   const std::string& name, const py::object& stream_id, const py::object& sequence,
                   const std::string& layout, const py::bytes& fingerprint,
                   const std::string& model_id, int split_layer) {
    agp_py::HeldTensor b = hold_tensor(tensor, vector_axis, dtype, false);
    agp::ptp::MessageHeader h = header(
        name, static_cast<std::uint32_t>(int_arg(stream_id, "stream_id", 0, UINT32_MAX)),
        static_cast<std::uint64_t>(int_arg(sequence, "sequence", 0, INT64_MAX)), fingerprint,
        model_id, split_layer);
    const agp::ptp::Layout l = layout_of(layout);
    if (raw()) b.make_contiguous();  // raw packets carry the bytes in C order
    agp::ptp::TensorPacketWriter& w = writer_for(b.view.dtype);
    agp::Result<agp::ptp::GatherList> g = agp::ptp::GatherList{};
    // The writer's buffers hold the frame until it is copied out: one thread at a time.
    std::unique_lock<std::mutex> hold(mu_, std::defer_lock);
    {
      py::gil_scoped_release unlocked;
      hold.lock();
      g = w.write(b.view, std::move(h), l);
    }
    if (!g) raise(g.status());
    PyObject* out = PyBytes_FromStringAndSize(nullptr, static_cast<py::ssize_t>(g->total_bytes));
    if (!out) throw py::error_already_set();
    char* dst = PyBytes_AS_STRING(out);
    for (const auto& piece : g->pieces) {
      std::memcpy(dst, piece.data(), piece.size());
      dst += piece.size();
    }
    return py::reinterpret_steal<py::bytes>(out);
  }

  // The frame written into `out` (a writable contiguous buffer: bytearray, NumPy uint8, ...);
  // returns its length. A host that streams reuses one buffer: no allocation per packet.
  std::size_t encode_into(const py::object& tensor, const py::object& out, int vector_axis,
                          const std::string& dtype, const std::string& name,
                          const py::object& stream_id, const py::object& sequence,
                          const std::string& layout, const py::bytes& fingerprint,
                          const std::string& model_id, int split_layer) {
    agp_py::HeldTensor b = hold_tensor(tensor, vector_axis, dtype, false);
    if (!PyObject_CheckBuffer(out.ptr())) invalid("out must be a writable bytes-like buffer");
    py::buffer_info o;
    try {
      o = py::reinterpret_borrow<py::buffer>(out).request(true);
    } catch (py::error_already_set&) {
      invalid("out must be a writable buffer (this one is read-only)");
    }
    if (o.ndim != 1 || o.strides[0] != o.itemsize) invalid("out must be one contiguous run of bytes");
    const auto capacity = static_cast<std::size_t>(o.size * o.itemsize);
    agp::ptp::MessageHeader h = header(
        name, static_cast<std::uint32_t>(int_arg(stream_id, "stream_id", 0, UINT32_MAX)),
        static_cast<std::uint64_t>(int_arg(sequence, "sequence", 0, INT64_MAX)), fingerprint,
        model_id, split_layer);
    const agp::ptp::Layout l = layout_of(layout);
    if (raw()) b.make_contiguous();
    agp::ptp::TensorPacketWriter& w = writer_for(b.view.dtype);
    agp::Result<agp::ptp::GatherList> g = agp::ptp::GatherList{};
    {
      py::gil_scoped_release unlocked;
      std::lock_guard<std::mutex> hold(mu_);
      g = w.write(b.view, std::move(h), l);
      if (g && g->total_bytes <= capacity) {
        auto* dst = static_cast<char*>(o.ptr);
        for (const auto& piece : g->pieces) {
          std::memcpy(dst, piece.data(), piece.size());
          dst += piece.size();
        }
      }
    }
    if (!g) raise(g.status());
    if (g->total_bytes > capacity) {
      invalid("out holds " + std::to_string(capacity) + " bytes; the frame needs " +
              std::to_string(g->total_bytes));
    }
    return g->total_bytes;
  }

  // C++ timing of the same encode (writer.write, then the frame flattened into one buffer), for
  // the benchmark that compares the module's cost with the library's. Seconds per call.
  double time_cpp(const py::object& tensor, int vector_axis, int iterations, bool flatten) {
    agp_py::HeldTensor b = hold_tensor(tensor, vector_axis, "", false);
    agp::ptp::TensorPacketWriter& w = writer_for(b.view.dtype);
    std::vector<std::byte> flat;
    py::gil_scoped_release unlocked;
    std::lock_guard<std::mutex> hold(mu_);
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < iterations; ++i) {
      auto g = w.write(b.view, agp::ptp::MessageHeader{}, agp::ptp::Layout::kUnspecified);
      if (!g) return -1;
      if (flatten) {
        flat.resize(g->total_bytes);
        std::byte* dst = flat.data();
        for (const auto& piece : g->pieces) {
          std::memcpy(dst, piece.data(), piece.size());
          dst += piece.size();
        }
      }
    }
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() /
           std::max(1, iterations);
  }

 private:
  static agp::ptp::MessageHeader header(const std::string& name, std::uint32_t stream_id,
                                        std::uint64_t sequence, const py::bytes& fingerprint,
                                        const std::string& model_id, int split_layer) {
    agp::ptp::MessageHeader h;
    h.stream_id = stream_id;
    h.sequence = sequence;
    h.fingerprint = hash_of(fingerprint);
    h.model_id = model_id;
    h.split_layer = split_layer;
    h.tensor = agp::ptp::TensorDesc{};
    h.tensor->name = name;
    return h;
  }

  agp::ptp::TensorPacketWriter& writer_for(DType d) {
    std::unique_lock<std::mutex> hold(mu_, std::defer_lock);
    {
      py::gil_scoped_release unlocked;  // another thread may hold mu_ waiting for the GIL
      hold.lock();
    }
    auto it = writers_.find(d);
    if (it == writers_.end()) {
      it = writers_.emplace(d, agp::ptp::TensorPacketWriter(packet_codec(name_, d, calibration_))).first;
    }
    return it->second;
  }

  std::string name_;
  std::shared_ptr<const agp::codec::Calibration> calibration_;
  std::map<DType, agp::ptp::TensorPacketWriter> writers_;  // raw packets carry the dtype
  std::mutex mu_;  // encodes from several threads take turns
  bool raw() const { return name_ == "raw"; }
};

// --- frames

std::string shape_text(const std::vector<std::uint64_t>& shape) {
  std::string t = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) t += (i ? ", " : "") + std::to_string(shape[i]);
  return t + (shape.size() == 1 ? ",)" : ")");
}

// The caller's (or a new) output for a packet: its shape must be the packet's tensor's.
agp_py::HeldTensor hold_output(const py::object& target, const agp::ptp::MessageHeader& h) {
  if (!h.tensor) invalid("not a tensor packet");
  agp_py::HeldTensor b = hold_tensor(target, -1, "", true);
  if (b.view.shape != h.tensor->shape) {
    invalid("out has shape " + shape_text(b.view.shape) + " but the packet's tensor is " +
            shape_text(h.tensor->shape));
  }
  b.view.vector_axis = h.tensor->vector_axis;
  return b;
}

class Frame {
 public:
  Frame(const py::object& data, const py::bytes& expected_fingerprint) {
    const py::buffer_info i = request_buffer(data);
    const auto n = static_cast<std::size_t>(i.size * i.itemsize);
    if (i.ndim != 1 || i.strides[0] != i.itemsize)
      invalid("a frame must be a contiguous bytes-like object");
    bytes_ = agp::ptp::AlignedBuffer(n);
    if (n) std::memcpy(bytes_.data(), i.ptr, n);
    agp::ptp::DecoderOptions opts;
    if (py::len(expected_fingerprint) > 0)
      opts.expected_fingerprint = hash_of(expected_fingerprint);
    view_ = check(agp::ptp::parse_frame(bytes_.span(), opts));
    if (view_.frame_bytes != n) {
      invalid("the data holds " + std::to_string(n - view_.frame_bytes) +
              " bytes after the frame's " + std::to_string(view_.frame_bytes) +
              "; a Frame takes exactly one frame");
    }
  }

  PacketInfo info() const { return info_of(view_.header, view_.frame_bytes); }

  py::object decode(const py::object& out, const std::string& dtype,
                    const py::object& calibration) const {
    const auto cal = calibration_arg(calibration);
    if (!out.is_none() && !dtype.empty()) {
      invalid("dtype is for the new array; with out, the packet is decoded into out's dtype");
    }
    py::object target = out.is_none() ? py::object(new_array_for(view_.header, dtype)) : out;
    agp_py::HeldTensor b = hold_output(target, view_.header);
    Status s;
    {
      py::gil_scoped_release unlocked;
      agp::ptp::TensorPacketReader reader;
      reader.set_calibration(cal);
      s = reader.read(view_.header, view_.body, b.view);
    }
    check(s);
    return target;
  }

 private:
  agp::ptp::AlignedBuffer bytes_;
  agp::ptp::FrameView view_;
};

// --- links

agp::transport::LinkOptions link_options(const py::bytes& fingerprint, const std::string& model_id,
                                         int split_layer, const std::string& peer_name,
                                         const py::bytes& key, const py::object& chunk_vectors,
                                         const py::object& streams,
                                         const py::object& encode_threads,
                                         const py::object& decode_threads,
                                         const py::object& dead_peer_timeout_ms,
                                         bool ack_on_receive, const py::object& busy_poll_us,
                                         const py::object& calibration, const std::string& backend,
                                         const std::string& ucx_transports,
                                         const py::object& window_packets,
                                         const py::object& max_tensor_bytes) {
  agp::transport::LinkOptions o;
  if (backend != "tcp" && backend != "ucx") {
    raise(agp::make_error(ErrorCode::kInvalidArgument, "backend must be 'tcp' or 'ucx', got '" + backend + "'"));
  }
  o.backend = backend == "ucx" ? agp::transport::TransportBackend::kUcx : agp::transport::TransportBackend::kTcp;
  o.ucx_transports = ucx_transports;
  o.fingerprint = hash_of(fingerprint);
  o.model_id = model_id;
  o.split_layer = split_layer;
  o.peer_name = peer_name;
  const std::string k = key;
  o.key.assign(k.begin(), k.end());
  o.chunk_vectors =
      static_cast<std::uint64_t>(int_arg(chunk_vectors, "chunk_vectors", 0, std::int64_t{1} << 40));
  o.streams = static_cast<std::uint16_t>(int_arg(streams, "streams", 1, 8));
  o.encode_threads = static_cast<std::uint16_t>(int_arg(encode_threads, "encode_threads", 1, 16));
  o.decode_threads = static_cast<std::uint16_t>(int_arg(decode_threads, "decode_threads", 1, 16));
  o.dead_peer_timeout = agp::transport::Millis(
      int_arg(dead_peer_timeout_ms, "dead_peer_timeout_ms", 1, kMaxTimeoutMs));
  o.ack_on_receive = ack_on_receive;
  o.busy_poll_us = static_cast<std::uint32_t>(int_arg(busy_poll_us, "busy_poll_us", 0, 10'000'000));
  o.calibration = calibration_arg(calibration);
  o.window_packets =
      static_cast<std::uint32_t>(int_arg(window_packets, "window_packets", 1, 1 << 20));
  o.limits.max_tensor_bytes = static_cast<std::uint64_t>(
      int_arg(max_tensor_bytes, "max_tensor_bytes", 1, std::int64_t{1} << 40));
  check(agp::transport::validate(o));
  return o;
}

py::dict counters_dict(const agp::transport::Counters& c) {
  py::dict d;
  d["bytes_sent"] = c.bytes_sent;
  d["bytes_received"] = c.bytes_received;
  d["frames_sent"] = c.frames_sent;
  d["frames_received"] = c.frames_received;
  d["packets_sent"] = c.packets_sent;
  d["packets_acked"] = c.packets_acked;
  d["packets_delivered"] = c.packets_delivered;
  d["retransmits"] = c.retransmits;
  d["duplicates_dropped"] = c.duplicates_dropped;
  d["checksum_failures"] = c.checksum_failures;
  d["frame_errors"] = c.frame_errors;
  d["reconnects"] = c.reconnects;
  d["handshake_rejections"] = c.handshake_rejections;
  d["heartbeats_sent"] = c.heartbeats_sent;
  d["unacked_packets"] = c.unacked_packets;
  d["unacked_bytes"] = c.unacked_bytes;
  return d;
}

struct Receipt {
  std::uint64_t sequence, wire_bytes;
  std::uint32_t chunks;
  double encode_us, latency_us;
};

Receipt receipt_of(const agp::transport::Receipt& r) {
  return {r.sequence, r.wire_bytes, r.chunks, r.encode_us, r.latency_us};
}

// One event loop of the library: a connecting Link, or a Server with the Links it accepted. The
// library wants one thread at a time in it; calls from several Python threads (and the asyncio
// helper thread, agp_ptp/_aio.py) take turns on this lock, taken only after the GIL is released.
struct Family {
  std::mutex mu;
  py::object driver = py::none();  // the asyncio helper of this loop, made on first use
};

// Runs `body` without the GIL and with the family's lock.
// The library's log records wait here and reach Python after the call that made them has let go
// of its family's lock: a logging handler may then call into the library (metrics_text, ...).
struct LogQueue {
  std::mutex mu;
  std::deque<std::tuple<int, std::string, std::string>> records;
  std::shared_ptr<py::object> handler;  // agp_ptp._log's forwarder, or none
};
LogQueue& log_queue() {
  static auto* q = new LogQueue;  // never destroyed: records may come during interpreter exit
  return *q;
}

// With the GIL: hands the queued records to the handler.
void deliver_log_records() {
  LogQueue& q = log_queue();
  for (;;) {
    std::tuple<int, std::string, std::string> r;
    std::shared_ptr<py::object> handler;
    {
      std::lock_guard<std::mutex> hold(q.mu);
      if (q.records.empty()) return;
      r = std::move(q.records.front());
      q.records.pop_front();
      handler = q.handler;
    }
    if (!handler) continue;
    try {
      (*handler)(std::get<0>(r), std::get<1>(r), std::get<2>(r));
    } catch (py::error_already_set& e) {
      e.discard_as_unraisable("agp_ptp log handler");
    }
  }
}

// Set by agp_ptp._aio around the calls it tries on the event loop's thread: there a busy lock (the
// helper thread, or another thread's blocking call) must not be waited for; the call fails with
// timeout instead and goes to the helper.
thread_local bool t_try_lock = false;

// Runs `body` without the GIL and with the family's lock; then delivers log records.
template <typename Body>
auto locked(Family& f, Body&& body) {
  std::optional<decltype(body())> r;
  bool busy = false;
  {
    py::gil_scoped_release unlocked;
    std::unique_lock<std::mutex> hold(f.mu, std::defer_lock);
    if (t_try_lock) {
      busy = !hold.try_lock();
    } else {
      hold.lock();
    }
    if (!busy) r.emplace(body());
  }
  // Records of this call are queued to the library's log thread: let them arrive first.
  agp::transport::flush_log(std::chrono::milliseconds(100));
  deliver_log_records();
  if (busy) raise(Status(ErrorCode::kTimeout, "busy: another call holds the link"));
  return std::move(*r);
}

class Link {
 public:
  Link(std::unique_ptr<agp::transport::Link> l, std::shared_ptr<const agp::codec::Calibration> cal,
       std::shared_ptr<Family> family)
      : link_(std::move(l)), calibration_(std::move(cal)), family_(std::move(family)) {}

  Receipt send(const py::object& tensor, const std::string& codec, int vector_axis,
               const std::string& dtype, const std::string& name, const py::object& stream_id,
               const std::string& layout, const py::object& timeout_ms) {
    agp_py::HeldTensor b = hold_tensor(tensor, vector_axis, dtype, false);
    const agp::ptp::PacketCodec c = codec_for(codec, b.view.dtype);  // with the link's calibration
    if (c.config.id == agp::CodecId::kRaw) b.make_contiguous();
    const agp::transport::PacketMeta meta = meta_of(name, stream_id, layout);
    const auto timeout = timeout_arg(timeout_ms, "timeout_ms");
    agp::transport::Link& l = live();
    return receipt_of(check(locked(*family_, [&] { return l.send(b.view, c, meta, timeout); })));
  }

  // Encodes and queues; the tensor is the caller's again on return (raw bytes are copied).
  std::uint64_t post(const py::object& tensor, const std::string& codec, int vector_axis,
                     const std::string& dtype, const std::string& name,
                     const py::object& stream_id, const std::string& layout,
                     const py::object& timeout_ms) {
    agp_py::HeldTensor b = hold_tensor(tensor, vector_axis, dtype, false);
    const agp::ptp::PacketCodec c = codec_for(codec, b.view.dtype);
    if (c.config.id == agp::CodecId::kRaw) b.make_contiguous();
    const agp::transport::PacketMeta meta = meta_of(name, stream_id, layout);
    const auto timeout = timeout_arg(timeout_ms, "timeout_ms");
    agp::transport::Link& l = live();
    return check(locked(*family_, [&] { return l.post(b.view, c, meta, timeout); }));
  }

  // post() for the event loop's thread: 0 instead of waiting, whether for room in the window or
  // for the link's lock (no exception on that path: it is the common one when streaming).
  std::uint64_t post_nowait(const py::object& tensor, const std::string& codec, int vector_axis,
                            const std::string& dtype, const std::string& name,
                            const py::object& stream_id, const std::string& layout) {
    agp_py::HeldTensor b = hold_tensor(tensor, vector_axis, dtype, false);
    const agp::ptp::PacketCodec c = codec_for(codec, b.view.dtype);
    if (c.config.id == agp::CodecId::kRaw) b.make_contiguous();
    const agp::transport::PacketMeta meta = meta_of(name, stream_id, layout);
    agp::transport::Link& l = live();
    agp::Result<std::uint64_t> r = std::uint64_t{0};
    bool busy = false;
    {
      py::gil_scoped_release unlocked;
      std::unique_lock<std::mutex> hold(family_->mu, std::try_to_lock);
      busy = !hold.owns_lock();
      if (!busy) r = l.post(b.view, c, meta, agp::transport::Millis(0));
    }
    deliver_log_records();
    if (busy || (!r && r.status().code() == ErrorCode::kTimeout)) return 0;
    return check(std::move(r));
  }

  Receipt wait_acked(const py::object& sequence, const py::object& timeout_ms) {
    const auto seq = static_cast<std::uint64_t>(int_arg(sequence, "sequence", 0, INT64_MAX));
    const auto timeout = timeout_arg(timeout_ms, "timeout_ms");
    agp::transport::Link& l = live();
    return receipt_of(check(locked(*family_, [&] { return l.wait_acked(seq, timeout); })));
  }

  void flush(const py::object& timeout_ms) {
    const auto timeout = timeout_arg(timeout_ms, "timeout_ms");
    agp::transport::Link& l = live();
    check(locked(*family_, [&] { return l.flush(timeout); }));
  }

  PacketInfo next_packet(const py::object& timeout_ms) {
    const auto timeout = timeout_arg(timeout_ms, "timeout_ms");
    agp::transport::Link& l = live();
    return info_of(check(locked(*family_, [&] { return l.next_packet(timeout); })), 0);
  }

  py::object receive(const py::object& out, const std::string& dtype,
                     const py::object& timeout_ms) {
    const auto timeout = timeout_arg(timeout_ms, "timeout_ms");
    agp::transport::Link& l = live();
    const auto until = std::chrono::steady_clock::now() + timeout;
    const agp::ptp::MessageHeader h =
        check(locked(*family_, [&] { return l.next_packet(timeout); }));
    // A packet whose receive timed out part way was partly decoded into the buffer of that call:
    // the next call goes on in it when it is the same object (or, without out, the array made
    // then); any other buffer starts the packet over, even one at the same address (a pool, or
    // memory freed and reused), which the library alone could not tell apart.
    if (!out.is_none() && !dtype.empty()) {
      invalid("dtype is for the new array; with out, the packet is decoded into out's dtype");
    }
    const bool resumed = !unfinished_.is_none() && unfinished_sequence_ == h.sequence &&
                         (out.is_none() ? unfinished_ours_ && unfinished_dtype_ == dtype
                                        : out.is(unfinished_));
    py::object target = resumed ? unfinished_ : out.is_none() ? new_array_for(h, dtype) : out;
    unfinished_ = py::none();
    agp_py::HeldTensor b = hold_output(target, h);
    auto d = locked(*family_, [&] {
      if (!resumed) l.restart_receive();
      const auto left = std::chrono::duration_cast<agp::transport::Millis>(
          until - std::chrono::steady_clock::now());
      return l.receive(b.view, std::max(left, agp::transport::Millis(0)));
    });
    if (!d && d.status().code() == ErrorCode::kTimeout) {
      unfinished_ = target;
      unfinished_ours_ = out.is_none();
      unfinished_sequence_ = h.sequence;
      unfinished_dtype_ = dtype;
    }
    if (!d) raise(d.status());
    return target;
  }

  void acknowledge() {
    agp::transport::Link& l = live();
    check(locked(*family_, [&] { return l.acknowledge(); }));
  }

  void close(const py::object& timeout_ms) {
    if (!link_) return;
    const auto timeout = timeout_arg(timeout_ms, "timeout_ms");
    agp::transport::Link& l = *link_;
    check(locked(*family_, [&] { return l.close(timeout); }));
    closed_ = true;  // only once it did close (a timed-out close leaves the link open)
  }
  void abort(const std::string& reason) {
    agp::transport::Link& l = live();
    locked(*family_, [&] {
      l.abort(Status(ErrorCode::kAborted, reason.empty() ? "the peer aborted the link" : reason));
      return 0;
    });
    closed_ = true;
  }
  bool closed() const { return closed_; }

  std::size_t poll() {
    agp::transport::Link& l = live();
    return locked(*family_, [&] { return l.poll(); });
  }
  std::size_t wait_event(const py::object& timeout_ms) {
    const auto timeout = timeout_arg(timeout_ms, "timeout_ms");
    agp::transport::Link& l = live();
    return locked(*family_, [&] { return l.wait_event(timeout); });
  }
  void wake() { live().wake(); }  // thread-safe: no lock

  // Bytes of the next packet's tensor in `dtype` (its own: ""), or -1 when none is queued.
  std::int64_t next_packet_bytes(const std::string& dtype) {
    agp::transport::Link& l = live();
    auto h = locked(*family_, [&] { return l.next_packet(agp::transport::Millis(0)); });
    if (!h) {
      if (h.status().code() == ErrorCode::kTimeout) return -1;
      raise(h.status());
    }
    const auto named = agp::dtype_from_name(dtype);
    if (!dtype.empty() && !named) invalid("unknown dtype '" + dtype + "'");
    const agp::DType d = named ? *named : h->tensor->dtype;
    std::uint64_t n = agp::dtype_size(d);
    for (auto x : h->tensor->shape) n *= x;
    return static_cast<std::int64_t>(n);
  }

  py::dict counters() { return counters_dict(live().counters()); }

  py::object driver() const { return family_->driver; }
  void set_driver(py::object d) { family_->driver = std::move(d); }

  agp::transport::LinkMetrics metrics() {
    agp::transport::Link& l = live();
    return locked(*family_, [&] { return l.metrics(); });
  }

  // The benchmark's C++ sender: posts `count` packets of `tensor` (encoded each time, raw bytes
  // copied, as post() from Python does) and flushes; seconds from the first post to the last ack.
  double stream_cpp(const py::object& tensor, const std::string& codec, int vector_axis,
                    int count) {
    agp_py::HeldTensor b = hold_tensor(tensor, vector_axis, "", false);
    const agp::ptp::PacketCodec c = codec_for(codec, b.view.dtype);
    agp::transport::Link& l = live();
    return locked(*family_, [&] {
      const auto t0 = std::chrono::steady_clock::now();
      for (int i = 0; i < count; ++i) {
        if (!l.post(b.view, c, {}, agp::transport::Millis(10000))) return -1.0;
      }
      if (!l.flush(agp::transport::Millis(10000))) return -1.0;
      return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    });
  }

 private:
  static agp::transport::PacketMeta meta_of(const std::string& name, const py::object& stream_id,
                                            const std::string& layout) {
    return agp::transport::PacketMeta{
        name, static_cast<std::uint32_t>(int_arg(stream_id, "stream_id", 0, UINT32_MAX)),
        layout_of(layout)};
  }
  agp::transport::Link& live() {
    if (!link_) raise(Status(ErrorCode::kBadState, "the link is closed"));
    return *link_;
  }
  agp::ptp::PacketCodec codec_for(const std::string& name, DType d) {
    auto key = std::make_pair(name, d);
    auto it = codecs_.find(key);
    if (it == codecs_.end()) {
      it = codecs_.emplace(key, packet_codec(name, d, calibration_)).first;
    }
    return it->second;
  }
  std::unique_ptr<agp::transport::Link> link_;
  std::shared_ptr<const agp::codec::Calibration> calibration_;  // the link's, for cal codecs
  std::shared_ptr<Family> family_;
  std::map<std::pair<std::string, DType>, agp::ptp::PacketCodec> codecs_;
  bool closed_ = false;
  py::object unfinished_ = py::none();  // the buffer of a packet whose receive timed out
  bool unfinished_ours_ = false;        // made by receive (out=None), not the caller's
  std::uint64_t unfinished_sequence_ = 0;
  std::string unfinished_dtype_;
};

class Server {
 public:
  Server(std::unique_ptr<agp::transport::Server> s, std::shared_ptr<const agp::codec::Calibration> cal)
      : server_(std::move(s)), calibration_(std::move(cal)), family_(std::make_shared<Family>()) {}
  std::uint16_t port() const { return server_->port(); }
  Link accept(const py::object& timeout_ms) {
    const auto timeout = timeout_arg(timeout_ms, "timeout_ms");
    agp::transport::Server& s = *server_;
    auto l = check(locked(*family_, [&] { return s.accept(timeout); }));
    return Link(std::move(l), calibration_, family_);  // on the server's event loop
  }
  std::size_t poll() {
    agp::transport::Server& s = *server_;
    return locked(*family_, [&] { return s.poll(); });
  }
  std::size_t wait_event(const py::object& timeout_ms) {
    const auto timeout = timeout_arg(timeout_ms, "timeout_ms");
    agp::transport::Server& s = *server_;
    return locked(*family_, [&] { return s.wait_event(timeout); });
  }
  void wake() { server_->wake(); }
  py::object driver() const { return family_->driver; }
  void set_driver(py::object d) { family_->driver = std::move(d); }

 private:
  std::unique_ptr<agp::transport::Server> server_;
  std::shared_ptr<const agp::codec::Calibration> calibration_;
  std::shared_ptr<Family> family_;
};

py::dict histogram_dict(const agp::transport::LatencyHistogram& h) {
  py::dict d;
  py::list bounds, counts;
  for (double b : agp::transport::LatencyHistogram::kBoundsUs) bounds.append(b);
  for (auto c : h.buckets) counts.append(c);
  d["bounds_us"] = bounds;  // upper bounds; counts has one more entry (above the last)
  d["counts"] = counts;
  d["count"] = h.count;
  d["sum_us"] = h.sum_us;
  d["p50_us_at_most"] = h.quantile_bound_us(0.5);
  d["p99_us_at_most"] = h.quantile_bound_us(0.99);
  return d;
}

py::dict metrics_dict(const agp::transport::LinkMetrics& m) {
  py::dict d = counters_dict(m.counters);
  py::dict codecs;
  for (const auto& [name, lat] : m.codecs) {
    py::dict c;
    c["ack"] = histogram_dict(lat.ack_us);
    c["encode"] = histogram_dict(lat.encode_us);
    c["decode"] = histogram_dict(lat.decode_us);
    codecs[py::str(name)] = c;
  }
  d["codecs"] = codecs;
  return d;
}

// {label: Link} (or one Link with labels) as one exposition.
std::string metrics_text_of(const py::dict& links) {
  std::vector<agp::transport::LabeledMetrics> all;
  for (auto [label, link] : links) {
    if (!PyUnicode_Check(label.ptr()) || !py::isinstance<Link>(link)) {
      invalid("metrics_text takes {label: Link} with str labels");
    }
    Py_ssize_t n = 0;
    const char* utf8 = PyUnicode_AsUTF8AndSize(label.ptr(), &n);
    if (!utf8) {
      PyErr_Clear();
      invalid("a metrics label must be valid UTF-8 text");
    }
    all.push_back({{{"link", std::string(utf8, static_cast<std::size_t>(n))}},
                   link.cast<Link&>().metrics()});
  }
  return agp::transport::prometheus_text(all);
}

}  // namespace

PYBIND11_MODULE(_agp_ptp, m) {
  m.doc() = "AGP-PTP: compressed neural-network state transfer (native part; import agp_ptp)";
  // The exception class is plain Python (agp_ptp/_errors.py), so it pickles and subclasses well.
  g_error = py::module_::import("agp_ptp._errors").attr("Error").ptr();
  Py_INCREF(g_error);
  m.attr("Error") = py::reinterpret_borrow<py::object>(g_error);
  agp_py::bind_index(m);
  agp_py::bind_tensors(m);

  py::class_<Calibration>(m, "Calibration",
                          "A calibration file (ptp-calibrate) for the calibrated codecs cal2..cal8: "
                          "both ends load the same one; its id enters the fingerprint.")
      .def(py::init(&Calibration::load), py::arg("path"),
           "Loads and checks (version, checksum, fields) a calibration file.")
      .def_property_readonly("id", [](const Calibration& c) { return c.cal->id; })
      .def_property_readonly("dim", [](const Calibration& c) { return c.cal->dim; })
      .def_property_readonly("groups", [](const Calibration& c) { return c.cal->group_count(); })
      .def_property_readonly("info", [](const Calibration& c) { return c.info; },
                             "JSON text: what was calibrated on what")
      .def("__repr__", [](const Calibration& c) {
        return "Calibration(id=" + agp::ptp::to_hex(c.cal->id) + ", dim=" + std::to_string(c.cal->dim) + ")";
      });

  m.def(
      "checkpoint_fingerprint",
      [](const std::string& dir, const py::object& split_layer, const py::object& hidden_size,
         const py::object& calibration) {
        // Range checks here: a negative or huge number is the caller's error (agp_ptp.Error),
        // not a TypeError from the binding.
        const auto split = static_cast<int>(int_arg(split_layer, "split_layer", 0, 1 << 20));
        const auto hidden =
            static_cast<std::uint64_t>(int_arg(hidden_size, "hidden_size", 1, std::int64_t{1} << 32));
        const auto cal = calibration_arg(calibration);
        return bytes_of(check(agp::ptp::checkpoint_fingerprint(
            dir, split, hidden, DType::kF16, cal ? cal->id : 0)));
      },
      py::arg("dir"), py::arg("split_layer"), py::arg("hidden_size"), py::kw_only(),
      py::arg("calibration") = py::none(),
      "The 16-byte fingerprint of a Hugging Face checkpoint directory split at split_layer with "
      "float16 states, derived as every AGP-PTP host derives it (config.json and the "
      "*.safetensors files), so Python and C++ ends of one split agree.");

  py::class_<PacketInfo>(m, "PacketInfo", "What a verified packet header says.")
      .def_readonly("sequence", &PacketInfo::sequence)
      .def_readonly("stream_id", &PacketInfo::stream_id)
      .def_readonly("timestamp_ns", &PacketInfo::timestamp_ns, "sender's wall clock")
      .def_readonly("split_layer", &PacketInfo::split_layer, "-1: not a split-model packet")
      .def_readonly("name", &PacketInfo::name, "tensor name")
      .def_readonly("dtype", &PacketInfo::dtype, "source dtype: float16, float32 or bfloat16")
      .def_readonly("shape", &PacketInfo::shape)
      .def_readonly("vector_axis", &PacketInfo::vector_axis)
      .def_readonly("layout", &PacketInfo::layout)
      .def_readonly("codec", &PacketInfo::codec, "short codec name, e.g. 'tq4'")
      .def_readonly("model_id", &PacketInfo::model_id)
      .def_readonly("fingerprint", &PacketInfo::fingerprint, "16-byte model fingerprint")
      .def_readonly("frame_bytes", &PacketInfo::frame_bytes, "0 for packets from a link")
      .def("__repr__", [](const PacketInfo& p) {
        std::string shape;
        for (auto d : p.shape) {
          if (!shape.empty()) shape += ',';
          shape += std::to_string(d);
        }
        return "PacketInfo(sequence=" + std::to_string(p.sequence) + ", codec='" + p.codec +
               "', dtype='" + p.dtype + "', shape=(" + shape + "), name='" + p.name + "')";
      });

  py::class_<Receipt>(m, "Receipt", "Proof that the peer verified and decoded a packet.")
      .def_readonly("sequence", &Receipt::sequence)
      .def_readonly("wire_bytes", &Receipt::wire_bytes)
      .def_readonly("chunks", &Receipt::chunks)
      .def_readonly("encode_us", &Receipt::encode_us)
      .def_readonly("latency_us", &Receipt::latency_us, "send to the peer's acknowledgement");

  py::class_<Encoder>(m, "Encoder",
                      "Encodes tensors into verified frames with one codec, keeping its tables "
                      "and buffers between calls.")
      .def(py::init<std::string, const py::object&>(), py::arg("codec"), py::kw_only(),
           py::arg("calibration") = py::none(),
           "codec: 'raw', 'tq1'..'tq8' (TurboQuant), 'prod2'..'prod8', 'int8', 'int4', "
           "'ec2'..'ec8', 'cal2'..'cal8' (calibrated: give the Calibration)")
      .def_property_readonly("codec", &Encoder::codec)
      .def("encode", &Encoder::encode, py::arg("tensor"), py::kw_only(),
           py::arg("vector_axis") = -1, py::arg("dtype") = "", py::arg("name") = "",
           py::arg("stream_id") = 0, py::arg("sequence") = 0, py::arg("layout") = "",
           py::arg("fingerprint") = py::bytes(), py::arg("model_id") = "",
           py::arg("split_layer") = -1,
           "Encodes a float16/float32 buffer (or uint16 with dtype='bfloat16') whose vectors run "
           "along vector_axis; returns the frame as bytes. The tensor is read in place.")
      .def("encode_into", &Encoder::encode_into, py::arg("tensor"), py::arg("out"), py::kw_only(),
           py::arg("vector_axis") = -1, py::arg("dtype") = "", py::arg("name") = "",
           py::arg("stream_id") = 0, py::arg("sequence") = 0, py::arg("layout") = "",
           py::arg("fingerprint") = py::bytes(), py::arg("model_id") = "",
           py::arg("split_layer") = -1,
           "As encode, but writes the frame into `out` (a writable contiguous buffer such as a "
           "bytearray, reused from packet to packet) and returns its length; too small a buffer "
           "is an Error saying the size needed.")
      .def("_time_cpp", &Encoder::time_cpp, py::arg("tensor"), py::arg("vector_axis"),
           py::arg("iterations"), py::arg("flatten"));

  py::class_<Frame>(m, "Frame", "A parsed and verified frame (checksums, bounds, descriptors).")
      .def(py::init<const py::object&, const py::bytes&>(), py::arg("data"),
           py::arg("expected_fingerprint") = py::bytes(),
           "Parses the frame at the start of a bytes-like object; with expected_fingerprint a "
           "packet of another model is refused.")
      .def_property_readonly("info", &Frame::info)
      .def("decode", &Frame::decode, py::arg("out") = py::none(), py::arg("dtype") = "",
           py::arg("calibration") = py::none(),
           "Decodes into `out` (a writable float16/float32 buffer of the packet's shape, any "
           "strides) or into a new NumPy array (dtype: the packet's by default); returns it.");

  m.def("metrics_text", &metrics_text_of, py::arg("links"),
        "The Prometheus text exposition of several links, {label: Link}, each sample labelled "
        "link=\"<label>\" (serve it at /metrics: docs/observability.md).");

  m.def(
      "_set_log_handler",
      [](py::object fn, int min_level) {
        LogQueue& q = log_queue();
        if (fn.is_none()) {
          agp::transport::set_log_handler(nullptr);
          std::shared_ptr<py::object> old;
          {
            std::lock_guard<std::mutex> hold(q.mu);
            old = std::move(q.handler);
            q.records.clear();
          }
          return;  // `old` released here, with the GIL
        }
        {
          std::lock_guard<std::mutex> hold(q.mu);
          q.handler = std::make_shared<py::object>(std::move(fn));
        }
        // Records are queued (no GIL needed) and delivered by the Python call that made them
        // once it has let go of its link's lock, or by the next one.
        agp::transport::set_log_handler(
            [](const agp::transport::LogRecord& r) {
              LogQueue& lq = log_queue();
              std::lock_guard<std::mutex> hold(lq.mu);
              if (lq.records.size() < 10000) {
                lq.records.emplace_back(static_cast<int>(r.level), std::string(r.event),
                                        std::string(r.message));
              }
            },
            static_cast<agp::transport::LogLevel>(min_level));
      },
      py::arg("handler"), py::arg("min_level") = 10);
  m.def("_deliver_log_records", &deliver_log_records);
  m.def(
      "_copy_into",
      [](const py::object& from, const py::object& to) {
        agp_py::HeldTensor a = hold_tensor(from, -1, "", false);
        agp_py::HeldTensor b = hold_tensor(to, -1, "", true);
        if (a.view.shape != b.view.shape) {
          invalid("out has shape " + shape_text(b.view.shape) + " but the packet's tensor is " +
                  shape_text(a.view.shape));
        }
        py::gil_scoped_release unlocked;
        agp_py::copy_values(a.view, b.view);
      },
      py::arg("from_"), py::arg("to"));
  m.def("_set_try_lock", [](bool on) { t_try_lock = on; });

  m.def("ucx_available", &agp::transport::ucx_available,
        "Whether this build has the UCX backend (Link/Server backend='ucx').");

  py::class_<Link>(m, "Link", "A reliable session to a peer: packets delivered once, in order.")
      .def_static(
          "connect",
          [](const std::string& host, const py::object& port, const py::bytes& fingerprint,
             const std::string& model_id, int split_layer, const std::string& peer_name,
             const py::bytes& key, const py::object& chunk_vectors, const py::object& streams,
             const py::object& encode_threads, const py::object& decode_threads,
             const py::object& dead_peer_timeout_ms,
             const py::object& busy_poll_us, const py::object& calibration,
             const std::string& backend, const std::string& ucx_transports,
             const py::object& window_packets, const py::object& max_tensor_bytes) {
            const auto to = static_cast<std::uint16_t>(int_arg(port, "port", 1, 65535));
            const auto o =
                link_options(fingerprint, model_id, split_layer, peer_name, key, chunk_vectors,
                             streams, encode_threads, decode_threads, dead_peer_timeout_ms, true,
                             busy_poll_us,
                             calibration, backend, ucx_transports, window_packets,
                             max_tensor_bytes);
            agp::Result<std::unique_ptr<agp::transport::Link>> l = Status(ErrorCode::kTimeout, "");
            {
              py::gil_scoped_release unlocked;
              l = agp::transport::Link::connect(host, to, o);
            }
            deliver_log_records();
            if (!l) raise(l.status());
            return Link(std::move(l).value(), o.calibration, std::make_shared<Family>());
          },
          py::arg("host"), py::arg("port"), py::kw_only(), py::arg("fingerprint") = py::bytes(),
          py::arg("model_id") = "", py::arg("split_layer") = -1, py::arg("peer_name") = "",
          py::arg("key") = py::bytes(), py::arg("chunk_vectors") = 0, py::arg("streams") = 1,
          py::arg("encode_threads") = 1, py::arg("decode_threads") = 1,
          py::arg("dead_peer_timeout_ms") = 1000, py::arg("busy_poll_us") = 0, py::arg("calibration") = py::none(), py::arg("backend") = "tcp",
          py::arg("ucx_transports") = "", py::arg("window_packets") = 32,
          py::arg("max_tensor_bytes") = std::int64_t{1} << 30,
          "Connects to a Server and completes the handshake (fingerprint, version, key). With a "
          "calibration, cal codecs can be sent and received (its id belongs in the fingerprint). "
          "backend 'tcp' or 'ucx' (ucx_available()), as the server's; ucx_transports restricts UCX "
          "to these UCX_TLS names ('tcp', 'sm,tcp').")
      .def("send", &Link::send, py::arg("tensor"), py::arg("codec"), py::kw_only(),
           py::arg("vector_axis") = -1, py::arg("dtype") = "", py::arg("name") = "",
           py::arg("stream_id") = 0, py::arg("layout") = "", py::arg("timeout_ms") = 10000,
           "Encodes and sends a tensor; returns once the peer verified and decoded it.")
      .def("next_packet", &Link::next_packet, py::arg("timeout_ms") = 10000,
           "Waits for the next packet and describes it (it stays queued).")
      .def("receive", &Link::receive, py::arg("out") = py::none(), py::arg("dtype") = "",
           py::arg("timeout_ms") = 10000,
           "Decodes the next packet into `out` or a new NumPy array, acknowledges it, returns it.")
      .def("acknowledge", &Link::acknowledge,
           "With a Server made with ack_on_receive=False: acknowledges every packet received so "
           "far, once they are recorded (a crash before this gets them sent again, not lost).")
      .def("close", &Link::close, py::arg("timeout_ms") = 5000,
           "Waits until everything sent is acknowledged, says goodbye and closes. A timeout with "
           "packets unacknowledged raises Error(timeout) and leaves the link open, still "
           "sending them: close again to wait longer.")
      .def("abort", &Link::abort, py::arg("reason") = "",
           "Ends the link at once and tells the peer why (its calls raise Error(aborted)).")
      .def("post", &Link::post, py::arg("tensor"), py::arg("codec"), py::kw_only(),
           py::arg("vector_axis") = -1, py::arg("dtype") = "", py::arg("name") = "",
           py::arg("stream_id") = 0, py::arg("layout") = "", py::arg("timeout_ms") = 10000,
           "Encodes and queues a tensor for the peer, waiting only while the send window is full; "
           "returns the packet's sequence number. The tensor is yours again on return.")
      .def("_post_nowait", &Link::post_nowait, py::arg("tensor"), py::arg("codec"),
           py::kw_only(), py::arg("vector_axis") = -1, py::arg("dtype") = "",
           py::arg("name") = "", py::arg("stream_id") = 0, py::arg("layout") = "")
      .def("wait_acked", &Link::wait_acked, py::arg("sequence"), py::arg("timeout_ms") = 10000,
           "Waits until packet `sequence` (from post) is verified and decoded by the peer.")
      .def("flush", &Link::flush, py::arg("timeout_ms") = 10000,
           "Waits until every posted packet is acknowledged.")
      .def("poll", &Link::poll,
           "Handles what is ready (acknowledgements, heartbeats, arrivals) without waiting; a host "
           "that makes no call for longer than the peer's dead_peer_timeout_ms should poll.")
      .def("_wait_event", &Link::wait_event, py::arg("timeout_ms"))
      .def("_stream_cpp", &Link::stream_cpp, py::arg("tensor"), py::arg("codec"),
           py::arg("vector_axis"), py::arg("count"))
      .def("_wake", &Link::wake)
      .def("_next_packet_bytes", &Link::next_packet_bytes, py::arg("dtype") = "")
      .def_property("_driver", &Link::driver, &Link::set_driver)
      .def_property_readonly("_closed", &Link::closed)
      .def("counters", &Link::counters, "The link's counters (bytes, frames, packets, ...).")
      .def("metrics", [](Link& l) { return metrics_dict(l.metrics()); },
           "Counters plus latency histograms per codec: codecs[name][ack|encode|decode] with "
           "bounds_us, counts, count, sum_us and the bucket bounds of p50 and p99.")
      .def(
          "metrics_text",
          [](Link& l, const std::string& label) {
            std::vector<agp::transport::LabeledMetrics> one{{{}, l.metrics()}};
            if (!label.empty()) one[0].labels.emplace_back("link", label);
            return agp::transport::prometheus_text(one);
          },
          py::arg("label") = "",
          "The metrics in the Prometheus text exposition format (label: link=\"...\").");

  py::class_<Server>(m, "Server", "Listens for links.")
      .def(py::init([](const std::string& address, const py::object& port,
                       const py::bytes& fingerprint, const std::string& model_id, int split_layer,
                       const py::bytes& key, const py::object& chunk_vectors,
                       const py::object& streams, const py::object& encode_threads,
                       const py::object& decode_threads, const py::object& dead_peer_timeout_ms,
                       bool ack_on_receive, const py::object& busy_poll_us,
                       const py::object& calibration, const std::string& backend,
                       const std::string& ucx_transports, const py::object& window_packets,
                       const py::object& max_tensor_bytes) {
             const auto at = static_cast<std::uint16_t>(int_arg(port, "port", 0, 65535));
             const auto o =
                 link_options(fingerprint, model_id, split_layer, "", key, chunk_vectors, streams,
                              encode_threads, decode_threads, dead_peer_timeout_ms, ack_on_receive,
                              busy_poll_us,
                              calibration, backend, ucx_transports, window_packets,
                              max_tensor_bytes);
             return Server(check(agp::transport::Server::listen(address, at, o)), o.calibration);
           }),
           py::arg("address") = "127.0.0.1", py::arg("port") = 0, py::kw_only(),
           py::arg("fingerprint") = py::bytes(), py::arg("model_id") = "",
           py::arg("split_layer") = -1, py::arg("key") = py::bytes(), py::arg("chunk_vectors") = 0,
           py::arg("streams") = 1, py::arg("encode_threads") = 1, py::arg("decode_threads") = 1,
           py::arg("dead_peer_timeout_ms") = 1000, py::arg("ack_on_receive") = true, py::arg("busy_poll_us") = 0,
           py::arg("calibration") = py::none(), py::arg("backend") = "tcp",
           py::arg("ucx_transports") = "", py::arg("window_packets") = 32,
           py::arg("max_tensor_bytes") = std::int64_t{1} << 30)
      .def_property_readonly("port", &Server::port)
      .def("accept", &Server::accept, py::arg("timeout_ms") = 10000,
           "Waits for a peer to complete the handshake; returns its Link.")
      .def("poll", &Server::poll, "Handles what is ready for the server and its links.")
      .def("_wait_event", &Server::wait_event, py::arg("timeout_ms"))
      .def("_wake", &Server::wake)
      .def_property("_driver", &Server::driver, &Server::set_driver);
}
