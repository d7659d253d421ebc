// Fuzz target: arbitrary bytes as an index snapshot (index.hpp). Index::view must refuse what is
// not a snapshot with a typed error; what it accepts, with checksums verified or not, must answer
// searches (with exact rerank when the copies are there) without reading outside the bytes.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "agp/index/index.hpp"

namespace {

void search_all(const agp::index::Index& index) {
  std::vector<float> query(index.dim());
  for (std::size_t k = 0; k < query.size(); ++k)
    query[k] = static_cast<float>((k * 7919) % 13) - 6.0f;
  query[0] = 1.0f;  // never the zero vector
  const std::size_t rerank = index.options().keep_exact ? 8 : 0;
  (void)index.search(query, {5, rerank, 0});
  (void)index.search(query, {3, rerank, 4});
  (void)index.search(query, {4, rerank});  // the automatic candidate count
  std::vector<float> out(2 * std::size_t{index.dim()});
  if (index.size() >= 2) (void)index.vectors(index.size() - 2, 2, out);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // Sections sit at 64-byte offsets of the file; a mapped file starts on a page, so the copy does
  // too.
  std::vector<std::max_align_t> storage(size / sizeof(std::max_align_t) + 1);
  std::memcpy(storage.data(), data, size);
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(storage.data()), size);
  for (const bool verify : {true, false}) {
    auto index = agp::index::Index::view(bytes, verify);
    if (index && index->dim() <= 4096) search_all(*index);
  }
  return 0;
}
