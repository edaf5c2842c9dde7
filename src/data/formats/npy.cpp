// NumPy .npy arrays as numpy.save writes them: x_train.npy, y_train.npy, x_test.npy, y_test.npy.
#include "apricot/data/formats.hpp"

#include "apricot/core/errors.hpp"
#include "apricot/core/files.hpp"

#include <torch/torch.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

namespace apricot {
namespace fs = std::filesystem;

NpyArray parse_npy(const std::string& bytes, const std::string& source) {
  auto bad = [&](const std::string& why) {
    data_error(source + ": not a NumPy .npy file this tool reads (" + why + ")",
               "write it with numpy.save(path, array) from a C-ordered array (numpy.ascontiguousarray)");
  };
  if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0) bad("no \\x93NUMPY magic");
  const int major = static_cast<uint8_t>(bytes[6]);
  size_t header_len = 0, at = 0;
  if (major == 1) {
    header_len = static_cast<uint8_t>(bytes[8]) | (static_cast<size_t>(static_cast<uint8_t>(bytes[9])) << 8);
    at = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) bad("truncated header");
    for (int i = 3; i >= 0; --i) header_len = (header_len << 8) | static_cast<uint8_t>(bytes[8 + i]);
    at = 12;
  } else {
    bad("format version " + std::to_string(major));
  }
  if (header_len > bytes.size() - at) bad("truncated header");
  const std::string header = bytes.substr(at, header_len);
  at += header_len;
  // The header is a Python dict literal: {'descr': '<i8', 'fortran_order': False, 'shape': (3, 4), }
  auto value_of = [&](const std::string& key) -> std::string {
    const auto k = header.find("'" + key + "'");
    if (k == std::string::npos) bad("the header has no '" + key + "'");
    auto colon = header.find(':', k);
    if (colon == std::string::npos) bad("malformed header");
    auto v = header.find_first_not_of(' ', colon + 1);
    if (v == std::string::npos) bad("malformed header");
    if (header[v] == '\'') {
      auto end = header.find('\'', v + 1);
      if (end == std::string::npos) bad("malformed header");
      return header.substr(v + 1, end - v - 1);
    }
    if (header[v] == '(') {
      auto end = header.find(')', v);
      if (end == std::string::npos) bad("malformed header");
      return header.substr(v + 1, end - v - 1);
    }
    auto end = header.find_first_of(",}", v);
    if (end == std::string::npos) bad("malformed header");
    return header.substr(v, end - v);
  };
  NpyArray a;
  a.dtype = value_of("descr");
  if (value_of("fortran_order").find("True") != std::string::npos) bad("Fortran order");
  const std::string shape = value_of("shape");
  // Element count, with every dimension's bound checked before the multiplication (a zero dimension
  // makes the array empty but must not hide the others' overflow).
  constexpr int64_t kMaxElements = int64_t{1} << 40;
  int64_t count = 1;
  bool empty = false;
  for (size_t i = 0; i < shape.size();) {
    i = shape.find_first_of("0123456789", i);
    if (i == std::string::npos) break;
    size_t end = shape.find_first_not_of("0123456789", i);
    const std::string digits = shape.substr(i, end == std::string::npos ? std::string::npos : end - i);
    if (digits.size() > 12) bad("a dimension of " + digits);
    a.shape.push_back(std::stoll(digits));
    const int64_t d = a.shape.back();
    if (d == 0) empty = true;
    if (d > 0 && count > kMaxElements / d) bad("too many elements");
    count *= std::max<int64_t>(1, d);
    i = end == std::string::npos ? shape.size() : end;
  }
  static const std::map<std::string, int> kSizes = {{"|u1", 1}, {"|i1", 1}, {"<u2", 2}, {"<i2", 2}, {"<u4", 4},
                                                    {"<i4", 4}, {"<u8", 8}, {"<i8", 8}, {"|b1", 1}};
  auto size = kSizes.find(a.dtype);
  if (size == kSizes.end())
    bad("element type '" + a.dtype + "'; uint8 images and integer labels are read (little-endian)");
  const int64_t n = empty ? 0 : count;
  const size_t need = static_cast<size_t>(n) * size->second;
  if (bytes.size() - at < need)
    data_error(source + ": truncated: the header declares " + std::to_string(need) + " bytes of data, the file holds " +
                   std::to_string(bytes.size() - at),
               "write the file again with numpy.save");
  a.data = bytes.substr(at, need);
  return a;
}

