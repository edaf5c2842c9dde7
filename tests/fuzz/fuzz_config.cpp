// Fuzzes the config parser: the input is the text of a config file, parsed through the same schema
// and range checks as load_config (parse_config_text). After a line "--set", each further line is
// one --set override. Property: an accepted config's effective JSON is accepted again and gives the
// same config (the file saved as WORKDIR/config.json must load back unchanged).
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "apricot/core/config.hpp"
#include "apricot/pipeline/validate.hpp"
#include "fuzz_common.hpp"

namespace {
constexpr const char* kTarget = "fuzz_config";
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string in(reinterpret_cast<const char*>(data), size);
  std::string text = in;
  std::vector<std::string> overrides;
  const std::string marker = "\n--set\n";
  if (auto cut = in.find(marker); cut != std::string::npos) {
    text = in.substr(0, cut);
    std::string rest = in.substr(cut + marker.size());
    for (size_t pos = 0; pos <= rest.size();) {
      size_t nl = rest.find('\n', pos);
      if (nl == std::string::npos) nl = rest.size();
      overrides.push_back(rest.substr(pos, nl - pos));
      pos = nl + 1;
    }
  }
  apricot::Config cfg;
  if (!apricot_fuzz::guarded(kTarget, [&] { cfg = apricot::parse_config_text(text, "fuzz.json", overrides); }))
    return 0;
  nlohmann::json saved;
  std::string dumped;
  apricot_fuzz::guarded(kTarget, [&] {
    saved = apricot::to_json(cfg);
    dumped = saved.dump(2);
  });
  apricot::Config again;
  try {
    again = apricot::parse_config_text(dumped, "config.json");
  } catch (const apricot::Error& e) {
    apricot_fuzz::finding(kTarget, std::string("the effective config is rejected on reload: ") + e.what());
  }
  if (apricot::to_json(again) != saved)
    apricot_fuzz::finding(kTarget, "the effective config changes on reload: " + dumped);
  return 0;
}
