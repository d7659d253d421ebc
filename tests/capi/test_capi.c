/* The C API from C: codecs, encode / parse / decode, errors with codes and messages, the embedding
 * index, and a link on loopback with a receiving thread. Compiled as C11 so the header is proven C-clean. Exits non-zero
 * on the first failed check, printing where. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agp/agp_ptp.h"

static int g_checks = 0;
#define CHECK(cond)                                                                    \
  do {                                                                                 \
    ++g_checks;                                                                        \
    if (!(cond)) {                                                                     \
      fprintf(stderr, "%s:%d: check failed: %s (last error: %s)\n", __FILE__, __LINE__, \
              #cond, agp_last_error());                                                \
      exit(1);                                                                         \
    }                                                                                  \
  } while (0)
#define CHECK_OK(expr) CHECK((expr) == AGP_OK)

enum { kTokens = 64, kHidden = 256, kValues = kTokens * kHidden };

/* Deterministic pseudo-Gaussian values (sum of uniforms), reproducible everywhere. */
static void fill(float* x, size_t n, unsigned seed) {
  unsigned s = seed * 2654435761u + 1u;
  for (size_t i = 0; i < n; ++i) {
    float acc = 0;
    for (int k = 0; k < 4; ++k) {
      s = s * 1664525u + 1013904223u;
      acc += (float)(s >> 8) / 16777216.0f - 0.5f;
    }
    x[i] = acc * 1.7f;
  }
}

static double rel_mse(const float* a, const float* b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; ++i) {
    num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    den += (double)a[i] * a[i];
  }
  return num / den;
}

static agp_tensor tensor_of(float* data) {
  agp_tensor t;
  memset(&t, 0, sizeof t);
  t.data = data;
  t.dtype = AGP_F32;
  t.rank = 2;
  t.shape[0] = kTokens;
  t.shape[1] = kHidden;
  t.vector_axis = 1;
  return t;
}

