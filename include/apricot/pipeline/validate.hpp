// A configuration as every command takes it: read against the schema (core/config.hpp), then
// range-checked by each layer's own validate(...) with the value sets it owns (data formats,
// model architectures, optimisers, arms), then the rules that tie sections together.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "apricot/core/config.hpp"

namespace apricot {

// Defaults <- file (if not empty) <- overrides ("a.b=value"), schema- and range-checked. Throws
// apricot::Error(kUsage) naming the file/key, the problem and the nearest valid key or value;
// kData if the file cannot be read.
Config load_config(const std::string& path, const std::vector<std::string>& overrides);
// The same from the text of a config file already in memory; `source` names it in messages.
Config parse_config_text(const std::string& text, const std::string& source,
                         const std::vector<std::string>& overrides = {});
// The same from an already parsed JSON document.
Config config_from_json(const nlohmann::json& j, const std::string& source);
void validate(const Config& c);  // range checks of every section; throws kUsage naming the key

}  // namespace apricot
