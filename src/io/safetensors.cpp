// safetensors writer and validating reader. The file is built and parsed in memory (models here
// are a few MB) and written through write_file_atomic. Assumes a little-endian host, as LibTorch
// on x86-64 and aarch64 is; it does not byte-swap.
#include "apricot/io/safetensors.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "apricot/core/errors.hpp"
#include "apricot/core/files.hpp"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "safetensors data is little-endian; this implementation does not byte-swap");

namespace apricot {
namespace {

constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // same limit as the reference implementation
const char* const kMetadataKey = "__metadata__";
const char* const kReadHint =
    "the file is corrupt or incomplete; re-create it (e.g. rerun the step that wrote it)";

struct DtypeInfo {
  const char* name;
  torch::ScalarType type;
  size_t itemsize;
};

const DtypeInfo kDtypes[] = {
    {"F32", torch::kFloat32, 4}, {"F64", torch::kFloat64, 8},  {"F16", torch::kFloat16, 2},
    {"BF16", torch::kBFloat16, 2}, {"I64", torch::kInt64, 8},  {"I32", torch::kInt32, 4},
    {"I16", torch::kInt16, 2},   {"I8", torch::kInt8, 1},      {"U8", torch::kUInt8, 1},
    {"BOOL", torch::kBool, 1},
};

const DtypeInfo* dtype_by_type(torch::ScalarType t) {
  for (const auto& d : kDtypes)
    if (d.type == t) return &d;
  return nullptr;
}

const DtypeInfo* dtype_by_name(const std::string& name) {
  for (const auto& d : kDtypes)
    if (name == d.name) return &d;
  return nullptr;
}

[[noreturn]] void corrupt(const std::string& path, const std::string& problem) {
  state_error("invalid safetensors file '" + path + "': " + problem, kReadHint);
}

struct Entry {
  std::string name;
  const DtypeInfo* dtype;
  std::vector<int64_t> shape;
  uint64_t begin, end;
};

// Parses one header entry; every structural problem is reported with the tensor's name.
Entry parse_entry(const std::string& path, const std::string& name, const nlohmann::ordered_json& v,
                  uint64_t data_size) {
  auto bad = [&](const std::string& what) { corrupt(path, "tensor '" + name + "': " + what); };
  if (!v.is_object()) bad("header entry is not a JSON object");

  auto dt = v.find("dtype");
  if (dt == v.end() || !dt->is_string()) bad("missing or non-string \"dtype\"");
  const DtypeInfo* dtype = dtype_by_name(dt->get<std::string>());
  if (dtype == nullptr) bad("unsupported dtype \"" + dt->get<std::string>() + "\"");

  auto sh = v.find("shape");
  if (sh == v.end() || !sh->is_array()) bad("missing or non-array \"shape\"");
  std::vector<int64_t> shape;
  uint64_t numel = 1;
  for (const auto& d : *sh) {
    if (!d.is_number_unsigned()) bad("\"shape\" holds something other than a non-negative integer");
    uint64_t n = d.get<uint64_t>();
    if (n > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) bad("dimension too large");
    if (__builtin_mul_overflow(numel, n, &numel)) bad("shape has too many elements");
    shape.push_back(static_cast<int64_t>(n));
  }
  uint64_t nbytes = 0;
  if (__builtin_mul_overflow(numel, static_cast<uint64_t>(dtype->itemsize), &nbytes))
    bad("shape has too many elements");

  auto off = v.find("data_offsets");
  if (off == v.end() || !off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
      !(*off)[1].is_number_unsigned())
    bad("\"data_offsets\" is not a pair of non-negative integers");
  uint64_t begin = (*off)[0].get<uint64_t>(), end = (*off)[1].get<uint64_t>();
  if (end < begin) bad("\"data_offsets\" end " + std::to_string(end) + " < begin " + std::to_string(begin));
  if (end > data_size) {
    corrupt(path, "truncated: tensor '" + name + "' needs data bytes [" + std::to_string(begin) +
                      ", " + std::to_string(end) + ") but the data section holds only " +
                      std::to_string(data_size) + " bytes");
  }
  if (end - begin != nbytes) {
    bad("data_offsets span " + std::to_string(end - begin) + " bytes but " + dtype->name +
        " shape of " + std::to_string(numel) + " elements needs " + std::to_string(nbytes));
  }
  return Entry{name, dtype, std::move(shape), begin, end};
}

}  // namespace

void write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) meta[k] = v;
    header[kMetadataKey] = std::move(meta);
  }

  std::vector<torch::Tensor> cpu;
  cpu.reserve(tensors.size());
  std::set<std::string> seen;
  uint64_t offset = 0;
  for (const auto& nt : tensors) {
    TORCH_CHECK(!nt.name.empty() && nt.name != kMetadataKey,
                "write_safetensors: invalid tensor name '", nt.name, "'");
    TORCH_CHECK(seen.insert(nt.name).second, "write_safetensors: duplicate tensor name '", nt.name, "'");
    TORCH_CHECK(nt.tensor.defined(), "write_safetensors: tensor '", nt.name, "' is undefined");
    const DtypeInfo* dtype = dtype_by_type(nt.tensor.scalar_type());
    TORCH_CHECK(dtype != nullptr, "write_safetensors: tensor '", nt.name, "' has unsupported dtype ",
                nt.tensor.scalar_type());
    torch::Tensor t = nt.tensor.detach().to(torch::kCPU).contiguous();
    const uint64_t nbytes = static_cast<uint64_t>(t.numel()) * dtype->itemsize;
    header[nt.name] = {{"dtype", dtype->name},
                       {"shape", t.sizes().vec()},
                       {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
    cpu.push_back(std::move(t));
  }

  std::string json = header.dump();
  json.append((8 - json.size() % 8) % 8, ' ');  // data section starts 8-byte aligned
  const uint64_t n = json.size();

  std::string bytes;
  bytes.reserve(8 + n + offset);
  for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  bytes += json;
  for (const auto& t : cpu) {
    bytes.append(static_cast<const char*>(t.data_ptr()), t.numel() * t.element_size());
  }
  write_file_atomic(path, bytes);
}

SafetensorsFile read_safetensors(const std::string& path) {
  return parse_safetensors(read_file(path), path);  // read_file: data_error if missing
}

SafetensorsFile parse_safetensors(const std::string& bytes, const std::string& path) {
  const uint64_t size = bytes.size();
  if (size < 8) {
    corrupt(path, "truncated: " + std::to_string(size) +
                      " bytes, shorter than the 8-byte header length field");
  }
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[i])) << (8 * i);
  if (n > kMaxHeaderBytes) {
    corrupt(path, "header length " + std::to_string(n) + " exceeds the 100 MB limit (not a safetensors file?)");
  }
  if (n > size - 8) {
    corrupt(path, "truncated: header length is " + std::to_string(n) + " bytes but only " +
                      std::to_string(size - 8) + " bytes follow");
  }
  const uint64_t data_size = size - 8 - n;
  const char* data = bytes.data() + 8 + n;

  // ordered_json keeps the header's order, which breaks ties between zero-size tensors.
  auto header = nlohmann::ordered_json::parse(bytes.begin() + 8, bytes.begin() + 8 + n, nullptr, false);
  if (header.is_discarded()) corrupt(path, "header is not valid JSON");
  if (!header.is_object()) corrupt(path, "header is not a JSON object");

  SafetensorsFile out;
  std::vector<Entry> entries;
  for (const auto& [key, value] : header.items()) {
    if (key == kMetadataKey) {
      if (!value.is_object()) corrupt(path, "\"__metadata__\" is not a JSON object");
      for (const auto& [mk, mv] : value.items()) {
        if (!mv.is_string()) corrupt(path, "metadata value for '" + mk + "' is not a string");
        out.metadata[mk] = mv.get<std::string>();
      }
      continue;
    }
    entries.push_back(parse_entry(path, key, value, data_size));
  }

  // The format requires the entries to tile the data section exactly: no overlap, no holes.
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t pos = 0;
  for (const auto& e : entries) {
    if (e.begin < pos) corrupt(path, "tensor '" + e.name + "' overlaps the previous tensor's data");
    if (e.begin > pos) {
      corrupt(path, "gap of " + std::to_string(e.begin - pos) + " unused bytes before tensor '" +
                        e.name + "'");
    }
    pos = e.end;
  }
  if (pos != data_size) {
    corrupt(path, std::to_string(data_size - pos) + " trailing bytes after the last tensor's data");
  }

  out.tensors.reserve(entries.size());
  for (const auto& e : entries) {
    torch::Tensor t = torch::empty(e.shape, torch::TensorOptions().dtype(e.dtype->type));
    const size_t nbytes = e.end - e.begin;
    if (e.dtype->type == torch::kBool) {
      for (size_t i = 0; i < nbytes; ++i) {
        auto b = static_cast<unsigned char>(data[e.begin + i]);
        if (b > 1) corrupt(path, "tensor '" + e.name + "': BOOL byte is neither 0 nor 1");
      }
    }
    if (nbytes > 0) std::memcpy(t.data_ptr(), data + e.begin, nbytes);
    out.tensors.push_back({e.name, std::move(t)});
  }
  return out;
}

}  // namespace apricot
