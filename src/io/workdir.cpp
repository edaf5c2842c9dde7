// WorkDir: the work-directory layout (see workdir.hpp). Pure path arithmetic.
#include "apricot/io/workdir.hpp"

#include <cstdio>
#include <filesystem>

namespace apricot {

std::string WorkDir::join(const std::string& a, const std::string& b) {
  return (std::filesystem::path(a) / b).string();
}

std::string WorkDir::rdlm_dir(int64_t k) const {
  char name[32];
  std::snprintf(name, sizeof name, "rdlm-%02lld", static_cast<long long>(k));
  return join(rdlms_dir(), name);
}

}  // namespace apricot
