// Helpers the format readers share.
#include "apricot/core/errors.hpp"
#include "common.hpp"

#include <torch/torch.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace apricot {
namespace fs = std::filesystem;

namespace formats {

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

}  // namespace formats

}  // namespace apricot
