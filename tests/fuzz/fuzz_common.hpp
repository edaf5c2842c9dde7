// Shared by the libFuzzer targets. An apricot::Error is how a parser rejects bad input, so it is an
// expected outcome; any other exception escaping (c10::Error, a stray nlohmann exception, a
// std::bad_alloc) is a finding, printed and turned into an abort so that libFuzzer records it.
// Crashes, ASan and UBSan reports are findings by themselves.
#pragma once
#include <torch/torch.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "apricot/core/errors.hpp"

namespace apricot_fuzz {

[[noreturn]] inline void finding(const char* target, const std::string& what) {
  std::fprintf(stderr, "\n%s: FINDING: %s\n", target, what.c_str());
  std::fflush(stderr);
  std::abort();
}

// Runs f; returns true if it completed, false if it rejected the input with an apricot::Error.
template <typename F>
bool guarded(const char* target, F&& f) {
  try {
    f();
    return true;
  } catch (const apricot::Error&) {
    return false;
  } catch (const std::exception& e) {
    finding(target, std::string("unexpected exception: ") + e.what());
  } catch (...) {
    finding(target, "unexpected non-std exception");
  }
}

// One intra-op thread: the inputs are tiny, and the fuzzer should not compete for the cores.
inline void init_torch() { torch::set_num_threads(1); }

}  // namespace apricot_fuzz
