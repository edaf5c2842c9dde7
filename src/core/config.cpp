// Config: defaults <- JSON file <- --set overrides, checked against the JSON form of the defaults
// (which is the schema: every valid key exists there, with a value of the right kind), then
// range-checked. It does not know what the values mean beyond their valid ranges.
#include "apricot/core/config.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <limits>
#include <sstream>

#include "apricot/core/errors.hpp"

namespace apricot {

using nlohmann::json;

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(DataConfig, format, root, train_limit, test_limit, val_from,
                                                val_size, normalize, channels, image_size, classes,
                                                synthetic_train, synthetic_test, synthetic_shape, synthetic_classes)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(AugmentConfig, shift, fill, flip)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(ModelConfig, arch, resnet_variant, path, pretrained)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(TrainConfig, epochs, batch_size, optimizer, lr, momentum,
                                                nesterov, weight_decay, lr_schedule, lr_steps, lr_gamma, lr_min,
                                                patience, augment, precision, memory_format, eval_batch_size)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(FinetuneConfig, epochs, optimizer, lr, momentum, lr_factors, augment)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(RdlmConfig, count, layout, size, stride, init, init_epochs,
                                                epochs, finetune, parallel, devices)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(RetrainConfig, epochs, steps, batch_size, optimizer, lr,
                                                momentum)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(AdaptConfig, strategies, direction, step, step_mode,
                                                bn_recalibrate, batch_size, passes,
                                                patience, max_batches, time_budget, selection, adjust_buffers,
                                                retrain_every, target, parallel, max_break_rate, early_reject,
                                                retrain)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(FieldConfig, format, root, holdout, select, replay, steps, batch_size,
                                                optimizer, lrs, momentum, checkpoint_every, members, interp_points,
                                                gates, gate_steps)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(ResumeConfig, every_epochs, every_batches)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Config, seed, deterministic, workdir, device, threads, data, model,
                                                train, rdlm, adapt, field, resume)

void drop_added_defaults(json& config) {
  auto drop_if = [](json& section, const char* key, const json& value) {
    if (section.is_object() && section.contains(key) && section[key] == value) section.erase(key);
  };
  if (config.contains("data")) {
    json& d = config["data"];
    drop_if(d, "channels", 0);
    drop_if(d, "image_size", json::array());
    drop_if(d, "classes", 0);
  }
  if (config.contains("train")) {  // the schedule and early-stopping keys added after results existed
    json& t = config["train"];
    drop_if(t, "lr_schedule", "step");
    drop_if(t, "lr_min", 0.0);
    drop_if(t, "patience", 0);
  }
  if (config.contains("rdlm") && config["rdlm"].is_object() && config["rdlm"].contains("finetune")) {
    json& f = config["rdlm"]["finetune"];
    drop_if(f, "lr_factors", json::array({1.0}));
    drop_if(f, "augment", json::array({"train"}));
  }
  if (config.contains("model")) drop_if(config["model"], "path", ""), drop_if(config["model"], "pretrained", false);
  if (config.contains("adapt")) {
    json& a = config["adapt"];
    drop_if(a, "step_mode", "per-input");
    drop_if(a, "bn_recalibrate", 0);
    drop_if(a, "max_break_rate", 1.0);
  }
  if (config.contains("field") && config["field"].is_object() && config["field"].value("format", "") == "")
    config.erase("field");
}

json to_json(const Config& c) {
  json j = c;
  return j;
}

namespace {

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string join(const std::vector<std::string>& v, const std::string& sep = ", ") {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? sep : "") + v[i];
  return out;
}

std::vector<std::string> keys_of(const json& obj) {
  std::vector<std::string> keys;
  for (auto it = obj.begin(); it != obj.end(); ++it) keys.push_back(it.key());
  return keys;
}

std::string kind_name(const json& v) {
  if (v.is_boolean()) return "a boolean";
  if (v.is_number_integer() || v.is_number_unsigned()) return "an integer";
  if (v.is_number()) return "a number";
  if (v.is_string()) return "a string";
  if (v.is_array()) return "a list";
  if (v.is_object()) return "an object";
  return "null";
}

std::string unknown_key_hint(const std::string& key, const json& schema_obj) {
  auto keys = keys_of(schema_obj);
  std::string near = nearest(key, keys);
  std::string hint = near.empty() ? "" : "did you mean '" + near + "'? ";
  return hint + "valid keys here: " + join(keys);
}

