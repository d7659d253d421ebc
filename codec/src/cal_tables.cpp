#include "cal_tables.hpp"

#include <array>
#include <memory>
#include <mutex>

namespace agp::codec::cal {
namespace {

#include "entropy_tables.inc"

static_assert(sizeof(kEntropyLengths) / sizeof(kEntropyLengths[0]) == kTableCount);
static_assert(sizeof(kEntropyRecon) / sizeof(kEntropyRecon[0]) == kRoundTables);

std::uint32_t reverse_bits(std::uint32_t v, int n) {
  std::uint32_t r = 0;
  for (int i = 0; i < n; ++i) r |= ((v >> i) & 1u) << (n - 1 - i);
  return r;
}

EncodeTable build_encode(int t) {
  EncodeTable e{};
  const unsigned char* len = kEntropyLengths[t];
  // Canonical codes: count per length, first code per length, then symbols in order.
  int count[kMaxCodeBits + 1] = {};
  for (int s = 0; s < kSymbols; ++s) ++count[len[s]];
  count[0] = 0;
  std::uint32_t next[kMaxCodeBits + 2] = {};
  std::uint32_t code = 0;
  for (int b = 1; b <= kMaxCodeBits; ++b) {
    code = (code + static_cast<std::uint32_t>(count[b - 1])) << 1;
    next[b] = code;
  }
  for (int s = 0; s < kSymbols; ++s) {
    e.len[s] = len[s];
    if (len[s]) e.code[s] = reverse_bits(next[len[s]]++, len[s]);
  }
  return e;
}

const std::array<EncodeTable, kTableCount>& encode_tables() {
  static const auto tables = [] {
    auto t = std::make_unique<std::array<EncodeTable, kTableCount>>();
    for (int i = 0; i < kTableCount; ++i) (*t)[i] = build_encode(i);
    return t;
  }();
  return *tables;
}

constexpr std::uint32_t kEntries = 1u << kLookupBits;

void build_decode(int t, DecodeEntry* out) {
  const EncodeTable& e = encode_tables()[t];
  // One symbol per index first: every index whose low len bits equal a code.
  struct One {
    std::int8_t h = 0;
    std::uint8_t len = 0;
  };
  std::array<One, kEntries> one{};
  for (int s = 0; s < kSymbols; ++s) {
    if (!e.len[s]) continue;
    const std::int8_t h = s == kEscape ? kEscapeMark : static_cast<std::int8_t>(s - kMaxH);
    for (std::uint32_t hi = 0; hi < (kEntries >> e.len[s]); ++hi) {
      one[e.code[s] | (hi << e.len[s])] = {h, e.len[s]};
    }
  }
  for (std::uint32_t i = 0; i < kEntries; ++i) {
    DecodeEntry d{};
    d.first_len = one[i].len;
    int used = 0;
    while (d.count < 4) {
      const One o = one[(i >> used) & (kEntries - 1)];
      if (o.len == 0 || used + o.len > kLookupBits) break;  // not wholly within the known bits
      d.h[d.count++] = o.h;
      used += o.len;
      if (o.h == kEscapeMark) {
        d.escape_last = 1;
        break;
      }
    }
    d.bits = static_cast<std::uint8_t>(used);
    out[i] = d;
  }
}

}  // namespace

const EncodeTable& encode_table(int table) { return encode_tables()[table]; }

const std::uint32_t* pair_codes(int table) {
  static std::array<std::once_flag, kTableCount> once;
  static std::array<std::unique_ptr<std::uint32_t[]>, kTableCount> tables;
  std::call_once(once[table], [&] {
    const EncodeTable& e = encode_tables()[table];
    auto t = std::make_unique<std::uint32_t[]>(kSymbols * kSymbols);
    for (int a = 0; a < kSymbols; ++a) {
      const int ea = e.len[a] && a != kEscape ? a : kEscape;
      for (int b = 0; b < kSymbols; ++b) {
        const int eb = e.len[b] && b != kEscape ? b : kEscape;
        const std::uint32_t len = e.len[ea] + e.len[eb];
        t[a * kSymbols + b] = e.code[ea] | (e.code[eb] << e.len[ea]) |
                              (ea == kEscape ? 1u << 22 : 0u) | (eb == kEscape ? 1u << 23 : 0u) |
                              (len << 24);
      }
    }
    tables[table] = std::move(t);
  });
  return tables[table].get();
}

const DecodeEntry* decode_table(int table) {
  static std::array<std::once_flag, kTableCount> once;
  static std::array<std::unique_ptr<DecodeEntry[]>, kTableCount> tables;
  std::call_once(once[table], [&] {
    tables[table] = std::make_unique<DecodeEntry[]>(kEntries);
    build_decode(table, tables[table].get());
  });
  return tables[table].get();
}

const float* round_recon(int table) {
  static const auto padded = [] {
    auto t = std::make_unique<std::array<std::array<float, 64>, kRoundTables>>();
    for (int i = 0; i < kRoundTables; ++i) {
      for (int s = 0; s < 63; ++s) (*t)[i][s] = kEntropyRecon[i][s];
      (*t)[i][63] = 0;
    }
    return t;
  }();
  return (*padded)[table].data();
}

float expected_bits(int table) { return kEntropyBits[table]; }

}  // namespace agp::codec::cal
