// Live progress line on a terminal (carriage return, rate-limited); silent when stderr is not a tty.
#include "apricot/core/progress.hpp"

#include <unistd.h>

#include <cstdio>

namespace apricot {

Progress::Progress(std::string label, bool enabled) : label_(std::move(label)) {
  live_ = enabled && isatty(fileno(stderr));
  last_ = Clock::now() - std::chrono::seconds(1);
}

Progress::~Progress() { finish(); }

bool Progress::should_draw() {
  if (!live_) return false;
  auto now = Clock::now();
  if (now - last_ < std::chrono::milliseconds(200)) return false;
  last_ = now;
  return true;
}

void Progress::draw(const std::string& text) {
  if (!live_) return;
  std::fprintf(stderr, "\r\033[2K%s %s", label_.c_str(), text.c_str());
  std::fflush(stderr);
  drawn_ = true;
}

void Progress::finish() {
  if (live_ && drawn_) {
    std::fprintf(stderr, "\r\033[2K");
    std::fflush(stderr);
  }
  drawn_ = false;
}

std::string format_duration(double seconds) {
  if (seconds < 0) seconds = 0;
  long s = static_cast<long>(seconds + 0.5);
  char buf[32];
  if (s >= 3600) std::snprintf(buf, sizeof buf, "%ldh%02ldm", s / 3600, (s % 3600) / 60);
  else if (s >= 60) std::snprintf(buf, sizeof buf, "%ldm%02lds", s / 60, s % 60);
  else std::snprintf(buf, sizeof buf, "%lds", s);
  return buf;
}

}  // namespace apricot
