// Decodes CIFAR-10 binary, IDX (plain or gzip) and synthetic data once into uint8 tensors, takes
// the seeded validation split, fits the normaliser and fingerprints the result; augmentation is
// vectorised per batch. It deliberately does no per-sample data loading, caching or resizing.
#include "apricot/data.hpp"

#include "apricot/config.hpp"
#include "apricot/errors.hpp"

#include <torch/torch.h>
#include <ATen/CPUGeneratorImpl.h>
#include <spdlog/spdlog.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <memory>
#include <sstream>
#include <vector>

namespace apricot {
namespace fs = std::filesystem;

namespace {

constexpr int64_t kCifarSide = 32;
constexpr int64_t kCifarRecord = 1 + 3 * kCifarSide * kCifarSide;  // label byte + R, G, B planes
constexpr int64_t kCifarClasses = 10;
// Synthetic data is a fixed dataset like a real one: the run seed changes the validation split,
// not the images.
constexpr uint64_t kSyntheticSeed = 0x5EEDDA7AULL;
constexpr uint64_t kSplitSalt = 0x9E3779B97F4A7C15ULL;

const char* kCifarHint =
    "data.root must hold the CIFAR-10 binary layout: data_batch_1.bin .. data_batch_5.bin and "
    "test_batch.bin (the cifar-10-batches-bin/ folder of the official cifar-10-binary.tar.gz, or "
    "the one written by a tool like ../shared/data/make-cifar10-bin)";
const char* kIdxHint =
    "data.root must hold train-images-idx3-ubyte, train-labels-idx1-ubyte, "
    "t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte, each plain or gzipped with a .gz suffix "
    "(Debian's dataset-fashion-mnist installs them under /usr/share/datasets/fashion-mnist)";

// splitmix64: decorrelates the split generator from other consumers of the same run seed.
uint64_t mix_seed(uint64_t z) {
  z += kSplitSalt;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

torch::Generator cpu_generator(uint64_t seed) { return at::detail::createCPUGenerator(seed); }

std::string hex_byte(unsigned v) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%02x", v & 0xFFu);
  return buf;
}

// ---- CIFAR-10 -------------------------------------------------------------------------------

// The whole file as bytes, with the loaders' own messages (`hint` on a missing size).
std::string read_whole_file(const fs::path& path, const char* hint) {
  std::error_code ec;
  const auto bytes = static_cast<int64_t>(fs::file_size(path, ec));
  if (ec) data_error(path.string() + ": cannot read size: " + ec.message(), hint);
  std::string out(static_cast<size_t>(bytes), '\0');
  std::ifstream in(path, std::ios::binary);
  if (!in) data_error(path.string() + ": cannot open: " + std::strerror(errno), hint);
  in.read(out.data(), bytes);
  if (in.gcount() != bytes)
    data_error(path.string() + ": read " + std::to_string(in.gcount()) + " of " +
               std::to_string(bytes) + " bytes");
  return out;
}

void read_cifar_file(const fs::path& path, std::vector<torch::Tensor>& xs,
                     std::vector<torch::Tensor>& ys) {
  Split s = parse_cifar_batch(read_whole_file(path, kCifarHint), path.string());
  xs.push_back(s.x);
  ys.push_back(s.y);
}

// ---- IDX ------------------------------------------------------------------------------------

// Reads an IDX file's bytes the way zlib's gzread reads the file, so that in-memory parsing and
// the file loader agree byte for byte: data starting with the gzip magic 1f 8b is inflated member
// after member (bytes after a member that do not start another one are ignored, a stream cut short
// simply ends); anything else is taken as it is.
class IdxBytes {
 public:
  IdxBytes(const std::string& bytes, const std::string& source) : bytes_(bytes), source_(source) {
    gzip_ = bytes.size() >= 2 && static_cast<unsigned char>(bytes[0]) == 0x1f &&
            static_cast<unsigned char>(bytes[1]) == 0x8b;
    if (gzip_ && inflateInit2(&zs_, 15 + 16) != Z_OK)
      data_error(source_ + ": read error: cannot start gzip decoding (out of memory?)");
  }
  ~IdxBytes() {
    if (gzip_) inflateEnd(&zs_);
  }
  IdxBytes(const IdxBytes&) = delete;
  IdxBytes& operator=(const IdxBytes&) = delete;