// Checks that `value` may stand where the schema has `schema` and returns it coerced to that kind.
json check_value(const json& schema, const json& value, const std::string& path, const std::string& source) {
  auto bad = [&](const std::string& why) {
    config_error(source + ": key '" + path + "' " + why,
                 "expected " + kind_name(schema) + " like " + schema.dump());
  };
  if (schema.is_object()) {
    if (!value.is_object()) bad("must be an object, got " + kind_name(value));
    json out = schema;
    for (auto it = value.begin(); it != value.end(); ++it) {
      std::string sub = path.empty() ? it.key() : path + "." + it.key();
      if (!schema.contains(it.key()))
        config_error(source + ": unknown config key '" + sub + "'", unknown_key_hint(it.key(), schema));
      out[it.key()] = check_value(schema[it.key()], it.value(), sub, source);
    }
    return out;
  }
  if (schema.is_boolean()) {
    if (!value.is_boolean()) bad("must be true or false, got " + value.dump());
    return value;
  }
  if (schema.is_number_unsigned()) {
    if (!(value.is_number_unsigned() || (value.is_number_integer() && value.get<int64_t>() >= 0)))
      bad("must be a non-negative integer, got " + value.dump());
    return value;
  }
  if (schema.is_number_integer()) {
    if (value.is_number_float()) {
      // Range first: converting a double outside int64's range is undefined behaviour.
      const double d = value.get<double>(), two63 = std::ldexp(1.0, 63);
      if (!(d >= -two63 && d < two63) || d != std::trunc(d)) bad("must be an integer, got " + value.dump());
      return json(static_cast<int64_t>(d));
    }
    if (!value.is_number()) bad("must be an integer, got " + value.dump());
    if (value.is_number_unsigned() && value.get<uint64_t>() > uint64_t{std::numeric_limits<int64_t>::max()})
      bad("must be an integer below 2^63, got " + value.dump());
    return value;
  }
  if (schema.is_number()) {
    if (!value.is_number()) bad("must be a number, got " + value.dump());
    return json(value.get<double>());
  }
  if (schema.is_string()) {
    if (!value.is_string()) bad("must be a string, got " + value.dump());
    return value;
  }
  if (schema.is_array()) {
    if (!value.is_array()) bad("must be a list, got " + value.dump());
    // Element kinds: lists of strings accept numbers as strings (adapt.strategies: [1, 2, "none"]).
    bool strings = path == "adapt.strategies";
    const bool only_strings = path == "rdlm.devices";
    json out = json::array();
    for (size_t i = 0; i < value.size(); ++i) {
      const json& e = value[i];
      std::string sub = path + "[" + std::to_string(i) + "]";
      if (only_strings) {
        if (!e.is_string()) bad("element " + std::to_string(i) + " must be a string such as \"cuda:0\", got " + e.dump());
        out.push_back(e);
      } else if (strings) {
        if (e.is_number_integer()) out.push_back(e.dump());  // the digits as written
        else if (e.is_string()) out.push_back(e);
        else bad("element " + std::to_string(i) + " must be a string or an integer, got " + e.dump());
      } else {
        // The default's element kind (field.lrs: numbers); integers when the default is empty.
        const json element = schema.empty() ? json(int64_t{0}) : schema[0];
        out.push_back(check_value(element, e, sub, source));
      }
    }
    return out;
  }
  return value;
}

void set_path(json& root, const std::string& path, const json& value) {
  json* node = &root;
  std::stringstream ss(path);
  std::string part;
  std::vector<std::string> parts;
  while (std::getline(ss, part, '.')) parts.push_back(part);
  for (size_t i = 0; i < parts.size(); ++i) {
    if (parts[i].empty()) config_error("--set " + path + ": empty key component", "write --set section.key=value");
    if (i + 1 == parts.size()) {
      (*node)[parts[i]] = value;
    } else {
      if (!node->contains(parts[i]) || !(*node)[parts[i]].is_object()) (*node)[parts[i]] = json::object();
      node = &(*node)[parts[i]];
    }
  }
}


}  // namespace

std::string nearest(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_d = std::string::npos;
  for (const auto& c : candidates) {
    size_t d = edit_distance(word, c);
    if (d < best_d) best_d = d, best = c;
  }
  // Close enough to be a typo: at most a third of the word's length (and at least 1 edit allowed).
  size_t limit = std::max<size_t>(2, word.size() / 3);
  return best_d <= limit ? best : std::string();
}

