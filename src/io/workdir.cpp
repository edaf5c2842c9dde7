// WorkDir: the work-directory layout (see workdir.hpp). Pure path arithmetic.
#include "apricot/io/workdir.hpp"

#include <cstdio>
#include <filesystem>

namespace apricot {

std::string WorkDir::join(const std::string& a, const std::string& b) {
  return (std::filesystem::path(a) / b).string();
}

std::string WorkDir::rdlm_name(int64_t k) {
  char name[32];
  std::snprintf(name, sizeof name, "rdlm-%02lld", static_cast<long long>(k));
  return name;
}

std::optional<int64_t> WorkDir::rdlm_index(const std::string& name) {
  if (name.size() < 6 || name.size() > 15 || name.rfind("rdlm-", 0) != 0 ||
      name.find_first_not_of("0123456789", 5) != std::string::npos)
    return std::nullopt;
  return std::stoll(name.substr(5));
}

}  // namespace apricot