  // Up to `len` bytes into dst; fewer only at the end of the data.
  int64_t read(unsigned char* dst, int64_t len) {
    if (!gzip_) {
      const int64_t n = std::min<int64_t>(len, static_cast<int64_t>(bytes_.size() - pos_));
      if (n > 0) std::memcpy(dst, bytes_.data() + pos_, static_cast<size_t>(n));
      pos_ += static_cast<size_t>(n);
      return n;
    }
    int64_t done = 0;
    while (done < len && !eof_) {
      // zlib's API takes non-const input; it never writes through next_in.
      zs_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes_.data() + pos_));
      zs_.avail_in = static_cast<uInt>(std::min<size_t>(bytes_.size() - pos_, 1u << 30));
      zs_.next_out = dst + done;
      zs_.avail_out = static_cast<uInt>(std::min<int64_t>(len - done, 1 << 30));
      const uInt in0 = zs_.avail_in, out0 = zs_.avail_out;
      const int ret = inflate(&zs_, Z_NO_FLUSH);
      pos_ += in0 - zs_.avail_in;
      done += out0 - zs_.avail_out;
      if (ret == Z_STREAM_END) {
        const bool next_member = bytes_.size() - pos_ >= 2 &&
                                 static_cast<unsigned char>(bytes_[pos_]) == 0x1f &&
                                 static_cast<unsigned char>(bytes_[pos_ + 1]) == 0x8b;
        if (next_member) inflateReset(&zs_);
        else eof_ = true;
      } else if (ret == Z_BUF_ERROR) {
        eof_ = true;  // input exhausted inside a member: a truncated stream ends here
      } else if (ret != Z_OK) {
        // The message gzread gave: gzerror's "path: problem".
        const char* msg = ret == Z_MEM_ERROR ? "out of memory" : zs_.msg ? zs_.msg : "compressed data error";
        data_error(source_ + ": read error: " + source_ + ": " + msg);
      }
    }
    return done;
  }

  // Up to `len` bytes as a string that grows with what is actually there, so that a header
  // claiming terabytes costs nothing when the data is short.
  std::string read_up_to(int64_t len) {
    std::string out;
    while (static_cast<int64_t>(out.size()) < len) {
      const int64_t have = static_cast<int64_t>(out.size());
      const int64_t want = std::min<int64_t>(len - have, std::max<int64_t>(int64_t{1} << 20, have));
      out.resize(static_cast<size_t>(have + want));
      const int64_t got = read(reinterpret_cast<unsigned char*>(out.data()) + have, want);
      out.resize(static_cast<size_t>(have + got));
      if (got < want) break;
    }
    return out;
  }

 private:
  const std::string& bytes_;
  const std::string source_;
  bool gzip_ = false;
  bool eof_ = false;
  size_t pos_ = 0;  // next unread input byte
  z_stream zs_{};
};

// The path of `name` in root, plain or .gz; throws naming both candidates if neither exists.
fs::path find_idx(const fs::path& root, const std::string& name) {
  const fs::path plain = root / name, gz = root / (name + ".gz");
  if (fs::exists(plain)) return plain;
  if (fs::exists(gz)) return gz;
  data_error(plain.string() + " (or " + gz.filename().string() + "): no such file", kIdxHint);
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
  auto bad = (y >= kCifarClasses).nonzero();
  if (bad.size(0) > 0) {
    const int64_t i = bad[0][0].item<int64_t>();
    data_error(source + ": record " + std::to_string(i) + " has label " +
                   std::to_string(y[i].item<int64_t>()) + "; CIFAR-10 labels are 0..9",
               "is this the CIFAR-100 binary version? Only CIFAR-10 is supported");
  }
  return Split{raw.slice(1, 1).reshape({n, 3, kCifarSide, kCifarSide}), y};  // (N, 3, 32, 32) copy
}

