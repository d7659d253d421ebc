#include "agp/ptp/safetensors.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

namespace agp::ptp {
namespace {

using nlohmann::json;

constexpr std::uint64_t kMaxHeaderBytes = 100u << 20;  // the format's own limit (100 MB)

Status bad(const std::string& msg) {
  return make_error(ErrorCode::kBadSafetensors, msg);
}

// Element sizes of the dtypes the format defines; 0 when unknown.
std::size_t element_size(const std::string& d) {
  static const std::map<std::string, std::size_t, std::less<>> kSizes = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E4M3", 1}, {"F8_E5M2", 1},
      {"I16", 2},  {"U16", 2}, {"F16", 2}, {"BF16", 2},    {"I32", 4},
      {"U32", 4},  {"F32", 4}, {"F64", 8}, {"I64", 8},     {"U64", 8}};
  const auto it = kSizes.find(d);
  return it == kSizes.end() ? 0 : it->second;
}

DType dtype_of(const std::string& d) {
  if (d == "F32") return DType::kF32;
  if (d == "F16") return DType::kF16;
  if (d == "BF16") return DType::kBF16;
  if (d == "U8") return DType::kU8;
  if (d == "I32") return DType::kI32;
  if (d == "I64") return DType::kI64;
  return DType::kUnknown;
}

std::optional<std::uint64_t> as_u64(const json& j) {
  if (j.is_number_unsigned()) return j.get<std::uint64_t>();
  if (j.is_number_integer() && j.get<std::int64_t>() >= 0) return j.get<std::uint64_t>();
  return std::nullopt;
}

Status read_string_map(const json& obj, const std::string& what,
                       std::map<std::string, std::string>* out) {
  if (!obj.is_object()) return bad(what + " is not an object");
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    if (!it.value().is_string()) return bad(what + " value of '" + it.key() + "' is not a string");
    if (out) (*out)[it.key()] = it.value().get<std::string>();
  }
  return {};
}

Result<SafetensorsTensor> read_entry(const std::string& name, const json& e,
                                     std::span<const std::byte> data) {
  const std::string who = "tensor '" + name + "'";
  if (!e.is_object()) return bad(who + " entry is not an object");
  const auto dt = e.find("dtype");
  const auto sh = e.find("shape");
  const auto off = e.find("data_offsets");
  if (dt == e.end() || sh == e.end() || off == e.end()) {
    return bad(who + " lacks one of dtype, shape, data_offsets");
  }
  if (!dt->is_string()) return bad(who + " dtype is not a string");
  SafetensorsTensor t;
  t.name = name;
  t.dtype_name = dt->get<std::string>();
  const std::size_t esize = element_size(t.dtype_name);
  if (esize == 0) return bad(who + " has unknown dtype '" + t.dtype_name + "'");
  t.dtype = dtype_of(t.dtype_name);
  if (!sh->is_array() || sh->size() > 64) return bad(who + " shape is not an array of <= 64 dims");
  std::uint64_t bytes = esize;
  for (const json& d : *sh) {
    const auto v = as_u64(d);
    if (!v) return bad(who + " shape has a non-integer or negative dimension");
    if (*v != 0 && bytes > UINT64_MAX / *v) return bad(who + " shape overflows 64 bits");
    bytes *= *v;
    t.shape.push_back(*v);
  }
  if (!off->is_array() || off->size() != 2) return bad(who + " data_offsets is not [begin, end]");
  const auto begin = as_u64((*off)[0]);
  const auto end = as_u64((*off)[1]);
  if (!begin || !end || *begin > *end) return bad(who + " data_offsets are not 0 <= begin <= end");
  if (*end > data.size()) {
    return bad(who + " ends at data offset " + std::to_string(*end) + " but the data area is " +
               std::to_string(data.size()) + " bytes");
  }
  if (*end - *begin != bytes) {
    return bad(who + " spans " + std::to_string(*end - *begin) + " bytes but " + t.dtype_name +
               " x shape needs " + std::to_string(bytes));
  }
  t.data = data.subspan(*begin, *end - *begin);
  return t;
}

bool is_plain_file_name(const std::string& n) {
  return !n.empty() && n != "." && n != ".." && n.find('/') == std::string::npos &&
         n.find('\\') == std::string::npos;
}

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool exists(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0;
}

