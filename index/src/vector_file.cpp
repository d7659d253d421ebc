#include "agp/index/vector_file.hpp"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <istream>
#include <nlohmann/json.hpp>
#include <ostream>

#include "agp/codec/dtype.hpp"
#include "agp/ptp/mapped_file.hpp"
#include "agp/ptp/npy.hpp"
#include "simd_kernels.hpp"

namespace agp::index {

namespace {

constexpr const char* kFields[] = {"embedding", "vector", "values", "embedding_vector"};

Status bad_row(const std::string& name, std::uint64_t line, const std::string& why) {
  return make_error(ErrorCode::kBadVectorFile, name + ":" + std::to_string(line) + ": " + why);
}

// The row's values appended to `out`; the error says what is wrong with the row.
std::string parse_row(const std::string& text, std::vector<float>& out, std::size_t& count) {
  nlohmann::json row;
  try {
    row = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {  // parse errors, numbers beyond a double
    return std::string("not JSON we can read (") + e.what() + ")";
  }
  const nlohmann::json* array = nullptr;
  if (row.is_array()) {
    array = &row;
  } else if (row.is_object()) {
    for (const char* field : kFields) {
      auto it = row.find(field);
      if (it != row.end()) {
        array = &*it;
        break;
      }
    }
    if (array == nullptr)
      return "an object without \"embedding\", \"vector\", \"values\" or \"embedding_vector\"";
  } else {
    return "neither an array nor an object";
  }
  if (!array->is_array()) return "the vector is not an array";
  if (array->empty()) return "the vector is empty";
  double ss = 0;
  for (std::size_t k = 0; k < array->size(); ++k) {
    const auto& v = (*array)[k];
    if (!v.is_number()) return "the value at position " + std::to_string(k) + " is not a number";
    const double d = v.get<double>();
    const float f = static_cast<float>(d);
    if (!std::isfinite(f))
      return "the value at position " + std::to_string(k) + " is not a finite f32";
    out.push_back(f);
    ss += static_cast<double>(f) * f;
  }
  if (ss == 0) return "the vector is all zeros (it has no direction)";
  count = array->size();
  return {};
}

// Every row finite and not all zeros (what an index can add); the error names the row.
Status check_rows(const VectorSet& set, const std::string& path) {
  if (set.count() == 0) return make_error(ErrorCode::kBadVectorFile, path + ": no vectors");
  for (std::uint64_t i = 0; i < set.count(); ++i) {
    double ss = 0;
    for (std::uint32_t k = 0; k < set.dim; ++k) {
      const float v = set.values[i * set.dim + k];
      if (!std::isfinite(v)) {
        return make_error(ErrorCode::kBadVectorFile, path + ": row " + std::to_string(i) +
                                                         ": the value at position " +
                                                         std::to_string(k) + " is not finite");
      }
      ss += static_cast<double>(v) * v;
    }
    if (ss == 0) {
      return make_error(
          ErrorCode::kBadVectorFile,
          path + ": row " + std::to_string(i) + ": the vector is all zeros (it has no direction)");
    }
  }
  return {};
}

Result<VectorSet> from_npy(const std::string& path, std::uint32_t want_dim) {
  auto npy = ptp::read_npy(path);
  if (!npy) return npy.status();
  const ptp::NpyView& v = npy->view;
  if (v.dtype != DType::kF32 && v.dtype != DType::kF16) {
    return make_error(
        ErrorCode::kUnsupportedDtype,
        path + ": vectors must be f32 or f16, the file holds " + std::string(dtype_name(v.dtype)));
  }
  if (v.shape.size() != 1 && v.shape.size() != 2) {
    return make_error(ErrorCode::kBadVectorFile,
                      path +
                          ": vectors must be a 2-D array [vectors, dim] (or one 1-D vector), "
                          "the file holds " +
                          std::to_string(v.shape.size()) + " dimensions");
  }
  const std::uint64_t dim = v.shape.back();
  if (dim == 0 || dim > 65536 || (want_dim != 0 && dim != want_dim)) {
    return make_error(
        ErrorCode::kBadVectorFile,
        path + ": vectors of " + std::to_string(dim) + " values" +
            (want_dim ? ", expected " + std::to_string(want_dim) : std::string(", not 1..65,536")));
  }
  VectorSet set;
  set.dim = static_cast<std::uint32_t>(dim);
  set.values.resize(v.element_count());
  if (v.dtype == DType::kF32) {
    std::memcpy(set.values.data(), v.data.data(), v.data.size());
  } else {  // the codec's vectorized conversion (.npy data starts on an element boundary)
    codec::simd::f16_to_f32_n(reinterpret_cast<const std::uint16_t*>(v.data.data()),
                              set.values.size(), set.values.data());
  }
  AGP_RETURN_IF_ERROR(check_rows(set, path));
  return set;
}

Result<VectorSet> from_raw(const std::string& path, std::uint32_t dim) {
  if (dim == 0)
    return make_error(ErrorCode::kInvalidArgument, path + ": raw f32 vectors need their dimension");
  auto map = ptp::MappedFile::open(path);
  if (!map) return map.status();
  const auto bytes = map->bytes();
  if (bytes.size() % (std::size_t{dim} * 4) != 0) {
    return make_error(ErrorCode::kBadVectorFile, path + ": " + std::to_string(bytes.size()) +
                                                     " bytes are not whole vectors of " +
                                                     std::to_string(dim) + " f32 values");
  }
  VectorSet set;
  set.dim = dim;
  set.values.resize(bytes.size() / 4);
  std::memcpy(set.values.data(), bytes.data(), bytes.size());
  AGP_RETURN_IF_ERROR(check_rows(set, path));
  return set;
}

}  // namespace

Result<VectorFormat> vector_format_of(const std::string& path) {
  const std::string ext = std::filesystem::path(path).extension().string();
  if (ext == ".jsonl" || ext == ".json" || ext == ".ndjson") return VectorFormat::kJsonl;
  if (ext == ".npy") return VectorFormat::kNpy;
  if (ext == ".f32" || ext == ".bin" || ext == ".raw") return VectorFormat::kRawF32;
  return make_error(ErrorCode::kInvalidArgument,
                    path + ": unknown vector file type (.jsonl, .npy or .f32)");
}

Result<VectorSet> read_jsonl(std::istream& in, const std::string& name) {
  VectorSet set;
  std::string text;
  std::uint64_t line = 0;
  while (std::getline(in, text)) {
    ++line;
    if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
    std::size_t count = 0;
    const std::string why = parse_row(text, set.values, count);
    if (!why.empty()) return bad_row(name, line, why);
    if (set.dim == 0) {
      if (count > 65536)
        return bad_row(name, line, std::to_string(count) + " values, above 65,536");
      set.dim = static_cast<std::uint32_t>(count);
    } else if (count != set.dim) {
      return bad_row(
          name, line,
          std::to_string(count) + " values, earlier rows have " + std::to_string(set.dim));
    }
  }
  if (in.bad()) return make_error(ErrorCode::kIoError, name + ": read failed");
  if (set.dim == 0) return make_error(ErrorCode::kBadVectorFile, name + ": no vectors");
  return set;
}

Result<VectorSet> read_vectors(const std::string& path, VectorFormat format, std::uint32_t dim) {
  switch (format) {
    case VectorFormat::kNpy:
      return from_npy(path, dim);
    case VectorFormat::kRawF32:
      return from_raw(path, dim);
    case VectorFormat::kJsonl: {
      std::ifstream in(path);
      if (!in) {
        return make_error(ErrorCode::kIoError, "cannot open " + path + ": " + std::strerror(errno));
      }
      auto set = read_jsonl(in, path);
      if (set && dim != 0 && set->dim != dim) {
        return make_error(ErrorCode::kBadVectorFile,
                          path + ": vectors of " + std::to_string(set->dim) + " values, expected " +
                              std::to_string(dim));
      }
      return set;
    }
  }
  return make_error(ErrorCode::kInvalidArgument, "unknown vector format");
}

Status write_jsonl(std::ostream& out, std::span<const float> values, std::uint32_t dim) {
  if (dim == 0 || values.size() % dim != 0)
    return make_error(ErrorCode::kInvalidArgument, "values are not whole vectors");
  char buf[32];
  std::string line;
  for (std::size_t i = 0; i < values.size() / dim; ++i) {
    line.clear();
    line.push_back('[');
    for (std::uint32_t k = 0; k < dim; ++k) {
      std::snprintf(buf, sizeof buf, "%.9g", static_cast<double>(values[i * dim + k]));
      if (k) line.push_back(',');
      line.append(buf);
    }
    line.push_back(']');
    line.push_back('\n');
    out << line;
  }
  out.flush();
  if (!out) return make_error(ErrorCode::kIoError, "write failed");
  return {};
}

Status write_vectors(const std::string& path, VectorFormat format, std::span<const float> values,
                     std::uint32_t dim) {
  if (dim == 0 || values.size() % dim != 0)
    return make_error(ErrorCode::kInvalidArgument, "values are not whole vectors");
  const auto bytes = std::as_bytes(values);
  if (format == VectorFormat::kNpy)
    return ptp::write_npy(path, DType::kF32, {values.size() / dim, dim}, bytes);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out)
    return make_error(ErrorCode::kIoError, "cannot create " + path + ": " + std::strerror(errno));
  if (format == VectorFormat::kJsonl) {
    const Status s = write_jsonl(out, values, dim);
    if (!s) return make_error(ErrorCode::kIoError, "cannot write " + path);
    return {};
  }
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  out.flush();
  if (!out)
    return make_error(ErrorCode::kIoError, "cannot write " + path + ": " + std::strerror(errno));
  return {};
}

}  // namespace agp::index
