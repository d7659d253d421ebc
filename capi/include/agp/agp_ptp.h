/* AGP-PTP C API: encode and decode tensors into verified transfer packets, parse frames, and send
 * and receive packets over a reliable link, from any language with a C FFI.
 *
 * Conventions
 * - Every call that can fail returns an agp_status: 0 (AGP_OK) or one of the library's numbered
 *   error codes (agp_error_name() names it). The message of the calling thread's last failure is
 *   agp_last_error(); it stays valid until that thread's next failing call.
 * - Objects are opaque handles made by the create, parse, connect, listen and accept calls and
 *   released by the matching free call (which accepts NULL). A handle is used by one thread at a
 *   time.
 * - Tensors cross the API as agp_tensor: pointer, dtype, shape and strides in elements (NULL =
 *   C-contiguous). Nothing here owns a tensor's memory; the library reads or fills it in place.
 * - Structs passed in carry their own size in `struct_size` (set by their init functions), so new
 *   fields can be added at the end without breaking callers built against an older header.
 * - Timeouts are in milliseconds.
 * - The embedding index (agp_index_*, added in API version 1.3) takes vectors as row-major f32.
 */
#ifndef AGP_AGP_PTP_H
#define AGP_AGP_PTP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define AGP_C_API __attribute__((visibility("default")))
#else
#define AGP_C_API
#endif

#define AGP_API_VERSION 1
/* Additions within version 1: 1 calibrations, 2 the UCX backend, 3 the embedding index, 4 post,
 * wait_acked and flush (pipelining), metrics and the log hook, 5 agp_link_abort and the config's
 * max_tensor_bytes, 6 the config's decode_threads. */
#define AGP_API_VERSION_MINOR 6
#define AGP_MAX_RANK 8

typedef int32_t agp_status;
#define AGP_OK 0
/* A few codes callers commonly branch on (the full list is agp/status.hpp's ErrorCode). */
#define AGP_ERR_INVALID_ARGUMENT 300
#define AGP_ERR_BUFFER_TOO_SMALL 301
#define AGP_ERR_SECTION_CHECKSUM_MISMATCH 113
#define AGP_ERR_FINGERPRINT_MISMATCH 117
#define AGP_ERR_TIMEOUT 500
#define AGP_ERR_CONNECTION_CLOSED 501
#define AGP_ERR_AUTHENTICATION_FAILED 505
#define AGP_ERR_PEER_LOST 507
#define AGP_ERR_ABORTED 508 /* the peer ended the link early; the message says why */

/* Element types (values as on the wire). Structs and calls carry them as int32_t: the size of a C
 * enum is up to the compiler, and a fixed width keeps the ABI the same everywhere. */
typedef enum agp_dtype { AGP_F32 = 1, AGP_F16 = 2, AGP_BF16 = 3 } agp_dtype;

/* Axis orders a packet can name (informative; the receiver gets it back). Carried as int32_t. */
typedef enum agp_layout {
  AGP_LAYOUT_UNSPECIFIED = 0,
  AGP_LAYOUT_BSD = 1,  /* [batch, sequence, hidden] */
  AGP_LAYOUT_BC1S = 2, /* [batch, channels, 1, sequence] */
  AGP_LAYOUT_SD = 3,   /* [sequence, hidden] */
  AGP_LAYOUT_D = 4,    /* [hidden] */
  AGP_LAYOUT_BCS = 5   /* [batch, channels, sequence] */
} agp_layout;

/* A strided view of host memory. Codecs quantize vectors running along `vector_axis`. */
typedef struct agp_tensor {
  void* data;
  int32_t dtype; /* an agp_dtype */
  int32_t rank; /* 1..AGP_MAX_RANK */
  uint64_t shape[AGP_MAX_RANK];
  const int64_t* strides; /* `rank` strides in elements, or NULL for C-contiguous */
  int32_t vector_axis;
} agp_tensor;