void require_one_of(const std::string& key, const std::string& v, const std::vector<std::string>& valid) {
  if (std::find(valid.begin(), valid.end(), v) != valid.end()) return;
  std::string near = nearest(v, valid);
  config_error("config key '" + key + "': '" + v + "' is not a valid value",
               (near.empty() ? "" : "did you mean '" + near + "'? ") + "valid: " + join(valid));
}

void out_of_range(const std::string& key, const std::string& value, const std::string& rule) {
  config_error("config key '" + key + "': " + value + " is out of range", "it must be " + rule);
}


Config config_from_json_unchecked(const json& user, const std::string& source) {
  const Config defaults;  // a named object: GCC 12 warns (maybe-uninitialized) about a temporary here
  json schema = to_json(defaults);
  json merged = check_value(schema, user, "", source);
  return merged.get<Config>();
}

namespace {

// Defaults <- `user` <- overrides, then the schema and range checks.
Config with_overrides(json user, std::string source, const std::vector<std::string>& overrides) {
  for (const auto& ov : overrides) {
    auto eq = ov.find('=');
    if (eq == std::string::npos || eq == 0)
      config_error("--set '" + ov + "' is not key.path=value", "for example --set train.epochs=5");
    std::string key = ov.substr(0, eq), text = ov.substr(eq + 1);
    // The config is saved (and echoed in messages) as JSON, which holds only UTF-8 text.
    auto utf8 = [](const std::string& t) {
      try {
        (void)json(t).dump();
        return true;
      } catch (const json::type_error&) {
        return false;
      }
    };
    if (!utf8(key)) config_error("--set: a key is not valid UTF-8 text", "config keys are names like train.epochs");
    json value;
    try {
      value = json::parse(text);
    } catch (const json::exception&) {  // parse_error, or out_of_range for a number like 1e400
      value = text;                     // a bare word is a string
    }
    if (value.is_string() && !utf8(value.get<std::string>()))
      config_error("--set " + key + ": the value is not valid UTF-8 text", "write the value in UTF-8");
    set_path(user, key, value);
  }
  if (!overrides.empty()) source += std::string(source == "defaults" ? " with " : " + ") + "--set overrides";
  return config_from_json_unchecked(user, source);
}

}  // namespace

Config parse_config_text_unchecked(const std::string& text, const std::string& source,
                         const std::vector<std::string>& overrides) {
  json user;
  try {
    user = json::parse(text, nullptr, true, /*ignore_comments=*/true);
  } catch (const json::exception& e) {  // parse_error, or out_of_range for a number like 1e400
    config_error("config file '" + source + "' is not valid JSON: " + std::string(e.what()),
                 "fix the syntax at the byte offset above");
  }
  if (!user.is_object()) config_error("config file '" + source + "' must hold a JSON object", "{ \"data\": {...} }");
  return with_overrides(std::move(user), source, overrides);
}

Config load_config_unchecked(const std::string& path, const std::vector<std::string>& overrides) {
  if (path.empty()) return with_overrides(json::object(), "defaults", overrides);
  std::ifstream in(path, std::ios::binary);
  if (!in) data_error("config file '" + path + "' cannot be read", "check the path (presets live in configs/)");
  std::ostringstream text;
  text << in.rdbuf();
  return parse_config_text_unchecked(text.str(), path, overrides);
}

// By hand, not std::regex: libstdc++'s matcher recurses once per character and overflows the
// stack on a long enough value ("cuda:" and 100,000 digits).
bool valid_device_name(const std::string& dev) {
  return dev == "auto" || dev == "cpu" || dev == "cuda" ||
         (dev.size() > 5 && dev.compare(0, 5, "cuda:") == 0 &&
          std::all_of(dev.begin() + 5, dev.end(), [](char ch) { return ch >= '0' && ch <= '9'; }));
}

void validate_run(const Config& c) {
  if (!valid_device_name(c.device))
    config_error("config key 'device': '" + c.device + "' is not valid", "use auto, cpu, cuda or cuda:N");
  require(c.threads >= 0, "threads", c.threads, ">= 0 (0 = the CPUs this process may use)");
  require(!c.workdir.empty(), "workdir", "\"\"", "a directory path");
  require(c.resume.every_epochs >= 0, "resume.every_epochs", c.resume.every_epochs, ">= 0 (0 = only on a signal)");
  require(c.resume.every_batches >= 0, "resume.every_batches", c.resume.every_batches, ">= 0 (0 = only on a signal)");
}

}  // namespace apricot
