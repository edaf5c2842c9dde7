// The range checks of data.* (dataset.hpp).
#include "apricot/core/config.hpp"
#include "apricot/data/dataset.hpp"
#include "apricot/data/formats.hpp"

namespace apricot {

const std::vector<std::string>& data_formats() {
  static const std::vector<std::string> formats = {"cifar10", "idx", "imagefolder", "npy", "synthetic"};
  return formats;
}

void validate(const DataConfig& d) {
  require_one_of("data.format", d.format, data_formats());
  require(d.channels == 0 || d.channels == 1 || d.channels == 3, "data.channels", d.channels, "0 (as the images), 1 or 3");
  require(d.image_size.empty() || d.image_size.size() == 2, "data.image_size", d.image_size.size(), "[] or [H, W]");
  for (auto v : d.image_size) require(v >= 1 && v <= 4096, "data.image_size", v, "in [1, 4096]");
  require(d.classes >= 0 && d.classes <= 100000, "data.classes", d.classes, "0 (from the labels) or a class count");
  require_one_of("data.val_from", d.val_from, {"train", "test"});
  require_one_of("data.normalize", d.normalize, {"scale", "channel", "pixel"});
  require(d.train_limit >= 0, "data.train_limit", d.train_limit, ">= 0 (0 = all)");
  require(d.test_limit >= 0, "data.test_limit", d.test_limit, ">= 0 (0 = all)");
  require(d.val_size >= 1, "data.val_size", d.val_size, ">= 1");
  require(d.synthetic_train >= 1, "data.synthetic_train", d.synthetic_train, ">= 1");
  require(d.synthetic_test >= 1, "data.synthetic_test", d.synthetic_test, ">= 1");
  require(d.synthetic_shape.size() == 3, "data.synthetic_shape", d.synthetic_shape.size(), "a list [C, H, W]");
  for (auto v : d.synthetic_shape) require(v >= 1 && v <= 1024, "data.synthetic_shape", v, "in [1, 1024]");
  require(d.synthetic_classes >= 2 && d.synthetic_classes <= 1000, "data.synthetic_classes", d.synthetic_classes,
          "in [2, 1000]");
}

}  // namespace apricot