static void encode_parse_decode(void) {
  static float x[kValues], y[kValues];
  fill(x, kValues, 1);
  agp_codec* tq4 = NULL;
  CHECK_OK(agp_codec_create("tq4", AGP_F32, &tq4));
  agp_encoder* enc = NULL;
  CHECK_OK(agp_encoder_create(tq4, &enc));
  agp_packet_meta meta;
  agp_packet_meta_init(&meta);
  meta.name = "layer2.hidden";
  meta.sequence = 42;
  meta.split_layer = 2;
  meta.layout = AGP_LAYOUT_SD;
  for (int i = 0; i < 16; ++i) meta.fingerprint[i] = (uint8_t)(i + 1);
  agp_tensor in = tensor_of(x);
  const uint8_t* frame = NULL;
  size_t size = 0;
  CHECK_OK(agp_encode(enc, &in, &meta, &frame, &size));
  CHECK(size > 0 && size < sizeof x / 4); /* about 4 bits per value */

  agp_frame* f = NULL;
  CHECK_OK(agp_frame_parse(frame, size, meta.fingerprint, &f));
  agp_packet_info info;
  CHECK_OK(agp_frame_info(f, &info));
  CHECK(info.sequence == 42 && info.split_layer == 2 && info.rank == 2);
  CHECK(info.shape[0] == kTokens && info.shape[1] == kHidden && info.vector_axis == 1);
  CHECK(info.dtype == AGP_F32 && info.layout == AGP_LAYOUT_SD && info.frame_bytes == size);
  CHECK(strcmp(info.codec, "tq4") == 0 && strcmp(info.name, "layer2.hidden") == 0);
  CHECK(memcmp(info.fingerprint, meta.fingerprint, 16) == 0);
  agp_tensor out = tensor_of(y);
  CHECK_OK(agp_frame_decode(f, &out));
  CHECK(rel_mse(x, y, kValues) < 0.012);

  /* Decoding into a transposed (strided) buffer gives the same values. */
  static float yt[kValues];
  const int64_t strides[2] = {1, kTokens};
  agp_tensor outt = tensor_of(yt);
  outt.strides = strides;
  CHECK_OK(agp_frame_decode(f, &outt));
  for (int t = 0; t < kTokens; ++t)
    for (int d = 0; d < kHidden; ++d) CHECK(yt[d * kTokens + t] == y[t * kHidden + d]);
  agp_frame_free(f);

  /* The same frame into the caller's buffer; too small a buffer says how much is needed. */
  size_t needed = 0;
  CHECK(agp_encode_into(enc, &in, &meta, NULL, 0, &needed) == AGP_ERR_BUFFER_TOO_SMALL);
  CHECK(needed == size);
  uint8_t* mine = (uint8_t*)malloc(needed);
  size_t written = 0;
  CHECK_OK(agp_encode_into(enc, &in, &meta, mine, needed, &written));
  CHECK(written == size);

  /* A flipped byte in the codes is caught by the section checksum. */
  mine[size - 100] ^= 0x10;
  CHECK(agp_frame_parse(mine, size, NULL, &f) == AGP_ERR_SECTION_CHECKSUM_MISMATCH);
  CHECK(f == NULL);
  CHECK(strlen(agp_last_error()) > 0);
  CHECK(strcmp(agp_error_name(AGP_ERR_SECTION_CHECKSUM_MISMATCH), "section_checksum_mismatch") == 0);
  mine[size - 100] ^= 0x10;

  /* Another model's fingerprint is refused. */
  uint8_t other[16] = {0};
  CHECK(agp_frame_parse(mine, size, other, &f) == AGP_ERR_FINGERPRINT_MISMATCH);
  /* A truncated frame. */
  CHECK(agp_frame_parse(mine, size / 2, NULL, &f) == 100);
  CHECK(strcmp(agp_error_name(100), "truncated") == 0);
  free(mine);

  /* Raw packets carry the exact values. */
  agp_codec* raw = NULL;
  CHECK_OK(agp_codec_create("raw", AGP_F32, &raw));
  agp_encoder* raw_enc = NULL;
  CHECK_OK(agp_encoder_create(raw, &raw_enc));
  CHECK_OK(agp_encode(raw_enc, &in, NULL, &frame, &size));
  CHECK_OK(agp_frame_parse(frame, size, NULL, &f));
  CHECK_OK(agp_frame_decode(f, &out));
  CHECK(memcmp(x, y, sizeof x) == 0);
  agp_frame_free(f);
  agp_encoder_free(raw_enc);
  agp_codec_free(raw);
  agp_encoder_free(enc);
  agp_codec_free(tq4);
}

static void bad_input(void) {
  agp_codec* c = NULL;
  CHECK(agp_codec_create("tq9", AGP_F16, &c) == AGP_ERR_INVALID_ARGUMENT);
  CHECK(c == NULL);
  CHECK(strstr(agp_last_error(), "tq9") != NULL);
  CHECK(agp_codec_create(NULL, AGP_F16, &c) == AGP_ERR_INVALID_ARGUMENT);
  CHECK(agp_codec_create("tq4", 9, &c) == AGP_ERR_INVALID_ARGUMENT);
  CHECK_OK(agp_codec_create("tq4", AGP_F32, &c));
  agp_encoder* enc = NULL;
  CHECK_OK(agp_encoder_create(c, &enc));
  static float x[kValues];
  fill(x, kValues, 2);
  agp_tensor t = tensor_of(x);
  const uint8_t* frame = NULL;
  size_t size = 0;
  t.rank = 9;
  CHECK(agp_encode(enc, &t, NULL, &frame, &size) == AGP_ERR_INVALID_ARGUMENT);
  t = tensor_of(x);
  t.vector_axis = 2;
  CHECK(agp_encode(enc, &t, NULL, &frame, &size) == AGP_ERR_INVALID_ARGUMENT);
  t = tensor_of(NULL);
  CHECK(agp_encode(enc, &t, NULL, &frame, &size) == AGP_ERR_INVALID_ARGUMENT);
  t = tensor_of(x);
  t.dtype = 77;
  CHECK(agp_encode(enc, &t, NULL, &frame, &size) == AGP_ERR_INVALID_ARGUMENT);
  t = tensor_of(x);
  agp_packet_meta bad_layout;
  agp_packet_meta_init(&bad_layout);
  bad_layout.layout = 99;
  CHECK(agp_encode(enc, &t, &bad_layout, &frame, &size) == AGP_ERR_INVALID_ARGUMENT);
  x[7] = NAN;
  CHECK(agp_encode(enc, &t, NULL, &frame, &size) == 400); /* non_finite_input */
  agp_packet_meta old;
  memset(&old, 0, sizeof old); /* struct_size 0: not initialised */
  x[7] = 0;
  CHECK(agp_encode(enc, &t, &old, &frame, &size) == AGP_ERR_INVALID_ARGUMENT);
  CHECK(agp_frame_parse("AGPP", 4, NULL, &(agp_frame*){NULL}) == 100);
  agp_encoder_free(enc);
  agp_codec_free(c);
  agp_codec_free(NULL); /* NULL is fine for every free */
  agp_frame_free(NULL);
  CHECK(strcmp(agp_error_name(99999), "unknown_error") == 0);
  uint8_t fp[16];
  CHECK(agp_checkpoint_fingerprint("/nonexistent-agp-checkpoint", 2, 384, fp) == 200); /* io_error */
  CHECK(strlen(agp_version()) > 0);
}

