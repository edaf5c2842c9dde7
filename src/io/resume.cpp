// State files, signal flag and per-item locks (see resume.hpp). The signal handler only sets an
// atomic flag; the loops decide where it is safe to stop.
#include "apricot/io/resume.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <torch/optim/optimizer.h>

#include <atomic>
#include <csignal>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <sstream>

#include <spdlog/spdlog.h>

#include "apricot/io/checkpoint.hpp"
#include "apricot/core/files.hpp"
#include "apricot/models/model.hpp"

namespace apricot {

namespace fs = std::filesystem;
using nlohmann::json;

// ---- signals ----
namespace {
std::atomic<int> g_signal{0};

extern "C" void on_signal(int sig) {
  if (g_signal.load() != 0) {  // second signal: give up waiting for a clean stop
    std::signal(sig, SIG_DFL);
    std::raise(sig);
    return;
  }
  g_signal.store(sig);
}
}  // namespace

void install_interrupt_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

bool interrupt_requested() { return g_signal.load(std::memory_order_relaxed) != 0; }
int interrupt_signal() { return g_signal.load(); }
void clear_interrupt_for_tests() { g_signal.store(0); }

void throw_interrupted(const std::string& what, const std::string& hint) {
  const int sig = interrupt_signal();
  const char* name = sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "a signal";
  throw Error(ExitCode::kInterrupted, what + " (stopped by " + name + ")", hint);
}

// ---- state files ----
// A state is state.json (metadata naming its archive, with size and CRC-32) plus one of two
// archives, state-a.pt and state-b.pt. A save writes the archive the current state.json does NOT
// name, then replaces state.json atomically: killed at any moment, the directory holds either the
// old complete state or the new one, never a mix.
namespace {
std::string archive_path(const std::string& pt_path, char slot) {
  fs::path p(pt_path);
  return (p.parent_path() / (p.stem().string() + "-" + slot + ".pt")).string();
}
}  // namespace

void save_state(const std::string& pt_path, torch::serialize::OutputArchive& archive, json meta) {
  const std::string mpath = meta_path_for(pt_path);
  char slot = 'a';
  try {  // the slot in use now, if any, must survive until the new metadata is in place
    if (fs::exists(mpath) && json::parse(read_file(mpath)).at("state").at("file").get<std::string>() ==
                                 fs::path(archive_path(pt_path, 'a')).filename().string())
      slot = 'b';
  } catch (const std::exception&) {
  }
  const std::string target = archive_path(pt_path, slot);
  std::ostringstream os;
  archive.save_to(os);
  const std::string bytes = os.str();
  meta["state"] = {{"file", fs::path(target).filename().string()}, {"bytes", bytes.size()}, {"crc32", crc32_hex(bytes)}};
  write_file_atomic(target, bytes);
  write_json_atomic(mpath, meta);
}

LoadedState load_state(const std::string& pt_path, const std::string& discard_hint) {
  LoadedState out;
  const std::string mpath = meta_path_for(pt_path);
  if (!fs::exists(mpath)) return out;  // an archive without metadata is a save that never completed
  try {
    out.meta = json::parse(read_file(mpath));
  } catch (const json::exception&) {  // parse_error, or out_of_range for a number like 1e400
    state_error("resumable state metadata '" + mpath + "' is corrupt (not JSON)", discard_hint);
  }
  size_t want_bytes = 0;
  std::string want_crc, file;
  try {
    file = out.meta.at("state").at("file").get<std::string>();
    want_bytes = out.meta.at("state").at("bytes").get<size_t>();
    want_crc = out.meta.at("state").at("crc32").get<std::string>();
  } catch (const json::exception& e) {
    state_error("resumable state metadata '" + mpath + "' lacks its archive's name, size and checksum (" + e.what() +
                    ")",
                discard_hint);
  }
  if (file != fs::path(archive_path(pt_path, 'a')).filename().string() &&
      file != fs::path(archive_path(pt_path, 'b')).filename().string())
    state_error("resumable state metadata '" + mpath + "' names an unexpected archive '" + file + "'", discard_hint);
  const std::string apath = (fs::path(mpath).parent_path() / file).string();
  if (!fs::exists(apath))
    state_error("resumable state '" + apath + "' named by '" + mpath + "' is missing", discard_hint);
  const std::string bytes = read_file(apath);
  if (want_bytes != bytes.size())
    state_error("resumable state '" + apath + "' is truncated or altered: " + std::to_string(bytes.size()) +
                    " bytes, metadata says " + std::to_string(want_bytes),
                discard_hint);
  if (want_crc != crc32_hex(bytes))
    state_error("resumable state '" + apath + "' is corrupt: CRC-32 does not match its metadata", discard_hint);
  out.archive = std::make_shared<torch::serialize::InputArchive>();
  try {
    std::istringstream is(bytes);
    out.archive->load_from(is);
  } catch (const c10::Error& e) {
    std::string msg = e.what_without_backtrace();
    state_error("resumable state '" + apath + "' cannot be read: " + msg.substr(0, msg.find('\n')), discard_hint);
  }
  out.meta.erase("state");
  return out;
}

void remove_state(const std::string& pt_path) {
  std::error_code ec;
  fs::remove(meta_path_for(pt_path), ec);  // first: without it the archives are never read
  fs::remove(archive_path(pt_path, 'a'), ec);
  fs::remove(archive_path(pt_path, 'b'), ec);
}

bool state_exists(const std::string& pt_path) { return fs::exists(meta_path_for(pt_path)); }

void write_generator(torch::serialize::OutputArchive& a, const std::string& key, at::Generator& g) {
  std::lock_guard<std::mutex> lock(g.mutex());
  a.write(key, g.get_state());
}

void read_generator(torch::serialize::InputArchive& a, const std::string& key, at::Generator& g) {
  torch::Tensor t;
  a.read(key, t);
  std::lock_guard<std::mutex> lock(g.mutex());
  g.set_state(t);
}

// The module's tensors, and the model's own random stream (NetImpl::random_stream) beside them.
constexpr const char* kStreamKey = "apricot.random_stream";

void write_module(torch::serialize::OutputArchive& a, const std::string& key, const torch::nn::Module& m) {
  torch::serialize::OutputArchive sub;
  m.save(sub);
  if (auto* net = dynamic_cast<const NetImpl*>(&m)) {
    const torch::Tensor stream = model_stream_state(*net);
    if (stream.defined()) sub.write(kStreamKey, stream);
  }
  a.write(key, sub);
}

void read_module(torch::serialize::InputArchive& a, const std::string& key, torch::nn::Module& m) {
  torch::serialize::InputArchive sub;
  a.read(key, sub);
  m.load(sub);
  torch::Tensor stream;
  if (auto* net = dynamic_cast<NetImpl*>(&m); net && sub.try_read(kStreamKey, stream)) set_model_stream_state(*net, stream);
}

void write_optimizer(torch::serialize::OutputArchive& a, const std::string& key, torch::optim::Optimizer& o) {
  torch::serialize::OutputArchive sub;
  o.save(sub);
  a.write(key, sub);
}

void read_optimizer(torch::serialize::InputArchive& a, const std::string& key, torch::optim::Optimizer& o) {
  torch::serialize::InputArchive sub;
  a.read(key, sub);
  o.load(sub);
}

void write_tensors(torch::serialize::OutputArchive& a, const std::string& key, const std::vector<torch::Tensor>& v) {
  a.write(key + ".n", torch::tensor(static_cast<int64_t>(v.size())));
  for (size_t i = 0; i < v.size(); ++i) a.write(key + "." + std::to_string(i), v[i].to(torch::kCPU));
}

std::vector<torch::Tensor> read_tensors(torch::serialize::InputArchive& a, const std::string& key) {
  torch::Tensor n;
  a.read(key + ".n", n);
  std::vector<torch::Tensor> out(static_cast<size_t>(n.item<int64_t>()));
  for (size_t i = 0; i < out.size(); ++i) a.read(key + "." + std::to_string(i), out[i]);
  return out;
}

// ---- a phase's state ----
LoadedState load_matching_state(const std::string& pt_path, const json& key, const char* format, const std::string& what) {
  LoadedState st = load_state(pt_path, "delete it (or rerun with --force) to start " + what + " over");
  if (st.archive && (st.meta.value("format", "") != format || st.meta.value("key", json()) != key)) {
    spdlog::warn("{}: saved state {} belongs to another configuration, device or version; starting over", what,
                 meta_path_for(pt_path));
    remove_state(pt_path);
    return {};
  }
  return st;
}

[[noreturn]] void state_unusable(const std::string& what, const std::string& pt_path, const std::exception& e) {
  state_error(what + ": saved state '" + pt_path + "' is unusable: " + e.what(),
              "delete it (or rerun with --force) to start " + what + " over");
}


// ---- append-only outputs ----
AppendFile::AppendFile(std::string path, int64_t keep_bytes) : path_(std::move(path)) {
  std::error_code ec;
  fs::create_directories(fs::path(path_).parent_path(), ec);
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) data_error("cannot open '" + path_ + "': " + std::strerror(errno), "check the work directory is writable");
  const off_t size = ::lseek(fd_, 0, SEEK_END);
  if (size < keep_bytes) {
    ::close(fd_);
    fd_ = -1;
    state_error("'" + path_ + "' holds " + std::to_string(size) + " bytes, the saved state expects " +
                    std::to_string(keep_bytes) + ": it was truncated or replaced",
                "delete the state (or rerun with --force) to start this phase over");
  }
  if (::ftruncate(fd_, keep_bytes) != 0 || ::lseek(fd_, keep_bytes, SEEK_SET) != keep_bytes)
    data_error("cannot cut '" + path_ + "' back to " + std::to_string(keep_bytes) + " bytes: " + std::strerror(errno),
               "check the work directory is writable");
  bytes_ = keep_bytes;
}

