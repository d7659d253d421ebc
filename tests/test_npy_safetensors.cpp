#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "agp/ptp/npy.hpp"
#include "agp/ptp/safetensors.hpp"
#include "sample_messages.hpp"

namespace agp::ptp {
namespace {

namespace fs = std::filesystem;

std::vector<std::byte> to_bytes(const std::string& s) {
  std::vector<std::byte> out(s.size());
  std::memcpy(out.data(), s.data(), s.size());
  return out;
}

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() /
            ("agp_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter_++));
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  static inline int counter_ = 0;
  fs::path path_;
};

// ---------- .npy ----------

TEST(Npy, WriteThenReadEveryDtype) {
  TempDir dir;
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kU8, DType::kI32, DType::kI64}) {
    const std::vector<std::uint64_t> shape = {2, 3, 5};
    const auto data = test::pattern_bytes(30 * dtype_size(t), static_cast<std::uint64_t>(t));
    const std::string path = dir.file(std::string(dtype_name(t)) + ".npy");
    ASSERT_TRUE(write_npy(path, t, shape, data));
    auto a = read_npy(path);
    ASSERT_TRUE(a) << a.status().to_string();
    EXPECT_EQ(a->view.dtype, t);
    EXPECT_EQ(a->view.shape, shape);
    ASSERT_EQ(a->view.data.size(), data.size());
    EXPECT_EQ(0, std::memcmp(a->view.data.data(), data.data(), data.size()));
    // The data starts 64-byte aligned inside the file, as NumPy itself lays it out.
    EXPECT_EQ((a->view.data.data() - a->file.bytes().data()) % 64, 0);
  }
}

TEST(Npy, OneDimensionalAndScalarShapes) {
  const auto one = test::pattern_bytes(4 * 7, 1);
  auto enc = encode_npy(DType::kF32, {7}, one);
  ASSERT_TRUE(enc);
  const std::string text(reinterpret_cast<const char*>(enc->data()) + 10, 60);
  EXPECT_NE(text.find("'shape': (7,)"), std::string::npos) << text;
  auto v = parse_npy(*enc);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->shape, (std::vector<std::uint64_t>{7}));
  auto scalar = encode_npy(DType::kF32, {}, std::span(one).first(4));
  ASSERT_TRUE(scalar);
  auto sv = parse_npy(*scalar);
  ASSERT_TRUE(sv);
  EXPECT_TRUE(sv->shape.empty());
  EXPECT_EQ(sv->element_count(), 1u);
}

TEST(Npy, ReadsNumpyWrittenHeaders) {
  // Version 1.0 and 2.0 headers as NumPy writes them, including a Python-2 style long.
  auto make = [](const std::string& dict, int major, std::size_t data_bytes) {
    std::string h = "\x93NUMPY";
    h += static_cast<char>(major);
    h += '\0';
    std::string body = dict + "\n";
    if (major == 1) {
      h += static_cast<char>(body.size() & 0xff);
      h += static_cast<char>(body.size() >> 8);
    } else {
      for (int i = 0; i < 4; ++i) h += static_cast<char>((body.size() >> (8 * i)) & 0xff);
    }
    return to_bytes(h + body + std::string(data_bytes, '\1'));
  };
  auto a = parse_npy(make("{'descr': '<f2', 'fortran_order': False, 'shape': (16, 256, 384), }", 1,
                          16 * 256 * 384 * 2));
  ASSERT_TRUE(a) << a.status().to_string();
  EXPECT_EQ(a->dtype, DType::kF16);
  auto b =
      parse_npy(make("{\"shape\": (3L, 2L), \"fortran_order\": False, \"descr\": \"<i8\"}", 2, 48));
  ASSERT_TRUE(b) << b.status().to_string();
  EXPECT_EQ(b->shape, (std::vector<std::uint64_t>{3, 2}));
}

struct BadNpy {
  const char* name;
  std::string bytes;
  ErrorCode code;
};