/* --- a link on loopback --- */
enum { kPackets = 20 };
typedef struct {
  agp_server* server;
  int ok;
  float sum_rel_mse;
} Receiver;

static void* receive_all(void* arg) {
  Receiver* r = (Receiver*)arg;
  agp_link* link = NULL;
  if (agp_server_accept(r->server, 5000, &link) != AGP_OK) return NULL;
  static float y[kValues], x[kValues];
  for (int i = 0; i < kPackets; ++i) {
    agp_packet_info info;
    if (agp_link_next_packet(link, 5000, &info) != AGP_OK) return NULL;
    if (info.sequence != (uint64_t)(i + 1) || info.shape[1] != kHidden) return NULL;
    agp_tensor out = tensor_of(y);
    if (agp_link_receive(link, &out, 5000, NULL) != AGP_OK) return NULL;
    if (agp_link_acknowledge(link) != AGP_OK) return NULL; /* the server acks by hand */
    fill(x, kValues, 100 + (unsigned)i);
    r->sum_rel_mse += (float)rel_mse(x, y, kValues);
  }
  agp_link_counters c;
  agp_link_get_counters(link, &c);
  r->ok = c.packets_delivered == kPackets && c.checksum_failures == 0;
  agp_link_close(link, 5000);
  agp_link_free(link);
  return NULL;
}

typedef struct LogSeen {
  pthread_mutex_t mu;
  int connected, accepted, warnings_or_worse;
} LogSeen;

static void on_log(void* user, int level, const char* event, const char* message) {
  LogSeen* seen = (LogSeen*)user;
  pthread_mutex_lock(&seen->mu);
  if (strcmp(event, "connected") == 0) ++seen->connected;
  if (strcmp(event, "peer_accepted") == 0) ++seen->accepted;
  if (level >= AGP_LOG_WARNING && strlen(message) > 0) ++seen->warnings_or_worse;
  pthread_mutex_unlock(&seen->mu);
}

