// Whole-file reads and crash-safe writes: every file the tool produces goes through
// write_file_atomic (a unique temp file in the same directory, fsync, rename), so a reader never sees
// a half-written file and a failed write leaves the previous version in place. No streaming, no locking.
#pragma once
#include <nlohmann/json_fwd.hpp>
#include <string>

namespace apricot {

// Writes `bytes` to `path` atomically: creates the parent directories, writes a new temp file
// path + ".tmp.XXXXXX" (mkstemp: a random suffix, created exclusively, so writers in other threads,
// processes or hosts sharing the directory never share one), fsyncs it, renames it over `path`, then
// fsyncs the directory. Concurrent writers of one path each rename a whole file: the last one wins.
// On failure throws data_error naming the path, removes the temp file, and leaves any existing file
// at `path` untouched.
void write_file_atomic(const std::string& path, const std::string& bytes);

// Creates an empty, unique temp file target + ".tmp.XXXXXX" in the target's directory (which must
// exist) and returns its name, for a writer that needs a file name (torch::save(module, path)); the
// caller renames it over the target or removes it. data_error if it cannot be created.
std::string make_temp_file(const std::string& target);

// The whole file as bytes. data_error if it is missing, a directory, or unreadable.
std::string read_file(const std::string& path);

// CRC-32 (zlib's) of `bytes` as 8 lowercase hex digits.
std::string crc32_hex(const std::string& bytes);

// j.dump(2) plus a trailing newline, written with write_file_atomic.
void write_json_atomic(const std::string& path, const nlohmann::json& j);

}  // namespace apricot