/* What a packet carries, as read from its verified header. */
typedef struct agp_packet_info {
  uint64_t sequence;
  uint32_t stream_id;
  uint64_t timestamp_ns; /* sender's wall clock */
  int32_t split_layer;   /* -1: not a split-model packet */
  int32_t dtype;         /* agp_dtype of the source tensor */
  int32_t rank;
  uint64_t shape[AGP_MAX_RANK];
  int32_t vector_axis;
  int32_t layout; /* an agp_layout */
  char name[64];      /* tensor name, truncated to 63 bytes */
  char codec[16];     /* short codec name, e.g. "tq4" ("" if this build cannot name it) */
  uint64_t frame_bytes;
  uint8_t fingerprint[16];
} agp_packet_info;

/* --- errors and version --- */
AGP_C_API const char* agp_last_error(void);
AGP_C_API const char* agp_error_name(agp_status code); /* "section_checksum_mismatch"; "unknown" */
AGP_C_API const char* agp_version(void);               /* "0.1.0" */

/* The fingerprint of a Hugging Face checkpoint directory (config.json and *.safetensors) split at
 * `split_layer` with float16 states, as every AGP-PTP host derives it; 16 bytes into `out`. */
AGP_C_API agp_status agp_checkpoint_fingerprint(const char* dir, int32_t split_layer,
                                                uint64_t hidden_size, uint8_t out[16]);

/* --- calibrations (the calibrated codec, cal2..cal8) --- */
typedef struct agp_calibration agp_calibration;
/* Loads a calibration file written by ptp-calibrate (version and checksum checked). */
AGP_C_API agp_status agp_calibration_load(const char* path, agp_calibration** out);
AGP_C_API void agp_calibration_free(agp_calibration* calibration);
/* Its id (the file's checksum: packets name it, fingerprints include it) and vector length. */
AGP_C_API uint64_t agp_calibration_id(const agp_calibration* calibration);
AGP_C_API uint32_t agp_calibration_dim(const agp_calibration* calibration);
/* agp_checkpoint_fingerprint for hosts that code with a calibration (its id enters). */
AGP_C_API agp_status agp_checkpoint_fingerprint_calibrated(const char* dir, int32_t split_layer,
                                                           uint64_t hidden_size,
                                                           uint64_t calibration_id,
                                                           uint8_t out[16]);

/* --- codecs --- */
typedef struct agp_codec agp_codec;
/* "raw", "tq1".."tq8" (TurboQuant), "prod2".."prod8", "int8", "int4", "ec2".."ec8" (the
 * high-fidelity entropy-coded mode), "cal2".."cal8" (calibrated: give it a calibration with
 * agp_codec_set_calibration). `dtype` is the tensors' (raw packets carry it). */
AGP_C_API agp_status agp_codec_create(const char* name, int32_t dtype, agp_codec** out);
AGP_C_API void agp_codec_free(agp_codec* codec);
/* The calibration a calibrated codec codes with (the codec keeps its own reference). */
AGP_C_API agp_status agp_codec_set_calibration(agp_codec* codec, const agp_calibration* calibration);

/* --- encoding: tensor -> frame bytes --- */
typedef struct agp_packet_meta {
  size_t struct_size;
  const char* name; /* tensor name (NULL: "") */
  uint32_t stream_id;
  uint64_t sequence;
  int32_t layout;          /* an agp_layout */
  uint8_t fingerprint[16]; /* model fingerprint the receiver checks (zeros: none) */
  const char* model_id;    /* NULL: "" */
  int32_t split_layer;     /* -1: none */
} agp_packet_meta;
AGP_C_API void agp_packet_meta_init(agp_packet_meta* meta);

typedef struct agp_encoder agp_encoder;
/* An encoder keeps its codec tables and buffers from packet to packet. */
AGP_C_API agp_status agp_encoder_create(const agp_codec* codec, agp_encoder** out);
AGP_C_API void agp_encoder_free(agp_encoder* encoder);
/* Encodes `tensor` into one frame. *frame points into the encoder and stays valid until its next
 * encode or free. */
AGP_C_API agp_status agp_encode(agp_encoder* encoder, const agp_tensor* tensor, const agp_packet_meta* meta,
                      const uint8_t** frame, size_t* frame_size);
/* The same, into the caller's buffer: *frame_size is the bytes written, or with
 * AGP_ERR_BUFFER_TOO_SMALL the bytes needed. */