static void link_loopback(int32_t backend) {
  LogSeen seen = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0};
  agp_set_log_handler(on_log, &seen, AGP_LOG_INFO);
  agp_link_config cfg;
  agp_link_config_init(&cfg);
  CHECK(cfg.backend == AGP_BACKEND_TCP && cfg.ucx_transports == NULL);
  cfg.backend = backend;
  if (backend == AGP_BACKEND_UCX) cfg.ucx_transports = "tcp";
  cfg.model_id = "c-test";
  cfg.chunk_vectors = 16;
  cfg.fingerprint[0] = 0xab;
  CHECK(cfg.ack_on_receive == 1 && cfg.busy_poll_us == 0);
  Receiver r = {NULL, 0, 0};
  agp_link_config server_cfg = cfg;
  server_cfg.ack_on_receive = 0;
  server_cfg.busy_poll_us = 200;
  CHECK(server_cfg.decode_threads == 1);
  server_cfg.decode_threads = 2; /* the 4 chunks of each packet decoded side by side */
  CHECK_OK(agp_server_listen("127.0.0.1", 0, &server_cfg, &r.server));
  CHECK(agp_server_port(r.server) > 0);
  pthread_t th;
  CHECK(pthread_create(&th, NULL, receive_all, &r) == 0);

  agp_link* link = NULL;
  CHECK_OK(agp_link_connect("127.0.0.1", agp_server_port(r.server), &cfg, &link));
  agp_codec* tq4 = NULL;
  CHECK_OK(agp_codec_create("tq4", AGP_F32, &tq4));
  static float x[kValues];
  uint64_t last_posted = 0;
  for (int i = 0; i < kPackets; ++i) {
    fill(x, kValues, 100 + (unsigned)i);
    agp_tensor t = tensor_of(x);
    agp_receipt receipt;
    if (i % 2 == 0) {
      CHECK_OK(agp_link_send(link, &t, tq4, NULL, 5000, &receipt));
      CHECK(receipt.sequence == (uint64_t)(i + 1) && receipt.chunks == 4);
    } else { /* pipelined: x is refilled at once, so the packet must not reference it */
      CHECK_OK(agp_link_post(link, &t, tq4, NULL, 5000, &last_posted));
      CHECK(last_posted == (uint64_t)(i + 1));
    }
  }
  agp_receipt acked;
  CHECK_OK(agp_link_wait_acked(link, last_posted, 5000, &acked));
  CHECK(acked.sequence == last_posted && acked.chunks == 4 && acked.latency_us > 0);
  CHECK(agp_link_wait_acked(link, last_posted + 5, 10, NULL) == AGP_ERR_INVALID_ARGUMENT);
  CHECK_OK(agp_link_flush(link, 5000));
  agp_link_counters sent;
  agp_link_get_counters(link, &sent);
  CHECK(sent.packets_acked == kPackets);
  /* The Prometheus text: sized first, then whole; a short buffer is cut and NUL-terminated. */
  size_t need = 0;
  CHECK_OK(agp_link_metrics_text(link, "c-sender", NULL, 0, &need));
  CHECK(need > 100);
  char* text = (char*)malloc(need + 1);
  size_t got = 0;
  CHECK_OK(agp_link_metrics_text(link, "c-sender", text, need + 1, &got));
  CHECK(got == need && strlen(text) == need);
  char expect[128];
  snprintf(expect, sizeof expect, "agp_ptp_packets_acked_total{link=\"c-sender\"} %d\n", kPackets);
  CHECK(strstr(text, expect) != NULL);
  snprintf(expect, sizeof expect, "agp_ptp_ack_latency_seconds_count{link=\"c-sender\",codec=\"tq4\"} %d", kPackets);
  CHECK(strstr(text, expect) != NULL);
  char small[16];
  CHECK_OK(agp_link_metrics_text(link, NULL, small, sizeof small, &got));
  CHECK(got > sizeof small && strlen(small) == sizeof small - 1);
  free(text);
  CHECK_OK(agp_link_close(link, 5000));
  pthread_join(th, NULL);
  CHECK(r.ok);
  CHECK(r.sum_rel_mse / kPackets < 0.012);
  agp_link_free(link);
  agp_codec_free(tq4);
  agp_set_log_handler(NULL, NULL, 0);
  CHECK(seen.connected == 1 && seen.accepted == 1 && seen.warnings_or_worse == 0);
  const uint16_t port = agp_server_port(r.server);
  agp_server_free(r.server);
  /* Nobody listens any more: connecting fails with a code and a message, and no handle. */
  agp_link* refused = NULL;
  const agp_status no_one = agp_link_connect("127.0.0.1", port, &cfg, &refused);
  CHECK(no_one == 502); /* connect_failed, on either backend */
  CHECK(refused == NULL && strlen(agp_last_error()) > 0);
}

