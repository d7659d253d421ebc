// Writes the golden frames of tests/golden/ and the FlatBuffers version that produced them:
//  - one .ptp file per sample message (the frame layer; sample_messages.cpp);
//  - tests/golden/codec/: real encodings of known tensors for every codec and bit width, with the
//    source and decoded tensors as .npy, manifest.tsv and the zstd version (codec_goldens.hpp).
// Regenerate with:
//   ./dev build && build/release/tests/ptp-make-golden tests/golden
#include <flatbuffers/base.h>
#include <zstd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "agp/codec/tensor_view.hpp"
#include "agp/ptp/mapped_file.hpp"
#include "agp/ptp/npy.hpp"
#include "codec_goldens.hpp"
#include "sample_messages.hpp"

namespace {

int fail(const agp::Status& s) {
  std::fprintf(stderr, "ptp-make-golden: %s\n", s.to_string().c_str());
  return 1;
}

agp::Status write_text(const std::string& path, const std::string& text) {
  return agp::ptp::write_file(path, std::as_bytes(std::span(text.data(), text.size())));
}

int write_codec_goldens(const std::string& dir) {
  using namespace agp;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return fail(Status(ErrorCode::kIoError, "cannot create " + dir + ": " + ec.message()));
  for (const auto& t : test::golden_tensors()) {
    const auto bytes = test::golden_tensor_bytes(t);
    if (auto s = ptp::write_npy(dir + "/" + t.name + ".npy", t.dtype, t.shape, bytes); !s) {
      return fail(s);
    }
  }
  ptp::CalibrationFile cal = test::golden_calibration();
  if (auto s = ptp::write_calibration(dir + "/" + test::kGoldenCalibrationFile, cal); !s) return fail(s);
  for (const auto& p : test::golden_packets()) {
    const test::GoldenTensor& t = *test::find_golden_tensor(p.tensor);
    // Encode from the stored source, as the test does.
    auto src = ptp::read_npy(dir + "/" + t.name + ".npy");
    if (!src) return fail(src.status());
    const auto in =
        codec::TensorView::contiguous(src->view.data.data(), t.dtype, t.shape, t.vector_axis);
    auto frames = test::encode_golden(p, t, in);
    if (!frames)
      return fail(Status(frames.status().code(), p.stem() + ": " + frames.status().message()));
    if (auto s = ptp::write_file(dir + "/" + p.stem() + ".ptp", *frames); !s) return fail(s);
    std::uint64_t count = 1;
    for (std::uint64_t d : t.shape) count *= d;
    std::vector<float> decoded(count);
    const auto out =
        codec::TensorView::contiguous(decoded.data(), DType::kF32, t.shape, t.vector_axis);
    auto n = test::decode_golden(*frames, t, out);
    if (!n) return fail(Status(n.status().code(), p.stem() + ": " + n.status().message()));
    if (auto s = ptp::write_npy(dir + "/" + p.stem() + ".decoded.npy", DType::kF32, t.shape,
                                std::as_bytes(std::span(decoded)));
        !s) {
      return fail(s);
    }
    std::printf("%s/%s.ptp %zu bytes, %zu frame(s)\n", dir.c_str(), p.stem().c_str(),
                frames->size(), *n);
  }
  auto manifest = test::golden_manifest(dir);
  if (!manifest) return fail(manifest.status());
  if (auto s = write_text(dir + "/manifest.tsv", *manifest); !s) return fail(s);
  if (auto s = write_text(dir + "/ZSTD_VERSION", std::string(ZSTD_versionString()) + "\n"); !s) {
    return fail(s);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: ptp-make-golden OUTPUT_DIR\n");
    return 2;
  }
  const std::string dir = argv[1];
  for (const auto& m : agp::test::sample_messages()) {
    const auto frame = agp::test::build_frame(m);
    const std::string path = dir + "/" + m.name + ".ptp";
    if (auto s = agp::ptp::write_file(path, frame); !s) return fail(s);
    std::printf("%s %zu bytes\n", path.c_str(), frame.size());
  }
  const std::string version = std::to_string(FLATBUFFERS_VERSION_MAJOR) + "." +
                              std::to_string(FLATBUFFERS_VERSION_MINOR) + "." +
                              std::to_string(FLATBUFFERS_VERSION_REVISION) + "\n";
  if (auto s = write_text(dir + "/FLATBUFFERS_VERSION", version); !s) return fail(s);
  return write_codec_goldens(dir + "/codec");
}
