// Fuzzes the safetensors reader (parse_safetensors, the in-memory half of read_safetensors).
// Property: an accepted file's tensors are contiguous CPU tensors whose bytes tile the data section
// exactly, in order, and equal the file's bytes there.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "apricot/io/safetensors.hpp"
#include "fuzz_common.hpp"

namespace {
constexpr const char* kTarget = "fuzz_safetensors";
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  apricot_fuzz::init_torch();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  apricot::SafetensorsFile f;
  if (!apricot_fuzz::guarded(kTarget, [&] { f = apricot::parse_safetensors(bytes, "fuzz.safetensors"); })) return 0;
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(data[i]) << (8 * i);
  size_t pos = 8 + n;
  for (const auto& nt : f.tensors) {
    const auto& t = nt.tensor;
    if (!t.defined() || !t.is_contiguous() || t.device() != torch::kCPU)
      apricot_fuzz::finding(kTarget, "tensor '" + nt.name + "' is not a contiguous CPU tensor");
    const size_t nbytes = static_cast<size_t>(t.numel()) * t.element_size();
    if (pos + nbytes > size || (nbytes > 0 && std::memcmp(t.data_ptr(), data + pos, nbytes) != 0))
      apricot_fuzz::finding(kTarget, "tensor '" + nt.name + "' does not hold its bytes of the data section");
    pos += nbytes;
  }
  if (pos != size) apricot_fuzz::finding(kTarget, "accepted tensors do not cover the data section");
  return 0;
}