/* A backend the build does not know, or UCX where the build has none, is refused up front. */
static void link_backend_choice(void) {
  agp_link_config cfg;
  agp_link_config_init(&cfg);
  cfg.backend = 7;
  agp_link* link = NULL;
  CHECK(agp_link_connect("127.0.0.1", 9, &cfg, &link) == AGP_ERR_INVALID_ARGUMENT && link == NULL);
  CHECK(strstr(agp_last_error(), "backend") != NULL);
  if (!agp_ucx_available()) {
    cfg.backend = AGP_BACKEND_UCX;
    CHECK(agp_link_connect("127.0.0.1", 9, &cfg, &link) == AGP_ERR_INVALID_ARGUMENT && link == NULL);
  }
}

/* The calibrated codec with a calibration file made by ptp-calibrate (192 values per vector). */
static void calibrated(const char* path) {
  enum { kVectors = 112, kDim = 192 };
  static float x[kVectors * kDim], y[kVectors * kDim];
  fill(x, kVectors * kDim, 3);
  agp_calibration* cal = NULL;
  CHECK(agp_calibration_load("/nonexistent.agpcal", &cal) != AGP_OK && cal == NULL);
  CHECK_OK(agp_calibration_load(path, &cal));
  CHECK(agp_calibration_dim(cal) == kDim && agp_calibration_id(cal) != 0);
  agp_codec* c4 = NULL;
  CHECK_OK(agp_codec_create("cal4", AGP_F32, &c4));
  agp_tensor in = {0};
  in.data = x;
  in.dtype = AGP_F32;
  in.rank = 2;
  in.shape[0] = kVectors;
  in.shape[1] = kDim;
  in.vector_axis = 1;
  agp_tensor out = in;
  out.data = y;
  agp_packet_meta meta;
  agp_packet_meta_init(&meta);
  meta.layout = AGP_LAYOUT_SD;
  const uint8_t* frame = NULL;
  size_t size = 0;
  agp_encoder* bare = NULL;
  CHECK_OK(agp_encoder_create(c4, &bare));
  CHECK(agp_encode(bare, &in, &meta, &frame, &size) == AGP_ERR_INVALID_ARGUMENT);  /* none yet */
  agp_encoder_free(bare);
  CHECK_OK(agp_codec_set_calibration(c4, cal));
  agp_encoder* enc = NULL;
  CHECK_OK(agp_encoder_create(c4, &enc));
  CHECK_OK(agp_encode(enc, &in, &meta, &frame, &size));
  CHECK(size * 8 <= 4 * kVectors * kDim); /* the budget counts the frame */
  agp_frame* f = NULL;
  CHECK_OK(agp_frame_parse(frame, size, NULL, &f));
  CHECK(agp_frame_decode(f, &out) == 116); /* bad_codec_descriptor: no calibration given */
  CHECK_OK(agp_frame_decode_calibrated(f, cal, &out));
  CHECK(rel_mse(x, y, kVectors * kDim) < 0.05);
  agp_frame_free(f);
  agp_encoder_free(enc);
  agp_codec_free(c4);
  agp_calibration_free(cal);
}

/* The embedding index: build, search (each vector finds itself), save, open, damaged snapshot,
 * export, and the errors a caller meets. */
