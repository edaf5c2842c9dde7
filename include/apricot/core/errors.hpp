// Errors a user can cause, each carrying the process exit code it maps to and a hint.
// Thrown anywhere in the library, caught once in main. Internal invariants use TORCH_CHECK instead.
#pragma once
#include <stdexcept>
#include <string>

namespace apricot {

enum class ExitCode : int {
  kOk = 0,
  kOther = 1,
  kUsage = 2,       // usage or config error
  kData = 3,        // data or I/O error
  kState = 4,       // incompatible or corrupt checkpoint / state
  kInterrupted = 130,
};
// The process exit status of a code (what a shell, a batch script or a test sees).
constexpr int exit_status(ExitCode c) { return static_cast<int>(c); }

class Error : public std::runtime_error {
 public:
  Error(ExitCode code, const std::string& what, std::string hint = {})
      : std::runtime_error(what), code_(code), hint_(std::move(hint)) {}
  ExitCode code() const { return code_; }
  const std::string& hint() const { return hint_; }

 private:
  ExitCode code_;
  std::string hint_;
};

// Shorthands: the message names the file or key and the problem; the hint says what to do.
[[noreturn]] inline void config_error(const std::string& what, std::string hint = {}) {
  throw Error(ExitCode::kUsage, what, std::move(hint));
}
[[noreturn]] inline void data_error(const std::string& what, std::string hint = {}) {
  throw Error(ExitCode::kData, what, std::move(hint));
}
[[noreturn]] inline void state_error(const std::string& what, std::string hint = {}) {
  throw Error(ExitCode::kState, what, std::move(hint));
}

}  // namespace apricot