std::string npy1(const std::string& dict, const std::string& data) {
  std::string body = dict + "\n";
  std::string h = "\x93NUMPY\x01";
  h += '\0';
  h += static_cast<char>(body.size() & 0xff);
  h += static_cast<char>(body.size() >> 8);
  return h + body + data;
}

TEST(Npy, MalformedFilesGiveTheirErrors) {
  const std::string ok_dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }";
  const std::vector<BadNpy> cases = {
      {"no_magic", "NUMPY\x01\x00\x10\x00{}", ErrorCode::kBadNpy},
      {"too_short", "\x93NUMPY", ErrorCode::kBadNpy},
      {"version_9", "\x93NUMPY\x09" + std::string(1, '\0') + "\x02" + std::string(1, '\0') + "{}",
       ErrorCode::kBadNpy},
      {"header_len_past_end", "\x93NUMPY\x01" + std::string(1, '\0') + "\xff\x7f{}",
       ErrorCode::kBadNpy},
      {"no_newline", npy1(ok_dict, "12345678").substr(0, 10) + ok_dict + " " + "12345678",
       ErrorCode::kBadNpy},
      {"not_a_dict", npy1("['descr']", ""), ErrorCode::kBadNpy},
      {"missing_shape", npy1("{'descr': '<f4', 'fortran_order': False}", "1234"),
       ErrorCode::kBadNpy},
      {"repeated_key",
       npy1("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': ()}", "1234"),
       ErrorCode::kBadNpy},
      {"negative_dim", npy1("{'descr': '<f4', 'fortran_order': False, 'shape': (-2,)}", ""),
       ErrorCode::kBadNpy},
      {"structured_descr",
       npy1("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,)}", "1234"),
       ErrorCode::kBadNpy},
      {"data_too_short", npy1(ok_dict, "1234"), ErrorCode::kBadNpy},
      {"data_too_long", npy1(ok_dict, "123456789"), ErrorCode::kBadNpy},
      {"overflowing_shape",
       npy1("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296)}", ""),
       ErrorCode::kBadNpy},
      {"big_endian", npy1("{'descr': '>f4', 'fortran_order': False, 'shape': (2,)}", "12345678"),
       ErrorCode::kUnsupportedDtype},
      {"complex", npy1("{'descr': '<c8', 'fortran_order': False, 'shape': (1,)}", "12345678"),
       ErrorCode::kUnsupportedDtype},
      {"fortran_order", npy1("{'descr': '<f4', 'fortran_order': True, 'shape': (2,)}", "12345678"),
       ErrorCode::kUnsupportedDtype},
      {"trailing_garbage", npy1(ok_dict + " x", "12345678"), ErrorCode::kBadNpy},
  };
  for (const auto& c : cases) {
    auto r = parse_npy(to_bytes(c.bytes));
    ASSERT_FALSE(r) << c.name;
    EXPECT_EQ(r.status().code(), c.code) << c.name << ": " << r.status().to_string();
  }
}

TEST(Npy, MissingFileIsAnIoError) {
  auto r = read_npy("/nonexistent/agp/x.npy");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.status().code(), ErrorCode::kIoError);
  EXPECT_NE(r.status().message().find("/nonexistent/agp/x.npy"), std::string::npos);
}

TEST(Npy, WriteRefusesDataOfTheWrongSize) {
  TempDir dir;
  const auto data = test::pattern_bytes(10, 1);
  EXPECT_EQ(write_npy(dir.file("x.npy"), DType::kF32, {3}, data).code(),
            ErrorCode::kInvalidArgument);
}

// ---------- safetensors ----------

struct StTensor {
  std::string name;
  std::string dtype;
  std::vector<std::uint64_t> shape;
  std::size_t bytes;
};

