// CIFAR-10 binary: data_batch_1.bin .. data_batch_5.bin and test_batch.bin, records of one label
// byte and 3,072 pixel bytes (R, G, B planes of 32 x 32).
#include "apricot/data/formats.hpp"

#include "apricot/core/errors.hpp"
#include "common.hpp"

#include <torch/torch.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace apricot {
namespace fs = std::filesystem;

namespace {

using formats::read_whole_file;

constexpr int64_t kCifarSide = 32;
constexpr int64_t kCifarRecord = 1 + 3 * kCifarSide * kCifarSide;  // label byte + R, G, B planes

const char* kCifarHint =
    "data.root must hold the CIFAR-10 binary layout: data_batch_1.bin .. data_batch_5.bin and "
    "test_batch.bin (the cifar-10-batches-bin/ folder of the official cifar-10-binary.tar.gz, or "
    "the one written by a tool like ../shared/data/make-cifar10-bin)";

void read_cifar_file(const fs::path& path, std::vector<torch::Tensor>& xs,
                     std::vector<torch::Tensor>& ys) {
  Split s = parse_cifar_batch(read_whole_file(path, kCifarHint), path.string());
  xs.push_back(s.x);
  ys.push_back(s.y);
}

}  // namespace

Split parse_cifar_batch(const std::string& bytes, const std::string& source) {
  const auto size = static_cast<int64_t>(bytes.size());
  if (size == 0 || size % kCifarRecord != 0)
    data_error(source + ": truncated or not CIFAR-10 binary: size " + std::to_string(size) +
                   " bytes is not a positive multiple of the " + std::to_string(kCifarRecord) +
                   "-byte record",
               "re-extract or regenerate the file; " + std::string(kCifarHint));
  const int64_t n = size / kCifarRecord;
  auto raw = torch::empty({n, kCifarRecord}, torch::kUInt8);  // (N, 3073)
  std::memcpy(raw.data_ptr<uint8_t>(), bytes.data(), static_cast<size_t>(size));
  auto y = raw.select(1, 0).to(torch::kLong);  // (N)
  auto bad = (y >= kCifar10Classes).nonzero();
  if (bad.size(0) > 0) {
    const int64_t i = bad[0][0].item<int64_t>();
    data_error(source + ": record " + std::to_string(i) + " has label " +
                   std::to_string(y[i].item<int64_t>()) + "; CIFAR-10 labels are 0..9",
               "is this the CIFAR-100 binary version? Only CIFAR-10 is supported");
  }
  return Split{raw.slice(1, 1).reshape({n, 3, kCifarSide, kCifarSide}), y};  // (N, 3, 32, 32) copy
}


void load_cifar10(const std::string& root, Split& train, Split& test) {
  const fs::path dir(root);
  if (!fs::is_directory(dir)) data_error(root + ": no such directory", kCifarHint);
  std::vector<torch::Tensor> xs, ys;
  std::string loaded;
  for (int k = 1; k <= 5; ++k) {
    const fs::path p = dir / ("data_batch_" + std::to_string(k) + ".bin");
    if (!fs::exists(p)) continue;
    read_cifar_file(p, xs, ys);
    loaded += (loaded.empty() ? "" : ",") + std::to_string(k);
  }
  const fs::path test_path = dir / "test_batch.bin";
  auto hint = std::string(kCifarHint);
  if (fs::exists(dir / "cifar-10-batches-bin" / "test_batch.bin"))
    hint = "did you mean data.root = " + (dir / "cifar-10-batches-bin").string() + "?";
  if (xs.empty()) data_error((dir / "data_batch_1.bin").string() + ": no such file", hint);
  if (!fs::exists(test_path)) data_error(test_path.string() + ": no such file", hint);
  if (xs.size() < 5)
    spdlog::warn("{}: only data_batch_{{{}}}.bin present; training on a partial CIFAR-10", root,
                 loaded);
  train.x = xs.size() == 1 ? xs[0] : torch::cat(xs);  // (N, 3, 32, 32)
  train.y = ys.size() == 1 ? ys[0] : torch::cat(ys);  // (N)
  std::vector<torch::Tensor> tx, ty;
  read_cifar_file(test_path, tx, ty);
  test.x = tx[0];
  test.y = ty[0];
}

}  // namespace apricot