AGP_C_API agp_status agp_encode_into(agp_encoder* encoder, const agp_tensor* tensor,
                           const agp_packet_meta* meta, void* buffer, size_t capacity,
                           size_t* frame_size);

/* --- frames: bytes -> verified packet -> tensor --- */
typedef struct agp_frame agp_frame;
/* Parses and verifies (checksums, bounds, descriptors) the frame at the start of `bytes`; with a
 * non-NULL `expected_fingerprint` (16 bytes) a different model fingerprint is refused. The frame
 * keeps its own copy of the bytes. */
AGP_C_API agp_status agp_frame_parse(const void* bytes, size_t size, const uint8_t* expected_fingerprint,
                           agp_frame** out);
AGP_C_API void agp_frame_free(agp_frame* frame);
AGP_C_API agp_status agp_frame_info(const agp_frame* frame, agp_packet_info* info);
/* Decodes into `out`, whose shape must be the packet's (any float dtype and strides). */
AGP_C_API agp_status agp_frame_decode(const agp_frame* frame, const agp_tensor* out);
/* The same for calibrated packets: decoded with `calibration` (a packet naming another one, or
 * any calibrated packet when it is NULL, is refused with bad_codec_descriptor). */
AGP_C_API agp_status agp_frame_decode_calibrated(const agp_frame* frame,
                                                 const agp_calibration* calibration,
                                                 const agp_tensor* out);

/* --- transport: reliable links --- */
typedef struct agp_link_config {
  size_t struct_size;
  uint8_t fingerprint[16]; /* both ends must carry the same */
  const char* model_id;    /* NULL: "" */
  int32_t split_layer;
  const char* peer_name;     /* shown to the other end; NULL: "" */
  const uint8_t* key;        /* pre-shared key (NULL: no authentication) */
  size_t key_size;
  uint64_t chunk_vectors;    /* 0: packets travel whole */
  uint16_t streams;          /* TCP connections per link, 1..8 */
  uint16_t encode_threads;   /* 1..16 */
  uint32_t window_packets;
  uint32_t connect_timeout_ms;
  uint32_t dead_peer_timeout_ms;
  uint32_t reconnect_give_up_ms;
  const char* bind_interface; /* connect from this interface (NULL: routing picks) */
  int32_t ack_on_receive;     /* 1 (default); 0: call agp_link_acknowledge after recording */
  uint32_t busy_poll_us;      /* poll this long before blocking in waits (0: block at once) */
  /* Added in API version 1.1: the calibration this end decodes calibrated packets with (NULL:
   * none, and its hello offers no calibrated codec). Its id belongs in `fingerprint`. */
  const agp_calibration* calibration;
  /* Added in API version 1.2: what carries the frames, AGP_BACKEND_TCP (default) or
   * AGP_BACKEND_UCX (builds with UCX: agp_ucx_available()); both ends alike. `ucx_transports`
   * restricts UCX to these transports, as UCX_TLS names them ("tcp", "sm,tcp"; NULL: UCX picks). */
  int32_t backend;
  const char* ucx_transports;
  /* Added in API version 1.5: the largest tensor this end accepts in a packet (its buffer is sized
   * from the packet's descriptor: lower it for peers you do not trust). 0: the default, 1 GiB. */
  uint64_t max_tensor_bytes;
  /* Added in API version 1.6: threads that decode a packet's chunks side by side, the receiving
   * thread included (1..16; 0: the default, 1). */
  uint16_t decode_threads;
} agp_link_config;
#define AGP_BACKEND_TCP 0
#define AGP_BACKEND_UCX 1
AGP_C_API void agp_link_config_init(agp_link_config* config);
/* 1 when this build has the UCX backend, else 0. */
AGP_C_API int agp_ucx_available(void);

typedef struct agp_server agp_server;
typedef struct agp_link agp_link;

/* Listens on `address` ("127.0.0.1", "0.0.0.0", "::") and `port` (0: any free port). */
AGP_C_API agp_status agp_server_listen(const char* address, uint16_t port, const agp_link_config* config,
                             agp_server** out);
