// agp_ptp.Index: the compressed embedding index from Python (docs/index.md). Vectors and queries
// come in as anything NumPy turns into float32 rows; results go out as NumPy arrays. The GIL is
// released while the library works.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <limits>
#include <optional>
#include <string>

#include "agp/index/index.hpp"
#include "agp/index/vector_file.hpp"
#include "errors.hpp"

namespace agp_py {

namespace {

using Rows = py::array_t<float, py::array::c_style | py::array::forcecast>;

// `a` as whole rows of `dim` values: [dim] is one row, [n, dim] n rows.
std::span<const float> rows_of(const Rows& a, std::uint32_t dim, const char* what) {
  if (a.ndim() == 1 && static_cast<std::uint64_t>(a.shape(0)) == dim) return {a.data(), dim};
  if (a.ndim() == 2 && static_cast<std::uint64_t>(a.shape(1)) == dim)
    return {a.data(), static_cast<std::size_t>(a.shape(0)) * dim};
  std::string shape;
  for (py::ssize_t d = 0; d < a.ndim(); ++d) shape += (d ? ", " : "") + std::to_string(a.shape(d));
  invalid(std::string(what) + " must be shaped [" + std::to_string(dim) + "] or [n, " +
          std::to_string(dim) + "], got [" + shape + "]");
}

class Index {
 public:
  explicit Index(agp::index::Index index) : index_(std::move(index)) {}

  static Index create(std::int64_t dim, int bits, std::uint64_t seed, bool keep_exact,
                      bool unbias) {
    if (dim < 1 || dim > 65536) invalid("dim must be 1..65536, got " + std::to_string(dim));
    return Index(check(agp::index::Index::create(static_cast<std::uint32_t>(dim),
                                                 {bits, seed, keep_exact, unbias})));
  }
  static Index open(const std::string& path, bool verify) {
    std::optional<agp::Result<agp::index::Index>> r;
    {
      py::gil_scoped_release release;
      r.emplace(agp::index::Index::open(path, verify));
    }
    return Index(check(std::move(*r)));
  }

  void add(const Rows& vectors) {
    const auto rows = rows_of(vectors, index_.dim(), "vectors");
    agp::Status s;
    {
      py::gil_scoped_release release;
      s = index_.add(rows);
    }
    check(s);
  }

  // (ids, scores): int64 and float32, [k] for one query or [n, k]; missing hits are -1 and NaN.
  py::tuple search(const Rows& queries, std::size_t k, std::size_t rerank,
                   std::optional<std::size_t> coarse, unsigned threads) {
    const auto rows = rows_of(queries, index_.dim(), "queries");
    const std::size_t n = rows.size() / index_.dim();
    if (k > (std::size_t{1} << 24)) invalid("k must be at most 16,777,216");
    agp::index::SearchOptions o;
    o.k = k;
    o.rerank = rerank;
    o.coarse = coarse ? *coarse : agp::index::SearchOptions::kAutoCoarse;
    std::optional<agp::Result<std::vector<std::vector<agp::index::Hit>>>> r;
    {
      py::gil_scoped_release release;
      if (n == 1) {
        o.threads = std::max(threads, 1u);
        auto one = index_.search(rows, o);
        if (one) {
          r.emplace(std::vector<std::vector<agp::index::Hit>>{std::move(one).value()});
        } else {
          r.emplace(one.status());
        }
      } else {
        r.emplace(index_.search_batch(rows, o, threads));
      }
    }
    const auto hits = check(std::move(*r));
    py::array_t<std::int64_t> ids({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(k)});
    py::array_t<float> scores({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(k)});
    auto id = ids.mutable_unchecked<2>();
    auto sc = scores.mutable_unchecked<2>();
    for (std::size_t q = 0; q < n; ++q) {
      for (std::size_t j = 0; j < k; ++j) {
        const bool hit = j < hits[q].size();
        id(q, j) = hit ? static_cast<std::int64_t>(hits[q][j].id) : -1;
        sc(q, j) = hit ? hits[q][j].score : std::numeric_limits<float>::quiet_NaN();
      }
    }
    if (queries.ndim() == 1) {
      return py::make_tuple(ids.attr("reshape")(static_cast<py::ssize_t>(k)),
                            scores.attr("reshape")(static_cast<py::ssize_t>(k)));
    }
    return py::make_tuple(ids, scores);
  }

  void save(const std::string& path) const {
    agp::Status s;
    {
      py::gil_scoped_release release;
      s = index_.save(path);
    }
    check(s);
  }

