// Whole-file reads and atomic writes on POSIX (open/write/fsync/rename), reporting failures as
// data_error with the path, the OS reason and a hint. It does not retry, lock, or stream.
#include "apricot/core/files.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <system_error>

#include "apricot/core/errors.hpp"

namespace apricot {
namespace {

const char* const kWriteHint = "check the directory exists and is writable / disk space";

[[noreturn]] void write_failed(const std::string& path, const std::string& step, int err) {
  data_error("cannot write '" + path + "': " + step + ": " + std::strerror(err), kWriteHint);
}

// The file mode open(path, O_CREAT, 0666) would give: mkstemp makes 0600, but a work directory
// shared by a group (umask 002) must stay readable by it. /proc/self/status reads the umask without
// changing it (umask(2) would, for a moment, for every thread).
mode_t created_file_mode() {
  static const mode_t mode = [] {
    mode_t mask = 022;
    std::ifstream status("/proc/self/status");
    for (std::string line; std::getline(status, line);)
      if (line.rfind("Umask:", 0) == 0) mask = static_cast<mode_t>(std::stoul(line.substr(6), nullptr, 8));
    return static_cast<mode_t>(0666 & ~mask);
  }();
  return mode;
}

// Creates "<path>.tmp.XXXXXX" in the target's directory with a random suffix and O_EXCL (mkstemp),
// so that no two writers share a temp file: not two threads, and not two processes on two hosts
// sharing the directory, whose pids may well be equal. Returns the descriptor, sets `tmp`.
int open_temp_file(const std::string& path, std::string& tmp) {
  std::string name = path + ".tmp.XXXXXX";
  const int fd = ::mkostemp(name.data(), O_CLOEXEC);
  if (fd < 0) write_failed(path, "cannot create temp file '" + name + "'", errno);
  if (::fchmod(fd, created_file_mode()) != 0) {
    const int err = errno;
    ::close(fd);
    ::unlink(name.c_str());
    write_failed(path, "cannot set the mode of temp file '" + name + "'", err);
  }
  tmp = name;
  return fd;
}

// Closes the descriptor and removes the temp file unless released: every failure path after the
// temp file exists goes through this, so no stray ".tmp.XXXXXX" files are left behind.
class TempFile {
 public:
  TempFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!released_) ::unlink(path_.c_str());
  }
  int fd() const { return fd_; }
  // Closes explicitly so that a deferred write error (NFS, quota) is reported; returns errno or 0.
  int close() {
    int rc = ::close(fd_);
    fd_ = -1;
    return rc == 0 ? 0 : errno;
  }
  void release() { released_ = true; }

 private:
  std::string path_;
  int fd_;
  bool released_ = false;
};

}  // namespace

std::string make_temp_file(const std::string& target) {
  std::string tmp;
  ::close(open_temp_file(target, tmp));
  return tmp;
}

void write_file_atomic(const std::string& path, const std::string& bytes) {
  namespace fs = std::filesystem;
  if (path.empty()) data_error("cannot write a file with an empty path", kWriteHint);
  fs::path parent = fs::path(path).parent_path();
  if (!parent.empty()) {
    std::error_code ec;
    fs::create_directories(parent, ec);
    if (ec) {
      data_error("cannot write '" + path + "': cannot create directory '" + parent.string() +
                     "': " + ec.message(),
                 kWriteHint);
    }
  }

  std::string tmp;
  const int fd = open_temp_file(path, tmp);
  TempFile file(tmp, fd);

  const char* p = bytes.data();
  size_t left = bytes.size();
  while (left > 0) {
    ssize_t n = ::write(file.fd(), p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      write_failed(path, "write to '" + tmp + "' failed", errno);
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  if (::fsync(file.fd()) != 0) write_failed(path, "fsync of '" + tmp + "' failed", errno);
  if (int err = file.close()) write_failed(path, "close of '" + tmp + "' failed", err);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    write_failed(path, "rename from '" + tmp + "' failed", errno);
  }
  file.release();

  // Make the rename itself durable. Best effort: some filesystems refuse fsync on directories.
  const std::string dir = parent.empty() ? std::string(".") : parent.string();
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)::fsync(dfd);
    ::close(dfd);
  }
}

std::string read_file(const std::string& path) {
  const char* const hint = "check the path and that the file is readable";
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) data_error("cannot read '" + path + "': " + std::strerror(errno), hint);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    data_error("cannot read '" + path + "': " + std::strerror(err), hint);
  }
  if (S_ISDIR(st.st_mode)) {
    ::close(fd);
    data_error("cannot read '" + path + "': it is a directory, not a file", hint);
  }
  std::string out;
  if (S_ISREG(st.st_mode) && st.st_size > 0) out.reserve(static_cast<size_t>(st.st_size));
  // Read to EOF rather than trusting st_size: the file may be a pipe or may change under us.
  char buf[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      data_error("cannot read '" + path + "': " + std::strerror(err), hint);
    }
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

std::string crc32_hex(const std::string& bytes) {
  uLong crc = crc32(0L, Z_NULL, 0);
  const auto* p = reinterpret_cast<const Bytef*>(bytes.data());
  size_t left = bytes.size();
  while (left > 0) {
    uInt chunk = static_cast<uInt>(std::min<size_t>(left, 1u << 30));
    crc = crc32(crc, p, chunk);
    p += chunk;
    left -= chunk;
  }
  char buf[16];
  std::snprintf(buf, sizeof buf, "%08lx", static_cast<unsigned long>(crc));
  return buf;
}

void write_json_atomic(const std::string& path, const nlohmann::json& j) {
  std::string text;
  try {
    text = j.dump(2);
  } catch (const nlohmann::json::exception& e) {
    // Only invalid UTF-8 in a string gets here, e.g. a path taken verbatim from the command line.
    data_error("cannot write '" + path + "': JSON serialisation failed: " + e.what(),
               "check that every string in it is valid UTF-8");
  }
  text += '\n';
  write_file_atomic(path, text);
}

}  // namespace apricot