AppendFile::~AppendFile() {
  if (fd_ >= 0) ::close(fd_);
}

void AppendFile::append(const std::string& text) {
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd_, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) data_error("cannot write '" + path_ + "': " + std::strerror(errno), "check free disk space");
    done += static_cast<size_t>(n);
  }
  bytes_ += static_cast<int64_t>(text.size());
}

int64_t AppendFile::sync() {
  if (::fsync(fd_) != 0) data_error("cannot write '" + path_ + "': " + std::strerror(errno), "check free disk space");
  return bytes_;
}

// ---- locks ----
FileLock::~FileLock() { unlock(); }

bool FileLock::try_lock(const std::string& path) {
  unlock();
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) data_error("cannot open lock file '" + path + "': " + std::strerror(errno), "check the work directory is writable");
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    char buf[256] = {0};
    ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
    holder_ = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "another process";
    while (!holder_.empty() && (holder_.back() == '\n' || holder_.back() == ' ')) holder_.pop_back();
    ::close(fd);
    return false;
  }
  char host[128] = {0};
  ::gethostname(host, sizeof host - 1);
  const std::string who = "pid " + std::to_string(::getpid()) + " on " + host + "\n";
  if (::ftruncate(fd, 0) == 0) (void)!::pwrite(fd, who.data(), who.size(), 0);
  fd_ = fd;
  path_ = path;
  holder_.clear();
  return true;
}

void FileLock::unlock() {
  if (fd_ < 0) return;
  ::flock(fd_, LOCK_UN);
  ::close(fd_);
  fd_ = -1;
}

}  // namespace apricot
