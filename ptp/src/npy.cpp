#include "agp/ptp/npy.hpp"

#include <cctype>
#include <cstring>
#include <optional>
#include <string_view>

namespace agp::ptp {
namespace {

constexpr std::string_view kNpyMagic = "\x93NUMPY";

Status bad(const std::string& msg) {
  return make_error(ErrorCode::kBadNpy, msg);
}

// A strict reader for the Python dict literal of an .npy header, e.g.
// {'descr': '<f2', 'fortran_order': False, 'shape': (16, 256, 384), }
class DictReader {
 public:
  explicit DictReader(std::string_view s) : s_(s) {}

  void skip_ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n')) ++i_;
  }
  bool eat(char c) {
    skip_ws();
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  bool at_end() {
    skip_ws();
    return i_ == s_.size();
  }
  std::optional<std::string> string_lit() {
    skip_ws();
    if (i_ >= s_.size() || (s_[i_] != '\'' && s_[i_] != '"')) return std::nullopt;
    const char q = s_[i_++];
    const std::size_t start = i_;
    while (i_ < s_.size() && s_[i_] != q) {
      if (s_[i_] == '\\') return std::nullopt;  // no escapes in the keys and values we accept
      ++i_;
    }
    if (i_ >= s_.size()) return std::nullopt;
    return std::string(s_.substr(start, i_++ - start));
  }
  std::optional<bool> bool_lit() {
    skip_ws();
    if (s_.substr(i_, 4) == "True") {
      i_ += 4;
      return true;
    }
    if (s_.substr(i_, 5) == "False") {
      i_ += 5;
      return false;
    }
    return std::nullopt;
  }
  std::optional<std::uint64_t> uint_lit() {
    skip_ws();
    std::uint64_t v = 0;
    const std::size_t start = i_;
    while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_]))) {
      const auto d = static_cast<std::uint64_t>(s_[i_] - '0');
      if (v > (UINT64_MAX - d) / 10) return std::nullopt;
      v = v * 10 + d;
      ++i_;
    }
    if (i_ < s_.size() && s_[i_] == 'L') ++i_;  // Python 2 long suffix
    if (i_ == start) return std::nullopt;
    return v;
  }
  // (a, b, c) or (a,) or ()
  std::optional<std::vector<std::uint64_t>> tuple_lit() {
    if (!eat('(')) return std::nullopt;
    std::vector<std::uint64_t> out;
    if (eat(')')) return out;
    while (true) {
      auto v = uint_lit();
      if (!v || out.size() >= 32) return std::nullopt;
      out.push_back(*v);
      if (eat(')')) return out;
      if (!eat(',')) return std::nullopt;
      if (eat(')')) return out;
    }
  }

 private:
  std::string_view s_;
  std::size_t i_ = 0;
};

Result<DType> dtype_from_descr(const std::string& d) {
  if (d.size() < 2) return bad("descr '" + d + "' is not a NumPy type string");
  const char order = d[0];
  const std::string code = d.substr(1);
  if (order == '>' && code != "u1" && code != "i1") {
    return make_error(ErrorCode::kUnsupportedDtype,
                      "big-endian descr '" + d + "' is not supported; save little-endian ('<')");
  }
  if (order != '<' && order != '|' && order != '=' && order != '>') {
    return bad("descr '" + d + "' has no byte-order character");
  }
  if (code == "f4") return DType::kF32;
  if (code == "f2") return DType::kF16;
  if (code == "u2") return DType::kBF16;  // bf16 bit patterns, see npy.hpp
  if (code == "u1") return DType::kU8;
  if (code == "i4") return DType::kI32;
  if (code == "i8") return DType::kI64;
  return make_error(ErrorCode::kUnsupportedDtype,
                    "descr '" + d + "' is not supported (f4, f2, u2 as bf16, u1, i4, i8)");
}

const char* descr_for(DType t) {
  switch (t) {
    case DType::kF32:
      return "<f4";
    case DType::kF16:
      return "<f2";
    case DType::kBF16:
      return "<u2";
    case DType::kU8:
      return "|u1";
    case DType::kI32:
      return "<i4";
    case DType::kI64:
      return "<i8";
    case DType::kUnknown:
      break;
  }
  return nullptr;
}

std::optional<std::uint64_t> byte_count(const std::vector<std::uint64_t>& shape, DType t) {
  std::uint64_t n = dtype_size(t);
  for (std::uint64_t d : shape) {
    if (d != 0 && n > UINT64_MAX / d) return std::nullopt;
    n *= d;
  }
  return n;
}

}  // namespace

std::uint64_t NpyView::element_count() const {
  std::uint64_t n = 1;
  for (std::uint64_t d : shape) n *= d;
  return n;
}