torch::Tensor parse_idx(const std::string& bytes, const std::string& source) {
  IdxBytes in(bytes, source);
  std::array<unsigned char, 4> magic{};
  if (in.read(magic.data(), 4) != 4)
    data_error(source + ": truncated: shorter than the 4-byte IDX magic");
  const std::string magic_str = hex_byte(magic[0]) + " " + hex_byte(magic[1]) + " " +
                                hex_byte(magic[2]) + " " + hex_byte(magic[3]);
  if (magic[0] != 0 || magic[1] != 0)
    data_error(source + ": not an IDX file (magic " + magic_str + ", expected 0x00 0x00 0x08 ndims)",
               kIdxHint);
  if (magic[2] != 0x08)
    data_error(source + ": unsupported IDX element type " + hex_byte(magic[2]) + " (magic " +
               magic_str + "); only unsigned bytes (0x08) are supported");
  const int ndims = magic[3];
  if (ndims < 1 || ndims > 4)
    data_error(source + ": IDX file with " + std::to_string(ndims) + " dimensions (magic " +
               magic_str + "); expected 1 to 4");
  std::vector<unsigned char> header(4 * static_cast<size_t>(ndims));
  if (in.read(header.data(), static_cast<int64_t>(header.size())) !=
      static_cast<int64_t>(header.size()))
    data_error(source + ": truncated inside the IDX header");
  std::vector<int64_t> dims(ndims);
  int64_t numel = 1;
  for (int d = 0; d < ndims; ++d) {
    const unsigned char* b = &header[4 * d];
    dims[d] = (int64_t{b[0]} << 24) | (int64_t{b[1]} << 16) | (int64_t{b[2]} << 8) | b[3];
    if (dims[d] != 0 && numel > (int64_t{1} << 40) / dims[d])
      data_error(source + ": implausible IDX dimensions (over 2^40 elements)");
    numel *= dims[d];
  }
  // Read first, allocate after: the header's element count is only a claim.
  const std::string data = in.read_up_to(numel);
  const auto got = static_cast<int64_t>(data.size());
  if (got != numel)
    data_error(source + ": truncated: the header declares " + std::to_string(numel) +
               " data bytes, the file holds " + std::to_string(got));
  unsigned char extra = 0;
  if (in.read(&extra, 1) != 0)
    data_error(source + ": has bytes beyond the " + std::to_string(numel) +
               " data bytes its header declares (wrong dimensions?)");
  auto t = torch::empty(dims, torch::kUInt8);
  if (numel > 0) std::memcpy(t.data_ptr<uint8_t>(), data.data(), static_cast<size_t>(numel));
  return t;
}

