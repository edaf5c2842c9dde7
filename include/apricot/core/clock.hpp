// The one clock of the tool: monotonic wall time in seconds, and a scope timer that adds the time
// it was alive to a bucket (the adaptation's time split, the training loop's epoch times).
#pragma once
#include <chrono>

namespace apricot {

using Clock = std::chrono::steady_clock;

// Seconds from t0 to now.
inline double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Adds its lifetime, in seconds, to `bucket` when it goes out of scope.
class ScopeTimer {
 public:
  explicit ScopeTimer(double& bucket) : bucket_(bucket) {}
  ~ScopeTimer() { bucket_ += since(t0_); }
  ScopeTimer(const ScopeTimer&) = delete;
  ScopeTimer& operator=(const ScopeTimer&) = delete;

 private:
  double& bucket_;
  Clock::time_point t0_ = Clock::now();
};

}  // namespace apricot