AGP_C_API uint16_t agp_server_port(const agp_server* server);
AGP_C_API agp_status agp_server_accept(agp_server* server, uint32_t timeout_ms, agp_link** out);
AGP_C_API void agp_server_free(agp_server* server);

AGP_C_API agp_status agp_link_connect(const char* host, uint16_t port, const agp_link_config* config,
                            agp_link** out);

typedef struct agp_receipt {
  uint64_t sequence;
  uint64_t wire_bytes;
  uint32_t chunks;
  double encode_us;
  double latency_us; /* send to the peer's acknowledgement (sent after it decoded) */
} agp_receipt;
/* Sends `tensor` and waits until the peer has verified and decoded it. Of `meta` (NULL: none) the
 * name, stream_id and layout are used: the link numbers the packets and carries the config's
 * fingerprint. `receipt` may be NULL. */
AGP_C_API agp_status agp_link_send(agp_link* link, const agp_tensor* tensor, const agp_codec* codec,
                         const agp_packet_meta* meta, uint32_t timeout_ms, agp_receipt* receipt);
/* Added in API version 1.4: pipelining. Encodes `tensor` and queues it for the peer, waiting only
 * while the send window (the config's window_packets) is full; its memory is the caller's again
 * when this returns. `sequence` (may be NULL) is the packet's number for agp_link_wait_acked. */
AGP_C_API agp_status agp_link_post(agp_link* link, const agp_tensor* tensor, const agp_codec* codec,
                                   const agp_packet_meta* meta, uint32_t timeout_ms,
                                   uint64_t* sequence);
/* Waits until packet `sequence` has been verified and decoded by the peer. `receipt` may be
 * NULL. timeout when the deadline passes first (the packet stays queued). */
AGP_C_API agp_status agp_link_wait_acked(agp_link* link, uint64_t sequence, uint32_t timeout_ms,
                                         agp_receipt* receipt);
/* Waits until every posted packet has been acknowledged. */
AGP_C_API agp_status agp_link_flush(agp_link* link, uint32_t timeout_ms);
/* Waits for the next packet and describes it (shape, dtype) so the caller can size a buffer. */
AGP_C_API agp_status agp_link_next_packet(agp_link* link, uint32_t timeout_ms, agp_packet_info* info);
/* Decodes that packet into `out` and acknowledges it. `decode_us` may be NULL. */
AGP_C_API agp_status agp_link_receive(agp_link* link, const agp_tensor* out, uint32_t timeout_ms,
                            double* decode_us);
/* With ack_on_receive = 0: acknowledges every packet received so far, once the host has recorded
 * them durably (a crash before this gets them sent again rather than lost). */
AGP_C_API agp_status agp_link_acknowledge(agp_link* link);
/* Waits until everything sent is acknowledged, says goodbye and closes. AGP_ERR_TIMEOUT when
 * packets are still unacknowledged at the deadline: the link then stays open and keeps sending
 * them (close again, or agp_link_free to abandon them). */
AGP_C_API agp_status agp_link_close(agp_link* link, uint32_t timeout_ms);
/* Added in API version 1.5: ends the link at once and tells the peer `reason` (its calls fail with
 * AGP_ERR_ABORTED), for a host that fails after connecting. agp_link_free of a link not closed
 * does the same with a reason of its own. */
AGP_C_API agp_status agp_link_abort(agp_link* link, const char* reason);
AGP_C_API void agp_link_free(agp_link* link);

typedef struct agp_link_counters {
  uint64_t bytes_sent, bytes_received, packets_sent, packets_acked, packets_delivered;
  uint64_t retransmits, duplicates_dropped, checksum_failures, frame_errors, reconnects;
} agp_link_counters;
AGP_C_API void agp_link_get_counters(const agp_link* link, agp_link_counters* counters);

/* Added in API version 1.4: observability (docs/observability.md).
 * The link's counters and latency histograms per codec (acknowledgement, encode, decode) in the
 * Prometheus text exposition format, every sample labelled link="<link_label>" (NULL: no label).
 * As snprintf: writes at most `capacity` bytes, always NUL-terminated when capacity > 0, and sets
 * `length` (may be NULL) to the whole text's length without the NUL; a `length` >= `capacity`
 * means the text was cut: call again with a larger buffer. */