torch::Tensor read_idx_file(const std::string& path) {
  if (!fs::exists(path)) data_error(path + ": no such file", kIdxHint);
  return parse_idx(read_whole_file(path, kIdxHint), path);
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

void load_idx(const std::string& root, Split& train, Split& test) {
  const fs::path dir(root);
  if (!fs::is_directory(dir)) data_error(root + ": no such directory", kIdxHint);
  auto load_pair = [&](const std::string& prefix, Split& s) {
    const fs::path ip = find_idx(dir, prefix + "-images-idx3-ubyte");
    const fs::path lp = find_idx(dir, prefix + "-labels-idx1-ubyte");
    auto x = read_idx_file(ip.string());
    auto y = read_idx_file(lp.string());
    if (x.dim() != 3)
      data_error(ip.string() + ": expected 3 dimensions (N, H, W), found " +
                 std::to_string(x.dim()));
    if (y.dim() != 1)
      data_error(lp.string() + ": expected 1 dimension (N), found " + std::to_string(y.dim()));
    if (x.size(0) != y.size(0))
      data_error(ip.string() + " holds " + std::to_string(x.size(0)) + " images but " +
                 lp.filename().string() + " holds " + std::to_string(y.size(0)) + " labels");
    if (x.size(0) == 0) data_error(ip.string() + ": holds no images");
    s.x = x.unsqueeze(1);  // (N, 1, H, W)
    s.y = y.to(torch::kLong);
  };
  load_pair("train", train);
  load_pair("t10k", test);
  if (train.x.sizes().slice(1) != test.x.sizes().slice(1))
    data_error(root + ": train images are " + std::to_string(train.x.size(2)) + "x" +
               std::to_string(train.x.size(3)) + " but test images are " +
               std::to_string(test.x.size(2)) + "x" + std::to_string(test.x.size(3)));
}

void make_synthetic(int64_t n_train, int64_t n_test, int64_t channels, int64_t height, int64_t width,
                    int64_t classes, uint64_t seed, Split& train, Split& test) {
  TORCH_CHECK(n_train >= 0 && n_test >= 0 && channels > 0 && height > 0 && width > 0 && classes > 0,
              "make_synthetic: bad sizes");
  auto gen = cpu_generator(seed);
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat);
  // Prototypes: smooth-ish random patterns (a coarse random grid upsampled) so that shifted or
  // noisy samples stay recognisable, the way real images are.
  const int64_t gh = std::max<int64_t>(2, height / 4), gw = std::max<int64_t>(2, width / 4);
  auto coarse = torch::rand({classes, channels, gh, gw}, gen, f32) * 255;  // (K, C, gh, gw)
  auto protos = torch::nn::functional::interpolate(
      coarse, torch::nn::functional::InterpolateFuncOptions()
                  .size(std::vector<int64_t>{height, width})
                  .mode(torch::kBilinear)
                  .align_corners(false));  // (K, C, H, W)
  auto draw = [&](int64_t n, Split& s) {
    // Balanced labels in random order; each sample blends its class prototype with a random other
    // class's (weight < 0.5, so its own class stays nearest) and adds pixel noise: learnable but
    // not trivially, so models make some mistakes.
    auto y = torch::remainder(torch::arange(n, torch::kLong), classes)
                 .index_select(0, torch::randperm(n, gen, torch::kLong));  // (N)
    auto other = torch::remainder(y + torch::randint(1, std::max<int64_t>(classes, 2), {n}, gen,
                                                     torch::kLong),
                                  classes);                                     // (N)
    auto a = (torch::rand({n}, gen, f32) * 0.5).view({n, 1, 1, 1});             // (N, 1, 1, 1)
    auto noise = torch::randn({n, channels, height, width}, gen, f32) * 48;      // (N, C, H, W)
    auto img = protos.index_select(0, y) * (1 - a) + protos.index_select(0, other) * a + noise;
    s.x = img.round().clamp(0, 255).to(torch::kUInt8);  // (N, C, H, W)
    s.y = y;
  };
  draw(n_train, train);
  draw(n_test, test);
}

// ---- Normalizer -----------------------------------------------------------------------------

namespace {

nlohmann::json tensor_to_json(const torch::Tensor& t) {
  auto d = t.to(torch::kDouble).contiguous();
  const double* p = d.data_ptr<double>();
  std::function<nlohmann::json(int64_t, int64_t)> rec = [&](int64_t dim, int64_t off) {
    nlohmann::json arr = nlohmann::json::array();
    const int64_t stride = d.stride(dim);
    for (int64_t i = 0; i < d.size(dim); ++i) {
      if (dim + 1 == d.dim())
        arr.push_back(p[off + i]);
      else
        arr.push_back(rec(dim + 1, off + i * stride));
    }
    return arr;
  };
  return d.dim() == 0 ? nlohmann::json(p[0]) : rec(0, 0);
}

torch::Tensor json_to_tensor(const nlohmann::json& j, const std::string& what) {
  std::vector<int64_t> shape;
  for (const nlohmann::json* cur = &j; cur->is_array(); cur = &(*cur)[0]) {
    shape.push_back(static_cast<int64_t>(cur->size()));
    if (cur->empty()) break;
  }
  std::vector<float> flat;
  std::function<void(const nlohmann::json&, size_t)> rec = [&](const nlohmann::json& n, size_t dim) {
    if (dim == shape.size()) {
      if (!n.is_number()) state_error(what + ": expected a number, found " + n.dump());
      const double v = n.get<double>();  // to float only when it fits: out of range is undefined
      if (!(std::fabs(v) <= std::numeric_limits<float>::max()))
        state_error(what + ": " + n.dump() + " is outside the float range");
      flat.push_back(static_cast<float>(v));
      return;
    }
    if (!n.is_array() || static_cast<int64_t>(n.size()) != shape[dim])
      state_error(what + ": ragged or malformed nested list");
    for (const auto& e : n) rec(e, dim + 1);
  };
  rec(j, 0);
  return torch::tensor(flat, torch::kFloat).reshape(shape);
}

}  // namespace

