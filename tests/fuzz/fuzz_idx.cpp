// Fuzzes the IDX loader's in-memory half (parse_idx). The first input byte picks how the rest is
// presented: 0 as it is (plain, or a gzip file if it starts with 1f 8b), 1 gzip-compressed here,
// 2 as two gzip members, 3 gzip-compressed and cut short. Properties: a plain input that parses
// holds exactly the declared data; a complete gzip stream parses exactly like the plain bytes it
// compresses (same tensor, or the same error) unless those bytes are gzip themselves; a cut stream
// that parses gives what the same prefix of the plain bytes gives.
#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>

#include "apricot/data/dataset.hpp"
#include "apricot/data/formats.hpp"
#include "fuzz_common.hpp"

namespace {
constexpr const char* kTarget = "fuzz_idx";
constexpr const char* kSource = "fuzz-idx3-ubyte";

std::string gzip(const std::string& plain) {
  z_stream zs{};
  if (deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) std::abort();
  std::string out(deflateBound(&zs, plain.size()), '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(plain.data()));
  zs.avail_in = static_cast<uInt>(plain.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  if (deflate(&zs, Z_FINISH) != Z_STREAM_END) std::abort();
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

struct Outcome {
  std::optional<torch::Tensor> t;
  std::string error;
};

Outcome parse(const std::string& bytes) {
  Outcome o;
  try {
    o.t = apricot::parse_idx(bytes, kSource);
  } catch (const apricot::Error& e) {
    o.error = e.what();
  } catch (const std::exception& e) {
    apricot_fuzz::finding(kTarget, std::string("unexpected exception: ") + e.what());
  }
  return o;
}

bool same(const Outcome& a, const Outcome& b) {
  if (a.t.has_value() != b.t.has_value()) return false;
  if (!a.t) return a.error == b.error;
  return a.t->sizes() == b.t->sizes() && a.t->equal(*b.t);
}
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  apricot_fuzz::init_torch();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const int mode = data[0] & 3;
  const std::string plain(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (mode == 0) {
    Outcome o = parse(plain);
    if (o.t) {
      const auto& t = *o.t;
      const size_t header = 4 + 4 * static_cast<size_t>(t.dim());
      const bool is_gzip = plain.size() >= 2 && static_cast<unsigned char>(plain[0]) == 0x1f &&
                           static_cast<unsigned char>(plain[1]) == 0x8b;
      if (!is_gzip && (plain.size() != header + static_cast<size_t>(t.numel()) ||
                       (t.numel() > 0 && std::memcmp(t.data_ptr<uint8_t>(), plain.data() + header, t.numel()) != 0)))
        apricot_fuzz::finding(kTarget, "accepted plain IDX data that is not exactly the declared bytes");
    }
    return 0;
  }
  const Outcome want = parse(plain);
  // Compressing a gzip file adds a layer the parser rightly undoes only once: nothing to compare.
  if (plain.size() >= 2 && static_cast<unsigned char>(plain[0]) == 0x1f &&
      static_cast<unsigned char>(plain[1]) == 0x8b)
    return 0;
  if (mode == 1) {
    if (!same(parse(gzip(plain)), want)) apricot_fuzz::finding(kTarget, "gzip and plain parses differ");
  } else if (mode == 2) {
    const size_t half = plain.size() / 2;
    if (!same(parse(gzip(plain.substr(0, half)) + gzip(plain.substr(half))), want))
      apricot_fuzz::finding(kTarget, "two-member gzip and plain parses differ");
  } else {
    std::string z = gzip(plain);
    z.resize(z.size() / 2);
    Outcome cut = parse(z);
    if (cut.t) {  // then it must be what a plain file of the same prefix gives
      const size_t used = 4 + 4 * static_cast<size_t>(cut.t->dim()) + static_cast<size_t>(cut.t->numel());
      Outcome prefix = parse(plain.substr(0, used));
      if (!prefix.t || !cut.t->equal(*prefix.t))
        apricot_fuzz::finding(kTarget, "a cut gzip stream parsed into something its plain prefix does not give");
    }
  }
  return 0;
}
