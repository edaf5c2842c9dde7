// The field set (field.hpp): read in one of two formats, checked against the training data, split
// into the selection part and the hold-out.
#include "apricot/data/field.hpp"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "apricot/core/config.hpp"
#include "apricot/core/errors.hpp"
#include "apricot/core/files.hpp"
#include "apricot/core/seeds.hpp"
#include "apricot/data/formats.hpp"

namespace apricot {
namespace fs = std::filesystem;

const std::vector<std::string>& field_formats() {
  static const std::vector<std::string> formats = {"imagefolder", "npy"};
  return formats;
}

void validate(const FieldConfig& f) {
  if (f.format.empty()) return;  // no field set: the other field.* keys are not read
  require_one_of("field.format", f.format, field_formats());
  if (f.root.empty())
    config_error("config key 'field.root' is empty but field.format = \"" + f.format + "\" reads files from it",
                 "set field.root to the folder holding the field images");
  require(f.holdout > 0 && f.holdout < 1, "field.holdout", f.holdout,
          "in (0, 1): the share of the field set kept out for measuring");
  require(f.select >= 0 && f.select < 1, "field.select", f.select,
          "in [0, 1): the share of the repair part held back to choose on (0: choose on what is trained on)");
}

void split_field(const Split& all, int64_t classes, double holdout, uint64_t stream, Split& sel, Split& hold) {
  auto gen = at::detail::createCPUGenerator(stream);
  std::vector<torch::Tensor> sel_rows, hold_rows;
  for (int64_t c = 0; c < classes; ++c) {
    const torch::Tensor rows = all.y.eq(c).nonzero().flatten();
    const int64_t n = rows.size(0);
    if (n == 0) continue;
    const torch::Tensor perm = rows.index_select(0, torch::randperm(n, gen, torch::kInt64));
    const auto k = static_cast<int64_t>(std::llround(holdout * static_cast<double>(n)));
    hold_rows.push_back(perm.slice(0, 0, k));
    sel_rows.push_back(perm.slice(0, k));
  }
  auto take = [&](const std::vector<torch::Tensor>& parts) {
    const torch::Tensor idx = parts.empty() ? torch::empty({0}, torch::kInt64) : std::get<0>(torch::cat(parts).sort());
    return Split{all.x.index_select(0, idx), all.y.index_select(0, idx)};
  };
  sel = take(sel_rows);
  hold = take(hold_rows);
}

namespace {

Split read_npy_field(const std::string& root, int64_t classes) {
  auto read = [&](const std::string& name) {
    const std::string path = (fs::path(root) / name).string();
    std::error_code ec;
    if (!fs::exists(path, ec))
      data_error(path + ": no such file", "field.format \"npy\" reads x_field.npy and y_field.npy from field.root");
    return std::make_pair(parse_npy(read_file(path), path), path);
  };
  auto [x, x_path] = read("x_field.npy");
  auto [y, y_path] = read("y_field.npy");
  return npy_split(x, y, x_path, y_path, classes);
}

std::string hex_of(uint64_t h) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

// FNV-1a over the bytes of both parts: enough to tell two field sets apart in a result's provenance.
std::string fingerprint(const FieldSet& f) {
  uint64_t h = 0xCBF29CE484222325ULL;
  auto add = [&](const torch::Tensor& t) {
    const torch::Tensor c = t.contiguous();
    const auto* p = static_cast<const unsigned char*>(c.data_ptr());
    const size_t n = static_cast<size_t>(c.numel() * c.element_size());
    for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001B3ULL;
    for (int64_t d : c.sizes()) h = (h ^ static_cast<uint64_t>(d)) * 0x100000001B3ULL;
  };
  for (const Split* s : {&f.sel, &f.holdout}) add(s->x), add(s->y);
  return hex_of(h);
}

}  // namespace

FieldSet load_field(const FieldConfig& f, const DataConfig& d, const Dataset& data, uint64_t seed) {
  validate(f);
  if (f.format.empty())
    config_error("no field set: field.format is \"\"", "set field.format (imagefolder or npy) and field.root");
  std::error_code ec;
  if (!fs::is_directory(f.root, ec))
    data_error(f.root + ": no such directory (field.root)", "field.root is the folder holding the field images");
  Split all;
  if (f.format == "npy") {
    all = read_npy_field(f.root, data.classes);
  } else {
    std::vector<std::string> names;
    if (d.format == "imagefolder") {
      names = imagefolder_classes(d.root);
    } else {
      for (int64_t c = 0; c < data.classes; ++c) names.push_back(std::to_string(c));
    }
    all = load_imagefolder_dir(f.root, names, data.channels, data.height, data.width, d.image_size.size() == 2);
  }
  if (all.size() == 0) data_error(f.root + ": the field set holds no image", "add the images the model gets wrong");
  const auto shape = all.x.sizes().slice(1);
  if (shape != data.train.x.sizes().slice(1)) {
    auto str = [](c10::IntArrayRef s) {
      std::string o;
      for (int64_t v : s) {
        if (!o.empty()) o += 'x';
        o += std::to_string(v);
      }
      return o;
    };
    data_error(f.root + ": field images are " + str(shape) + " (C x H x W), the training images " +
                   str(data.train.x.sizes().slice(1)),
               "the field images must have the training images' channels and size");
  }
  FieldSet out;
  out.source = f.root;
  split_field(all, data.classes, f.holdout, seeds::field_holdout(seed), out.sel, out.holdout);
  if (out.holdout.size() == 0)
    data_error(f.root + ": the field hold-out is empty (" + std::to_string(all.size()) + " images, field.holdout = " +
                   std::to_string(f.holdout) + ")",
               "add field images or raise field.holdout: the hold-out measures the repair");
  if (out.sel.size() == 0)
    data_error(f.root + ": no field image is left to repair on (" + std::to_string(all.size()) +
                   " images, field.holdout = " + std::to_string(f.holdout) + ")",
               "add field images or lower field.holdout");
  out.fingerprint = fingerprint(out);
  if (f.select == 0) {
    out.fit = out.pick = out.sel;
    return out;
  }
  split_field(out.sel, data.classes, f.select, seeds::field_select(seed), out.fit, out.pick);
  if (out.pick.size() == 0 || out.fit.size() == 0)
    data_error(f.root + ": field.select = " + std::to_string(f.select) + " leaves " +
                   (out.pick.size() == 0 ? "nothing to choose on" : "nothing to train on") + " (" +
                   std::to_string(out.sel.size()) + " images in the repair part)",
               "add field images, or set field.select to 0 to choose on the images trained on");
  return out;
}

}  // namespace apricot
