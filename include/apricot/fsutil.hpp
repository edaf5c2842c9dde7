// Whole-file reads and crash-safe writes: every file the tool produces goes through
// write_file_atomic (temp file in the same directory, fsync, rename), so a reader never sees a
// half-written file and a failed write leaves the previous version in place. No streaming, no locking.
#pragma once
#include <nlohmann/json_fwd.hpp>
#include <string>

namespace apricot {

// Writes `bytes` to `path` atomically: creates the parent directories, writes path + ".tmp.<pid>",
// fsyncs it, renames it over `path`, then fsyncs the directory. On failure throws data_error naming
// the path, removes the temp file, and leaves any existing file at `path` untouched.
void write_file_atomic(const std::string& path, const std::string& bytes);

// The whole file as bytes. data_error if it is missing, a directory, or unreadable.
std::string read_file(const std::string& path);

// CRC-32 (zlib's) of `bytes` as 8 lowercase hex digits.
std::string crc32_hex(const std::string& bytes);

// j.dump(2) plus a trailing newline, written with write_file_atomic.
void write_json_atomic(const std::string& path, const nlohmann::json& j);

}  // namespace apricot