bool is_dir(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// A shard named by an index must be a file of the checkpoint: a symbolic link may lead to a file
// in the same folder, or (the Hugging Face cache, where snapshots/<rev>/ links into ../../blobs/)
// to that cache's blobs folder, nowhere else.
Status check_shard_home(const std::string& dir, const std::string& file) {
  auto real = [](const std::string& p) -> std::string {
    char* r = ::realpath(p.c_str(), nullptr);
    if (!r) return {};
    std::string out(r);
    std::free(r);
    return out;
  };
  const std::string where = real(file);
  if (where.empty()) return make_error(ErrorCode::kIoError, "cannot open '" + file + "'");
  auto under = [&](const std::string& folder) {
    return !folder.empty() && where.size() > folder.size() &&
           where.compare(0, folder.size(), folder) == 0 && where[folder.size()] == '/';
  };
  if (under(real(dir)) || under(real(dir + "/../../blobs"))) return {};
  return make_error(ErrorCode::kBadSafetensors,
                    "shard '" + file + "' is a link to '" + where +
                        "', outside the checkpoint folder (and not a Hugging Face cache blob)");
}

}  // namespace

Result<std::vector<SafetensorsTensor>> parse_safetensors(std::span<const std::byte> bytes,
                                                         std::map<std::string, std::string>* md) {
  if (bytes.size() < 8)
    return bad("file is " + std::to_string(bytes.size()) + " bytes; the header length needs 8");
  std::uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= std::to_integer<std::uint64_t>(bytes[i]) << (8 * i);
  if (n > kMaxHeaderBytes) {
    return bad("header length " + std::to_string(n) + " is above the 100 MB limit");
  }
  if (n > bytes.size() - 8) {
    return bad("header length " + std::to_string(n) + " runs past the end of the file (" +
               std::to_string(bytes.size()) + " bytes)");
  }
  const auto* text = reinterpret_cast<const char*>(bytes.data() + 8);
  if (n == 0 || text[0] != '{') return bad("header is not a JSON object");
  json header = json::parse(text, text + n, nullptr, /*allow_exceptions=*/false);
  if (header.is_discarded() || !header.is_object()) return bad("header is not valid JSON");

  const std::span<const std::byte> data = bytes.subspan(8 + n);
  std::vector<SafetensorsTensor> tensors;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> spans;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      AGP_RETURN_IF_ERROR(read_string_map(it.value(), "__metadata__", md));
      continue;
    }
    auto t = read_entry(it.key(), it.value(), data);
    if (!t) return t.status();
    const auto begin = static_cast<std::uint64_t>(t->data.data() - data.data());
    spans.emplace_back(begin, begin + t->data.size());
    tensors.push_back(std::move(t).value());
  }
  std::sort(spans.begin(), spans.end());
  std::uint64_t expected = 0;
  for (const auto& [b, e] : spans) {
    if (b != expected) {
      return bad("tensor data at offset " + std::to_string(b) +
                 (b < expected ? " overlaps" : " leaves a hole") +
                 " (expected the next tensor at " + std::to_string(expected) + ")");
    }
    expected = e;
  }
  if (expected != data.size()) {
    return bad("tensors cover " + std::to_string(expected) + " bytes of a " +
               std::to_string(data.size()) + "-byte data area");
  }
  std::sort(tensors.begin(), tensors.end(),
            [](const SafetensorsTensor& a, const SafetensorsTensor& b) { return a.name < b.name; });
  return tensors;
}

const SafetensorsTensor* SafetensorsModel::find(std::string_view name) const {
  const auto it =
      std::lower_bound(tensors_.begin(), tensors_.end(), name,
                       [](const SafetensorsTensor& t, std::string_view n) { return t.name < n; });
  return it != tensors_.end() && it->name == name ? &*it : nullptr;
}