Result<NpyView> parse_npy(std::span<const std::byte> bytes) {
  const auto* p = reinterpret_cast<const char*>(bytes.data());
  if (bytes.size() < 10 || std::string_view(p, 6) != kNpyMagic) {
    return bad("missing the .npy magic \"\\x93NUMPY\" (" + std::to_string(bytes.size()) +
               " bytes)");
  }
  const auto major = static_cast<unsigned char>(p[6]);
  std::size_t header_len = 0;
  std::size_t header_start = 0;
  if (major == 1) {
    header_len = static_cast<unsigned char>(p[8]) |
                 (static_cast<std::size_t>(static_cast<unsigned char>(p[9])) << 8);
    header_start = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) return bad("file ends inside the .npy preamble");
    header_len = 0;
    for (int i = 0; i < 4; ++i) {
      header_len |= static_cast<std::size_t>(static_cast<unsigned char>(p[8 + i])) << (8 * i);
    }
    header_start = 12;
  } else {
    return bad(".npy format version " + std::to_string(major) + " is not 1, 2 or 3");
  }
  if (header_len > bytes.size() - header_start) {
    return bad("header length " + std::to_string(header_len) + " runs past the end of the file (" +
               std::to_string(bytes.size()) + " bytes)");
  }
  std::string_view dict(p + header_start, header_len);
  if (dict.empty() || dict.back() != '\n') return bad("header does not end with a newline");

  DictReader r(dict);
  std::optional<std::string> descr;
  std::optional<bool> fortran;
  std::optional<std::vector<std::uint64_t>> shape;
  if (!r.eat('{')) return bad("header is not a Python dict literal");
  while (!r.eat('}')) {
    auto key = r.string_lit();
    if (!key || !r.eat(':')) return bad("header dict has a malformed key");
    if (*key == "descr" && !descr) {
      descr = r.string_lit();
      if (!descr)
        return bad("'descr' is not a simple type string (structured arrays are not supported)");
    } else if (*key == "fortran_order" && !fortran) {
      fortran = r.bool_lit();
      if (!fortran) return bad("'fortran_order' is not True or False");
    } else if (*key == "shape" && !shape) {
      shape = r.tuple_lit();
      if (!shape) return bad("'shape' is not a tuple of non-negative integers");
    } else {
      return bad("unexpected or repeated header key '" + *key + "'");
    }
    if (!r.eat(',')) {
      if (!r.eat('}')) return bad("header dict entries are not separated by commas");
      break;
    }
  }
  if (!r.at_end()) return bad("trailing characters after the header dict");
  if (!descr || !fortran || !shape)
    return bad("header lacks one of 'descr', 'fortran_order', 'shape'");
  if (*fortran) {
    return make_error(ErrorCode::kUnsupportedDtype,
                      "Fortran-order arrays are not supported; save in C order");
  }
  auto dtype = dtype_from_descr(*descr);
  if (!dtype) return dtype.status();

  NpyView v;
  v.dtype = *dtype;
  v.shape = std::move(*shape);
  const auto need = byte_count(v.shape, v.dtype);
  const std::size_t data_start = header_start + header_len;
  if (!need) return bad("shape element count overflows 64 bits");
  if (*need != bytes.size() - data_start) {
    return bad("data is " + std::to_string(bytes.size() - data_start) + " bytes but shape and " +
               "dtype need " + std::to_string(*need));
  }
  v.data = bytes.subspan(data_start);
  return v;
}

Result<NpyArray> read_npy(const std::string& path) {
  auto file = MappedFile::open(path);
  if (!file) return file.status();
  auto view = parse_npy(file->bytes());
  if (!view) return Status(view.status().code(), path + ": " + view.status().message());
  return NpyArray{std::move(file).value(), std::move(view).value()};
}

Result<std::vector<std::byte>> encode_npy(DType dtype, const std::vector<std::uint64_t>& shape,
                                          std::span<const std::byte> data) {
  const char* descr = descr_for(dtype);
  if (!descr) return make_error(ErrorCode::kUnsupportedDtype, "cannot store dtype unknown in .npy");
  const auto need = byte_count(shape, dtype);
  if (!need || *need != data.size()) {
    return make_error(ErrorCode::kInvalidArgument,
                      "data is " + std::to_string(data.size()) +
                          " bytes but the shape and dtype need " +
                          (need ? std::to_string(*need) : std::string("more than 2^64")));
  }
  std::string dict = std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': (";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    dict += std::to_string(shape[i]);
    if (shape.size() == 1 || i + 1 < shape.size()) dict += ",";
    if (i + 1 < shape.size()) dict += " ";
  }
  dict += "), }";
  // Pad with spaces so that magic + version + length + dict + '\n' is a multiple of 64.
  const std::size_t unpadded = 10 + dict.size() + 1;
  dict.append((64 - unpadded % 64) % 64, ' ');
  dict += '\n';
  if (dict.size() > 0xffff) {
    return make_error(ErrorCode::kInvalidArgument, "shape too long for an .npy 1.0 header");
  }
  std::vector<std::byte> out;
  out.reserve(10 + dict.size() + data.size());
  for (char c : kNpyMagic) out.push_back(static_cast<std::byte>(c));
  out.push_back(std::byte{1});
  out.push_back(std::byte{0});
  out.push_back(static_cast<std::byte>(dict.size() & 0xff));
  out.push_back(static_cast<std::byte>(dict.size() >> 8));
  for (char c : dict) out.push_back(static_cast<std::byte>(c));
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

Status write_npy(const std::string& path, DType dtype, const std::vector<std::uint64_t>& shape,
                 std::span<const std::byte> data) {
  auto bytes = encode_npy(dtype, shape, data);
  if (!bytes) return bytes.status();
  return write_file(path, *bytes);
}

}  // namespace agp::ptp