Normalizer Normalizer::fit(const std::string& kind, const torch::Tensor& train_x) {
  if (kind != "scale" && kind != "channel" && kind != "pixel")
    config_error("data.normalize = \"" + kind + "\": unknown normalisation",
                 "use one of: scale, channel, pixel");
  TORCH_CHECK(train_x.dim() == 4 && train_x.scalar_type() == torch::kUInt8 && train_x.size(0) > 0,
              "Normalizer::fit expects a non-empty uint8 (N, C, H, W) tensor, got ",
              train_x.sizes());
  Normalizer n;
  n.kind = kind;
  if (kind == "scale") return n;
  torch::NoGradGuard no_grad;
  const int64_t N = train_x.size(0), C = train_x.size(1), H = train_x.size(2), W = train_x.size(3);
  // Double accumulation in chunks: exact enough for 50k images without a (N, C, H, W) double copy.
  constexpr int64_t kChunk = 1024;
  auto sum = torch::zeros({C, H, W}, torch::kDouble), sq = torch::zeros({C, H, W}, torch::kDouble);
  for (int64_t i = 0; i < N; i += kChunk) {
    auto c = train_x.slice(0, i, std::min(N, i + kChunk)).to(torch::kDouble).div_(255);
    sum += c.sum(0);
    if (kind == "channel") sq += (c * c).sum(0);
  }
  if (kind == "pixel") {
    n.mean = (sum / N).to(torch::kFloat);  // (C, H, W)
    return n;
  }
  const double count = static_cast<double>(N) * H * W;
  auto mean = sum.sum({1, 2}) / count;                                         // (C)
  auto var = (sq.sum({1, 2}) / count - mean * mean).clamp_min(0);              // population
  auto sd = var.sqrt();
  sd = torch::where(sd > 1e-12, sd, torch::ones_like(sd));  // a constant channel: no scaling
  n.mean = mean.view({C, 1, 1}).to(torch::kFloat);
  n.std = sd.view({C, 1, 1}).to(torch::kFloat);
  return n;
}

torch::Tensor Normalizer::apply(const torch::Tensor& x_u8) const {
  TORCH_CHECK(x_u8.dim() == 4 && x_u8.scalar_type() == torch::kUInt8,
              "Normalizer::apply expects uint8 (B, C, H, W), got ", x_u8.sizes(), " ",
              x_u8.scalar_type());
  auto x = x_u8.to(torch::kFloat).div_(255);  // (B, C, H, W)
  if (kind == "scale") return x;
  TORCH_CHECK(mean.defined(), "Normalizer(", kind, ") used before fit");
  if (kind == "channel") {
    TORCH_CHECK(mean.size(0) == x.size(1), "Normalizer: ", mean.size(0), " channels fitted, batch has ",
                x.size(1));
    return x.sub_(mean.to(x.device())).div_(std.to(x.device()));
  }
  TORCH_CHECK(mean.sizes() == x.sizes().slice(1), "Normalizer: mean image ", mean.sizes(),
              " does not match batch ", x.sizes());
  return x.sub_(mean.to(x.device()));
}

nlohmann::json Normalizer::to_json() const {
  nlohmann::json j{{"kind", kind}};
  if (mean.defined()) j["mean"] = tensor_to_json(mean.cpu());
  if (std.defined()) j["std"] = tensor_to_json(std.cpu());
  return j;
}

Normalizer Normalizer::from_json(const nlohmann::json& j) {
  if (!j.is_object() || !j.contains("kind") || !j["kind"].is_string())
    state_error("normalizer: expected an object with a string \"kind\", found " + j.dump());
  Normalizer n;
  n.kind = j["kind"].get<std::string>();
  if (n.kind == "scale") return n;
  if (n.kind != "channel" && n.kind != "pixel")
    state_error("normalizer: unknown kind \"" + n.kind + "\" (expected scale, channel or pixel)");
  if (!j.contains("mean")) state_error("normalizer (" + n.kind + "): missing \"mean\"");
  n.mean = json_to_tensor(j["mean"], "normalizer.mean");
  if (n.kind == "pixel") {
    if (n.mean.dim() != 3) state_error("normalizer.mean: expected a (C, H, W) nested list");
    return n;
  }
  if (!j.contains("std")) state_error("normalizer (channel): missing \"std\"");
  n.std = json_to_tensor(j["std"], "normalizer.std");
  if (n.mean.dim() != 3 || n.mean.size(1) != 1 || n.mean.size(2) != 1 ||
      n.std.sizes() != n.mean.sizes())
    state_error("normalizer (channel): mean and std must both be (C, 1, 1) nested lists");
  if (!(n.std > 0).all().item<bool>())
    state_error("normalizer (channel): every std must be positive (fit never writes 0)");
  return n;
}