// A safetensors image with the given header JSON and `data_bytes` bytes of data.
std::vector<std::byte> st_image(const std::string& header_json, std::size_t data_bytes) {
  std::vector<std::byte> out(8);
  const std::uint64_t n = header_json.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<std::byte>(n >> (8 * i));
  const auto h = to_bytes(header_json);
  out.insert(out.end(), h.begin(), h.end());
  const auto data = test::pattern_bytes(data_bytes, 5);
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

std::string st_header(const std::vector<StTensor>& ts) {
  std::string j = "{\"__metadata__\": {\"format\": \"pt\"}";
  std::size_t off = 0;
  for (const auto& t : ts) {
    j += ", \"" + t.name + "\": {\"dtype\": \"" + t.dtype + "\", \"shape\": [";
    for (std::size_t i = 0; i < t.shape.size(); ++i)
      j += (i ? ", " : "") + std::to_string(t.shape[i]);
    j += "], \"data_offsets\": [" + std::to_string(off) + ", " + std::to_string(off + t.bytes) +
         "]}";
    off += t.bytes;
  }
  return j + "}";
}

TEST(Safetensors, ParsesTensorsAndMetadata) {
  const std::vector<StTensor> ts = {
      {"b.weight", "BF16", {4, 3}, 24}, {"a.bias", "F32", {3}, 12}, {"steps", "I64", {}, 8}};
  std::map<std::string, std::string> md;
  auto r = parse_safetensors(st_image(st_header(ts), 44), &md);
  ASSERT_TRUE(r) << r.status().to_string();
  ASSERT_EQ(r->size(), 3u);
  EXPECT_EQ((*r)[0].name, "a.bias");  // sorted by name
  EXPECT_EQ((*r)[0].dtype, DType::kF32);
  EXPECT_EQ((*r)[1].dtype, DType::kBF16);
  EXPECT_EQ((*r)[1].shape, (std::vector<std::uint64_t>{4, 3}));
  EXPECT_EQ((*r)[1].data.size(), 24u);
  EXPECT_EQ((*r)[2].shape.size(), 0u);
  EXPECT_EQ(md.at("format"), "pt");
}

TEST(Safetensors, MalformedFilesAreRejected) {
  const std::vector<StTensor> ok = {{"w", "F16", {2, 2}, 8}};
  struct Bad {
    const char* name;
    std::vector<std::byte> bytes;
  };
  auto raw_len = [](std::uint64_t n) {
    std::vector<std::byte> b(8);
    for (int i = 0; i < 8; ++i) b[i] = static_cast<std::byte>(n >> (8 * i));
    const auto rest = to_bytes("{}");
    b.insert(b.end(), rest.begin(), rest.end());
    return b;
  };
  const std::vector<Bad> cases = {
      {"shorter_than_length_field", to_bytes("abc")},
      {"header_length_past_end", raw_len(1000)},
      {"header_length_over_100MB", raw_len(200ull << 20)},
      {"not_json", st_image("{not json", 0)},
      {"json_array", st_image("[1, 2]", 0)},
      {"entry_not_object", st_image("{\"w\": 3}", 0)},
      {"missing_offsets", st_image("{\"w\": {\"dtype\": \"F16\", \"shape\": [2]}}", 4)},
      {"unknown_dtype",
       st_image("{\"w\": {\"dtype\": \"F12\", \"shape\": [2], \"data_offsets\": [0, 4]}}", 4)},
      {"negative_dim",
       st_image("{\"w\": {\"dtype\": \"F16\", \"shape\": [-2], \"data_offsets\": [0, 4]}}", 4)},
      {"offsets_reversed",
       st_image("{\"w\": {\"dtype\": \"F16\", \"shape\": [0], \"data_offsets\": [4, 0]}}", 4)},
      {"offsets_past_data", st_image(st_header(ok), 4)},
      {"size_mismatch",
       st_image("{\"w\": {\"dtype\": \"F32\", \"shape\": [2, 2], \"data_offsets\": [0, 8]}}", 8)},
      {"overlap", st_image("{\"a\": {\"dtype\": \"U8\", \"shape\": [4], \"data_offsets\": [0, 4]}, "
                           "\"b\": {\"dtype\": \"U8\", \"shape\": [4], \"data_offsets\": [2, 6]}}",
                           6)},
      {"hole",
       st_image("{\"a\": {\"dtype\": \"U8\", \"shape\": [2], \"data_offsets\": [2, 4]}}", 4)},
      {"uncovered_tail", st_image(st_header(ok), 12)},
      {"metadata_not_strings", st_image("{\"__metadata__\": {\"x\": 1}}", 0)},
      {"shape_overflow",
       st_image("{\"w\": {\"dtype\": \"F64\", \"shape\": [4294967296, 4294967296], "
                "\"data_offsets\": [0, 0]}}",
                0)},
  };
  for (const auto& c : cases) {
    auto r = parse_safetensors(c.bytes);
    ASSERT_FALSE(r) << c.name;
    EXPECT_EQ(r.status().code(), ErrorCode::kBadSafetensors) << c.name;
  }
}

void write_bytes(const std::string& path, const std::vector<std::byte>& b) {
  ASSERT_TRUE(write_file(path, b));
}

TEST(Safetensors, OpensSingleFileShardedIndexAndDirectories) {
  TempDir dir;
  write_bytes(dir.file("model-00001-of-00002.safetensors"),
              st_image(st_header({{"a", "F32", {2}, 8}, {"b", "F16", {2}, 4}}), 12));
  write_bytes(dir.file("model-00002-of-00002.safetensors"),
              st_image(st_header({{"c", "BF16", {3}, 6}}), 6));
  const std::string index =
      "{\"metadata\": {\"total_size\": 18}, \"weight_map\": {\"a\": "
      "\"model-00001-of-00002.safetensors\", \"b\": \"model-00001-of-00002.safetensors\", \"c\": "
      "\"model-00002-of-00002.safetensors\"}}";
  write_bytes(dir.file("model.safetensors.index.json"), to_bytes(index));

  for (const std::string& p : {dir.file("model.safetensors.index.json"), dir.file("")}) {
    auto m = SafetensorsModel::open(p);
    ASSERT_TRUE(m) << m.status().to_string();
    ASSERT_EQ(m->tensors().size(), 3u);
    ASSERT_NE(m->find("c"), nullptr);
    EXPECT_EQ(m->find("c")->dtype, DType::kBF16);
    EXPECT_EQ(m->find("c")->file_index, 1u);
    EXPECT_EQ(m->find("zz"), nullptr);
    EXPECT_EQ(m->metadata().at("total_size"), "18");
  }
  auto single = SafetensorsModel::open(dir.file("model-00002-of-00002.safetensors"));
  ASSERT_TRUE(single);
  EXPECT_EQ(single->tensors().size(), 1u);
}

TEST(Safetensors, BadIndexesAreRejected) {
  TempDir dir;
  write_bytes(dir.file("s1.safetensors"), st_image(st_header({{"a", "F32", {2}, 8}}), 8));
  write_bytes(dir.file("s2.safetensors"), st_image(st_header({{"a", "F32", {2}, 8}}), 8));
  struct Bad {
    const char* name;
    std::string json;
    ErrorCode code;
  };
  const std::vector<Bad> cases = {
      {"not_json", "{", ErrorCode::kBadSafetensors},
      {"no_weight_map", "{\"metadata\": {}}", ErrorCode::kBadSafetensors},
      {"path_escape", "{\"weight_map\": {\"a\": \"../s1.safetensors\"}}",
       ErrorCode::kBadSafetensors},
      {"missing_shard", "{\"weight_map\": {\"a\": \"s9.safetensors\"}}", ErrorCode::kIoError},
      {"tensor_not_in_shard",
       "{\"weight_map\": {\"a\": \"s1.safetensors\", \"q\": \"s1.safetensors\"}}",
       ErrorCode::kBadSafetensors},
      {"duplicate_across_shards",
       "{\"weight_map\": {\"a\": \"s1.safetensors\", \"b\": \"s2.safetensors\"}}",
       ErrorCode::kBadSafetensors},
  };
  for (const auto& c : cases) {
    write_bytes(dir.file("x.safetensors.index.json"), to_bytes(c.json));
    auto m = SafetensorsModel::open(dir.file("x.safetensors.index.json"));
    ASSERT_FALSE(m) << c.name;
    EXPECT_EQ(m.status().code(), c.code) << c.name << ": " << m.status().to_string();
  }
  auto none = SafetensorsModel::open(dir.file("nothing-here"));
  EXPECT_EQ(none.status().code(), ErrorCode::kIoError);
}

// A shard named by an index may be a link (the Hugging Face cache keeps snapshots/<rev>/ as links
// into ../../blobs/), but not to a file anywhere else.
TEST(Safetensors, ShardLinksMayNotLeaveTheCheckpoint) {
  TempDir outside, cache;
  const auto image = st_image(st_header({{"a", "F32", {2}, 8}}), 8);
  write_bytes(outside.file("secret.safetensors"), image);
  const fs::path ckpt = fs::path(cache.file("models--x/snapshots/rev1"));
  const fs::path blobs = fs::path(cache.file("models--x/blobs"));
  fs::create_directories(ckpt);
  fs::create_directories(blobs);
  write_bytes((ckpt / "x.safetensors.index.json").string(),
              to_bytes("{\"weight_map\": {\"a\": \"s1.safetensors\"}}"));

  fs::create_symlink(outside.file("secret.safetensors"), ckpt / "s1.safetensors");
  auto escaped = SafetensorsModel::open((ckpt / "x.safetensors.index.json").string());
  ASSERT_FALSE(escaped) << "followed a link out of the checkpoint";
  EXPECT_EQ(escaped.status().code(), ErrorCode::kBadSafetensors) << escaped.status().to_string();

  fs::remove(ckpt / "s1.safetensors");
  write_bytes((blobs / "0123abcd").string(), image);
  fs::create_symlink("../../blobs/0123abcd", ckpt / "s1.safetensors");
  auto cached = SafetensorsModel::open((ckpt / "x.safetensors.index.json").string());
  EXPECT_TRUE(cached) << cached.status().to_string();

  fs::remove(ckpt / "s1.safetensors");
  write_bytes((ckpt / "real.bin").string(), image);
  fs::create_symlink("real.bin", ckpt / "s1.safetensors");
  auto inside = SafetensorsModel::open((ckpt / "x.safetensors.index.json").string());
  EXPECT_TRUE(inside) << inside.status().to_string();
}

// ---------- the development model fixture ----------

std::string fixture_dir() {
  const char* env = std::getenv("AGP_DEVMODEL_DIR");
  return env ? env : AGP_DEVMODEL_DEFAULT_DIR;
}

TEST(Fixture, DevmodelSafetensorsAndHiddenStatesLoad) {
  const std::string dir = fixture_dir();
  if (!fs::exists(dir + "/model.safetensors")) {
    GTEST_SKIP() << "devmodel fixture not found at " << dir << " (set AGP_DEVMODEL_DIR)";
  }
  auto m = SafetensorsModel::open(dir);
  ASSERT_TRUE(m) << m.status().to_string();
  const auto* q = m->find("model.layers.0.self_attn.q_proj.weight");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->dtype, DType::kBF16);
  EXPECT_EQ(q->shape, (std::vector<std::uint64_t>{384, 384}));
  const auto* k = m->find("model.layers.0.self_attn.k_proj.weight");
  ASSERT_NE(k, nullptr);
  EXPECT_EQ(k->shape, (std::vector<std::uint64_t>{128, 384}));  // 2 KV heads x 64

  auto h = read_npy(dir + "/hidden_split2.npy");
  ASSERT_TRUE(h) << h.status().to_string();
  EXPECT_EQ(h->view.dtype, DType::kF16);
  EXPECT_EQ(h->view.shape, (std::vector<std::uint64_t>{16, 256, 384}));
}

}  // namespace
}  // namespace agp::ptp
