// Checkpoint files: the LibTorch archive plus JSON metadata with a CRC-32 of the archive. The
// archive is read only after the metadata and checksum pass, so a truncated or foreign file is
// reported as such instead of surfacing as a LibTorch exception.
#include "apricot/io/checkpoint.hpp"

#include <torch/serialize.h>
#include <torch/version.h>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <map>
#include <mutex>
#include <sstream>

#include "apricot/core/errors.hpp"
#include "apricot/core/files.hpp"
#include "apricot/models/gated.hpp"

namespace apricot {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string now_iso8601() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

}  // namespace

std::string meta_path_for(const std::string& pt_path) {
  fs::path p(pt_path);
  return p.replace_extension(".json").string();
}

bool checkpoint_exists(const std::string& pt_path) {
  return fs::exists(pt_path) && fs::exists(meta_path_for(pt_path));
}

json model_meta(const ModelSpec& spec) {
  json m;
  m["format"] = "apricot-checkpoint";
  m["format_version"] = 1;
  m["arch"] = spec.arch;
  m["resnet_variant"] = spec.resnet_variant;
  if (spec.arch == "torchscript") m["model_path"] = fs::absolute(spec.path).string();
  m["input"] = {spec.channels, spec.height, spec.width};
  m["classes"] = spec.classes;
  return m;
}

json checkpoint_meta(const ModelSpec& spec, const Dataset& data) {
  json m = model_meta(spec);
  m["normalization"] = data.norm.to_json();
  m["dataset"] = {{"name", data.name},
                  {"fingerprint", data.fingerprint},
                  {"train", data.train.size()},
                  {"val", data.val.size()},
                  {"test", data.test.size()}};
  m["tool_version"] = APRICOT_VERSION;
  m["libtorch_version"] = TORCH_VERSION;
  m["created"] = now_iso8601();
  return m;
}

json checkpoint_meta(const ModelSpec& spec, const Dataset& data, const std::string& role, uint64_t seed,
                     const Config& cfg) {
  json m = checkpoint_meta(spec, data);
  m["role"] = role;
  m["seed"] = seed;
  m["config"] = to_json(cfg);
  return m;
}

ModelSpec spec_from_meta(const json& meta, const std::string& source) {
  try {
    if (meta.value("format", "") != "apricot-checkpoint") throw std::runtime_error("no apricot-checkpoint format tag");
    ModelSpec s;
    s.arch = meta.at("arch").get<std::string>();
    s.resnet_variant = meta.value("resnet_variant", "v1");
    if (s.arch == "torchscript") s.path = meta.at("model_path").get<std::string>();
    // Integers only, checked before conversion: get<int64_t>() of a float such as 1e300 is undefined.
    auto whole = [](const json& v, const char* what, int64_t lo, int64_t hi) {
      if (!v.is_number_integer()) throw std::runtime_error(std::string(what) + " must be an integer, got " + v.dump());
      const int64_t x = v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(hi) ? hi + 1 : v.get<int64_t>();
      if (x < lo || x > hi)
        throw std::runtime_error(std::string(what) + " must be in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                                 "], got " + v.dump());
      return x;
    };
    const json& in = meta.at("input");
    if (!in.is_array() || in.size() != 3) throw std::runtime_error("input must be [C, H, W]");
    s.channels = whole(in[0], "input C", 1, 1024);
    s.height = whole(in[1], "input H", 1, 65536);
    s.width = whole(in[2], "input W", 1, 65536);
    s.classes = whole(meta.at("classes"), "classes", 2, 1000000);
    return s;
  } catch (const std::exception& e) {
    state_error("'" + source + "' is not apricot checkpoint metadata: " + e.what(),
                "point --model at a model.pt written by apricot (its model.json must sit beside it)");
  }
}

void save_checkpoint(const std::string& pt_path, const torch::nn::Module& model, json meta) {
  torch::serialize::OutputArchive archive;
  model.save(archive);
  std::ostringstream os;
  archive.save_to(os);
  const std::string bytes = os.str();
  meta["weights"] = {{"file", fs::path(pt_path).filename().string()},
                     {"bytes", bytes.size()},
                     {"crc32", crc32_hex(bytes)}};
  write_file_atomic(pt_path, bytes);
  write_json_atomic(meta_path_for(pt_path), meta);
}