  py::array_t<float> vectors(std::uint64_t first, std::optional<std::uint64_t> count) const {
    if (first > index_.size()) invalid("first is past the end");
    const std::uint64_t n = count ? *count : index_.size() - first;
    if (n > index_.size() - first) invalid("count reaches past the end");
    py::array_t<float> out({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(index_.dim())});
    float* data = out.mutable_data();
    agp::Status s;
    {
      py::gil_scoped_release release;
      s = index_.vectors(first, n, std::span(data, n * index_.dim()));
    }
    check(s);
    return out;
  }

  const agp::index::Index& get() const { return index_; }

 private:
  agp::index::Index index_;
};

py::array_t<float> read_vectors(const std::string& path, std::uint32_t dim) {
  const auto format = check(agp::index::vector_format_of(path));
  std::optional<agp::Result<agp::index::VectorSet>> r;
  {
    py::gil_scoped_release release;
    r.emplace(agp::index::read_vectors(path, format, dim));
  }
  auto set = check(std::move(*r));
  py::array_t<float> out(
      {static_cast<py::ssize_t>(set.count()), static_cast<py::ssize_t>(set.dim)});
  std::copy(set.values.begin(), set.values.end(), out.mutable_data());
  return out;
}

}  // namespace

void bind_index(py::module_& m) {
  py::class_<Index>(m, "Index",
                    "A compressed embedding index: vectors stored as TurboQuant codes (about "
                    "`bits` bits per dimension) and searched by inner product. Vectors and "
                    "queries are L2-normalized on the way in, so scores are cosine similarities.")
      .def(py::init(&Index::create), py::arg("dim"), py::kw_only(), py::arg("bits") = 4,
           py::arg("seed") = agp::index::IndexOptions{}.seed, py::arg("keep_exact") = true,
           py::arg("unbias") = true,
           "An empty index for vectors of `dim` values. keep_exact keeps fp16 copies for "
           "search(rerank=...).")
      .def_static("open", &Index::open, py::arg("path"), py::kw_only(), py::arg("verify") = true,
                  "Maps a snapshot and uses it in place (checksums verified unless verify=False). "
                  "A damaged file raises Error naming what is wrong.")
      .def("add", &Index::add, py::arg("vectors"),
           "Appends vectors shaped [dim] or [n, dim] (anything NumPy converts to float32). All or "
           "nothing: a NaN, an infinity or a zero vector adds none and names the row.")
      .def("search", &Index::search, py::arg("queries"), py::kw_only(), py::arg("k") = 10,
           py::arg("rerank") = 0, py::arg("coarse") = py::none(), py::arg("threads") = 1,
           "(ids, scores) of the k best vectors for each query, best first: int64 and float32, "
           "shaped [k] for one query [dim], [n, k] for [n, dim]; missing hits are -1 and NaN. "
           "rerank: candidates rescored exactly against the fp16 copies. coarse: candidates the "
           "sign stage keeps (None: chosen per query, 0: one stage). threads: for one query, "
           "threads sharing its scan; for many, threads sharing the queries.")
      .def("save", &Index::save, py::arg("path"), "Writes a snapshot (docs/index.md).")
      .def("vectors", &Index::vectors, py::arg("first") = 0, py::arg("count") = py::none(),
           "Stored vectors as float32 [count, dim]: the fp16 copies when kept, else the decoded "
           "codes at unit length.")
      .def("__len__", [](const Index& i) { return i.get().size(); })
      .def_property_readonly("dim", [](const Index& i) { return i.get().dim(); })
      .def_property_readonly("bits", [](const Index& i) { return i.get().options().bits; })
      .def_property_readonly("code_bits_per_dimension",
                             [](const Index& i) { return i.get().code_bits_per_dimension(); })
      .def("__repr__", [](const Index& i) {
        return "Index(dim=" + std::to_string(i.get().dim()) +
               ", bits=" + std::to_string(i.get().options().bits) +
               ", vectors=" + std::to_string(i.get().size()) + ")";
      });
  m.def("read_vectors", &read_vectors, py::arg("path"), py::kw_only(), py::arg("dim") = 0,
        "Reads a vector file (.jsonl rows: a bare array or an object with embedding, vector, "
        "values or embedding_vector; .npy f32/f16; raw .f32 with dim) as float32 [n, dim]. A bad "
        "row raises Error naming the file and line.");
}

}  // namespace agp_py