namespace {

int64_t element(const NpyArray& a, int64_t i) {
  const char* p = a.data.data();
  auto get = [&](auto v) {
    std::memcpy(&v, p + i * sizeof v, sizeof v);
    return static_cast<int64_t>(v);
  };
  if (a.dtype == "|u1" || a.dtype == "|b1") return get(uint8_t{});
  if (a.dtype == "|i1") return get(int8_t{});
  if (a.dtype == "<u2") return get(uint16_t{});
  if (a.dtype == "<i2") return get(int16_t{});
  if (a.dtype == "<u4") return get(uint32_t{});
  if (a.dtype == "<i4") return get(int32_t{});
  if (a.dtype == "<u8") return get(uint64_t{});
  return get(int64_t{});
}

}  // namespace

Split npy_split(const NpyArray& x, const NpyArray& y, const std::string& x_source, const std::string& y_source,
                int64_t classes) {
  if (x.dtype != "|u1")
    data_error(x_source + ": images of type '" + x.dtype + "'; uint8 images are read",
               "convert them with x.astype(numpy.uint8) (pixel values 0-255)");
  const auto& s = x.shape;
  if (s.size() != 3 && s.size() != 4)
    data_error(x_source + ": " + std::to_string(s.size()) + " dimensions; images are N x H x W, N x H x W x C or N x C x H x W");
  Split out;
  const int64_t n = s[0];
  torch::Tensor t = torch::from_blob(const_cast<char*>(x.data.data()), s, torch::kUInt8).clone();
  if (s.size() == 3) {
    out.x = t.unsqueeze(1);
  } else if (s[3] <= 4) {
    out.x = t.permute({0, 3, 1, 2}).contiguous();  // N x H x W x C, as NumPy users keep images
  } else if (s[1] <= 4) {
    out.x = t;  // N x C x H x W
  } else {
    data_error(x_source + ": shape (" + std::to_string(s[0]) + ", " + std::to_string(s[1]) + ", " +
                   std::to_string(s[2]) + ", " + std::to_string(s[3]) + ") has no channel dimension of 1 to 4",
               "images are N x H x W x C or N x C x H x W with C = 1 (gray) or 3 (RGB)");
  }
  const bool column = y.shape.size() == 2 && y.shape[1] == 1;
  if (y.shape.size() != 1 && !column)
    data_error(y_source + ": labels must be one integer per image (shape (N,) or (N, 1))");
  if (y.shape[0] != n)
    data_error(y_source + ": " + std::to_string(y.shape[0]) + " labels, but " + x_source + " holds " +
                   std::to_string(n) + " images",
               "x and y must have the same length");
  std::vector<int64_t> labels(n);
  for (int64_t i = 0; i < n; ++i) {
    labels[i] = element(y, i);
    if (labels[i] < 0 || (classes > 0 && labels[i] >= classes) || (y.dtype == "<u8" && labels[i] < 0))
      data_error(y_source + ": label " + std::to_string(labels[i]) + " of image " + std::to_string(i) +
                     " is outside the class range" + (classes > 0 ? " [0, " + std::to_string(classes) + ")" : " (>= 0)"),
                 classes > 0 ? "labels are class indices 0..data.classes-1" : "labels are class indices 0, 1, ...");
  }
  out.y = torch::tensor(labels, torch::kInt64);
  return out;
}

void load_npy(const std::string& root, int64_t classes, Split& train, Split& test) {
  auto read = [&](const std::string& name) {
    const std::string path = (fs::path(root) / name).string();
    std::error_code ec;
    if (!fs::exists(path, ec))
      data_error(path + ": no such file",
                 "data.format \"npy\" reads x_train.npy, y_train.npy, x_test.npy and y_test.npy from data.root");
    return std::make_pair(parse_npy(read_file(path), path), path);
  };
  auto [xtr, xtr_path] = read("x_train.npy");
  auto [ytr, ytr_path] = read("y_train.npy");
  auto [xte, xte_path] = read("x_test.npy");
  auto [yte, yte_path] = read("y_test.npy");
  train = npy_split(xtr, ytr, xtr_path, ytr_path, classes);
  test = npy_split(xte, yte, xte_path, yte_path, classes);
  if (train.x.sizes().slice(1) != test.x.sizes().slice(1))
    data_error(xte_path + ": test images of another shape than " + xtr_path + "'s");
}

}  // namespace apricot
