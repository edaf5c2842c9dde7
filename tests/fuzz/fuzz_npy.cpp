// Fuzzes the NumPy loader's in-memory halves (parse_npy, npy_split). The input is one .npy file;
// when it parses, it is also taken as the images of a split whose labels are zeros. Properties: an
// accepted file holds exactly the data its header declares, and an accepted split has one label per
// image and images of the declared size.
#include <cstddef>
#include <cstdint>
#include <string>

#include "apricot/data/dataset.hpp"
#include "apricot/data/formats.hpp"
#include "fuzz_common.hpp"

namespace {
constexpr const char* kTarget = "fuzz_npy";
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  apricot_fuzz::init_torch();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  apricot::NpyArray a;
  if (!apricot_fuzz::guarded(kTarget, [&] { a = apricot::parse_npy(bytes, "fuzz.npy"); })) return 0;
  int64_t n = 1;  // parse_npy bounds the product of the non-zero dimensions by 2^40
  for (auto d : a.shape) n = d == 0 ? 0 : n * d;
  const int64_t item = a.dtype == "<i8" || a.dtype == "<u8" ? 8 : a.dtype == "<i4" || a.dtype == "<u4" ? 4
                       : a.dtype == "<i2" || a.dtype == "<u2" ? 2 : 1;
  if (static_cast<int64_t>(a.data.size()) != n * item)
    apricot_fuzz::finding(kTarget, "accepted a file whose data is not the declared size");
  if (a.shape.empty() || a.shape[0] > 4096) return 0;
  apricot::NpyArray y{"|u1", {a.shape[0]}, std::string(static_cast<size_t>(a.shape[0]), '\0')};
  apricot::Split s;
  if (!apricot_fuzz::guarded(kTarget, [&] { s = apricot::npy_split(a, y, "x.npy", "y.npy", 0); })) return 0;
  if (s.x.size(0) != a.shape[0] || s.y.size(0) != a.shape[0] || s.x.numel() != n)
    apricot_fuzz::finding(kTarget, "an accepted split does not hold the declared images");
  return 0;
}
