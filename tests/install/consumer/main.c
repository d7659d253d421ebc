/* A C host outside this tree: encodes a small tensor with the installed C API and reads it back. */
#include <agp/agp_ptp.h>
#include <stdio.h>

int main(void) {
  float x[4 * 128], y[4 * 128];
  for (int i = 0; i < 4 * 128; ++i) x[i] = (float)((i * 37) % 19) - 9.0f;
  agp_tensor t = {x, AGP_F32, 2, {4, 128}, NULL, 1};
  agp_tensor out = {y, AGP_F32, 2, {4, 128}, NULL, 1};
  agp_codec* codec = NULL;
  agp_encoder* enc = NULL;
  agp_frame* frame = NULL;
  const uint8_t* bytes = NULL;
  size_t size = 0;
  if (agp_codec_create("tq8", AGP_F32, &codec) || agp_encoder_create(codec, &enc) ||
      agp_encode(enc, &t, NULL, &bytes, &size) || agp_frame_parse(bytes, size, NULL, &frame) ||
      agp_frame_decode(frame, &out)) {
    fprintf(stderr, "c consumer: %s\n", agp_last_error());
    return 1;
  }
  printf("c consumer ok: %zu-byte tq8 frame, first value %.3f -> %.3f (library %s)\n", size, x[0],
         y[0], agp_version());
  agp_frame_free(frame);
  agp_encoder_free(enc);
  agp_codec_free(codec);
  return 0;
}
