// The dataset pipeline: loads a format (formats.hpp) once into uint8 tensors, applies the limits, takes
// the seeded validation split, fits the normaliser and fingerprints the result; augmentation is
// vectorised per batch. It deliberately does no per-sample data loading, caching or resizing.
#include "apricot/data/dataset.hpp"

#include "apricot/core/config.hpp"
#include "apricot/core/errors.hpp"
#include "apricot/data/formats.hpp"
#include "apricot/core/seeds.hpp"

#include <torch/torch.h>
#include <ATen/CPUGeneratorImpl.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

namespace apricot {
namespace fs = std::filesystem;

namespace {

torch::Generator cpu_generator(uint64_t seed) { return at::detail::createCPUGenerator(seed); }

Split take_rows(const Split& s, const torch::Tensor& idx) {
  return Split{s.x.index_select(0, idx), s.y.index_select(0, idx)};
}

Split first_rows(const Split& s, int64_t limit) {
  if (limit <= 0 || limit >= s.size()) return s;
  return Split{s.x.slice(0, 0, limit).clone(), s.y.slice(0, 0, limit).clone()};
}

// Moves `val_size` seeded-random rows of `src` into `val`; the rest stay in `src`, in order.
void carve_validation(Split& src, Split& val, int64_t val_size, uint64_t seed) {
  auto gen = cpu_generator(seeds::validation_split(seed));
  auto perm = torch::randperm(src.size(), gen, torch::kLong);
  auto val_idx = std::get<0>(perm.slice(0, 0, val_size).sort());
  auto rest_idx = std::get<0>(perm.slice(0, val_size).sort());
  val = take_rows(src, val_idx);
  src = take_rows(src, rest_idx);
}

// 64-bit FNV-1a-style hash over 8-byte words with an extra shift to mix high bits down; fast
// enough for 60k images (one pass over contiguous memory). Stable on little-endian machines.
struct Hasher {
  uint64_t h = 0xCBF29CE484222325ULL;
  void word(uint64_t w) {
    h ^= w;
    h *= 0x100000001B3ULL;
    h ^= h >> 29;
  }
  void bytes(const void* data, size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
      uint64_t w;
      std::memcpy(&w, p + i, 8);
      word(w);
    }
    uint64_t tail = 0;
    if (n > i) std::memcpy(&tail, p + i, n - i);
    word(tail ^ (static_cast<uint64_t>(n) << 56));
  }
  void str(const std::string& s) { bytes(s.data(), s.size()); }
  void tensor(const torch::Tensor& t) {
    for (auto d : t.sizes()) word(static_cast<uint64_t>(d));
    auto c = t.contiguous();
    bytes(c.data_ptr(), c.numel() * c.element_size());
  }
  std::string hex() const {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
    return buf;
  }
};

}  // namespace

Dataset load_dataset(const DataConfig& cfg, uint64_t seed) {
  Dataset ds;
  ds.name = cfg.format;
  if (cfg.format == "cifar10" || cfg.format == "idx" || cfg.format == "imagefolder" || cfg.format == "npy") {
    if (cfg.root.empty())
      config_error("data.root is empty but data.format = \"" + cfg.format + "\" reads files from it",
                   "set data.root to the dataset directory");
    if (cfg.format == "cifar10") {
      load_cifar10(cfg.root, ds.train, ds.test);
      ds.classes = kCifar10Classes;
    } else if (cfg.format == "imagefolder") {
      std::vector<std::string> names;
      load_imagefolder(cfg.root, cfg.channels, cfg.image_size, ds.train, ds.test, &names);
      ds.classes = static_cast<int64_t>(names.size());
      std::string list;
      for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
      spdlog::info("{}: {} classes ({}), {} training and {} test images", cfg.root, names.size(), list,
                   ds.train.size(), ds.test.size());
    } else {
      if (cfg.format == "idx") {
        load_idx(cfg.root, ds.train, ds.test);
      } else {
        load_npy(cfg.root, cfg.classes, ds.train, ds.test);
      }
      const int64_t top = std::max(ds.train.y.max().item<int64_t>(), ds.test.y.max().item<int64_t>());
      if (cfg.classes > 0 && top >= cfg.classes)
        data_error(cfg.root + ": label " + std::to_string(top) + " is outside data.classes = " +
                       std::to_string(cfg.classes),
                   "raise data.classes, or set it to 0 to take the largest label + 1");
      ds.classes = cfg.classes > 0 ? cfg.classes : top + 1;
    }
  } else if (cfg.format == "synthetic") {
    const auto& sh = cfg.synthetic_shape;
    if (sh.size() != 3 || *std::min_element(sh.begin(), sh.end()) < 1)
      config_error("data.synthetic_shape must be three positive sizes [C, H, W]");
    if (cfg.synthetic_classes < 2) config_error("data.synthetic_classes must be at least 2");
    if (cfg.synthetic_train < 1 || cfg.synthetic_test < 1)
      config_error("data.synthetic_train and data.synthetic_test must be at least 1");
    make_synthetic(cfg.synthetic_train, cfg.synthetic_test, sh[0], sh[1], sh[2],
                   cfg.synthetic_classes, seeds::kSyntheticData, ds.train, ds.test);
    ds.classes = cfg.synthetic_classes;
  } else {
    config_error("data.format = \"" + cfg.format + "\": unknown format",
                 "use one of: cifar10, idx, imagefolder, npy, synthetic");
  }

  if (cfg.train_limit < 0) config_error("data.train_limit must be >= 0 (0 = all)");
  if (cfg.test_limit < 0) config_error("data.test_limit must be >= 0 (0 = all)");
  ds.train = first_rows(ds.train, cfg.train_limit);
  ds.test = first_rows(ds.test, cfg.test_limit);

  if (cfg.val_from != "train" && cfg.val_from != "test")
    config_error("data.val_from = \"" + cfg.val_from + "\": unknown source",
                 "use one of: train, test");
  Split& src = cfg.val_from == "train" ? ds.train : ds.test;
  if (cfg.val_size < 1 || cfg.val_size >= src.size()) {
    // Only name a key that can make room: a limit that is set, or the synthetic data's size.
    const int64_t limit = cfg.val_from == "train" ? cfg.train_limit : cfg.test_limit;
    std::string hint = "lower data.val_size";
    if (limit > 0) hint += " or raise data." + cfg.val_from + "_limit";
    else if (cfg.format == "synthetic") hint += " or raise data.synthetic_" + cfg.val_from;
    config_error("data.val_size = " + std::to_string(cfg.val_size) + " must be in [1, " +
                     std::to_string(src.size() - 1) + "]: the " + cfg.val_from + " split holds " +
                     std::to_string(src.size()) + " images",
                 hint);
  }
  carve_validation(src, ds.val, cfg.val_size, seed);

  ds.channels = ds.train.x.size(1);
  ds.height = ds.train.x.size(2);
  ds.width = ds.train.x.size(3);
  ds.norm = Normalizer::fit(cfg.normalize, ds.train.x);

  Hasher h;
  h.str(cfg.format);
  h.str(cfg.normalize);  // a model trained on other normalised inputs must not pass as compatible
  h.word(static_cast<uint64_t>(ds.classes));
  for (const Split* s : {&ds.train, &ds.val, &ds.test}) {
    h.tensor(s->x);
    h.tensor(s->y);
  }
  ds.fingerprint = h.hex();
  return ds;
}

}  // namespace apricot
