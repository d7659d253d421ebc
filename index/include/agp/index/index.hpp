// A compressed embedding index: vectors stored as TurboQuant codes (the codec's block
// Walsh-Hadamard rotation and Lloyd-Max codebooks, so 768 dimensions need no padding) and searched
// by inner product. A query is rotated once; each stored vector is scored against per-dimension
// tables of centroid times rotated query, which gives exactly the inner product of the query with
// the vector the codec would decode. The best candidates can then be reranked against exact fp16
// copies of the vectors.
//
// Vectors are L2-normalized on the way in (inner product is then cosine similarity). Any number of
// threads may search at once; add() waits for running searches and holds new ones back while it
// works, so a host may add while others search.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "agp/status.hpp"

namespace agp::index {

struct IndexOptions {
  int bits = 4;                 // TurboQuant bits per dimension, 1..8
  std::uint64_t seed = 0x5eed;  // the rotation's random signs
  bool keep_exact = true;       // keep fp16 copies for exact rerank (16 more bits per dimension)
  bool unbias = true;           // scale each vector's score by <x, x'> / |x'|^2 (index.cpp)
  // Code each normalized vector's difference from the mean of the first add() (when it brings at
  // least kMinCenterVectors; otherwise the index stays uncentered), and add the query's inner
  // product with that mean back to the scores: real embeddings share a common direction, and
  // coding only what differs shrinks the quantization error. Off by default: on the devmodel
  // corpus (|mean|^2 = 0.14) it measured no gain (docs/index.md); embeddings with a stronger
  // common direction gain (IndexCentering tests).
  bool center = false;
  static constexpr std::uint64_t kMinCenterVectors = 256;
};

struct SearchOptions {
  std::size_t k = 10;
  // Candidates scored from the codes and then reranked exactly against the fp16 copies (0: no
  // rerank, the codes' scores are final). Needs IndexOptions::keep_exact.
  std::size_t rerank = 0;
  // Two stages: every vector is first scored from the top bit of its codes alone (the sign of
  // each rotated coordinate, as the codebooks are symmetric), and only the best candidates are
  // scored from their whole codes. A number fixes how many; kAutoCoarse (the default) takes
  // every vector whose first estimate comes within 3 times that estimate's error (measured for
  // each query on 128 vectors) of the k-th best, at least 64 and at most an eighth of the index,
  // so clustered data passes few candidates on and unstructured data many; 0 scores every vector
  // from its whole codes (one stage).
  static constexpr std::size_t kAutoCoarse = static_cast<std::size_t>(-1);
  std::size_t coarse = kAutoCoarse;
  // Threads scanning shares of the index for this one query (at most one per 16,384 vectors).
  // The hits are the same whatever the number, except that with kAutoCoarse a share can give up
  // on the sign stage (and the search scan every vector's whole codes) at a different point.
  unsigned threads = 1;
};

// What a snapshot file holds, as `ptp-index inspect` shows it.
struct SnapshotSection {
  std::string kind;  // "top_planes", "lower_planes", "norms", "exact_f16"
  std::uint64_t offset = 0;
  std::uint64_t bytes = 0;
  bool checksum_ok = false;  // its XXH3-64 matches the table (false also when out of bounds)
};
struct SnapshotInfo {
  std::uint32_t version = 0;
  std::uint32_t dim = 0;
  int bits = 0;
  bool unbiased = false;
  bool exact = false;
  bool centered = false;
  std::uint64_t seed = 0;
  std::uint64_t vectors = 0;
  std::uint64_t file_bytes = 0;
  std::vector<SnapshotSection> sections;
  Status status;  // what Index::open says of the file: ok, or the first thing wrong with it
};

struct Hit {
  std::uint64_t id;  // the vector's position, in the order added
  float score;       // inner product with the normalized query (estimated, or exact after rerank)
};

class Index {
 public:
  // kInvalidArgument: dim 0 or above 65,536, bits outside 1..8.
  static Result<Index> create(std::uint32_t dim, const IndexOptions& options = {});

  Index(Index&&) noexcept;
  Index& operator=(Index&&) noexcept;
  ~Index();

  // Appends vectors (row-major, size a multiple of dim). Nothing is added when any row fails:
  // kInvalidArgument (size), kNonFiniteInput (NaN or infinity), kValueOutOfRange (a zero vector,
  // which has no direction to normalize).
  Status add(std::span<const float> vectors);

  // The k best vectors for `query` (dim values), best first. kInvalidArgument for a wrong size, a
  // zero or non-finite query, or a rerank without exact copies.
  Result<std::vector<Hit>> search(std::span<const float> query,
                                  const SearchOptions& options = {}) const;
  // Many queries (row-major, a multiple of dim), each answered as by search() with
  // `options.threads` 1, the queries shared among `threads` threads. All or nothing: the first
  // bad query's error (naming it) and no hits.
  Result<std::vector<std::vector<Hit>>> search_batch(std::span<const float> queries,
                                                     const SearchOptions& options = {},
                                                     unsigned threads = 1) const;

  // Writes the index to `path` as a snapshot (docs/index.md: a header, then the codes, norms and
  // exact copies, each 64-byte aligned with its XXH3-64), through a file beside it renamed over
  // it, so a process reading the old snapshot in place keeps reading the old file. kIoError when
  // it cannot be written.
  Status save(const std::string& path) const;
  // Maps a snapshot and uses it in place: no pass over the codes beyond the checksums (and none
  // with `verify` false). The fp16 copies' checksum is checked when they are first read (a
  // rerank, vectors(), save(), add()), which then fail with kSectionChecksumMismatch if they are
  // damaged; so opening costs what the codes cost. A damaged or truncated file is a typed error, never an index:
  // kIoError, kTruncated, kBadMagic, kUnsupportedVersion, kHeaderChecksumMismatch,
  // kBadSectionTable, kSectionOutOfBounds, kSectionMisaligned, kSectionChecksumMismatch,
  // kNonZeroPadding, kBadEncodedData (norms that no index writes). An opened index may still
  // be added to (its contents are copied first).
  static Result<Index> open(const std::string& path, bool verify = true);
  // The same for a snapshot already in memory (received, embedded), used in place: `snapshot`
  // must stay valid, unchanged, as long as the index reads it, and start on a 4-byte boundary
  // (kInvalidArgument otherwise).
  static Result<Index> view(std::span<const std::byte> snapshot, bool verify = true);

  // The header and section table of a snapshot, each section's checksum, and what open() would
  // say. Fails only when the header cannot be read at all (kIoError, kTruncated, kBadMagic,
  // kUnsupportedVersion, kHeaderChecksumMismatch).
  static Result<SnapshotInfo> inspect(const std::string& path);

  // Copies vectors [first, first + count) into `out` (count * dim values): the exact copies when
  // kept, otherwise the codec's decode of the codes scaled to unit length. kInvalidArgument for a
  // range past the end or an `out` of the wrong size.
  Status vectors(std::uint64_t first, std::uint64_t count, std::span<float> out) const;

  std::uint32_t dim() const;
  std::uint64_t size() const;
  const IndexOptions& options() const;
  // Bits per dimension the codes and norms take in memory (the exact copies not included).
  double code_bits_per_dimension() const;

  struct State;  // what an index holds (internal: index/src/index_state.hpp)

 private:
  explicit Index(std::unique_ptr<State> state);
  Status add_batch(std::span<const float> vectors);  // add()'s work on rows already checked
  static Result<Index> from_snapshot(std::span<const std::byte> file, bool verify,
                                     const std::string& where, std::shared_ptr<const void> keep);
  std::unique_ptr<State> s_;
};

}  // namespace agp::index
