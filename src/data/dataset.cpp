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

namespace {

// The format's splits as read (no validation split yet) and its class count.
void read_format(const DataConfig& cfg, Dataset& ds) {
  if (cfg.format == "synthetic") {
    const auto& sh = cfg.synthetic_shape;
    make_synthetic(cfg.synthetic_train, cfg.synthetic_test, sh[0], sh[1], sh[2], cfg.synthetic_classes,
                   seeds::kSyntheticData, ds.train, ds.test);
    ds.classes = cfg.synthetic_classes;
    return;
  }
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
  } else {  // idx, npy: the class count from data.classes, else from the labels
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
}

// The validation split, taken from data.val_from's split; its size must leave that split images.
void take_validation(const DataConfig& cfg, uint64_t seed, Dataset& ds) {
  Split& src = cfg.val_from == "train" ? ds.train : ds.test;
  if (cfg.val_size >= src.size()) {
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
}

// A stable hash of what makes two datasets interchangeable for a model.
std::string fingerprint_of(const DataConfig& cfg, const Dataset& ds) {
  Hasher h;
  h.str(cfg.format);
  h.str(cfg.normalize);  // a model trained on other normalised inputs must not pass as compatible
  h.word(static_cast<uint64_t>(ds.classes));
  for (const Split* s : {&ds.train, &ds.val, &ds.test}) {
    h.tensor(s->x);
    h.tensor(s->y);
  }
  return h.hex();
}

}  // namespace

Dataset load_dataset(const DataConfig& cfg, uint64_t seed) {
  validate(cfg);  // the data.* range checks (config_check.cpp), for callers that built cfg by hand
  Dataset ds;
  ds.name = cfg.format;
  read_format(cfg, ds);
  ds.train = first_rows(ds.train, cfg.train_limit);
  ds.test = first_rows(ds.test, cfg.test_limit);
  take_validation(cfg, seed, ds);
  ds.channels = ds.train.x.size(1);
  ds.height = ds.train.x.size(2);
  ds.width = ds.train.x.size(3);
  ds.norm = Normalizer::fit(cfg.normalize, ds.train.x);
  ds.fingerprint = fingerprint_of(cfg, ds);
  return ds;
}

}  // namespace apricot
