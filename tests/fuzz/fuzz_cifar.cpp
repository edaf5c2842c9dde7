// Fuzzes the CIFAR-10 binary loader's in-memory half (parse_cifar_batch). Property: an accepted
// batch has one record per 3,073 bytes, labels 0..9 equal to each record's first byte, and pixels
// equal to the record's remaining bytes in R, G, B plane order.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "apricot/data/dataset.hpp"
#include "apricot/data/formats.hpp"
#include "fuzz_common.hpp"

namespace {
constexpr const char* kTarget = "fuzz_cifar";
constexpr size_t kRecord = 3073;
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  apricot_fuzz::init_torch();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  apricot::Split s;
  if (!apricot_fuzz::guarded(kTarget, [&] { s = apricot::parse_cifar_batch(bytes, "fuzz_batch.bin"); })) return 0;
  const int64_t n = static_cast<int64_t>(size / kRecord);
  if (size % kRecord != 0 || s.x.sizes() != torch::IntArrayRef({n, 3, 32, 32}) || s.y.sizes() != torch::IntArrayRef({n}))
    apricot_fuzz::finding(kTarget, "accepted a batch of the wrong shape");
  auto x = s.x.contiguous();
  for (int64_t i = 0; i < n; ++i) {
    if (s.y[i].item<int64_t>() != data[i * kRecord] || data[i * kRecord] > 9)
      apricot_fuzz::finding(kTarget, "label differs from the record's first byte or is out of 0..9");
    if (std::memcmp(x.data_ptr<uint8_t>() + i * (kRecord - 1), data + i * kRecord + 1, kRecord - 1) != 0)
      apricot_fuzz::finding(kTarget, "pixels differ from the record's bytes");
  }
  return 0;
}