AGP_C_API agp_status agp_link_metrics_text(const agp_link* link, const char* link_label,
                                           char* text, size_t capacity, size_t* length);

/* What the transport says about itself (connects, refused peers, lost connections, reconnects,
 * resumes, stalled streams), process-wide and silent until set. `fn` gets the level (Python's
 * numbers), a stable event name and a message; it runs on the library's log thread, one record
 * at a time (records are queued, at most 1024: a slow handler never delays a link; what does not
 * fit is counted in a log_records_dropped record). fn = NULL removes it, after the records
 * already queued have reached the old handler. */
#define AGP_LOG_DEBUG 10
#define AGP_LOG_INFO 20
#define AGP_LOG_WARNING 30
#define AGP_LOG_ERROR 40
typedef void (*agp_log_fn)(void* user, int level, const char* event, const char* message);
AGP_C_API void agp_set_log_handler(agp_log_fn fn, void* user, int min_level);

/* --- compressed embedding index (docs/index.md; API version 1.3) ---
 * Vectors stored as TurboQuant codes and searched by inner product; vectors and queries are
 * L2-normalized on the way in, so scores are cosine similarities. An index may be searched from
 * any number of threads at once, but not while a thread adds to it. */
typedef struct agp_index agp_index;
typedef struct agp_index_options {
  size_t struct_size;
  int32_t bits;       /* 1..8 (default 4) */
  uint64_t seed;      /* the rotation's seed */
  int32_t keep_exact; /* 1 (default): keep fp16 copies for exact rerank */
  int32_t unbias;     /* 1 (default): unbiased scores */
} agp_index_options;
AGP_C_API void agp_index_options_init(agp_index_options* options);
/* A new empty index for vectors of `dim` values (options NULL: defaults). */
AGP_C_API agp_status agp_index_create(uint32_t dim, const agp_index_options* options,
                                      agp_index** out);
/* Maps a snapshot and uses it in place (checksums verified unless `verify` is 0); a damaged file
 * is an error naming what is wrong, never an index. */
AGP_C_API agp_status agp_index_open(const char* path, int32_t verify, agp_index** out);
AGP_C_API agp_status agp_index_save(const agp_index* index, const char* path);
AGP_C_API void agp_index_free(agp_index* index);
AGP_C_API uint32_t agp_index_dim(const agp_index* index);
AGP_C_API uint64_t agp_index_size(const agp_index* index);
/* Appends `count` vectors (count * dim floats). All or nothing: a NaN, an infinity or a zero
 * vector adds none and names the row. */
AGP_C_API agp_status agp_index_add(agp_index* index, const float* vectors, uint64_t count);
/* Vectors [first, first + count) into `out` (count * dim floats): the fp16 copies when kept,
 * else the decoded codes scaled to unit length. */
AGP_C_API agp_status agp_index_vectors(const agp_index* index, uint64_t first, uint64_t count,
                                       float* out);

#define AGP_INDEX_AUTO_COARSE UINT64_MAX
typedef struct agp_search_options {
  size_t struct_size;
  uint64_t k;       /* hits per query (default 10) */
  uint64_t rerank;  /* candidates rescored against the fp16 copies (0: none, the default) */
  uint64_t coarse;  /* sign-stage candidates: AGP_INDEX_AUTO_COARSE (default), a number, or 0
                       for one stage */
  uint32_t threads; /* one query: threads sharing its scan; several: threads sharing them */
} agp_search_options;
AGP_C_API void agp_search_options_init(agp_search_options* options);
/* Searches `count` queries (count * dim floats; options NULL: defaults). Query q's hits, best
 * first, go to ids[q * k + j] and scores[q * k + j] for j < found[q] (fewer than k when the
 * index is smaller); the rest of its row is id UINT64_MAX and score NaN. All or nothing. */
AGP_C_API agp_status agp_index_search(const agp_index* index, const float* queries, uint64_t count,
                                      const agp_search_options* options, uint64_t* ids,
                                      float* scores, uint64_t* found);

#ifdef __cplusplus
}
#endif

#endif /* AGP_AGP_PTP_H */
