// Helpers the format readers share (private to src/data/formats/).
#pragma once
#include <cstdio>
#include <filesystem>
#include <string>

namespace apricot::formats {

inline std::string hex_byte(unsigned v) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%02x", v & 0xFFu);
  return buf;
}

// The whole file as bytes; Error(kData) naming it, with `hint`, when it cannot be read.
std::string read_whole_file(const std::filesystem::path& path, const char* hint);

}  // namespace apricot::formats