// ---- Pipeline -------------------------------------------------------------------------------

namespace {

Split take_rows(const Split& s, const torch::Tensor& idx) {
  return Split{s.x.index_select(0, idx), s.y.index_select(0, idx)};
}

Split first_rows(const Split& s, int64_t limit) {
  if (limit <= 0 || limit >= s.size()) return s;
  return Split{s.x.slice(0, 0, limit).clone(), s.y.slice(0, 0, limit).clone()};
}

// Moves `val_size` seeded-random rows of `src` into `val`; the rest stay in `src`, in order.
void carve_validation(Split& src, Split& val, int64_t val_size, uint64_t seed) {
  auto gen = cpu_generator(mix_seed(seed));
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
      ds.classes = kCifarClasses;
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
                   cfg.synthetic_classes, kSyntheticSeed, ds.train, ds.test);
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

// ---- Augmentation ---------------------------------------------------------------------------

torch::Tensor shift_batch(const torch::Tensor& x, const torch::Tensor& dy, const torch::Tensor& dx,
                          const std::string& fill) {
  if (fill != "edge" && fill != "zero")
    config_error("train.augment.fill = \"" + fill + "\": unknown fill", "use one of: edge, zero");
  TORCH_CHECK(x.dim() == 4, "shift_batch expects (B, C, H, W), got ", x.sizes());
  const int64_t B = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  TORCH_CHECK(dy.numel() == B && dx.numel() == B, "shift_batch: need one dy and dx per image");
  const auto li = torch::TensorOptions().dtype(torch::kLong).device(x.device());
  // Source coordinate of each output pixel: row i reads row i - dy, column j reads column j - dx.
  auto r = torch::arange(H, li).view({1, H}) - dy.to(li).view({B, 1});  // (B, H)
  auto q = torch::arange(W, li).view({1, W}) - dx.to(li).view({B, 1});  // (B, W)
  auto rc = r.clamp(0, H - 1).view({B, 1, H, 1}).expand({B, C, H, W});
  auto qc = q.clamp(0, W - 1).view({B, 1, 1, W}).expand({B, C, H, W});
  auto out = x.gather(2, rc).gather(3, qc);  // (B, C, H, W), edge-replicated
  if (fill == "zero") {
    auto valid = ((r >= 0) & (r < H)).view({B, 1, H, 1}) & ((q >= 0) & (q < W)).view({B, 1, 1, W});
    out = torch::where(valid, out, torch::zeros({}, out.options()));  // (B, 1, H, W) broadcast
  }
  return out;
}

torch::Tensor augment_batch(const torch::Tensor& x, double shift, const std::string& fill, bool flip,
                            torch::Generator& gen) {
  if (!(shift >= 0.0 && shift < 1.0))
    config_error("train.augment.shift = " + std::to_string(shift) + " must be in [0, 1)");
  TORCH_CHECK(x.dim() == 4, "augment_batch expects (B, C, H, W), got ", x.sizes());
  const int64_t B = x.size(0);
  const int64_t sy = std::llround(shift * x.size(2)), sx = std::llround(shift * x.size(3));
  torch::Tensor out = x;
  // Draws happen on the CPU generator in a fixed order (dy, dx, flip) so results match across
  // devices.
  if (sy > 0 || sx > 0) {
    auto dy = torch::randint(-sy, sy + 1, {B}, gen, torch::kLong);
    auto dx = torch::randint(-sx, sx + 1, {B}, gen, torch::kLong);
    out = shift_batch(out, dy, dx, fill);
  } else if (fill != "edge" && fill != "zero") {
    config_error("train.augment.fill = \"" + fill + "\": unknown fill", "use one of: edge, zero");
  }
  if (flip) {
    auto m = (torch::randint(0, 2, {B}, gen, torch::kLong) == 1).to(x.device()).view({B, 1, 1, 1});
    out = torch::where(m, out.flip({3}), out);
  }
  return out;
}

}  // namespace apricot
