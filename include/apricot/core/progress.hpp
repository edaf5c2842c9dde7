// Progress reporting on stderr: a live, rate-limited line on a terminal, nothing in between on a
// pipe or file (callers log one plain line per epoch / phase instead).
#pragma once
#include <string>

#include "apricot/core/clock.hpp"

namespace apricot {

class Progress {
 public:
  explicit Progress(std::string label, bool enabled = true);
  ~Progress();
  // Whether a live line is shown (stderr is a terminal and progress enabled).
  bool live() const { return live_; }
  // Redraws at most ~5 times a second unless force. `text` is the status after the label.
  // Returns true when it drew (callers that must fetch values from a GPU can ask should_draw first).
  bool should_draw();
  void draw(const std::string& text);
  void finish();  // clears the live line

 private:
  std::string label_;
  bool live_ = false;
  bool drawn_ = false;
  Clock::time_point last_;
};

std::string format_duration(double seconds);  // "1h02m", "3m05s", "12s"

}  // namespace apricot