static void index_round_trip(void) {
  enum { kDim = 96, kCount = 500, kK = 5 };
  static float v[kCount * kDim];
  fill(v, sizeof v / sizeof v[0], 11);
  agp_index* index = NULL;
  agp_index_options o;
  agp_index_options_init(&o);
  CHECK(o.bits == 4 && o.keep_exact == 1);
  CHECK_OK(agp_index_create(kDim, &o, &index));
  CHECK_OK(agp_index_add(index, v, kCount));
  CHECK(agp_index_size(index) == kCount && agp_index_dim(index) == kDim);

  agp_search_options so;
  agp_search_options_init(&so);
  so.k = kK;
  so.rerank = 20;
  uint64_t ids[3 * kK], found[3];
  float scores[3 * kK];
  CHECK_OK(agp_index_search(index, v + 7 * kDim, 3, &so, ids, scores, found)); /* rows 7, 8, 9 */
  for (int q = 0; q < 3; ++q) {
    CHECK(found[q] == kK && ids[q * kK] == (uint64_t)(7 + q));
    CHECK(fabsf(scores[q * kK] - 1.0f) < 1e-3f && scores[q * kK] >= scores[q * kK + 1]);
  }

  char path[128];
  snprintf(path, sizeof path, "/tmp/agp-capi-index-%lu-%p.agpidx", (unsigned long)time(NULL),
           (void*)path);
  CHECK_OK(agp_index_save(index, path));
  agp_index* opened = NULL;
  CHECK_OK(agp_index_open(path, 1, &opened));
  uint64_t ids2[kK], found2;
  float scores2[kK];
  CHECK_OK(agp_index_search(opened, v + 7 * kDim, 1, &so, ids2, scores2, &found2));
  CHECK(found2 == kK && memcmp(ids2, ids, sizeof ids2) == 0 && memcmp(scores2, scores, sizeof scores2) == 0);

  static float back[2 * kDim];
  CHECK_OK(agp_index_vectors(opened, 7, 2, back));
  double dot = 0, ss = 0;
  for (int d = 0; d < kDim; ++d) dot += (double)back[d] * v[7 * kDim + d], ss += (double)v[7 * kDim + d] * v[7 * kDim + d];
  CHECK(fabs(dot / sqrt(ss) - 1.0) < 1e-3);
  agp_index_free(opened);

  /* A flipped byte in the norms: refused, with what is wrong. */
  FILE* f = fopen(path, "r+b");
  CHECK(f != NULL);
  if (f) {
    fseek(f, -(long)(kCount * kDim * 2 + 100), SEEK_END); /* inside the norms, before the copies */
    fputc(0x5a, f);
    fclose(f);
  }
  opened = (agp_index*)1;
  CHECK(agp_index_open(path, 1, &opened) == AGP_ERR_SECTION_CHECKSUM_MISMATCH);
  CHECK(opened == NULL && strstr(agp_last_error(), "damaged") != NULL);
  remove(path);

  /* A NaN adds nothing and names the row; more hits than vectors pad the row. */
  float bad[2 * kDim];
  memcpy(bad, v, sizeof bad);
  bad[kDim + 3] = NAN;
  CHECK(agp_index_add(index, bad, 2) == 400);
  CHECK(strstr(agp_last_error(), "vector 1") != NULL && agp_index_size(index) == kCount);
  agp_index* tiny = NULL;
  CHECK_OK(agp_index_create(kDim, NULL, &tiny));
  CHECK_OK(agp_index_add(tiny, v, 2));
  CHECK_OK(agp_index_search(tiny, v, 1, &so, ids, scores, found));
  CHECK(found[0] == 2 && ids[2] == UINT64_MAX && isnan(scores[2]));
  agp_index_free(tiny);
  CHECK(agp_index_create(kDim, NULL, NULL) == AGP_ERR_INVALID_ARGUMENT);
  CHECK(agp_index_create(0, NULL, &tiny) == AGP_ERR_INVALID_ARGUMENT && tiny == NULL);
  agp_index_free(index);
}

int main(int argc, char** argv) {
  encode_parse_decode();
  index_round_trip();
  bad_input();
  link_loopback(AGP_BACKEND_TCP);
  if (agp_ucx_available()) {
    link_loopback(AGP_BACKEND_UCX);
  } else {
    printf("capi: no UCX in this build: the UCX link check is skipped\n");
  }
  link_backend_choice();
  if (argc > 1) calibrated(argv[1]);  /* the calibration file ctest made */
  printf("capi: %d checks passed\n", g_checks);
  return 0;
}
