// IDX (MNIST, Fashion-MNIST): plain or gzip, read the way zlib's gzread reads them.
#include "apricot/data/formats.hpp"

#include "apricot/core/errors.hpp"
#include "common.hpp"

#include <torch/torch.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <zlib.h>
#include <array>
#include <limits>
#include <memory>
#include <sstream>

namespace apricot {
namespace fs = std::filesystem;

namespace {

using formats::hex_byte;
using formats::read_whole_file;

const char* kIdxHint =
    "data.root must hold train-images-idx3-ubyte, train-labels-idx1-ubyte, "
    "t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte, each plain or gzipped with a .gz suffix "
    "(Debian's dataset-fashion-mnist installs them under /usr/share/datasets/fashion-mnist)";

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

}  // namespace apricot