Result<SafetensorsModel> SafetensorsModel::open(const std::string& path) {
  std::string target = path;
  if (is_dir(path)) {
    const std::string index = path + "/model.safetensors.index.json";
    const std::string single = path + "/model.safetensors";
    if (exists(index)) {
      target = index;
    } else if (exists(single)) {
      target = single;
    } else {
      return make_error(ErrorCode::kIoError, "directory '" + path +
                                                 "' holds neither model.safetensors.index.json "
                                                 "nor model.safetensors");
    }
  }

  SafetensorsModel m;
  std::vector<std::pair<std::string, std::size_t>> expected_home;  // weight_map: name -> shard
  auto add_file = [&m](const std::string& file) -> Status {
    auto mf = MappedFile::open(file);
    if (!mf) return mf.status();
    std::map<std::string, std::string> md;
    auto ts = parse_safetensors(mf->bytes(), &md);
    if (!ts) return Status(ts.status().code(), file + ": " + ts.status().message());
    if (m.files_.empty() && m.metadata_.empty()) m.metadata_ = std::move(md);
    const std::size_t index = m.files_.size();
    for (auto& t : *ts) {
      t.file_index = index;
      m.tensors_.push_back(std::move(t));
    }
    m.files_.push_back(std::move(mf).value());
    m.paths_.push_back(file);
    return {};
  };

  if (!ends_with(target, ".index.json")) {
    // A directory's model.safetensors must be the checkpoint's own, like an index's shards.
    if (target != path) AGP_RETURN_IF_ERROR(check_shard_home(path, target));
    AGP_RETURN_IF_ERROR(add_file(target));
  } else {
    auto idx = MappedFile::open(target);
    if (!idx) return idx.status();
    const auto* text = reinterpret_cast<const char*>(idx->bytes().data());
    json j = json::parse(text, text + idx->bytes().size(), nullptr, false);
    if (j.is_discarded() || !j.is_object()) return bad(target + ": index is not a JSON object");
    const auto wm = j.find("weight_map");
    if (wm == j.end() || !wm->is_object() || wm->empty()) {
      return bad(target + ": index has no non-empty \"weight_map\" object");
    }
    if (const auto md = j.find("metadata"); md != j.end() && md->is_object()) {
      for (auto it = md->begin(); it != md->end(); ++it) {
        m.metadata_[it.key()] =
            it.value().is_string() ? it.value().get<std::string>() : it.value().dump();
      }
    }
    const std::string dir = target.find('/') == std::string::npos
                                ? std::string(".")
                                : target.substr(0, target.rfind('/'));
    std::set<std::string> shards;
    for (auto it = wm->begin(); it != wm->end(); ++it) {
      if (!it.value().is_string() || !is_plain_file_name(it.value().get<std::string>())) {
        return bad(target + ": weight_map entry '" + it.key() +
                   "' does not name a shard file in the same directory");
      }
      shards.insert(it.value().get<std::string>());
    }
    std::map<std::string, std::size_t> shard_index;
    for (const std::string& s : shards) {
      shard_index[s] = m.files_.size();
      AGP_RETURN_IF_ERROR(check_shard_home(dir, dir + "/" + s));
      AGP_RETURN_IF_ERROR(add_file(dir + "/" + s));
    }
    for (auto it = wm->begin(); it != wm->end(); ++it) {
      expected_home.emplace_back(it.key(), shard_index[it.value().get<std::string>()]);
    }
  }
  std::sort(m.tensors_.begin(), m.tensors_.end(),
            [](const SafetensorsTensor& a, const SafetensorsTensor& b) { return a.name < b.name; });
  for (std::size_t i = 1; i < m.tensors_.size(); ++i) {
    if (m.tensors_[i].name == m.tensors_[i - 1].name) {
      return bad("tensor '" + m.tensors_[i].name + "' appears in more than one shard");
    }
  }
  for (const auto& [name, shard] : expected_home) {
    const SafetensorsTensor* t = m.find(name);
    if (!t || t->file_index != shard) {
      return bad(target + ": weight_map puts '" + name + "' in " + m.paths_[shard] +
                 " but that shard does not hold it");
    }
  }
  return m;
}

Status write_safetensors(const std::string& path, std::vector<SafetensorsOutput> tensors,
                         const std::map<std::string, std::string>& metadata) {
  std::sort(tensors.begin(), tensors.end(),
            [](const SafetensorsOutput& a, const SafetensorsOutput& b) { return a.name < b.name; });
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::uint64_t offset = 0;
  for (const SafetensorsOutput& t : tensors) {
    const char* dt = t.dtype == DType::kF32 ? "F32" : t.dtype == DType::kF16 ? "F16" : t.dtype == DType::kBF16 ? "BF16" : nullptr;
    std::uint64_t bytes = dt ? dtype_size(t.dtype) : 0;
    for (std::uint64_t d : t.shape) bytes *= d;
    if (!dt || bytes != t.data.size()) {
      return make_error(ErrorCode::kInvalidArgument, "safetensors: tensor " + t.name + " has " +
                                                         std::to_string(t.data.size()) + " bytes for its shape and dtype");
    }
    header[t.name] = {{"dtype", dt}, {"shape", t.shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  while ((8 + text.size()) % 8) text += ' ';  // the data area starts 8-byte aligned
  std::vector<std::byte> out(8 + text.size() + offset);
  const std::uint64_t n = text.size();
  std::memcpy(out.data(), &n, 8);
  std::memcpy(out.data() + 8, text.data(), text.size());
  std::uint64_t at = 8 + text.size();
  for (const SafetensorsOutput& t : tensors) {
    if (!t.data.empty()) std::memcpy(out.data() + at, t.data.data(), t.data.size());
    at += t.data.size();
  }
  return write_file(path, out);
}

}  // namespace agp::ptp
