// Internal: the calibrated codec's static prefix codes (entropy_tables.inc) as encoder and decoder
// tables. Codes are canonical (as DEFLATE assigns them: by length, then symbol) and travel
// LSB-first, so a code's first bit is the lowest bit of the stream position it starts at.
#pragma once

#include <cstdint>

namespace agp::codec::cal {

constexpr int kTableCount = 168;
constexpr int kRoundTables = 120;  // family 0: groups with no raw low bits
constexpr int kShiftOneBase = 120;  // family 1: k = 1
constexpr int kShiftManyBase = 144;  // family 2: k >= 2
constexpr int kSymbols = 64;
constexpr int kEscape = 63;
constexpr int kMaxCodeBits = 11;
// Bits a decoder table is indexed with (more than a code's length: more symbols per lookup).
constexpr int kLookupBits = 11;
constexpr int kMaxH = 31;  // symbols 0..62 are h = -31..31
constexpr std::int8_t kEscapeMark = -128;

// The tables a group with `k` raw bits may name.
inline bool table_fits(int table, int k) {
  if (table < 0 || table >= kTableCount) return false;
  if (k == 0) return table < kRoundTables;
  if (k == 1) return table >= kShiftOneBase && table < kShiftManyBase;
  return table >= kShiftManyBase;
}

struct EncodeTable {
  std::uint32_t code[kSymbols];  // bit-reversed for LSB-first writing
  std::uint8_t len[kSymbols];    // 0: the symbol has no code (sent as an escape)
};

// A decoder entry for the next kLookupBits bits of a stream: up to four symbols that fit in
// them (an escape, if any, is the last), how many, and the bits they take; first_len is the
// first symbol's length alone (for decoding one symbol at a time near the end).
struct DecodeEntry {
  std::int8_t h[4];  // h values; kEscapeMark for an escape
  std::uint8_t count;  // 0: no code starts with these bits
  std::uint8_t bits;
  std::uint8_t first_len;
  std::uint8_t escape_last;
};
static_assert(sizeof(DecodeEntry) == 8);

const EncodeTable& encode_table(int table);
// Codes of symbol pairs (a, b) at [a * 64 + b], built on first use (thread-safe): bits 0..21 the
// two codes (a's first), bit 22 a is sent as an escape, bit 23 b is, bits 24..31 the length.
// A symbol without a code is sent as the escape.
const std::uint32_t* pair_codes(int table);
// 2^kLookupBits entries, built on first use (thread-safe).
const DecodeEntry* decode_table(int table);
// Reconstruction points (in steps) of a round-family table, indexed by h + 31 (index 63: 0).
const float* round_recon(int table);
// Expected bits per value of a table under its own model.
float expected_bits(int table);

}  // namespace agp::codec::cal
