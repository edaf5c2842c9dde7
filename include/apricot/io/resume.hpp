// What makes a long phase survive a crash or a signal:
//  - state files: JSON metadata (state.json: a "key" naming what the state belongs to, the name,
//    size and CRC-32 of its archive) and two alternating LibTorch archives (state-a.pt, state-b.pt),
//    so a kill at any moment leaves one complete state; verified before anything is read;
//  - SIGINT/SIGTERM: a flag the loops poll after each step (a second signal kills as usual);
//  - per-item locks (flock on a lock file): held while a process works on an item, released by
//    the kernel when the process dies, so a stale lock never blocks anyone.
#pragma once
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <nlohmann/json.hpp>
#include <memory>
#include <string>

#include "apricot/core/errors.hpp"

namespace torch::optim {
class Optimizer;
}

namespace apricot {

// ---- signals ----
// Installs the SIGINT/SIGTERM handlers (idempotent). The first signal sets the flag; a second one
// restores the default action, so pressing Ctrl-C twice still stops a stuck process.
void install_interrupt_handlers();
bool interrupt_requested();
int interrupt_signal();          // the signal received (0 if none)
void clear_interrupt_for_tests();
// Throws Error(kInterrupted, "<what> interrupted by SIGINT; state saved to ...", resume hint).
[[noreturn]] void throw_interrupted(const std::string& what, const std::string& hint);

// ---- state files ----
struct LoadedState {
  nlohmann::json meta;                              // state.json (without the integrity fields)
  std::shared_ptr<torch::serialize::InputArchive> archive;
};
// pt_path names the state ("dir/state.pt"); the files are dir/state.json and dir/state-{a,b}.pt.
// Writes `archive` to the slot not in use, then meta (plus "state" integrity fields) atomically.
void save_state(const std::string& pt_path, torch::serialize::OutputArchive& archive, nlohmann::json meta);
// Null archive when there is no state at pt_path (no state.json). Error(kState) when the state is truncated,
// corrupt or unreadable (never loaded then); the hint tells how to discard it.
LoadedState load_state(const std::string& pt_path, const std::string& discard_hint);
void remove_state(const std::string& pt_path);  // all its files; no error when absent
bool state_exists(const std::string& pt_path);  // its state.json is present

// Archive helpers for the pieces every phase saves.
void write_generator(torch::serialize::OutputArchive& a, const std::string& key, at::Generator& g);
void read_generator(torch::serialize::InputArchive& a, const std::string& key, at::Generator& g);
void write_module(torch::serialize::OutputArchive& a, const std::string& key, const torch::nn::Module& m);
void read_module(torch::serialize::InputArchive& a, const std::string& key, torch::nn::Module& m);
void write_optimizer(torch::serialize::OutputArchive& a, const std::string& key, torch::optim::Optimizer& o);
void read_optimizer(torch::serialize::InputArchive& a, const std::string& key, torch::optim::Optimizer& o);
void write_tensors(torch::serialize::OutputArchive& a, const std::string& key, const std::vector<torch::Tensor>& v);
std::vector<torch::Tensor> read_tensors(torch::serialize::InputArchive& a, const std::string& key);

// ---- a phase's state ----
// The state at pt_path when it exists and was saved for `key` in `format`; a state for another key
// or format (another configuration, device or version) is removed with a warning and nothing is
// returned. Error(kState) when it is damaged. `what` names the phase in messages ("adapt-1").
LoadedState load_matching_state(const std::string& pt_path, const nlohmann::json& key, const char* format,
                                const std::string& what);
// Error(kState): the state at pt_path could not be read back (`e` says why); the hint says how to start over.
[[noreturn]] void state_unusable(const std::string& what, const std::string& pt_path, const std::exception& e);

// ---- append-only outputs ----
// A file written line by line as a loop goes (trace.jsonl), whose length a saved state records:
// opening it cuts it back to that length, so a resumed run goes on from exactly where the state
// was saved. Error(kState) when the file is shorter than the state says (it was altered).
class AppendFile {
 public:
  AppendFile(std::string path, int64_t keep_bytes);
  ~AppendFile();
  AppendFile(const AppendFile&) = delete;
  AppendFile& operator=(const AppendFile&) = delete;
  void append(const std::string& text);
  int64_t sync();  // flushes to disk; returns the length
  int64_t bytes() const { return bytes_; }

 private:
  std::string path_;
  int fd_ = -1;
  int64_t bytes_ = 0;
};

// ---- locks ----
// An exclusive advisory lock on `path` (created if missing), taken without waiting. The file holds
// the holder's pid and host for messages. Released by the destructor or when the process dies.
class FileLock {
 public:
  FileLock() = default;
  ~FileLock();
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
  // true when acquired; false when another process holds it (holder() then says who).
  bool try_lock(const std::string& path);
  void unlock();
  const std::string& holder() const { return holder_; }

 private:
  int fd_ = -1;
  std::string path_;
  std::string holder_;
};

}  // namespace apricot