LoadedModel load_checkpoint(const std::string& pt_path) {
  if (!fs::exists(pt_path))
    data_error("checkpoint '" + pt_path + "' does not exist", "train one first (apricot train-base) or fix --model");
  const std::string mpath = meta_path_for(pt_path);
  if (!fs::exists(mpath))
    state_error("'" + pt_path + "' is not an apricot checkpoint: its metadata '" + mpath + "' is missing",
                "apricot writes model.pt and model.json side by side; copy both");
  LoadedModel out;
  try {
    out.meta = json::parse(read_file(mpath));
  } catch (const json::exception& e) {  // parse_error, or out_of_range for a number like 1e400
    state_error("checkpoint metadata '" + mpath + "' is corrupt (not JSON)", "retrain or restore the file");
  }
  out.spec = spec_from_meta(out.meta, mpath);
  const std::string bytes = read_file(pt_path);
  size_t want_bytes = 0;
  std::string want_crc;
  try {
    want_bytes = out.meta.at("weights").at("bytes").get<size_t>();
    want_crc = out.meta.at("weights").at("crc32").get<std::string>();
  } catch (const json::exception& e) {
    state_error("checkpoint metadata '" + mpath + "' lacks the weights' size and checksum (" + e.what() + ")",
                "retrain it or restore both files from a backup");
  }
  if (want_bytes != bytes.size())
    state_error("checkpoint '" + pt_path + "' is truncated or altered: " + std::to_string(bytes.size()) +
                    " bytes, metadata says " + std::to_string(want_bytes),
                "retrain it or restore both files from a backup");
  if (want_crc != crc32_hex(bytes))
    state_error("checkpoint '" + pt_path + "' is corrupt: CRC-32 does not match its metadata",
                "retrain it or restore both files from a backup");
  {  // construction draws from the process-wide generator; concurrent workers seed it and draw too
    std::lock_guard<std::mutex> lock(global_generator_mutex());
    // A gated patch (models/gated.hpp): two networks of the spec and a gate; tau comes with the weights.
    out.model = is_gated_meta(out.meta) ? make_gated(out.spec, gate_spec_from_meta(out.meta, mpath), 0.0)
                                        : make_model(out.spec);
  }
  try {
    torch::serialize::InputArchive archive;
    std::istringstream is(bytes);
    archive.load_from(is);
    out.model->load(archive);
  } catch (const c10::Error& e) {
    std::string msg = e.what_without_backtrace();
    state_error("checkpoint '" + pt_path + "' does not hold " + out.spec.arch + " weights: " +
                    msg.substr(0, msg.find('\n')),
                "the file may be from another tool or version");
  }
  if (out.meta.contains("normalization")) out.norm = Normalizer::from_json(out.meta["normalization"]);
  return out;
}

void check_compatible(const LoadedModel& m, const ModelSpec& e, const std::string& fingerprint,
                      const std::string& what) {
  auto shape = [](const ModelSpec& s) {
    return s.arch + " on " + std::to_string(s.channels) + "x" + std::to_string(s.height) + "x" +
           std::to_string(s.width) + " with " + std::to_string(s.classes) + " classes";
  };
  if (m.spec.arch != e.arch || m.spec.channels != e.channels || m.spec.height != e.height ||
      m.spec.width != e.width || m.spec.classes != e.classes ||
      (e.arch.rfind("resnet", 0) == 0 && m.spec.resnet_variant != e.resnet_variant))
    state_error(what + " is " + shape(m.spec) + ", but the config describes " + shape(e),
                "use the config the model was trained with, or retrain");
  if (!fingerprint.empty()) {
    std::string fp = m.meta.value("dataset", json::object()).value("fingerprint", "");
    if (!fp.empty() && fp != fingerprint)
      state_error(what + " was trained on other data (dataset fingerprint " + fp + ", config gives " + fingerprint +
                      ")",
                  "check data.* in the config (root, limits, val_size, seed) or retrain");
  }
}

namespace {
std::vector<std::pair<std::string, torch::Tensor>> named_state(const torch::nn::Module& m) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& p : m.named_parameters()) out.emplace_back(p.key(), p.value());
  for (const auto& b : m.named_buffers())
    if (b.value().defined()) out.emplace_back(b.key(), b.value());
  return out;
}
}  // namespace

std::vector<TensorDiff> compare_tensors(const torch::nn::Module& a, const torch::nn::Module& b) {
  const auto ta = named_state(a), tb = named_state(b);
  std::map<std::string, torch::Tensor> in_b(tb.begin(), tb.end());
  std::vector<TensorDiff> out;
  torch::NoGradGuard no_grad;
  for (const auto& [name, x0] : ta) {
    TensorDiff d;
    d.name = name;
    d.shape = x0.sizes().vec();
    d.numel = x0.numel();
    auto it = in_b.find(name);
    if (it == in_b.end()) {
      d.only_in = "a";
      out.push_back(d);
      continue;
    }
    const torch::Tensor x = x0.detach().cpu().contiguous(), y = it->second.detach().cpu().contiguous();
    in_b.erase(it);
    if (x.sizes() != y.sizes() || x.scalar_type() != y.scalar_type()) {
      d.differing = -1;
      d.note = c10::str(x.sizes(), " ", x.scalar_type(), " vs ", y.sizes(), " ", y.scalar_type());
      out.push_back(d);
      continue;
    }
    // Bitwise: compare the bytes element by element as integers of the element's width.
    const auto bytes = [](const torch::Tensor& t) {
      switch (t.element_size()) {
        case 1: return t.view(torch::kUInt8);
        case 2: return t.view(torch::kInt16);
        case 4: return t.view(torch::kInt32);
        default: return t.view(torch::kInt64);
      }
    };
    const torch::Tensor ne = bytes(x).ne(bytes(y));
    d.differing = ne.sum().item<int64_t>();
    if (d.differing > 0) {
      const torch::Tensor dx = x.to(torch::kDouble), dy = y.to(torch::kDouble);
      d.max_abs_diff = (dx - dy).abs().masked_select(ne).max().item<double>();
    }
    out.push_back(d);
  }
  for (const auto& [name, y] : tb) {
    if (!in_b.count(name)) continue;
    TensorDiff d;
    d.name = name;
    d.shape = y.sizes().vec();
    d.numel = y.numel();
    d.only_in = "b";
    out.push_back(d);
  }
  return out;
}

}  // namespace apricot
